//! COPY FROM STDIN through the proxy, in both protocols. During a COPY the server ignores
//! Sync and Flush (a client such as tokio-postgres or libpq sends Execute, Sync, the data,
//! CopyDone, Sync, and gets one ReadyForQuery); the proxy must follow the same flow, in
//! autocommit (where it wraps the COPY in a transaction of its own) and inside a
//! transaction, when the COPY fails, and when Salesforce refuses what it wrote.

// Helpers below unwrap like the tests they serve.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use bytes::Bytes;
use futures::SinkExt;
use support::{
    RawClient, Script, assert_same_after_reset, count, mirrored, render, start_proxy, tags,
};
use tokio_postgres::error::SqlState;

const SETUP: &str = "CREATE TABLE t (id int PRIMARY KEY, name text NOT NULL)";
const RESET: &str = "TRUNCATE t; INSERT INTO t VALUES (1, 'one')";
const CHECK: &str = "SELECT * FROM t ORDER BY id";

/// Parse, Bind, Execute and Sync of `sql`, as tokio-postgres and libpq send a COPY: the
/// server answers up to CopyInResponse and ignores the Sync.
fn extended_copy(sql: &str) -> Script {
    Script::default()
        .parse("", sql)
        .bind("", "", &[], false)
        .execute("", 0)
        .sync()
        .expecting(0, 3)
}

#[tokio::test]
async fn an_extended_protocol_copy_answers_as_the_server_does() {
    assert_same_after_reset(
        SETUP,
        RESET,
        vec![
            // Autocommit, into a plain table and into a temporary one.
            extended_copy("COPY t FROM STDIN"),
            Script::default()
                .copy_data(b"2\ttwo\n")
                .copy_data(b"3\tthree\n")
                .copy_done()
                .sync(),
            Script::default().query("CREATE TEMP TABLE tmp (id int, name text)"),
            extended_copy("COPY tmp FROM STDIN"),
            Script::default().copy_data(b"4\tfour\n").copy_done().sync(),
            // Values only: the temporary table of each run has an OID of its own.
            Script::default().query("SELECT count(*), string_agg(name, ',') FROM tmp"),
            // Inside a transaction.
            Script::default().query("BEGIN"),
            extended_copy("COPY t FROM STDIN"),
            Script::default().copy_data(b"5\tfive\n").copy_done().sync(),
            Script::default().query("COMMIT"),
            // The client gives up: CopyFail.
            extended_copy("COPY t FROM STDIN"),
            Script::default()
                .copy_data(b"6\tsix\n")
                .copy_fail("changed my mind")
                .sync(),
            // Bad data: the error ends the COPY, and the server skips to the Sync.
            extended_copy("COPY t FROM STDIN"),
            Script::default()
                .copy_data(b"not a number\tseven\n")
                .copy_done()
                .sync(),
            // A COPY that cannot start: both Syncs are answered.
            Script::default()
                .parse("", "COPY missing FROM STDIN")
                .bind("", "", &[], false)
                .execute("", 0)
                .sync()
                .copy_data(b"8\teight\n")
                .copy_done()
                .sync(),
            // Everything sent at once, before the CopyInResponse arrives.
            Script::default()
                .parse("", "COPY t FROM STDIN")
                .bind("", "", &[], false)
                .execute("", 0)
                .sync()
                .copy_data(b"9\tnine\n")
                .copy_done()
                .sync()
                .expecting(1, 0),
            Script::default().query("SELECT * FROM t ORDER BY id"),
        ],
        CHECK,
    )
    .await;
}

#[tokio::test]
async fn a_simple_protocol_copy_answers_as_the_server_does() {
    assert_same_after_reset(
        SETUP,
        RESET,
        vec![
            Script::default().query("COPY t FROM STDIN").expecting(0, 1),
            Script::default()
                .copy_data(b"2\ttwo\n")
                .copy_done()
                .expecting(1, 0),
            Script::default()
                .query("COPY t FROM STDIN")
                .copy_data(b"3\tthree\n")
                .copy_done(),
            Script::default()
                .query("COPY t FROM STDIN")
                .copy_data(b"x\ty\n")
                .copy_done(),
            Script::default().query("SELECT * FROM t ORDER BY id"),
        ],
        CHECK,
    )
    .await;
}

