//! A CancelRequest during a push is the proxy's: the server gets nothing (it runs nothing
//! of the client's then), the push stops waiting at once, and the transaction rolls back.
//! What the client is told depends on whether the request to Salesforce had left.

use std::sync::Arc;

use super::fakes::{FakeRemote, FakeUpstream, Org};
use super::*;
use crate::frontend::cancel::{Cancel, CancelRegistry, Registration};
use crate::net::messages::backend::BackendKey;
use crate::push::journal::Outcome;

/// A session pushing to `remote`, with a cancel key in `registry`, whose autocommit
/// UPDATE has been sent.
async fn pushing_session(
    remote: FakeRemote,
    registry: &Arc<CancelRegistry>,
) -> (Harness, Registration) {
    let registration = registry.register(BackendKey {
        pid: 4242,
        secret: vec![1, 2, 3, 4],
    });
    let mut h = Harness::pushing(FakeUpstream::wrote(account_renamed()), remote);
    h.conversation
        .cancelled_by(registration.pid(), Arc::clone(registration.signal()));
    h.client(&[query(UPDATE)]).await;
    h.sent();
    (h, registration)
}

/// The server's answer to the UPDATE, which ends the unit and starts the push.
fn updated() -> Vec<Vec<u8>> {
    managed(&[complete("UPDATE 1"), ready(b'T')])
}

/// A session pushing to `remote` whose client cancels once the push reaches the org (or
/// its planning). The proxy takes the cancel (forwarded, it would land on the proxy's
/// ROLLBACK), and the client's write fails with 57014 outside any transaction. Returns the
/// session, the error's DETAIL, and the cancel key.
async fn cancelled_push(
    remote: FakeRemote,
) -> (Harness, String, Arc<CancelRegistry>, Registration) {
    let registry = Arc::new(CancelRegistry::default());
    let (mut h, registration) = pushing_session(remote, &registry).await;
    let reached = Arc::clone(&h.remote().reached);
    let cancel = async {
        reached.notified().await;
        registry.cancel(registration.pid(), registration.secret())
    };
    let updated = updated();
    let ((), cancelled) = tokio::join!(h.server(&updated), cancel);
    assert_eq!(cancelled, Some(Cancel::Taken));
    assert_eq!(h.received(), ["Error 57014", "ReadyForQuery I"]);
    assert_eq!(h.statements().last().map(String::as_str), Some("rollback"));
    let detail = h.error().get(b'D').unwrap_or_default().to_owned();
    (h, detail, registry, registration)
}

#[tokio::test]
async fn a_cancel_while_the_request_is_under_way_stops_the_wait_and_rolls_back() {
    let (h, detail, registry, registration) =
        cancelled_push(FakeRemote::new(Org::NeverAnswers)).await;
    assert!(
        detail.contains("Salesforce may still carry it out"),
        "{detail}"
    );
    // Journaled as abandoned, for the repair to read the records again at once.
    assert_eq!(h.remote().journaled(), [Outcome::Abandoned]);
    assert_eq!(
        h.remote().calls().last().map(String::as_str),
        Some("repair_soon")
    );
    // After the push, a cancel is the server's again.
    assert!(matches!(
        registry.cancel(registration.pid(), registration.secret()),
        Some(Cancel::Forward(_))
    ));
}

#[tokio::test]
async fn a_cancel_before_anything_was_sent_says_so() {
    let mut remote = FakeRemote::new(Org::Takes(Vec::new()));
    remote.plan_hangs = true;
    let (h, detail, ..) = cancelled_push(remote).await;
    assert!(
        detail.starts_with("Nothing was sent to Salesforce"),
        "{detail}"
    );
    assert!(h.remote().journaled().is_empty());
}

#[tokio::test]
async fn a_cancel_sent_before_the_push_does_not_stop_it() {
    let registry = Arc::new(CancelRegistry::default());
    let remote = FakeRemote::new(Org::Takes(Vec::new()));
    let (mut h, registration) = pushing_session(remote, &registry).await;
    // Meant for the UPDATE the server was running: forwarded to it.
    assert!(matches!(
        registry.cancel(registration.pid(), registration.secret()),
        Some(Cancel::Forward(_))
    ));
    h.server(&updated()).await;
    assert_eq!(
        h.received(),
        ["CommandComplete UPDATE 1", "ReadyForQuery I"]
    );
    assert_eq!(h.remote().journaled(), [Outcome::Pushed]);
    assert_eq!(h.statements().last().map(String::as_str), Some("commit"));
}

#[tokio::test]
async fn a_push_is_journaled_unknown_before_its_request_leaves() {
    let registry = Arc::new(CancelRegistry::default());
    let (mut h, registration) =
        pushing_session(FakeRemote::new(Org::NeverAnswers), &registry).await;
    let reached = Arc::clone(&h.remote().reached);
    let journaled = Arc::clone(&h.remote().journaled);
    // While Salesforce has the request: an entry the repair would find were the proxy
    // killed now, its outcome unknown.
    let seen = async {
        reached.notified().await;
        let seen = journaled.lock().unwrap().clone();
        registry.cancel(registration.pid(), registration.secret());
        seen
    };
    let updated = updated();
    let ((), seen) = tokio::join!(h.server(&updated), seen);
    assert_eq!(seen, [Outcome::Unknown]);
    // The same entry, rewritten once the cancel settled it.
    assert_eq!(h.remote().journaled(), [Outcome::Abandoned]);
}
