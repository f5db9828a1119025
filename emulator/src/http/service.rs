//! The outer service every request passes through before the router: it applies
//! injected faults (dropped connections, latency, failures), keeps the request log, sets
//! `Sforce-Limit-Info`, normalises the URL (trailing slashes, `?_HttpMethod=`), and turns
//! the framework's own plain-text rejections into Salesforce error arrays.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Router;
use axum::body::{Body, HttpBody};
use axum::http::{HeaderValue, Method, Request, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use tower::{Service, ServiceExt};

use super::auth::{Counted, bearer_token};
use super::error::RestError;
use super::faults::Dropped;
use super::limits::limit_info;
use super::orgs::OrgSet;
use super::request_log::Served;
use super::routing::{self, Routed};
use super::state::AppState;

/// The largest request body accepted, as Salesforce's REST API caps JSON bodies.
pub const MAX_BODY_BYTES: usize = 50 * 1024 * 1024;

/// The error a service returns to make hyper close the connection without answering.
#[derive(Debug, thiserror::Error)]
#[error("connection dropped by fault injection")]
pub struct ConnectionDropped;

/// The outer service: finds the request's org, then faults, request log,
/// `Sforce-Limit-Info`, and error rendering around that org's router.
#[derive(Clone)]
pub struct EmulatorService {
    pub orgs: Arc<OrgSet>,
}

impl<B> Service<Request<B>> for EmulatorService
where
    B: HttpBody<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = ConnectionDropped;
    type Future = Pin<Box<dyn Future<Output = Result<Response, ConnectionDropped>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let orgs = self.orgs.clone();
        // A request Salesforce has received runs to its end even when the client stops
        // waiting: a client-side timeout "may complete on the server", and records may have
        // been created all the same (AJAX Toolkit, "Using the Timeout Parameter with
        // Asynchronous Calls"). So the request is served on a task of its own, which a
        // closed connection does not cancel.
        let served = tokio::spawn(serve(orgs, request.map(Body::new)));
        Box::pin(async move {
            served.await.unwrap_or_else(|error| {
                tracing::error!(%error, "serving a request failed");
                Ok(StatusCode::INTERNAL_SERVER_ERROR.into_response())
            })
        })
    }
}

async fn serve(
    orgs: Arc<OrgSet>,
    mut request: Request<Body>,
) -> Result<Response, ConnectionDropped> {
    normalize(&mut request);
    let (router, state, request) = match routing::find_org(&orgs, request).await {
        Routed::Org {
            router,
            state,
            request,
        } => (router, state, request),
        Routed::Answered(response) => return Ok(response),
    };
    let path = request.uri().path().to_owned();
    if path == "/__emulator" || path.starts_with("/__emulator/") {
        // The admin API is not Salesforce: no faults, no log, no limits.
        return Ok(call(router, request).await);
    }
    let method = request.method().to_string();
    let mut served = Served {
        method: method.clone(),
        path: path.clone(),
        query: request.uri().query().map(str::to_owned),
        time: Utc::now(),
        counted: false,
        status: None,
        injected: false,
        session: bearer_token(request.headers())
            .and_then(|token| state.sessions().session(token))
            .map(|session| session.serial),
        user_agent: request
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    };

    let dropped = state.faults().take_drop(&method, &path);
    match dropped {
        Some(Dropped::Unread) => {
            served.injected = true;
            state.log().push(served);
            return Err(ConnectionDropped);
        }
        Some(Dropped::After(after)) => {
            // The request is carried out as received; only its answer is lost with the
            // connection.
            served.injected = true;
            tokio::spawn(respond(router, state, request, served));
            tokio::time::sleep(after).await;
            return Err(ConnectionDropped);
        }
        None => {}
    }
    let response = respond(router, state, request, served).await;
    if response
        .extensions()
        .get::<super::cometd::DropConnection>()
        .is_some()
    {
        // The admin API dropped this client's connect: close the connection unanswered.
        return Err(ConnectionDropped);
    }
    Ok(response)
}

