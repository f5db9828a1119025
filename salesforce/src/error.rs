//! Everything that can go wrong talking to Salesforce, kept in Salesforce's own terms.
//!
//! REST errors arrive as an array of `{message, errorCode, fields?}`; per-record results
//! (create, sObject Collections) carry `{statusCode, message, fields}`; the token endpoint
//! answers `{error, error_description}`; Salesforce's edge can answer with an HTML page.
//! Each keeps what Salesforce said, and [`Error::class`] sorts them the way reference §3.3
//! does: retry, do not retry, re-authenticate, or stop for the daily limit.

use std::fmt;

use reqwest::{Method, StatusCode};
use serde::{Deserialize, Deserializer, Serialize};

use crate::auth::AuthFlow;
use crate::bulk::JobState;

/// This crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One entry of a REST error array: `{"message": …, "errorCode": …, "fields": […]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// Salesforce's `errorCode`, such as `INVALID_FIELD` or `REQUEST_LIMIT_EXCEEDED`.
    #[serde(rename = "errorCode")]
    pub error_code: String,
    /// The human-readable `message`.
    #[serde(default)]
    pub message: String,
    /// The `fields` the error is about; Salesforce often leaves it out.
    #[serde(default, deserialize_with = "null_as_default")]
    pub fields: Vec<String>,
}

/// One error inside a per-record save result: `{"statusCode": …, "message": …, "fields": […]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordError {
    /// Salesforce's `statusCode`, such as `REQUIRED_FIELD_MISSING`.
    #[serde(rename = "statusCode")]
    pub status_code: String,
    /// The human-readable `message`.
    #[serde(default)]
    pub message: String,
    /// The `fields` the error is about.
    #[serde(default, deserialize_with = "null_as_default")]
    pub fields: Vec<String>,
}

/// The record-level code Salesforce gives every record that was valid but rolled back
/// because another record in an `allOrNone` request failed.
pub const ALL_OR_NONE_OPERATION_ROLLED_BACK: &str = "ALL_OR_NONE_OPERATION_ROLLED_BACK";

/// Record lock contention: the request failed as a whole and may succeed if sent again.
pub const UNABLE_TO_LOCK_ROW: &str = "UNABLE_TO_LOCK_ROW";

/// The code a Composite request under `allOrNone` gives every subrequest other than the
/// one that failed: it was rolled back, or never run.
pub const PROCESSING_HALTED: &str = "PROCESSING_HALTED";

/// What Salesforce answers for a resource that does not exist, a Bulk API job among them.
pub const NOT_FOUND: &str = "NOT_FOUND";

/// What Bulk API 2.0 answers (412) for the results of a query job that is not `JobComplete`.
pub const JOB_NOT_COMPLETE: &str = "JOB_NOT_COMPLETE";

/// The request and path an error is about. The path never includes the query string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The HTTP method.
    pub method: Method,
    /// The URL path, without query.
    pub path: String,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

/// How a caller should react to an error (reference §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Transient: sending the same request later may succeed (transport failures, 5xx,
    /// `UNABLE_TO_LOCK_ROW`, the concurrent-request limit).
    Retryable,
    /// The same request will fail the same way (validation errors, most 4xx).
    NotRetryable,
    /// Credentials or session are not accepted (token errors, `INVALID_SESSION_ID`).
    Auth,
    /// The org's daily API allocation is used up (`REQUEST_LIMIT_EXCEEDED`, `TotalRequests`):
    /// wait for the rolling 24-hour window, do not retry.
    Limit,
}

