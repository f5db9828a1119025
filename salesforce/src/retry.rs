//! When to send a failed request again, and how long to wait first.
//!
//! Exponential backoff with full jitter (each wait is uniform in `[0, min(cap, base·2ⁿ)]`),
//! so that many clients hit by the same outage do not come back in lockstep. Retries are
//! bounded by a number of attempts and by the total time spent failing.
//!
//! Only transient failures are retried (see [`crate::ErrorClass::Retryable`]). A request that
//! is not idempotent (a create) is retried only when the failure proves Salesforce did not
//! act on it; after a timeout or a 500 a create may have happened, and sending it again could
//! create the record twice.

use std::time::Duration;

use rand::Rng;

use crate::error::{Error, UNABLE_TO_LOCK_ROW};

/// How often and how patiently to retry transient failures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; 1 disables retries.
    pub max_attempts: u32,
    /// The cap of the first wait; each later cap doubles.
    pub initial_backoff: Duration,
    /// The largest cap of any wait.
    pub max_backoff: Duration,
    /// No retry starts after this much time has passed since the first attempt. Time spent
    /// queued in the rate limiter does not count: the bound is on time spent failing.
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    /// Five attempts, waits capped at 1 s, 2 s, 4 s, 8 s, within a minute. Lock contention
    /// usually clears within seconds; an outage longer than a minute is better surfaced.
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(20),
            max_elapsed: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn never() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The wait before the retry that follows `failed_attempts` failures, or `None` when the
    /// policy's attempts or time are used up. `elapsed` is the time spent so far.
    pub(crate) fn next_delay(&self, failed_attempts: u32, elapsed: Duration) -> Option<Duration> {
        if failed_attempts >= self.max_attempts {
            return None;
        }
        let delay = self.backoff(failed_attempts);
        (elapsed + delay <= self.max_elapsed).then_some(delay)
    }

    /// Full jitter: uniform in `[0, min(max_backoff, initial_backoff · 2^(failed_attempts-1))]`.
    fn backoff(&self, failed_attempts: u32) -> Duration {
        let exponent = failed_attempts.saturating_sub(1).min(31);
        let cap = self
            .initial_backoff
            .saturating_mul(1u32 << exponent)
            .min(self.max_backoff);
        let cap_micros = u64::try_from(cap.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(rand::rng().random_range(0..=cap_micros))
    }
}

/// Whether a failed request should be sent again, given whether sending it twice is harmless.
pub(crate) fn should_retry(error: &Error, idempotent: bool) -> bool {
    error.is_retryable() && (idempotent || not_acted_on(error))
}

/// Failures after which Salesforce certainly did not perform the request: the connection was
/// never made, the edge could not route it, the request was refused for lock contention or
/// concurrency, or the service was unavailable.
fn not_acted_on(error: &Error) -> bool {
    match error {
        Error::Transport { .. } => error.is_connect(),
        Error::Api { status, errors, .. } => {
            matches!(status.as_u16(), 420 | 429 | 502 | 503)
                || errors.iter().any(|e| {
                    e.error_code == UNABLE_TO_LOCK_ROW || e.error_code == "REQUEST_LIMIT_EXCEEDED"
                })
        }
        Error::UnexpectedBody { status, .. } => matches!(status.as_u16(), 420 | 429 | 502 | 503),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use reqwest::{Method, StatusCode};

    use super::*;
    use crate::error::Endpoint;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(250),
            max_elapsed: Duration::from_secs(10),
        }
    }

    fn api_error(status: u16, code: &str, message: &str) -> Error {
        let body = format!(r#"[{{"errorCode":"{code}","message":"{message}"}}]"#);
        Error::from_response(
            Endpoint {
                method: Method::POST,
                path: "/x".into(),
            },
            StatusCode::from_u16(status).unwrap(),
            None,
            body.as_bytes(),
        )
    }

    #[test]
    fn waits_stay_within_the_doubling_cap() {
        let policy = policy();
        for _ in 0..200 {
            assert!(policy.next_delay(1, Duration::ZERO).unwrap() <= Duration::from_millis(100));
            assert!(policy.next_delay(2, Duration::ZERO).unwrap() <= Duration::from_millis(200));
            assert!(policy.next_delay(3, Duration::ZERO).unwrap() <= Duration::from_millis(250));
        }
    }

    #[test]
    fn jitter_spreads_the_waits() {
        let policy = policy();
        let waits: std::collections::HashSet<_> = (0..50)
            .map(|_| policy.next_delay(3, Duration::ZERO))
            .collect();
        assert!(waits.len() > 10, "waits are not spread: {waits:?}");
    }

    #[test]
    fn bounded_by_attempts_and_time() {
        let policy = policy();
        assert!(policy.next_delay(3, Duration::ZERO).is_some());
        assert_eq!(policy.next_delay(4, Duration::ZERO), None);
        assert_eq!(policy.next_delay(1, Duration::from_secs(11)), None);
        assert_eq!(RetryPolicy::never().next_delay(1, Duration::ZERO), None);
    }

    #[test]
    fn huge_attempt_counts_do_not_overflow() {
        let policy = RetryPolicy {
            max_attempts: u32::MAX,
            ..policy()
        };
        assert!(policy.next_delay(1000, Duration::ZERO).unwrap() <= Duration::from_millis(250));
    }

    #[test]
    fn what_is_retried() {
        assert!(should_retry(
            &api_error(503, "SERVER_UNAVAILABLE", "down"),
            false
        ));
        assert!(should_retry(
            &api_error(400, UNABLE_TO_LOCK_ROW, "locked"),
            false
        ));
        assert!(should_retry(
            &api_error(
                403,
                "REQUEST_LIMIT_EXCEEDED",
                "ConcurrentPerOrgLongTxn Limit exceeded."
            ),
            false
        ));
        assert!(!should_retry(
            &api_error(
                403,
                "REQUEST_LIMIT_EXCEEDED",
                "TotalRequests Limit exceeded."
            ),
            true
        ));
        assert!(!should_retry(
            &api_error(400, "FIELD_CUSTOM_VALIDATION_EXCEPTION", "no"),
            true
        ));
        assert!(!should_retry(
            &api_error(401, "INVALID_SESSION_ID", "expired"),
            true
        ));
    }

    #[test]
    fn a_500_is_retried_only_when_the_request_is_idempotent() {
        let error = api_error(500, "UNKNOWN_EXCEPTION", "oops");
        assert!(should_retry(&error, true));
        assert!(!should_retry(&error, false));
    }
}