/// Carries out the request (after any injected latency or failure) and logs it.
async fn respond(
    router: Router,
    state: AppState,
    request: Request<Body>,
    mut served: Served,
) -> Response {
    let (method, path) = (served.method.clone(), served.path.clone());
    let delay = state.faults().delay_for(&method, &path);
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    let failure = state.faults().take_failure(&method, &path);
    let mut response = match failure {
        Some(error) => {
            served.injected = true;
            error.into_response()
        }
        None => call(router, request).await,
    };

    if path != "/services/oauth2/token" {
        response = salesforce_error_body(response, &method);
    }
    if path.starts_with("/services/data/") {
        let (used, max) = state.usage().usage();
        if let Ok(value) = HeaderValue::from_str(&limit_info(used, max)) {
            response.headers_mut().insert("sforce-limit-info", value);
        }
    }
    served.counted = response.extensions().get::<Counted>().is_some();
    served.status = Some(response.status().as_u16());
    state.log().push(served);
    response
}

async fn call(router: Router, request: Request<Body>) -> Response {
    match router.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// Makes the URL what the routes expect: no trailing slash (Salesforce accepts both) and
/// the method a `?_HttpMethod=` override names (for clients that cannot send PATCH).
fn normalize(request: &mut Request<Body>) {
    let uri = request.uri();
    let path = uri.path();
    let trimmed = if path.len() > 1 {
        path.trim_end_matches('/')
    } else {
        path
    };
    let trimmed = if trimmed.is_empty() { "/" } else { trimmed };
    if trimmed.len() != path.len() {
        let rebuilt = match uri.query() {
            Some(q) => format!("{trimmed}?{q}"),
            None => trimmed.to_owned(),
        };
        if let Ok(new_uri) = rebuilt.parse::<Uri>() {
            *request.uri_mut() = new_uri;
        }
    }
    if request.method() == Method::POST
        && let Some(query) = request.uri().query()
        && let Some((_, method)) =
            url::form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "_HttpMethod")
        && let Ok(method) = Method::from_bytes(method.to_ascii_uppercase().as_bytes())
    {
        *request.method_mut() = method;
    }
}

/// Replaces a plain-text or empty error response from the framework (unknown method,
/// body too large, ...) with Salesforce's error array. JSON bodies, ours, pass through.
fn salesforce_error_body(response: Response, method: &str) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return response;
    }
    let error = match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            let allowed = response
                .headers()
                .get(header::ALLOW)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            RestError::method_not_allowed(method, &allowed)
        }
        StatusCode::PAYLOAD_TOO_LARGE => RestError::new(
            status,
            "JSON_PARSER_ERROR",
            format!("Request body exceeds the maximum size of {MAX_BODY_BYTES} bytes"),
        ),
        StatusCode::NOT_FOUND => RestError::not_found(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => RestError::new(
            status,
            "UNSUPPORTED_MEDIA_TYPE",
            "Content type not supported",
        ),
        s if s.is_server_error() => RestError::new(
            s,
            "UNKNOWN_EXCEPTION",
            "An unexpected error occurred. Please include this ErrorId if you contact support.",
        ),
        s => RestError::new(
            s,
            "INVALID_REQUEST",
            s.canonical_reason().unwrap_or("Bad request"),
        ),
    };
    let mut rendered = error.into_response();
    // Keep the markers the log reads.
    if response.extensions().get::<Counted>().is_some() {
        rendered.extensions_mut().insert(Counted);
    }
    rendered
}

/// Hands every connection a clone of the one outer service.
#[derive(Clone)]
pub struct MakeEmulatorService(pub EmulatorService);

impl<T> Service<T> for MakeEmulatorService {
    type Response = EmulatorService;
    type Error = Infallible;
    type Future = std::future::Ready<Result<EmulatorService, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _target: T) -> Self::Future {
        std::future::ready(Ok(self.0.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: Method, uri: &str) -> Request<Body> {
        Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::empty())
            .unwrap()
    }

    #[test]
    fn normalizes_trailing_slashes_and_method_overrides() {
        let mut r = request(Method::GET, "/services/data/v62.0/sobjects/");
        normalize(&mut r);
        assert_eq!(r.uri(), "/services/data/v62.0/sobjects");

        let mut r = request(
            Method::POST,
            "/services/data/v62.0/sobjects/Account/001/?_HttpMethod=PATCH",
        );
        normalize(&mut r);
        assert_eq!(r.method(), Method::PATCH);
        assert_eq!(
            r.uri(),
            "/services/data/v62.0/sobjects/Account/001?_HttpMethod=PATCH"
        );

        let mut r = request(Method::GET, "/");
        normalize(&mut r);
        assert_eq!(r.uri(), "/");
    }
}
