//! The token endpoint over real HTTP: every grant, the token response shapes, the
//! token errors, session expiry and revocation.

// Helpers outside `#[test]` functions fail loudly too, as the tests do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{API, Harness, error_code};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sfpg_emulator::http::{ConnectedApp, EmulatorConfig, UserLogin};

const JWT_APP: &str = "3MVG9jwtTestApp";
const PUBLIC_KEY: &str = include_str!("fixtures/jwt-test-key.pub.pem");
const PRIVATE_KEY: &str = include_str!("fixtures/jwt-test-key.pem");
const OTHER_PRIVATE_KEY: &str = include_str!("fixtures/jwt-other-key.pem");

fn config_with_jwt_app() -> EmulatorConfig {
    let mut config = EmulatorConfig::default();
    config.apps.push(ConnectedApp {
        client_id: JWT_APP.to_owned(),
        client_secret: "jwt-secret".to_owned(),
        jwt_public_key_pem: Some(PUBLIC_KEY.to_owned()),
        client_credentials_user: None,
        rotate_refresh_tokens: true,
    });
    config
}

async fn token(h: &Harness, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let response = h
        .http
        .post(h.emulator.token_url())
        .form(form)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

fn app(h: &Harness) -> (String, String) {
    let app = &h.emulator.apps()[0];
    (app.client_id.clone(), app.client_secret.clone())
}

fn user(h: &Harness) -> (String, String) {
    let user = &h.emulator.users()[0];
    (user.username.clone(), user.password.clone())
}

#[tokio::test]
async fn password_grant_answers_salesforce_token_shape() {
    let h = Harness::new().await;
    let (client_id, secret) = app(&h);
    let (username, password) = user(&h);
    let (status, body) = token(
        &h,
        &[
            ("grant_type", "password"),
            ("client_id", &client_id),
            ("client_secret", &secret),
            ("username", &username),
            ("password", &password),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        [
            "access_token",
            "id",
            "instance_url",
            "issued_at",
            "signature",
            "token_type"
        ]
    );
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["instance_url"], h.emulator.instance_url());
    let user_id = h.emulator.user_id(&username).unwrap();
    assert_eq!(
        body["id"],
        format!(
            "{}/id/{}/{user_id}",
            h.emulator.login_url(),
            h.emulator.org_id()
        )
    );
    let issued_at = body["issued_at"].as_str().unwrap();
    assert_eq!(issued_at.len(), 13);
    assert!(issued_at.bytes().all(|b| b.is_ascii_digit()));
    assert!(
        body["access_token"]
            .as_str()
            .unwrap()
            .starts_with(&h.emulator.org_id()[..15])
    );
}

#[tokio::test]
async fn password_grant_errors_in_salesforce_order() {
    let h = Harness::new().await;
    let (client_id, secret) = app(&h);
    let (username, password) = user(&h);
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: [Case; 4] = [
        (
            &[
                ("grant_type", "password"),
                ("client_id", "nope"),
                ("client_secret", "x"),
            ],
            "invalid_client_id",
            "client identifier invalid",
        ),
        (
            &[
                ("grant_type", "password"),
                ("client_id", &client_id),
                ("client_secret", "wrong"),
            ],
            "invalid_client",
            "invalid client credentials",
        ),
        (
            &[
                ("grant_type", "password"),
                ("client_id", &client_id),
                ("client_secret", &secret),
                ("username", &username),
                ("password", "wrong"),
            ],
            "invalid_grant",
            "authentication failure",
        ),
        (
            &[
                ("grant_type", "authorization_code"),
                ("client_id", &client_id),
            ],
            "unsupported_grant_type",
            "grant type not supported",
        ),
    ];
    for (form, error, description) in cases {
        let (status, body) = token(&h, form).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{form:?}");
        assert_eq!(
            body,
            json!({"error": error, "error_description": description})
        );
    }
    // The right password still works after the failures.
    let (status, _) = token(
        &h,
        &[
            ("grant_type", "password"),
            ("client_id", &client_id),
            ("client_secret", &secret),
            ("username", &username),
            ("password", &password),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn security_token_is_appended_to_the_password() {
    let mut config = EmulatorConfig::default();
    config.users.push(UserLogin {
        username: "api@sfpg.example".to_owned(),
        password: "pw".to_owned(),
        security_token: Some("TOKEN123".to_owned()),
    });
    let h = Harness::with(config).await;
    let (client_id, secret) = app(&h);
    for (password, expected) in [
        ("pw", StatusCode::BAD_REQUEST),
        ("pwTOKEN123", StatusCode::OK),
    ] {
        let form = [
            ("grant_type", "password"),
            ("client_id", client_id.as_str()),
            ("client_secret", secret.as_str()),
            ("username", "api@sfpg.example"),
            ("password", password),
        ];
        assert_eq!(token(&h, &form).await.0, expected, "password {password}");
    }
}

#[tokio::test]
async fn client_credentials_in_body_or_basic_auth() {
    let h = Harness::new().await;
    let (client_id, secret) = app(&h);
    let (status, body) = token(
        &h,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &client_id),
            ("client_secret", &secret),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "api");
    assert!(body.get("refresh_token").is_none());

    let response = h
        .http
        .post(h.emulator.token_url())
        .basic_auth(&client_id, Some(&secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    let access = body["access_token"].as_str().unwrap();
    let api = h
        .http
        .get(h.url(&format!("{API}/limits")))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), StatusCode::OK);
}

#[tokio::test]
async fn client_credentials_needs_a_run_as_user() {
    let h = Harness::with(config_with_jwt_app()).await;
    let (status, body) = token(
        &h,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", JWT_APP),
            ("client_secret", "jwt-secret"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(
        body["error_description"],
        "no client credentials user enabled"
    );
}

fn assertion(key: &str, iss: &str, sub: &str, aud: &str, exp_offset: i64) -> String {
    let exp = chrono::Utc::now().timestamp() + exp_offset;
    let claims = json!({"iss": iss, "sub": sub, "aud": aud, "exp": exp});
    jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        &claims,
        &EncodingKey::from_rsa_pem(key.as_bytes()).unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn jwt_bearer_grant_verifies_the_assertion() {
    let h = Harness::with(config_with_jwt_app()).await;
    let (username, _) = user(&h);
    let grant = "urn:ietf:params:oauth:grant-type:jwt-bearer";
    let login = "https://login.salesforce.com";

    let good = assertion(PRIVATE_KEY, JWT_APP, &username, login, 180);
    let (status, body) = token(&h, &[("grant_type", grant), ("assertion", &good)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["access_token", "id", "instance_url", "scope", "token_type"]
    );

    let own_host = assertion(PRIVATE_KEY, JWT_APP, &username, h.emulator.login_url(), 180);
    assert_eq!(
        token(&h, &[("grant_type", grant), ("assertion", &own_host)])
            .await
            .0,
        StatusCode::OK
    );

    let refused = [
        (
            assertion(PRIVATE_KEY, JWT_APP, &username, "https://evil.example", 180),
            ("invalid_grant", "audience is invalid"),
        ),
        (
            assertion(PRIVATE_KEY, JWT_APP, &username, login, -600),
            ("invalid_grant", "expired authorization code"),
        ),
        (
            assertion(PRIVATE_KEY, "3MVG9unknown", &username, login, 180),
            ("invalid_client_id", "client identifier invalid"),
        ),
        (
            assertion(PRIVATE_KEY, JWT_APP, "nobody@sfpg.example", login, 180),
            ("invalid_grant", "user hasn't approved this consumer"),
        ),
        (
            assertion(OTHER_PRIVATE_KEY, JWT_APP, &username, login, 180),
            ("invalid_grant", "invalid assertion"),
        ),
        (
            "not-a-jwt".to_owned(),
            ("invalid_grant", "invalid assertion"),
        ),
    ];
    for (jwt, (error, description)) in refused {
        let (status, body) = token(&h, &[("grant_type", grant), ("assertion", &jwt)]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            body,
            json!({"error": error, "error_description": description})
        );
    }
}

#[tokio::test]
async fn refresh_token_grant_with_rotation() {
    let h = Harness::with(config_with_jwt_app()).await;
    let (username, _) = user(&h);
    let refresh = h
        .emulator
        .issue_refresh_token(&username, JWT_APP)
        .expect("refresh token for a configured user and app");
    let (status, body) = token(
        &h,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", JWT_APP),
            ("client_secret", "jwt-secret"),
            ("refresh_token", &refresh),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let rotated = body["refresh_token"]
        .as_str()
        .expect("rotation issues a new one");
    assert_ne!(rotated, refresh);
    assert!(body["signature"].is_string());

    // The old refresh token is gone; a wrong app cannot use the new one either.
    let (status, body) = token(
        &h,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", JWT_APP),
            ("refresh_token", &refresh),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error_description"], "expired access/refresh token");
    let (client_id, _) = app(&h);
    let (status, _) = token(
        &h,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &client_id),
            ("refresh_token", rotated),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn expired_session_gets_the_exact_401_body() {
    let h = Harness::with(EmulatorConfig {
        session_lifetime: Duration::from_millis(300),
        ..EmulatorConfig::default()
    })
    .await;
    assert_eq!(
        h.get(&format!("{API}/limits")).await.status(),
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let response = h.get(&format!("{API}/limits")).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.text().await.unwrap(),
        r#"[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]"#
    );
}

#[tokio::test]
async fn missing_or_unknown_tokens_are_invalid_sessions() {
    let h = Harness::new().await;
    let anonymous = h
        .http
        .get(h.url(&format!("{API}/sobjects")))
        .send()
        .await
        .unwrap();
    let (status, code, body) = error_code(anonymous).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNAUTHORIZED, "INVALID_SESSION_ID")
    );
    assert!(body[0].get("fields").is_none());
    let forged = h
        .http
        .get(h.url(&format!("{API}/sobjects")))
        .bearer_auth("00D000000000000!forged")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn revoked_sessions_stop_working() {
    let h = Harness::new().await;
    assert_eq!(
        h.get(&format!("{API}/limits")).await.status(),
        StatusCode::OK
    );
    let revoked = h
        .admin(reqwest::Method::POST, "/sessions/revoke")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::OK);
    assert_eq!(revoked.json::<Value>().await.unwrap()["revoked"], 1);
    assert_eq!(
        h.get(&format!("{API}/limits")).await.status(),
        StatusCode::UNAUTHORIZED
    );
}
