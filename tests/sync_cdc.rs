//! Change Data Capture end to end: the real `sfpg sync` binary streaming an emulated org's
//! change events into the mirror over CometD, killed and started again, with another user
//! changing records meanwhile.

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
    let emulator = emulator(300).await;
    let db = TestDatabase::create().await;
    add_acme(&db, &emulator, &OBJECTS).await;
    let client = db.connect().await;
    let mut sync = crashing_sync(&db);
    wait_streaming(&client, 2, Duration::from_secs(90)).await;
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
