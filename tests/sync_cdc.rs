//! Change Data Capture end to end: the real `sfpg sync` binary streaming an emulated org's
//! change events into the mirror over CometD and over the Pub/Sub API, killed and started
//! again, with another user changing records meanwhile; and the `auto` transport, which
//! falls back to CometD when the Pub/Sub port is closed.

// Helpers of a test crate may unwrap: a failure should stop the test where it happened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "sync_cdc/support.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use sfpg_emulator::http::{EmulatorConfig, OrgSource, RunningEmulator};
use sfpg_testkit::TestDatabase;
use support::*;

const OBJECTS: [&str; 2] = ["Account", "Contact"];

async fn emulator(records: usize) -> Arc<RunningEmulator> {
    Arc::new(
        sfpg_emulator::http::start(EmulatorConfig {
            org: OrgSource::Generated { records, seed: 23 },
            ..EmulatorConfig::default()
        })
        .await
        .unwrap(),
    )
}

/// Another user changing random Accounts at `per_second` until `stop`; how many changes.
fn change_accounts(
    emulator: &Arc<RunningEmulator>,
    per_second: u64,
    stop: &Arc<AtomicBool>,
) -> (tokio::task::JoinHandle<()>, Arc<AtomicU64>) {
    let accounts = ids(emulator, "Account");
    let emulator = Arc::clone(emulator);
    let stop = Arc::clone(stop);
    let count = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&count);
    let handle = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / per_second));
        while !stop.load(Ordering::Relaxed) {
            tick.tick().await;
            let n = counted.fetch_add(1, Ordering::Relaxed);
            change_random_account(&emulator, &accounts, n);
        }
    });
    (handle, count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_ten_times_while_records_change_the_mirror_loses_and_doubles_nothing() {
    killed_ten_times_over("cometd").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_ten_times_during_a_pubsub_stream_the_mirror_loses_and_doubles_nothing() {
    killed_ten_times_over("pubsub").await;
}

/// Ten `kill -9`s of `sfpg sync` streaming over `transport` while another user changes
/// Accounts at 50/s: every event the org published after the first applied one is applied
/// exactly once, and the mirror equals the org.
async fn killed_ten_times_over(transport: &str) {
    let emulator = emulator(300).await;
    let db = TestDatabase::create().await;
    add_acme_over(&db, &emulator, &OBJECTS, transport).await;
    let client = db.connect().await;
    let mut sync = crashing_sync(&db);
    wait_streaming(&client, 2, Duration::from_secs(90)).await;
    assert_eq!(super_transport(&client).await, transport);
    // One change, applied: from its replay id on every event the org publishes must be
    // applied exactly once.
    change_random_account(&emulator, &ids(&emulator, "Account"), 0);
    wait_applied_all(&emulator, &client, Duration::from_secs(30)).await;
    let (_, first, events_before, _, _) = stream(&client).await;
    let first = first.unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let (changer, changes) = change_accounts(&emulator, 50, &stop);
    for kill in 0..10 {
        // Let it apply a while, then SIGKILL it mid-stream and start it again.
        let run = Duration::from_millis(700 + 150 * (kill % 4));
        sync.crash(run, Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    changer.await.unwrap();
    wait_applied_all(&emulator, &client, Duration::from_secs(60)).await;
    let (state, last, events_after, _, _) = stream(&client).await;
    let last = last.unwrap();
    sync.stop_cleanly(Duration::from_secs(60)).await;

    let published = published_between(&emulator, first, last);
    let changed = changes.load(Ordering::Relaxed) as i64;
    assert!(changed >= 400, "only {changed} changes were made");
    eprintln!(
        "{changed} changes, {published} events published after replay id {first}, {} applied",
        events_after - events_before
    );
    assert_eq!(
        events_after - events_before,
        published,
        "events applied since replay id {first} against those the org published (state {state})"
    );
    sfpg_testkit::world::assert_mirror_equals_org(&emulator, &client, "acme", &OBJECTS).await;
}

/// The transport the stream runs on.
async fn super_transport(client: &tokio_postgres::Client) -> String {
    transport(client).await.0.unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_falls_back_to_cometd_when_the_pubsub_port_is_closed_and_says_why() {
    let emulator = emulator(20).await;
    let db = TestDatabase::create().await;
    add_acme_over(&db, &emulator, &OBJECTS, "auto").await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    SFPG.run(
        &db,
        &["org", "set-cdc", "acme", "on", "--pubsub-endpoint", &closed],
    )
    .await;
    let client = db.connect().await;
    let mut sync = start_sync(&db, &[]);
    wait_streaming(&client, 2, Duration::from_secs(90)).await;
    let (kind, reason) = transport(&client).await;
    assert_eq!(kind.as_deref(), Some("cometd"));
    let reason = reason.unwrap_or_default();
    assert!(
        reason.contains("transport auto") && reason.contains("CometD instead"),
        "{reason}"
    );
    change_random_account(&emulator, &ids(&emulator, "Account"), 1);
    wait_applied_all(&emulator, &client, Duration::from_secs(30)).await;
    let status = sfpg_testkit::binary::text(&SFPG.output(&db, &["status"]).await);
    assert!(
        status.contains("over CometD [transport auto: the Pub/Sub API cannot be used"),
        "{status}"
    );

    // The port open again (the emulator's): the next subscription runs over Pub/Sub.
    SFPG.run(
        &db,
        &[
            "org",
            "set-cdc",
            "acme",
            "on",
            "--pubsub-endpoint",
            emulator.pubsub_endpoint(),
        ],
    )
    .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while super_transport(&client).await != "pubsub" {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            transport(&client).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_streaming(&client, 2, Duration::from_secs(30)).await;
    change_random_account(&emulator, &ids(&emulator, "Account"), 2);
    wait_applied_all(&emulator, &client, Duration::from_secs(30)).await;
    let status = sfpg_testkit::binary::text(&SFPG.output(&db, &["status"]).await);
    assert!(status.contains("over Pub/Sub [transport auto"), "{status}");
    assert_eq!(emulator.pubsub_streams().len(), 1);
    sync.signal("TERM");
    assert!(sync.exit_within(Duration::from_secs(60)).await.success());
    sfpg_testkit::world::assert_mirror_equals_org(&emulator, &client, "acme", &OBJECTS).await;
}
