//! Logging in with each flow, using `instance_url`, and recovering from an expired session.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use secrecy::ExposeSecret;
use serde::Deserialize;
use sfpg_salesforce::{ClientCredentials, Error, ErrorClass, JwtBearer, RefreshToken};

use crate::scripted::*;

fn grant<'a>(form: &'a [(String, String)], key: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn password_flow_then_every_call_goes_to_the_instance_url() {
    let server = Scripted::start_with_separate_instance().await;
    let client = server.client();

    let token = client.token().await.unwrap();
    assert_eq!(
        token.instance_url().as_str(),
        format!("{}/", server.instance_url)
    );
    assert_eq!(token.org_id(), Some(ORG_ID));
    assert_eq!(token.user_id(), Some(USER_ID));

    let grants = server.grants();
    assert_eq!(grants.len(), 1);
    assert_eq!(grant(&grants[0], "grant_type"), Some("password"));
    assert_eq!(grant(&grants[0], "client_id"), Some(CLIENT_ID));
    assert_eq!(grant(&grants[0], "client_secret"), Some(CLIENT_SECRET));
    assert_eq!(grant(&grants[0], "username"), Some(USERNAME));
    assert_eq!(grant(&grants[0], "password"), Some(PASSWORD));
    let token_request = &server.token_requests()[0];
    assert_eq!(token_request.path, "/services/oauth2/token");
    assert_eq!(
        token_request.header("host"),
        Some(server.login_url.trim_start_matches("http://"))
    );

    server.reply(Reply::json(
        200,
        r#"{"totalSize":0,"done":true,"records":[]}"#,
    ));
    let records = client
        .query("SELECT Id FROM Account")
        .collect_records()
        .await
        .unwrap();
    assert!(records.is_empty());
    let request = &server.requests()[0];
    assert_eq!(
        request.header("host"),
        Some(server.instance_url.trim_start_matches("http://"))
    );
    assert_eq!(request.path, "/services/data/v62.0/query");
    assert_eq!(
        request.header("authorization"),
        Some(format!("Bearer {}", token.access_token().expose_secret()).as_str())
    );
    // Logged in once, for both calls.
    assert_eq!(server.grants().len(), 1);
}

