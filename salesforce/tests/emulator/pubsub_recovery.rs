//! The Pub/Sub transport recovering from what ends a stream, against the emulator: a new
//! login on an auth error, resubscription after the applied id when a stream is dropped, one
//! stream per topic, an expired replay id as a typed error, an unreachable endpoint.

use std::time::Duration;

use sfpg_salesforce::streaming::{
    ALL_CHANGE_EVENTS, EventTransport, PubSub, ReplayFrom, StreamItem,
};

use super::pubsub::{
    PATIENCE, connected, next_event, next_news, pubsub, quick, reconnecting, start_streaming,
    streams,
};
use super::*;

#[tokio::test]
async fn an_auth_error_logs_in_again_and_resumes_after_the_applied_id() {
    let emulator = start_streaming(EmulatorConfig::default()).await;
    let writer = client(&emulator).sobject("Account");
    let mut subscription = pubsub(&emulator).subscribe(ALL_CHANGE_EVENTS, ReplayFrom::Tip);
    connected(&mut subscription).await;
    writer
        .create(&record(json!({"Name": "one"})))
        .await
        .unwrap();
    let first = next_event(&mut subscription).await;
    subscription.resume_after(first.replay_id);
    let logins_before = logins(&emulator);
    emulator.revoke_sessions(None, false);
    let ended = emulator.end_pubsub_streams(
        None,
        tonic::Code::Unauthenticated,
        "sfdc.platform.eventbus.grpc.service.auth.error",
        "session expired",
    );
    assert_eq!(ended, 1);
    writer
        .create(&record(json!({"Name": "two"})))
        .await
        .unwrap();
    let reason = reconnecting(&mut subscription).await;
    assert!(reason.contains("service.auth.error"), "{reason}");
    assert_eq!(
        connected(&mut subscription).await,
        ReplayFrom::After(first.replay_id)
    );
    assert_eq!(next_event(&mut subscription).await.fields["Name"], "two");
    assert_eq!(
        logins(&emulator) - logins_before,
        2,
        "one login for the writer, one for the stream"
    );
}

#[tokio::test]
async fn a_dropped_stream_resubscribes_after_the_applied_id_without_doubling() {
    let emulator = start_streaming(EmulatorConfig::default()).await;
    let accounts = client(&emulator).sobject("Account");
    let mut subscription = pubsub(&emulator).subscribe(ALL_CHANGE_EVENTS, ReplayFrom::Tip);
    connected(&mut subscription).await;
    for name in ["one", "two"] {
        accounts
            .create(&record(json!({"Name": name})))
            .await
            .unwrap();
    }
    let first = next_event(&mut subscription).await;
    let second = next_event(&mut subscription).await;
    subscription.resume_after(first.replay_id);
    emulator.end_pubsub_streams(
        None,
        tonic::Code::Unavailable,
        "sfdc.platform.eventbus.grpc.service.unavailable",
        "going away",
    );
    let reason = reconnecting(&mut subscription).await;
    assert!(reason.contains("Unavailable"), "{reason}");
    assert_eq!(
        connected(&mut subscription).await,
        ReplayFrom::After(first.replay_id)
    );
    assert_eq!(
        next_event(&mut subscription).await,
        second,
        "redelivered after the applied id"
    );
    accounts
        .create(&record(json!({"Name": "three"})))
        .await
        .unwrap();
    assert_eq!(next_event(&mut subscription).await.fields["Name"], "three");
    assert_eq!(streams(&emulator).len(), 1);
}

