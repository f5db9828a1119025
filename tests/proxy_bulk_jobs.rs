//! How a bulk push runs its ingest jobs (issue 25): the jobs of one stage (the updates of
//! different objects) run side by side, a cancel aborts them all, rows with the same cells are told apart when
//! their results come back, the journal keeps no copy of the records' fields, and a push
//! whose journal entry cannot be written sends nothing.

// Helpers of a test crate may unwrap: a failure should stop the test where it happened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use sfpg_testkit::world::World;

/// How many ingest jobs the org has been asked to create.
fn ingest_jobs(world: &World) -> usize {
    world
        .emulator
        .requests(0)
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/jobs/ingest"))
        .count()
}

#[tokio::test]
async fn the_updates_of_two_objects_run_side_by_side() {
    let world = World::start(&["Account", "Contact"], 20).await;
    let client = world.client().await;
    client
        .batch_execute(
            "SET sfpg.bulk_writes = on; BEGIN;
             UPDATE salesforce.account SET billingcity = 'Brest';
             UPDATE salesforce.contact SET lastname = lastname || ' (moved)';
             COMMIT",
        )
        .await
        .unwrap();
    let requests = world.emulator.requests(0);
    let at = |pick: &dyn Fn(&str, &str) -> bool| -> Vec<usize> {
        requests
            .iter()
            .enumerate()
            .filter(|(_, r)| pick(&r.method, &r.path))
            .map(|(i, _)| i)
            .collect()
    };
    let created = at(&|method, path| method == "POST" && path.ends_with("/jobs/ingest"));
    let results = at(&|method, path| method == "GET" && path.ends_with("/successfulResults"));
    assert_eq!((created.len(), results.len()), (2, 2));
    // The second job was created while the first was still running: before any job's
    // results were read.
    assert!(
        created[1] < results[0],
        "jobs one after the other: created at {created:?}, results read at {results:?}"
    );
    world.assert_mirror_equals_org("Account").await;
    world.assert_mirror_equals_org("Contact").await;
}

#[tokio::test]
async fn a_cancel_aborts_every_job_under_way() {
    let world = World::start(&["Account", "Contact"], 20).await;
    // Each job stays queued, then processes: long enough to cancel in between.
    world
        .emulator
        .set_bulk_processing_delay(Duration::from_secs(8));
    let mut config = world.proxy_config();
    config.options("-c sfpg.bulk_writes=on");
    let (client, mut connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
    let (notices_in, mut notices) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(message)) = futures::StreamExt::next(&mut messages).await {
            if let tokio_postgres::AsyncMessage::Notice(notice) = message {
                let _ = notices_in.send(format!("{}: {}", notice.severity(), notice.message()));
            }
        }
    });
    let direct = world.direct().await;
    let count = async |sql: &str| -> i64 { direct.query_one(sql, &[]).await.unwrap().get(0) };
    let records = count("SELECT count(*) FROM salesforce.account").await
        + count("SELECT count(*) FROM salesforce.contact").await;
    let cancel = client.cancel_token();
    let push = tokio::spawn(async move {
        client
            .batch_execute(
                "BEGIN; UPDATE salesforce.account SET billingcity = 'Cancelled';
                 UPDATE salesforce.contact SET lastname = 'Cancelled'; COMMIT",
            )
            .await
            .map(|()| client)
    });
    // A progress notice while the jobs are queued, then the cancel.
    let first = tokio::time::timeout(Duration::from_secs(20), notices.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(first.starts_with("NOTICE: Bulk update of "), "{first}");
    cancel.cancel_query(tokio_postgres::NoTls).await.unwrap();
    push.await.unwrap().unwrap();
    let mut warned = Vec::new();
    while let Ok(notice) = notices.try_recv() {
        warned.push(notice);
    }
    // Both jobs were under way, and neither saved anything: both were aborted.
    assert_eq!(ingest_jobs(&world), 2);
    // Not refused by Salesforce: never processed.
    let unsaved = format!(
        "WARNING: {records} of {records} records were not saved: the push was cancelled before Salesforce processed them"
    );
    assert!(warned.iter().any(|n| n.starts_with(&unsaved)), "{warned:?}");
    assert_eq!(
        count(
            "SELECT (SELECT count(*) FROM salesforce.account WHERE billingcity = 'Cancelled')
                  + (SELECT count(*) FROM salesforce.contact WHERE lastname = 'Cancelled')"
        )
        .await,
        0
    );
    world.assert_mirror_equals_org("Account").await;
    world.assert_mirror_equals_org("Contact").await;
}

