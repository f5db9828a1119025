//! A scripted Salesforce for the client's HTTP tests: a real HTTP server that answers the
//! token endpoint like Salesforce, checks bearer tokens, and answers REST calls with the
//! exact bodies a test queues, byte for byte as reference/salesforce-api.md documents
//! them. It logs every request with its arrival time, so tests can check from the server's
//! side how many requests were sent, where, with which headers, and when.
//!
//! It is for the client's mechanics (what it sends, how it reacts to each documented
//! answer). Behaviour that needs a real org's data belongs in the emulator tests.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Form, State};
use axum::http::{HeaderMap, Method, Response, Uri};
use axum::routing::{any, post};
use futures::StreamExt;
use sfpg_salesforce::{Client, Config, Credentials, Password, Rate, RateLimiter, RetryPolicy};
use tokio::net::TcpListener;

use crate::cometd_server::CometdServer;
use tokio::time::Instant;

pub const CLIENT_ID: &str = "3MVG9scripted";
pub const CLIENT_SECRET: &str = "scripted-client-secret-5f2a";
pub const USERNAME: &str = "ann@example.com";
pub const PASSWORD: &str = "scripted-password-91c4";
/// Every access token the server issues starts with this, so tests can look for leaks.
pub const ACCESS_TOKEN_PREFIX: &str = "00Dscripted!ACCESS-";
pub const REFRESH_TOKEN_PREFIX: &str = "scripted-refresh-";
pub const ORG_ID: &str = "00D000000000001AAA";
pub const USER_ID: &str = "005000000000001AAA";

/// One answer to give.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: Option<&'static str>,
    pub body: Bytes,
    pub headers: Vec<(&'static str, String)>,
    pub delay: Duration,
    /// Sends the body's first `.0` bytes, then the rest only once `.1` is notified.
    pub held_back: Option<(usize, Arc<tokio::sync::Notify>)>,
}

impl Reply {
    pub fn json(status: u16, body: &str) -> Reply {
        Reply {
            status,
            content_type: Some("application/json;charset=UTF-8"),
            body: Bytes::from(body.to_owned()),
            headers: Vec::new(),
            delay: Duration::ZERO,
            held_back: None,
        }
    }

    /// A body of any bytes, with its content type.
    pub fn bytes(status: u16, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
        Reply {
            content_type: Some(content_type),
            body: body.into(),
            ..Reply::json(status, "")
        }
    }

    pub fn html(status: u16, body: &str) -> Reply {
        Reply {
            content_type: Some("text/html"),
            ..Reply::json(status, body)
        }
    }

    pub fn empty(status: u16) -> Reply {
        Reply {
            content_type: None,
            ..Reply::json(status, "")
        }
    }

