//! Change Data Capture cases with the real `sfpg sync` binary against the emulator:
//! compound fields, explicit nulls, delete and undelete; an object the org does not select
//! keeps polling; `set-cdc off` at run time; retention expiry while the sync was down; a
//! `GAP_*` event; dropped and stalled connects.

// Helpers of a test crate may unwrap: a failure should stop the test where it happened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "sync_cdc/support.rs"]
mod support;

use std::time::Duration;

use serde_json::json;
use sfpg_emulator::events::Selection;
use sfpg_emulator::http::{EmulatorConfig, OrgSource, RunningEmulator};
use sfpg_testkit::TestDatabase;
use support::*;

const OBJECTS: [&str; 2] = ["Account", "Contact"];

async fn emulator(selection: Selection) -> RunningEmulator {
    sfpg_emulator::http::start(EmulatorConfig {
        org: OrgSource::Generated {
            records: 40,
            seed: 5,
        },
        cdc_entities: selection,
        ..EmulatorConfig::default()
    })
    .await
    .unwrap()
}

/// A mirror column of one record, as text.
async fn column(
    client: &tokio_postgres::Client,
    table: &str,
    id: &str,
    column: &str,
) -> Option<String> {
    client
        .query_opt(
            &format!("SELECT {column}::text FROM acme.{table} WHERE sfid = $1"),
            &[&id],
        )
        .await
        .unwrap()
        .and_then(|r| r.get(0))
}

