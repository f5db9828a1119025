//! The proxy's write-back and restore against a real PostgreSQL, by statement: the checks
//! they run do not grow with the rows they write (migration V20), and the way their rows
//! pass the capture trigger cannot be claimed by a client role.

use std::collections::BTreeMap;

use sfpg_testkit::TestDatabase;
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

use super::tests::{as_sync, drop_role, mirrored, refused_on, ticket_of};
use super::*;
use crate::mapping::ColumnType;
use crate::migrations::{apply_control_schema, apply_control_schema_up_to};
use crate::mirror::{Column, create_schema, create_table};

/// Rows a write-back writes in [`checks_do_not_grow_with_the_rows`].
const ROWS: i64 = 40;

/// A mirrored database holding [`ROWS`] accounts, and a client role `role` that may read
/// them and update their `billingcity`, in a proxy session, as the connection is now. The
/// session counts every function call (`track_functions`, set before the role, since only
/// a superuser may set it).
async fn counted_client(db: &TestDatabase, role: &str) -> Client {
    let admin = mirrored(db).await;
    as_sync(
        &admin,
        &format!(
            "INSERT INTO salesforce.account (sfid, name, systemmodstamp)
             SELECT '001' || lpad(g::text, 15, '0'), 'Acme ' || g, '2026-01-01T00:00:00Z'
               FROM generate_series(1, {ROWS}) g"
        ),
    )
    .await;
    admin
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN;
             GRANT USAGE ON SCHEMA salesforce TO {role};
             GRANT SELECT, UPDATE (billingcity) ON salesforce.account TO {role};
             SET track_functions = 'all';
             SET ROLE {role}; SET sfpg.origin = 'proxy'"
        ))
        .await
        .unwrap();
    admin
}

