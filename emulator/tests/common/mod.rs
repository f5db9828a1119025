//! Shared helpers for the HTTP tests: start an emulator, log in, and call it with a
//! bearer token over real HTTP.

// Each test binary uses some of these helpers; they fail loudly, as the tests do.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod bulk;
pub mod cometd;
pub mod pubsub;

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::Value;
use sfpg_emulator::http::{EmulatorConfig, RunningEmulator, start};

pub const API: &str = "/services/data/v62.0";

/// A started emulator and a logged-in client.
pub struct Harness {
    pub emulator: RunningEmulator,
    pub http: reqwest::Client,
    pub token: String,
}

impl Harness {
    /// An emulator with the default configuration (empty org, plain HTTP).
    pub async fn new() -> Harness {
        Harness::with(EmulatorConfig::default()).await
    }

    pub async fn with(config: EmulatorConfig) -> Harness {
        let emulator = start(config).await.expect("the emulator starts");
        let http = reqwest::Client::new();
        let token = password_login(&emulator, &http).await;
        Harness {
            emulator,
            http,
            token,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.emulator.instance_url())
    }

    /// A request to `path` (relative to the instance URL) carrying the bearer token.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, self.url(path))
            .bearer_auth(&self.token)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path).send().await.expect("GET")
    }

    pub async fn send_json(&self, method: Method, path: &str, body: &Value) -> Response {
        self.request(method, path)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    /// GET that must answer 200 with JSON.
    pub async fn get_json(&self, path: &str) -> Value {
        let response = self.get(path).await;
        let status = response.status();
        let body = response.text().await.expect("body");
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        serde_json::from_str(&body).expect("JSON body")
    }

    /// Creates a record through the REST API and returns its Id.
    pub async fn create(&self, object: &str, fields: Value) -> String {
        let response = self
            .send_json(Method::POST, &format!("{API}/sobjects/{object}"), &fields)
            .await;
        let status = response.status();
        let body: Value = response.json().await.expect("JSON body");
        assert_eq!(status, StatusCode::CREATED, "create {object}: {body}");
        body["id"].as_str().expect("id").to_owned()
    }

    /// A SOQL query's first page.
    pub async fn query(&self, soql: &str) -> Value {
        let response = self
            .request(Method::GET, &format!("{API}/query"))
            .query(&[("q", soql)])
            .send()
            .await
            .expect("query");
        let status = response.status();
        let body: Value = response.json().await.expect("JSON body");
        assert_eq!(status, StatusCode::OK, "query {soql}: {body}");
        body
    }

    /// The admin API, which needs no token.
    pub fn admin(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, self.url(&format!("/__emulator{path}")))
    }
}

/// Logs in with the password grant as the first configured user.
pub async fn password_login(emulator: &RunningEmulator, http: &reqwest::Client) -> String {
    let app = &emulator.apps()[0];
    let user = &emulator.users()[0];
    let response = http
        .post(emulator.token_url())
        .form(&[
            ("grant_type", "password"),
            ("client_id", app.client_id.as_str()),
            ("client_secret", app.client_secret.as_str()),
            ("username", user.username.as_str()),
            ("password", user.password.as_str()),
        ])
        .send()
        .await
        .expect("token request");
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("token JSON");
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

/// Asserts that `response` is Salesforce's error of `status` with `code` first; returns
/// the error body.
pub async fn refused(response: Response, status: StatusCode, code: &str) -> Value {
    let (got_status, got_code, body) = error_code(response).await;
    assert_eq!((got_status, got_code.as_str()), (status, code), "{body}");
    body
}

/// The error array's first `errorCode`, asserting the array shape on the way.
pub async fn error_code(response: Response) -> (StatusCode, String, Value) {
    let status = response.status();
    let body: Value = response.json().await.expect("error body is JSON");
    let first = body
        .as_array()
        .and_then(|a| a.first())
        .unwrap_or_else(|| panic!("not an error array: {body}"));
    let code = first["errorCode"]
        .as_str()
        .unwrap_or_else(|| panic!("no errorCode: {body}"))
        .to_owned();
    (status, code, body)
}

/// Creates `n` accounts named `<prefix> 000`, `<prefix> 001`, ... straight in the org
/// (no API call, nothing counted) and returns their Ids in creation order.
pub fn seed_accounts(emulator: &RunningEmulator, prefix: &str, n: usize) -> Vec<String> {
    let username = emulator.users()[0].username.clone();
    (0..n)
        .map(|i| {
            let mut fields = serde_json::Map::new();
            fields.insert("Name".to_owned(), Value::from(format!("{prefix} {i:03}")));
            emulator
                .create_as("Account", &fields, Some(&username))
                .expect("seed account")
        })
        .collect()
}
