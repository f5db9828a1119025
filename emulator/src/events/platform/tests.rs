//! The platform event store: per-topic replay ids, retention, prepare/commit, readers.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::*;
use crate::org::ManualClock;

fn store(clock: &ManualClock) -> PlatformEventStore {
    let store = PlatformEventStore::new(Duration::from_secs(3600), Arc::new(clock.clone()));
    store.define_topic("Order_Event__e", "e01").unwrap();
    store.define_topic("Low_Ink__e", "e02").unwrap();
    store
}

fn user() -> Id {
    Id::parse("0058d0000000001").unwrap()
}

fn fields(number: &str) -> Map<String, Value> {
    let Value::Object(fields) = json!({"Order_Number__c": number, "Has_Shipped__c": false}) else {
        unreachable!()
    };
    fields
}

#[test]
fn each_topic_has_its_own_increasing_replay_ids() {
    let clock = ManualClock::new(chrono::Utc::now());
    let store = store(&clock);
    let start = store.start("Order_Event__e", ReplayStart::Tip).unwrap();
    let (id1, r1, uuid1) = store
        .publish("Order_Event__e", fields("1"), user())
        .unwrap();
    let (_, r2, uuid2) = store
        .publish("Order_Event__e", fields("2"), user())
        .unwrap();
    let (_, other, _) = store.publish("Low_Ink__e", fields("x"), user()).unwrap();
    assert!(r1 > start && r2 > r1);
    assert_ne!(uuid1, uuid2);
    assert_eq!(uuid1.len(), 36);
    assert_eq!(id1.key_prefix(), "e01");
    let orders = store.after("Order_Event__e", start, 10).unwrap();
    assert_eq!(
        orders.len(),
        2,
        "the other topic's event is not on this one"
    );
    assert_eq!(orders[0].fields["Order_Number__c"], "1");
    assert_eq!(orders[0].created_by_id, user());
    let inks = store.after("Low_Ink__e", 0, 10).unwrap();
    assert_eq!(inks.len(), 1);
    assert_eq!(inks[0].replay_id, other);
    assert_eq!(
        store.publish("Nope__e", fields("1"), user()),
        Err(PlatformError::UnknownTopic("Nope__e".to_owned()))
    );
}

#[test]
fn prepared_events_are_published_only_when_committed() {
    let clock = ManualClock::new(chrono::Utc::now());
    let store = store(&clock);
    let start = store.start("Order_Event__e", ReplayStart::Tip).unwrap();
    let first = store
        .prepare("Order_Event__e", fields("1"), user())
        .unwrap();
    let dropped = store
        .prepare("Order_Event__e", fields("2"), user())
        .unwrap();
    assert!(store.after("Order_Event__e", start, 10).unwrap().is_empty());
    let (id, uuid) = (first.id, first.event_uuid.clone());
    drop(dropped); // its transaction rolled back
    let replay_ids = store.publish_prepared(vec![first]).unwrap();
    let published = store.after("Order_Event__e", start, 10).unwrap();
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].id, id);
    assert_eq!(published[0].event_uuid, uuid);
    assert_eq!(published[0].replay_id, replay_ids[0]);
}

#[test]
fn retention_expires_events_and_their_replay_ids() {
    let clock = ManualClock::new(chrono::Utc::now());
    let store = store(&clock);
    let (_, r1, _) = store
        .publish("Order_Event__e", fields("1"), user())
        .unwrap();
    let (_, r2, _) = store
        .publish("Order_Event__e", fields("2"), user())
        .unwrap();
    assert_eq!(
        store.start("Order_Event__e", ReplayStart::After(r1)),
        Ok(r1)
    );
    assert!(
        store
            .start("Order_Event__e", ReplayStart::After(r2 + 5))
            .is_err()
    );
    clock.advance(chrono::Duration::hours(2));
    assert!(store.after("Order_Event__e", 0, 10).unwrap().is_empty());
    assert_eq!(
        store.start("Order_Event__e", ReplayStart::After(r1)),
        Err(PlatformError::InvalidReplayId(r1))
    );
    assert_eq!(store.start("Order_Event__e", ReplayStart::Retained), Ok(r2));
}

#[tokio::test]
async fn watchers_wake_on_their_topic() {
    let clock = ManualClock::new(chrono::Utc::now());
    let store = store(&clock);
    let mut watch = store.watch("Order_Event__e").unwrap();
    watch.borrow_and_update();
    let (_, replay_id, _) = store
        .publish("Order_Event__e", fields("1"), user())
        .unwrap();
    tokio::time::timeout(Duration::from_secs(1), watch.changed())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(*watch.borrow(), replay_id);
}

#[test]
fn the_cometd_message_is_salesforce_s() {
    let clock = ManualClock::new(chrono::Utc::now());
    let store = store(&clock);
    let (_, replay_id, uuid) = store
        .publish("Order_Event__e", fields("7"), user())
        .unwrap();
    let event = store.after("Order_Event__e", 0, 1).unwrap().remove(0);
    let data = event.cometd_data("schema-id");
    assert_eq!(data["event"]["replayId"], replay_id);
    assert_eq!(data["event"]["EventUuid"], uuid.as_str());
    assert_eq!(data["payload"]["Order_Number__c"], "7");
    assert_eq!(data["payload"]["CreatedById"], user().as_str());
    assert!(
        data["payload"]["CreatedDate"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
}
