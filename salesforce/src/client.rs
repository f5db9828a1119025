//! The [`Client`] and the path every API call takes: rate limiter, token, request, usage
//! header, error, retry.
//!
//! Every call goes to the `instance_url` of the current token and carries
//! `Sforce-Call-Options: client=sfpg`. A 401 `INVALID_SESSION_ID` (the token expired or was
//! revoked) leads to exactly one re-authentication and one replay; a second 401 is returned
//! to the caller, so a broken login never loops.

use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Certificate, Method};
use secrecy::ExposeSecret;
use tokio::time::Instant;
use tracing::Instrument;
use url::Url;

use crate::auth::{self, Credentials, RefreshTokenStore, Token};
use crate::config::Config;
use crate::error::{Endpoint, Error, Result};
use crate::limiter::{Priority, RateLimiter};
use crate::retry::{RetryPolicy, should_retry};
use crate::telemetry;
use crate::usage::{ApiUsage, LIMIT_INFO_HEADER};

mod request;
mod response;

pub(crate) use request::{ApiRequest, Target};
pub(crate) use response::{BodyStream, ReceiveBody, Response, STREAMED_BODY_DEADLINE};

/// A connection to one org. Cheap to clone; clones share the token, the rate limiter and the
/// latest API usage.
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
    priority: Priority,
}

struct Shared {
    http: reqwest::Client,
    /// For long polls (CometD connects): like `http` but without a read timeout, built on
    /// first use.
    long_poll_http: OnceLock<reqwest::Client>,
    config: Config,
    /// Held while a token is being requested, so that concurrent 401s re-authenticate once.
    credentials: tokio::sync::Mutex<Credentials>,
    token: RwLock<Option<Arc<Token>>>,
    /// Where rotated refresh tokens are saved and looked for (refresh-token flow only).
    refresh_tokens: OnceLock<Arc<dyn RefreshTokenStore>>,
    limiter: RateLimiter,
    usage: Mutex<Option<ApiUsage>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("login_url", &self.shared.config.login_url().as_str())
            .field("api_version", &self.shared.config.api_version().as_str())
            .field("priority", &self.priority)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for the org reached through `config`, logging in with `credentials`, whose
    /// counted requests all pass through `limiter` (share one limiter per org). Nothing is
    /// sent until the first call; [`Client::token`] logs in eagerly.
    pub fn new(
        config: Config,
        credentials: impl Into<Credentials>,
        limiter: RateLimiter,
    ) -> Result<Self> {
        let http = http_client(&config, true)?;
        Ok(Self {
            shared: Arc::new(Shared {
                http,
                long_poll_http: OnceLock::new(),
                config,
                credentials: tokio::sync::Mutex::new(credentials.into()),
                token: RwLock::new(None),
                refresh_tokens: OnceLock::new(),
                limiter,
                usage: Mutex::new(None),
            }),
            priority: Priority::Background,
        })
    }

    /// Saves the refresh tokens Salesforce rotates to `store`, and looks there for a newer
    /// one when Salesforce refuses the one in use (see [`RefreshTokenStore`]). Shared by
    /// every clone; a second store is ignored.
    pub fn keep_refresh_tokens_in(&self, store: Arc<dyn RefreshTokenStore>) {
        let _ = self.shared.refresh_tokens.set(store);
    }

