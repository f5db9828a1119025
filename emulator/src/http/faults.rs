//! Misbehaviour on demand: added latency, failures with a chosen status and `errorCode`,
//! and connections closed without a response. Each rule applies to the requests that
//! match its method and path pattern; failures and drops run out after `count` requests.

use std::time::Duration;

use axum::http::StatusCode;
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::error::RestError;

/// Which requests a rule applies to. Both parts are optional; a missing part matches all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestMatcher {
    /// `GET`, `PATCH`, ... (any case).
    #[serde(default)]
    pub method: Option<String>,
    /// A path pattern where `*` stands for any run of characters, including `/`, e.g.
    /// `/services/data/*/query*`. The query string is not part of the path.
    #[serde(default)]
    pub path: Option<String>,
}

impl RequestMatcher {
    pub fn matches(&self, method: &str, path: &str) -> bool {
        self.method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && self.path.as_deref().is_none_or(|p| glob_matches(p, path))
    }
}

/// Extra time before every matching request is answered: `fixed` plus a uniformly
/// random part up to `jitter`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Latency {
    #[serde(default)]
    pub fixed_ms: u64,
    #[serde(default)]
    pub jitter_ms: u64,
    #[serde(flatten)]
    pub matcher: RequestMatcher,
}

/// Answer the next `count` matching requests with `status` and a Salesforce error array
/// carrying `errorCode` (and `message`, or the usual message for that code).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailureRule {
    #[serde(flatten)]
    pub matcher: RequestMatcher,
    #[serde(default = "one")]
    pub count: u32,
    pub status: u16,
    pub error_code: String,
    #[serde(default)]
    pub message: Option<String>,
}

impl FailureRule {
    /// A rule failing the next request, whatever it is, with this status and code.
    pub fn new(status: u16, error_code: &str) -> FailureRule {
        FailureRule {
            matcher: RequestMatcher::default(),
            count: 1,
            status,
            error_code: error_code.to_owned(),
            message: None,
        }
    }

    /// Fails `count` requests instead of one.
    pub fn times(mut self, count: u32) -> FailureRule {
        self.count = count;
        self
    }

    /// Restricts the rule to one method (`None` for any) and a path pattern.
    pub fn matching(mut self, method: Option<&str>, path: &str) -> FailureRule {
        self.matcher = RequestMatcher {
            method: method.map(str::to_owned),
            path: Some(path.to_owned()),
        };
        self
    }

    fn error(&self) -> RestError {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let message = self
            .message
            .clone()
            .unwrap_or_else(|| usual_message(&self.error_code).to_owned());
        RestError::new(status, &self.error_code, message)
    }
}

/// Close the connection of the next `count` matching requests without answering.
///
/// Without `afterMs` the request is dropped unread: Salesforce never acts on it. With it,
/// the request is carried out as received, and the connection is closed `afterMs`
/// milliseconds after it arrived, whether or not the work is done: the client has sent its
/// request and never learns what became of it (a connection cut on the way, a proxy's idle
/// timeout), while Salesforce goes on, as it does with a request whose client stopped
/// waiting.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DropRule {
    #[serde(flatten)]
    pub matcher: RequestMatcher,
    #[serde(default = "one")]
    pub count: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_ms: Option<u64>,
}

/// How a dropped request's connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// Closed before the request is read: nothing is done.
    Unread,
    /// Closed this long after the request arrived; the request is carried out.
    After(Duration),
}

fn one() -> u32 {
    1
}

/// The message Salesforce sends with each error code a test is likely to inject.
fn usual_message(error_code: &str) -> &'static str {
    match error_code {
        "SERVER_UNAVAILABLE" => "Server temporarily unavailable. Please try again later.",
        "UNABLE_TO_LOCK_ROW" => "unable to obtain exclusive access to this record",
        "REQUEST_LIMIT_EXCEEDED" => "TotalRequests Limit exceeded.",
        "INVALID_SESSION_ID" => "Session expired or invalid",
        "QUERY_TIMEOUT" => "Your query request was running for too long.",
        _ => {
            "An unexpected error occurred. Please include this ErrorId if you contact \
             support: 1047206130-81342 (-1229526741)"
        }
    }
}

/// The active fault rules.
#[derive(Debug, Default)]
pub struct Faults {
    latency: Option<Latency>,
    failures: Vec<FailureRule>,
    drops: Vec<DropRule>,
}

/// The fault rules in force, as the admin API reports them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultsView {
    pub latency: Option<Latency>,
    pub failures: Vec<FailureRule>,
    pub drops: Vec<DropRule>,
}

impl Faults {
    pub fn set_latency(&mut self, latency: Option<Latency>) {
        self.latency = latency;
    }

    pub fn add_failure(&mut self, rule: FailureRule) {
        if rule.count > 0 {
            self.failures.push(rule);
        }
    }

