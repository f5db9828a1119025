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

use crate::error::Error;

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
    error.is_retryable() && (idempotent || error.not_acted_on())
}

#[cfg(test)]
mod tests {
    use reqwest::{Method, StatusCode};

    use super::*;
    use crate::error::{Endpoint, UNABLE_TO_LOCK_ROW};

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

    /// What a caller may tell its own client after a failed request: Salesforce answered
    /// that it did not act, or it may have.
    #[test]
    fn which_failures_may_have_taken_effect() {
        for (status, code) in [(500, "UNKNOWN_EXCEPTION"), (504, "UNKNOWN_EXCEPTION")] {
            assert!(
                api_error(status, code, "x").may_have_taken_effect(),
                "{status}"
            );
        }
        for (status, code) in [
            (400, "FIELD_CUSTOM_VALIDATION_EXCEPTION"),
            (400, UNABLE_TO_LOCK_ROW),
            (401, "INVALID_SESSION_ID"),
            (403, "REQUEST_LIMIT_EXCEEDED"),
            (404, "NOT_FOUND"),
            (429, "REQUEST_LIMIT_EXCEEDED"),
            (503, "SERVER_UNAVAILABLE"),
        ] {
            assert!(
                !api_error(status, code, "x").may_have_taken_effect(),
                "{status} {code}"
            );
        }
        assert!(!Error::InvalidRequest("too many".into()).may_have_taken_effect());
    }

    /// A timeout and a connection cut after the request left may have taken effect; a
    /// connection that never opened did not. Real sockets, real reqwest errors.
    #[tokio::test]
    async fn a_timeout_may_have_taken_effect_and_a_refused_connection_did_not() {
        let endpoint = || Endpoint {
            method: Method::POST,
            path: "/services/data/v62.0/composite".into(),
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(200))
            .build()
            .unwrap();
        // Accepts, reads, never answers.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let silent_addr = silent.local_addr().unwrap();
        let _keep = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = silent.accept().await {
                held.push(socket);
            }
        });
        let timed_out = http
            .post(format!("http://{silent_addr}/"))
            .body("{}")
            .send()
            .await
            .unwrap_err();
        let timed_out = Error::Transport {
            endpoint: endpoint(),
            source: timed_out,
        };
        assert!(timed_out.is_timeout());
        assert!(timed_out.may_have_taken_effect());
        // Accepts, then closes without answering.
        let cutting = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let cutting_addr = cutting.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = cutting.accept().await {
                let mut buffer = [0u8; 4096];
                let _ = tokio::io::AsyncReadExt::read(&mut socket, &mut buffer).await;
                drop(socket);
            }
        });
        let cut = http
            .post(format!("http://{cutting_addr}/"))
            .body("{}")
            .send()
            .await
            .unwrap_err();
        let cut = Error::Transport {
            endpoint: endpoint(),
            source: cut,
        };
        assert!(!cut.is_connect(), "{cut}");
        assert!(cut.may_have_taken_effect());
        // Nothing listens.
        let closed = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap()
        };
        let refused = http
            .post(format!("http://{closed}/"))
            .body("{}")
            .send()
            .await
            .unwrap_err();
        let refused = Error::Transport {
            endpoint: endpoint(),
            source: refused,
        };
        assert!(refused.is_connect(), "{refused}");
        assert!(!refused.may_have_taken_effect());
    }
}
