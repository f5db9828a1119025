//! Change Data Capture over the Pub/Sub API (gRPC) against the emulator's `eventbus.v1`
//! server: the same change and platform events as CometD for the same writes, flow control
//! as the server counts it, a held batch let go and resumed, a long idle stream kept alive by
//! keepalives, and the watchdog (recovery from errors in `pubsub_recovery`).

use std::time::Duration;

use serde_json::Value;

use sfpg_emulator::http::pubsub::StreamView;
use sfpg_salesforce::streaming::{
    ALL_CHANGE_EVENTS, Backoff, ChangeEvent, EventTransport, PubSub, PubSubOptions, ReplayFrom,
    StreamItem,
};

use super::*;

/// Change events need an org to describe them and the streaming set-up CometD's tests use.
pub(super) use super::streaming::{
    PATIENCE, connected, next_event, next_news, reconnecting, start_streaming, transport as cometd,
};

pub(super) fn quick() -> PubSubOptions {
    PubSubOptions {
        backoff: Backoff::new(Duration::from_millis(20), Duration::from_millis(100)),
        connect_timeout: Duration::from_secs(5),
        ..PubSubOptions::default()
    }
}

pub(super) fn pubsub_with(emulator: &RunningEmulator, options: PubSubOptions) -> PubSub {
    PubSub::with_options(client(emulator), emulator.pubsub_endpoint(), options).unwrap()
}

pub(super) fn pubsub(emulator: &RunningEmulator) -> PubSub {
    pubsub_with(emulator, quick())
}

pub(super) fn streams(emulator: &RunningEmulator) -> Vec<StreamView> {
    emulator.pubsub_streams()
}

/// What the two transports may differ in: CometD carries no `nulledFields` or
/// `diffFields`, and each names the schema its own way.
fn transport_neutral(mut event: ChangeEvent) -> ChangeEvent {
    event.header.nulled_fields.clear();
    event.header.diff_fields.clear();
    event.schema = None;
    event
}

#[tokio::test]
async fn pubsub_yields_the_events_cometd_yields_for_the_same_writes() {
    let emulator = start_streaming(EmulatorConfig::default()).await;
    let client = client(&emulator);
    let cometd_transport = cometd(&emulator);
    let pubsub_transport = pubsub(&emulator);
    let mut over_cometd = cometd_transport.subscribe(ALL_CHANGE_EVENTS, ReplayFrom::Tip);
    let mut over_pubsub = pubsub_transport.subscribe(ALL_CHANGE_EVENTS, ReplayFrom::Tip);
    connected(&mut over_cometd).await;
    connected(&mut over_pubsub).await;

    let accounts = client.sobject("Account");
    let id = accounts
        .create(&record(json!({
            "Name": "Parity", "BillingCity": "Paris", "BillingStreet": "1 rue", "Phone": "555",
            "NumberOfEmployees": 12, "AnnualRevenue": 1500000.5, "Type": "Customer"
        })))
        .await
        .unwrap();
    accounts
        .update(
            &id,
            &record(json!({"Phone": null, "BillingCity": "Lyon", "NumberOfEmployees": 13})),
        )
        .await
        .unwrap();
    let contacts = client.sobject("Contact");
    let contact = contacts
        .create(&record(
            json!({"FirstName": "Ada", "LastName": "Lovelace", "Birthdate": "1815-12-10"}),
        ))
        .await
        .unwrap();
    contacts
        .update(
            &contact,
            &record(json!({"FirstName": null, "Birthdate": "1815-12-11"})),
        )
        .await
        .unwrap();
    accounts.delete(&id).await.unwrap();
    emulator
        .inject_gap("Account", "GAP_UPDATE", vec![id.to_string()])
        .unwrap();

    for _ in 0..6 {
        let from_cometd = next_event(&mut over_cometd).await;
        let from_pubsub = next_event(&mut over_pubsub).await;
        assert_eq!(
            transport_neutral(from_pubsub.clone()),
            transport_neutral(from_cometd.clone()),
            "{:?} {}",
            from_cometd.header.change_type,
            from_cometd.header.entity_name
        );
    }
    let quiet = tokio::time::timeout(Duration::from_millis(500), next_news(&mut over_pubsub)).await;
    assert!(quiet.is_err(), "no more than CometD: {quiet:?}");
}

