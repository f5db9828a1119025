//! The platform event latency benchmark (figures in docs/benchmarks.md): one session
//! `INSERT`s an `Order_Event__e` row through the proxy and commits; another session
//! `LISTEN`s on `order_event__e`; the time from sending the COMMIT to receiving the
//! `NOTIFY` is measured, one event at a time, through the emulator (publish at the push,
//! CometD delivery to `sfpg sync`, insert, NOTIFY). Ignored by default: run it with
//! `cargo test --release --test platform_events_lag -- --ignored --nocapture`
//! (`SFPG_PE_EVENTS` changes the 300 events).

// Helpers of a test crate may unwrap: a failure should stop the test where it happened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "sync_cdc/support.rs"]
mod cdc;
#[path = "platform_events/support.rs"]
mod support;

use std::time::{Duration, Instant};

use sfpg_emulator::http::{EmulatorConfig, OrgSource};
use sfpg_testkit::TestDatabase;
use sfpg_testkit::proxy::{ProxySetup, start_proxy};
use sfpg_testkit::world::master_key;
use support::*;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run with --ignored --nocapture"]
async fn insert_commit_to_notify() {
    let events: usize = std::env::var("SFPG_PE_EVENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(300);
    let emulator = sfpg_emulator::http::start(EmulatorConfig {
        org: OrgSource::Generated {
            records: 5,
            seed: 41,
        },
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let db = TestDatabase::create().await;
    cdc::add_acme(&db, &emulator, &["Account", "Order_Event__e"]).await;
    let direct = db.connect().await;
    let sync = cdc::start_sync(&db, &[]);
    wait_event_stream(&direct, Duration::from_secs(60)).await;
    let (_listener, mut notifications) = listen(&db, "order_event__e").await;
    let proxy = start_proxy(
        &db,
        ProxySetup {
            push_with: Some(master_key()),
            ..ProxySetup::default()
        },
    )
    .await;
    let client = db.connect_via(proxy.addr).await;
    let insert = client
        .prepare(&format!(
            "INSERT INTO {TABLE} (order_number__c, quantity__c) VALUES ($1, 1)"
        ))
        .await
        .unwrap();
    let mut lags = Vec::with_capacity(events);
    let mut commits = Vec::with_capacity(events);
    for n in 0..events + 10 {
        client.batch_execute("BEGIN").await.unwrap();
        client.execute(&insert, &[&format!("B-{n}")]).await.unwrap();
        let sent = Instant::now();
        client.batch_execute("COMMIT").await.unwrap();
        let committed = sent.elapsed();
        let (_, at) = tokio::time::timeout(Duration::from_secs(10), notifications.recv())
            .await
            .expect("no NOTIFY within 10 s")
            .unwrap();
        // The first few warm the caches (describe, prepared statements).
        if n >= 10 {
            lags.push(at.duration_since(sent).as_secs_f64() * 1000.0);
            commits.push(committed.as_secs_f64() * 1000.0);
        }
    }
    lags.sort_by(f64::total_cmp);
    commits.sort_by(f64::total_cmp);
    println!(
        "platform events, INSERT; COMMIT through the proxy to NOTIFY, {events} events one at a time: \
         p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms (the COMMIT itself: p50 {:.1} ms, p99 {:.1} ms)",
        percentile(&lags, 0.5),
        percentile(&lags, 0.9),
        percentile(&lags, 0.99),
        lags[lags.len() - 1],
        percentile(&commits, 0.5),
        percentile(&commits, 0.99),
    );
    let rows: i64 = direct
        .query_one(&format!("SELECT count(*) FROM {TABLE}"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows as usize, events + 10, "one row per event");
    sync.stop_cleanly(Duration::from_secs(30)).await;
}