/// The calls of each function of schema `sfpg` this transaction has made so far.
async fn calls(client: &Client) -> BTreeMap<String, i64> {
    client
        .query(
            "SELECT p.proname::text, pg_stat_get_xact_function_calls(p.oid)
               FROM pg_proc p
              WHERE p.pronamespace = 'sfpg'::regnamespace
                AND pg_stat_get_xact_function_calls(p.oid) > 0",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

/// The calls `sql` (with `params`) made, by function.
async fn calls_of(
    client: &Client,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> (i64, BTreeMap<String, i64>) {
    let before = calls(client).await;
    let written: i64 = client.query_one(sql, params).await.unwrap().get(0);
    let mut made = calls(client).await;
    for (function, count) in before {
        *made.entry(function).or_default() -= count;
    }
    made.retain(|_, count| *count != 0);
    (written, made)
}

/// A write-back and a restore of many rows check the ticket once and run no function for
/// each row: neither a guard function nor the capture trigger.
#[tokio::test]
async fn checks_do_not_grow_with_the_rows() {
    let db = TestDatabase::create().await;
    let client = counted_client(&db, "app_back_counted").await;
    let ticket = push_taken(
        &db,
        &client,
        "BEGIN; UPDATE salesforce.account SET billingcity = 'Lyon'",
    )
    .await;
    let once = |function: &str| {
        BTreeMap::from([
            ("push_ticket".to_owned(), 1),
            ("push_ticket_valid".to_owned(), 1),
            (function.to_owned(), 1),
        ])
    };
    let rows = serde_json::Value::from_iter((1..=ROWS).map(|id| {
        serde_json::json!({"id": id, "name": format!("Acme Corp {id}"),
                           "systemmodstamp": "2026-02-01T00:00:00Z"})
    }))
    .to_string();
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
        [&ticket, &"salesforce", &"account", &rows];
    let (written, made) = calls_of(&client, WRITE_BACK_SQL, &params).await;
    assert_eq!((written, made), (ROWS, once("write_back")));
    let rows = serde_json::Value::from_iter(
        (1..=ROWS).map(|id| serde_json::json!({"id": id, "row": {"id": id, "name": "Restored"}})),
    )
    .to_string();
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
        [&ticket, &"salesforce", &"account", &rows];
    let (restored, made) = calls_of(&client, RESTORE_REFUSED_SQL, &params).await;
    assert_eq!((restored, made), (ROWS, once("restore_refused")));
    let row = client
        .query_one(
            "SELECT count(*) FILTER (WHERE name = 'Restored'), min(billingcity),
                    min(systemmodstamp)::text
               FROM salesforce.account",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, i64>(0), row.get::<_, String>(1)),
        (ROWS, "Lyon".into())
    );
    assert_eq!(row.get::<_, String>(2), "2026-02-01 00:00:00+00");
    client.batch_execute("ROLLBACK").await.unwrap();
    drop_role(&client, "app_back_counted").await;
}

/// A write-back by `COPY` (V25) checks the ticket once a call, runs no function for each
/// row, and needs no TEMPORARY privilege of the client's role: its staging table is the
/// control schema's owner's. Each of its functions refuses what is not the proxy's: a wrong
/// ticket, a table that is not mirrored, a column the table does not have, no `id`, and a
/// staging table it did not make (a catalog, or one of the client's own under the name it
/// would give).
#[tokio::test]
async fn a_staged_write_back_is_the_proxys_alone() {
    let db = TestDatabase::create().await;
    db.connect()
        .await
        .batch_execute(
            "DO $$ BEGIN
                 EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
             END $$",
        )
        .await
        .unwrap();
    let role = "app_back_staged";
    let client = counted_client(&db, role).await;
    let refused = refused_on(&client, "CREATE TEMP TABLE mine (id bigint)").await;
    assert_eq!(
        refused.code(),
        &SqlState::INSUFFICIENT_PRIVILEGE,
        "{refused}"
    );
    let ticket = push_taken(
        &db,
        &client,
        "BEGIN; UPDATE salesforce.account SET billingcity = 'Lyon'",
    )
    .await;
    let columns = text_array(&["id", "name", "systemmodstamp"]);
    let staging_of = async |ticket: &str, table: &str, columns: &str| {
        client
            .query_one(
                WRITE_BACK_STAGING_SQL,
                &[&ticket, &"salesforce", &table, &columns],
            )
            .await
            .map(|row| row.get::<_, String>(0))
    };
    // What is not the proxy's, each in a savepoint of the push's transaction.
    let code = |result: Result<String, tokio_postgres::Error>| result.unwrap_err().code().cloned();
    let without_id = text_array(&["name"]);
    let unknown = text_array(&["id", "nope"]);
    for (ticket, table, columns, expected) in [
        (
            "guess",
            "account",
            &columns,
            SqlState::INSUFFICIENT_PRIVILEGE,
        ),
        (
            &ticket,
            "pg_class",
            &columns,
            SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE,
        ),
        (&ticket, "account", &unknown, SqlState::UNDEFINED_COLUMN),
        (
            &ticket,
            "account",
            &without_id,
            SqlState::INVALID_PARAMETER_VALUE,
        ),
    ] {
        client.batch_execute("SAVEPOINT attempt").await.unwrap();
        assert_eq!(
            code(staging_of(ticket, table, columns).await),
            Some(expected),
            "{table} {columns}"
        );
        client
            .batch_execute("ROLLBACK TO SAVEPOINT attempt")
            .await
            .unwrap();
    }
    let before = calls(&client).await;
    let staging = staging_of(&ticket, "account", &columns).await.unwrap();
    assert!(staging.starts_with("pg_temp.sfpg_write_back_"), "{staging}");
    let data: String = (1..=ROWS)
        .map(|id| format!("{id}\tAcme Corp {id}\t2026-02-01T00:00:00Z\n"))
        .collect();
    copy_into(&client, &staging, data).await;
    // A table not of its making is not taken: a catalog, or one the client made in its
    // session under a staging table's name (given TEMPORARY for it); nor its own without
    // the ticket.
    client
        .batch_execute(&format!(
            "RESET ROLE;
             DO $$ BEGIN
                 EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO {role}', current_database());
             END $$;
             SET ROLE {role};
             CREATE TEMP TABLE sfpg_write_back_forged (id bigint PRIMARY KEY, name text);
             INSERT INTO sfpg_write_back_forged VALUES (1, 'Forged')"
        ))
        .await
        .unwrap();
    for (ticket, staging, expected) in [
        (
            ticket.as_str(),
            "pg_catalog.pg_class",
            SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE,
        ),
        (
            ticket.as_str(),
            "pg_temp.sfpg_write_back_forged",
            SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE,
        ),
        ("guess", staging.as_str(), SqlState::INSUFFICIENT_PRIVILEGE),
    ] {
        client.batch_execute("SAVEPOINT attempt").await.unwrap();
        let refused = staged_into_account(&client, ticket, staging)
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Some(&expected), "{staging}");
        client
            .batch_execute("ROLLBACK TO SAVEPOINT attempt")
            .await
            .unwrap();
    }
    let written = staged_into_account(&client, &ticket, &staging)
        .await
        .unwrap();
    assert_eq!(written, ROWS);
    let mut made = calls(&client).await;
    for (function, count) in before {
        *made.entry(function).or_default() -= count;
    }
    made.retain(|_, count| *count != 0);
    // The three refused calls of write_back_staged checked the ticket too; PostgreSQL
    // counts a call when it returns (the guess's write_back_target did not).
    assert_eq!(
        made,
        BTreeMap::from([
            ("push_ticket_valid".to_owned(), 5),
            ("push_ticket".to_owned(), 5),
            ("write_back_target".to_owned(), 4),
            ("write_back_staging".to_owned(), 1),
            ("write_back_staged".to_owned(), 1),
        ]),
        "each call checks the ticket once, no row runs a function"
    );
    let row = client
        .query_one(
            "SELECT count(*) FILTER (WHERE name LIKE 'Acme Corp %'), min(billingcity),
                    min(systemmodstamp)::text,
                    pg_catalog.to_regclass($1) IS NULL
               FROM salesforce.account",
            &[&staging],
        )
        .await
        .unwrap();
    assert_eq!(
        (
            row.get::<_, i64>(0),
            row.get::<_, String>(1),
            row.get::<_, String>(2),
            row.get::<_, bool>(3)
        ),
        (ROWS, "Lyon".into(), "2026-02-01 00:00:00+00".into(), true),
        "the rows written, the client's change kept, the staging table dropped"
    );
    client.batch_execute("ROLLBACK").await.unwrap();
    drop_role(&client, role).await;
}

/// The write-back's rows pass the capture trigger on a `push:` origin where the key is
/// readable (inside sfpg's own functions). A client role that sets such an origin itself,
/// with a real but stale ticket or a guess, and whatever it creates in its own session to
/// stand in for what the trigger looks at, is refused.
#[tokio::test]
async fn a_client_role_cannot_claim_the_push_origin() {
    let db = TestDatabase::create().await;
    let role = "app_forger_push";
    let client = mirrored(&db).await;
    as_sync(
        &client,
        "INSERT INTO salesforce.account (sfid, name) VALUES ('001000000000001AAA', 'Acme')",
    )
    .await;
    client
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN;
             GRANT USAGE ON SCHEMA salesforce TO {role};
             GRANT SELECT, INSERT, UPDATE, DELETE ON salesforce.account TO {role};
             GRANT USAGE ON SEQUENCE salesforce.account_id_seq TO {role};
             SET ROLE {role}; SET sfpg.origin = 'proxy'"
        ))
        .await
        .unwrap();
    client
        .batch_execute("BEGIN; UPDATE salesforce.account SET name = 'Stale'")
        .await
        .unwrap();
    let stale = ticket_of(&db, &client).await;
    client.batch_execute("ROLLBACK").await.unwrap();
    let update = "UPDATE salesforce.account SET name = 'Forged'";
    let attempts = [
        format!("SET LOCAL sfpg.origin = 'push:{stale}'; {update}"),
        format!("SET LOCAL sfpg.origin = 'push:guess'; {update}"),
        "SET LOCAL sfpg.origin = 'push:';
         INSERT INTO salesforce.account (name) VALUES ('Forged')"
            .to_owned(),
        "SET LOCAL sfpg.origin = 'push:guess'; DELETE FROM salesforce.account".to_owned(),
        // Stand-ins for what the trigger reads, first on the search path.
        format!(
            "CREATE TEMP TABLE origin_key (key text);
             CREATE FUNCTION pg_temp.has_table_privilege(oid, text) RETURNS boolean
               LANGUAGE sql AS 'SELECT true';
             CREATE FUNCTION pg_temp.current_setting(text, boolean) RETURNS text
               LANGUAGE sql AS $$SELECT 'push:guess'$$;
             SET LOCAL search_path = pg_temp, sfpg, public;
             SET LOCAL sfpg.origin = 'push:{stale}'; {update}"
        ),
        // A view of its own, which reads the table with the view owner's rights.
        format!(
            "CREATE TEMP VIEW mine AS SELECT * FROM salesforce.account;
             SET LOCAL sfpg.origin = 'push:{stale}';
             UPDATE pg_temp.mine SET name = 'Forged'"
        ),
        // A security definer function of its own, which runs as the client role.
        format!(
            "CREATE FUNCTION pg_temp.forge() RETURNS void LANGUAGE sql SECURITY DEFINER AS $$
               SELECT pg_catalog.set_config('sfpg.origin', 'push:{stale}', true); {update}
             $$;
             SELECT pg_temp.forge()"
        ),
    ];
    for attempt in attempts {
        let refused = refused_on(&client, &format!("BEGIN; {attempt}")).await;
        assert_eq!(
            refused.code(),
            &SqlState::READ_ONLY_SQL_TRANSACTION,
            "{attempt}: {refused}"
        );
    }
    let name: String = client
        .query_one("SELECT name FROM salesforce.account", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(name, "Acme");
    drop_role(&client, role).await;
}

/// A table mirrored before V20 has the capture trigger V20 defines once migrated: its
/// write-back runs no function for each row either.
#[tokio::test]
async fn a_table_mirrored_before_v20_gets_the_new_trigger() {
    let db = TestDatabase::create().await;
    let mut client = db.connect().await;
    apply_control_schema_up_to(&mut client, 19).await;
    create_schema(&client, "salesforce").await.unwrap();
    let name = Column {
        name: "name".into(),
        column_type: ColumnType::Text,
    };
    create_table(&client, "salesforce", "account", &[name])
        .await
        .unwrap();
    // The triggers as sfpg installed them up to V19.
    client
        .batch_execute(
            "CREATE TRIGGER sfpg_capture AFTER INSERT OR UPDATE OR DELETE ON salesforce.account
                 FOR EACH ROW EXECUTE FUNCTION sfpg.capture_change();
             CREATE TRIGGER sfpg_refuse_truncate BEFORE TRUNCATE ON salesforce.account
                 FOR EACH STATEMENT EXECUTE FUNCTION sfpg.refuse_truncate();",
        )
        .await
        .unwrap();
    as_sync(
        &client,
        "INSERT INTO salesforce.account (sfid, name)
         SELECT '001' || lpad(g::text, 15, '0'), 'Acme ' || g FROM generate_series(1, 3) g",
    )
    .await;
    apply_control_schema(&mut client).await.unwrap();
    let ticket = push_taken(
        &db,
        &client,
        "SET track_functions = 'all'; SET sfpg.origin = 'proxy';
         BEGIN; UPDATE salesforce.account SET name = name || '!'",
    )
    .await;
    let rows = r#"[{"id": 1, "name": "A"}, {"id": 2, "name": "B"}, {"id": 3, "name": "C"}]"#;
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
        [&ticket, &"salesforce", &"account", &rows];
    let (written, made) = calls_of(&client, WRITE_BACK_SQL, &params).await;
    assert_eq!(written, 3);
    assert_eq!(made.get("capture_change"), None, "{made:?}");
    client.batch_execute("ROLLBACK").await.unwrap();
    // A write of anyone else's is still refused.
    let refused = refused_on(
        &client,
        "BEGIN; SET LOCAL sfpg.origin = 'nobody'; DELETE FROM salesforce.account",
    )
    .await;
    assert_eq!(refused.code(), &SqlState::READ_ONLY_SQL_TRANSACTION);
}

/// Runs `sql`, which begins the push's transaction and changes rows, and takes the changes
/// as the proxy does at COMMIT: the push's ticket.
async fn push_taken(db: &TestDatabase, client: &Client, sql: &str) -> String {
    client.batch_execute(sql).await.unwrap();
    let ticket = ticket_of(db, client).await;
    client
        .query_one(TAKE_PENDING_SQL, &[&ticket])
        .await
        .unwrap();
    ticket
}

/// `sfpg.write_back_staged` of the staging table `staging` into `salesforce.account` for
/// push `ticket`: the rows written.
async fn staged_into_account(
    client: &Client,
    ticket: &str,
    staging: &str,
) -> Result<i64, tokio_postgres::Error> {
    client
        .query_one(
            WRITE_BACK_STAGED_SQL,
            &[&ticket, &"salesforce", &"account", &staging],
        )
        .await
        .map(|row| row.get(0))
}

/// `COPY staging FROM STDIN` of `data` (COPY's text format), as the proxy sends it.
pub(crate) async fn copy_into(client: &Client, staging: &str, data: String) {
    let sink = client
        .copy_in::<_, bytes::Bytes>(&format!("COPY {staging} FROM STDIN"))
        .await
        .unwrap();
    let mut sink = std::pin::pin!(sink);
    futures::SinkExt::send(&mut sink, bytes::Bytes::from(data))
        .await
        .unwrap();
    sink.finish().await.unwrap();
}

/// The staged write-back stays linear in the rows it writes whatever the planner believes
/// of the mirrored table: statistics that say it is empty (analyzed before a bulk load)
/// once made a nested loop read the staged rows once for each of the table's rows, 88 s
/// for 5,000 rows of a 100,000-row table. Not a speed figure: a bound 10x above the
/// linear plan's time and well below the quadratic ones'. (This transaction's read
/// counters, `pg_stat_get_xact_tuples_returned`, stayed 0 on the test cluster's
/// connections, so the rows read could not be counted instead.)
#[tokio::test]
async fn a_staged_write_back_stays_linear_whatever_the_statistics_say() {
    const TABLE_ROWS: i64 = 20_000;
    const STAGED: i64 = 10_000;
    let db = TestDatabase::create().await;
    let client = mirrored(&db).await;
    // As wide as a Lead: the planner's guess of a row's width, and so of how many rows an
    // unanalyzed table holds, comes from the columns' declared lengths.
    let wide: Vec<String> = (1..=40).map(|n| format!("c{n}")).collect();
    client
        .batch_execute(&format!(
            "ALTER TABLE salesforce.account SET (autovacuum_enabled = false), {}",
            wide.iter()
                .map(|c| format!("ADD COLUMN {c} varchar(255)"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .await
        .unwrap();
    as_sync(
        &client,
        &format!(
            "INSERT INTO salesforce.account (sfid, name)
             SELECT '001' || lpad(g::text, 15, '0'), 'Acme ' || g FROM generate_series(1, {TABLE_ROWS}) g"
        ),
    )
    .await;
    // What an ANALYZE of the table before the load left.
    client
        .batch_execute(
            "UPDATE pg_class SET relpages = 100, reltuples = 0
              WHERE oid = 'salesforce.account'::regclass",
        )
        .await
        .unwrap();
    let ticket = push_taken(
        &db,
        &client,
        &format!(
            "SET sfpg.origin = 'proxy';
             BEGIN; UPDATE salesforce.account SET billingcity = 'Lyon' WHERE id <= {STAGED}"
        ),
    )
    .await;
    let columns: Vec<&str> = ["id", "name"]
        .into_iter()
        .chain(wide.iter().map(String::as_str))
        .collect();
    let staging: String = client
        .query_one(
            WRITE_BACK_STAGING_SQL,
            &[&ticket, &"salesforce", &"account", &text_array(&columns)],
        )
        .await
        .unwrap()
        .get(0);
    let data: String = (1..=STAGED)
        .map(|id| format!("{id}\tAcme Corp {id}{}\n", "\tx".repeat(wide.len())))
        .collect();
    copy_into(&client, &staging, data).await;
    let started = std::time::Instant::now();
    let written = staged_into_account(&client, &ticket, &staging)
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(written, STAGED);
    // Linear, this takes a few hundred milliseconds; the quadratic plans took 12 s and
    // more here (10,000 x 10,000 index entries read): the bound is far from both.
    assert!(
        took < std::time::Duration::from_secs(5),
        "the write-back of {STAGED} rows took {took:?}"
    );
    client.batch_execute("ROLLBACK").await.unwrap();
}
