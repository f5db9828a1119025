//! Freshness of an object the Change Data Capture stream keeps current: its polls drop to
//! the safety cadence (here an hour), yet its lag stays within a keepalive of now, because
//! each keepalive the stream receives with nothing held back says the mirror has every
//! change up to then; an event applied brings the lag down to its commit. Over CometD (an
//! empty long poll) and over the Pub/Sub API (an empty fetch response).

// Helpers of a test crate may unwrap: a failure should stop the test where it happened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "sync_cdc/support.rs"]
mod cdc;

use std::time::{Duration, Instant};

use serde_json::json;
use sfpg_emulator::http::EmulatorConfig;
use sfpg_testkit::TestDatabase;

/// How often the emulator's streams send a keepalive when they have no event.
const KEEPALIVE: Duration = Duration::from_secs(1);

/// Account's lag, and the age of its last caught-up poll, as status reads them.
async fn lag_and_poll_age(client: &tokio_postgres::Client) -> (Option<f64>, Option<f64>) {
    let row = client
        .query_one(
            "SELECT s.lag_seconds, extract(epoch FROM now() - o.caught_up_at)::float8
               FROM sfpg.status s
               JOIN sfpg.objects o USING (org_name, object_name)
              WHERE org_name = 'acme' AND object_name = 'Account'",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

async fn keepalives_keep_a_streamed_object_fresh(transport: &str) {
    let config = EmulatorConfig {
        cometd_connect_timeout: KEEPALIVE,
        pubsub_keepalive: KEEPALIVE,
        ..sfpg_testkit::world::generated(20, 7)
    };
    let emulator = sfpg_emulator::http::start(config).await.unwrap();
    let db = TestDatabase::create().await;
    cdc::add_acme_over(&db, &emulator, &["Account"], transport).await;
    let client = db.connect().await;
    let _sync = cdc::start_sync(&db, &["--poll-while-streaming", "1h"]);
    cdc::wait_streaming(&client, 1, Duration::from_secs(90)).await;

    // Once the object has joined the stream, its polls stop for the hour. Sampled for 8 s:
    // in the last 2 s its last poll is over 3 s old, and the lag stays within a keepalive
    // (plus the sampling's own delay).
    let end = Instant::now() + Duration::from_secs(8);
    let mut samples = Vec::new();
    while Instant::now() < end {
        samples.push(lag_and_poll_age(&client).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let late = &samples[samples.len() - 10..];
    let bound = KEEPALIVE.as_secs_f64() + 1.0;
    assert!(
        late.iter()
            .all(|(lag, polled)| lag.is_some_and(|l| l < bound) && polled.is_some_and(|p| p > 3.0)),
        "{transport}: (lag, age of the last poll) {samples:?}"
    );

    // An event applied: fresh as of its commit.
    let id = cdc::ids(&emulator, "Account").remove(0);
    emulator
        .update_as(
            "Account",
            &id,
            &cdc::fields(json!({"Phone": "555-0100"})),
            None,
        )
        .unwrap();
    cdc::wait_applied_all(&emulator, &client, Duration::from_secs(30)).await;
    let (lag, _) = lag_and_poll_age(&client).await;
    assert!(lag.is_some_and(|l| l < bound), "{transport}: lag {lag:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cometd_keepalives_keep_a_streamed_object_fresh() {
    keepalives_keep_a_streamed_object_fresh("cometd").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_keepalives_keep_a_streamed_object_fresh() {
    keepalives_keep_a_streamed_object_fresh("pubsub").await;
}
