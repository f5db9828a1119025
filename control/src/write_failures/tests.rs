//! `sfpg.write_failures` and `sfpg.restore_refused` against a real PostgreSQL: each role
//! reads its own failures only, old ones are purged, and refused rows come back as they were.

use sfpg_testkit::TestDatabase;
use tokio_postgres::Client;

use super::*;
use crate::capture::{
    CURRENT_TXID_SQL, PUSH_TICKET_SQL, RESTORE_REFUSED_SQL, SET_SYNC_ORIGIN_SQL,
    install_capture_trigger,
};
use crate::mapping::ColumnType;
use crate::migrations::apply_control_schema;
use crate::mirror::{Column, create_schema, create_table};

async fn migrated(db: &TestDatabase) -> Client {
    let mut client = db.connect().await;
    apply_control_schema(&mut client).await.unwrap();
    client
}

fn failure(role: &str, row_id: i64) -> WriteFailure {
    WriteFailure {
        role_name: role.to_owned(),
        txid: "42".into(),
        journal_id: None,
        org: "acme".into(),
        job_id: Some("7501x000000001AAA".into()),
        schema: "salesforce".into(),
        table: "account".into(),
        row_id,
        sfid: None,
        operation: Operation::Create,
        error_code: "REQUIRED_FIELD_MISSING".into(),
        message: "Required fields are missing: [Name]".into(),
        fields: vec!["Name".into()],
    }
}

#[tokio::test]
async fn each_role_reads_only_its_own_failures() {
    let db = TestDatabase::create().await;
    let owner = migrated(&db).await;
    let (mine, theirs) = (
        format!("{}_mine", db.name()),
        format!("{}_theirs", db.name()),
    );
    owner
        .batch_execute(&format!("CREATE ROLE {mine}; CREATE ROLE {theirs}"))
        .await
        .unwrap();
    record(
        &owner,
        &[failure(&mine, 1), failure(&mine, 2), failure(&theirs, 3)],
    )
    .await
    .unwrap();
    owner
        .batch_execute(&format!("SET ROLE {mine}"))
        .await
        .unwrap();
    let rows: Vec<i64> = owner
        .query(
            "SELECT row_id FROM sfpg.write_failures ORDER BY row_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(rows, [1, 2]);
    let listed = owner.query(&listing_query("42"), &[]).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(
        listed[0].get::<_, String>("error_code"),
        "REQUIRED_FIELD_MISSING"
    );
    assert_eq!(listed[0].get::<_, Vec<String>>("fields"), ["Name"]);
    owner.batch_execute("RESET ROLE").await.unwrap();
    let all: i64 = owner
        .query_one("SELECT count(*) FROM sfpg.write_failures", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(all, 3, "the owner sees every row");
}

#[tokio::test]
async fn failures_older_than_the_retention_are_purged() {
    let db = TestDatabase::create().await;
    let owner = migrated(&db).await;
    record(&owner, &[failure("someone", 1), failure("someone", 2)])
        .await
        .unwrap();
    owner
        .batch_execute(
            "UPDATE sfpg.write_failures SET failed_at = now() - interval '8 days' WHERE row_id = 1",
        )
        .await
        .unwrap();
    let purged = purge(&owner, Duration::from_secs(7 * 86_400))
        .await
        .unwrap();
    assert_eq!(purged, 1);
    let left: i64 = owner
        .query_one("SELECT row_id FROM sfpg.write_failures", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 2);
}

#[tokio::test]
async fn refused_rows_are_restored_uncaptured() {
    let db = TestDatabase::create().await;
    let client = migrated(&db).await;
    create_schema(&client, "salesforce").await.unwrap();
    let columns = [Column {
        name: "name".into(),
        column_type: ColumnType::Text,
    }];
    create_table(&client, "salesforce", "account", &columns)
        .await
        .unwrap();
    install_capture_trigger(&client, "salesforce", "account")
        .await
        .unwrap();
    client
        .batch_execute(&format!(
            "BEGIN; {SET_SYNC_ORIGIN_SQL};
             INSERT INTO salesforce.account (id, sfid, name) VALUES
                 (1, '001000000000001AAA', 'Updated'), (2, '001000000000002AAA', 'Deleted');
             COMMIT"
        ))
        .await
        .unwrap();
    // A proxy session's transaction: an update, a delete and an insert, all refused.
    client
        .batch_execute(
            "SET sfpg.origin = 'proxy'; BEGIN;
             UPDATE salesforce.account SET name = 'Changed' WHERE id = 1;
             DELETE FROM salesforce.account WHERE id = 2;
             INSERT INTO salesforce.account (id, name) VALUES (3, 'New');",
        )
        .await
        .unwrap();
    let txid: String = client
        .query_one(CURRENT_TXID_SQL, &[])
        .await
        .unwrap()
        .get(0);
    let owner = db.connect().await;
    let ticket: String = owner
        .query_one(PUSH_TICKET_SQL, &[&txid])
        .await
        .unwrap()
        .get(0);
    client
        .query_one("SELECT sfpg.take_pending_changes($1)", &[&ticket])
        .await
        .unwrap();
    let rows = serde_json::json!([
        {"id": 1, "row": {"id": 1, "sfid": "001000000000001AAA", "name": "Updated", "isdeleted": false}},
        {"id": 2, "row": {"id": 2, "sfid": "001000000000002AAA", "name": "Deleted", "isdeleted": false}},
        {"id": 3}
    ])
    .to_string();
    let restored: i64 = client
        .query_one(
            RESTORE_REFUSED_SQL,
            &[&ticket, &"salesforce", &"account", &rows],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(restored, 3);
    // Nothing was captured by the restore, so the transaction commits.
    client.batch_execute("COMMIT").await.unwrap();
    let names: Vec<(i64, String)> = client
        .query("SELECT id, name FROM salesforce.account ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        names,
        [(1, "Updated".to_owned()), (2, "Deleted".to_owned())]
    );
    // A guessed ticket restores nothing.
    client.batch_execute("BEGIN").await.unwrap();
    let error = client
        .query_one(
            RESTORE_REFUSED_SQL,
            &[&"guess", &"salesforce", &"account", &"[]"],
        )
        .await
        .unwrap_err();
    let message = error.as_db_error().unwrap().message().to_owned();
    assert!(message.contains("only the sfpg proxy"), "{message}");
}
