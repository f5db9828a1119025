//! Platform events over CometD against the emulator: a publish through REST create or
//! sObject Collections arrives on `/event/Order_Event__e` typed, with the `EventUuid` its
//! save result named and its own replay ids; an `allOrNone` request that rolls back
//! publishes nothing; a subscription resumes after a replay id.

use std::time::Duration;

use sfpg_salesforce::streaming::Backoff;
use sfpg_salesforce::streaming::{
    CometD, CometDOptions, EventTransport, PlatformEvent, ReplayFrom, StreamItem, Subscription,
    platform_event_channel,
};

use super::*;

const PATIENCE: Duration = Duration::from_secs(10);

async fn start_streaming() -> RunningEmulator {
    emulator::start(EmulatorConfig {
        org: OrgSource::Generated {
            records: 0,
            seed: 7,
        },
        cometd_connect_timeout: Duration::from_millis(300),
        ..EmulatorConfig::default()
    })
    .await
    .unwrap()
}

fn transport(emulator: &RunningEmulator) -> CometD {
    CometD::with_options(
        client(emulator),
        CometDOptions {
            stall_timeout: Duration::from_secs(5),
            backoff: Backoff::new(Duration::from_millis(20), Duration::from_millis(100)),
            disconnect_timeout: Duration::from_secs(2),
        },
    )
}

async fn next_news(subscription: &mut Box<dyn Subscription>) -> StreamItem {
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

async fn next_event(subscription: &mut Box<dyn Subscription>) -> PlatformEvent {
    match next_news(subscription).await {
        StreamItem::PlatformEvent(event) => *event,
        other => panic!("expected a platform event, got {other:?}"),
    }
}

fn order(number: &str) -> Record {
    record(
        json!({"attributes": {"type": "Order_Event__e"}, "Order_Number__c": number,
                  "Quantity__c": 2, "Has_Shipped__c": false}),
    )
}

#[tokio::test]
async fn published_events_arrive_typed_with_the_uuid_of_their_publish() {
    let emulator = start_streaming().await;
    let client = client(&emulator);
    let channel = platform_event_channel("Order_Event__e");
    let transport = transport(&emulator);
    let mut subscription = transport.subscribe(&channel, ReplayFrom::Tip);
    assert!(matches!(
        next_news(&mut subscription).await,
        StreamItem::Connected { .. }
    ));

    let results = client
        .collections()
        .all_or_none(true)
        .create(&[order("A-1")])
        .await
        .unwrap();
    let uuid = results[0]
        .event_uuid()
        .expect("OPERATION_ENQUEUED names the uuid");
    let id = results[0].id.clone().unwrap();
    assert!(id.as_str().starts_with("e01"), "{id}");
    // A request that rolls back publishes nothing.
    let rolled_back = client
        .collections()
        .all_or_none(true)
        .create(&[
            order("never"),
            record(json!({"attributes": {"type": "Contact"}, "FirstName": "No last name"})),
        ])
        .await
        .unwrap();
    assert!(rolled_back.iter().all(|r| !r.success));
    let rest_id = client
        .sobject("Order_Event__e")
        .create(&record(json!({"Order_Number__c": "A-2"})))
        .await
        .unwrap();

    let first = next_event(&mut subscription).await;
    assert_eq!(first.channel, channel);
    assert_eq!(first.event_uuid.as_deref(), Some(uuid));
    assert_eq!(first.fields["Order_Number__c"], "A-1");
    assert_eq!(first.fields["Quantity__c"], 2.0);
    assert_eq!(first.fields["Has_Shipped__c"], false);
    assert!(
        first.created_by_id.starts_with("005"),
        "{}",
        first.created_by_id
    );
    assert!(first.created_date.ends_with('Z'), "{}", first.created_date);
    let second = next_event(&mut subscription).await;
    assert_eq!(
        second.fields["Order_Number__c"], "A-2",
        "the rolled-back one never came"
    );
    assert!(second.replay_id > first.replay_id);
    assert!(rest_id.as_str().starts_with("e01"));
    subscription.close().await;

    let mut resumed = transport.subscribe(&channel, ReplayFrom::After(first.replay_id));
    assert!(matches!(
        next_news(&mut resumed).await,
        StreamItem::Connected { .. }
    ));
    assert_eq!(next_event(&mut resumed).await.replay_id, second.replay_id);
    resumed.close().await;
}

#[tokio::test]
async fn an_unknown_event_channel_is_refused() {
    let emulator = start_streaming().await;
    let mut subscription =
        transport(&emulator).subscribe(&platform_event_channel("Nope__e"), ReplayFrom::Tip);
    let error = tokio::time::timeout(PATIENCE, async {
        loop {
            match subscription.next().await {
                Ok(_) => continue,
                Err(error) => return error,
            }
        }
    })
    .await
    .unwrap();
    assert!(error.to_string().contains("does not exist"), "{error}");
}