    /// A REST error array with one error.
    pub fn error(status: u16, error_code: &str, message: &str) -> Reply {
        Reply::json(
            status,
            &format!(r#"[{{"message":"{message}","errorCode":"{error_code}"}}]"#),
        )
    }

    pub fn after(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Reply {
        self.headers.push((name, value.to_owned()));
        self
    }

    /// Sends the first `first` bytes of the body at once and the rest when `gate` is
    /// notified, as a slow server would.
    pub fn hold_back_after(mut self, first: usize, gate: Arc<tokio::sync::Notify>) -> Reply {
        self.held_back = Some((first, gate));
        self
    }
}

/// A request the server received.
#[derive(Clone, Debug)]
pub struct Logged {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

impl Logged {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

#[derive(Default)]
struct Script {
    instance_url: String,
    replies: VecDeque<Reply>,
    token_replies: VecDeque<Reply>,
    requests: Vec<Logged>,
    token_requests: Vec<Logged>,
    grants: Vec<Vec<(String, String)>>,
    issued: u32,
    valid_tokens: HashSet<String>,
    reject_every_token: bool,
    rotate_refresh_tokens: bool,
    api_used: u64,
    cometd: Arc<CometdServer>,
}

/// The running server. It stops when the test's runtime does.
#[derive(Clone)]
pub struct Scripted {
    pub login_url: String,
    pub instance_url: String,
    script: Arc<Mutex<Script>>,
}

impl Scripted {
    /// One server that is both the login URL and the instance.
    pub async fn start() -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let scripted = Scripted::new(url.clone(), url);
        scripted.serve(listener);
        scripted
    }

    /// A login server and a separate instance, sharing one script: the token response's
    /// `instance_url` points to the second.
    pub async fn start_with_separate_instance() -> Scripted {
        let login = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let instance = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let scripted = Scripted::new(
            format!("http://{}", login.local_addr().unwrap()),
            format!("http://{}", instance.local_addr().unwrap()),
        );
        scripted.serve(login);
        scripted.serve(instance);
        scripted
    }

    /// Serves HTTPS on `listener` with the given certificate and key (PEM).
    pub async fn start_tls(cert_pem: String, key_pem: String) -> Scripted {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let url = format!("https://localhost:{}", addr.port());
        let scripted = Scripted::new(url.clone(), url);
        let tls = axum_server::tls_rustls::RustlsConfig::from_pem(
            cert_pem.into_bytes(),
            key_pem.into_bytes(),
        )
        .await
        .unwrap();
        let app = scripted.router();
        let server = axum_server::from_tcp_rustls(listener, tls).unwrap();
        tokio::spawn(async move { server.serve(app.into_make_service()).await });
        scripted
    }

    fn new(login_url: String, instance_url: String) -> Scripted {
        Scripted {
            login_url,
            instance_url: instance_url.clone(),
            script: Arc::new(Mutex::new(Script {
                instance_url,
                ..Script::default()
            })),
        }
    }

    fn router(&self) -> Router {
        Router::new()
            .route("/services/oauth2/token", post(token))
            .route("/services/data/", any(versions))
            .route("/cometd/{version}", post(cometd))
            .fallback(rest)
            .with_state(Arc::clone(&self.script))
    }

    fn serve(&self, listener: TcpListener) {
        let app = self.router();
        tokio::spawn(async move { axum::serve(listener, app).await });
    }

    /// Queues the answer to the next REST request.
    pub fn reply(&self, reply: Reply) {
        self.script.lock().unwrap().replies.push_back(reply);
    }

    /// The CometD server at `/cometd/<version>`.
    pub fn cometd(&self) -> Arc<CometdServer> {
        Arc::clone(&self.script.lock().unwrap().cometd)
    }

    /// Queues the answer to the next token request (instead of a token).
    pub fn token_reply(&self, reply: Reply) {
        self.script.lock().unwrap().token_replies.push_back(reply);
    }

    /// Every token issued so far stops working, as when an admin revokes sessions.
    pub fn revoke_sessions(&self) {
        self.script.lock().unwrap().valid_tokens.clear();
    }

    /// Every token, even a fresh one, gets 401 INVALID_SESSION_ID.
    pub fn reject_every_token(&self) {
        self.script.lock().unwrap().reject_every_token = true;
    }

    /// Refresh-token grants get a new refresh token, and the old one stops working.
    pub fn rotate_refresh_tokens(&self) {
        self.script.lock().unwrap().rotate_refresh_tokens = true;
    }

    /// REST requests, token requests excepted, in arrival order.
    pub fn requests(&self) -> Vec<Logged> {
        self.script.lock().unwrap().requests.clone()
    }

    /// Token requests.
    pub fn token_requests(&self) -> Vec<Logged> {
        self.script.lock().unwrap().token_requests.clone()
    }

    /// The form of every token request.
    pub fn grants(&self) -> Vec<Vec<(String, String)>> {
        self.script.lock().unwrap().grants.clone()
    }

    /// A configuration for this server with a quick retry policy.
    pub fn config(&self) -> Config {
        Config::new(&self.login_url)
            .unwrap()
            .with_retry(quick_retries())
    }

    /// A client logging in with the password flow, at 1,000 requests per second.
    pub fn client(&self) -> Client {
        self.client_with(self.config(), password())
    }

    pub fn client_with(&self, config: Config, credentials: impl Into<Credentials>) -> Client {
        let limiter = RateLimiter::new(Rate::per_second(1000).unwrap());
        Client::new(config, credentials, limiter).unwrap()
    }
}

/// Up to 4 attempts, waits of at most 10, 20, 40 ms.
pub fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
        max_elapsed: Duration::from_secs(10),
    }
}

pub fn password() -> Password {
    Password::new(CLIENT_ID, CLIENT_SECRET, USERNAME, PASSWORD)
}

fn logged(method: Method, uri: &Uri, headers: HeaderMap, body: Bytes) -> Logged {
    Logged {
        method,
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        headers,
        body,
        at: Instant::now(),
    }
}

async fn token(
    State(script): State<Arc<Mutex<Script>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response<Body> {
    let reply = {
        let mut script = script.lock().unwrap();
        let body = Bytes::from(serde_urlencoded_pairs(&form));
        script
            .token_requests
            .push(logged(method, &uri, headers, body));
        script.grants.push(form.clone());
        if let Some(reply) = script.token_replies.pop_front() {
            reply
        } else {
            script.issued += 1;
            let access_token = format!("{ACCESS_TOKEN_PREFIX}{}", script.issued);
            script.valid_tokens.insert(access_token.clone());
            let grant_type = form
                .iter()
                .find(|(k, _)| k == "grant_type")
                .map(|(_, v)| v.as_str());
            let refresh_token = (grant_type == Some("refresh_token")
                && script.rotate_refresh_tokens)
                .then(|| format!("{REFRESH_TOKEN_PREFIX}{}", script.issued));
            let mut body = serde_json::json!({
                "access_token": access_token,
                "instance_url": script.instance_url,
                "id": format!("https://login.salesforce.com/id/{ORG_ID}/{USER_ID}"),
                "token_type": "Bearer",
                "issued_at": "1700000000000",
                "signature": "c2lnbmF0dXJl",
            });
            if let Some(refresh_token) = refresh_token {
                body["refresh_token"] = refresh_token.into();
            }
            Reply::json(200, &body.to_string())
        }
    };
    respond(reply, None).await
}

fn serde_urlencoded_pairs(form: &[(String, String)]) -> String {
    form.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

async fn versions(
    State(script): State<Arc<Mutex<Script>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response<Body> {
    script
        .lock()
        .unwrap()
        .requests
        .push(logged(method, &uri, headers, Bytes::new()));
    let body = r#"[{"label":"Summer '24","url":"/services/data/v61.0","version":"61.0"},{"label":"Winter '25","url":"/services/data/v62.0","version":"62.0"}]"#;
    respond(Reply::json(200, body), None).await
}

/// CometD requests: bearer checked like REST, answered by the [`CometdServer`], logged.
async fn cometd(
    State(script): State<Arc<Mutex<Script>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Body> {
    let (server, authorised) = {
        let mut script = script.lock().unwrap();
        let bearer = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_owned);
        let authorised = !script.reject_every_token
            && bearer.is_some_and(|token| script.valid_tokens.contains(&token));
        let cookie = headers
            .get("cookie")
            .map(|v| v.to_str().unwrap().to_owned());
        script
            .requests
            .push(logged(method, &uri, headers, body.clone()));
        ((Arc::clone(&script.cometd), cookie), authorised)
    };
    let (server, cookie) = server;
    server.handle(&body, cookie, authorised).await
}

async fn rest(
    State(script): State<Arc<Mutex<Script>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Body> {
    let (reply, used) = {
        let mut script = script.lock().unwrap();
        let bearer = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_owned);
        script.requests.push(logged(method, &uri, headers, body));
        let authorised = !script.reject_every_token
            && bearer.is_some_and(|token| script.valid_tokens.contains(&token));
        if !authorised {
            let reply = Reply::json(
                401,
                r#"[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]"#,
            );
            (reply, None)
        } else {
            script.api_used += 1;
            let reply = script
                .replies
                .pop_front()
                .unwrap_or_else(|| Reply::json(200, "{}"));
            (reply, Some(script.api_used))
        }
    };
    respond(reply, used).await
}

async fn respond(reply: Reply, api_used: Option<u64>) -> Response<Body> {
    tokio::time::sleep(reply.delay).await;
    let mut response = Response::builder().status(reply.status);
    if let Some(content_type) = reply.content_type {
        response = response.header("content-type", content_type);
    }
    let explicit_usage = reply
        .headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("sforce-limit-info"));
    if let Some(used) = api_used.filter(|_| !explicit_usage) {
        response = response.header("sforce-limit-info", format!("api-usage={used}/15000"));
    }
    for (name, value) in reply.headers {
        response = response.header(name, value);
    }
    let body = match reply.held_back {
        None => Body::from(reply.body),
        Some((first, gate)) => {
            let (head, tail) = (reply.body.slice(..first), reply.body.slice(first..));
            let tail = async move {
                gate.notified().await;
                Ok::<_, std::convert::Infallible>(tail)
            };
            let chunks =
                futures::stream::once(async { Ok(head) }).chain(futures::stream::once(tail));
            Body::from_stream(chunks)
        }
    };
    response.body(body).unwrap()
}

/// A record from a JSON object literal.
pub fn record(value: serde_json::Value) -> sfpg_salesforce::Record {
    value.as_object().unwrap().clone()
}

pub fn id(value: &str) -> sfpg_salesforce::SalesforceId {
    sfpg_salesforce::SalesforceId::parse(value).unwrap()
}

/// Fragments that must never appear.
pub fn secrets() -> Vec<String> {
    let key_body = include_str!("../fixtures/jwt_private_key.pem")
        .lines()
        .nth(1)
        .unwrap()
        .to_owned();
    vec![
        CLIENT_SECRET.to_owned(),
        PASSWORD.to_owned(),
        ACCESS_TOKEN_PREFIX.to_owned(),
        REFRESH_TOKEN_PREFIX.to_owned(),
        "original-refresh-token".to_owned(),
        key_body,
    ]
}

pub fn assert_clean(text: &str) {
    for secret in secrets() {
        assert!(!text.contains(&secret), "{secret:?} leaked into:\n{text}");
    }
}
