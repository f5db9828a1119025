//! `sfpg proxy`, the real binary, killed with SIGKILL while a bulk push's ingest job runs
//! (between its upload and its completion): the job goes on in Salesforce without it. The
//! journal recorded the job's id before the upload, so after a restart the repair waits
//! for the job to end, learns from its result file which records it created, and reads them
//! back: the mirror ends equal to the org.

// Helpers of a test crate may unwrap: a failure should stop the test where it happened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use sfpg_testkit::binary::Sfpg;
use sfpg_testkit::process::eventually;
use sfpg_testkit::world::{World, generated};

const SFPG: Sfpg = Sfpg::new(env!("CARGO_BIN_EXE_sfpg")).logging("sfpg=info,sfpg_proxy=info");

const WITHIN: Duration = Duration::from_secs(60);

async fn count(direct: &tokio_postgres::Client, sql: &str) -> i64 {
    direct.query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn a_proxy_killed_while_a_bulk_job_runs_is_repaired_from_the_job_on_restart() {
    let world = World::mirrored(generated(40, 7), &["Account"]).await;
    world
        .emulator
        .set_bulk_processing_delay(Duration::from_secs(4));
    let direct = world.direct().await;
    let before = world.org_count("Account");
    let start = |repair_every: &str| {
        let command = SFPG.at(
            world.db.url(),
            &[
                "proxy",
                "--listen",
                "127.0.0.1:0",
                "--repair-every",
                repair_every,
            ],
        );
        sfpg_testkit::binary::spawn_listening(command)
    };
    let (mut proxy, addr) = start("1h");
    let mut config = world.db.config_via(addr);
    config.options("-c sfpg.bulk_writes=on");
    let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let writes = tokio::spawn(async move {
        client
            .batch_execute(
                "BEGIN;
                 INSERT INTO salesforce.account (name)
                 SELECT 'Born in a crash ' || g FROM generate_series(1, 300) g;
                 COMMIT",
            )
            .await
    });
    // The job's id is journaled before its upload; once the org has the upload and the
    // close, the job is under way.
    eventually("the journaled job", WITHIN, async || {
        count(
            &direct,
            "SELECT count(*) FROM sfpg.write_journal
              WHERE jsonb_array_length(response -> 'bulk_jobs') = 1",
        )
        .await
            == 1
    })
    .await;
    eventually("the closed job", WITHIN, async || {
        world
            .emulator
            .requests(0)
            .iter()
            .any(|r| r.method == "PATCH" && r.path.contains("/jobs/ingest/"))
    })
    .await;
    proxy.kill();
    assert!(writes.await.unwrap().is_err(), "the client saw a commit");
    assert_eq!(
        count(
            &direct,
            "SELECT count(*) FROM salesforce.account WHERE name LIKE 'Born in a crash %'"
        )
        .await,
        0,
        "the client's transaction rolled back"
    );

    // The restart finds the entry, waits for the job, and reads what it created.
    let (mut proxy, _) = start("200ms");
    eventually("the repair", WITHIN, async || {
        count(
            &direct,
            "SELECT count(*) FROM sfpg.write_journal WHERE resolution = 'repaired'",
        )
        .await
            == 1
    })
    .await;
    proxy.kill();
    // The Ids of what the job created came from its result file.
    assert!(
        world
            .emulator
            .requests(0)
            .iter()
            .any(|r| r.method == "GET" && r.path.contains("/successfulResults")),
        "the repair did not read the job's successfulResults/"
    );
    assert_eq!(world.org_count("Account"), before + 300);
    let diff = world.mirror_diff("Account").await;
    assert!(diff.is_empty(), "{}", diff.join("\n"));
}