    pub fn add_drop(&mut self, rule: DropRule) {
        if rule.count > 0 {
            self.drops.push(rule);
        }
    }

    pub fn clear(&mut self) {
        *self = Faults::default();
    }

    pub fn view(&self) -> FaultsView {
        FaultsView {
            latency: self.latency.clone(),
            failures: self.failures.clone(),
            drops: self.drops.clone(),
        }
    }

    /// The delay to add before answering this request, if any.
    pub fn delay_for(&self, method: &str, path: &str) -> Option<Duration> {
        let latency = self.latency.as_ref()?;
        if !latency.matcher.matches(method, path) {
            return None;
        }
        let jitter = if latency.jitter_ms > 0 {
            rand::rng().random_range(0..=latency.jitter_ms)
        } else {
            0
        };
        Some(Duration::from_millis(latency.fixed_ms + jitter))
    }

    /// Uses up one matching failure rule, returning the error to answer with.
    pub fn take_failure(&mut self, method: &str, path: &str) -> Option<RestError> {
        let i = self
            .failures
            .iter()
            .position(|r| r.matcher.matches(method, path))?;
        let error = self.failures[i].error();
        self.failures[i].count -= 1;
        if self.failures[i].count == 0 {
            self.failures.remove(i);
        }
        Some(error)
    }

    /// Uses up one matching drop rule: how this request's connection must end, if it must.
    pub fn take_drop(&mut self, method: &str, path: &str) -> Option<Dropped> {
        let i = self
            .drops
            .iter()
            .position(|r| r.matcher.matches(method, path))?;
        let dropped = match self.drops[i].after_ms {
            Some(ms) => Dropped::After(Duration::from_millis(ms)),
            None => Dropped::Unread,
        };
        self.drops[i].count -= 1;
        if self.drops[i].count == 0 {
            self.drops.remove(i);
        }
        Some(dropped)
    }
}

/// `*` matches any run of characters (including none); everything else matches itself.
fn glob_matches(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        // No `*` at all: the whole text must have been the prefix.
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_across_segments() {
        assert!(glob_matches(
            "/services/data/*/query*",
            "/services/data/v62.0/query"
        ));
        assert!(glob_matches(
            "/services/data/*/query*",
            "/services/data/v62.0/query/0r8xx-200"
        ));
        assert!(!glob_matches(
            "/services/data/*/query*",
            "/services/data/v62.0/sobjects"
        ));
        assert!(glob_matches("*", "/anything"));
        assert!(glob_matches("/exact", "/exact"));
        assert!(!glob_matches("/exact", "/exact/more"));
        assert!(glob_matches("*/limits", "/services/data/v62.0/limits"));
        assert!(!glob_matches("a*a", "a"));
    }

    #[test]
    fn failures_run_out_after_count() {
        let mut faults = Faults::default();
        faults.add_failure(
            FailureRule::new(503, "SERVER_UNAVAILABLE")
                .times(2)
                .matching(Some("get"), "/services/data/*/query*"),
        );
        assert!(
            faults
                .take_failure("POST", "/services/data/v62.0/query")
                .is_none()
        );
        let first = faults
            .take_failure("GET", "/services/data/v62.0/query")
            .unwrap();
        assert_eq!(first.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(first.error_code, "SERVER_UNAVAILABLE");
        assert!(
            faults
                .take_failure("GET", "/services/data/v62.0/query")
                .is_some()
        );
        assert!(
            faults
                .take_failure("GET", "/services/data/v62.0/query")
                .is_none()
        );
    }

    #[test]
    fn drops_run_out_and_clear_resets_everything() {
        let mut faults = Faults::default();
        faults.add_drop(DropRule {
            matcher: RequestMatcher::default(),
            count: 1,
            after_ms: None,
        });
        faults.set_latency(Some(Latency {
            fixed_ms: 5,
            jitter_ms: 0,
            matcher: RequestMatcher::default(),
        }));
        assert_eq!(
            faults.delay_for("GET", "/x"),
            Some(Duration::from_millis(5))
        );
        assert_eq!(faults.take_drop("GET", "/x"), Some(Dropped::Unread));
        assert_eq!(faults.take_drop("GET", "/x"), None);
        faults.add_drop(DropRule {
            matcher: RequestMatcher::default(),
            count: 1,
            after_ms: Some(250),
        });
        assert_eq!(
            faults.take_drop("POST", "/y"),
            Some(Dropped::After(Duration::from_millis(250)))
        );
        faults.clear();
        assert_eq!(faults.delay_for("GET", "/x"), None);
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let mut faults = Faults::default();
        faults.set_latency(Some(Latency {
            fixed_ms: 10,
            jitter_ms: 5,
            matcher: RequestMatcher::default(),
        }));
        for _ in 0..50 {
            let d = faults.delay_for("GET", "/").unwrap();
            assert!((10..=15).contains(&d.as_millis()));
        }
    }
}
