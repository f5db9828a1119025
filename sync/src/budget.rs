//! The daily-budget guard: background polling stops before it eats the org's whole daily
//! API allocation, which the org's own users and integrations share.
//!
//! Salesforce reports usage in `Sforce-Limit-Info` on every response. Above the org's
//! `max_daily_share`, or after a `REQUEST_LIMIT_EXCEEDED`, polling pauses; while paused, one
//! cheap request per probe interval reads the usage again, and polling resumes once it has
//! fallen back under the share (Salesforce's allocation is a rolling 24 hours).

use std::time::Duration;

use sfpg_salesforce::ApiUsage;
use tokio::time::Instant;

/// Whether background polling may go on.
#[derive(Debug, Clone)]
pub struct BudgetGuard {
    pause: Option<Pause>,
}

#[derive(Debug, Clone)]
struct Pause {
    reason: String,
    next_probe: Instant,
}

/// What the guard decided after looking at the usage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Polling may go on (and was already going on).
    Continue,
    /// Polling must pause, for this reason.
    Paused(String),
    /// Polling was paused and may go on again.
    Resumed,
}

impl Default for BudgetGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl BudgetGuard {
    pub fn new() -> Self {
        Self { pause: None }
    }

    /// Why polling is paused, if it is.
    pub fn paused_reason(&self) -> Option<&str> {
        self.pause.as_ref().map(|p| p.reason.as_str())
    }

    /// When a paused org should send its next probe; `None` when not paused.
    pub fn next_probe(&self) -> Option<Instant> {
        self.pause.as_ref().map(|p| p.next_probe)
    }

    /// Looks at the latest usage: pauses above `max_share`, resumes below it.
    pub fn observe(
        &mut self,
        usage: Option<&ApiUsage>,
        max_share: f64,
        probe_interval: Duration,
    ) -> Verdict {
        let Some(usage) = usage else {
            return Verdict::Continue;
        };
        let used = usage.api.fraction_used();
        if used >= max_share {
            let reason = format!(
                "daily API budget: {} of {} requests used ({:.1}%), at or above the {:.0}% that background \
                 polling may use; polling resumes when usage falls below it",
                usage.api.used,
                usage.api.max,
                used * 100.0,
                max_share * 100.0
            );
            return self.pause(reason, probe_interval);
        }
        match self.pause.take() {
            Some(_) => Verdict::Resumed,
            None => Verdict::Continue,
        }
    }

    /// Pauses for `reason` (a `REQUEST_LIMIT_EXCEEDED`, or usage above the share).
    pub fn pause(&mut self, reason: String, probe_interval: Duration) -> Verdict {
        let next_probe = Instant::now() + probe_interval;
        match &mut self.pause {
            Some(pause) if pause.reason == reason => {
                pause.next_probe = next_probe;
                Verdict::Continue
            }
            _ => {
                self.pause = Some(Pause {
                    reason: reason.clone(),
                    next_probe,
                });
                Verdict::Paused(reason)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(used: u64, max: u64) -> ApiUsage {
        ApiUsage::parse(&format!("api-usage={used}/{max}")).unwrap()
    }

    #[tokio::test]
    async fn pauses_above_the_share_and_resumes_below_it() {
        let mut guard = BudgetGuard::new();
        let probe = Duration::from_secs(60);
        assert_eq!(guard.observe(None, 0.8, probe), Verdict::Continue);
        assert_eq!(
            guard.observe(Some(&usage(100, 1000)), 0.8, probe),
            Verdict::Continue
        );
        let Verdict::Paused(reason) = guard.observe(Some(&usage(800, 1000)), 0.8, probe) else {
            panic!("not paused at 80%");
        };
        assert!(
            reason.contains("800 of 1000 requests used (80.0%)"),
            "{reason}"
        );
        assert_eq!(guard.paused_reason(), Some(reason.as_str()));
        assert!(guard.next_probe().is_some());
        // Still above: the same pause, not a new one.
        assert_eq!(
            guard.observe(Some(&usage(800, 1000)), 0.8, probe),
            Verdict::Continue
        );
        assert_eq!(
            guard.observe(Some(&usage(10, 1000)), 0.8, probe),
            Verdict::Resumed
        );
        assert_eq!(guard.paused_reason(), None);
    }

    #[tokio::test]
    async fn a_refusal_pauses_until_usage_is_seen_below_the_share() {
        let mut guard = BudgetGuard::new();
        let probe = Duration::from_secs(60);
        let verdict = guard.pause(
            "REQUEST_LIMIT_EXCEEDED: TotalRequests Limit exceeded.".to_owned(),
            probe,
        );
        assert!(matches!(verdict, Verdict::Paused(_)));
        assert_eq!(
            guard.observe(Some(&usage(0, 1000)), 0.8, probe),
            Verdict::Resumed
        );
    }
}
