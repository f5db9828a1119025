//! `sfpg proxy`, the real binary, killed with SIGKILL between Salesforce accepting a push
//! and the local COMMIT (a failpoint holds it there), during the read-back, and at random
//! points of five pushes (the request on its way among them). After a restart, the write
//! journal's repair makes the mirror equal the org again.

// Helpers of a test crate may unwrap: a failure should stop the test where it happened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use sfpg_testkit::TestDatabase;
use sfpg_testkit::binary::Sfpg;
use sfpg_testkit::process::{TestProcess, eventually};
use sfpg_testkit::world::{World, generated};

const SFPG: Sfpg = Sfpg::new(env!("CARGO_BIN_EXE_sfpg")).logging("sfpg=info,sfpg_proxy=info");

/// How long the journal's entry may take to appear, and to be repaired.
const JOURNAL_WITHIN: Duration = Duration::from_secs(30);

/// `sfpg proxy` on a free port, repairing often.
const PROXY_REPAIRING: [&str; 5] = [
    "proxy",
    "--listen",
    "127.0.0.1:0",
    "--repair-every",
    "200ms",
];

/// Starts `sfpg proxy` on a free port, repairing often, stopped at `failpoint` if any;
/// returns the process and its address.
fn start_proxy(db: &TestDatabase, failpoint: Option<&str>) -> (TestProcess, SocketAddr) {
    let mut command = SFPG.at(db.url(), &PROXY_REPAIRING);
    if let Some(failpoint) = failpoint {
        command.env("SFPG_PROXY_FAILPOINT", failpoint);
    }
    sfpg_testkit::binary::spawn_listening(command)
}

