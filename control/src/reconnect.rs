//! Waiting between attempts to reach something that went away, the mirror database above
//! all: every loop of sfpg that reconnects (the sync supervisor's listening connection and
//! its org restarts, the proxy's journal repair) backs off the same way, and logs an outage
//! when it starts and when it ends rather than at every attempt.
//!
//! Exponential backoff with full jitter: the wait after the n-th failure in a row is
//! uniform in `[0, min(cap, initial · 2ⁿ⁻¹)]`, so processes that lost the same server do not
//! come back in lockstep; a success starts the series over.

use std::fmt::Display;
use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;

/// The first wait's bound when reconnecting.
pub const INITIAL_WAIT: Duration = Duration::from_millis(100);

/// The longest wait between two attempts.
pub const MAX_WAIT: Duration = Duration::from_secs(30);

/// Exponential backoff with full jitter, reset by a success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    initial: Duration,
    cap: Duration,
    failures: u32,
}

impl Default for Backoff {
    /// [`INITIAL_WAIT`] doubling up to [`MAX_WAIT`].
    fn default() -> Self {
        Self::new(INITIAL_WAIT, MAX_WAIT)
    }
}

impl Backoff {
    /// Waits bounded by `initial`, then twice that, and so on up to `cap`.
    pub fn new(initial: Duration, cap: Duration) -> Self {
        Self {
            initial,
            cap,
            failures: 0,
        }
    }

    /// Records a failure; returns how long to wait before the next attempt.
    pub fn failed(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let bound = self.bound();
        let micros = u64::try_from(bound.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(rand::rng().random_range(0..=micros))
    }

    /// The bound of the wait after the failures so far.
    pub fn bound(&self) -> Duration {
        let doublings = self.failures.saturating_sub(1).min(31);
        self.initial.saturating_mul(1u32 << doublings).min(self.cap)
    }

    /// Records a success: the next failure waits the shortest again. Returns how many
    /// failures in a row there had been.
    pub fn succeeded(&mut self) -> u32 {
        std::mem::take(&mut self.failures)
    }

    /// Failures in a row so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

/// One reconnecting loop: its backoff, when it may try next, and the log lines of its
/// state changes (reachable → unreachable → reachable).
#[derive(Debug)]
pub struct Reconnect {
    /// What is being reached, for the log (`"the mirror database (listening for changes)"`).
    what: &'static str,
    backoff: Backoff,
    /// When the first failure of the current outage happened.
    down_since: Option<Instant>,
    /// No attempt before this.
    next_attempt: Instant,
}

impl Reconnect {
    pub fn new(what: &'static str) -> Self {
        Self::with_backoff(what, Backoff::default())
    }

    pub fn with_backoff(what: &'static str, backoff: Backoff) -> Self {
        Self {
            what,
            backoff,
            down_since: None,
            next_attempt: Instant::now(),
        }
    }

    /// Whether an attempt may be made now.
    pub fn may_attempt(&self) -> bool {
        Instant::now() >= self.next_attempt
    }

    /// When the next attempt may be made.
    pub fn next_attempt(&self) -> Instant {
        self.next_attempt
    }

    /// Whether the last attempt failed.
    pub fn is_down(&self) -> bool {
        self.down_since.is_some()
    }

    /// Records a failed attempt and schedules the next. The first failure of an outage is
    /// logged as a warning with its error; the ones after it only at debug level.
    pub fn failed(&mut self, error: &dyn Display) -> Duration {
        let wait = self.backoff.failed();
        self.next_attempt = Instant::now() + wait;
        if self.down_since.is_none() {
            self.down_since = Some(Instant::now());
            tracing::warn!(
                %error,
                max_wait = ?self.backoff.cap,
                "cannot reach {}; trying again with backoff",
                self.what
            );
        } else {
            tracing::debug!(%error, attempts = self.backoff.failures(), ?wait, "still cannot reach {}", self.what);
        }
        wait
    }

    /// Records a successful attempt; logs the end of an outage, if there was one.
    pub fn succeeded(&mut self) {
        let failures = self.backoff.succeeded();
        self.next_attempt = Instant::now();
        if let Some(since) = self.down_since.take() {
            tracing::info!(
                attempts = failures + 1,
                down_for = ?since.elapsed(),
                "reached {} again",
                self.what
            );
        }
    }

    /// The next attempt may be made at once (what was reached has just been lost, and
    /// the first try to reach it again should not wait).
    pub fn attempt_now(&mut self) {
        self.next_attempt = Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap_and_start_over_after_a_success() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let mut bounds = Vec::new();
        for _ in 0..6 {
            let wait = backoff.failed();
            assert!(wait <= backoff.bound());
            bounds.push(backoff.bound().as_millis());
        }
        assert_eq!(bounds, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(backoff.succeeded(), 6);
        backoff.failed();
        assert_eq!(backoff.bound(), Duration::from_millis(100));
    }

    #[test]
    fn waits_are_spread_over_their_whole_range() {
        let mut backoff = Backoff::new(Duration::from_secs(30), Duration::from_secs(30));
        let waits: Vec<Duration> = (0..200).map(|_| backoff.failed()).collect();
        assert!(waits.iter().any(|w| *w < Duration::from_secs(10)));
        assert!(waits.iter().any(|w| *w > Duration::from_secs(20)));
    }

    #[test]
    fn an_outage_is_one_state_until_a_success() {
        let mut reconnect = Reconnect::new("the test database");
        assert!(reconnect.may_attempt() && !reconnect.is_down());
        let wait = reconnect.failed(&"connection refused");
        assert!(reconnect.is_down());
        assert!(reconnect.next_attempt() <= Instant::now() + wait);
        reconnect.failed(&"connection refused");
        reconnect.succeeded();
        assert!(!reconnect.is_down() && reconnect.may_attempt());
    }
}
