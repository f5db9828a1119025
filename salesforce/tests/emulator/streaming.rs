//! Change Data Capture over CometD against the emulator's Streaming API: events of REST
//! writes arrive typed, a subscription resumes after an id, and the client survives a
//! forgotten client (403) and a revoked session (401); an expired replay id is a typed error.

use std::time::Duration;

use serde_json::Value;
use sfpg_salesforce::streaming::{
    ALL_CHANGE_EVENTS, Backoff, ChangeEvent, ChangeType, CometD, CometDOptions, EventTransport,
    ReplayFrom, StreamItem, Subscription, change_event_channel,
};

use super::*;

pub(super) const PATIENCE: Duration = Duration::from_secs(10);

pub(super) async fn start_streaming(config: EmulatorConfig) -> RunningEmulator {
    emulator::start(EmulatorConfig {
        org: OrgSource::Generated {
            records: 0,
            seed: 7,
        },
        cometd_connect_timeout: Duration::from_millis(300),
        ..config
    })
    .await
    .unwrap()
}

pub(super) fn transport(emulator: &RunningEmulator) -> CometD {
    CometD::with_options(
        client(emulator),
        CometDOptions {
            stall_timeout: Duration::from_secs(5),
            backoff: Backoff::new(Duration::from_millis(20), Duration::from_millis(100)),
            disconnect_timeout: Duration::from_secs(2),
        },
    )
}

pub(super) async fn next_news(subscription: &mut Box<dyn Subscription>) -> StreamItem {
    loop {
        let Ok(item) = tokio::time::timeout(PATIENCE, subscription.next()).await else {
            panic!("no item within 10 s");
        };
        let item = item.unwrap();
        if item != StreamItem::Idle {
            return item;
        }
    }
}

pub(super) async fn next_event(subscription: &mut Box<dyn Subscription>) -> ChangeEvent {
    match next_news(subscription).await {
        StreamItem::Event(event) => *event,
        other => panic!("expected an event, got {other:?}"),
    }
}

pub(super) async fn connected(subscription: &mut Box<dyn Subscription>) -> ReplayFrom {
    match next_news(subscription).await {
        StreamItem::Connected { from } => from,
        other => panic!("expected Connected, got {other:?}"),
    }
}

pub(super) async fn reconnecting(subscription: &mut Box<dyn Subscription>) -> String {
    match next_news(subscription).await {
        StreamItem::Reconnecting { reason, .. } => reason,
        other => panic!("expected Reconnecting, got {other:?}"),
    }
}

#[tokio::test]
async fn rest_writes_arrive_as_typed_events_with_compound_fields_and_explicit_nulls() {
    let emulator = start_streaming(EmulatorConfig::default()).await;
    let client = client(&emulator);
    let mut subscription =
        transport(&emulator).subscribe(&change_event_channel("Account"), ReplayFrom::Tip);
    assert_eq!(connected(&mut subscription).await, ReplayFrom::Tip);
    let accounts = client.sobject("Account");
    let id = accounts
        .create(&record(
            json!({"Name": "Streamed", "BillingCity": "Paris", "Phone": "555"}),
        ))
        .await
        .unwrap();
    accounts
        .update(&id, &record(json!({"Phone": null, "BillingCity": "Lyon"})))
        .await
        .unwrap();
    accounts.delete(&id).await.unwrap();

    let created = next_event(&mut subscription).await;
    assert_eq!(created.channel, "/data/AccountChangeEvent");
    assert_eq!(created.header.change_type, ChangeType::Create);
    assert_eq!(created.header.entity_name, "Account");
    assert_eq!(created.header.record_ids, [id.to_string()]);
    assert!(
        created.header.change_origin.ends_with(";client=sfpg"),
        "{}",
        created.header.change_origin
    );
    assert_eq!(created.fields["BillingAddress"]["City"], "Paris");
    assert_eq!(created.flattened_fields()["BillingCity"], "Paris");
    assert_eq!(created.fields["Name"], "Streamed");

    let updated = next_event(&mut subscription).await;
    assert_eq!(updated.header.change_type, ChangeType::Update);
    assert!(updated.replay_id > created.replay_id);
    assert_eq!(updated.fields.get("Phone"), Some(&Value::Null));
    assert_eq!(updated.flattened_fields()["BillingCity"], "Lyon");
    assert!(updated.nulled_fields().contains(&"Phone".to_owned()));
    assert!(!updated.fields.contains_key("Name"), "only changed fields");

    let deleted = next_event(&mut subscription).await;
    assert_eq!(deleted.header.change_type, ChangeType::Delete);
    assert!(deleted.fields.is_empty(), "{:?}", deleted.fields);
    subscription.close().await;
}

