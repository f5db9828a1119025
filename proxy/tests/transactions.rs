//! Managed transactions: a write in autocommit runs inside a transaction the proxy opens,
//! and a client's COMMIT waits for the push. On tables without capture triggers nothing is
//! pushed, so the client must see exactly what PostgreSQL alone would have sent; on a
//! mirrored table with no Salesforce org configured, every push is refused and nothing
//! may commit.

// Helpers below unwrap like the tests they serve.
#![allow(clippy::unwrap_used)]

mod support;

use support::{RawClient, Script, assert_same_after_reset, count, mirrored, render, start_proxy};
use tokio_postgres::error::SqlState;

const SETUP: &str = "CREATE TABLE t (id int PRIMARY KEY, name text NOT NULL)";
const RESET: &str = "TRUNCATE t; INSERT INTO t VALUES (1, 'one'), (2, 'two')";
const CHECK: &str = "SELECT * FROM t ORDER BY id";

#[tokio::test]
async fn autocommit_writes_in_simple_queries_look_untouched() {
    assert_same_after_reset(
        SETUP,
        RESET,
        vec![
            Script::default().query("INSERT INTO t VALUES (3, 'three') RETURNING *"),
            Script::default().query("UPDATE t SET name = 'uno' WHERE id = 1"),
            // Atomic: the second fails, so the first is rolled back.
            Script::default()
                .query("INSERT INTO t VALUES (4, 'four'); INSERT INTO t VALUES (4, 'again')"),
            Script::default().query("SELECT 1/0; DELETE FROM t"),
            Script::default().query("DELETE FROM t WHERE id = 2; SELECT count(*) FROM t"),
            Script::default().query("INSERT INTO t VALUES (5, 'five'); ROLLBACK"),
            Script::default().query("INSERT INTO t VALUES (6, NULL)"),
            Script::default().query("INSERT INTO t VALUES (12, 'x'); COMMIT"),
            Script::default()
                .query("COPY t FROM STDIN")
                .copy_data(b"7\tseven\n8\teight\n")
                .copy_done(),
            Script::default().query("SELECT * FROM t ORDER BY id"),
        ],
        CHECK,
    )
    .await;
}

#[tokio::test]
async fn explicit_transactions_in_one_string_look_untouched() {
    assert_same_after_reset(
        SETUP,
        RESET,
        vec![
            Script::default().query("BEGIN; UPDATE t SET name = 'x' WHERE id = 1; COMMIT"),
            Script::default()
                .query("BEGIN; UPDATE t SET name = 'y' WHERE id = 1; COMMIT; SELECT * FROM t ORDER BY id"),
            Script::default()
                .query("BEGIN; UPDATE t SET name = 'z' WHERE id = 1; COMMIT; INSERT INTO t VALUES (9, 'nine')"),
            // The autocommit UPDATE joins the transaction BEGIN makes explicit.
            Script::default().query("UPDATE t SET name = 'w' WHERE id = 2; BEGIN; UPDATE t SET name = 'v' WHERE id = 1"),
            Script::default().query("ROLLBACK"),
            Script::default().query("BEGIN; INSERT INTO t VALUES (10, 'ten'); SELECT nosuchcolumn FROM t; COMMIT"),
            Script::default().query("COMMIT"),
            Script::default().query("BEGIN; DELETE FROM t WHERE id = 9; ROLLBACK; DELETE FROM t WHERE id = 1"),
            Script::default().query("INSERT INTO t VALUES (20, 'a'); BEGIN; INSERT INTO t VALUES (21, 'b'); COMMIT; SELECT count(*) FROM t"),
            Script::default().query("BEGIN; INSERT INTO t VALUES (22, 'c'); COMMIT; INSERT INTO t VALUES (23, 'd'); COMMIT"),
            Script::default().query("COMMIT; ROLLBACK; SELECT 1"),
            Script::default().query("BEGIN"),
            Script::default().query("INSERT INTO t VALUES (11, 'eleven')"),
            Script::default().query("END"),
            Script::default().query("COMMIT"),
        ],
        CHECK,
    )
    .await;
}

