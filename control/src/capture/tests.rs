//! The capture triggers against a real PostgreSQL: who may write, what is recorded, and
//! that nothing captured can commit unpushed.

mod pages;

use sfpg_testkit::TestDatabase;
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

use super::*;
use crate::mapping::ColumnType;
use crate::migrations::apply_control_schema;
use crate::mirror::{Column, create_schema, create_table};

pub(super) async fn mirrored(db: &TestDatabase) -> Client {
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
pub(super) async fn ticket_of(db: &TestDatabase, on: &impl GenericClient) -> String {
    let txid: String = on.query_one(CURRENT_TXID_SQL, &[]).await.unwrap().get(0);
    let owner = db.connect().await;
    owner
        .query_one(PUSH_TICKET_SQL, &[&txid])
        .await
        .unwrap()
        .get(0)
}

pub(super) async fn as_sync(client: &Client, sql: &str) {
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

/// A mirrored database with a client role `role` (roles are the cluster's: one name per
/// test) that may write the mirror and TRUNCATE it, as the connection is now.
async fn as_forger(db: &TestDatabase, role: &str) -> Client {
    let admin = mirrored(db).await;
    admin
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN;
             GRANT USAGE ON SCHEMA salesforce TO {role};
             GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON salesforce.account TO {role};
             GRANT USAGE ON SEQUENCE salesforce.account_id_seq TO {role};
             SET ROLE {role}"
        ))
        .await
        .unwrap();
    admin
}

/// Runs `sql` on `client`, which must fail; rolls back, and gives the error.
pub(super) async fn refused_on(client: &Client, sql: &str) -> tokio_postgres::error::DbError {
    let error = client.batch_execute(sql).await.unwrap_err();
    client.batch_execute("ROLLBACK").await.unwrap();
    error.as_db_error().unwrap().clone()
}

pub(super) async fn drop_role(admin: &Client, role: &str) {
    admin
        .batch_execute(&format!(
            "RESET ROLE; RESET sfpg.origin; DROP OWNED BY {role}; DROP ROLE {role}"
        ))
        .await
        .unwrap();
}

/// The key every sync origin needs is readable by the control schema's owner only, so a
/// client role can claim no form of the origin: its writes and TRUNCATEs are refused.
#[tokio::test]
async fn a_client_role_cannot_read_the_key_or_claim_the_sync_origin() {
    let db = TestDatabase::create().await;
    let forger = as_forger(&db, "app_forger_origin").await;
    let read = refused_on(&forger, "SELECT key FROM sfpg.origin_key").await;
    assert_eq!(read.code(), &SqlState::INSUFFICIENT_PRIVILEGE, "{read}");
    for origin in ["sync", "sync:guess", "sync:"] {
        let begin = format!("BEGIN; SET LOCAL sfpg.origin = '{origin}';");
        let write = refused_on(
            &forger,
            &format!("{begin} INSERT INTO salesforce.account (name) VALUES ('Forged')"),
        )
        .await;
        assert_eq!(
            write.code(),
            &SqlState::READ_ONLY_SQL_TRANSACTION,
            "{origin}: {write}"
        );
        let truncate = refused_on(&forger, &format!("{begin} TRUNCATE salesforce.account")).await;
        assert_eq!(
            truncate.code(),
            &SqlState::FEATURE_NOT_SUPPORTED,
            "{origin}: {truncate}"
        );
    }
    drop_role(&forger, "app_forger_origin").await;
}

/// A client role's captured changes can be taken only with its transaction's ticket, which
/// only the owner can mint: without it they stay, and the transaction cannot commit.
#[tokio::test]
async fn a_client_role_cannot_take_its_changes_without_the_ticket() {
    let db = TestDatabase::create().await;
    let forger = as_forger(&db, "app_forger_take").await;
    forger
        .batch_execute("SET sfpg.origin = 'proxy'")
        .await
        .unwrap();
    let take = refused_on(
        &forger,
        "BEGIN;
         INSERT INTO salesforce.account (name) VALUES ('Sneaky');
         SELECT sfpg.take_pending_changes('guess')",
    )
    .await;
    assert_eq!(take.code(), &SqlState::INSUFFICIENT_PRIVILEGE, "{take}");
    let commit = refused_on(
        &forger,
        "BEGIN; INSERT INTO salesforce.account (name) VALUES ('Sneaky'); COMMIT",
    )
    .await;
    assert_eq!(commit.code(), &SqlState::READ_ONLY_SQL_TRANSACTION);
    assert!(
        commit.message().contains("not sent to Salesforce"),
        "{commit}"
    );
    // With the transaction's ticket, they are taken, and it commits.
    forger
        .batch_execute("BEGIN; INSERT INTO salesforce.account (name) VALUES ('Pushed')")
        .await
        .unwrap();
    let ticket = ticket_of(&db, &forger).await;
    let json: String = forger
        .query_one(TAKE_PENDING_SQL, &[&ticket])
        .await
        .unwrap()
        .get(0);
    assert_eq!(parse_pending(&json).unwrap().len(), 1);
    forger.batch_execute("COMMIT").await.unwrap();
    drop_role(&forger, "app_forger_take").await;
    let rows: Vec<String> = forger
        .query("SELECT name FROM salesforce.account", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(rows, ["Pushed"]);
}

/// A mirrored database holding one account, a plain table, and a client role `role` that
/// may update the account's `billingcity` only, in a proxy session, as the connection is
/// now.
async fn as_write_back_client(db: &TestDatabase, role: &str) -> Client {
    let admin = mirrored(db).await;
    as_sync(
        &admin,
        "INSERT INTO salesforce.account (sfid, name, billingcity) VALUES ('001000000000001AAA', 'Acme', 'Paris');
         CREATE TABLE public.plain (id bigint PRIMARY KEY, name text);
         INSERT INTO public.plain VALUES (1, 'x')",
    )
    .await;
    admin
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN;
             GRANT USAGE ON SCHEMA salesforce TO {role};
             GRANT SELECT, UPDATE (billingcity) ON salesforce.account TO {role};
             GRANT ALL ON public.plain TO {role};
             SET ROLE {role}; SET sfpg.origin = 'proxy'"
        ))
        .await
        .unwrap();
    admin
}