#[tokio::test]
async fn a_subscription_resumes_after_an_id() {
    let emulator = start_streaming(EmulatorConfig::default()).await;
    let accounts = client(&emulator).sobject("Account");
    let transport = transport(&emulator);
    let mut first = transport.subscribe(ALL_CHANGE_EVENTS, ReplayFrom::Tip);
    connected(&mut first).await;
    for name in ["one", "two", "three"] {
        accounts
            .create(&record(json!({"Name": name})))
            .await
            .unwrap();
    }
    let events = [
        next_event(&mut first).await,
        next_event(&mut first).await,
        next_event(&mut first).await,
    ];
    first.close().await;

    let after = events[0].replay_id;
    let mut resumed = transport.subscribe(ALL_CHANGE_EVENTS, ReplayFrom::After(after));
    assert_eq!(connected(&mut resumed).await, ReplayFrom::After(after));
    let again = [
        next_event(&mut resumed).await,
        next_event(&mut resumed).await,
    ];
    assert_eq!(again[0], events[1]);
    assert_eq!(again[1], events[2]);
    let quiet = tokio::time::timeout(Duration::from_millis(800), next_news(&mut resumed)).await;
    assert!(
        quiet.is_err(),
        "more than the events after {after}: {quiet:?}"
    );
}

#[tokio::test]
async fn a_forgotten_client_re_handshakes_and_resumes_after_the_applied_id() {
    let emulator = start_streaming(EmulatorConfig {
        cometd_client_timeout: Duration::from_millis(400),
        ..EmulatorConfig::default()
    })
    .await;
    let accounts = client(&emulator).sobject("Account");
    let mut subscription = transport(&emulator).subscribe(ALL_CHANGE_EVENTS, ReplayFrom::Tip);
    connected(&mut subscription).await;
    accounts
        .create(&record(json!({"Name": "one"})))
        .await
        .unwrap();
    accounts
        .create(&record(json!({"Name": "two"})))
        .await
        .unwrap();
    let first = next_event(&mut subscription).await;
    let second = next_event(&mut subscription).await;
    subscription.resume_after(first.replay_id);
    // A consumer busy for longer than the server waits for the next connect.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    match next_news(&mut subscription).await {
        StreamItem::Reconnecting { reason, .. } => {
            assert!(reason.contains("403::Unknown client"), "{reason}");
        }
        other => panic!("expected Reconnecting, got {other:?}"),
    }
    assert_eq!(
        connected(&mut subscription).await,
        ReplayFrom::After(first.replay_id)
    );
    assert_eq!(next_event(&mut subscription).await, second, "redelivered");
    accounts
        .create(&record(json!({"Name": "three"})))
        .await
        .unwrap();
    let third = next_event(&mut subscription).await;
    assert_eq!(third.fields["Name"], "three");
}

#[tokio::test]
async fn a_revoked_session_logs_in_again_and_loses_nothing() {
    let emulator = start_streaming(EmulatorConfig::default()).await;
    let writer = client(&emulator).sobject("Account");
    let mut subscription = transport(&emulator).subscribe(ALL_CHANGE_EVENTS, ReplayFrom::Tip);
    connected(&mut subscription).await;
    writer
        .create(&record(json!({"Name": "one"})))
        .await
        .unwrap();
    let first = next_event(&mut subscription).await;
    let logins_before = logins(&emulator);
    emulator.revoke_sessions(None, false);
    // The writer logs in again by itself; its event is made while the stream is refused.
    writer
        .create(&record(json!({"Name": "two"})))
        .await
        .unwrap();
    match next_news(&mut subscription).await {
        StreamItem::Reconnecting { reason, .. } => {
            assert!(reason.contains("401::Authentication invalid"), "{reason}");
        }
        other => panic!("expected Reconnecting, got {other:?}"),
    }
    assert_eq!(
        connected(&mut subscription).await,
        ReplayFrom::After(first.replay_id)
    );
    let second = next_event(&mut subscription).await;
    assert_eq!(second.fields["Name"], "two");
    assert_eq!(
        logins(&emulator) - logins_before,
        2,
        "one login for the writer, one for the stream"
    );
}

#[tokio::test]
async fn an_expired_replay_id_is_a_typed_error() {
    let emulator = start_streaming(EmulatorConfig {
        event_retention: Duration::from_millis(500),
        ..EmulatorConfig::default()
    })
    .await;
    let accounts = client(&emulator).sobject("Account");
    let transport = transport(&emulator);
    let mut subscription = transport.subscribe(ALL_CHANGE_EVENTS, ReplayFrom::Tip);
    connected(&mut subscription).await;
    accounts
        .create(&record(json!({"Name": "old"})))
        .await
        .unwrap();
    accounts
        .create(&record(json!({"Name": "older"})))
        .await
        .unwrap();
    let old = next_event(&mut subscription).await;
    // Resuming after the last expired event would miss nothing; after the one before, it would.
    next_event(&mut subscription).await;
    subscription.close().await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    accounts
        .create(&record(json!({"Name": "new"})))
        .await
        .unwrap();

    let mut stale = transport.subscribe(ALL_CHANGE_EVENTS, ReplayFrom::After(old.replay_id));
    let error = tokio::time::timeout(PATIENCE, stale.next())
        .await
        .unwrap()
        .unwrap_err();
    assert!(error.is_replay_id_invalid(), "{error}");
    assert!(
        error.to_string().contains(&old.replay_id.to_string()),
        "{error}"
    );
    let ended = stale.next().await.unwrap_err();
    assert!(!ended.is_replay_id_invalid(), "{ended}");
}

