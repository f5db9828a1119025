//! Autocommit: a read passes untouched; a statement that may write runs in a transaction
//! the proxy opens, its replies held until the push decides, and the client sees the
//! answer of its own autocommit statement.

use super::fakes::{FakeRemote, FakeUpstream, Org};
use super::*;
use crate::push::{Created, RowsForm, WriteBack};

#[tokio::test]
async fn a_read_passes_untouched() {
    let mut h = Harness::new(FakeUpstream::default());
    h.client(&[query("SELECT 1")]).await;
    assert_eq!(h.sent(), ["Query SELECT 1"]);
    h.server(&[complete("SELECT 1"), ready(b'I')]).await;
    assert_eq!(
        h.received(),
        ["CommandComplete SELECT 1", "ReadyForQuery I"]
    );
    assert!(h.statements().is_empty());
}

#[tokio::test]
async fn a_write_runs_in_a_transaction_the_proxy_opens_and_commits() {
    let mut h = Harness::new(FakeUpstream::default());
    h.client(&[query(UPDATE)]).await;
    assert_eq!(
        h.sent(),
        then(injected_begin(), &[&format!("Query {UPDATE}")])
    );
    h.server(&begun()).await;
    h.server(&[complete("UPDATE 1"), ready(b'T')]).await;
    // The BEGIN's replies are the proxy's; the write's wait for the commit.
    assert_eq!(
        h.received(),
        ["CommandComplete UPDATE 1", "ReadyForQuery I"]
    );
    assert_eq!(h.statements(), COMMITTED);
    // The capture functions, once found, are not looked for again.
    h.client(&[query(UPDATE)]).await;
    h.sent();
    h.server(&begun()).await;
    h.server(&[complete("UPDATE 1"), ready(b'T')]).await;
    assert_eq!(h.statements(), ["first_pending_change", "commit"]);
    assert!(h.conversation.at_rest());
}

#[tokio::test]
async fn the_push_comes_between_the_write_and_the_commit() {
    let upstream = FakeUpstream::wrote(account_renamed());
    let mut h = Harness::pushing(upstream, FakeRemote::new(Org::Takes(Vec::new())));
    h.client(&[query(UPDATE)]).await;
    h.sent();
    h.server(&managed(&[complete("UPDATE 1"), ready(b'T')]))
        .await;
    assert_eq!(
        h.received(),
        ["CommandComplete UPDATE 1", "ReadyForQuery I"]
    );
    assert_eq!(
        h.statements(),
        then(BEFORE_THE_ORG.map(String::from).to_vec(), &["commit"])
    );
    assert_eq!(
        h.remote().calls(),
        ["push_ticket 745", "plan 1", "send 1", "read_back "]
    );
    assert_eq!(
        h.remote().journaled(),
        [crate::push::journal::Outcome::Pushed]
    );
}

#[tokio::test]
async fn returning_sfid_gets_the_id_salesforce_gave() {
    let provisional = "~00000000000000042";
    let upstream = FakeUpstream::wrote(account_inserted(provisional));
    let mut remote = FakeRemote::new(Org::Takes(vec!["001000000000007AAA".into()]));
    remote.read_back = (
        vec![WriteBack {
            schema: "salesforce".into(),
            table: "account".into(),
            rows: r#"[{"id":7,"sfid":"001000000000007AAA"}]"#.into(),
            form: RowsForm::Json,
        }],
        vec![Created {
            table_oid: ACCOUNT_OID,
            row_id: 7,
            sfid: "001000000000007AAA".into(),
            provisional: Some(provisional.into()),
        }],
    );
    let mut h = Harness::pushing(upstream, remote);
    h.client(&[query(
        "INSERT INTO salesforce.account (name) VALUES ('New Co') RETURNING sfid",
    )])
    .await;
    h.sent();
    h.server(&managed(&[
        row_description(&[("sfid", ACCOUNT_OID, 2)]),
        data_row(&[Some(provisional)]),
        complete("INSERT 0 1"),
        ready(b'T'),
    ]))
    .await;
    assert_eq!(
        h.received(),
        [
            "RowDescription",
            "DataRow 001000000000007AAA",
            "CommandComplete INSERT 0 1",
            "ReadyForQuery I"
        ]
    );
    assert_eq!(
        h.statements(),
        then(
            BEFORE_THE_ORG.map(String::from).to_vec(),
            &[
                r#"write_back ticket-745 salesforce.account [{"id":7,"sfid":"001000000000007AAA"}]"#,
                "commit",
                "attnums [100]"
            ]
        )
    );
}

#[tokio::test]
async fn an_error_inside_a_managed_transaction_rolls_it_back() {
    let mut h = Harness::new(FakeUpstream::default());
    h.client(&[query(UPDATE)]).await;
    h.sent();
    h.server(&managed(&[error("23505"), ready(b'E')])).await;
    // The client sees its statement fail, outside any transaction, as in autocommit.
    assert_eq!(h.received(), ["Error 23505", "ReadyForQuery I"]);
    assert_eq!(h.statements(), ["rollback"]);
    // The next read is the client's alone again.
    h.client(&[query("SELECT 1")]).await;
    assert_eq!(h.sent(), ["Query SELECT 1"]);
}

#[tokio::test]
async fn a_rollback_a_late_cancel_hit_is_sent_again() {
    let mut upstream = FakeUpstream::default();
    upstream.rollback_errors.push_back(fakes::server_error(
        "57014",
        "canceling statement due to user request",
    ));
    let mut h = Harness::new(upstream);
    h.client(&[query(UPDATE)]).await;
    h.sent();
    h.server(&managed(&[error("23505"), ready(b'E')])).await;
    assert_eq!(h.statements(), ["rollback", "rollback"]);
    assert_eq!(h.received(), ["Error 23505", "ReadyForQuery I"]);
}

#[tokio::test]
async fn a_unit_that_returns_more_than_the_proxy_holds_has_its_replies_sent_on() {
    // `UPDATE …; SELECT <a lot>` in autocommit: what the unit returns reaches the client
    // before its push once past HELD_AT_MOST, not all of it held in the proxy's memory.
    let mut h = Harness::new(FakeUpstream::default());
    h.client(&[query(&format!("{UPDATE}; SELECT repeat('x', 1000000)"))])
        .await;
    h.sent();
    h.server(&begun()).await;
    let row = "x".repeat(1_000_000);
    let mut replies = vec![complete("UPDATE 1"), row_description(&[("repeat", 25, -1)])];
    let rows = crate::frontend::conversation::server::HELD_AT_MOST / row.len() + 1;
    replies.extend((0..rows).map(|_| data_row(&[Some(&row)])));
    h.server(&replies).await;
    let received = h.received();
    assert_eq!(received.len(), 2 + rows, "all of it on its way already");
    assert_eq!(received[0], "CommandComplete UPDATE 1");
    // The rest of the unit and its commit as usual.
    h.server(&[complete("SELECT 5"), ready(b'T')]).await;
    assert_eq!(
        h.received(),
        ["CommandComplete SELECT 5", "ReadyForQuery I"]
    );
    assert_eq!(h.statements(), COMMITTED);
}
