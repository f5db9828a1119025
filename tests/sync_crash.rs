//! `sfpg sync`, the real binary, killed with SIGKILL in the middle of a backfill and started
//! again: the mirror ends equal to the org, the same Ids and field values, with no
//! duplicate and no gap. Then SIGTERM stops it cleanly.

// Helpers of a test crate may unwrap: a failure should stop the test where it happened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use sfpg_emulator::http::{EmulatorConfig, OrgSource, RunningEmulator};
use sfpg_testkit::TestDatabase;
use sfpg_testkit::binary::Sfpg;
use sfpg_testkit::process::{Crashing, wait_until};

const SFPG: Sfpg = Sfpg::new(env!("CARGO_BIN_EXE_sfpg")).logging("sfpg=info");

const OBJECTS: [&str; 2] = ["Account", "Contact"];

fn start_sync(db: &TestDatabase) -> Crashing {
    let url = db.url().to_owned();
    Crashing::start(move || SFPG.start(&url, &["sync", "--no-progress"]))
}

/// Registers the emulator's org as `acme` with `sfpg org add`, at 20 requests a second.
async fn add_acme(db: &TestDatabase, emulator: &RunningEmulator) {
    let url = emulator.instance_url();
    let pubsub = ["--pubsub-endpoint", emulator.pubsub_endpoint()];
    SFPG.add_org(db, "acme", url, &OBJECTS, &pubsub).await;
    SFPG.set_rate_per_second(db, "acme", 20).await;
}

/// Asserts that the mirror holds each of the org's records once, field for field.
async fn assert_mirror_equals_org(emulator: &RunningEmulator, client: &tokio_postgres::Client) {
    for object in OBJECTS {
        sfpg_testkit::world::assert_mirror_equals_org(emulator, client, "acme", &[object]).await;
        let table = object.to_ascii_lowercase();
        let row = client
            .query_one(
                &format!("SELECT count(*), count(DISTINCT sfid) FROM acme.{table}"),
                &[],
            )
            .await
            .unwrap();
        let in_org = emulator.with_org(|org| org.record_count(object)) as i64;
        assert_eq!(
            (row.get::<_, i64>(0), row.get::<_, i64>(1)),
            (in_org, in_org),
            "{object}"
        );
    }
}

/// (phase, backfill_done) of each object, by name.
async fn progress(client: &tokio_postgres::Client) -> Vec<(String, String, i64)> {
    client
        .query(
            "SELECT object_name, phase, backfill_done FROM sfpg.objects WHERE org_name = 'acme' ORDER BY object_name",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

async fn wait_for(
    client: &tokio_postgres::Client,
    timeout: Duration,
    what: &str,
    done: impl Fn(&Vec<(String, String, i64)>) -> bool,
) {
    wait_until(what, timeout, async || progress(client).await, done).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_backfill_the_sync_resumes_and_the_mirror_equals_the_org() {
    let emulator = sfpg_emulator::http::start(EmulatorConfig {
        org: OrgSource::Generated {
            records: 20_000,
            seed: 11,
        },
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let db = TestDatabase::create().await;
    add_acme(&db, &emulator).await;
    let client = db.connect().await;

    let mut sync = start_sync(&db);
    wait_for(
        &client,
        Duration::from_secs(60),
        "some pages written",
        |p| p.iter().map(|(_, _, done)| done).sum::<i64>() >= 2000,
    )
    .await;
    sync.kill();
    let at_kill = progress(&client).await;
    assert!(
        at_kill.iter().any(|(_, phase, _)| phase == "backfilling"),
        "killed too late to test a resumed backfill: {at_kill:?}"
    );

    sync.restart();
    wait_for(
        &client,
        Duration::from_secs(120),
        "every object live",
        |p| p.iter().all(|(_, phase, _)| phase == "live"),
    )
    .await;
    sync.stop_cleanly(Duration::from_secs(60)).await;

    assert_mirror_equals_org(&emulator, &client).await;
    let lease: Option<String> = client
        .query_one("SELECT owner FROM sfpg.leases WHERE org_name = 'acme'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(lease, None, "a clean stop releases the org");
}
