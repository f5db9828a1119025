//! Proxy writes and their echoes, end to end: `sfpg run` (the sync and the proxy in one
//! process) streams an emulated org while a client inserts, updates and deletes through the
//! proxy. Each write reaches Salesforce, its change event comes back on the stream marked
//! with sfpg's own `client=`, and is counted as an echo and applied through the version
//! guard: the rows the write-back left are not written again, and the mirror equals the org.

// Helpers of a test crate may unwrap: a failure should stop the test where it happened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "sync_cdc/support.rs"]
mod support;

use std::time::Duration;

use chrono::{Timelike, Utc};
use sfpg_emulator::http::{EmulatorConfig, OrgSource, RunningEmulator};
use sfpg_testkit::TestDatabase;
use support::*;

const OBJECTS: [&str; 2] = ["Account", "Contact"];

/// Records every write to a mirrored Account row with the origin that made it: the
/// proxy's write-back runs as `push:…`, the sync as `sync:…`.
const WRITES: &str = "
    CREATE TABLE public.account_writes (sfid text, op text, origin text);
    CREATE FUNCTION public.account_writes() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO public.account_writes VALUES (
            coalesce(NEW.sfid, OLD.sfid), TG_OP, current_setting('sfpg.origin', true));
        RETURN NULL;
    END $$;
    CREATE TRIGGER account_writes AFTER INSERT OR UPDATE OR DELETE ON acme.account
        FOR EACH ROW EXECUTE FUNCTION public.account_writes();";

/// Waits for the start of a second: a record's `SystemModstamp` (whole seconds) and its
/// event's commit time then fall in the same second, so an echo carries the very version
/// the write-back wrote (a commit across a second boundary would move the stamp on).
async fn start_of_a_second() {
    let into = Utc::now().nanosecond() % 1_000_000_000;
    let left = 1_000_000_000 - into;
    tokio::time::sleep(Duration::from_nanos(u64::from(left) + 5_000_000)).await;
}

/// The writes of the sync (not the proxy's write-back) to the rows of `sfids`.
async fn sync_writes(client: &tokio_postgres::Client, sfids: &[&str]) -> Vec<(String, String)> {
    client
        .query(
            "SELECT sfid, op FROM public.account_writes
              WHERE sfid = ANY($1) AND origin LIKE 'sync:%'",
            &[&sfids],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

async fn emulator() -> RunningEmulator {
    sfpg_emulator::http::start(EmulatorConfig {
        org: OrgSource::Generated {
            records: 40,
            seed: 31,
        },
        ..EmulatorConfig::default()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_writes_come_back_as_echoes_counted_and_not_applied_twice() {
    let emulator = emulator().await;
    let db = TestDatabase::create().await;
    add_acme(&db, &emulator, &OBJECTS).await;
    let client = db.connect().await;
    // No safety poll during the test: only the stream (and the write-back) write.
    let args = [
        "run",
        "--listen",
        "127.0.0.1:0",
        "--no-progress",
        "--poll-while-streaming",
        "1h",
    ];
    let (run, addr) = SFPG.start_listening(db.url(), &args);
    wait_streaming(&client, 2, Duration::from_secs(90)).await;
    client.batch_execute(WRITES).await.unwrap();
    let accounts = ids(&emulator, "Account");
    let (updated, deleted) = (&accounts[0], &accounts[1]);
    let (pair_a, pair_b) = (&accounts[2], &accounts[3]);
    // Nothing else changes the org: what it publishes from here on is the pushes'.
    let first = emulator.event_bus().last_replay_id();
    let (_, _, events_before, echoes_before, _) = stream(&client).await;

    let proxy = db.connect_via(addr).await;
    start_of_a_second().await;
    let changed = proxy
        .execute(
            "UPDATE acme.account SET billingcity = 'Echo City' WHERE sfid = $1",
            &[updated],
        )
        .await
        .unwrap();
    assert_eq!(changed, 1);
    start_of_a_second().await;
    let created: String = proxy
        .query_one(
            "INSERT INTO acme.account (name, phone) VALUES ('Echo Co', '555-0100') RETURNING sfid",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    start_of_a_second().await;
    // Two records with the same values in one Salesforce transaction: one event may name
    // both.
    proxy.batch_execute("BEGIN").await.unwrap();
    proxy
        .execute(
            "UPDATE acme.account SET description = 'one push' WHERE sfid IN ($1, $2)",
            &[pair_a, pair_b],
        )
        .await
        .unwrap();
    proxy.batch_execute("COMMIT").await.unwrap();
    start_of_a_second().await;
    proxy
        .execute("DELETE FROM acme.account WHERE sfid = $1", &[deleted])
        .await
        .unwrap();

    // Every push published its events; the stream applies them all, each as an echo.
    wait_applied_all(&emulator, &client, Duration::from_secs(30)).await;
    let (_, last, events, echoes, _) = stream(&client).await;
    let published = published_between(&emulator, first, last.unwrap());
    assert!(published >= 4, "{published} events for four pushes");
    assert_eq!(
        (events - events_before, echoes - echoes_before),
        (published, published),
        "events and echoes applied since the pushes, against {published} published"
    );
    // The write-back wrote each row; its echo found nothing newer to write.
    let sfids = [
        updated.as_str(),
        created.as_str(),
        pair_a.as_str(),
        pair_b.as_str(),
        deleted.as_str(),
    ];
    assert_eq!(sync_writes(&client, &sfids).await, []);
    sfpg_testkit::world::assert_mirror_equals_org(&emulator, &client, "acme", &OBJECTS).await;
    run.stop_cleanly(Duration::from_secs(60)).await;
}