#[tokio::test]
async fn an_expired_session_is_renewed_once_and_the_request_replayed() {
    let server = Scripted::start().await;
    let client = server.client();
    client.token().await.unwrap();
    server.revoke_sessions();

    server.reply(Reply::json(200, r#"{"totalSize":1,"done":true,"records":[{"attributes":{"type":"Account","url":"/x"},"Name":"Acme"}]}"#));
    let records = client
        .query("SELECT Name FROM Account")
        .collect_records()
        .await
        .unwrap();
    assert_eq!(records[0]["Name"], "Acme");

    assert_eq!(server.grants().len(), 2, "one login, one re-login");
    let requests = server.requests();
    assert_eq!(requests.len(), 2, "the refused request and its replay");
    assert_eq!(
        requests[0].header("authorization"),
        Some(format!("Bearer {ACCESS_TOKEN_PREFIX}1").as_str())
    );
    assert_eq!(
        requests[1].header("authorization"),
        Some(format!("Bearer {ACCESS_TOKEN_PREFIX}2").as_str())
    );
    assert_eq!(requests[0].query, requests[1].query);
}

#[tokio::test]
async fn a_second_401_after_logging_in_again_is_surfaced() {
    let server = Scripted::start().await;
    server.reject_every_token();
    let client = server.client();

    let error = client.describe_global().await.unwrap_err();
    assert!(error.is_invalid_session(), "{error}");
    assert_eq!(error.class(), ErrorClass::Auth);
    assert_eq!(
        server.grants().len(),
        2,
        "the first login and exactly one more"
    );
    assert_eq!(
        server.requests().len(),
        2,
        "the request and exactly one replay"
    );
}

#[tokio::test]
async fn concurrent_requests_hit_by_one_expiry_log_in_again_once() {
    let server = Scripted::start().await;
    let client = server.client();
    client.token().await.unwrap();
    server.revoke_sessions();

    for _ in 0..5 {
        server.reply(Reply::json(200, r#"{"name":"Account","fields":[]}"#));
    }
    let calls: Vec<_> = (0..5)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.sobject("Account").describe().await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap().summary.name, "Account");
    }
    assert_eq!(server.grants().len(), 2);
    // Each of the five is sent with the old token and replayed, or, if it starts after the
    // re-login, sent once with the new one.
    let sent = server.requests().len();
    assert!((6..=10).contains(&sent), "{sent} requests");
}

#[tokio::test]
async fn token_errors_name_the_flow_and_are_not_retried() {
    let server = Scripted::start().await;
    server.token_reply(Reply::json(
        400,
        r#"{"error":"invalid_grant","error_description":"authentication failure"}"#,
    ));
    let client = server.client();

    let error = client.sobject("Account").describe().await.unwrap_err();
    match &error {
        Error::Auth {
            flow,
            error,
            description,
            status,
        } => {
            assert_eq!(flow.to_string(), "username-password");
            assert_eq!(error, "invalid_grant");
            assert_eq!(description, "authentication failure");
            assert_eq!(status.as_u16(), 400);
        }
        other => panic!("not an Auth error: {other:?}"),
    }
    assert_eq!(error.class(), ErrorClass::Auth);
    assert_eq!(server.grants().len(), 1, "a refused login is not retried");
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn a_token_endpoint_outage_is_retried() {
    let server = Scripted::start().await;
    server.token_reply(Reply::html(
        503,
        "<html><head><title>Service Unavailable</title></head></html>",
    ));
    let client = server.client();
    server.reply(Reply::json(
        200,
        r#"{"totalSize":0,"done":true,"records":[]}"#,
    ));
    client
        .query("SELECT Id FROM Account")
        .collect_records()
        .await
        .unwrap();
    assert_eq!(server.grants().len(), 2);
}

#[tokio::test]
async fn client_credentials_flow() {
    let server = Scripted::start().await;
    let client = server.client_with(
        server.config(),
        ClientCredentials::new(CLIENT_ID, CLIENT_SECRET),
    );
    client.token().await.unwrap();
    let grants = server.grants();
    assert_eq!(grant(&grants[0], "grant_type"), Some("client_credentials"));
    assert_eq!(grant(&grants[0], "client_id"), Some(CLIENT_ID));
    assert_eq!(grant(&grants[0], "client_secret"), Some(CLIENT_SECRET));
}

#[tokio::test]
async fn jwt_bearer_flow_signs_an_assertion_for_the_login_url() {
    #[derive(Deserialize)]
    struct Claims {
        iss: String,
        sub: String,
        aud: String,
    }
    let server = Scripted::start().await;
    let key = include_str!("../fixtures/jwt_private_key.pem");
    let flow = JwtBearer::new(CLIENT_ID, USERNAME, key).unwrap();
    let client = server.client_with(server.config(), flow);
    client.token().await.unwrap();

    let grants = server.grants();
    assert_eq!(
        grant(&grants[0], "grant_type"),
        Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    );
    assert_eq!(grant(&grants[0], "client_secret"), None);
    let assertion = grant(&grants[0], "assertion").unwrap();
    let public =
        DecodingKey::from_rsa_pem(include_bytes!("../fixtures/jwt_public_key.pem")).unwrap();
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[server.login_url.as_str()]);
    let claims = jsonwebtoken::decode::<Claims>(assertion, &public, &validation)
        .unwrap()
        .claims;
    assert_eq!(
        (claims.iss.as_str(), claims.sub.as_str()),
        (CLIENT_ID, USERNAME)
    );
    assert_eq!(claims.aud, server.login_url);
}

#[tokio::test]
async fn refresh_token_flow_keeps_the_rotated_refresh_token() {
    let server = Scripted::start().await;
    server.rotate_refresh_tokens();
    let flow =
        RefreshToken::new(CLIENT_ID, "original-refresh-token").with_client_secret(CLIENT_SECRET);
    let client = server.client_with(server.config(), flow);

    let token = client.token().await.unwrap();
    let rotated = token.refresh_token().unwrap().expose_secret().to_owned();
    assert_eq!(rotated, format!("{REFRESH_TOKEN_PREFIX}1"));

    server.revoke_sessions();
    client.sobject("Account").describe().await.ok();

    let grants = server.grants();
    assert_eq!(grants.len(), 2);
    assert_eq!(grant(&grants[0], "grant_type"), Some("refresh_token"));
    assert_eq!(
        grant(&grants[0], "refresh_token"),
        Some("original-refresh-token")
    );
    assert_eq!(grant(&grants[0], "client_secret"), Some(CLIENT_SECRET));
    assert_eq!(grant(&grants[1], "refresh_token"), Some(rotated.as_str()));
}