#[tokio::test]
async fn an_update_over_pubsub_names_its_nulled_fields_and_compound_parts() {
    let emulator = start_streaming(EmulatorConfig::default()).await;
    let accounts = client(&emulator).sobject("Account");
    let mut subscription = pubsub(&emulator).subscribe(ALL_CHANGE_EVENTS, ReplayFrom::Tip);
    connected(&mut subscription).await;
    let id = accounts
        .create(&record(
            json!({"Name": "Nulls", "BillingCity": "Paris", "Phone": "555"}),
        ))
        .await
        .unwrap();
    accounts
        .update(&id, &record(json!({"Phone": null, "BillingCity": "Lyon"})))
        .await
        .unwrap();
    let created = next_event(&mut subscription).await;
    assert_eq!(created.fields["BillingAddress"]["City"], "Paris");
    assert!(created.schema.is_some());
    let updated = next_event(&mut subscription).await;
    assert_eq!(updated.fields.get("Phone"), Some(&Value::Null));
    assert_eq!(updated.fields["BillingAddress"], json!({"City": "Lyon"}));
    assert!(!updated.fields.contains_key("Name"), "only changed fields");
    assert_eq!(updated.header.nulled_fields, ["Phone"]);
    assert!(
        updated
            .header
            .changed_fields
            .contains(&"BillingAddress.City".to_owned()),
        "{:?}",
        updated.header.changed_fields
    );
}

#[tokio::test]
async fn a_slow_consumer_never_has_more_than_100_events_outstanding() {
    let emulator = start_streaming(EmulatorConfig::default()).await;
    let client = client(&emulator);
    let mut subscription = pubsub(&emulator).subscribe(ALL_CHANGE_EVENTS, ReplayFrom::Tip);
    connected(&mut subscription).await;
    for batch in 0..2 {
        let records: Vec<Record> = (0..175)
            .map(|n| {
                record(
                    json!({"attributes": {"type": "Account"}, "Name": format!("slow {batch}-{n}")}),
                )
            })
            .collect();
        client.collections().create(&records).await.unwrap();
    }
    let mut last = None;
    for consumed in 1..=350u64 {
        let event = next_event(&mut subscription).await;
        assert!(Some(event.replay_id) > last, "in order, once");
        last = Some(event.replay_id);
        if consumed % 25 == 0 {
            // A slow consumer: the server must not be asked for more meanwhile.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let open = streams(&emulator);
        let [stream] = &open[..] else {
            panic!("one stream: {open:?}");
        };
        // Asked for in all, less what this consumer took: pending at the server plus what
        // it delivered and the consumer has not taken yet.
        let outstanding = u64::try_from(stream.pending).unwrap() + stream.delivered - consumed;
        assert!(
            outstanding <= 100,
            "{outstanding} outstanding after {consumed} consumed: {stream:?}"
        );
        assert!(stream.max_pending <= 100, "{stream:?}");
    }
    let quiet =
        tokio::time::timeout(Duration::from_millis(500), next_news(&mut subscription)).await;
    assert!(quiet.is_err(), "350 events, no more: {quiet:?}");
}

#[tokio::test]
async fn a_consumer_that_holds_a_full_batch_lets_the_stream_go_and_loses_nothing() {
    let emulator = start_streaming(EmulatorConfig {
        pubsub_idle_close: Duration::from_secs(2),
        ..EmulatorConfig::default()
    })
    .await;
    let client = client(&emulator);
    let options = PubSubOptions {
        starve_limit: Duration::from_millis(500),
        ..quick()
    };
    let mut subscription =
        pubsub_with(&emulator, options).subscribe(ALL_CHANGE_EVENTS, ReplayFrom::Tip);
    connected(&mut subscription).await;
    let records: Vec<Record> = (0..150)
        .map(|n| record(json!({"attributes": {"type": "Account"}, "Name": format!("held {n}")})))
        .collect();
    client.collections().create(&records).await.unwrap();
    let first = next_event(&mut subscription).await;
    subscription.resume_after(first.replay_id);
    // 99 delivered and held, one more requested and delivered: nothing left requested.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        streams(&emulator).is_empty(),
        "let go before the server's idle close: {:?}",
        streams(&emulator)
    );
    let mut names = vec![first.fields["Name"].clone()];
    let mut reconnected = None;
    while names.len() < 150 {
        match next_news(&mut subscription).await {
            StreamItem::Event(event) => {
                if !names.contains(&event.fields["Name"]) {
                    names.push(event.fields["Name"].clone());
                }
            }
            StreamItem::Connected { from } => reconnected = Some(from),
            other => panic!("{other:?}"),
        }
    }
    assert!(
        reconnected.is_some(),
        "subscribed again once the batch was consumed"
    );
    assert_eq!(names.len(), 150);
}

#[tokio::test]
async fn a_long_idle_stream_lives_on_keepalives() {
    let emulator = start_streaming(EmulatorConfig {
        pubsub_keepalive: Duration::from_millis(200),
        ..EmulatorConfig::default()
    })
    .await;
    idle_for(&emulator, Duration::from_secs(4), Duration::from_secs(1)).await;
}