#[tokio::test]
async fn a_stalled_connect_is_abandoned_and_its_client_disconnected_before_the_next() {
    let emulator = start_streaming(EmulatorConfig::default()).await;
    let accounts = client(&emulator).sobject("Account");
    let options = CometDOptions {
        stall_timeout: Duration::from_secs(1),
        backoff: Backoff::new(Duration::from_millis(20), Duration::from_millis(100)),
        disconnect_timeout: Duration::from_secs(2),
    };
    let mut subscription = CometD::with_options(client(&emulator), options)
        .subscribe(ALL_CHANGE_EVENTS, ReplayFrom::Tip);
    connected(&mut subscription).await;
    accounts
        .create(&record(json!({"Name": "one"})))
        .await
        .unwrap();
    let first = next_event(&mut subscription).await;
    let stalled = emulator.cometd_clients();
    assert_eq!(emulator.stall_cometd(None, true), 1);
    accounts
        .create(&record(json!({"Name": "two"})))
        .await
        .unwrap();
    match next_news(&mut subscription).await {
        StreamItem::Reconnecting { reason, .. } => {
            assert!(
                reason.contains("no answer to a connect within 1s"),
                "{reason}"
            );
        }
        other => panic!("expected Reconnecting, got {other:?}"),
    }
    assert_eq!(
        connected(&mut subscription).await,
        ReplayFrom::After(first.replay_id)
    );
    let clients = emulator.cometd_clients();
    assert_eq!(clients.len(), 1, "the stalled client is gone: {clients:?}");
    assert_ne!(clients, stalled);
    let second = next_event(&mut subscription).await;
    assert_eq!(second.fields["Name"], "two");
    let quiet =
        tokio::time::timeout(Duration::from_millis(800), next_news(&mut subscription)).await;
    assert!(quiet.is_err(), "a second delivery: {quiet:?}");
}

#[tokio::test]
async fn a_dropped_connection_reconnects_without_losing_an_event() {
    let emulator = start_streaming(EmulatorConfig::default()).await;
    let accounts = client(&emulator).sobject("Account");
    let mut subscription = transport(&emulator).subscribe(ALL_CHANGE_EVENTS, ReplayFrom::Tip);
    connected(&mut subscription).await;
    accounts
        .create(&record(json!({"Name": "one"})))
        .await
        .unwrap();
    let first = next_event(&mut subscription).await;
    assert_eq!(emulator.drop_cometd_connects(None, 1), 1);
    accounts
        .create(&record(json!({"Name": "two"})))
        .await
        .unwrap();
    assert!(matches!(
        next_news(&mut subscription).await,
        StreamItem::Reconnecting { .. }
    ));
    assert_eq!(
        connected(&mut subscription).await,
        ReplayFrom::After(first.replay_id)
    );
    assert_eq!(next_event(&mut subscription).await.fields["Name"], "two");
    assert_eq!(emulator.cometd_clients().len(), 1);
}

#[tokio::test]
async fn a_second_subscription_of_a_channel_replaces_the_first_without_doubling() {
    let emulator = start_streaming(EmulatorConfig::default()).await;
    let accounts = client(&emulator).sobject("Account");
    let transport = transport(&emulator);
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
    assert_eq!(emulator.cometd_clients().len(), 1, "one Bayeux client");
    let quiet = tokio::time::timeout(Duration::from_millis(800), next_news(&mut new)).await;
    assert!(quiet.is_err(), "a second delivery: {quiet:?}");
}

#[tokio::test]
async fn gap_and_overflow_events_arrive_typed_without_values() {
    let emulator = start_streaming(EmulatorConfig::default()).await;
    let client = client(&emulator);
    let mut subscription = transport(&emulator).subscribe(ALL_CHANGE_EVENTS, ReplayFrom::Tip);
    connected(&mut subscription).await;
    let id = "001000000000001AAA".to_owned();
    emulator
        .inject_gap("Account", "GAP_UPDATE", vec![id.clone()])
        .unwrap();
    let gap = next_event(&mut subscription).await;
    assert_eq!(gap.header.change_type, ChangeType::GapUpdate);
    assert!(gap.header.change_type.is_gap());
    assert_eq!(gap.header.record_ids, [id]);
    assert!(gap.fields.is_empty(), "{:?}", gap.fields);

    emulator.event_bus().set_overflow_threshold(2);
    let records: Vec<Record> = (0..3)
        .map(|n| record(json!({"attributes": {"type": "Account"}, "Name": format!("bulk {n}")})))
        .collect();
    client.collections().create(&records).await.unwrap();
    let mut types = Vec::new();
    while !types.contains(&ChangeType::GapOverflow) {
        let event = next_event(&mut subscription).await;
        if event.header.change_type == ChangeType::GapOverflow {
            assert_eq!(event.header.entity_name, "Account");
            assert!(event.header.record_ids.is_empty());
        }
        types.push(event.header.change_type);
    }
    assert!(
        types
            .iter()
            .all(|t| matches!(t, ChangeType::Create | ChangeType::GapOverflow))
    );
}