/// Starts a new transaction that captured a change, as a push finds it, after `sql`; gives
/// its ticket.
async fn next_transaction(db: &TestDatabase, client: &Client, sql: &str) -> String {
    client
        .batch_execute(&format!(
            "{sql} BEGIN; UPDATE salesforce.account SET billingcity = 'Lyon'"
        ))
        .await
        .unwrap();
    ticket_of(db, client).await
}

const WRITE_BACK_ROWS: &str = r#"[{"id": 1, "name": "Acme Corp", "sfid": "001000000000001AAA"}]"#;

/// A client role may not mint a ticket, a ticket is good in its own transaction only, and
/// only mirrored tables are written back.
#[tokio::test]
async fn the_write_back_needs_this_transactions_ticket_and_a_mirrored_table() {
    let db = TestDatabase::create().await;
    let client = as_write_back_client(&db, "app_back_ticket").await;
    let mint = refused_on(&client, "SELECT sfpg.push_ticket(pg_current_xact_id())").await;
    assert_eq!(mint.code(), &SqlState::INSUFFICIENT_PRIVILEGE, "{mint}");
    let refused = async |ticket: &str, schema: &str, table: &str, rows: &str| {
        client
            .query_one(WRITE_BACK_SQL, &[&ticket, &schema, &table, &rows])
            .await
            .unwrap_err()
            .code()
            .cloned()
    };
    // A ticket minted for another transaction (here: the previous one) is refused.
    let stale = next_transaction(&db, &client, "").await;
    next_transaction(&db, &client, "ROLLBACK;").await;
    assert_eq!(
        refused(&stale, "salesforce", "account", WRITE_BACK_ROWS).await,
        Some(SqlState::INSUFFICIENT_PRIVILEGE)
    );
    // Not a mirrored table: refused, though the role may write it.
    let ticket = next_transaction(&db, &client, "ROLLBACK;").await;
    assert_eq!(
        refused(&ticket, "public", "plain", r#"[{"id": 1, "name": "y"}]"#).await,
        Some(SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE)
    );
    client.batch_execute("ROLLBACK").await.unwrap();
    drop_role(&client, "app_back_ticket").await;
}

/// With its ticket, the write-back writes the given columns (even one the role may not
/// update), keeps the others, and leaves the session's origin as it was.
#[tokio::test]
async fn the_write_back_writes_its_columns_and_leaves_no_origin_behind() {
    let db = TestDatabase::create().await;
    let client = as_write_back_client(&db, "app_back_columns").await;
    let ticket = next_transaction(&db, &client, "").await;
    let taken: String = client
        .query_one(TAKE_PENDING_SQL, &[&ticket])
        .await
        .unwrap()
        .get(0);
    assert_eq!(parse_pending(&taken).unwrap().len(), 1);
    // `name` is a column the role may not update; the write-back writes it anyway, and
    // keeps `billingcity`, which the row's object does not carry.
    let written: i64 = client
        .query_one(
            WRITE_BACK_SQL,
            &[&ticket, &"salesforce", &"account", &WRITE_BACK_ROWS],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(written, 1);
    let origin: String = client
        .query_one("SELECT current_setting('sfpg.origin')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(origin, "proxy");
    client.batch_execute("COMMIT").await.unwrap();
    drop_role(&client, "app_back_columns").await;
    let row = client
        .query_one("SELECT name, billingcity FROM salesforce.account", &[])
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, String>(1)),
        ("Acme Corp".into(), "Lyon".into())
    );
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

#[test]
fn a_text_array_quotes_every_element() {
    assert_eq!(text_array::<&str>(&[]), "{}");
    assert_eq!(
        text_array(&["id", "Name", "a,b", "say \"hi\"", "back\\slash", "NULL", ""]),
        r#"{"id","Name","a,b","say \"hi\"","back\\slash","NULL",""}"#
    );
}
