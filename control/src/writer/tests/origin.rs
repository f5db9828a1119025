//! What every write carries: the sync origin, which the capture triggers let through
//! uncaptured, and a lock timeout.

use super::*;

#[tokio::test]
async fn a_row_locked_by_another_session_times_out_quickly() {
    let db = TestDatabase::create().await;
    let mut client = mirror_table(&db).await;
    write(
        &mut client,
        &[record(A, "2024-03-01T12:00:00.000+0000", "Acme")],
        WriteStrategy::Unnest,
    )
    .await;
    let mut proxy = db.connect().await;
    let held = proxy.transaction().await.unwrap();
    held.batch_execute("SELECT * FROM acme.account FOR UPDATE")
        .await
        .unwrap();

    let plan = plan();
    let newer = record(A, "2024-03-01T12:00:09.000+0000", "Acme 2");
    let rows = Rows::from_records("Account", plan.fields.iter().collect(), &[newer]).unwrap();
    let started = std::time::Instant::now();
    let transaction = begin(&mut client, Some(Duration::from_millis(200)))
        .await
        .unwrap();
    let error = upsert(&transaction, &plan, &rows, WriteStrategy::Unnest)
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(&SqlState::LOCK_NOT_AVAILABLE), "{error}");
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(transaction);
    held.rollback().await.unwrap();
}

#[tokio::test]
async fn writes_carry_the_sync_origin() {
    let db = TestDatabase::create().await;
    let mut client = mirror_table(&db).await;
    let transaction = begin(&mut client, Some(Duration::from_secs(2)))
        .await
        .unwrap();
    let origin: String = transaction
        .query_one("SELECT current_setting('sfpg.origin')", &[])
        .await
        .unwrap()
        .get(0);
    let key: String = transaction
        .query_one("SELECT key FROM sfpg.origin_key", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(origin, format!("sync:{key}"));
    transaction.commit().await.unwrap();
    // Transaction-local: gone after commit.
    let after: Option<String> = client
        .query_one("SELECT current_setting('sfpg.origin', true)", &[])
        .await
        .unwrap()
        .get(0);
    assert!(after.is_none_or(|v| v.is_empty()));
}

#[tokio::test]
async fn the_capture_triggers_let_the_sync_through_without_capturing_it() {
    let db = TestDatabase::create().await;
    let mut client = db.connect().await;
    crate::apply_control_schema(&mut client).await.unwrap();
    let plan = plan();
    mirror::create_schema(&client, &plan.schema).await.unwrap();
    mirror::create_table(&client, &plan.schema, &plan.table, &plan.columns())
        .await
        .unwrap();
    crate::capture::install_capture_trigger(&client, &plan.schema, &plan.table)
        .await
        .unwrap();

    for strategy in [WriteStrategy::CopyMerge, WriteStrategy::Unnest] {
        let stamp = "2024-03-01T12:00:00.000+0000";
        write(
            &mut client,
            &[record(A, stamp, "Acme"), record(B, stamp, "Globex")],
            strategy,
        )
        .await;
        let transaction = begin(&mut client, Some(Duration::from_secs(2)))
            .await
            .unwrap();
        delete(&transaction, &plan, &[A.to_owned(), B.to_owned()])
            .await
            .unwrap();
        let pending: i64 = transaction
            .query_one("SELECT count(*) FROM sfpg.pending_changes", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(pending, 0, "the sync's writes were captured");
        transaction.commit().await.unwrap();
    }
    // Anyone else is refused.
    let error = client
        .batch_execute("INSERT INTO acme.account (sfid) VALUES ('001000000000009AAA')")
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("sfpg proxy")
            || error
                .as_db_error()
                .is_some_and(|e| e.message().contains("mirrors Salesforce")),
        "{error}"
    );
}