/// An error from the Salesforce client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The token endpoint refused to issue a token: `{error, error_description}`.
    #[error("{flow} authentication failed ({status}): {error}: {description}")]
    Auth {
        /// The OAuth flow that was refused.
        flow: AuthFlow,
        /// The HTTP status of the token response.
        status: StatusCode,
        /// OAuth's `error`, such as `invalid_grant`.
        error: String,
        /// OAuth's `error_description`, such as `authentication failure`.
        description: String,
    },

    /// Salesforce answered with its JSON error array.
    #[error("{endpoint} answered {status}: {}", DisplayErrors(errors))]
    Api {
        /// The request that failed.
        endpoint: Endpoint,
        /// The HTTP status.
        status: StatusCode,
        /// Every error in the array, in order.
        errors: Vec<ApiError>,
    },

    /// An error status whose body is not Salesforce's JSON error array, such as an HTML page
    /// from Salesforce's edge (502, 503, 420) or an empty body.
    #[error("{endpoint} answered {status} with a {content_type} body: {excerpt}")]
    UnexpectedBody {
        /// The request that failed.
        endpoint: Endpoint,
        /// The HTTP status.
        status: StatusCode,
        /// The response's `Content-Type`, or `non-JSON` when it had none.
        content_type: String,
        /// The start of the body with whitespace collapsed, or `(empty)`.
        excerpt: String,
    },

    /// The request did not complete: connection refused, TLS failure, timeout, reset.
    #[error("{endpoint} failed: {}", RootCause(source))]
    Transport {
        /// The request that failed.
        endpoint: Endpoint,
        /// The underlying failure, without its URL.
        #[source]
        source: reqwest::Error,
    },

    /// A success response whose JSON did not have the documented shape.
    #[error("{endpoint}: the {what} did not parse: {source}")]
    Decode {
        /// The request whose answer did not parse.
        endpoint: Endpoint,
        /// What was being read, such as `query page`.
        what: &'static str,
        /// The parser's complaint.
        #[source]
        source: serde_json::Error,
    },

    /// A response that breaks the documented protocol in some other way, such as an
    /// unexpected status or a `nextRecordsUrl` that points to another host.
    #[error("{endpoint}: {detail}")]
    Protocol {
        /// The request whose answer was wrong.
        endpoint: Endpoint,
        /// What was wrong.
        detail: String,
    },

    /// An upsert by external id matched several records (300 Multiple Choices); nothing was
    /// written.
    #[error("upsert of {sobject} by {field} matched {} records", records.len())]
    MultipleMatches {
        /// The object.
        sobject: String,
        /// The external id field.
        field: String,
        /// The URLs of the matching records, as Salesforce listed them.
        records: Vec<String>,
    },

    /// The client's configuration cannot work (bad URL, certificate or private key).
    #[error("invalid Salesforce configuration: {0}")]
    Config(String),

    /// The request was refused before it was sent (bad object name, too many records).
    #[error("invalid Salesforce request: {0}")]
    InvalidRequest(String),

    /// An ingest upload's CSV could not be made: its temporary file could not be written,
    /// or what it is made from could not be read (a full or failing disk). Nothing of it
    /// was sent.
    #[error("cannot make an ingest upload's CSV: {source}")]
    UploadSpool {
        #[source]
        source: std::io::Error,
    },

    /// A Composite request over Salesforce's limits (reference §4.2), refused before it was
    /// sent.
    #[error(
        "a Composite request takes at most {max_subrequests} subrequests, of which at most \
         {max_collections} sObject Collections or queries; this one has {subrequests}, of \
         which {collections}"
    )]
    CompositeLimit {
        /// Subrequests in the request.
        subrequests: usize,
        /// Of them, sObject Collections and query subrequests.
        collections: usize,
        /// Salesforce's limit on subrequests.
        max_subrequests: usize,
        /// Salesforce's limit on sObject Collections and query subrequests.
        max_collections: usize,
    },

    /// A Bulk API 2.0 job ended `Failed` or `Aborted`; its results cannot be had. A new job
    /// may succeed where a `Failed` one did not (Salesforce's own retries were used up).
    #[error(
        "Bulk API job {job_id} ended {state}: {}",
        error_message.as_deref().unwrap_or("(no errorMessage)")
    )]
    BulkJob {
        /// The job's `id`.
        job_id: String,
        /// `Failed` or `Aborted`.
        state: JobState,
        /// The job's `errorMessage`, if Salesforce gave one.
        error_message: Option<String>,
    },

    /// A Bulk API result page held another number of records than its
    /// `Sforce-NumberOfRecords` announced: what was read of it is not the page.
    #[error(
        "Bulk API job {job_id}: the result page at locator {} announced {number_of_records} records and held {counted}",
        locator.as_deref().unwrap_or("(first page)")
    )]
    BulkPageCount {
        /// The job's `id`.
        job_id: String,
        /// The locator the page was asked for with; `None` for the first page.
        locator: Option<String>,
        /// The page's `Sforce-NumberOfRecords`.
        number_of_records: u64,
        /// The CSV records its body held, the header row left out.
        counted: u64,
    },

    /// A Bulk API query job's result pages held another number of records in all than the
    /// job's `numberRecordsProcessed`.
    #[error(
        "Bulk API job {job_id} processed {number_records_processed} records and its results held {counted}"
    )]
    BulkTotalCount {
        /// The job's `id`.
        job_id: String,
        /// The job's `numberRecordsProcessed`.
        number_records_processed: u64,
        /// The records its result pages held.
        counted: u64,
    },

    /// Salesforce's CometD server refused a Bayeux request in a way no reconnect fixes:
    /// `error` as it wrote it, such as `400::The channel you requested to subscribe to does
    /// not exist`, or a `401::Authentication invalid` right after a new login.
    #[error("{endpoint}: {channel} refused: {error}")]
    Bayeux {
        /// The CometD endpoint.
        endpoint: Endpoint,
        /// The meta channel, such as `/meta/subscribe`.
        channel: String,
        /// The Bayeux `error`, with Salesforce's failure reason when it gave one.
        error: String,
    },

    /// The replay id a subscription asked for is invalid or no longer retained (the
    /// documented `400::The replayId {X} you provided was invalid…`). Nothing was skipped:
    /// the caller decides how to catch up.
    #[error("{channel}: replay id {replay_id} is invalid or no longer retained: {message}")]
    ReplayIdInvalid {
        /// The channel subscribed to.
        channel: String,
        /// The replay id asked for.
        replay_id: i64,
        /// Salesforce's message.
        message: String,
    },

    /// A Pub/Sub API call failed: its gRPC status, and the `error-code` trailer Salesforce
    /// adds (`sfdc.platform.eventbus.grpc.service.auth.error`, …).
    #[error("Pub/Sub API {endpoint}: {status}{}: {message}", error_code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
    PubSub {
        /// The endpoint and method, such as `https://api.pubsub.salesforce.com:7443 Subscribe`.
        endpoint: String,
        /// The gRPC status code, such as `Unauthenticated`.
        status: String,
        /// The `error-code` trailer, when there was one.
        error_code: Option<String>,
        /// The status message.
        message: String,
    },

    /// A Pub/Sub event whose payload does not read as its schema says.
    #[error("{channel}: the event with replay id {replay_id} does not decode: {source}")]
    EventPayload {
        /// The topic.
        channel: String,
        /// The event's replay id.
        replay_id: i64,
        /// What went wrong.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// A subscription has ended: closed, replaced by a newer subscription of its channel,
    /// or after an earlier error.
    #[error("the subscription to {channel} has ended: {detail}")]
    SubscriptionEnded {
        /// The channel.
        channel: String,
        /// Why.
        detail: String,
    },
}

