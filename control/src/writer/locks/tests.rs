//! Rows another session holds locked are left out of each kind of write, at once, and
//! named; the rest is written.

use std::time::{Duration, Instant};

use sfpg_testkit::TestDatabase;
use tokio_postgres::Client;

use super::*;
use crate::writer::WriteStrategy;
use crate::writer::tests::{mirror_table, plan, record, write};
use crate::writer::{IdRange, delete, delete_absent, update_columns, upsert};

const A: &str = "001000000000001AAA";
const B: &str = "001000000000002AAA";
const C: &str = "001000000000003AAA";
const STAMP: &str = "2024-03-01T12:00:00.000+0000";
const LATER: &str = "2024-03-01T12:00:09.000+0000";

/// A mirror of A, B and C, and another session that holds A locked (`BEGIN; SELECT … FOR
/// UPDATE`, until `ROLLBACK`).
async fn a_held(db: &TestDatabase) -> (Client, Client) {
    let mut client = mirror_table(db).await;
    let records = [
        record(A, STAMP, "a"),
        record(B, STAMP, "b"),
        record(C, STAMP, "c"),
    ];
    write(&mut client, &records, WriteStrategy::CopyMerge).await;
    let holder = db.connect().await;
    holder
        .batch_execute(&format!(
            "BEGIN; SELECT * FROM acme.account WHERE sfid = '{A}' FOR UPDATE"
        ))
        .await
        .unwrap();
    (client, holder)
}

#[tokio::test]
async fn rows_held_locked_are_left_out_of_every_kind_of_write_without_waiting() {
    let db = TestDatabase::create().await;
    let (mut client, holder) = a_held(&db).await;
    let plan = plan();
    let started = Instant::now();
    let transaction = begin(&mut client, Some(Duration::from_secs(5)))
        .await
        .unwrap();
    // An upsert of A and B: B is written, A named.
    let newer = [record(A, LATER, "a2"), record(B, LATER, "b2")];
    let rows = Rows::from_records("Account", plan.fields.iter().collect(), &newer).unwrap();
    let (free, locked) = skip_locked(&transaction, &plan, &rows, LockFor::Update)
        .await
        .unwrap();
    assert_eq!(locked, [A]);
    let free = free.unwrap();
    assert_eq!(free.ids().collect::<Vec<_>>(), [B]);
    let upserted = upsert(&transaction, &plan, &free, WriteStrategy::CopyMerge)
        .await
        .unwrap();
    assert_eq!(upserted.written, 1);
    // Column updates, as the formula refresh writes them.
    let (_, locked) = skip_locked(&transaction, &plan, &rows, LockFor::Update)
        .await
        .unwrap();
    assert_eq!(locked, [A]);
    assert_eq!(update_columns(&transaction, &plan, &free).await.unwrap(), 0);
    // Deletes by Id: C goes, A stays.
    let ids = [A.to_owned(), C.to_owned()];
    let (free_ids, locked) = skip_locked_ids(&transaction, &plan, &ids, LockFor::Delete)
        .await
        .unwrap();
    assert_eq!(
        (free_ids.as_slice(), locked.as_slice()),
        ([C.to_owned()].as_slice(), [A.to_owned()].as_slice())
    );
    assert_eq!(delete(&transaction, &plan, &free_ids).await.unwrap(), 1);
    // A reconciliation page that no longer lists A: A is locked, so it stays, named.
    let everything = IdRange {
        after: None,
        upto: None,
    };
    let far = chrono::Utc::now() + chrono::Duration::days(1);
    let (deleted, locked) = delete_absent(&transaction, &plan, everything, &[B.to_owned()], far)
        .await
        .unwrap();
    assert_eq!((deleted, locked.as_slice()), (0, [A.to_owned()].as_slice()));
    transaction.commit().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "a write waited for the lock: {:?}",
        started.elapsed()
    );
    holder.batch_execute("ROLLBACK").await.unwrap();
    let names: Vec<(String, String)> = client
        .query("SELECT sfid, name FROM acme.account ORDER BY sfid", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(
        names,
        [
            (A.to_owned(), "a".to_owned()),
            (B.to_owned(), "b2".to_owned())
        ]
    );
}

/// Another session sees the lock as long as it is held, then not.
#[tokio::test]
async fn a_look_at_the_locks_finds_them_while_they_are_held() {
    let db = TestDatabase::create().await;
    let (mut client, holder) = a_held(&db).await;
    let plan = plan();
    let owed = [A.to_owned(), B.to_owned()];
    let locked = still_locked(&mut client, &plan, &owed, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(locked.into_iter().collect::<Vec<_>>(), [A]);
    holder.batch_execute("ROLLBACK").await.unwrap();
    let locked = still_locked(&mut client, &plan, &owed, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(locked.is_empty());
}

#[tokio::test]
async fn a_backfill_page_whose_row_a_client_is_changing_falls_back_and_leaves_it_out() {
    let db = TestDatabase::create().await;
    let mut client = mirror_table(&db).await;
    write(
        &mut client,
        &[record(A, STAMP, "a")],
        WriteStrategy::CopyMerge,
    )
    .await;
    // A client's open transaction changed A: the unique index makes a COPY of A wait for
    // that transaction, not just for a row lock.
    let mut holder = db.connect().await;
    let held = holder.transaction().await.unwrap();
    held.batch_execute(&format!(
        "SET LOCAL sfpg.origin = 'proxy'; UPDATE acme.account SET name = 'x' WHERE sfid = '{A}'"
    ))
    .await
    .unwrap();

    let plan = plan();
    let page = [record(A, STAMP, "a"), record(C, STAMP, "c")];
    let rows = Rows::from_records("Account", plan.fields.iter().collect(), &page).unwrap();
    let transaction = begin(&mut client, Some(Duration::from_millis(200)))
        .await
        .unwrap();
    let copied = crate::writer::copy_all_new(&transaction, &plan, &rows, WriteStrategy::CopyMerge)
        .await
        .unwrap();
    assert_eq!(copied, None);
    let (free, locked) = skip_locked(&transaction, &plan, &rows, LockFor::Update)
        .await
        .unwrap();
    assert_eq!(locked, [A]);
    let upserted = upsert(
        &transaction,
        &plan,
        &free.unwrap(),
        WriteStrategy::CopyMerge,
    )
    .await
    .unwrap();
    assert_eq!(upserted.inserted, 1);
    transaction.commit().await.unwrap();
    held.rollback().await.unwrap();
}
