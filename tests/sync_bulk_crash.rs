//! `sfpg sync`, the real binary, backfilling through Bulk API 2.0 query jobs, killed with
//! SIGKILL at random points three times (while the job is created, polled, or a page is
//! streamed into COPY) and started again each time: the mirror ends equal to the org, record
//! for record, with no duplicate and no gap, and the job is the same one throughout (each
//! page committed with the next locator; a restart resumes at the page it had not finished).

// Helpers of a test crate may unwrap: a failure should stop the test where it happened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use sfpg_emulator::http::{EmulatorConfig, OrgSource, RunningEmulator};
use sfpg_testkit::TestDatabase;
use sfpg_testkit::binary::Sfpg;
use sfpg_testkit::process::{Crashing, random_between, wait_until};

const SFPG: Sfpg = Sfpg::new(env!("CARGO_BIN_EXE_sfpg")).logging("sfpg=info");

const OBJECTS: [&str; 2] = ["Account", "Contact"];

fn start_sync(db: &TestDatabase) -> Crashing {
    // Small pages, so that a kill lands inside one more often than between two.
    let args = [
        "sync",
        "--no-progress",
        "--bulk-page-size",
        "700",
        "--bulk-poll-cap",
        "200ms",
    ];
    let url = db.url().to_owned();
    Crashing::start(move || SFPG.start(&url, &args))
}

/// Registers the emulator's org as `acme` with `sfpg org add`, every object at or above
/// the bulk threshold of 1,000 records, at 50 requests a second.
async fn add_acme(db: &TestDatabase, emulator: &RunningEmulator) {
    let url = emulator.instance_url();
    let threshold = [
        "--bulk-threshold",
        "1000",
        "--pubsub-endpoint",
        emulator.pubsub_endpoint(),
    ];
    SFPG.add_org(db, "acme", url, &OBJECTS, &threshold).await;
    SFPG.set_rate_per_second(db, "acme", 50).await;
}

/// Each object's (name, phase, records written, job).
type Progress = Vec<(String, String, i64, Option<String>)>;

async fn progress(client: &tokio_postgres::Client) -> Progress {
    client
        .query(
            "SELECT object_name, phase, backfill_done, bulk_job_id FROM sfpg.objects
              WHERE org_name = 'acme' ORDER BY object_name",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect()
}

async fn wait_for(
    client: &tokio_postgres::Client,
    timeout: Duration,
    what: &str,
    done: impl Fn(&Progress) -> bool,
) {
    wait_until(what, timeout, async || progress(client).await, done).await;
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

/// How many query jobs were created, from the emulator's request log.
fn job_creations(emulator: &RunningEmulator) -> usize {
    emulator
        .requests(0)
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/jobs/query"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_three_times_mid_bulk_backfill_the_mirror_equals_the_org() {
    let emulator = sfpg_emulator::http::start(EmulatorConfig {
        org: OrgSource::Generated {
            records: 120_000,
            seed: 12,
        },
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let db = TestDatabase::create().await;
    add_acme(&db, &emulator).await;
    let client = db.connect().await;

    let mut sync = start_sync(&db);
    for kill in 1..=3 {
        let wait = random_between(Duration::from_millis(300), Duration::from_millis(2500));
        sync.kill_after(wait).await;
        let at_kill = progress(&client).await;
        eprintln!("kill {kill} after {wait:?}: {at_kill:?}");
        assert!(
            at_kill.iter().any(|(_, phase, _, _)| phase != "live"),
            "kill {kill} came after the backfill: {at_kill:?}"
        );
        sync.restart();
    }

    wait_for(
        &client,
        Duration::from_secs(300),
        "every object live",
        |p| p.iter().all(|(_, phase, _, _)| phase == "live"),
    )
    .await;
    sync.stop_cleanly(Duration::from_secs(60)).await;

    assert_mirror_equals_org(&emulator, &client).await;
    // A restart resumes the job it had. Only a kill between a job's creation and the
    // commit of its Id can leave one behind (it expires on its own), so at most one a kill.
    let jobs = job_creations(&emulator);
    assert!(
        (OBJECTS.len()..=OBJECTS.len() + 3).contains(&jobs),
        "{jobs} query jobs"
    );
    let bulk_left: i64 = client
        .query_one(
            "SELECT count(*) FROM sfpg.objects WHERE bulk_purpose IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(bulk_left, 0);
}