/// Ten minutes of idleness at Salesforce's own timers (keepalive 270 s, watchdog 300 s,
/// idle close 60 s): `cargo test -p sfpg-salesforce --test emulator -- --ignored ten_minutes`.
#[tokio::test]
#[ignore = "takes ten minutes"]
async fn ten_minutes_of_idleness_at_salesforce_timers() {
    let emulator = start_streaming(EmulatorConfig {
        pubsub_keepalive: Duration::from_secs(270),
        ..EmulatorConfig::default()
    })
    .await;
    idle_for(
        &emulator,
        Duration::from_secs(600),
        Duration::from_secs(300),
    )
    .await;
}

/// Subscribes, stays idle for `idle` with a watchdog of `watchdog`, and expects only quiet
/// keepalives throughout, then a write's event on the same stream.
async fn idle_for(emulator: &RunningEmulator, idle: Duration, watchdog: Duration) {
    let options = PubSubOptions {
        watchdog,
        ..quick()
    };
    let mut subscription =
        pubsub_with(emulator, options).subscribe(ALL_CHANGE_EVENTS, ReplayFrom::Tip);
    connected(&mut subscription).await;
    let stream_id = streams(emulator)[0].id;
    let until = tokio::time::Instant::now() + idle;
    let mut keepalives = 0;
    while tokio::time::Instant::now() < until {
        match tokio::time::timeout_at(until, subscription.next()).await {
            Err(_) => break,
            Ok(Ok(StreamItem::Idle)) => keepalives += 1,
            Ok(other) => panic!("an idle stream yielded {other:?}"),
        }
    }
    assert!(keepalives >= 2, "{keepalives} keepalives");
    assert_eq!(streams(emulator).len(), 1);
    assert_eq!(
        streams(emulator)[0].id,
        stream_id,
        "the same stream throughout"
    );
    client(emulator)
        .sobject("Account")
        .create(&record(json!({"Name": "after the quiet"})))
        .await
        .unwrap();
    assert_eq!(
        next_event(&mut subscription).await.fields["Name"],
        "after the quiet"
    );
}

#[tokio::test]
async fn a_silent_stream_is_dead_to_the_watchdog_and_resubscribed() {
    let emulator = start_streaming(EmulatorConfig {
        pubsub_keepalive: Duration::from_secs(60),
        ..EmulatorConfig::default()
    })
    .await;
    let options = PubSubOptions {
        watchdog: Duration::from_millis(700),
        ..quick()
    };
    let mut subscription =
        pubsub_with(&emulator, options).subscribe(ALL_CHANGE_EVENTS, ReplayFrom::Tip);
    connected(&mut subscription).await;
    let first_stream = streams(&emulator)[0].id;
    let reason = reconnecting(&mut subscription).await;
    assert!(reason.contains("no response"), "{reason}");
    assert_eq!(connected(&mut subscription).await, ReplayFrom::Tip);
    let now = streams(&emulator);
    assert_eq!(now.len(), 1, "the dead call is gone: {now:?}");
    assert_ne!(now[0].id, first_stream);
}

#[tokio::test]
async fn platform_events_over_pubsub_are_what_cometd_yields() {
    let emulator = start_streaming(EmulatorConfig::default()).await;
    let client = client(&emulator);
    let channel = sfpg_salesforce::streaming::platform_event_channel("Order_Event__e");
    let cometd_transport = cometd(&emulator);
    let pubsub_transport = pubsub(&emulator);
    let mut over_cometd = cometd_transport.subscribe(&channel, ReplayFrom::Tip);
    let mut over_pubsub = pubsub_transport.subscribe(&channel, ReplayFrom::Tip);
    connected(&mut over_cometd).await;
    connected(&mut over_pubsub).await;
    let results = client
        .collections()
        .create(&[
            record(
                json!({"attributes": {"type": "Order_Event__e"}, "Order_Number__c": "A-1",
                          "Quantity__c": 2, "Has_Shipped__c": false}),
            ),
            record(json!({"attributes": {"type": "Order_Event__e"}, "Order_Number__c": "A-2"})),
        ])
        .await
        .unwrap();
    for result in &results {
        let (StreamItem::PlatformEvent(from_cometd), StreamItem::PlatformEvent(from_pubsub)) = (
            next_news(&mut over_cometd).await,
            next_news(&mut over_pubsub).await,
        ) else {
            panic!("platform events expected");
        };
        assert_eq!(from_pubsub, from_cometd);
        assert_eq!(from_pubsub.event_uuid.as_deref(), result.event_uuid());
    }
    let quiet = tokio::time::timeout(Duration::from_millis(500), next_news(&mut over_pubsub)).await;
    assert!(quiet.is_err(), "no more than CometD: {quiet:?}");
}
