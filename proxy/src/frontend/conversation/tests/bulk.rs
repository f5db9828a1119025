//! `sfpg.bulk_writes` in the commit protocol, without sockets: the setting read with the
//! transaction's id decides between one atomic request and ingest jobs; a bulk push
//! commits what was accepted, restores what was refused, keeps the failures and warns.

use std::sync::Arc;

use sfpg_salesforce::RecordError;

use super::fakes::{FakeRemote, FakeUpstream, Org};
use super::*;
use crate::push::bulk::Fate;
use crate::push::{RowsForm, WriteBack};

/// An update of account 1 and an insert of account 7 in one transaction.
fn two_changes() -> serde_json::Value {
    let mut changes = account_renamed();
    let inserted = account_inserted("~00000000000000042");
    changes
        .as_array_mut()
        .unwrap()
        .push(inserted.as_array().unwrap()[0].clone());
    changes
}

async fn commit(h: &mut Harness) {
    h.client(&[query("BEGIN")]).await;
    h.server(&[complete("BEGIN"), ready(b'T')]).await;
    h.client(&[query(UPDATE)]).await;
    h.server(&[complete("UPDATE 1"), ready(b'T')]).await;
    h.received();
    h.sent();
    h.client(&[query("COMMIT")]).await;
}

#[tokio::test]
async fn off_keeps_a_small_push_atomic() {
    let upstream = FakeUpstream::wrote(two_changes());
    let mut h = Harness::pushing(upstream, FakeRemote::new(Org::Takes(vec!["001x".into()])));
    commit(&mut h).await;
    let calls = h.remote().calls();
    assert!(calls.contains(&"send 2".to_owned()), "{calls:?}");
    assert!(
        !calls.iter().any(|c| c.starts_with("send_bulk")),
        "{calls:?}"
    );
    assert_eq!(h.sent(), ["Query COMMIT"]);
}

#[tokio::test]
async fn a_bad_value_refuses_the_commit_before_anything_is_sent() {
    let upstream = FakeUpstream {
        bulk_writes: Some("sometimes".into()),
        ..FakeUpstream::wrote(two_changes())
    };
    let mut h = Harness::pushing(upstream, FakeRemote::new(Org::Takes(Vec::new())));
    commit(&mut h).await;
    h.received();
    assert_eq!(h.error().code(), "22023");
    assert_eq!(h.remote().calls(), Vec::<String>::new());
}

#[tokio::test]
async fn on_commits_the_accepted_restores_the_refused_and_warns() {
    let upstream = FakeUpstream {
        bulk_writes: Some("on".into()),
        ..FakeUpstream::wrote(two_changes())
    };
    let mut remote = FakeRemote::new(Org::Takes(Vec::new()));
    // The insert is accepted, the update refused.
    remote.bulk_fates = Some(vec![
        Fate::Accepted {
            id: "001000000000007AAA".into(),
        },
        Fate::Refused {
            job: Some("750000000000001AAA".into()),
            error: Box::new(RecordError {
                status_code: "FIELD_CUSTOM_VALIDATION_EXCEPTION".into(),
                message: "No".into(),
                fields: vec!["Name".into()],
            }),
        },
    ]);
    let mut h = Harness::pushing(upstream, remote);
    commit(&mut h).await;
    let calls = h.remote().calls();
    assert!(calls.contains(&"send_bulk 2".to_owned()), "{calls:?}");
    assert!(calls.contains(&"record_failures 1".to_owned()), "{calls:?}");
    assert!(
        calls.contains(&"read_back 001000000000007AAA".to_owned()),
        "{calls:?}"
    );
    let statements = h.statements();
    let restored = statements
        .iter()
        .find(|s| s.starts_with("restore_refused"))
        .unwrap();
    // The refused update's row gets its image from before the transaction back.
    assert!(restored.contains(r#""name":"Old""#), "{restored}");
    assert!(
        statements
            .contains(&"notice WARNING: 1 of 2 records were refused by Salesforce".to_owned()),
        "{statements:?}"
    );
    // Then the client's COMMIT goes on.
    assert_eq!(h.sent(), ["Query COMMIT"]);
}

/// A large push's read-back writes into the mirror as it reads: it is never more than
/// two write-backs ahead of the client's connection (one waiting, one being made), so
/// the proxy never holds every record read back at once.
#[tokio::test]
async fn the_read_back_is_written_back_as_it_is_read() {
    const CHUNKS: usize = 8;
    let upstream = FakeUpstream {
        bulk_writes: Some("on".into()),
        ..FakeUpstream::wrote(two_changes())
    };
    let mut remote = FakeRemote::new(Org::Takes(Vec::new()));
    let produced = Arc::clone(&remote.produced);
    remote.read_back.0 = (0..CHUNKS)
        .map(|i| WriteBack {
            schema: "salesforce".into(),
            table: "account".into(),
            rows: format!(r#"[{{"id":{i}}}]"#),
            form: RowsForm::Json,
        })
        .collect();
    let mut h = Harness::pushing(upstream, remote);
    h.upstream.produced = produced;
    commit(&mut h).await;
    assert_eq!(h.sent(), ["Query COMMIT"]);
    let written: Vec<_> = h
        .statements()
        .into_iter()
        .filter(|s| s.starts_with("write_back"))
        .collect();
    // Every write-back, in the order it was made.
    assert_eq!(written.len(), CHUNKS, "{written:?}");
    for (i, statement) in written.iter().enumerate() {
        assert!(
            statement.ends_with(&format!(r#"[{{"id":{i}}}]"#)),
            "{statement}"
        );
    }
    let ahead = &h.upstream.ahead;
    assert!(
        ahead.iter().all(|&a| a <= 2),
        "the read-back ran ahead of the connection by {ahead:?} write-backs"
    );
}
