//! Secrets never print: not in `Debug`, not in errors. Log lines are checked in
//! `tests/logs.rs`, which owns its process's tracing subscriber.

use sfpg_salesforce::{ClientCredentials, Config, Credentials, JwtBearer, RefreshToken};

use crate::scripted::*;

const PRIVATE_KEY: &str = include_str!("../fixtures/jwt_private_key.pem");

#[tokio::test]
async fn debug_output_of_credentials_configs_clients_and_tokens() {
    let server = Scripted::start().await;
    let flows: Vec<Credentials> = vec![
        password().into(),
        ClientCredentials::new(CLIENT_ID, CLIENT_SECRET).into(),
        JwtBearer::new(CLIENT_ID, USERNAME, PRIVATE_KEY)
            .unwrap()
            .into(),
        RefreshToken::new(CLIENT_ID, "original-refresh-token")
            .with_client_secret(CLIENT_SECRET)
            .into(),
    ];
    for flow in &flows {
        assert_clean(&format!("{flow:?} {flow:#?}"));
    }
    let config = Config::new(&server.login_url).unwrap();
    assert_clean(&format!("{config:?}"));

    server.rotate_refresh_tokens();
    let client = server.client_with(server.config(), flows[3].clone());
    let token = client.token().await.unwrap();
    assert!(token.refresh_token().is_some());
    assert_clean(&format!("{client:?} {token:?} {token:#?}"));
}

#[tokio::test]
async fn errors_do_not_carry_secrets() {
    let server = Scripted::start().await;
    server.token_reply(Reply::json(
        400,
        r#"{"error":"invalid_grant","error_description":"authentication failure"}"#,
    ));
    let client = server.client();
    let auth = client.describe_global().await.unwrap_err();
    assert_clean(&format!("{auth} {auth:?}"));

    server.reject_every_token();
    let session = client.describe_global().await.unwrap_err();
    assert!(session.is_invalid_session());
    assert_clean(&format!("{session} {session:?}"));
}
