//! `sfpg proxy`, the real binary, killed with SIGKILL while a bulk push's ingest job runs
//! (between its upload and its completion): the job goes on in Salesforce without it. The
//! journal recorded the job's id before the upload, so after a restart the repair waits
//! for the job to end, learns from its result file which records it created, and reads them
//! back: the mirror ends equal to the org. Killed while a job is still open (its upload
//! under way), the repair aborts that job, which would never start; killed at random points
//! of three pushes, the mirror ends equal to the org after each restart.

// Helpers of a test crate may unwrap: a failure should stop the test where it happened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use sfpg_salesforce::bulk::JobState;
use sfpg_testkit::binary::Sfpg;
use sfpg_testkit::process::{TestProcess, eventually};
use sfpg_testkit::world::{World, generated, salesforce_client};

const SFPG: Sfpg = Sfpg::new(env!("CARGO_BIN_EXE_sfpg")).logging("sfpg=info,sfpg_proxy=info");

const WITHIN: Duration = Duration::from_secs(60);

/// `sfpg proxy` on a free port, repairing every `repair_every`: the process and its address.
fn start_proxy(world: &World, repair_every: &str) -> (TestProcess, SocketAddr) {
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
}

/// A client through the proxy at `addr` whose transactions go through ingest jobs.
async fn bulk_client(world: &World, addr: SocketAddr) -> tokio_postgres::Client {
    let mut config = world.db.config_via(addr);
    config.options("-c sfpg.bulk_writes=on");
    let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

/// Waits until the journal's one entry has `jobs` ingest jobs: the last one's id is
/// journaled before its upload.
async fn jobs_journaled(direct: &tokio_postgres::Client, jobs: i32) {
    eventually("the job journaled", WITHIN, async || {
        direct
            .query_one(
                "SELECT count(*) FROM sfpg.write_journal
                  WHERE jsonb_array_length(response -> 'bulk_jobs') = $1",
                &[&jobs],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
            == 1
    })
    .await;
}

/// The org holds `accounts` Accounts, and the mirror equals it.
async fn saved_and_mirrored(world: &World, accounts: usize) {
    assert_eq!(world.org_count("Account"), accounts);
    world.assert_mirror_equals_org("Account").await;
}

/// Runs `sql` through `client` on a task of its own: the push a test kills the proxy in.
fn in_background(
    client: tokio_postgres::Client,
    sql: &'static str,
) -> tokio::task::JoinHandle<Result<(), tokio_postgres::Error>> {
    tokio::spawn(async move { client.batch_execute(sql).await })
}

/// Waits until the journal's one entry is repaired.
async fn repaired(direct: &tokio_postgres::Client) {
    eventually("the repair", WITHIN, async || {
        count(
            direct,
            "SELECT count(*) FROM sfpg.write_journal WHERE resolution = 'repaired'",
        )
        .await
            == 1
    })
    .await;
}

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
    let start = |repair_every: &str| start_proxy(&world, repair_every);
    let (mut proxy, addr) = start("1h");
    let client = bulk_client(&world, addr).await;
    let writes = in_background(
        client,
        "BEGIN;
         INSERT INTO salesforce.account (name)
         SELECT 'Born in a crash ' || g FROM generate_series(1, 300) g;
         COMMIT",
    );
    // The job's id is journaled before its upload; once the org has the upload and the
    // close, the job is under way.
    jobs_journaled(&direct, 1).await;
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
    repaired(&direct).await;
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
    saved_and_mirrored(&world, before + 300).await;
}

/// SIGKILL while a bulk push's second job is open (created and journaled, its upload under
/// way, never closed), after its first job saved its records: Salesforce never starts a
/// job nobody closes, so the repair aborts it rather than wait for it, reads back what the
/// first saved, and the mirror ends equal to the org.
#[tokio::test]
async fn a_job_left_open_by_a_killed_proxy_is_aborted_by_the_repair() {
    let world = World::mirrored(generated(40, 13), &["Account"]).await;
    let direct = world.direct().await;
    let before = world.org_count("Account");
    let start = |repair_every: &str| start_proxy(&world, repair_every);
    let (mut proxy, addr) = start("1h");
    // Every upload takes 3 s to be answered: long enough to be killed in the second.
    world.answer_late(Some("PUT"), "/services/data/*/jobs/ingest/*/batches", 3_000);
    let client = bulk_client(&world, addr).await;
    let writes = in_background(
        client,
        "BEGIN;
         INSERT INTO salesforce.account (name)
         SELECT 'Left open ' || g FROM generate_series(1, 300) g;
         UPDATE salesforce.account SET billingcity = 'Never sent'
          WHERE name NOT LIKE 'Left open %';
         COMMIT",
    );
    // The second job (the updates) is journaled before its upload, which is then under way.
    jobs_journaled(&direct, 2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.kill();
    assert!(writes.await.unwrap().is_err(), "the client saw a commit");
    world.emulator.set_latency(None);
    assert_eq!(
        world.org_count("Account"),
        before + 300,
        "the first job saved its records"
    );

    let (mut proxy, _) = start("200ms");
    repaired(&direct).await;
    proxy.kill();
    let open_job: String = direct
        .query_one(
            "SELECT response -> 'bulk_jobs' ->> 1 FROM sfpg.write_journal",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let salesforce = salesforce_client(&world.db, |c| c).await;
    let job = salesforce.bulk().ingest_job(&open_job).await.unwrap();
    assert_eq!(
        job.state,
        JobState::Aborted,
        "the repair aborts the job left open"
    );
    let never: i64 = count(
        &direct,
        "SELECT count(*) FROM salesforce.account WHERE billingcity = 'Never sent'",
    )
    .await;
    assert_eq!(never, 0);
    saved_and_mirrored(&world, before + 300).await;
}

/// SIGKILL at a random point of each of three bulk pushes that create parents and their
/// children, update and delete (while the changes are taken, a job is uploaded or polled,
/// its results read, the records read back and written, or the COMMIT is under way), the
/// proxy started again each time: once its repair has run, the mirror equals the org,
/// record for record, whatever the client was told.
#[tokio::test]
async fn a_proxy_killed_at_random_points_of_bulk_pushes_leaves_the_mirror_equal_to_the_org() {
    let world = World::mirrored(generated(40, 11), &["Account", "Contact"]).await;
    // Each job queued, then processed, over half a second: the jobs span more of the push.
    world
        .emulator
        .set_bulk_processing_delay(Duration::from_millis(500));
    let direct = world.direct().await;
    let mut proxy = SFPG.crashing(
        world.db.url(),
        &[
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--repair-every",
            "200ms",
        ],
    );
    for round in 0..3_i32 {
        let addr = proxy.process().listening_addr(WITHIN);
        let client = bulk_client(&world, addr).await;
        // Accounts and a Contact of each (two levels of creates, the children's lookups
        // filled in with the parents' new Ids), updates of every Account there was (those
        // of earlier rounds included), and deletes of some of the last round's Contacts:
        // four jobs, one stage after the other.
        let push = format!(
            "BEGIN;
             CREATE TEMP TABLE parents AS
               WITH made AS (
                 INSERT INTO salesforce.account (name)
                 SELECT 'Crash {round} ' || g FROM generate_series(1, 800) g RETURNING sfid, name)
               SELECT * FROM made;
             INSERT INTO salesforce.contact (lastname, accountid)
             SELECT 'Child of ' || name, sfid FROM parents;
             UPDATE salesforce.account SET billingcity = 'Round {round}'
              WHERE name NOT LIKE 'Crash {round} %';
             DELETE FROM salesforce.contact WHERE id IN
               (SELECT id FROM salesforce.contact WHERE lastname LIKE 'Child of Crash {} %'
                 ORDER BY id LIMIT 300);
             COMMIT",
            round - 1
        );
        eprintln!("round {round}");
        // Committed, or cut off: either way the mirror must end equal to the org.
        let _told = proxy
            .kill_at_random_during(
                async move { client.batch_execute(&push).await },
                Duration::from_millis(50),
                Duration::from_millis(5_000),
            )
            .await;
        // Settled: every journal entry the push left resolved by the repair (its jobs
        // ended, their records read back), and then the mirror equal to the org.
        eventually("the journal resolved", WITHIN, async || {
            count(
                &direct,
                "SELECT count(*) FROM sfpg.write_journal
                  WHERE outcome IN ('pushed', 'unknown', 'abandoned') AND resolution IS NULL",
            )
            .await
                == 0
        })
        .await;
        for object in ["Account", "Contact"] {
            let diff = world.mirror_diff(object).await;
            assert!(
                diff.is_empty(),
                "round {round}, {object}: {}",
                diff.join("\n")
            );
        }
    }
}

/// The proxy's server connection lost (the backend terminated) while a bulk push's job
/// runs: the client's transaction is gone with it, Salesforce goes on. The client is told
/// the outcome is unknown, not that nothing happened, and the repair brings the mirror in
/// line once the job has ended.
#[tokio::test]
async fn a_bulk_push_that_loses_its_server_connection_is_unknown_and_repaired() {
    let world = World::mirrored(generated(40, 17), &["Account"]).await;
    world
        .emulator
        .set_bulk_processing_delay(Duration::from_secs(3));
    let direct = world.direct().await;
    let before = world.org_count("Account");
    let (mut proxy, addr) = start_proxy(&world, "200ms");
    let client = bulk_client(&world, addr).await;
    let writes = in_background(
        client,
        "BEGIN;
         INSERT INTO salesforce.account (name)
         SELECT 'Lost server ' || g FROM generate_series(1, 300) g;
         COMMIT",
    );
    eventually("the closed job", WITHIN, async || {
        world
            .emulator
            .requests(0)
            .iter()
            .any(|r| r.method == "PATCH" && r.path.contains("/jobs/ingest/"))
    })
    .await;
    // The client's transaction, held open by the proxy while the job runs.
    let terminated = count(
        &direct,
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
          WHERE datname = current_database() AND state = 'idle in transaction'
            AND pid <> pg_backend_pid()) t",
    )
    .await;
    assert_eq!(terminated, 1);
    let error = writes.await.unwrap().unwrap_err();
    let db = error.as_db_error().expect("a server error");
    assert_eq!(db.code().code(), "08007", "{db:?}");
    assert_eq!(db.severity(), "FATAL", "{db:?}");
    // The server's own words, from its FATAL answer to the push's next statement.
    assert!(
        db.message()
            .contains("terminating connection due to administrator command"),
        "{db:?}"
    );
    repaired(&direct).await;
    proxy.kill();
    saved_and_mirrored(&world, before + 300).await;
}

/// Salesforce unreachable while a bulk push follows its job (every poll's connection
/// closed unanswered): the push cannot learn what the job saved, so the client hears
/// 08007 and the transaction rolls back; once Salesforce answers again, the repair reads
/// what the job saved and the mirror equals the org.
#[tokio::test]
async fn a_bulk_push_that_cannot_follow_its_job_is_unknown_and_repaired() {
    let world = World::mirrored(generated(40, 19), &["Account"]).await;
    world
        .emulator
        .set_bulk_processing_delay(Duration::from_secs(2));
    let direct = world.direct().await;
    let before = world.org_count("Account");
    let (mut proxy, addr) = start_proxy(&world, "200ms");
    let client = bulk_client(&world, addr).await;
    // From its first poll on, nothing about the job comes back.
    world.emulator.drop_next(sfpg_emulator::http::DropRule {
        matcher: sfpg_emulator::http::RequestMatcher {
            method: Some("GET".into()),
            path: Some("/services/data/*/jobs/ingest/*".into()),
        },
        count: 1_000,
        after_ms: None,
    });
    let error = client
        .batch_execute(
            "BEGIN;
             INSERT INTO salesforce.account (name)
             SELECT 'Unfollowed ' || g FROM generate_series(1, 300) g;
             COMMIT",
        )
        .await
        .unwrap_err();
    let code = error.code().map(|c| c.code().to_owned());
    assert_eq!(code.as_deref(), Some("08007"), "{error:?}");
    assert_eq!(
        count(
            &direct,
            "SELECT count(*) FROM salesforce.account WHERE name LIKE 'Unfollowed %'"
        )
        .await,
        0,
        "the client's transaction rolled back"
    );
    world.emulator.clear_faults();
    repaired(&direct).await;
    proxy.kill();
    saved_and_mirrored(&world, before + 300).await;
}

/// SIGKILL after a bulk push journaled itself and before its first job was journaled (the
/// job's creation held up): nothing of it was sent, and the repair settles its entry at
/// once rather than read its records again for ten minutes, as it must for a push whose
/// request may still be running.
#[tokio::test]
async fn a_bulk_push_killed_before_its_first_job_is_settled_at_once() {
    let world = World::mirrored(generated(40, 29), &["Account"]).await;
    let direct = world.direct().await;
    let before = world.org_count("Account");
    let (mut proxy, addr) = start_proxy(&world, "1h");
    world.answer_late(Some("POST"), "/services/data/*/jobs/ingest", 5_000);
    let client = bulk_client(&world, addr).await;
    let writes = in_background(
        client,
        "BEGIN;
         INSERT INTO salesforce.account (name)
         SELECT 'Never a job ' || g FROM generate_series(1, 300) g;
         COMMIT",
    );
    jobs_journaled(&direct, 0).await;
    proxy.kill();
    assert!(writes.await.unwrap().is_err(), "the client saw a commit");
    world.emulator.set_latency(None);

    let (mut proxy, _) = start_proxy(&world, "1h");
    // The repair at start: one pass, no reading again later.
    repaired(&direct).await;
    proxy.kill();
    saved_and_mirrored(&world, before).await;
}