/// How many journal entries have `condition`.
async fn journaled(direct: &tokio_postgres::Client, condition: &str) -> i64 {
    direct
        .query_one(
            &format!("SELECT count(*) FROM sfpg.write_journal WHERE {condition}"),
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn a_proxy_killed_between_push_and_commit_is_repaired_on_restart() {
    let world = World::mirrored(generated(40, 5), &["Account"]).await;
    let direct = world.direct().await;
    let (id, sfid): (i64, String) = {
        let row = direct
            .query_one(
                "SELECT id, sfid FROM salesforce.account ORDER BY id LIMIT 1",
                &[],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };

    let (mut proxy, addr) = start_proxy(&world.db, Some("pause-after-push"));
    let client = world.db.connect_via(addr).await;
    let writes = tokio::spawn(async move {
        client
            .batch_execute(&format!(
                "BEGIN;
                 UPDATE salesforce.account SET billingcity = 'After the crash' WHERE id = {id};
                 INSERT INTO salesforce.account (name) VALUES ('Born in a crash');
                 COMMIT"
            ))
            .await
    });

    // Salesforce has the push and the journal has recorded it; the proxy is stopped just
    // before writing the mirror and committing.
    eventually("the journaled push", JOURNAL_WITHIN, async || {
        journaled(&direct, "outcome = 'pushed'").await == 1
    })
    .await;
    proxy.kill();
    assert!(writes.await.unwrap().is_err(), "the client saw a commit");

    // The org moved on, the mirror did not.
    assert_eq!(
        world.org_field("Account", &sfid, "BillingCity"),
        serde_json::json!("After the crash")
    );
    let mirrored: Option<String> = direct
        .query_one(
            "SELECT billingcity FROM salesforce.account WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    assert_ne!(mirrored.as_deref(), Some("After the crash"));

    // A restart repairs it.
    let (proxy, _) = start_proxy(&world.db, None);
    let diff = repaired_by(proxy, &world).await;
    assert!(diff.is_empty(), "{}", diff.join("\n"));
    let born: i64 = direct
        .query_one(
            "SELECT count(*) FROM salesforce.account WHERE name = 'Born in a crash' AND sfid IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(born, 1);
}

/// The journal is written as soon as Salesforce accepts a push, before the read-back of
/// what Salesforce set: a proxy killed while that read is under way leaves an entry, and the
/// restart repairs the mirror from it.
#[tokio::test]
async fn a_proxy_killed_during_the_read_back_is_repaired_on_restart() {
    let world = World::mirrored(generated(20, 6), &["Account"]).await;
    let direct = world.direct().await;
    let id: i64 = direct
        .query_one("SELECT id FROM salesforce.account ORDER BY id LIMIT 1", &[])
        .await
        .unwrap()
        .get(0);
    // The read-back (a Collections retrieve) is slow; the push itself is not.
    world.answer_late(Some("GET"), "/services/data/*/composite/sobjects/*", 60_000);
    let (mut proxy, addr) = start_proxy(&world.db, None);
    let client = world.db.connect_via(addr).await;
    let writes = tokio::spawn(async move {
        client
            .batch_execute(&format!(
                "UPDATE salesforce.account SET billingcity = 'Read back later' WHERE id = {id}"
            ))
            .await
    });
    // The request log lists a request once answered: the push is, the read-back is held.
    eventually("the push", JOURNAL_WITHIN, async || {
        world.composite_calls() > 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.kill();
    assert!(writes.await.unwrap().is_err(), "the client saw a commit");
    assert_eq!(
        journaled(&direct, "outcome = 'pushed'").await,
        1,
        "Salesforce accepted a push the journal does not know"
    );

    world.emulator.set_latency(None);
    let (proxy, _) = start_proxy(&world.db, None);
    let diff = repaired_by(proxy, &world).await;
    assert!(diff.is_empty(), "{}", diff.join("\n"));
}

/// Waits until the journal's one entry is repaired, stops `proxy`, and returns every
/// difference between the org's Accounts and the mirror's.
async fn repaired_by(mut proxy: TestProcess, world: &World) -> Vec<String> {
    let direct = world.direct().await;
    eventually("the repair", JOURNAL_WITHIN, async || {
        journaled(&direct, "resolution = 'repaired'").await == 1
    })
    .await;
    proxy.kill();
    world.mirror_diff("Account").await
}

/// SIGKILL at a random point of each of five atomic pushes that create, update and delete
/// (while the changes are taken, the Composite request is on its way or answered, the
/// records read back and written, or the COMMIT is under way; Salesforce answers each
/// request after 400 ms), the proxy started again each time: once its repair has run, the
/// mirror equals the org, record for record, whatever the client was told.
#[tokio::test]
async fn a_proxy_killed_at_random_points_of_atomic_pushes_leaves_the_mirror_equal_to_the_org() {
    let world = World::mirrored(generated(40, 23), &["Account"]).await;
    world.answer_late(None, "/services/data/*/composite*", 400);
    let direct = world.direct().await;
    let mut proxy = SFPG.crashing(world.db.url(), &PROXY_REPAIRING);
    for round in 0..5_i32 {
        let addr = proxy.process().listening_addr(JOURNAL_WITHIN);
        let client = world.db.connect_via(addr).await;
        // Creates, updates of some rows there were (those of earlier rounds included), and
        // deletes of some of the last round's: one Composite request.
        let push = format!(
            "BEGIN;
             INSERT INTO salesforce.account (name)
             SELECT 'Crash {round} ' || g FROM generate_series(1, 50) g;
             UPDATE salesforce.account SET billingcity = 'Round {round}'
              WHERE id IN (SELECT id FROM salesforce.account
                            WHERE name NOT LIKE 'Crash {round} %' ORDER BY id LIMIT 100);
             DELETE FROM salesforce.account WHERE id IN
               (SELECT id FROM salesforce.account WHERE name LIKE 'Crash {} %' ORDER BY id LIMIT 20);
             COMMIT",
            round - 1
        );
        eprintln!("round {round}");
        // Committed, or cut off: either way the mirror must end equal to the org.
        let _told = proxy
            .kill_at_random_during(
                async move { client.batch_execute(&push).await },
                Duration::from_millis(20),
                Duration::from_millis(1_500),
            )
            .await;
        // Once a request Salesforce may have been carrying out has had its time (its
        // answer comes 400 ms after it arrived), the repair has read the records again,
        // at once and a second later (an entry of unknown outcome is read again until no
        // request could still be running).
        tokio::time::sleep(Duration::from_millis(500)).await;
        eventually("the mirror equal to the org", JOURNAL_WITHIN, async || {
            world.mirror_diff("Account").await.is_empty()
        })
        .await;
    }
    // Whatever each round left to the repair: every entry settled (committed or repaired)
    // but those of unknown outcome, read again until no request could still be running.
    eventually("the accepted pushes settled", JOURNAL_WITHIN, async || {
        journaled(
            &direct,
            "outcome IN ('pushed', 'abandoned') AND resolution IS NULL",
        )
        .await
            == 0
    })
    .await;
    let diff = world.mirror_diff("Account").await;
    assert!(diff.is_empty(), "{}", diff.join("\n"));
}
