//! Many orgs against one mirror database, with the real `sfpg` binary: a rate limit and a
//! budget changed through the CLI while `sfpg sync` runs, measured from the emulator's
//! request log (`live_settings`); one sync process serving several orgs while some of them
//! are broken (`broken_orgs`); workers sharing orgs through leases: a balanced split, a
//! newcomer, a clean leave and a SIGKILL (`takeover`); a worker paused past its lease whose
//! next write is refused, and database connections killed under the workers (`fencing`);
//! a worker holding 300 orgs stopped with SIGTERM, which exits at once (`clean_stop`).

// Helpers of a test crate may unwrap: a failure should stop the test where it happened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod broken_orgs;
mod clean_stop;
mod fencing;
mod live_settings;
mod takeover;

use std::time::Duration;

use sfpg_emulator::http::{
    DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, EmulatorConfig, LoggedRequest, OrgSource,
    RunningEmulator,
};
use sfpg_testkit::TestDatabase;
use sfpg_testkit::binary::Sfpg;
use sfpg_testkit::process::TestProcess;

const SFPG: Sfpg = Sfpg::new(env!("CARGO_BIN_EXE_sfpg")).logging("sfpg=warn");
const OBJECTS: [&str; 2] = ["Account", "Contact"];
const TOKEN_PATH: &str = "/services/oauth2/token";

/// Runs one `sfpg` command, which must succeed; returns what it printed.
async fn run(db: &TestDatabase, args: &[&str]) -> String {
    SFPG.run(db, args).await
}

/// Starts `sfpg sync` with `extra` flags; it is killed if the test ends without stopping it.
fn start_sync(db: &TestDatabase, extra: &[&str]) -> TestProcess {
    let mut args = vec!["sync", "--no-progress"];
    args.extend_from_slice(extra);
    SFPG.start(db.url(), &args)
}

/// SIGTERM, and the clean exit it must lead to.
async fn stop(mut sync: TestProcess) {
    sync.signal("TERM");
    let status = sync.exit_within(Duration::from_secs(20)).await;
    assert!(status.success(), "sfpg sync exited with {status:?}");
}

async fn emulator(records: usize, seed: u64) -> RunningEmulator {
    sfpg_emulator::http::start(EmulatorConfig {
        org: OrgSource::Generated { records, seed },
        ..EmulatorConfig::default()
    })
    .await
    .unwrap()
}

/// Registers `name` on `emulator` (client credentials, checked by logging in) mirroring
/// Account and Contact, at `requests` per `per`.
async fn add_org(
    db: &TestDatabase,
    name: &str,
    emulator: &RunningEmulator,
    requests: &str,
    per: &str,
) {
    let objects = OBJECTS.join(",");
    run(
        db,
        &[
            "org",
            "add",
            name,
            "--instance-url",
            emulator.instance_url(),
            "--client-id",
            DEFAULT_CLIENT_ID,
            "--client-secret",
            DEFAULT_CLIENT_SECRET,
            "--objects",
            &objects,
            "--pubsub-endpoint",
            emulator.pubsub_endpoint(),
            "--batch-size",
            "200",
        ],
    )
    .await;
    run(
        db,
        &[
            "org",
            "set-rate-limit",
            name,
            "--requests",
            requests,
            "--per",
            per,
        ],
    )
    .await;
}

/// The requests that used the daily allocation, oldest first.
fn counted(emulator: &RunningEmulator) -> Vec<LoggedRequest> {
    emulator
        .requests(0)
        .into_iter()
        .filter(|r| r.counted)
        .collect()
}

/// How many times a client logged in.
fn logins(emulator: &RunningEmulator) -> usize {
    emulator
        .requests(0)
        .iter()
        .filter(|r| r.path == TOKEN_PATH)
        .count()
}

/// Now, in milliseconds since the epoch: the unit the checks below compare request times in.
fn now() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(since_epoch.as_millis()).unwrap()
}

/// When the emulator received a request, in milliseconds since the epoch.
fn at(request: &LoggedRequest) -> i64 {
    request.time.timestamp_millis()
}

/// The pauses between consecutive requests, in milliseconds.
fn gaps(requests: &[LoggedRequest]) -> Vec<i64> {
    requests
        .windows(2)
        .map(|pair| at(&pair[1]) - at(&pair[0]))
        .collect()
}

/// Whether every object of `org` is live.
async fn all_live(client: &tokio_postgres::Client, org: &str) -> bool {
    let row = client
        .query_one(
            "SELECT count(*) FILTER (WHERE phase = 'live'), count(*) FROM sfpg.objects WHERE org_name = $1",
            &[&org],
        )
        .await
        .unwrap();
    let (live, all): (i64, i64) = (row.get(0), row.get(1));
    all > 0 && live == all
}

/// Asserts that the mirror of `org` holds exactly its records.
async fn assert_mirror_equals_org(
    emulator: &RunningEmulator,
    client: &tokio_postgres::Client,
    org: &str,
) {
    sfpg_testkit::world::assert_mirror_equals_org(emulator, client, org, &OBJECTS).await;
}
