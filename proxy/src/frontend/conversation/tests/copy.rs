//! COPY FROM STDIN in both protocols: what came before the CopyInResponse goes to the
//! client with it (the client must send its data now), the COPY's completion is held for
//! the push, and during the data the server ignores Sync, so the client gets one
//! ReadyForQuery.

use super::fakes::FakeUpstream;
use super::*;

const COPY: &str = "COPY salesforce.account (name) FROM STDIN";

/// The server's answers to an extended-protocol COPY up to its CopyInResponse.
fn copy_started() -> Vec<Vec<u8>> {
    let mut replies = vec![parse_complete(), bind_complete()];
    replies.extend(begun());
    replies.push(copy_in_response());
    replies
}

#[tokio::test]
async fn copy_in_a_query_is_pushed_when_it_completes() {
    let mut h = Harness::new(FakeUpstream::default());
    h.client(&[query(COPY)]).await;
    assert_eq!(
        h.sent(),
        then(injected_begin(), &[&format!("Query {COPY}")])
    );
    h.server(&managed(&[copy_in_response()])).await;
    assert_eq!(h.received(), ["CopyInResponse"]);
    // The data passes while the proxy waits for the unit's end.
    h.client(&[copy_data("Acme\n"), copy_done()]).await;
    assert_eq!(h.sent(), ["CopyData Acme\n", "CopyDone"]);
    h.server(&[complete("COPY 1"), ready(b'T')]).await;
    assert_eq!(h.received(), ["CommandComplete COPY 1", "ReadyForQuery I"]);
    assert_eq!(h.statements(), COMMITTED);
}

#[tokio::test]
async fn copy_in_the_extended_protocol_ignores_the_sync_sent_before_its_data() {
    // tokio-postgres and libpq: Execute, Sync, the data, CopyDone, Sync, all at once.
    let mut h = Harness::new(FakeUpstream::default());
    let mut sent = execute(COPY);
    sent.extend([sync(), copy_data("Acme\n"), copy_done(), sync()]);
    h.client(&sent).await;
    let mut expected = vec![format!("Parse \"\" {COPY}"), "Bind \"\"".into()];
    expected.extend(injected_begin());
    expected.extend(["Execute \"\"", "Sync", "CopyData Acme\n", "CopyDone"].map(String::from));
    // The last Sync waits: the unit ends at the one before, as far as the proxy knows.
    assert_eq!(h.sent(), expected);
    h.server(&copy_started()).await;
    // The COPY started: the server ignores the first Sync, so the unit ends at the next.
    assert_eq!(
        h.received(),
        ["ParseComplete", "BindComplete", "CopyInResponse"]
    );
    assert_eq!(h.sent(), ["Sync"]);
    h.server(&[complete("COPY 1"), ready(b'T')]).await;
    assert_eq!(h.received(), ["CommandComplete COPY 1", "ReadyForQuery I"]);
    assert_eq!(h.statements(), COMMITTED);
}

#[tokio::test]
async fn a_sync_sent_during_the_data_is_ignored() {
    let mut h = Harness::new(FakeUpstream::default());
    let mut sent = execute(COPY);
    sent.push(sync());
    h.client(&sent).await;
    h.sent();
    h.server(&copy_started()).await;
    h.received();
    // Sent while the COPY runs: the server ignores it, and so does the proxy.
    h.client(&[
        copy_data("Acme\n"),
        sync(),
        copy_data("Globex\n"),
        copy_done(),
        sync(),
    ])
    .await;
    assert_eq!(
        h.sent(),
        [
            "CopyData Acme\n",
            "Sync",
            "CopyData Globex\n",
            "CopyDone",
            "Sync"
        ]
    );
    h.server(&[complete("COPY 2"), ready(b'T')]).await;
    assert_eq!(h.received(), ["CommandComplete COPY 2", "ReadyForQuery I"]);
    assert_eq!(h.statements(), COMMITTED);
    assert!(h.conversation.at_rest());
}