impl Error {
    /// How a caller should react to this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::Auth { .. } => ErrorClass::Auth,
            Error::Api { status, errors, .. } => classify_api(*status, errors),
            Error::UnexpectedBody { status, .. } => classify_status(*status),
            Error::Transport { .. } => ErrorClass::Retryable,
            Error::Decode { .. }
            | Error::Protocol { .. }
            | Error::MultipleMatches { .. }
            | Error::Config(_)
            | Error::InvalidRequest(_)
            | Error::UploadSpool { .. }
            | Error::CompositeLimit { .. }
            | Error::BulkJob { .. }
            | Error::BulkPageCount { .. }
            | Error::BulkTotalCount { .. }
            | Error::ReplayIdInvalid { .. }
            | Error::EventPayload { .. }
            | Error::SubscriptionEnded { .. } => ErrorClass::NotRetryable,
            Error::PubSub { status, .. } if status == "Unauthenticated" => ErrorClass::Auth,
            Error::PubSub { status, .. } if status == "Unavailable" => ErrorClass::Retryable,
            Error::PubSub { .. } => ErrorClass::NotRetryable,
            // A 401 may come inside another refusal: `403::Handshake denied (401::…)`.
            Error::Bayeux { error, .. } if error.contains("401::") => ErrorClass::Auth,
            Error::Bayeux { .. } => ErrorClass::NotRetryable,
        }
    }

    /// Whether the same request may succeed if sent again.
    pub fn is_retryable(&self) -> bool {
        self.class() == ErrorClass::Retryable
    }

    /// The HTTP status Salesforce answered with, if it answered.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Error::Auth { status, .. }
            | Error::Api { status, .. }
            | Error::UnexpectedBody { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The REST error array, empty for errors that did not come with one.
    pub fn api_errors(&self) -> &[ApiError] {
        match self {
            Error::Api { errors, .. } => errors,
            _ => &[],
        }
    }

    /// The first `errorCode` of a REST error.
    pub fn error_code(&self) -> Option<&str> {
        self.api_errors().first().map(|e| e.error_code.as_str())
    }

    /// Whether Salesforce certainly did not carry out the request: the connection was never
    /// made, the edge could not route it (420, 502, 503), it was throttled (429), or it was
    /// refused for lock contention or a request limit. Only then may a request that is not
    /// idempotent (a create) be sent again.
    pub fn not_acted_on(&self) -> bool {
        match self {
            Error::Transport { .. } => self.is_connect(),
            Error::Api { status, errors, .. } => {
                matches!(status.as_u16(), 420 | 429 | 502 | 503)
                    || errors.iter().any(|e| {
                        e.error_code == UNABLE_TO_LOCK_ROW
                            || e.error_code == "REQUEST_LIMIT_EXCEEDED"
                    })
            }
            Error::UnexpectedBody { status, .. } => {
                matches!(status.as_u16(), 420 | 429 | 502 | 503)
            }
            _ => false,
        }
    }

    /// Whether Salesforce may have carried out the request this error ended, so that the
    /// caller cannot say it was not. It may have after the request may have left: a
    /// connection cut while waiting, a timeout, a 500 or 504, an answer that could not be
    /// read. It did not when the request never left ([`Error::not_acted_on`], a login or
    /// a request refused before sending), or when Salesforce answered that it refused it
    /// (any other 4xx).
    pub fn may_have_taken_effect(&self) -> bool {
        if self.not_acted_on() {
            return false;
        }
        match self {
            Error::Auth { .. }
            | Error::Config(_)
            | Error::InvalidRequest(_)
            | Error::UploadSpool { .. }
            | Error::CompositeLimit { .. }
            | Error::MultipleMatches { .. }
            | Error::BulkJob { .. }
            | Error::Bayeux { .. }
            | Error::ReplayIdInvalid { .. }
            | Error::EventPayload { .. }
            | Error::SubscriptionEnded { .. } => false,
            Error::PubSub { .. } => true,
            Error::Api { status, .. } | Error::UnexpectedBody { status, .. } => {
                !status.is_client_error()
            }
            Error::Transport { .. }
            | Error::Decode { .. }
            | Error::Protocol { .. }
            | Error::BulkPageCount { .. }
            | Error::BulkTotalCount { .. } => true,
        }
    }

    /// Whether the request timed out (connect or response).
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Transport { source, .. } if source.is_timeout())
    }

    /// Whether the connection could not be opened, so Salesforce never saw the request.
    pub fn is_connect(&self) -> bool {
        matches!(self, Error::Transport { source, .. } if source.is_connect())
    }

    /// Whether this is a 401 `INVALID_SESSION_ID`: the access token expired or was revoked.
    pub fn is_invalid_session(&self) -> bool {
        matches!(self, Error::Api { status, errors, .. }
            if *status == StatusCode::UNAUTHORIZED
                && errors.iter().any(|e| e.error_code == "INVALID_SESSION_ID"))
    }

    /// Whether a subscription's replay id is invalid or expired ([`Error::ReplayIdInvalid`]):
    /// the events since it may be gone, and the caller must catch up another way.
    pub fn is_replay_id_invalid(&self) -> bool {
        matches!(self, Error::ReplayIdInvalid { .. })
    }

    /// Whether a Bulk API job this error is about no longer exists: 404 `NOT_FOUND` for a job
    /// that was deleted, expired (seven days after it ended) or never was. Its locators are
    /// gone with it; a caller that still wants the records starts a new job.
    pub fn is_job_gone(&self) -> bool {
        matches!(self, Error::Api { status, errors, .. }
            if *status == StatusCode::NOT_FOUND
                || errors.iter().any(|e| e.error_code == NOT_FOUND))
    }

    /// Whether this is 412 `JOB_NOT_COMPLETE`: results asked of a Bulk API job that is not
    /// `JobComplete` (yet, or any more in Salesforce's view).
    pub fn is_job_not_complete(&self) -> bool {
        matches!(self, Error::Api { status, errors, .. }
            if *status == StatusCode::PRECONDITION_FAILED
                || errors.iter().any(|e| e.error_code == JOB_NOT_COMPLETE))
    }

    /// The state a Bulk API job ended in, for [`Error::BulkJob`].
    pub fn bulk_job_state(&self) -> Option<JobState> {
        match self {
            Error::BulkJob { state, .. } => Some(*state),
            _ => None,
        }
    }

    /// Builds the error for a response with an error status.
    pub(crate) fn from_response(
        endpoint: Endpoint,
        status: StatusCode,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Self {
        if let Some(errors) = parse_error_body(body) {
            return Error::Api {
                endpoint,
                status,
                errors,
            };
        }
        Error::UnexpectedBody {
            endpoint,
            status,
            content_type: content_type.unwrap_or("non-JSON").to_owned(),
            excerpt: excerpt(body),
        }
    }
}

