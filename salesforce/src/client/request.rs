//! One API call as the operations describe it ([`ApiRequest`]), and where it goes
//! ([`Target`]).

use std::time::Duration;

use bytes::Bytes;
use reqwest::Method;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use super::Response;
use crate::error::{Error, Result};

/// Where a request goes.
pub(crate) enum Target {
    /// The CometD endpoint, `/cometd/XX.X`.
    CometD,
    /// Path segments under `/services/data/vXX.X/`, percent-encoded as needed.
    Rest(Vec<String>),
    /// `/services/data/`, the version list.
    DataRoot,
    /// A path Salesforce handed out, such as a `nextRecordsUrl`.
    Path(String),
}

/// A request's body: bytes, or an ingest part's CSV, which may be in a file read as it is
/// sent.
#[derive(Debug, Clone)]
pub(crate) enum Body {
    Bytes(Bytes),
    Csv(crate::bulk::ingest::CsvData),
}

impl Body {
    /// The body as reqwest sends it, made again for each attempt.
    pub(super) fn to_reqwest(&self) -> reqwest::Body {
        match self {
            Body::Bytes(bytes) => reqwest::Body::from(bytes.clone()),
            Body::Csv(csv) => csv.body(),
        }
    }

    /// Its length, which a streamed body does not give reqwest.
    pub(super) fn len(&self) -> u64 {
        match self {
            Body::Bytes(bytes) => bytes.len() as u64,
            Body::Csv(csv) => csv.len(),
        }
    }
}

/// One API call, as the operations describe it.
pub(crate) struct ApiRequest {
    pub(super) method: Method,
    pub(super) target: Target,
    pub(super) query: Vec<(&'static str, String)>,
    pub(super) headers: HeaderMap,
    pub(super) body: Option<Body>,
    /// The body's `Content-Type`.
    pub(super) content_type: &'static str,
    /// Counted against the rate limiter (all but the version list).
    pub(super) counted: bool,
    pub(super) authenticated: bool,
    /// Sending it twice does no harm, so any transient failure may be retried.
    pub(super) idempotent: bool,
    /// A success that should nonetheless be retried (an `allOrNone` batch rolled back for
    /// lock contention).
    pub(super) retry_when: Option<fn(&Response) -> bool>,
    /// The whole request's deadline, instead of the configured request timeout.
    pub(super) timeout: Option<Duration>,
    /// Sent through the long-poll HTTP client, which has no read timeout: the server holds
    /// the answer (a CometD connect) for longer than a read of a normal answer may take.
    pub(super) long_poll: bool,
}

impl ApiRequest {
    pub(crate) fn new(method: Method, target: Target) -> Self {
        let idempotent = method != Method::POST;
        Self {
            method,
            target,
            query: Vec::new(),
            headers: HeaderMap::new(),
            body: None,
            content_type: "application/json",
            counted: true,
            authenticated: true,
            idempotent,
            retry_when: None,
            timeout: None,
            long_poll: false,
        }
    }

    /// A request under `/services/data/vXX.X/`.
    pub(crate) fn rest<S: Into<String>>(
        method: Method,
        segments: impl IntoIterator<Item = S>,
    ) -> Self {
        Self::new(
            method,
            Target::Rest(segments.into_iter().map(Into::into).collect()),
        )
    }

    /// Appends a query parameter.
    pub(crate) fn query(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.query.push((name, value.into()));
        self
    }

    pub(crate) fn header(mut self, name: &'static str, value: HeaderValue) -> Self {
        self.headers.insert(HeaderName::from_static(name), value);
        self
    }

    pub(crate) fn json(mut self, body: &impl serde::Serialize) -> Result<Self> {
        let bytes = serde_json::to_vec(body).map_err(|e| {
            Error::InvalidRequest(format!("the request body cannot be serialised: {e}"))
        })?;
        self.body = Some(Body::Bytes(Bytes::from(bytes)));
        Ok(self)
    }

    /// A CSV body (`text/csv`), such as a Bulk API ingest job's data.
    pub(crate) fn csv(mut self, body: crate::bulk::ingest::CsvData) -> Self {
        self.body = Some(Body::Csv(body));
        self.content_type = "text/csv";
        self
    }

    /// Retried only when Salesforce certainly did not act on it, whatever the method (a
    /// Bulk upload sent twice spoils its job).
    pub(crate) fn not_idempotent(mut self) -> Self {
        self.idempotent = false;
        self
    }

    pub(crate) fn uncounted_and_anonymous(mut self) -> Self {
        self.counted = false;
        self.authenticated = false;
        self
    }

    /// Not counted against the rate limiter, but sent with the token.
    pub(crate) fn uncounted(mut self) -> Self {
        self.counted = false;
        self
    }

    /// The whole request's deadline, instead of the configured request timeout.
    pub(crate) fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// A long poll: sent through the HTTP client without a read timeout, and never
    /// retried by the request path (the caller's loop decides).
    pub(crate) fn long_poll(mut self) -> Self {
        self.long_poll = true;
        self
    }

    pub(crate) fn retry_when(mut self, retry_when: fn(&Response) -> bool) -> Self {
        self.retry_when = Some(retry_when);
        self
    }
}
