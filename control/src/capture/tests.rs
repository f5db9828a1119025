//! The capture triggers against a real PostgreSQL: who may write, what is recorded, and
//! that nothing captured can commit unpushed.

use sfpg_testkit::TestDatabase;
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

use super::*;
use crate::mapping::ColumnType;
use crate::migrations::apply_control_schema;
use crate::mirror::{Column, create_schema, create_table};

async fn mirrored(db: &TestDatabase) -> Client {
    let mut client = db.connect().await;
    apply_control_schema(&mut client).await.unwrap();
    create_schema(&client, "salesforce").await.unwrap();
    let columns = [
        Column {
            name: "name".into(),
            column_type: ColumnType::Text,
        },
        Column {
            name: "billingcity".into(),
            column_type: ColumnType::Text,
        },
    ];
    create_table(&client, "salesforce", "account", &columns)
        .await
        .unwrap();
    install_capture_trigger(&client, "salesforce", "account")
        .await
        .unwrap();
    client
}

/// The push ticket of the transaction open on `on`, minted on a connection of the control
/// schema's owner, as the proxy does.
async fn ticket_of(db: &TestDatabase, on: &impl GenericClient) -> String {
    let txid: String = on.query_one(CURRENT_TXID_SQL, &[]).await.unwrap().get(0);
    let owner = db.connect().await;
    owner
        .query_one(PUSH_TICKET_SQL, &[&txid])
        .await
        .unwrap()
        .get(0)
}

async fn as_sync(client: &Client, sql: &str) {
    client
        .batch_execute(&format!("BEGIN; {SET_SYNC_ORIGIN_SQL}; {sql}; COMMIT"))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_direct_write_is_refused_with_the_table_named() {
    let db = TestDatabase::create().await;
    let client = mirrored(&db).await;
    let error = client
        .batch_execute("INSERT INTO salesforce.account (name) VALUES ('Acme')")
        .await
        .unwrap_err();
    let db_error = error.as_db_error().unwrap();
    assert_eq!(db_error.code(), &SqlState::READ_ONLY_SQL_TRANSACTION);
    assert!(
        db_error.message().contains("salesforce.account"),
        "{db_error}"
    );
    assert!(db_error.hint().unwrap().contains("sfpg proxy"));
    assert_eq!(db_error.table(), Some("account"));
}

#[tokio::test]
async fn truncate_is_refused_except_for_the_sync() {
    let db = TestDatabase::create().await;
    let client = mirrored(&db).await;
    let error = client
        .batch_execute("TRUNCATE salesforce.account")
        .await
        .unwrap_err();
    let db_error = error.as_db_error().unwrap();
    assert_eq!(db_error.code(), &SqlState::FEATURE_NOT_SUPPORTED);
    assert!(db_error.message().contains("salesforce.account"));
    // Even a proxy session may not.
    let error = client
        .batch_execute("SET sfpg.origin = 'proxy'; TRUNCATE salesforce.account")
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(&SqlState::FEATURE_NOT_SUPPORTED));
    client.batch_execute("RESET sfpg.origin").await.unwrap();
    as_sync(&client, "TRUNCATE salesforce.account").await;
}