/// The `source` column of each object.
async fn sources(client: &tokio_postgres::Client) -> Vec<(String, String)> {
    client
        .query(
            "SELECT object_name, source FROM sfpg.objects WHERE org_name = 'acme' ORDER BY object_name",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compound_fields_nulls_deletes_and_undeletes_stream_into_the_mirror() {
    compound_fields_nulls_deletes_and_undeletes_over("cometd").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compound_fields_nulls_deletes_and_undeletes_stream_into_the_mirror_over_pubsub() {
    compound_fields_nulls_deletes_and_undeletes_over("pubsub").await;
}

/// An address part changed and a phone nulled, a contact's first name, a delete and an
/// undelete, streamed over `transport`: the mirror follows each and ends equal to the org.
async fn compound_fields_nulls_deletes_and_undeletes_over(transport: &str) {
    let emulator = emulator(Selection::All).await;
    let db = TestDatabase::create().await;
    add_acme_over(&db, &emulator, &OBJECTS, transport).await;
    let client = db.connect().await;
    // Safety polls far apart: what reaches the mirror below came from the stream.
    let sync = start_sync(&db, &["--poll-while-streaming", "1h"]);
    wait_streaming(&client, 2, Duration::from_secs(90)).await;
    let account = ids(&emulator, "Account")[0].clone();
    let contact = ids(&emulator, "Contact")[0].clone();
    emulator
        .update_as(
            "Account",
            &account,
            &fields(json!({"BillingCity": "Lyon", "Phone": null})),
            None,
        )
        .unwrap();
    emulator
        .update_as(
            "Contact",
            &contact,
            &fields(json!({"FirstName": "Ada"})),
            None,
        )
        .unwrap();
    wait_applied_all(&emulator, &client, Duration::from_secs(10)).await;
    assert_eq!(
        column(&client, "account", &account, "billingcity")
            .await
            .as_deref(),
        Some("Lyon")
    );
    assert_eq!(column(&client, "account", &account, "phone").await, None);
    assert_eq!(
        column(&client, "contact", &contact, "firstname")
            .await
            .as_deref(),
        Some("Ada")
    );
    emulator.delete_as("Account", &account, None).unwrap();
    wait_applied_all(&emulator, &client, Duration::from_secs(10)).await;
    assert_eq!(
        column(&client, "account", &account, "sfid").await,
        None,
        "deleted"
    );
    emulator.undelete(&account, None).unwrap();
    wait_applied_all(&emulator, &client, Duration::from_secs(10)).await;
    assert_eq!(
        column(&client, "account", &account, "billingcity")
            .await
            .as_deref(),
        Some("Lyon"),
        "undeleted"
    );
    sfpg_testkit::world::assert_mirror_equals_org(&emulator, &client, "acme", &OBJECTS).await;
    sync.stop_cleanly(Duration::from_secs(60)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unselected_object_polls_and_set_cdc_off_polls_everything() {
    let emulator = emulator(Selection::of(["Account"])).await;
    let db = TestDatabase::create().await;
    add_acme(&db, &emulator, &OBJECTS).await;
    let client = db.connect().await;
    let sync = start_sync(&db, &["--poll-while-streaming", "1h"]);
    wait_streaming(&client, 1, Duration::from_secs(90)).await;
    assert_eq!(
        sources(&client).await,
        [
            ("Account".into(), "stream".into()),
            ("Contact".into(), "poll".into())
        ]
    );
    let contact = ids(&emulator, "Contact")[0].clone();
    emulator
        .update_as(
            "Contact",
            &contact,
            &fields(json!({"LastName": "Polled"})),
            None,
        )
        .unwrap();
    wait_mirror_equals_org(&emulator, &client, &["Contact"], Duration::from_secs(20)).await;

    // `NOTIFY sfpg_org_changed`, which any role may send, with nothing changed: the stream
    // does not start over (each start is a handshake, a CometD client of its own).
    let clients = emulator.cometd_clients();
    for _ in 0..20 {
        client
            .batch_execute("NOTIFY sfpg_org_changed, 'acme'")
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        emulator.cometd_clients(),
        clients,
        "a NOTIFY made the stream start over"
    );

    SFPG.run(&db, &["org", "set-cdc", "acme", "off"]).await;
    wait_stream(&client, Duration::from_secs(10), "stream down", |s| {
        s.0 == "down"
    })
    .await;
    assert_eq!(
        sources(&client).await,
        [
            ("Account".into(), "poll".into()),
            ("Contact".into(), "poll".into())
        ]
    );
    let account = ids(&emulator, "Account")[0].clone();
    emulator
        .update_as(
            "Account",
            &account,
            &fields(json!({"Phone": "555-0000"})),
            None,
        )
        .unwrap();
    // Polled at the normal rate again, though the safety cadence is an hour.
    wait_mirror_equals_org(&emulator, &client, &["Account"], Duration::from_secs(20)).await;
    let status = SFPG.run(&db, &["status", "acme"]).await;
    assert!(status.contains("stream: off"), "{status}");
    SFPG.run(&db, &["org", "set-cdc", "acme", "on"]).await;
    wait_streaming(&client, 1, Duration::from_secs(30)).await;
    sync.stop_cleanly(Duration::from_secs(60)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_events_while_down_are_caught_up_by_polling_never_skipped() {
    let emulator = emulator(Selection::All).await;
    let db = TestDatabase::create().await;
    add_acme(&db, &emulator, &OBJECTS).await;
    let client = db.connect().await;
    let sync = start_sync(&db, &[]);
    wait_streaming(&client, 2, Duration::from_secs(90)).await;
    let accounts = ids(&emulator, "Account");
    change_random_account(&emulator, &accounts, 1);
    wait_applied_all(&emulator, &client, Duration::from_secs(10)).await;
    sync.stop_cleanly(Duration::from_secs(60)).await;
    // Changed while the sync is down, and the events gone before it comes back.
    for n in 2..22 {
        change_random_account(&emulator, &accounts, n);
    }
    assert!(emulator.event_bus().expire_all() > 0);
    let sync = start_sync(&db, &[]);
    let took = wait_mirror_equals_org(&emulator, &client, &OBJECTS, Duration::from_secs(60)).await;
    wait_streaming(&client, 2, Duration::from_secs(60)).await;
    eprintln!("caught up {took:?} after the restart");
    // And the stream goes on from the tip it subscribed at.
    change_random_account(&emulator, &accounts, 99);
    wait_applied_all(&emulator, &client, Duration::from_secs(20)).await;
    sfpg_testkit::world::assert_mirror_equals_org(&emulator, &client, "acme", &OBJECTS).await;
    sync.stop_cleanly(Duration::from_secs(60)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gap_is_read_again_and_dropped_or_stalled_connects_lose_nothing() {
    let emulator = emulator(Selection::All).await;
    let db = TestDatabase::create().await;
    add_acme(&db, &emulator, &OBJECTS).await;
    let client = db.connect().await;
    let sync = start_sync(&db, &["--poll-while-streaming", "1h"]);
    wait_streaming(&client, 2, Duration::from_secs(90)).await;
    let account = ids(&emulator, "Account")[1].clone();
    // Changed without an event (the object briefly not selected), then a GAP_UPDATE
    // names it.
    emulator.event_bus().set_selection(Selection::none());
    emulator
        .update_as(
            "Account",
            &account,
            &fields(json!({"Phone": "555-GAP"})),
            None,
        )
        .unwrap();
    emulator.event_bus().set_selection(Selection::All);
    emulator
        .inject_gap("Account", "GAP_UPDATE", vec![account.clone()])
        .unwrap();
    wait_mirror_equals_org(&emulator, &client, &["Account"], Duration::from_secs(10)).await;
    assert_eq!(
        column(&client, "account", &account, "phone")
            .await
            .as_deref(),
        Some("555-GAP")
    );
    let (_, _, _, _, gaps) = stream(&client).await;
    assert_eq!(gaps, 1);

    // Connects dropped, then stalled and released: the client reconnects from the last
    // replay id applied.
    let accounts = ids(&emulator, "Account");
    emulator.drop_cometd_connects(None, 2);
    for n in 0..10 {
        change_random_account(&emulator, &accounts, n);
    }
    wait_applied_all(&emulator, &client, Duration::from_secs(30)).await;
    emulator.stall_cometd(None, true);
    for n in 10..20 {
        change_random_account(&emulator, &accounts, n);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    emulator.stall_cometd(None, false);
    wait_applied_all(&emulator, &client, Duration::from_secs(200)).await;
    sfpg_testkit::world::assert_mirror_equals_org(&emulator, &client, "acme", &OBJECTS).await;
    sync.stop_cleanly(Duration::from_secs(60)).await;
}

/// A client holds a mirrored row locked (a long transaction; a bulk push's rows while
/// Salesforce runs its jobs) while the stream brings a change to it: the stream waits for
/// the lock, however long past its lock timeout, and applies the change once it is
/// released. The org's sync is not started over meanwhile, which subscribed again and
/// caught every object up by polling, as often as its backoff allowed, for as long as the
/// lock was held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_a_client_holds_locked_makes_the_stream_wait_not_start_over() {
    let emulator = emulator(Selection::All).await;
    let db = TestDatabase::create().await;
    add_acme(&db, &emulator, &OBJECTS).await;
    let client = db.connect().await;
    let sync = start_sync(&db, &["--lock-timeout", "200ms"]);
    wait_streaming(&client, OBJECTS.len() as i64, Duration::from_secs(90)).await;

    let account = ids(&emulator, "Account")[0].clone();
    let mut holder = db.connect().await;
    let lock = holder.transaction().await.unwrap();
    lock.execute(
        "SELECT 1 FROM acme.account WHERE sfid = $1 FOR UPDATE",
        &[&account],
    )
    .await
    .unwrap();
    let requests = emulator.requests(0).len();
    emulator
        .update_as(
            "Account",
            &account,
            &fields(json!({"Phone": "555-0100"})),
            None,
        )
        .unwrap();
    // Well past five lock timeouts, the old limit before the org's sync started over.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        sync.logged("org sync stopped"),
        0,
        "the org's sync started over"
    );
    assert!(sync.logged("keeps the stream waiting") > 0);
    let made = emulator.requests(0).len() - requests;
    assert!(
        made < 20,
        "{made} requests to Salesforce while the lock was held"
    );
    lock.rollback().await.unwrap();
    wait_mirror_equals_org(&emulator, &client, &["Account"], Duration::from_secs(20)).await;
    sync.stop_cleanly(Duration::from_secs(60)).await;
}