/// tokio-postgres's `copy_in`: Bind, Execute, Sync, then the data, CopyDone, Sync.
async fn copy_rows(client: &tokio_postgres::Client, sql: &str, rows: &str) -> u64 {
    let sink = client.copy_in(sql).await.unwrap();
    futures::pin_mut!(sink);
    sink.send(Bytes::copy_from_slice(rows.as_bytes()))
        .await
        .unwrap();
    sink.finish().await.unwrap()
}

#[tokio::test]
async fn tokio_postgres_copy_in_completes_through_the_proxy() {
    let db = mirrored().await;
    let proxy = start_proxy(&db).await;
    let client = db.connect_via(proxy.addr).await;
    let done = tokio::time::timeout(Duration::from_secs(20), async {
        client
            .batch_execute("CREATE TEMP TABLE tmp (id int, body text)")
            .await
            .unwrap();
        assert_eq!(
            copy_rows(&client, "COPY tmp FROM STDIN", "1\ta\n2\tb\n").await,
            2
        );
        assert_eq!(
            copy_rows(&client, "COPY notes (body) FROM STDIN", "x\ny\nz\n").await,
            3
        );
        client.batch_execute("BEGIN").await.unwrap();
        assert_eq!(
            copy_rows(&client, "COPY notes (body) FROM STDIN", "w\n").await,
            1
        );
        client.batch_execute("COMMIT").await.unwrap();
        let row = client.query_one("SELECT count(*) FROM tmp", &[]).await;
        row.unwrap().get::<_, i64>(0)
    })
    .await
    .expect("the session hung");
    assert_eq!(done, 2);
    assert_eq!(count(&db, "notes").await, 4);
}

#[tokio::test]
async fn a_refused_copy_answers_with_the_error_alone() {
    let db = mirrored().await;
    let proxy = start_proxy(&db).await;
    let mut client = RawClient::connect(&db, proxy.addr).await;
    // Simple protocol: a failed implicit commit ends the COPY without its CommandComplete,
    // as PostgreSQL ends a query string whose commit fails.
    let started = client
        .exchange_script(
            &Script::default()
                .query("COPY salesforce.account (name) FROM STDIN")
                .bytes,
            0,
            1,
        )
        .await;
    assert_eq!(tags(&started), "G", "{}", render(&started));
    let ended = client
        .exchange(
            &Script::default()
                .copy_data(b"Acme\nGlobex\n")
                .copy_done()
                .bytes,
            1,
        )
        .await;
    assert_eq!(tags(&ended), "EZ", "{}", render(&ended));
    assert_eq!(ended.last().unwrap().1, b"I");

    // Extended protocol, as tokio-postgres and libpq send it.
    let started = client
        .exchange_script(
            &extended_copy("COPY salesforce.account (name) FROM STDIN").bytes,
            0,
            3,
        )
        .await;
    assert_eq!(tags(&started), "12G", "{}", render(&started));
    let ended = tokio::time::timeout(
        Duration::from_secs(20),
        client.exchange(
            &Script::default()
                .copy_data(b"Initech\n")
                .copy_done()
                .sync()
                .bytes,
            1,
        ),
    )
    .await
    .expect("no answer after CopyDone and Sync");
    assert_eq!(tags(&ended), "EZ", "{}", render(&ended));
    let after = client
        .exchange(&Script::default().query("SELECT 1").bytes, 1)
        .await;
    assert_eq!(tags(&after), "TDCZ", "{}", render(&after));
    drop(client);

    // tokio-postgres gets the error from `finish`, and its connection goes on.
    let client = db.connect_via(proxy.addr).await;
    let sink = client
        .copy_in("COPY salesforce.account (name) FROM STDIN")
        .await
        .unwrap();
    futures::pin_mut!(sink);
    sink.send(Bytes::from_static(b"Umbrella\n")).await.unwrap();
    let error = tokio::time::timeout(Duration::from_secs(20), sink.finish())
        .await
        .expect("the session hung")
        .unwrap_err();
    assert_eq!(
        error.code(),
        Some(&SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE)
    );
    let row = client.query_one("SELECT 40 + 2", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 42);
    assert_eq!(count(&db, "salesforce.account").await, 0);
}