/// Reads Salesforce's error array; a lone error object is accepted too, as some resources
/// (and proxies in front of Salesforce) send one.
fn parse_error_body(body: &[u8]) -> Option<Vec<ApiError>> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Body {
        Many(Vec<ApiError>),
        One(ApiError),
    }
    match serde_json::from_slice::<Body>(body).ok()? {
        Body::Many(errors) if !errors.is_empty() => Some(errors),
        Body::Many(_) => None,
        Body::One(error) => Some(vec![error]),
    }
}

fn classify_api(status: StatusCode, errors: &[ApiError]) -> ErrorClass {
    for error in errors {
        match error.error_code.as_str() {
            "INVALID_SESSION_ID" => return ErrorClass::Auth,
            "REQUEST_LIMIT_EXCEEDED" if is_concurrency_limit(&error.message) => {
                return ErrorClass::Retryable;
            }
            "REQUEST_LIMIT_EXCEEDED" => return ErrorClass::Limit,
            UNABLE_TO_LOCK_ROW | "SERVER_UNAVAILABLE" => return ErrorClass::Retryable,
            _ => {}
        }
    }
    classify_status(status)
}

/// `REQUEST_LIMIT_EXCEEDED` means two things: the daily allocation (`TotalRequests Limit
/// exceeded.`), which no retry will fix today, and the long-running concurrent-request limit
/// (`ConcurrentPerOrgLongTxn Limit exceeded.`), which clears when other requests finish.
fn is_concurrency_limit(message: &str) -> bool {
    message.contains("ConcurrentPerOrgLongTxn") || message.contains("ConcurrentRequests")
}