#[tokio::test]
async fn sync_writes_are_not_captured() {
    let db = TestDatabase::create().await;
    let client = mirrored(&db).await;
    as_sync(
        &client,
        "INSERT INTO salesforce.account (sfid, name) VALUES ('001000000000001AAA', 'Acme');
         UPDATE salesforce.account SET name = 'Acme 2'",
    )
    .await;
    let pending: i64 = client
        .query_one("SELECT count(*) FROM sfpg.pending_changes", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(pending, 0);
}

#[tokio::test]
async fn proxy_writes_are_captured_with_images_and_changed_columns() {
    let db = TestDatabase::create().await;
    let mut client = mirrored(&db).await;
    as_sync(
        &client,
        "INSERT INTO salesforce.account (sfid, name, billingcity) VALUES ('001000000000001AAA', 'Acme', 'Paris')",
    )
    .await;
    client
        .batch_execute("SET sfpg.origin = 'proxy'")
        .await
        .unwrap();
    let tx = client.transaction().await.unwrap();
    tx.batch_execute(
        "INSERT INTO salesforce.account (name) VALUES ('New Co');
         UPDATE salesforce.account SET billingcity = 'Lyon' WHERE sfid = '001000000000001AAA';
         UPDATE salesforce.account SET name = name;
         DELETE FROM salesforce.account WHERE name = 'New Co'",
    )
    .await
    .unwrap();
    let ticket = ticket_of(&db, &tx).await;
    let json: String = tx
        .query_one(TAKE_PENDING_SQL, &[&ticket])
        .await
        .unwrap()
        .get(0);
    let changes = parse_pending(&json).unwrap();
    let operations: Vec<Operation> = changes.iter().map(|c| c.operation).collect();
    // The no-op UPDATE … SET name = name records nothing.
    assert_eq!(
        operations,
        vec![Operation::Insert, Operation::Update, Operation::Delete]
    );
    let insert = &changes[0];
    assert_eq!(
        (insert.schema.as_str(), insert.table.as_str()),
        ("salesforce", "account")
    );
    assert_eq!(insert.new.as_ref().unwrap()["name"], "New Co");
    // A new row has the provisional sfid of the column's default until the push.
    let sfid = insert.new.as_ref().unwrap()["sfid"].as_str().unwrap();
    assert!(crate::mirror::is_provisional_sfid(sfid), "{sfid}");
    let update = &changes[1];
    assert_eq!(
        update.changed.as_deref(),
        Some(&["billingcity".to_owned()][..])
    );
    assert_eq!(update.old.as_ref().unwrap()["billingcity"], "Paris");
    assert_eq!(update.new.as_ref().unwrap()["billingcity"], "Lyon");
    let delete = &changes[2];
    assert_eq!(delete.row_id, insert.row_id);
    let oid: u32 = tx
        .query_one("SELECT 'salesforce.account'::regclass::oid", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(insert.table_oid, oid);
    // Taken means gone: a second take is empty, and the transaction may commit.
    let ticket = ticket_of(&db, &tx).await;
    let again: String = tx
        .query_one(TAKE_PENDING_SQL, &[&ticket])
        .await
        .unwrap()
        .get(0);
    assert_eq!(again, "[]");
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn an_unpushed_change_cannot_commit() {
    let db = TestDatabase::create().await;
    let client = mirrored(&db).await;
    client
        .batch_execute("SET sfpg.origin = 'proxy'")
        .await
        .unwrap();
    let error = client
        .batch_execute("INSERT INTO salesforce.account (name) VALUES ('Sneaky')")
        .await
        .unwrap_err();
    let db_error = error.as_db_error().unwrap();
    assert_eq!(db_error.code(), &SqlState::READ_ONLY_SQL_TRANSACTION);
    assert!(
        db_error.message().contains("not sent to Salesforce"),
        "{db_error}"
    );
    client.batch_execute("RESET sfpg.origin").await.unwrap();
    let rows: i64 = client
        .query_one("SELECT count(*) FROM salesforce.account", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 0);
}

#[tokio::test]
async fn a_rolled_back_savepoint_leaves_nothing_captured() {
    let db = TestDatabase::create().await;
    let mut client = mirrored(&db).await;
    client
        .batch_execute("SET sfpg.origin = 'proxy'")
        .await
        .unwrap();
    let tx = client.transaction().await.unwrap();
    tx.batch_execute(
        "INSERT INTO salesforce.account (name) VALUES ('Kept');
         SAVEPOINT s;
         INSERT INTO salesforce.account (name) VALUES ('Dropped');
         ROLLBACK TO SAVEPOINT s",
    )
    .await
    .unwrap();
    let ticket = ticket_of(&db, &tx).await;
    let json: String = tx
        .query_one(TAKE_PENDING_SQL, &[&ticket])
        .await
        .unwrap()
        .get(0);
    let changes = parse_pending(&json).unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].new.as_ref().unwrap()["name"], "Kept");
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn a_role_without_control_schema_privileges_can_write_through_the_proxy() {
    let db = TestDatabase::create().await;
    let admin = mirrored(&db).await;
    admin
        .batch_execute(
            "CREATE ROLE app_writer LOGIN;
             GRANT USAGE ON SCHEMA salesforce TO app_writer;
             GRANT SELECT, INSERT, UPDATE, DELETE ON salesforce.account TO app_writer;
             GRANT USAGE ON SEQUENCE salesforce.account_id_seq TO app_writer;",
        )
        .await
        .unwrap();
    admin
        .batch_execute(
            "SET ROLE app_writer; SET sfpg.origin = 'proxy'; BEGIN;
             INSERT INTO salesforce.account (name) VALUES ('Role Co');",
        )
        .await
        .unwrap();
    let ticket = ticket_of(&db, &admin).await;
    let json: String = admin
        .query_one(TAKE_PENDING_SQL, &[&ticket])
        .await
        .unwrap()
        .get(0);
    assert_eq!(parse_pending(&json).unwrap().len(), 1);
    admin.batch_execute("COMMIT; RESET ROLE").await.unwrap();
    admin
        .batch_execute("DROP OWNED BY app_writer; DROP ROLE app_writer")
        .await
        .unwrap();
}

#[tokio::test]
async fn installing_twice_is_harmless() {
    let db = TestDatabase::create().await;
    let client = mirrored(&db).await;
    install_capture_trigger(&client, "salesforce", "account")
        .await
        .unwrap();
    let triggers: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'salesforce.account'::regclass AND NOT tgisinternal",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(triggers, 2);
    remove_capture_trigger(&client, "salesforce", "account")
        .await
        .unwrap();
    client
        .batch_execute("INSERT INTO salesforce.account (name) VALUES ('Unguarded')")
        .await
        .unwrap();
}

/// A client role can neither claim the sync origin nor take its captured changes: the key
/// both need is readable by the control schema's owner only.
#[tokio::test]
async fn a_client_role_cannot_claim_the_sync_origin_or_take_its_changes() {
    let db = TestDatabase::create().await;
    let admin = mirrored(&db).await;
    admin
        .batch_execute(
            "CREATE ROLE app_forger LOGIN;
             GRANT USAGE ON SCHEMA salesforce TO app_forger;
             GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON salesforce.account TO app_forger;
             GRANT USAGE ON SEQUENCE salesforce.account_id_seq TO app_forger;
             SET ROLE app_forger",
        )
        .await
        .unwrap();
    let refused = |sql: &'static str| {
        let admin = &admin;
        async move {
            let error = admin.batch_execute(sql).await.unwrap_err();
            admin.batch_execute("ROLLBACK").await.unwrap();
            error.as_db_error().unwrap().clone()
        }
    };
    let read = refused("SELECT key FROM sfpg.origin_key").await;
    assert_eq!(read.code(), &SqlState::INSUFFICIENT_PRIVILEGE, "{read}");
    for origin in ["sync", "sync:guess", "sync:"] {
        let sql = format!(
            "BEGIN; SET LOCAL sfpg.origin = '{origin}'; INSERT INTO salesforce.account (name) VALUES ('Forged')"
        );
        let error = admin.batch_execute(&sql).await.unwrap_err();
        admin.batch_execute("ROLLBACK").await.unwrap();
        let error = error.as_db_error().unwrap();
        assert_eq!(
            error.code(),
            &SqlState::READ_ONLY_SQL_TRANSACTION,
            "{origin}: {error}"
        );
        let sql = format!("BEGIN; SET LOCAL sfpg.origin = '{origin}'; TRUNCATE salesforce.account");
        let error = admin.batch_execute(&sql).await.unwrap_err();
        admin.batch_execute("ROLLBACK").await.unwrap();
        assert_eq!(
            error.as_db_error().unwrap().code(),
            &SqlState::FEATURE_NOT_SUPPORTED,
            "{origin}"
        );
    }
    // Captured as a proxy session, then taken without the key: refused, and the change
    // cannot commit.
    admin
        .batch_execute("SET sfpg.origin = 'proxy'")
        .await
        .unwrap();
    let take = refused(
        "BEGIN;
         INSERT INTO salesforce.account (name) VALUES ('Sneaky');
         SELECT sfpg.take_pending_changes('guess')",
    )
    .await;
    assert_eq!(take.code(), &SqlState::INSUFFICIENT_PRIVILEGE, "{take}");
    let commit = admin
        .batch_execute("BEGIN; INSERT INTO salesforce.account (name) VALUES ('Sneaky'); COMMIT")
        .await
        .unwrap_err();
    let commit = commit.as_db_error().unwrap();
    assert_eq!(commit.code(), &SqlState::READ_ONLY_SQL_TRANSACTION);
    assert!(
        commit.message().contains("not sent to Salesforce"),
        "{commit}"
    );
    admin.batch_execute("ROLLBACK").await.unwrap();
    // With the transaction's ticket, which only the owner can mint, they are taken.
    admin
        .batch_execute("BEGIN; INSERT INTO salesforce.account (name) VALUES ('Pushed')")
        .await
        .unwrap();
    let ticket = ticket_of(&db, &admin).await;
    let json: String = admin
        .query_one(TAKE_PENDING_SQL, &[&ticket])
        .await
        .unwrap()
        .get(0);
    assert_eq!(parse_pending(&json).unwrap().len(), 1);
    admin
        .batch_execute("COMMIT; RESET ROLE; RESET sfpg.origin")
        .await
        .unwrap();
    let rows: Vec<String> = admin
        .query("SELECT name FROM salesforce.account", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(rows, ["Pushed"]);
    admin
        .batch_execute("DROP OWNED BY app_forger; DROP ROLE app_forger")
        .await
        .unwrap();
}

/// A client role may not mint a ticket; a ticket is good in its own transaction only; and
/// a write-back writes the given columns of mirrored tables only, under an origin that is
/// gone when it returns.
#[tokio::test]
async fn the_write_back_needs_this_transactions_ticket_and_leaves_no_origin_behind() {
    let db = TestDatabase::create().await;
    let admin = mirrored(&db).await;
    as_sync(
        &admin,
        "INSERT INTO salesforce.account (sfid, name, billingcity) VALUES ('001000000000001AAA', 'Acme', 'Paris');
         CREATE TABLE public.plain (id bigint PRIMARY KEY, name text);
         INSERT INTO public.plain VALUES (1, 'x')",
    )
    .await;
    admin
        .batch_execute(
            "CREATE ROLE app_back LOGIN;
             GRANT USAGE ON SCHEMA salesforce TO app_back;
             GRANT SELECT, UPDATE (billingcity) ON salesforce.account TO app_back;
             GRANT ALL ON public.plain TO app_back;
             SET ROLE app_back; SET sfpg.origin = 'proxy'",
        )
        .await
        .unwrap();
    let mint = admin
        .batch_execute("SELECT sfpg.push_ticket(pg_current_xact_id())")
        .await
        .unwrap_err();
    assert_eq!(
        mint.code(),
        Some(&SqlState::INSUFFICIENT_PRIVILEGE),
        "{mint}"
    );
    // Each step in a new transaction that captured a change, as a push finds it.
    let next_transaction = async |sql: &str| {
        admin
            .batch_execute(&format!(
                "{sql} BEGIN; UPDATE salesforce.account SET billingcity = 'Lyon'"
            ))
            .await
            .unwrap();
        ticket_of(&db, &admin).await
    };
    let refused = async |ticket: &str, schema: &str, table: &str, rows: &str| {
        admin
            .query_one(WRITE_BACK_SQL, &[&ticket, &schema, &table, &rows])
            .await
            .unwrap_err()
            .code()
            .cloned()
    };
    let rows = r#"[{"id": 1, "name": "Acme Corp", "sfid": "001000000000001AAA"}]"#;
    // A ticket minted for another transaction (here: the previous one) is refused.
    let stale = next_transaction("").await;
    next_transaction("ROLLBACK;").await;
    assert_eq!(
        refused(&stale, "salesforce", "account", rows).await,
        Some(SqlState::INSUFFICIENT_PRIVILEGE)
    );
    // Not a mirrored table: refused, though the role may write it.
    let ticket = next_transaction("ROLLBACK;").await;
    assert_eq!(
        refused(&ticket, "public", "plain", r#"[{"id": 1, "name": "y"}]"#).await,
        Some(SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE)
    );
    let ticket = next_transaction("ROLLBACK;").await;
    let taken: String = admin
        .query_one(TAKE_PENDING_SQL, &[&ticket])
        .await
        .unwrap()
        .get(0);
    assert_eq!(parse_pending(&taken).unwrap().len(), 1);
    // `name` is a column the role may not update; the write-back writes it anyway, and
    // keeps `billingcity`, which the row's object does not carry.
    let written: i64 = admin
        .query_one(WRITE_BACK_SQL, &[&ticket, &"salesforce", &"account", &rows])
        .await
        .unwrap()
        .get(0);
    assert_eq!(written, 1);
    let origin: String = admin
        .query_one("SELECT current_setting('sfpg.origin')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(origin, "proxy");
    admin
        .batch_execute("COMMIT; RESET ROLE; RESET sfpg.origin")
        .await
        .unwrap();
    let row = admin
        .query_one("SELECT name, billingcity FROM salesforce.account", &[])
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, String>(1)),
        ("Acme Corp".into(), "Lyon".into())
    );
    admin
        .batch_execute("DROP OWNED BY app_back; DROP ROLE app_back")
        .await
        .unwrap();
}

/// After a rotation the old key no longer gets a write past the triggers, the new one does,
/// and tickets follow the new key.
#[tokio::test]
async fn a_rotated_key_replaces_the_old_one() {
    let db = TestDatabase::create().await;
    let client = mirrored(&db).await;
    let old: String = client
        .query_one("SELECT key FROM sfpg.origin_key", &[])
        .await
        .unwrap()
        .get(0);
    rotate_origin_key(&client).await.unwrap();
    let new: String = client
        .query_one("SELECT key FROM sfpg.origin_key", &[])
        .await
        .unwrap()
        .get(0);
    assert_ne!(old, new);
    assert_eq!(new.len(), old.len());
    let error = client
        .batch_execute(&format!(
            "BEGIN; SELECT set_config('sfpg.origin', 'sync:{old}', true);
             INSERT INTO salesforce.account (sfid, name) VALUES ('001000000000002AAA', 'Old key')"
        ))
        .await
        .unwrap_err();
    client.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(
        error.code(),
        Some(&SqlState::READ_ONLY_SQL_TRANSACTION),
        "{error}"
    );
    as_sync(
        &client,
        "INSERT INTO salesforce.account (sfid, name) VALUES ('001000000000002AAA', 'New key')",
    )
    .await;
}