#[tokio::test]
async fn inserts_with_the_same_fields_each_get_their_own_record() {
    let world = World::start(&["Account"], 20).await;
    let client = world.client().await;
    client
        .batch_execute(
            "SET sfpg.bulk_writes = on;
             INSERT INTO salesforce.account (name, billingcity)
             SELECT 'Twin', CASE WHEN g % 2 = 0 THEN 'Lyon' END FROM generate_series(1, 30) g",
        )
        .await
        .unwrap();
    let direct = world.direct().await;
    let row = direct
        .query_one(
            "SELECT count(*), count(DISTINCT sfid), count(*) FILTER (WHERE sfid IS NULL)
               FROM salesforce.account WHERE name = 'Twin'",
            &[],
        )
        .await
        .unwrap();
    let counts: (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(counts, (30, 30, 0));
    world.assert_mirror_equals_org("Account").await;
}

#[tokio::test]
async fn a_bulk_push_journals_its_records_without_their_fields() {
    let world = World::start(&["Account"], 20).await;
    let client = world.client().await;
    client
        .batch_execute(
            "SET sfpg.bulk_writes = on;
             UPDATE salesforce.account SET billingcity = 'Quimper'",
        )
        .await
        .unwrap();
    let direct = world.direct().await;
    let row = direct
        .query_one(
            "SELECT jsonb_array_length(records),
                    count(*) FILTER (WHERE r -> 'sfid' IS NOT NULL AND r ->> 'sfid' <> ''),
                    count(*) FILTER (WHERE coalesce(r -> 'fields', '{}') <> '{}')
               FROM sfpg.write_journal, jsonb_array_elements(records) r
              WHERE response ? 'bulk_jobs'
              GROUP BY id ORDER BY id DESC LIMIT 1",
            &[],
        )
        .await
        .unwrap();
    let (records, with_ids, with_fields): (i32, i64, i64) = (row.get(0), row.get(1), row.get(2));
    let accounts: i64 = direct
        .query_one("SELECT count(*) FROM salesforce.account", &[])
        .await
        .unwrap()
        .get(0);
    // Every record with its Id, which is what a repair reads back; none with its fields.
    assert!(accounts > 0);
    assert_eq!(
        (i64::from(records), with_ids, with_fields),
        (accounts, accounts, 0)
    );
    world.assert_mirror_equals_org("Account").await;
}

/// A bulk push whose journal entry cannot be written sends nothing: without the entry, a
/// crash during its jobs would lose what Salesforce saved. The client hears why, with the
/// server's SQLSTATE, and the mirror and the org are as before.
#[tokio::test]
async fn a_bulk_push_that_cannot_be_journaled_sends_nothing() {
    let world = World::start(&["Account"], 20).await;
    let direct = world.direct().await;
    // The journal refuses every bulk entry (a fault standing for a full disk, a revoked
    // privilege, a broken constraint).
    direct
        .batch_execute(
            "ALTER TABLE sfpg.write_journal ADD CONSTRAINT no_bulk_entries
                 CHECK (NOT response ? 'bulk_jobs')",
        )
        .await
        .unwrap();
    let client = world.client().await;
    let error = client
        .batch_execute(
            "SET sfpg.bulk_writes = on;
             UPDATE salesforce.account SET billingcity = 'Unjournaled'",
        )
        .await
        .unwrap_err();
    let db = error.as_db_error().expect("a server error");
    assert_eq!(db.code().code(), "23514", "{db:?}");
    assert!(
        db.message().contains("write journal") && db.message().contains("no_bulk_entries"),
        "{db:?}"
    );
    assert!(
        db.detail()
            .is_some_and(|d| d.starts_with("Nothing was sent")),
        "{db:?}"
    );
    assert_eq!(ingest_jobs(&world), 0);
    let moved: i64 = direct
        .query_one(
            "SELECT count(*) FROM salesforce.account WHERE billingcity = 'Unjournaled'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(moved, 0);
    world.assert_mirror_equals_org("Account").await;
}
