//! Change Data Capture through faults, end to end with the real `sfpg sync` binary: a
//! transaction over the emulator's overflow threshold (`GAP_OVERFLOW`: the sync polls the
//! object at once and the mirror equals the org), and a revoked session (`401`) and a
//! forgotten client (`403::Unknown client`) mid-stream while another user changes records:
//! the stream recovers, and every event the org published is applied exactly once.

// Helpers of a test crate may unwrap: a failure should stop the test where it happened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "sync_cdc/support.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde_json::json;
use sfpg_emulator::events::ChangeType;
use sfpg_emulator::http::{DEFAULT_USERNAME, EmulatorConfig, OrgSource, RunningEmulator};
use sfpg_testkit::TestDatabase;
use sfpg_testkit::process::{TestProcess, eventually};
use support::*;

const OBJECTS: [&str; 2] = ["Account", "Contact"];

async fn emulator(config: EmulatorConfig) -> Arc<RunningEmulator> {
    Arc::new(
        sfpg_emulator::http::start(EmulatorConfig {
            org: OrgSource::Generated {
                records: 200,
                seed: 41,
            },
            ..config
        })
        .await
        .unwrap(),
    )
}

/// An org mirrored and streamed by `sfpg sync`, safety polls an hour apart: only the
/// stream, and what it asks for, writes.
async fn streaming(
    emulator: &RunningEmulator,
) -> (TestDatabase, tokio_postgres::Client, TestProcess) {
    let db = TestDatabase::create().await;
    add_acme(&db, emulator, &OBJECTS).await;
    let client = db.connect().await;
    let sync = start_sync(&db, &["--poll-while-streaming", "1h"]);
    wait_streaming(&client, 2, Duration::from_secs(90)).await;
    (db, client, sync)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_over_the_overflow_threshold_is_caught_up_by_polling() {
    let emulator = emulator(EmulatorConfig::default()).await;
    let (_db, client, sync) = streaming(&emulator).await;
    let accounts = ids(&emulator, "Account");
    let gaps_before = stream(&client).await.4;
    // Three changes are published; the other five of the transaction are not.
    emulator.event_bus().set_overflow_threshold(3);
    emulator.with_org_mut(|org| {
        let user = org.user_id_by_username(DEFAULT_USERNAME).unwrap();
        for (n, id) in accounts[..8].iter().enumerate() {
            let phone = fields(json!({"Phone": format!("overflow-{n}")}));
            org.update("Account", id, &phone, &user).unwrap();
        }
    });
    let overflows = emulator
        .event_bus()
        .after(0, usize::MAX)
        .iter()
        .filter(|e| e.header.change_type == ChangeType::GapOverflow)
        .count();
    assert_eq!(overflows, 1, "the emulator published one GAP_OVERFLOW");

    wait_applied_all(&emulator, &client, Duration::from_secs(30)).await;
    assert_eq!(stream(&client).await.4 - gaps_before, 1, "one gap counted");
    // The object is polled at once, not at the next safety poll an hour away.
    wait_mirror_equals_org(&emulator, &client, &OBJECTS, Duration::from_secs(30)).await;
    sync.stop_cleanly(Duration::from_secs(60)).await;
}

/// Another user changing random Accounts, 20 a second, until `stop`.
fn change_accounts(
    emulator: &Arc<RunningEmulator>,
    stop: &Arc<AtomicBool>,
) -> tokio::task::JoinHandle<u64> {
    let accounts = ids(emulator, "Account");
    let emulator = Arc::clone(emulator);
    let stop = Arc::clone(stop);
    let count = AtomicU64::new(0);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        while !stop.load(Ordering::Relaxed) {
            tick.tick().await;
            let n = count.fetch_add(1, Ordering::Relaxed);
            change_random_account(&emulator, &accounts, n);
        }
        count.load(Ordering::Relaxed)
    })
}

/// Streams while another user changes records, lets `fault` strike, waits until the sync
/// logged `recovered` (its reason) and the stream is connected again, and checks that
/// every event published meanwhile was applied once and the mirror equals the org.
async fn survives(config: EmulatorConfig, fault: impl Fn(&RunningEmulator), reason: &str) {
    let emulator = emulator(config).await;
    let (_db, client, sync) = streaming(&emulator).await;
    change_random_account(&emulator, &ids(&emulator, "Account"), 0);
    wait_applied_all(&emulator, &client, Duration::from_secs(30)).await;
    let (_, first, events_before, _, _) = stream(&client).await;
    let first = first.unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let changer = change_accounts(&emulator, &stop);
    tokio::time::sleep(Duration::from_millis(500)).await;
    fault(&emulator);
    eventually(reason, Duration::from_secs(30), async || {
        sync.logged(reason) > 0
    })
    .await;
    wait_stream(&client, Duration::from_secs(30), "connected again", |s| {
        s.0 == "connected"
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, Ordering::Relaxed);
    let changed = changer.await.unwrap();
    wait_applied_all(&emulator, &client, Duration::from_secs(60)).await;

    let (_, last, events_after, _, _) = stream(&client).await;
    let published = published_between(&emulator, first, last.unwrap());
    assert!(changed >= 20, "only {changed} changes were made");
    assert_eq!(
        events_after - events_before,
        published,
        "events applied since replay id {first} against those the org published"
    );
    wait_mirror_equals_org(&emulator, &client, &OBJECTS, Duration::from_secs(10)).await;
    sync.stop_cleanly(Duration::from_secs(60)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_revoked_mid_stream_logs_in_again_and_loses_nothing() {
    let revoke = |emulator: &RunningEmulator| {
        emulator.revoke_sessions(None, false);
    };
    survives(
        EmulatorConfig::default(),
        revoke,
        "401::Authentication invalid",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_forgotten_mid_stream_handshakes_again_and_loses_nothing() {
    // The server loses the client: its held connect is answered `403::Unknown client`.
    let forget = |emulator: &RunningEmulator| {
        emulator.forget_cometd_clients(None);
    };
    survives(EmulatorConfig::default(), forget, "403::Unknown client").await;
}
