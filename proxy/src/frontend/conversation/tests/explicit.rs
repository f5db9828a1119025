//! Transactions the client opens: everything passes through, and a COMMIT of a transaction
//! that may have written waits for the push; psql's `\set AUTOCOMMIT off` is the same with
//! psql sending the BEGIN; savepoints need nothing from the proxy.

use super::fakes::{FakeRemote, FakeUpstream, Org};
use super::*;

/// The client sends `sql`, which goes to the server as it is, and the server answers with
/// `tag` and a ReadyForQuery of `status`, which reach the client as they are.
async fn passes(h: &mut Harness, sql: &str, tag: &str, status: u8) {
    h.client(&[query(sql)]).await;
    assert_eq!(h.sent(), [format!("Query {sql}")], "{sql}");
    h.server(&[complete(tag), ready(status)]).await;
    assert_eq!(
        h.received(),
        [
            format!("CommandComplete {tag}"),
            format!("ReadyForQuery {}", char::from(status))
        ],
        "{sql}"
    );
}

/// The client commits a transaction that may have written: the COMMIT waits for the push
/// (which finds nothing pending, without a control database), then goes as it was sent.
async fn commits_after_the_push(h: &mut Harness) {
    h.client(&[query("COMMIT")]).await;
    assert_eq!(
        h.statements(),
        ["capture_installed", "first_pending_change"]
    );
    assert_eq!(h.sent(), ["Query COMMIT"]);
    h.server(&[complete("COMMIT"), ready(b'I')]).await;
    assert_eq!(h.received(), ["CommandComplete COMMIT", "ReadyForQuery I"]);
}

#[tokio::test]
async fn an_explicit_transaction_pushes_before_its_commit() {
    let mut h = Harness::new(FakeUpstream::default());
    passes(&mut h, "BEGIN", "BEGIN", b'T').await;
    passes(&mut h, UPDATE, "UPDATE 1", b'T').await;
    assert!(h.statements().is_empty());
    commits_after_the_push(&mut h).await;
    // A transaction that only read commits without a push.
    passes(&mut h, "BEGIN", "BEGIN", b'T').await;
    passes(&mut h, "SELECT 1", "SELECT 1", b'T').await;
    passes(&mut h, "COMMIT", "COMMIT", b'I').await;
    assert!(h.statements().is_empty());
}

#[tokio::test]
async fn psqls_autocommit_off_opens_and_ends_its_own_transactions() {
    // `\set AUTOCOMMIT off`: psql sends BEGIN before the first statement outside a
    // transaction (with ON_ERROR_ROLLBACK, a savepoint around each statement).
    let mut h = Harness::new(FakeUpstream::default());
    passes(&mut h, "BEGIN", "BEGIN", b'T').await;
    passes(
        &mut h,
        "SELECT id FROM salesforce.account",
        "SELECT 1",
        b'T',
    )
    .await;
    passes(
        &mut h,
        "SAVEPOINT pg_psql_temporary_savepoint",
        "SAVEPOINT",
        b'T',
    )
    .await;
    passes(&mut h, UPDATE, "UPDATE 1", b'T').await;
    passes(
        &mut h,
        "RELEASE pg_psql_temporary_savepoint",
        "RELEASE",
        b'T',
    )
    .await;
    commits_after_the_push(&mut h).await;
    // Written, then rolled back: nothing to push.
    passes(&mut h, "BEGIN", "BEGIN", b'T').await;
    passes(&mut h, UPDATE, "UPDATE 1", b'T').await;
    passes(&mut h, "ROLLBACK", "ROLLBACK", b'I').await;
    assert!(h.statements().is_empty());
    assert!(h.conversation.at_rest());
}

#[tokio::test]
async fn a_write_rolled_back_to_its_savepoint_leaves_nothing_to_push() {
    // The captured rows belong to the subtransaction: after ROLLBACK TO there are none.
    let upstream = FakeUpstream {
        txid: Some("745".into()),
        ..FakeUpstream::default()
    };
    let mut h = Harness::pushing(upstream, FakeRemote::new(Org::Takes(Vec::new())));
    passes(&mut h, "BEGIN", "BEGIN", b'T').await;
    passes(&mut h, "SAVEPOINT before", "SAVEPOINT", b'T').await;
    passes(&mut h, UPDATE, "UPDATE 1", b'T').await;
    passes(&mut h, "ROLLBACK TO SAVEPOINT before", "ROLLBACK", b'T').await;
    h.client(&[query("COMMIT")]).await;
    assert_eq!(
        h.statements(),
        [
            "capture_installed",
            "push_context",
            "take_pending_changes ticket-745"
        ]
    );
    assert_eq!(h.remote().calls(), ["push_ticket 745"]);
    assert_eq!(h.sent(), ["Query COMMIT"]);
}

#[tokio::test]
async fn one_string_is_split_before_a_commit_that_pushes() {
    let mut h = Harness::new(FakeUpstream::default());
    h.client(&[query("BEGIN; UPDATE t SET x = 1; COMMIT; SELECT 2")])
        .await;
    assert_eq!(h.sent(), ["Query BEGIN; UPDATE t SET x = 1; "]);
    h.server(&[complete("BEGIN"), complete("UPDATE 1"), ready(b'T')])
        .await;
    // The first part's ReadyForQuery is not the client's; the push runs, then the rest
    // goes, padded so that error positions still count from the client's string.
    assert_eq!(
        h.statements(),
        ["capture_installed", "first_pending_change"]
    );
    assert_eq!(
        h.sent(),
        [format!("Query {}COMMIT; SELECT 2", " ".repeat(27))]
    );
    h.server(&[complete("COMMIT"), complete("SELECT 1"), ready(b'I')])
        .await;
    assert_eq!(
        h.received(),
        [
            "CommandComplete BEGIN",
            "CommandComplete UPDATE 1",
            "CommandComplete COMMIT",
            "CommandComplete SELECT 1",
            "ReadyForQuery I"
        ]
    );
}