#[tokio::test]
async fn the_extended_protocol_looks_untouched() {
    assert_same_after_reset(
        SETUP,
        RESET,
        vec![
            Script::default()
                .parse("", "INSERT INTO t VALUES ($1, $2) RETURNING id")
                .bind("", "", &[Some("3"), Some("three")], false)
                .describe_portal("")
                .execute("", 0)
                .sync(),
            // A failing write rolls back the implicit transaction.
            Script::default()
                .parse("ins", "INSERT INTO t VALUES ($1, $2)")
                .bind("", "ins", &[Some("4"), Some("four")], false)
                .execute("", 0)
                .bind("", "ins", &[Some("4"), Some("again")], false)
                .execute("", 0)
                .sync(),
            // Pipelined units, each its own transaction.
            Script::default()
                .bind("", "ins", &[Some("5"), Some("five")], false)
                .execute("", 0)
                .sync()
                .bind("", "ins", &[Some("6"), Some("six")], true)
                .execute("", 0)
                .sync(),
            // A read first, then a write, in one unit.
            Script::default()
                .parse("", "SELECT count(*) FROM t")
                .bind("", "", &[], false)
                .execute("", 0)
                .bind("", "ins", &[Some("7"), Some("seven")], false)
                .execute("", 0)
                .sync(),
            // BEGIN … COMMIT inside one unit, the way drivers pipeline them.
            Script::default()
                .parse("b", "BEGIN")
                .parse("c", "COMMIT")
                .parse("u", "UPDATE t SET name = $1 WHERE id = $2")
                .bind("", "b", &[], false)
                .execute("", 0)
                .bind("", "u", &[Some("updated"), Some("1")], false)
                .execute("", 0)
                .bind("", "c", &[], false)
                .execute("", 0)
                .sync(),
            // BEGIN, then the write and COMMIT in later units.
            Script::default()
                .bind("", "b", &[], false)
                .execute("", 0)
                .sync(),
            Script::default()
                .bind("", "u", &[Some("again"), Some("2")], false)
                .execute("", 0)
                .sync(),
            Script::default()
                .bind("", "c", &[], false)
                .execute("", 0)
                .sync(),
            // Replies asked for with Flush before Sync are not held back.
            Script::default()
                .bind("", "ins", &[Some("30"), Some("flushed")], false)
                .execute("", 0)
                .flush_expecting(2),
            Script::default().sync(),
            // The unnamed statement survives the proxy's own statements.
            Script::default()
                .parse("", "UPDATE t SET name = $1 WHERE id = $2")
                .bind("", "", &[Some("u1"), Some("1")], false)
                .execute("", 0)
                .sync(),
            Script::default()
                .bind("", "", &[Some("u2"), Some("2")], false)
                .execute("", 0)
                .sync(),
        ],
        CHECK,
    )
    .await;
}

#[tokio::test]
async fn without_an_org_every_captured_write_is_refused_and_nothing_commits() {
    let db = mirrored().await;
    let proxy = start_proxy(&db).await;
    let client = db.connect_via(proxy.addr).await;

    // Autocommit, simple and extended protocol.
    let error = client
        .batch_execute("INSERT INTO salesforce.account (name) VALUES ('Acme')")
        .await
        .unwrap_err();
    assert_eq!(
        error.code(),
        Some(&SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE)
    );
    let db_error = error.as_db_error().unwrap();
    assert!(db_error.message().contains("salesforce"), "{db_error}");
    assert_eq!(db_error.table(), Some("account"));
    let error = client
        .execute(
            "INSERT INTO salesforce.account (name) VALUES ($1)",
            &[&"Acme"],
        )
        .await
        .unwrap_err();
    assert_eq!(
        error.code(),
        Some(&SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE)
    );

    // An explicit transaction: refused at COMMIT, with its other writes.
    client
        .batch_execute("BEGIN; INSERT INTO notes (body) VALUES ('kept?'); INSERT INTO salesforce.account (name) VALUES ('B')")
        .await
        .unwrap();
    let error = client.batch_execute("COMMIT").await.unwrap_err();
    assert_eq!(
        error.code(),
        Some(&SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE)
    );

    // In one string.
    let error = client
        .batch_execute("BEGIN; INSERT INTO salesforce.account (name) VALUES ('C'); COMMIT; INSERT INTO notes (body) VALUES ('after')")
        .await
        .unwrap_err();
    assert_eq!(
        error.code(),
        Some(&SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE)
    );

    // The session is idle and usable afterwards.
    let row = client.query_one("SELECT 40 + 2", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 42);
    assert_eq!(count(&db, "salesforce.account").await, 0);
    assert_eq!(count(&db, "notes").await, 0);
}

#[tokio::test]
async fn rolled_back_writes_push_nothing() {
    let db = mirrored().await;
    let proxy = start_proxy(&db).await;
    let client = db.connect_via(proxy.addr).await;
    client
        .batch_execute("BEGIN; INSERT INTO salesforce.account (name) VALUES ('A'); ROLLBACK")
        .await
        .unwrap();
    client
        .batch_execute(
            "BEGIN; INSERT INTO notes (body) VALUES ('n'); SAVEPOINT s;
             INSERT INTO salesforce.account (name) VALUES ('B'); ROLLBACK TO SAVEPOINT s; COMMIT",
        )
        .await
        .unwrap();
    assert_eq!(count(&db, "salesforce.account").await, 0);
    assert_eq!(count(&db, "notes").await, 1);
}

#[tokio::test]
async fn a_refused_commit_in_a_pipeline_skips_to_sync() {
    let db = mirrored().await;
    let proxy = start_proxy(&db).await;
    let mut client = RawClient::connect(&db, proxy.addr).await;
    let replies = client
        .exchange(
            &Script::default()
                .parse("", "BEGIN")
                .bind("", "", &[], false)
                .execute("", 0)
                .parse("", "INSERT INTO salesforce.account (name) VALUES ('P')")
                .bind("", "", &[], false)
                .execute("", 0)
                .parse("", "COMMIT")
                .bind("", "", &[], false)
                .execute("", 0)
                .parse("", "SELECT 1")
                .bind("", "", &[], false)
                .execute("", 0)
                .sync()
                .bytes,
            1,
        )
        .await;
    let tags: String = replies.iter().map(|(tag, _)| char::from(*tag)).collect();
    // BEGIN, INSERT, then the refused COMMIT; the SELECT is skipped; idle at the end.
    assert_eq!(tags, "12C12C12EZ", "{}", render(&replies));
    assert_eq!(replies.last().unwrap().1, b"I");
    assert_eq!(count(&db, "salesforce.account").await, 0);
}