    /// The same client, queueing its requests at `priority` in the rate limiter. New clients
    /// are [`Priority::Background`]; the proxy's pushes use [`Priority::Interactive`].
    pub fn with_priority(&self, priority: Priority) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            priority,
        }
    }

    /// The priority this client's requests queue at.
    pub fn priority(&self) -> Priority {
        self.priority
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// The org's rate limiter.
    pub fn limiter(&self) -> &RateLimiter {
        &self.shared.limiter
    }

    /// The API usage from the latest response's `Sforce-Limit-Info`, if any has been seen.
    pub fn api_usage(&self) -> Option<ApiUsage> {
        self.shared
            .usage
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The current token, logging in first if there is none.
    pub async fn token(&self) -> Result<Arc<Token>> {
        if let Some(token) = self.cached_token() {
            return Ok(token);
        }
        let mut credentials = self.shared.credentials.lock().await;
        // Another caller may have logged in while we waited for the lock.
        if let Some(token) = self.cached_token() {
            return Ok(token);
        }
        let requested = auth::request_token(
            &self.shared.http,
            self.shared.config.login_url(),
            &mut credentials,
            self.shared.refresh_tokens.get().map(|store| &**store),
        )
        .await;
        let outcome = match &requested {
            Ok(_) => "ok",
            Err(error) => telemetry::outcome(Err(error)),
        };
        telemetry::request(self.shared.config.org_label(), "auth", outcome);
        let token = Arc::new(requested?);
        *self
            .shared
            .token
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&token));
        Ok(token)
    }

    pub(crate) fn cached_token(&self) -> Option<Arc<Token>> {
        self.shared
            .token
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Drops `stale` so the next call logs in again, unless someone already replaced it.
    pub(crate) fn forget_token(&self, stale: &Arc<Token>) {
        let mut current = self
            .shared
            .token
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if current
            .as_ref()
            .is_some_and(|token| Arc::ptr_eq(token, stale))
        {
            *current = None;
        }
    }

    /// Sends `request`, retrying per the configured policy, and returns any response below
    /// 400 with its body read. Error statuses become [`Error`]s.
    pub(crate) async fn execute(&self, request: ApiRequest) -> Result<Response> {
        self.execute_receiving(request).await
    }

    /// Like [`Client::execute`], but hands back the body of a success unread, as a stream,
    /// for bodies too large to hold (Bulk API results). Retries, re-authentication and the
    /// rate limiter apply up to the response's headers; a failure while the body streams is
    /// the caller's to handle. The whole request's deadline is [`STREAMED_BODY_DEADLINE`]
    /// instead of the request timeout, as the consumer sets the pace; a stall longer than
    /// the request timeout between two reads still fails (the client's read timeout).
    pub(crate) async fn execute_streamed(
        &self,
        request: ApiRequest,
    ) -> Result<Response<BodyStream>> {
        self.execute_receiving(request).await
    }

    /// The one request path: limiter, token, request, usage header, error, retry.
    async fn execute_receiving<B: ReceiveBody>(&self, request: ApiRequest) -> Result<Response<B>> {
        // A long poll is never resent here: its caller's loop decides (after a stall, a
        // resend must not overlap the request it replaces).
        let never = RetryPolicy::never();
        let policy = match request.long_poll {
            true => &never,
            false => self.shared.config.retry(),
        };
        let started = Instant::now();
        // Time spent waiting for the rate limiter, which the retry time bound leaves out.
        let mut queued = Duration::ZERO;
        let mut attempt = 0u32;
        let mut failures = 0u32;
        let mut reauthenticated = false;
        loop {
            attempt += 1;
            let failure = match self.attempt::<B>(&request, attempt, &mut queued).await {
                Err(failure) => failure,
                Ok(response) => {
                    if !B::rolled_back(&request, &response) {
                        return Ok(response);
                    }
                    failures += 1;
                    let Some(delay) =
                        policy.next_delay(failures, started.elapsed().saturating_sub(queued))
                    else {
                        return Ok(response);
                    };
                    tracing::warn!(endpoint = %response.endpoint, attempt, ?delay, "retrying a request Salesforce rolled back");
                    tokio::time::sleep(delay).await;
                    continue;
                }
            };
            if let Some(stale) = failure
                .token
                .as_ref()
                .filter(|_| failure.error.is_invalid_session())
                && !reauthenticated
            {
                reauthenticated = true;
                tracing::info!(attempt, "session expired or invalid; logging in again");
                self.forget_token(stale);
                continue;
            }
            failures += 1;
            let harmless_to_resend = request.idempotent || !failure.sent;
            let delay = should_retry(&failure.error, harmless_to_resend)
                .then(|| policy.next_delay(failures, started.elapsed().saturating_sub(queued)))
                .flatten();
            let Some(delay) = delay else {
                return Err(failure.error);
            };
            tracing::warn!(error = %failure.error, attempt, ?delay, "retrying after a transient failure");
            tokio::time::sleep(delay).await;
        }
    }

    async fn attempt<B: ReceiveBody>(
        &self,
        request: &ApiRequest,
        attempt: u32,
        queued: &mut Duration,
    ) -> Result<Response<B>, Failure> {
        let span = tracing::info_span!(
            "salesforce.request",
            method = %request.method,
            path = tracing::field::Empty,
            attempt,
            status = tracing::field::Empty,
        );
        async {
            if request.counted {
                *queued += self.wait_for_slot().await;
            }
            let token = match request.authenticated {
                true => Some(self.token().await.map_err(Failure::unsent)?),
                false => None,
            };
            let url = self.request_url(request, token.as_deref())?;
            tracing::Span::current().record("path", url.path());
            let endpoint = Endpoint {
                method: request.method.clone(),
                path: url.path().to_owned(),
            };
            let mut builder = self.http_request(request, url, token.as_deref())?;
            if B::STREAMED {
                builder = builder.timeout(STREAMED_BODY_DEADLINE);
            }
            if let Some(timeout) = request.timeout {
                builder = builder.timeout(timeout);
            }
            let transport = |source: reqwest::Error| Failure {
                sent: !source.is_connect(),
                error: Error::Transport {
                    endpoint: endpoint.clone(),
                    source: source.without_url(),
                },
                token: token.clone(),
            };
            let kind = telemetry::kind(&request.target);
            let org = self.shared.config.org_label();
            let sent_at = chrono::Utc::now();
            let response = builder.send().await.map_err(|source| {
                telemetry::request(org, kind, "network");
                transport(source)
            })?;
            let status = response.status();
            tracing::Span::current().record("status", status.as_u16());
            self.record_usage(response.headers());
            if status.as_u16() >= 400 {
                let content_type = content_type(response.headers());
                let body = response.bytes().await.map_err(transport)?;
                let error = Error::from_response(endpoint, status, content_type.as_deref(), &body);
                telemetry::request(org, kind, telemetry::outcome(Err(&error)));
                tracing::debug!(error = %error, "Salesforce answered with an error");
                return Err(Failure {
                    error,
                    sent: true,
                    token,
                });
            }
            telemetry::request(org, kind, telemetry::outcome(Ok(status)));
            let headers = response.headers().clone();
            let body = B::receive(response).await.map_err(transport)?;
            tracing::debug!("Salesforce answered");
            Ok(Response {
                endpoint,
                status,
                headers,
                body,
                sent_at,
            })
        }
        .instrument(span)
        .await
    }

    /// Waits for the org's rate limiter to give this request its slot; the wait.
    async fn wait_for_slot(&self) -> Duration {
        let waiting_since = Instant::now();
        self.shared.limiter.acquire(self.priority).await;
        let waited = waiting_since.elapsed();
        telemetry::limiter_wait(self.shared.config.org_label(), waited);
        waited
    }

    /// The URL `request` goes to, with its query string.
    fn request_url(&self, request: &ApiRequest, token: Option<&Token>) -> Result<Url, Failure> {
        let mut url = self
            .url_for(&request.target, token)
            .map_err(Failure::unsent)?;
        if !request.query.is_empty() {
            url.query_pairs_mut().extend_pairs(&request.query);
        }
        Ok(url)
    }

    /// `request` to `url`, with `token` as its bearer and its body as JSON.
    fn http_request(
        &self,
        request: &ApiRequest,
        url: Url,
        token: Option<&Token>,
    ) -> Result<reqwest::RequestBuilder, Failure> {
        let http = match request.long_poll {
            false => &self.shared.http,
            true => match self.shared.long_poll_http.get() {
                Some(http) => http,
                None => {
                    let http = http_client(&self.shared.config, false).map_err(Failure::unsent)?;
                    self.shared.long_poll_http.get_or_init(|| http)
                }
            },
        };
        let mut builder = http
            .request(request.method.clone(), url)
            .headers(request.headers.clone());
        if let Some(token) = token {
            builder = builder.bearer_auth(token.access_token().expose_secret());
        }
        if let Some(body) = &request.body {
            builder = builder
                .header(CONTENT_TYPE, request.content_type)
                .header(CONTENT_LENGTH, body.len())
                .body(body.to_reqwest());
        }
        Ok(builder)
    }

    fn record_usage(&self, headers: &HeaderMap) {
        let usage = headers
            .get(LIMIT_INFO_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(ApiUsage::parse);
        if let Some(usage) = usage {
            telemetry::daily_usage(self.shared.config.org_label(), &usage);
            *self
                .shared
                .usage
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(usage);
        }
    }

    fn url_for(&self, target: &Target, token: Option<&Token>) -> Result<Url> {
        let base = match token {
            Some(token) => token.instance_url().clone(),
            None => self.cached_token().map_or_else(
                || self.shared.config.login_url().clone(),
                |t| t.instance_url().clone(),
            ),
        };
        let cannot_be_base = || Error::Config(format!("{base} cannot be used as a base URL"));
        match target {
            Target::Rest(segments) => {
                let mut url = base.clone();
                url.path_segments_mut()
                    .map_err(|()| cannot_be_base())?
                    .pop_if_empty()
                    .extend([
                        "services",
                        "data",
                        &self.shared.config.api_version().segment(),
                    ])
                    .extend(segments);
                Ok(url)
            }
            Target::CometD => {
                let mut url = base.clone();
                url.path_segments_mut()
                    .map_err(|()| cannot_be_base())?
                    .pop_if_empty()
                    .extend(["cometd", self.shared.config.api_version().as_str()]);
                Ok(url)
            }
            Target::DataRoot => {
                let mut url = base.clone();
                url.path_segments_mut()
                    .map_err(|()| cannot_be_base())?
                    .pop_if_empty()
                    .extend(["services", "data", ""]);
                Ok(url)
            }
            Target::Path(path) => {
                // Paths come from Salesforce's answers (`nextRecordsUrl`); only ever follow
                // them on the instance, so the token cannot be sent anywhere else.
                let url = base.join(path).ok().filter(|url| {
                    path.starts_with('/')
                        && !path.starts_with("//")
                        && url.origin() == base.origin()
                });
                url.ok_or_else(|| Error::Protocol {
                    endpoint: Endpoint {
                        method: Method::GET,
                        path: path.clone(),
                    },
                    detail: "Salesforce pointed to a path outside the instance".to_owned(),
                })
            }
        }
    }
}

/// The HTTP client for `config`; `read_timeout` bounds the wait between two reads by the
/// request timeout (all but long polls).
fn http_client(config: &Config, read_timeout: bool) -> Result<reqwest::Client> {
    let mut headers = HeaderMap::new();
    // Names the caller, so sfpg's own writes can be told apart in change events'
    // `changeOrigin`.
    let client_name = config.call_options_client();
    let well_formed = !client_name.is_empty()
        && client_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if !well_formed {
        return Err(Error::Config(format!(
            "{client_name:?} cannot name the client in Sforce-Call-Options: use letters, digits, '_', '-' and '.'"
        )));
    }
    let call_options = HeaderValue::from_str(&format!("client={client_name}"))
        .map_err(|e| Error::Config(format!("Sforce-Call-Options: {e}")))?;
    headers.insert(HeaderName::from_static("sforce-call-options"), call_options);
    headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
    let mut builder = reqwest::Client::builder()
        .default_headers(headers)
        .user_agent(concat!("sfpg-salesforce/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(config.connect_timeout())
        .timeout(config.request_timeout());
    if read_timeout {
        // Within the request timeout for a read body; what bounds a streamed body's stalls.
        builder = builder.read_timeout(config.request_timeout());
    }
    if let Some(pem) = config.ca_certificates_pem() {
        builder = builder.tls_certs_merge(ca_certificates(pem)?);
    }
    builder
        .build()
        .map_err(|e| Error::Config(format!("HTTP client: {e}")))
}

/// The certificates of a PEM bundle, at least one.
pub(crate) fn ca_certificates(pem: &[u8]) -> Result<Vec<Certificate>> {
    let certificates = Certificate::from_pem_bundle(pem)
        .map_err(|e| Error::Config(format!("the CA certificate PEM does not parse: {e}")))?;
    if certificates.is_empty() {
        return Err(Error::Config(
            "the CA certificate file holds no PEM certificate".to_owned(),
        ));
    }
    Ok(certificates)
}

/// A failed attempt, with what the retry loop needs to know about it.
struct Failure {
    error: Error,
    /// Whether the request may have reached Salesforce.
    sent: bool,
    /// The token the request was sent with, to recognise a stale one.
    token: Option<Arc<Token>>,
}

/// A response's `Content-Type`, if it is text.
fn content_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

impl Failure {
    fn unsent(error: Error) -> Self {
        Self {
            error,
            sent: false,
            token: None,
        }
    }
}
