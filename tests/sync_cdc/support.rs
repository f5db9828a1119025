//! What the Change Data Capture scenarios share: an emulated org registered with the real
//! binary, `sfpg sync` started and killed (through `sfpg_testkit::process::Crashing`), waits
//! on the stream's saved state, another user changing records, and the mirror compared with
//! the org.

// Each test crate that includes this module uses part of it.
#![allow(dead_code)]

use std::time::Duration;

use rand::Rng;
use serde_json::{Map, Value, json};
use sfpg_emulator::http::RunningEmulator;
use sfpg_testkit::TestDatabase;
use sfpg_testkit::binary::Sfpg;
use sfpg_testkit::process::{Crashing, TestProcess, wait_until};

pub const SFPG: Sfpg = Sfpg::new(env!("CARGO_BIN_EXE_sfpg")).logging("sfpg=info");

pub fn start_sync(db: &TestDatabase, extra: &[&str]) -> TestProcess {
    let mut args = vec!["sync", "--no-progress"];
    args.extend_from_slice(extra);
    SFPG.start(db.url(), &args)
}

/// [`start_sync`] as a crash test's process: killed with SIGKILL and started again.
pub fn crashing_sync(db: &TestDatabase) -> Crashing {
    let url = db.url().to_owned();
    Crashing::start(move || SFPG.start(&url, &["sync", "--no-progress"]))
}

/// Registers the emulator's org as `acme` mirroring `objects`, at 20 requests a second,
/// streaming over CometD (the scenarios written for it).
pub async fn add_acme(db: &TestDatabase, emulator: &RunningEmulator, objects: &[&str]) {
    add_acme_over(db, emulator, objects, "cometd").await;
}

/// [`add_acme`] with the emulator's Pub/Sub endpoint and the stream's `transport`
/// (`auto`, `pubsub` or `cometd`).
pub async fn add_acme_over(
    db: &TestDatabase,
    emulator: &RunningEmulator,
    objects: &[&str],
    transport: &str,
) {
    let pubsub = ["--pubsub-endpoint", emulator.pubsub_endpoint()];
    SFPG.add_org(db, "acme", emulator.instance_url(), objects, &pubsub)
        .await;
    SFPG.set_rate_per_second(db, "acme", 20).await;
    SFPG.run(
        db,
        &["org", "set-cdc", "acme", "on", "--transport", transport],
    )
    .await;
}

/// The transport the stream runs on, and why, as the sync recorded it.
pub async fn transport(client: &tokio_postgres::Client) -> (Option<String>, Option<String>) {
    client
        .query_opt(
            "SELECT transport, transport_reason FROM sfpg.streams WHERE org_name = 'acme'",
            &[],
        )
        .await
        .unwrap()
        .map_or((None, None), |r| (r.get(0), r.get(1)))
}

/// The stream's saved row: (state, replay id, events, echoes, gaps).
pub async fn stream(client: &tokio_postgres::Client) -> (String, Option<i64>, i64, i64, i64) {
    client
        .query_opt(
            "SELECT state, replay_id, events, echoes, gaps FROM sfpg.streams WHERE org_name = 'acme'",
            &[],
        )
        .await
        .unwrap()
        .map_or(("none".into(), None, 0, 0, 0), |r| {
            (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4))
        })
}

/// Waits until `done` holds of the stream's row.
pub async fn wait_stream(
    client: &tokio_postgres::Client,
    timeout: Duration,
    what: &str,
    done: impl Fn(&(String, Option<i64>, i64, i64, i64)) -> bool,
) {
    wait_until(what, timeout, async || stream(client).await, done).await;
}

/// Waits until every object is live, `streamed` of them stream, and the stream is
/// connected.
pub async fn wait_streaming(client: &tokio_postgres::Client, streamed: i64, timeout: Duration) {
    let read = async || {
        let row = client
            .query_one(
                "SELECT bool_and(phase = 'live'), count(*) FILTER (WHERE source = 'stream')
                   FROM sfpg.objects WHERE org_name = 'acme'",
                &[],
            )
            .await
            .unwrap();
        let live = row.get::<_, Option<bool>>(0).unwrap_or(false);
        (live, row.get::<_, i64>(1), stream(client).await)
    };
    wait_until("streaming", timeout, read, |(live, streaming, state)| {
        *live && *streaming == streamed && state.0 == "connected"
    })
    .await;
}

/// Waits until the stream has applied everything the org published.
pub async fn wait_applied_all(
    emulator: &RunningEmulator,
    client: &tokio_postgres::Client,
    timeout: Duration,
) {
    let last = emulator.event_bus().last_replay_id();
    wait_stream(client, timeout, "every event applied", |s| {
        s.1.is_some_and(|id| id >= last)
    })
    .await;
}

/// The Ids of an object's live records.
pub fn ids(emulator: &RunningEmulator, object: &str) -> Vec<String> {
    emulator.with_org(|org| {
        let cursor = org
            .query(&format!("SELECT Id FROM {object}"), false)
            .unwrap();
        org.page(&cursor, 0, cursor.len(), "62.0")
            .into_iter()
            .map(|r| r["Id"].as_str().unwrap().to_owned())
            .collect()
    })
}

pub fn fields(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap()
}

/// Another user's change to a random Account: a new phone, a city, or an explicit null.
pub fn change_random_account(emulator: &RunningEmulator, accounts: &[String], n: u64) {
    let mut rng = rand::rng();
    let id = &accounts[rng.random_range(0..accounts.len())];
    let change = match n % 3 {
        0 => json!({"Phone": format!("555-{n:06}")}),
        1 => json!({"BillingCity": format!("City {n}"), "NumberOfEmployees": n % 1000}),
        _ => json!({"Phone": null, "Description": format!("change {n}")}),
    };
    emulator
        .update_as("Account", id, &fields(change), None)
        .unwrap();
}

/// Events the org published with a replay id in `(after, upto]`.
pub fn published_between(emulator: &RunningEmulator, after: i64, upto: i64) -> i64 {
    emulator
        .event_bus()
        .after(after, usize::MAX)
        .iter()
        .filter(|e| e.replay_id <= upto)
        .count() as i64
}

/// Waits until the mirror of `objects` equals the org; how long that took.
pub async fn wait_mirror_equals_org(
    emulator: &RunningEmulator,
    client: &tokio_postgres::Client,
    objects: &[&str],
    within: Duration,
) -> Duration {
    let started = std::time::Instant::now();
    let diff = async || {
        let mut diff = Vec::new();
        for object in objects {
            diff.extend(sfpg_testkit::world::mirror_diff(emulator, client, "acme", object).await);
        }
        diff
    };
    wait_until("the mirror equal to the org", within, diff, Vec::is_empty).await;
    started.elapsed()
}