fn classify_status(status: StatusCode) -> ErrorClass {
    match status.as_u16() {
        401 => ErrorClass::Auth,
        // 420: Salesforce's edge has no route to the instance right now; 429: throttled.
        420 | 429 => ErrorClass::Retryable,
        500..=599 => ErrorClass::Retryable,
        _ => ErrorClass::NotRetryable,
    }
}

/// The start of a non-JSON body, for an error message: an HTML page's `<title>` when it has
/// one, else its first characters with whitespace collapsed.
fn excerpt(body: &[u8]) -> String {
    const MAX_CHARS: usize = 200;
    let text = String::from_utf8_lossy(body);
    let lower = text.to_ascii_lowercase();
    let title = lower
        .find("<title>")
        .map(|start| start + "<title>".len())
        .and_then(|start| {
            lower[start..]
                .find("</title>")
                .map(|len| &text[start..start + len])
        });
    let source = title.unwrap_or(&text);
    let collapsed: String = source.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.is_empty() {
        return "(empty)".to_owned();
    }
    match collapsed.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("{}…", &collapsed[..cut]),
        None => collapsed,
    }
}

/// The innermost cause of an error ("Connection refused", "operation timed out"): a
/// transport error's own message ("error sending request") rarely says what went wrong.
struct RootCause<'a>(&'a dyn std::error::Error);

impl fmt::Display for RootCause<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut error = self.0;
        while let Some(cause) = error.source() {
            error = cause;
        }
        write!(f, "{error}")
    }
}

/// `errorCode: message [fields]; …` for an error array.
struct DisplayErrors<'a>(&'a [ApiError]);

impl fmt::Display for DisplayErrors<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", error.error_code, error.message)?;
            if !error.fields.is_empty() {
                write!(f, " [{}]", error.fields.join(", "))?;
            }
        }
        Ok(())
    }
}

/// Salesforce sends `"fields": null` in places; treat it as absent.
pub(crate) fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests;
