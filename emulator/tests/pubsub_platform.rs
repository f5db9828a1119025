//! Platform events over the Pub/Sub API (gRPC, a real socket): the topic and its Avro
//! schema from the event object's describe, Publish and PublishStream, and delivery to
//! Pub/Sub and CometD subscribers alike, whichever API published.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use apache_avro::Schema;
use apache_avro::types::Value as Avro;
use serde_json::{Value, json};
use sfpg_emulator::http::EmulatorConfig;
use sfpg_pubsub_proto::{
    ProducerEvent, PublishRequest, ReplayPreset, TopicRequest, replay_id_position,
};

use common::Harness;
use common::cometd::Bayeux;
use common::pubsub::{PubSub, fetch};

const TOPIC: &str = "/event/Order_Event__e";

fn quick() -> EmulatorConfig {
    EmulatorConfig {
        cometd_connect_timeout: Duration::from_millis(300),
        ..EmulatorConfig::default()
    }
}

/// The topic's schema id and parsed schema.
async fn topic_schema(ps: &mut PubSub) -> (String, Schema) {
    let info = ps
        .client
        .get_topic(ps.request(TopicRequest {
            topic_name: TOPIC.to_owned(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(info.can_publish && info.can_subscribe);
    let schema = ps.schema(&info.schema_id).await;
    (info.schema_id, schema)
}

/// An Order_Event__e payload written with `schema`.
fn order(schema: &Schema, number: &str, shipped_at_ms: Option<i64>) -> Vec<u8> {
    let some = |v: Avro| Avro::Union(1, Box::new(v));
    let none = || Avro::Union(0, Box::new(Avro::Null));
    let record = Avro::Record(vec![
        ("CreatedDate".into(), Avro::Long(0)),
        (
            "CreatedById".into(),
            Avro::String("005000000000000AAA".into()),
        ),
        ("Order_Number__c".into(), some(Avro::String(number.into()))),
        ("Has_Shipped__c".into(), some(Avro::Boolean(true))),
        ("Quantity__c".into(), some(Avro::Double(3.0))),
        ("Amount__c".into(), none()),
        // 2024-03-05 at midnight UTC.
        ("Ship_Date__c".into(), some(Avro::Long(1_709_596_800_000))),
        (
            "Shipped_At__c".into(),
            shipped_at_ms.map_or_else(none, |ms| some(Avro::Long(ms))),
        ),
        ("Note__c".into(), none()),
    ]);
    apache_avro::writer::datum::GenericDatumWriter::builder(schema)
        .build()
        .unwrap()
        .write_value_to_vec(record)
        .unwrap()
}

fn event(id: &str, schema_id: &str, payload: Vec<u8>) -> ProducerEvent {
    ProducerEvent {
        id: id.to_owned(),
        schema_id: schema_id.to_owned(),
        payload,
        headers: Vec::new(),
    }
}

#[tokio::test]
async fn the_topic_schema_follows_the_event_objects_describe() {
    let h = Harness::new().await;
    let mut ps = PubSub::connect(&h).await;
    let (schema_id, _) = topic_schema(&mut ps).await;
    let request = ps.request(sfpg_pubsub_proto::SchemaRequest { schema_id });
    let info = ps.client.get_schema(request).await.unwrap().into_inner();
    let json: Value = serde_json::from_str(&info.schema_json).unwrap();
    assert_eq!(json["name"], "Order_Event__e");
    assert_eq!(json["namespace"], "com.sforce.eventbus");
    let names: Vec<&str> = json["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "CreatedDate",
            "CreatedById",
            "Order_Number__c",
            "Has_Shipped__c",
            "Quantity__c",
            "Amount__c",
            "Ship_Date__c",
            "Shipped_At__c",
            "Note__c"
        ]
    );
    assert_eq!(
        json["fields"][0],
        json!({"name": "CreatedDate", "type": "long", "doc": "CreatedDate:DateTime"})
    );
    assert_eq!(
        json["fields"][1],
        json!({"name": "CreatedById", "type": "string", "doc": "CreatedBy:EntityId"})
    );
    assert_eq!(json["fields"][3]["type"], json!(["null", "boolean"]));
    assert_eq!(json["fields"][7]["doc"], "Data:DateTime");
}

#[tokio::test]
async fn a_pubsub_publish_reaches_pubsub_and_cometd_subscribers() {
    let h = Harness::with(quick()).await;
    let mut ps = PubSub::connect(&h).await;
    let (schema_id, schema) = topic_schema(&mut ps).await;
    let mut sub = ps
        .subscribe(fetch(TOPIC, ReplayPreset::Latest, None, 10))
        .await
        .unwrap();
    let mut bayeux = Bayeux::handshake(&h).await;
    assert_eq!(bayeux.subscribe(TOPIC, -1).await["successful"], true);
    bayeux.connect().await;

    let shipped_at = 1_709_640_000_123;
    let request = PublishRequest {
        topic_name: TOPIC.to_owned(),
        events: vec![
            event("first", &schema_id, order(&schema, "A-1", Some(shipped_at))),
            event("broken", &schema_id, vec![0xff, 0x01]),
            event("second", &schema_id, order(&schema, "A-2", None)),
        ],
        auth_refresh: String::new(),
    };
    let response = ps
        .client
        .publish(ps.request(request))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.schema_id, schema_id);
    let keys: Vec<&str> = response
        .results
        .iter()
        .map(|r| r.correlation_key.as_str())
        .collect();
    assert_eq!(keys, ["first", "broken", "second"]);
    let error = response.results[1]
        .error
        .as_ref()
        .expect("an unreadable payload fails");
    assert_eq!(error.code, sfpg_pubsub_proto::ErrorCode::Publish as i32);
    let published: Vec<i64> = [&response.results[0], &response.results[2]]
        .iter()
        .map(|r| {
            assert!(r.error.is_none(), "{r:?}");
            replay_id_position(&r.replay_id).unwrap()
        })
        .collect();
    assert!(published[0] < published[1]);

    let (events, _) = sub.events(2).await;
    let delivered: Vec<i64> = events
        .iter()
        .map(|e| replay_id_position(&e.replay_id).unwrap())
        .collect();
    assert_eq!(delivered, published);
    let body = ps.decode(&events[0]).await;
    assert_eq!(body["Order_Number__c"], Avro::String("A-1".into()));
    assert_eq!(body["Has_Shipped__c"], Avro::Boolean(true));
    assert_eq!(body["Quantity__c"], Avro::Double(3.0));
    assert_eq!(body["Ship_Date__c"], Avro::Long(1_709_596_800_000));
    assert_eq!(body["Shipped_At__c"], Avro::Long(shipped_at));
    assert_eq!(body["Amount__c"], Avro::Null);
    // CreatedById and CreatedDate are the server's, not the publisher's.
    let user = h.emulator.user_id(&h.emulator.users()[0].username).unwrap();
    assert_eq!(body["CreatedById"], Avro::String(user));
    assert!(matches!(body["CreatedDate"], Avro::Long(ms) if ms > 1_600_000_000_000));

    let over_cometd = bayeux.events(2).await;
    let cometd_ids: Vec<i64> = over_cometd
        .iter()
        .map(|e| e["data"]["event"]["replayId"].as_i64().unwrap())
        .collect();
    assert_eq!(cometd_ids, published);
    let payload = &over_cometd[0]["data"]["payload"];
    assert_eq!(payload["Order_Number__c"], "A-1");
    assert_eq!(
        over_cometd[0]["data"]["event"]["EventUuid"],
        events[0].event.as_ref().unwrap().id.as_str(),
        "the Pub/Sub event id is the EventUuid"
    );
}

#[tokio::test]
async fn a_rest_publish_reaches_a_pubsub_subscriber_and_publish_stream_answers_each_request() {
    let h = Harness::new().await;
    let mut ps = PubSub::connect(&h).await;
    let (schema_id, schema) = topic_schema(&mut ps).await;
    let mut sub = ps
        .subscribe(fetch(TOPIC, ReplayPreset::Latest, None, 10))
        .await
        .unwrap();
    h.create(
        "Order_Event__e",
        json!({"Order_Number__c": "R-1", "Shipped_At__c": "2024-03-05T12:00:00.000Z"}),
    )
    .await;
    let (events, _) = sub.events(1).await;
    let body = ps.decode(&events[0]).await;
    assert_eq!(body["Order_Number__c"], Avro::String("R-1".into()));
    assert_eq!(body["Shipped_At__c"], Avro::Long(1_709_640_000_000));
    assert_eq!(body["Has_Shipped__c"], Avro::Boolean(false));

    let (requests, rx) = tokio::sync::mpsc::channel(4);
    for number in ["S-1", "S-2"] {
        requests
            .send(PublishRequest {
                topic_name: TOPIC.to_owned(),
                events: vec![event(number, &schema_id, order(&schema, number, None))],
                auth_refresh: String::new(),
            })
            .await
            .unwrap();
    }
    drop(requests);
    let stream =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) });
    let mut responses = ps
        .client
        .publish_stream(ps.request(stream))
        .await
        .unwrap()
        .into_inner();
    let mut keys = Vec::new();
    while let Some(response) = responses.message().await.unwrap() {
        assert!(response.results[0].error.is_none());
        keys.push(response.results[0].correlation_key.clone());
    }
    assert_eq!(keys, ["S-1", "S-2"]);
    let (events, _) = sub.events(2).await;
    let mut numbers = Vec::new();
    for event in &events {
        numbers.push(ps.decode(event).await["Order_Number__c"].clone());
    }
    assert_eq!(
        numbers,
        [Avro::String("S-1".into()), Avro::String("S-2".into())]
    );
}
