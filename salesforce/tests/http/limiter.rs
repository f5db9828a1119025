//! The rate limiter as the server sees it. The issue's limiter test (20 background
//! requests and an interactive one) runs against the emulator, in `tests/emulator.rs`.

use std::time::Duration;

use sfpg_salesforce::{Client, Rate, RateLimiter};

use crate::scripted::*;

const EMPTY_PAGE: &str = r#"{"totalSize":0,"done":true,"records":[]}"#;

#[tokio::test]
async fn replays_and_retries_pass_through_the_limiter() {
    let server = Scripted::start().await;
    let rate = Rate::per_second(10).unwrap();
    let client = Client::new(server.config(), password(), RateLimiter::new(rate)).unwrap();
    client.token().await.unwrap();
    server.revoke_sessions();
    server.reply(Reply::error(
        503,
        "SERVER_UNAVAILABLE",
        "Server temporarily unavailable.",
    ));
    server.reply(Reply::json(200, EMPTY_PAGE));
    client
        .query("SELECT Id FROM Account")
        .collect_records()
        .await
        .unwrap();
    let requests = server.requests();
    assert_eq!(requests.len(), 3, "refused, replayed, retried");
    for pair in requests.windows(2) {
        assert!(
            pair[1].at - pair[0].at >= Duration::from_millis(95),
            "{:?}",
            pair[1].at - pair[0].at
        );
    }
}
