//! What the client records for `/metrics` (through the `metrics` facade, a no-op until a
//! process installs a recorder): each request sent, by kind and outcome; the time spent
//! waiting for the org's rate limiter; the org's daily usage as Salesforce reports it. The
//! org is the one unbounded label, taken from [`Config::with_org_label`].
//!
//! [`Config::with_org_label`]: crate::Config::with_org_label

use std::time::Duration;

use reqwest::StatusCode;

use crate::client::Target;
use crate::error::Error;
use crate::usage::ApiUsage;

/// The kind of API a request went to: a bounded set, from its path.
pub(crate) fn kind(target: &Target) -> &'static str {
    match target {
        Target::CometD => "streaming",
        Target::DataRoot => "versions",
        Target::Rest(segments) => rest_kind(segments.first().map(String::as_str)),
        Target::Path(path) => {
            let after_version = path
                .split('/')
                .skip_while(|segment| !segment.starts_with('v'))
                .nth(1);
            rest_kind(after_version)
        }
    }
}

fn rest_kind(first: Option<&str>) -> &'static str {
    match first {
        Some("query" | "queryAll") => "query",
        Some("jobs") => "bulk",
        Some("composite") => "composite",
        Some("limits") => "limits",
        Some("sobjects") => "sobjects",
        _ => "rest",
    }
}

/// How a request ended: `ok` (below 400), `limit` (the org's request limit),
/// `auth` (401), `client_error`, `server_error`, or `network` (no answer).
pub(crate) fn outcome(answer: Result<StatusCode, &Error>) -> &'static str {
    let status = match answer {
        Ok(status) => status,
        Err(error) => match error.status() {
            Some(status) => status,
            None => return "network",
        },
    };
    if status.as_u16() < 400 {
        return "ok";
    }
    if let Err(error) = answer
        && error.error_code() == Some("REQUEST_LIMIT_EXCEEDED")
    {
        return "limit";
    }
    match status.as_u16() {
        401 => "auth",
        429 => "limit",
        500.. => "server_error",
        _ => "client_error",
    }
}

/// One call of the Pub/Sub API (gRPC: GetTopic, GetSchema, Subscribe), bounded by a
/// timeout: kind `pubsub`, its outcome from the gRPC status.
pub(crate) fn pubsub_call<T>(
    org: &str,
    answer: &Result<Result<T, tonic::Status>, tokio::time::error::Elapsed>,
) {
    let outcome = match answer {
        Err(_) => "network",
        Ok(Ok(_)) => "ok",
        Ok(Err(status)) => grpc_outcome(status.code()),
    };
    request(org, "pubsub", outcome);
}

/// The outcome class of a gRPC status.
fn grpc_outcome(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "ok",
        Code::Unauthenticated => "auth",
        Code::ResourceExhausted => "limit",
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => "network",
        Code::Internal | Code::Unknown | Code::DataLoss | Code::Unimplemented => "server_error",
        _ => "client_error",
    }
}

/// One request sent (or that failed to be).
pub(crate) fn request(org: &str, kind: &'static str, outcome: &'static str) {
    metrics::counter!(
        "sfpg_api_requests_total",
        "org" => org.to_owned(),
        "kind" => kind,
        "outcome" => outcome
    )
    .increment(1);
}

/// Time a request waited for the org's rate limiter (a histogram: the `metrics` facade's
/// counters are whole numbers, and `_sum` is the total wait).
pub(crate) fn limiter_wait(org: &str, waited: Duration) {
    metrics::histogram!("sfpg_rate_limiter_wait_seconds", "org" => org.to_owned())
        .record(waited.as_secs_f64());
}

/// The org's daily usage, from a response's `Sforce-Limit-Info`.
#[allow(clippy::cast_precision_loss)]
pub(crate) fn daily_usage(org: &str, usage: &ApiUsage) {
    metrics::gauge!("sfpg_api_daily_usage", "org" => org.to_owned()).set(usage.api.used as f64);
    metrics::gauge!("sfpg_api_daily_allocation", "org" => org.to_owned()).set(usage.api.max as f64);
}

/// A stream subscribing again after trouble: `auth` (logged in again), `unavailable` (the
/// connection or the server failed), `handshake` (CometD asked for a new handshake).
pub(crate) fn resubscribe(org: &str, reason: &'static str) {
    metrics::counter!(
        "sfpg_cdc_resubscribes_total",
        "org" => org.to_owned(),
        "reason" => reason
    )
    .increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_come_from_the_path() {
        let rest = |segments: &[&str]| {
            kind(&Target::Rest(
                segments.iter().map(|s| (*s).to_owned()).collect(),
            ))
        };
        assert_eq!(rest(&["query"]), "query");
        assert_eq!(rest(&["jobs", "query", "750"]), "bulk");
        assert_eq!(rest(&["composite", "sobjects"]), "composite");
        assert_eq!(rest(&["sobjects", "Account", "describe"]), "sobjects");
        assert_eq!(rest(&["limits"]), "limits");
        assert_eq!(rest(&["tooling"]), "rest");
        assert_eq!(
            kind(&Target::Path(
                "/services/data/v62.0/query/01gxx-2000".to_owned()
            )),
            "query"
        );
        assert_eq!(kind(&Target::CometD), "streaming");
    }

    #[test]
    fn outcomes_are_a_few_classes() {
        assert_eq!(outcome(Ok(StatusCode::OK)), "ok");
        assert_eq!(grpc_outcome(tonic::Code::Unauthenticated), "auth");
        assert_eq!(grpc_outcome(tonic::Code::ResourceExhausted), "limit");
        assert_eq!(grpc_outcome(tonic::Code::InvalidArgument), "client_error");
        assert_eq!(outcome(Ok(StatusCode::NO_CONTENT)), "ok");
        let answer = |status: u16, body: &str| {
            let endpoint = crate::error::Endpoint {
                method: reqwest::Method::GET,
                path: "/services/data/v62.0/limits".to_owned(),
            };
            let status = StatusCode::from_u16(status).unwrap();
            Error::from_response(endpoint, status, Some("application/json"), body.as_bytes())
        };
        let limited = answer(
            403,
            r#"[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]"#,
        );
        assert_eq!(outcome(Err(&limited)), "limit");
        let expired = answer(
            401,
            r#"[{"message":"Session expired","errorCode":"INVALID_SESSION_ID"}]"#,
        );
        assert_eq!(outcome(Err(&expired)), "auth");
        let refused = answer(400, r#"[{"message":"bad","errorCode":"MALFORMED_QUERY"}]"#);
        assert_eq!(outcome(Err(&refused)), "client_error");
        assert_eq!(outcome(Err(&answer(503, "down"))), "server_error");
    }
}
