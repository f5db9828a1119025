//! Where a refused push's error lands in an autocommit unit (a transaction the proxy opened
//! around a simple Query, or an extended-protocol unit up to Sync): in place of the
//! CommandComplete of the statement that wrote, with the rest of the unit skipped, as
//! PostgreSQL answers a statement that fails. Clients that pipeline (psycopg 3's pipeline
//! mode and `executemany`, postgres.js) count on one answer per statement: a CommandComplete
//! or an error, not one and then the other. In a transaction the client opened, the COMMIT
//! gets the error (see `transactions.rs`).
//!
//! The database has a mirrored table and no Salesforce org, so every push of a captured
//! change is refused (55000).

// Helpers below unwrap like the tests they serve.
#![allow(clippy::unwrap_used)]

mod support;

use sfpg_testkit::TestDatabase;
use support::{RawClient, Script, count, mirrored, render, start_proxy, tags};

const WRITE: &str = "INSERT INTO salesforce.account (name) VALUES ('Acme')";

async fn answer(client: &mut RawClient, script: Script) -> String {
    let replies = client
        .exchange_script(&script.bytes, script.readies, script.messages)
        .await;
    if let Some((b'Z', status)) = replies.last() {
        assert_eq!(status, b"I", "{}", render(&replies));
    }
    tags(&replies)
}

/// Parse, Bind and Execute of `sql` in the unnamed statement and portal.
fn run(script: Script, sql: &str) -> Script {
    script
        .parse("", sql)
        .bind("", "", &[], false)
        .execute("", 0)
}

async fn proxied() -> (TestDatabase, support::RunningProxy, RawClient) {
    let db = mirrored().await;
    let proxy = start_proxy(&db).await;
    let client = RawClient::connect(&db, proxy.addr).await;
    (db, proxy, client)
}

#[tokio::test]
async fn in_a_simple_query_the_error_replaces_the_writes_command_complete() {
    let (db, _proxy, mut client) = proxied().await;
    // One statement: its rows, then the error (as PostgreSQL answers a failed implicit
    // commit, or a statement that fails after sending rows).
    let query = Script::default().query(&format!("{WRITE} RETURNING name"));
    assert_eq!(answer(&mut client, query).await, "TDEZ");
    // A read after the write is skipped, as after any failed statement.
    let query = Script::default().query(&format!("{WRITE}; SELECT 1"));
    assert_eq!(answer(&mut client, query).await, "EZ");
    // A write before it that pushes nothing keeps its CommandComplete.
    let query = Script::default().query(&format!("INSERT INTO notes (body) VALUES ('n'); {WRITE}"));
    assert_eq!(answer(&mut client, query).await, "CEZ");
    assert_eq!(count(&db, "salesforce.account").await, 0);
    assert_eq!(count(&db, "notes").await, 0);
}

#[tokio::test]
async fn in_an_extended_unit_the_error_replaces_the_writes_command_complete() {
    let (db, _proxy, mut client) = proxied().await;
    assert_eq!(
        answer(&mut client, run(Script::default(), WRITE).sync()).await,
        "12EZ"
    );
    // A pipeline: the statements before the write complete, the write gets the error,
    // and what follows it is skipped up to Sync.
    let pipeline = run(
        run(
            run(Script::default(), "INSERT INTO notes (body) VALUES ('n')"),
            WRITE,
        ),
        "SELECT 1",
    )
    .sync();
    assert_eq!(answer(&mut client, pipeline).await, "12C12EZ");
    assert_eq!(
        answer(&mut client, Script::default().query("SELECT 1")).await,
        "TDCZ"
    );
    assert_eq!(count(&db, "salesforce.account").await, 0);
    assert_eq!(count(&db, "notes").await, 0);
}

#[tokio::test]
async fn a_statement_prepared_after_the_write_is_skipped_on_the_server_too() {
    let (_db, _proxy, mut client) = proxied().await;
    // The client sees the Parse skipped: its statement must not exist on the server either,
    // or preparing it again would fail (42P05).
    let unit = run(Script::default(), WRITE)
        .parse("later", "SELECT 1")
        .sync();
    assert_eq!(answer(&mut client, unit).await, "12EZ");
    let again = Script::default().parse("later", "SELECT 2").sync();
    assert_eq!(answer(&mut client, again).await, "1Z");
}

#[tokio::test]
async fn after_a_flush_the_error_comes_at_sync() {
    let (db, _proxy, mut client) = proxied().await;
    // The client asked for the replies so far: they are its own once sent, so a refusal
    // can only follow them, as a deferred constraint's error follows at the commit.
    let flushed = run(Script::default(), WRITE).flush_expecting(3);
    assert_eq!(answer(&mut client, flushed).await, "12C");
    assert_eq!(answer(&mut client, Script::default().sync()).await, "EZ");
    assert_eq!(count(&db, "salesforce.account").await, 0);
}
