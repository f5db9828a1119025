//! `sfpg sync`, the real binary, killed with SIGKILL in the middle of a backfill and started
//! again: the mirror ends equal to the org, the same Ids and field values, with no
//! duplicate and no gap. Then SIGTERM stops it cleanly.

// Helpers of a test crate may unwrap: a failure should stop the test where it happened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../sync/tests/emulated/mirror.rs"]
mod mirror;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sfpg_emulator::http::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, EmulatorConfig, OrgSource};
use sfpg_testkit::TestDatabase;

/// A fixed test key (base64 of 32 bytes).
const MASTER_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const OBJECTS: [&str; 2] = ["Account", "Contact"];

fn sfpg(db: &TestDatabase, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sfpg"));
    command
        .args(args)
        .env("DATABASE_URL", db.url())
        .env("SFPG_MASTER_KEY", MASTER_KEY)
        .env("RUST_LOG", "sfpg=info");
    command
}

/// Runs one `sfpg` command to its end, off the runtime's threads: the emulator it talks to
/// is served by this test's runtime.
async fn run(db: &TestDatabase, args: &[&str]) {
    let mut command = sfpg(db, args);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        output.status.success(),
        "sfpg {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn start_sync(db: &TestDatabase) -> Child {
    sfpg(db, &["sync", "--no-progress"])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
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
    done: impl Fn(&[(String, String, i64)]) -> bool,
) {
    let deadline = Instant::now() + timeout;
    loop {
        let now = progress(client).await;
        if done(&now) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not after {timeout:?}: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
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
    let objects = OBJECTS.join(",");
    run(
        &db,
        &[
            "org",
            "add",
            "acme",
            "--instance-url",
            emulator.instance_url(),
            "--client-id",
            DEFAULT_CLIENT_ID,
            "--client-secret",
            DEFAULT_CLIENT_SECRET,
            "--objects",
            &objects,
        ],
    )
    .await;
    run(
        &db,
        &[
            "org",
            "set-rate-limit",
            "acme",
            "--requests",
            "20",
            "--per",
            "1s",
        ],
    )
    .await;
    let client = db.connect().await;

    let mut sync = start_sync(&db);
    wait_for(
        &client,
        Duration::from_secs(60),
        "some pages written",
        |p| p.iter().map(|(_, _, done)| done).sum::<i64>() >= 2000,
    )
    .await;
    sync.kill().unwrap();
    sync.wait().unwrap();
    let at_kill = progress(&client).await;
    assert!(
        at_kill.iter().any(|(_, phase, _)| phase == "backfilling"),
        "killed too late to test a resumed backfill: {at_kill:?}"
    );

    let mut sync = start_sync(&db);
    wait_for(
        &client,
        Duration::from_secs(120),
        "every object live",
        |p| p.iter().all(|(_, phase, _)| phase == "live"),
    )
    .await;
    let terminated = Command::new("kill")
        .args(["-TERM", &sync.id().to_string()])
        .status()
        .unwrap();
    assert!(terminated.success());
    let exit = tokio::task::spawn_blocking(move || sync.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(
        exit.success(),
        "sfpg sync did not stop cleanly on SIGTERM: {exit:?}"
    );

    for object in OBJECTS {
        let diff = mirror::mirror_diff(&emulator, &client, "acme", object).await;
        assert!(
            diff.is_empty(),
            "{object}: the mirror differs from the org:\n{}",
            diff.join("\n")
        );
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
    let lease: Option<String> = client
        .query_one("SELECT lease_owner FROM sfpg.orgs WHERE name = 'acme'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(lease, None, "a clean stop releases the org");
}
