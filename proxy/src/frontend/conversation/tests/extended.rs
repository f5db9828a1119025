//! The extended protocol, pipelined: a unit (up to Sync) that may write in autocommit is
//! wrapped in the proxy's transaction, and the units the client sent after it wait until
//! its push has decided.

use super::fakes::FakeUpstream;
use super::*;

#[tokio::test]
async fn pipelined_units_wait_for_the_push_of_the_one_before() {
    let mut h = Harness::new(FakeUpstream::default());
    let mut pipeline = execute(UPDATE);
    pipeline.push(sync());
    pipeline.extend(execute("SELECT 1"));
    pipeline.push(sync());
    h.client(&pipeline).await;
    // The BEGIN goes before the Execute that may write; the second unit waits.
    assert_eq!(
        h.sent(),
        then(
            then(
                vec![format!("Parse \"\" {UPDATE}"), "Bind \"\"".into()],
                &[]
            )
            .into_iter()
            .chain(injected_begin())
            .collect(),
            &["Execute \"\"", "Sync"]
        )
    );
    let mut replies = vec![parse_complete(), bind_complete()];
    replies.extend(begun());
    replies.extend([complete("UPDATE 1"), ready(b'T')]);
    h.server(&replies).await;
    assert_eq!(
        h.received(),
        [
            "ParseComplete",
            "BindComplete",
            "CommandComplete UPDATE 1",
            "ReadyForQuery I"
        ]
    );
    assert_eq!(h.statements(), COMMITTED);
    // Then the next unit goes, a read in autocommit: as it is.
    assert_eq!(
        h.sent(),
        ["Parse \"\" SELECT 1", "Bind \"\"", "Execute \"\"", "Sync"]
    );
    h.server(&[
        parse_complete(),
        bind_complete(),
        complete("SELECT 1"),
        ready(b'I'),
    ])
    .await;
    assert_eq!(h.received().last().unwrap(), "ReadyForQuery I");
    assert!(h.conversation.at_rest());
}

#[tokio::test]
async fn a_commit_in_a_pipeline_waits_for_what_came_before_it() {
    let mut h = Harness::new(FakeUpstream::default());
    began_and_wrote_in_a_pipeline(&mut h).await;
    let mut unit = execute("COMMIT");
    unit.push(sync());
    h.client(&unit).await;
    // The push needs the server to have answered the Parse and Bind first: a Flush asks
    // for their replies now.
    assert_eq!(h.sent(), ["Parse \"\" COMMIT", "Bind \"\"", "Flush"]);
    assert!(h.statements().is_empty());
    h.server(&[parse_complete(), bind_complete()]).await;
    assert_eq!(
        h.statements(),
        ["capture_installed", "first_pending_change"]
    );
    assert_eq!(h.sent(), ["Execute \"\"", "Sync"]);
    h.server(&[complete("COMMIT"), ready(b'I')]).await;
    assert_eq!(
        h.received(),
        [
            "ParseComplete",
            "BindComplete",
            "CommandComplete COMMIT",
            "ReadyForQuery I"
        ]
    );
}
