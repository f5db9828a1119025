//! Platform events end to end, with the real `sfpg sync` binary, the proxy in process and
//! an emulated org: events published in the org land in `acme.order_event__e` once each
//! with a `NOTIFY`; an `INSERT` through the proxy publishes at COMMIT and its row is not
//! doubled when the event comes back; UPDATE and DELETE are refused (0A000); a push
//! Salesforce refuses publishes nothing and leaves nothing; rows past the retention go;
//! and a sync killed with SIGKILL while events arrive inserts each exactly once. The
//! README's example runs as written, with psql on both sides.

// Helpers of a test crate may unwrap: a failure should stop the test where it happened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "sync_cdc/support.rs"]
mod cdc;
#[path = "platform_events/support.rs"]
mod support;

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;
use sfpg_emulator::http::{EmulatorConfig, OrgSource, RunningEmulator};
use sfpg_testkit::TestDatabase;
use sfpg_testkit::proxy::{ProxySetup, start_proxy};
use sfpg_testkit::world::master_key;
use support::*;
use tokio_postgres::error::SqlState;

const OBJECTS: [&str; 2] = ["Account", "Order_Event__e"];

async fn emulator() -> RunningEmulator {
    sfpg_emulator::http::start(EmulatorConfig {
        org: OrgSource::Generated {
            records: 5,
            seed: 31,
        },
        ..EmulatorConfig::default()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_go_both_ways_once_each_and_rows_cannot_be_changed() {
    let emulator = emulator().await;
    let db = TestDatabase::create().await;
    cdc::add_acme(&db, &emulator, &OBJECTS).await;
    let direct = db.connect().await;
    let sync = cdc::start_sync(&db, &[]);
    wait_event_stream(&direct, Duration::from_secs(60)).await;
    let (_listener, mut notifications) = listen(&db, "order_event__e").await;

    // In: an event another user publishes arrives once, with a NOTIFY naming its row.
    publish(&emulator, "IN-1");
    let note = next_notification(&mut notifications, Duration::from_secs(20)).await;
    let org_events = published(&emulator);
    assert_eq!(org_events.len(), 1);
    let (replay_id, uuid, _) = &org_events[0];
    assert_eq!(note, json!({"replayid": replay_id, "eventuuid": uuid}));
    let in_rows = rows(&direct).await;
    assert_eq!(in_rows.len(), 1, "{in_rows:?}");
    let (row_replay, row_uuid, row_sfid, number, publisher, dated) = &in_rows[0];
    assert_eq!(row_replay, &Some(*replay_id));
    assert_eq!(row_uuid.as_deref(), Some(uuid.as_str()));
    assert_eq!(row_sfid, &None, "the bus does not carry the event's Id");
    assert_eq!(number.as_deref(), Some("IN-1"));
    assert!(publisher.as_deref().is_some_and(|p| p.starts_with("005")));
    assert!(dated);
    let quantity: f64 = direct
        .query_one(&format!("SELECT quantity__c::float8 FROM {TABLE}"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(quantity, 2.0);

    // Out: an INSERT through the proxy is published at COMMIT, its row gets the event's
    // Id, and the event coming back fills the same row instead of adding one.
    let proxy = start_proxy(
        &db,
        ProxySetup {
            push_with: Some(master_key()),
            ..ProxySetup::default()
        },
    )
    .await;
    let client = db.connect_via(proxy.addr).await;
    client.batch_execute("BEGIN").await.unwrap();
    let inserted = client
        .query_one(
            &format!(
                "INSERT INTO {TABLE} (order_number__c, has_shipped__c, quantity__c)
                 VALUES ('OUT-1', true, 5) RETURNING id, sfid"
            ),
            &[],
        )
        .await
        .unwrap();
    let local_id: i64 = inserted.get(0);
    client.batch_execute("COMMIT").await.unwrap();
    let note = next_notification(&mut notifications, Duration::from_secs(20)).await;
    let org_events = published(&emulator);
    assert_eq!(org_events.len(), 2, "{org_events:?}");
    let (out_replay, out_uuid, out_number) = &org_events[1];
    assert_eq!(out_number, "OUT-1");
    assert_eq!(note, json!({"replayid": out_replay, "eventuuid": out_uuid}));
    let out_rows: Vec<_> = rows(&direct)
        .await
        .into_iter()
        .filter(|r| r.3.as_deref() == Some("OUT-1"))
        .collect();
    assert_eq!(out_rows.len(), 1, "not doubled: {out_rows:?}");
    let (replay, row_uuid, sfid, ..) = &out_rows[0];
    assert_eq!(replay, &Some(*out_replay));
    assert_eq!(row_uuid.as_deref(), Some(out_uuid.as_str()));
    let event_id = emulator
        .platform_events()
        .after("Order_Event__e", 0, 10)
        .unwrap()[1]
        .id
        .to_string();
    assert_eq!(
        sfid.as_deref(),
        Some(event_id.as_str()),
        "the row has the event's Id"
    );
    let kept: i64 = direct
        .query_one(
            &format!("SELECT id FROM {TABLE} WHERE replayid = $1"),
            &[out_replay],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(kept, local_id, "the proxy's row is the one kept");

    // Events are immutable: UPDATE and DELETE are refused, through the proxy and directly.
    for statement in [
        format!("UPDATE {TABLE} SET order_number__c = 'X'"),
        format!("DELETE FROM {TABLE}"),
    ] {
        for (session, who) in [(&client, "proxy"), (&direct, "direct")] {
            let error = session.batch_execute(&statement).await.unwrap_err();
            assert_eq!(
                error.code(),
                Some(&SqlState::FEATURE_NOT_SUPPORTED),
                "{who}: {statement}: {error:?}"
            );
        }
    }
    // Nor can a direct INSERT make the table differ from what was published.
    let error = direct
        .batch_execute(&format!(
            "INSERT INTO {TABLE} (order_number__c) VALUES ('FAKE')"
        ))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(&SqlState::READ_ONLY_SQL_TRANSACTION));
    // A client cannot set the replay id (or any field the bus sets) either.
    let error = client
        .batch_execute(&format!(
            "INSERT INTO {TABLE} (order_number__c, replayid) VALUES ('FAKE', 1)"
        ))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(&SqlState::GENERATED_ALWAYS), "{error:?}");

    // A push Salesforce refuses (an Account without its required Name, in the same
    // transaction) fails the COMMIT and publishes nothing.
    client.batch_execute("BEGIN").await.unwrap();
    client
        .batch_execute(&format!(
            "INSERT INTO {TABLE} (order_number__c) VALUES ('NEVER');
             INSERT INTO acme.account (name) VALUES (NULL);"
        ))
        .await
        .unwrap();
    let error = client.batch_execute("COMMIT").await.unwrap_err();
    assert_eq!(
        error.code(),
        Some(&SqlState::NOT_NULL_VIOLATION),
        "{error:?}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(published(&emulator).len(), 2, "nothing was published");
    let never: i64 = direct
        .query_one(
            &format!("SELECT count(*) FROM {TABLE} WHERE order_number__c = 'NEVER'"),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(never, 0);
    assert!(notifications.try_recv().is_err(), "no NOTIFY for it");
    sync.stop_cleanly(Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_past_the_retention_are_deleted() {
    let emulator = emulator().await;
    let db = TestDatabase::create().await;
    cdc::add_acme(&db, &emulator, &OBJECTS).await;
    let direct = db.connect().await;
    let sync = cdc::start_sync(&db, &["--event-table-retention", "3s"]);
    wait_event_stream(&direct, Duration::from_secs(60)).await;
    let (_listener, mut notifications) = listen(&db, "order_event__e").await;
    publish(&emulator, "OLD-1");
    next_notification(&mut notifications, Duration::from_secs(20)).await;
    assert_eq!(rows(&direct).await.len(), 1);
    sfpg_testkit::process::eventually("the old row deleted", Duration::from_secs(15), async || {
        rows(&direct).await.is_empty()
    })
    .await;
    // The checkpoint stays: the deleted event is not inserted again.
    publish(&emulator, "NEW-1");
    next_notification(&mut notifications, Duration::from_secs(20)).await;
    let now = rows(&direct).await;
    assert_eq!(now.len(), 1, "{now:?}");
    assert_eq!(now[0].3.as_deref(), Some("NEW-1"));
    sync.stop_cleanly(Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_killed_mid_stream_inserts_each_event_exactly_once() {
    let emulator = std::sync::Arc::new(emulator().await);
    let db = TestDatabase::create().await;
    cdc::add_acme(&db, &emulator, &OBJECTS).await;
    let direct = db.connect().await;
    let mut sync = cdc::start_sync(&db, &[]);
    wait_event_stream(&direct, Duration::from_secs(60)).await;

    let publisher = {
        let emulator = std::sync::Arc::clone(&emulator);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            for n in 0..250 {
                tick.tick().await;
                publish(&emulator, &format!("K-{n}"));
            }
        })
    };
    for kill in 0..5 {
        tokio::time::sleep(Duration::from_millis(600 + 150 * (kill % 3))).await;
        sync.kill();
        tokio::time::sleep(Duration::from_millis(150)).await;
        sync = cdc::start_sync(&db, &[]);
    }
    publisher.await.unwrap();
    let org_events = published(&emulator);
    assert_eq!(org_events.len(), 250);
    let last = org_events.last().unwrap().0;
    sfpg_testkit::process::eventually(
        "every event inserted",
        Duration::from_secs(60),
        async || {
            let saved: Option<i64> = direct
                .query_opt(
                    "SELECT replay_id FROM sfpg.event_streams WHERE event_name = 'Order_Event__e'",
                    &[],
                )
                .await
                .unwrap()
                .and_then(|r| r.get(0));
            saved == Some(last)
        },
    )
    .await;
    let table = rows(&direct).await;
    let replay_ids: HashSet<i64> = table.iter().filter_map(|r| r.0).collect();
    let published_ids: HashSet<i64> = org_events.iter().map(|e| e.0).collect();
    assert_eq!(table.len(), 250, "one row per event, none doubled");
    assert_eq!(replay_ids, published_ids, "none lost");
    let counted: i64 = direct
        .query_one(
            "SELECT events FROM sfpg.event_streams WHERE event_name = 'Order_Event__e'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(counted, 250);
    sync.stop_cleanly(Duration::from_secs(30)).await;
}

/// psql from the test server's binaries, or the one on PATH.
fn psql(db: &TestDatabase) -> std::path::PathBuf {
    db.server()
        .bin_dir()
        .map(|d| d.join("psql"))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| "psql".into())
}

/// The README's example: one psql session LISTENs, another publishes through the proxy with
/// `BEGIN; INSERT …; COMMIT;`, and the first is told.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_example_runs_in_psql() {
    let emulator = emulator().await;
    let db = TestDatabase::create().await;
    cdc::add_acme(&db, &emulator, &OBJECTS).await;
    let direct = db.connect().await;
    let sync = cdc::start_sync(&db, &[]);
    wait_event_stream(&direct, Duration::from_secs(60)).await;
    let proxy = start_proxy(
        &db,
        ProxySetup {
            push_with: Some(master_key()),
            ..ProxySetup::default()
        },
    )
    .await;
    let server = db.server();
    let conninfo = |port: u16| {
        format!(
            "host=127.0.0.1 port={port} user={} dbname={} password={}",
            server.user(),
            db.name(),
            server.password().unwrap_or("")
        )
    };
    // The listener talks to the server again after the publish, so psql prints what came.
    let listener = tokio::process::Command::new(psql(&db))
        .arg(conninfo(server.port()))
        .args([
            "-X",
            "-c",
            "LISTEN order_event__e",
            "-c",
            "SELECT pg_sleep(4)",
            "-c",
            "SELECT 1",
        ])
        .output();
    let publisher = async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        tokio::process::Command::new(psql(&db))
            .arg(conninfo(proxy.addr.port()))
            .args(["-X", "-v", "ON_ERROR_STOP=1", "-c"])
            .arg(
                "BEGIN; INSERT INTO acme.order_event__e (order_number__c, has_shipped__c) \
                 VALUES ('17', true); COMMIT;",
            )
            .output()
            .await
            .unwrap()
    };
    let (listened, publishing) = tokio::join!(listener, publisher);
    let listened = listened.unwrap();
    assert!(publishing.status.success(), "{publishing:?}");
    let stdout = String::from_utf8_lossy(&listened.stdout);
    let (replay_id, uuid, _) = published(&emulator).remove(0);
    let expected = format!(
        r#"Asynchronous notification "order_event__e" with payload "{{"replayid":{replay_id},"eventuuid":"{uuid}"}}" received"#
    );
    assert!(stdout.contains(&expected), "{stdout}");
    let number: String = direct
        .query_one(
            &format!("SELECT order_number__c FROM {TABLE} WHERE replayid = $1"),
            &[&replay_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(number, "17");
    sync.stop_cleanly(Duration::from_secs(30)).await;
}
