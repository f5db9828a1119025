//! How a bulk push runs its ingest jobs (issue 25): the jobs of one stage (the updates of
//! different objects) run side by side, rows with the same cells are told apart when
//! their results come back, and the journal keeps no copy of the records' fields.

// Helpers of a test crate may unwrap: a failure should stop the test where it happened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sfpg_testkit::world::World;

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
