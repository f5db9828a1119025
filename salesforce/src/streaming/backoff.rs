//! How long a subscription waits before reconnecting after an outage.
//!
//! Exponential with "equal jitter": each wait is uniform in `[cap/2, cap]` with
//! `cap = min(max, initial·2ⁿ)`. Unlike the request retries' full jitter, the wait never drops
//! to zero, so a server that refuses at once is not hammered in a tight loop; the random half
//! keeps many subscribers hit by the same outage from coming back in lockstep. A successful
//! subscription resets it.

use std::time::Duration;

use rand::Rng;

/// The reconnect backoff of one subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    /// The cap of the first wait.
    pub initial: Duration,
    /// The largest cap of any wait.
    pub max: Duration,
    failures: u32,
}

impl Default for Backoff {
    /// Waits of 0.5–1 s first, doubling up to 30–60 s.
    fn default() -> Self {
        Backoff::new(Duration::from_secs(1), Duration::from_secs(60))
    }
}

impl Backoff {
    /// A backoff whose first wait is at most `initial` and no wait more than `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max,
            failures: 0,
        }
    }

    /// The wait after one more failure.
    pub fn next_wait(&mut self) -> Duration {
        let exponent = self.failures.min(31);
        self.failures = self.failures.saturating_add(1);
        let cap = self
            .initial
            .saturating_mul(1u32 << exponent)
            .min(self.max)
            .max(self.initial.min(self.max));
        let cap_micros = u64::try_from(cap.as_micros()).unwrap_or(u64::MAX);
        let half = cap_micros / 2;
        Duration::from_micros(half + rand::rng().random_range(0..=cap_micros - half))
    }

    /// The failures since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Back to the first wait, after a success.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_within_jitter_up_to_the_cap() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000));
        let caps = [100, 200, 400, 800, 1000, 1000, 1000];
        for cap in caps {
            let wait = backoff.next_wait();
            let cap = Duration::from_millis(cap);
            assert!(
                wait >= cap / 2 && wait <= cap,
                "{wait:?} not in [{cap:?}/2, {cap:?}]"
            );
        }
        assert_eq!(backoff.failures(), 7);
        backoff.reset();
        let wait = backoff.next_wait();
        assert!(wait <= Duration::from_millis(100), "{wait:?} after a reset");
    }

    #[test]
    fn jitter_spreads_the_waits() {
        let waits: std::collections::HashSet<Duration> = (0..20)
            .map(|_| Backoff::new(Duration::from_secs(1), Duration::from_secs(60)).next_wait())
            .collect();
        assert!(waits.len() > 10, "only {} distinct waits", waits.len());
    }

    #[test]
    fn many_failures_do_not_overflow() {
        let mut backoff = Backoff::default();
        for _ in 0..100 {
            assert!(backoff.next_wait() <= Duration::from_secs(60));
        }
    }
}
