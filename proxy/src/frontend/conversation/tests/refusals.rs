//! A refused push: in autocommit its error takes the place of the CommandComplete of the
//! last statement that may have written, and the unit's replies after it are dropped, as
//! when a statement fails; at an explicit COMMIT the COMMIT gets it, and the COMMIT never
//! reaches the server. The transaction rolls back either way.

use tokio_postgres::error::SqlState;

use super::fakes::{FakeRemote, FakeUpstream, Org, server_error};
use super::*;
use crate::push::Refusal;
use crate::push::journal::Outcome;

/// A session without a control database, whose transaction captured a change: the push
/// is refused naming the table.
fn unpushable() -> FakeUpstream {
    FakeUpstream {
        first_pending: Some(r#"{"schema": "salesforce", "table": "account"}"#.into()),
        ..FakeUpstream::default()
    }
}

#[tokio::test]
async fn in_autocommit_the_error_takes_the_place_of_the_writes_completion() {
    let mut h = Harness::new(unpushable());
    h.client(&[query(&format!("SELECT 1; {UPDATE}; SELECT 2"))])
        .await;
    h.sent();
    h.server(&managed(&[
        complete("SELECT 1"),
        complete("UPDATE 1"),
        complete("SELECT 1"),
        ready(b'T'),
    ]))
    .await;
    assert_eq!(
        h.received(),
        ["CommandComplete SELECT 1", "Error 55000", "ReadyForQuery I"]
    );
    let error = h.error();
    assert_eq!(
        (error.get(b's'), error.get(b't')),
        (Some("salesforce"), Some("account"))
    );
    assert_eq!(
        h.statements(),
        ["capture_installed", "first_pending_change", "rollback"]
    );
}

#[tokio::test]
async fn in_a_pipeline_the_error_ends_the_unit_and_its_dropped_statements_are_closed() {
    let mut h = Harness::new(unpushable());
    let mut unit = execute(UPDATE);
    unit.push(encoded(|buf| encode::parse(buf, "s1", "SELECT 2").unwrap()));
    unit.push(sync());
    h.client(&unit).await;
    h.sent();
    let mut replies = vec![parse_complete(), bind_complete()];
    replies.extend(begun());
    replies.extend([complete("UPDATE 1"), parse_complete(), ready(b'T')]);
    h.server(&replies).await;
    assert_eq!(
        h.received(),
        [
            "ParseComplete",
            "BindComplete",
            "Error 55000",
            "ReadyForQuery I"
        ]
    );
    // The client saw the Parse of s1 skipped: the statement must not exist on the server.
    assert_eq!(
        h.statements(),
        [
            "capture_installed",
            "first_pending_change",
            "rollback",
            "close_statements s1"
        ]
    );
}

#[tokio::test]
async fn at_an_explicit_commit_the_commit_gets_the_error() {
    let mut h = Harness::new(unpushable());
    h.client(&[query("BEGIN")]).await;
    h.server(&[complete("BEGIN"), ready(b'T')]).await;
    h.client(&[query(UPDATE)]).await;
    h.server(&[complete("UPDATE 1"), ready(b'T')]).await;
    h.sent();
    h.received();
    h.client(&[query("COMMIT")]).await;
    assert!(h.sent().is_empty(), "the COMMIT never reaches the server");
    assert_eq!(h.received(), ["Error 55000", "ReadyForQuery I"]);
    assert_eq!(
        h.statements(),
        ["capture_installed", "first_pending_change", "rollback"]
    );
    // The transaction is over: the next write is in autocommit again.
    h.client(&[query(UPDATE)]).await;
    assert_eq!(
        h.sent(),
        then(injected_begin(), &[&format!("Query {UPDATE}")])
    );
}

#[tokio::test]
async fn a_refused_commit_in_a_pipeline_skips_to_sync() {
    let mut h = Harness::new(unpushable());
    began_and_wrote_in_a_pipeline(&mut h).await;
    let mut unit = execute("COMMIT");
    unit.extend(execute("SELECT 1"));
    unit.push(sync());
    h.client(&unit).await;
    h.server(&[parse_complete(), bind_complete()]).await;
    // The COMMIT is answered with the error; the rest of the unit is skipped, as the
    // server would after an error, and its Sync ends the unit.
    assert_eq!(
        h.sent(),
        ["Parse \"\" COMMIT", "Bind \"\"", "Flush", "Sync"]
    );
    assert_eq!(
        h.received(),
        ["ParseComplete", "BindComplete", "Error 55000"]
    );
    h.server(&[ready(b'I')]).await;
    assert_eq!(h.received(), ["ReadyForQuery I"]);
}

#[tokio::test]
async fn a_push_salesforce_refuses_is_journaled_and_rolled_back() {
    let refusal = Refusal::new(
        SqlState::UNIQUE_VIOLATION,
        "Salesforce refused to update Account",
    )
    .detail("DUPLICATE_VALUE");
    let upstream = FakeUpstream::wrote(account_renamed());
    let mut h = Harness::pushing(upstream, FakeRemote::new(Org::Refuses(refusal)));
    h.client(&[query(UPDATE)]).await;
    h.sent();
    h.server(&managed(&[complete("UPDATE 1"), ready(b'T')]))
        .await;
    assert_eq!(h.received(), ["Error 23505", "ReadyForQuery I"]);
    assert_eq!(h.error().get(b'D'), Some("DUPLICATE_VALUE"));
    assert_eq!(h.remote().journaled(), [Outcome::Refused]);
    assert_eq!(h.statements().last().map(String::as_str), Some("rollback"));
}

#[tokio::test]
async fn a_commit_the_server_refuses_is_the_clients_error() {
    // A deferred constraint that fails only at COMMIT, as PostgreSQL words it.
    let upstream = FakeUpstream {
        commit_error: Some(server_error("23514", "violates check constraint")),
        ..FakeUpstream::default()
    };
    let mut h = Harness::new(upstream);
    h.client(&[query(UPDATE)]).await;
    h.sent();
    h.server(&managed(&[complete("UPDATE 1"), ready(b'T')]))
        .await;
    assert_eq!(h.received(), ["Error 23514", "ReadyForQuery I"]);
    assert_eq!(
        h.statements(),
        ["capture_installed", "first_pending_change", "commit"]
    );
}

/// An autocommit UPDATE of an account through a session of `upstream`, to an org that
/// takes it, run up to its push and commit.
async fn an_update_pushed(upstream: FakeUpstream) -> Harness {
    let mut h = Harness::pushing(upstream, FakeRemote::new(Org::Takes(Vec::new())));
    h.client(&[query(UPDATE)]).await;
    h.sent();
    h.server(&managed(&[complete("UPDATE 1"), ready(b'T')]))
        .await;
    h
}

#[tokio::test]
async fn a_commit_the_server_refuses_after_salesforce_accepted_is_not_taken_for_nothing_written() {
    // Salesforce holds the push; the server's COMMIT then fails (a WITH HOLD cursor's
    // query computed at COMMIT, a serialization failure): 08007, never the bare 22012.
    let mut h = an_update_pushed(FakeUpstream {
        commit_error: Some(server_error("22012", "division by zero")),
        ..FakeUpstream::wrote(account_renamed())
    })
    .await;
    assert_eq!(h.received(), ["Error 08007", "ReadyForQuery I"]);
    let error = h.error();
    assert!(
        error.message().contains("Salesforce accepted")
            && error.message().contains("division by zero (22012)"),
        "{}",
        error.message()
    );
    assert!(
        error
            .get(b'D')
            .is_some_and(|d| d.contains("Salesforce holds"))
    );
    assert_eq!(h.remote().journaled(), [Outcome::Pushed]);
}

#[tokio::test]
async fn an_explicit_commit_the_server_refuses_after_salesforce_accepted_is_08007() {
    let mut h = Harness::pushing(
        FakeUpstream::wrote(account_renamed()),
        FakeRemote::new(Org::Takes(Vec::new())),
    );
    for (sql, tag) in [("BEGIN", "BEGIN"), (UPDATE, "UPDATE 1")] {
        h.client(&[query(sql)]).await;
        h.sent();
        h.server(&[complete(tag), ready(b'T')]).await;
        h.received();
    }
    h.client(&[query("COMMIT")]).await;
    assert_eq!(h.sent(), ["Query COMMIT"]);
    assert_eq!(h.remote().journaled(), [Outcome::Pushed]);
    // The server's answer to the COMMIT itself.
    h.server(&[error("22012"), ready(b'I')]).await;
    assert_eq!(h.received(), ["Error 08007", "ReadyForQuery I"]);
    assert!(h.error().message().contains("Salesforce accepted"));
    // The next statement's error is its own.
    h.client(&[query("SELECT 1/0")]).await;
    h.sent();
    h.server(&[error("22012"), ready(b'I')]).await;
    assert_eq!(h.received(), ["Error 22012", "ReadyForQuery I"]);
}

#[tokio::test]
async fn a_with_hold_cursor_of_the_transaction_refuses_the_push_before_it_is_sent() {
    let mut h = an_update_pushed(FakeUpstream {
        held_cursor: Some("c".into()),
        ..FakeUpstream::wrote(account_renamed())
    })
    .await;
    assert_eq!(h.received(), ["Error 0A000", "ReadyForQuery I"]);
    assert!(
        h.error()
            .message()
            .contains("cursor \"c\" is declared WITH HOLD")
    );
    assert!(h.remote().calls().is_empty(), "{:?}", h.remote().calls());
    assert_eq!(h.statements().last().map(String::as_str), Some("rollback"));
}