#[tokio::test]
async fn a_second_subscription_of_a_topic_replaces_the_first_and_its_stream() {
    let emulator = start_streaming(EmulatorConfig::default()).await;
    let accounts = client(&emulator).sobject("Account");
    let transport = pubsub(&emulator);
    let mut old = transport.subscribe(ALL_CHANGE_EVENTS, ReplayFrom::Tip);
    connected(&mut old).await;
    accounts
        .create(&record(json!({"Name": "one"})))
        .await
        .unwrap();
    let first = next_event(&mut old).await;
    let mut new = transport.subscribe(ALL_CHANGE_EVENTS, ReplayFrom::After(first.replay_id));
    accounts
        .create(&record(json!({"Name": "two"})))
        .await
        .unwrap();
    let ended = tokio::time::timeout(PATIENCE, old.next()).await.unwrap();
    assert!(
        ended
            .as_ref()
            .is_err_and(|e| e.to_string().contains("replaced")),
        "{ended:?}"
    );
    assert_eq!(
        connected(&mut new).await,
        ReplayFrom::After(first.replay_id)
    );
    assert_eq!(next_event(&mut new).await.fields["Name"], "two");
    let open = streams(&emulator);
    assert_eq!(open.len(), 1, "one stream: {open:?}");
    let quiet = tokio::time::timeout(Duration::from_millis(500), next_news(&mut new)).await;
    assert!(quiet.is_err(), "a second delivery: {quiet:?}");
}

#[tokio::test]
async fn an_expired_replay_id_is_a_typed_error() {
    let emulator = start_streaming(EmulatorConfig {
        event_retention: Duration::from_millis(500),
        ..EmulatorConfig::default()
    })
    .await;
    let accounts = client(&emulator).sobject("Account");
    let transport = pubsub(&emulator);
    let mut subscription = transport.subscribe(ALL_CHANGE_EVENTS, ReplayFrom::Tip);
    connected(&mut subscription).await;
    for name in ["old", "older"] {
        accounts
            .create(&record(json!({"Name": name})))
            .await
            .unwrap();
    }
    let old = next_event(&mut subscription).await;
    next_event(&mut subscription).await;
    subscription.close().await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    accounts
        .create(&record(json!({"Name": "new"})))
        .await
        .unwrap();

    let mut stale = transport.subscribe(ALL_CHANGE_EVENTS, ReplayFrom::After(old.replay_id));
    let error = loop {
        match tokio::time::timeout(PATIENCE, stale.next()).await.unwrap() {
            Ok(StreamItem::Connected { .. } | StreamItem::Idle) => continue,
            Ok(other) => panic!("{other:?}"),
            Err(error) => break error,
        }
    };
    assert!(error.is_replay_id_invalid(), "{error}");
    assert!(
        error.to_string().contains(&old.replay_id.to_string()),
        "{error}"
    );
    let ended = stale.next().await.unwrap_err();
    assert!(!ended.is_replay_id_invalid(), "{ended}");
}

#[tokio::test]
async fn an_unreachable_endpoint_is_retried_with_backoff_and_probed_as_down() {
    let emulator = start_streaming(EmulatorConfig::default()).await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let endpoint = format!("http://{closed}");
    let error = sfpg_salesforce::streaming::probe_pubsub(
        &client(&emulator),
        &endpoint,
        ALL_CHANGE_EVENTS,
        Duration::from_secs(2),
    )
    .await
    .unwrap_err();
    assert!(error.to_string().contains("Unavailable"), "{error}");
    sfpg_salesforce::streaming::probe_pubsub(
        &client(&emulator),
        emulator.pubsub_endpoint(),
        ALL_CHANGE_EVENTS,
        Duration::from_secs(2),
    )
    .await
    .unwrap();
    let unknown = sfpg_salesforce::streaming::probe_pubsub(
        &client(&emulator),
        emulator.pubsub_endpoint(),
        "/data/NoSuchChangeEvent",
        Duration::from_secs(2),
    )
    .await
    .unwrap_err();
    assert!(unknown.to_string().contains("NotFound"), "{unknown}");
    let transport = PubSub::with_options(client(&emulator), &endpoint, quick()).unwrap();
    let mut subscription = transport.subscribe(ALL_CHANGE_EVENTS, ReplayFrom::Tip);
    let first = reconnecting(&mut subscription).await;
    let second = reconnecting(&mut subscription).await;
    assert!(
        first.contains("Unavailable") && second.contains("Unavailable"),
        "{first} / {second}"
    );
}
