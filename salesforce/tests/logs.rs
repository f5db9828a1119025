//! Log lines at every level, the HTTP stack's included, never carry a secret.
//!
//! A test binary of its own: the tracing subscriber is process-wide state, and tests
//! running beside this one would race its per-callsite filters.

// As in `tests/http`, support code may unwrap.
#![allow(clippy::unwrap_used)]

// Shared with the `http` tests, of which this binary uses a part.
#[allow(dead_code)]
#[path = "http/cometd_server.rs"]
mod cometd_server;
#[allow(dead_code)]
#[path = "http/scripted.rs"]
mod scripted;

use std::io::Write;
use std::sync::{Arc, Mutex};

use scripted::*;
use sfpg_salesforce::RefreshToken;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn log_lines_at_every_level_do_not_carry_secrets() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = Scripted::start().await;
    server.rotate_refresh_tokens();
    let flow =
        RefreshToken::new(CLIENT_ID, "original-refresh-token").with_client_secret(CLIENT_SECRET);
    let client = server.client_with(server.config(), flow);
    server.reply(Reply::json(
        200,
        r#"{"totalSize":0,"done":true,"records":[]}"#,
    ));
    client
        .query("SELECT Id FROM Account")
        .collect_records()
        .await
        .unwrap();
    server.revoke_sessions();
    server.reply(Reply::error(
        503,
        "SERVER_UNAVAILABLE",
        "Server temporarily unavailable.",
    ));
    server.reply(Reply::json(
        200,
        r#"{"totalSize":0,"done":true,"records":[]}"#,
    ));
    client
        .query("SELECT Id FROM Account")
        .collect_records()
        .await
        .unwrap();
    server.token_reply(Reply::json(
        400,
        r#"{"error":"invalid_grant","error_description":"expired access/refresh token"}"#,
    ));
    server.revoke_sessions();
    client.describe_global().await.unwrap_err();

    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    // The flows above were logged, so the absence of secrets means something.
    assert!(text.contains("salesforce.request"), "{text}");
    assert!(text.contains("salesforce.auth"), "{text}");
    assert!(text.contains("retrying"), "{text}");
    assert_clean(&text);
}
