//! The Pub/Sub API (gRPC) over a real socket, with the generated tonic client: topics and
//! schemas, Subscribe with each replay preset, demand accounting, keepalives, the idle
//! close, the documented errors in the `error-code` trailer, auth, the admin faults, and
//! the same events in the same order as CometD.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use apache_avro::types::Value as Avro;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sfpg_emulator::http::EmulatorConfig;
use sfpg_pubsub_proto::{ReplayPreset, TopicRequest, replay_id_position};
use tonic::Code;

use common::cometd::Bayeux;
use common::pubsub::{PubSub, error_code, fetch, more, record};
use common::{API, Harness};

const ACCOUNTS: &str = "/data/AccountChangeEvent";
const ALL: &str = "/data/ChangeEvents";

fn quick(keepalive_ms: u64, idle_close_ms: u64) -> EmulatorConfig {
    EmulatorConfig {
        pubsub_keepalive: Duration::from_millis(keepalive_ms),
        pubsub_idle_close: Duration::from_millis(idle_close_ms),
        cometd_connect_timeout: Duration::from_millis(300),
        ..EmulatorConfig::default()
    }
}

fn replay(bytes: &[u8]) -> i64 {
    assert_eq!(bytes.len(), 8, "replay ids are 8 bytes");
    replay_id_position(bytes).unwrap()
}

fn strings(value: &Avro) -> Vec<String> {
    match value {
        Avro::Array(items) => items
            .iter()
            .map(|v| match v {
                Avro::String(s) => s.clone(),
                other => panic!("not a string: {other:?}"),
            })
            .collect(),
        other => panic!("not an array: {other:?}"),
    }
}

#[tokio::test]
async fn topics_and_schemas_describe_change_events() {
    let h = Harness::new().await;
    let mut ps = PubSub::connect(&h).await;
    let info = ps
        .client
        .get_topic(ps.request(TopicRequest {
            topic_name: ACCOUNTS.to_owned(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.topic_name, ACCOUNTS);
    assert_eq!(info.tenant_guid, h.emulator.org_id());
    assert!(info.can_subscribe && !info.can_publish);
    assert_eq!(info.schema_id.len(), 22);
    assert!(!info.rpc_id.is_empty());

    let request = ps.request(sfpg_pubsub_proto::SchemaRequest {
        schema_id: info.schema_id.clone(),
    });
    let schema = ps.client.get_schema(request).await.unwrap().into_inner();
    let json: Value = serde_json::from_str(&schema.schema_json).unwrap();
    assert_eq!(json["name"], "AccountChangeEvent");
    assert_eq!(json["namespace"], "com.sforce.eventbus");
    let fields = json["fields"].as_array().unwrap();
    assert_eq!(fields[0]["name"], "ChangeEventHeader");
    let field = |name: &str| fields.iter().find(|f| f["name"] == name).cloned().unwrap();
    assert_eq!(
        field("Name"),
        json!({"name": "Name", "type": ["null", "string"], "doc": "Data:Text", "default": null})
    );
    assert_eq!(field("CreatedDate")["type"], json!(["null", "long"]));
    assert_eq!(field("CreatedDate")["doc"], "CreatedDate:DateTime");
    assert_eq!(field("SLAExpirationDate__c")["doc"], "Data:DateOnly");
    assert_eq!(field("NumberOfEmployees")["type"], json!(["null", "int"]));
    let billing = field("BillingAddress");
    assert_eq!(billing["type"][1]["name"], "Address");
    assert_eq!(billing["type"][1]["fields"][1]["name"], "City");
    // The second address reuses the record type by name.
    assert_eq!(field("ShippingAddress")["type"], json!(["null", "Address"]));
    for absent in ["Id", "IsDeleted", "SystemModstamp", "BillingCity"] {
        assert!(!fields.iter().any(|f| f["name"] == absent), "{absent}");
    }

    let missing = ps
        .client
        .get_topic(ps.request(TopicRequest {
            topic_name: "/data/NoSuchChangeEvent".to_owned(),
        }))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    assert_eq!(
        error_code(&missing),
        "sfdc.platform.eventbus.grpc.topic.not.found"
    );
    assert!(
        missing.message().contains("rpcId: "),
        "{}",
        missing.message()
    );
}

#[tokio::test]
async fn subscribe_delivers_avro_change_events_with_field_bitmaps() {
    let h = Harness::new().await;
    let mut ps = PubSub::connect(&h).await;
    let mut sub = ps
        .subscribe(fetch(ACCOUNTS, ReplayPreset::Latest, None, 10))
        .await
        .unwrap();
    let id = h
        .create(
            "Account",
            json!({"Name": "Avro", "BillingCity": "Paris", "Phone": "555", "NumberOfEmployees": 7,
                "SLAExpirationDate__c": "2024-03-05"}),
        )
        .await;
    let (events, response) = sub.events(1).await;
    assert_eq!(response.pending_num_requested, 9);
    assert_eq!(
        replay(&response.latest_replay_id),
        replay(&events[0].replay_id)
    );
    let body = ps.decode(&events[0]).await;
    let header = record(body["ChangeEventHeader"].clone());
    assert_eq!(header["entityName"], Avro::String("Account".into()));
    assert_eq!(header["changeType"], Avro::Enum(0, "CREATE".into()));
    assert_eq!(strings(&header["recordIds"]), std::slice::from_ref(&id));
    assert_eq!(body["Name"], Avro::String("Avro".into()));
    assert_eq!(body["NumberOfEmployees"], Avro::Int(7));
    // 2024-03-05T00:00:00Z in epoch milliseconds.
    assert_eq!(body["SLAExpirationDate__c"], Avro::Long(1_709_596_800_000));
    assert!(matches!(body["CreatedDate"], Avro::Long(ms) if ms > 1_600_000_000_000));
    assert_eq!(body["Industry"], Avro::Null, "fields never set are null");
    let billing = record(body["BillingAddress"].clone());
    assert_eq!(billing["City"], Avro::String("Paris".into()));
    assert_eq!(billing["Street"], Avro::Null);

    let response = h
        .send_json(
            Method::PATCH,
            &format!("{API}/sobjects/Account/{id}"),
            &json!({"Phone": null, "BillingCity": "Lyon"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let (events, _) = sub.events(1).await;
    let body = ps.decode(&events[0]).await;
    let header = record(body["ChangeEventHeader"].clone());
    assert_eq!(header["changeType"], Avro::Enum(1, "UPDATE".into()));
    assert_eq!(body["Name"], Avro::Null, "unchanged fields are null");
    assert_eq!(body["Phone"], Avro::Null);
    assert_eq!(
        record(body["BillingAddress"].clone())["City"],
        Avro::String("Lyon".into())
    );
    // The bitmaps name schema positions: decode them against the schema's field order.
    let schema: Value = {
        let id = &events[0].event.as_ref().unwrap().schema_id;
        let request = ps.request(sfpg_pubsub_proto::SchemaRequest {
            schema_id: id.clone(),
        });
        let info = ps.client.get_schema(request).await.unwrap().into_inner();
        serde_json::from_str(&info.schema_json).unwrap()
    };
    let names: Vec<String> = schema["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_owned())
        .collect();
    let position = |name: &str| names.iter().position(|n| n == name).unwrap();
    let bit = |name: &str| 1u128 << position(name);
    let top = |bitmap: &[String]| u128::from_str_radix(&bitmap[0][2..], 16).unwrap();
    let changed = strings(&header["changedFields"]);
    assert_eq!(
        top(&changed),
        bit("Phone") | bit("BillingAddress") | bit("LastModifiedDate"),
        "{changed:?}"
    );
    // City is the second component of the address.
    assert_eq!(changed[1], format!("{}-0x02", position("BillingAddress")));
    let nulled = strings(&header["nulledFields"]);
    assert_eq!(nulled, [whole_bytes(bit("Phone"))], "{nulled:?}");
    assert!(strings(&header["diffFields"]).is_empty());
}

/// `0x…` in whole bytes of upper-case hex, as Salesforce writes a bitmap.
fn whole_bytes(bits: u128) -> String {
    let digits = format!("{bits:X}");
    let pad = if digits.len() % 2 == 1 { "0" } else { "" };
    format!("0x{pad}{digits}")
}

#[tokio::test]
async fn the_same_events_come_in_the_same_order_as_over_cometd() {
    let h = Harness::with(quick(60_000, 60_000)).await;
    let mut ps = PubSub::connect(&h).await;
    let mut sub = ps
        .subscribe(fetch(ALL, ReplayPreset::Latest, None, 100))
        .await
        .unwrap();
    let mut bayeux = Bayeux::handshake(&h).await;
    assert_eq!(bayeux.subscribe(ALL, -1).await["successful"], true);
    bayeux.connect().await;

    let a = h.create("Account", json!({"Name": "One"})).await;
    let b = h.create("Account", json!({"Name": "Two"})).await;
    h.create("Contact", json!({"LastName": "Three", "AccountId": a}))
        .await;
    let patched = h
        .send_json(
            Method::PATCH,
            &format!("{API}/sobjects/Account/{a}"),
            &json!({"Name": "One bis"}),
        )
        .await;
    assert_eq!(patched.status(), StatusCode::NO_CONTENT);
    let deleted = h
        .request(Method::DELETE, &format!("{API}/sobjects/Account/{b}"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);

    let over_cometd: Vec<(i64, String, String, Value)> = bayeux
        .events(5)
        .await
        .iter()
        .map(|e| {
            let header = &e["data"]["payload"]["ChangeEventHeader"];
            (
                e["data"]["event"]["replayId"].as_i64().unwrap(),
                header["entityName"].as_str().unwrap().to_owned(),
                header["changeType"].as_str().unwrap().to_owned(),
                header["recordIds"].clone(),
            )
        })
        .collect();
    let (events, _) = sub.events(5).await;
    let mut over_pubsub = Vec::new();
    for event in &events {
        let header = record(ps.decode(event).await["ChangeEventHeader"].clone());
        let Avro::Enum(_, change_type) = &header["changeType"] else {
            panic!("changeType is an enum");
        };
        let Avro::String(entity) = &header["entityName"] else {
            panic!("entityName is a string");
        };
        over_pubsub.push((
            replay(&event.replay_id),
            entity.clone(),
            change_type.clone(),
            json!(strings(&header["recordIds"])),
        ));
    }
    assert_eq!(over_pubsub, over_cometd);
    let kinds: Vec<&str> = over_pubsub.iter().map(|e| e.2.as_str()).collect();
    assert_eq!(kinds, ["CREATE", "CREATE", "CREATE", "UPDATE", "DELETE"]);
}

#[tokio::test]
async fn demand_is_never_exceeded_and_adds_up_to_at_most_100() {
    let h = Harness::with(quick(60_000, 60_000)).await;
    common::seed_accounts(&h.emulator, "Demand", 12);
    let mut ps = PubSub::connect(&h).await;
    let mut sub = ps
        .subscribe(fetch(ACCOUNTS, ReplayPreset::Earliest, None, 5))
        .await
        .unwrap();
    let (events, response) = sub.events(5).await;
    assert_eq!(events.len(), 5, "no more than requested");
    assert_eq!(response.pending_num_requested, 0);
    // Nothing more comes while nothing is requested.
    let quiet = tokio::time::timeout(Duration::from_millis(300), sub.responses.message()).await;
    assert!(quiet.is_err(), "an event beyond the demand: {quiet:?}");
    let streams = h.emulator.pubsub_streams();
    assert_eq!(streams.len(), 1);
    assert_eq!((streams[0].pending, streams[0].max_pending), (0, 5));
    assert_eq!(streams[0].delivered, 5);

    // 80 + 80 requested: 100 outstanding at most.
    sub.requests.send(more(80)).await.unwrap();
    sub.requests.send(more(80)).await.unwrap();
    let (events, response) = sub.events(7).await;
    assert_eq!(events.len(), 7);
    assert!(response.pending_num_requested >= 73 && response.pending_num_requested <= 100);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let admin: Value = h
        .admin(Method::GET, "/pubsub/streams")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let stream = &admin["streams"][0];
    assert_eq!(stream["topic"], ACCOUNTS);
    assert_eq!(stream["delivered"], 12);
    assert!(stream["maxPending"].as_i64().unwrap() <= 100, "{admin}");
    // 80, then 80 more capped at 100, less the 7 delivered (which may come before or
    // after the second request is read).
    let pending = stream["pending"].as_i64().unwrap();
    assert!(pending == 93 || pending == 100, "{admin}");
}

#[tokio::test]
async fn an_idle_stream_gets_keepalives_with_the_latest_replay_id() {
    let h = Harness::with(quick(200, 300)).await;
    common::seed_accounts(&h.emulator, "Kept", 1);
    let last = h.emulator.event_bus().last_replay_id();
    let mut ps = PubSub::connect(&h).await;
    let mut sub = ps
        .subscribe(fetch(ACCOUNTS, ReplayPreset::Latest, None, 10))
        .await
        .unwrap();
    // Outstanding demand keeps the stream open past the idle-close interval.
    for _ in 0..5 {
        let keepalive = sub.next(Duration::from_secs(2)).await.unwrap();
        assert!(keepalive.events.is_empty());
        assert_eq!(replay(&keepalive.latest_replay_id), last);
        assert_eq!(keepalive.pending_num_requested, 10);
    }
}

#[tokio::test]
async fn a_stream_with_nothing_requested_is_closed() {
    let h = Harness::with(quick(60_000, 300)).await;
    common::seed_accounts(&h.emulator, "Idle", 1);
    let mut ps = PubSub::connect(&h).await;
    let mut sub = ps
        .subscribe(fetch(ACCOUNTS, ReplayPreset::Earliest, None, 1))
        .await
        .unwrap();
    let (_, response) = sub.events(1).await;
    assert_eq!(response.pending_num_requested, 0);
    let started = std::time::Instant::now();
    assert!(sub.next(Duration::from_secs(3)).await.is_none(), "closed");
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert!(h.emulator.pubsub_streams().is_empty());
}

#[tokio::test]
async fn custom_replay_resumes_after_the_given_id() {
    let h = Harness::new().await;
    common::seed_accounts(&h.emulator, "Custom", 3);
    let mut ps = PubSub::connect(&h).await;
    let mut all = ps
        .subscribe(fetch(ACCOUNTS, ReplayPreset::Earliest, None, 10))
        .await
        .unwrap();
    let (events, _) = all.events(3).await;
    let ids: Vec<i64> = events.iter().map(|e| replay(&e.replay_id)).collect();
    assert!(ids[0] < ids[1] && ids[1] < ids[2]);

    let mut resumed = ps
        .subscribe(fetch(ACCOUNTS, ReplayPreset::Custom, Some(ids[0]), 10))
        .await
        .unwrap();
    let (events, _) = resumed.events(2).await;
    let resumed_ids: Vec<i64> = events.iter().map(|e| replay(&e.replay_id)).collect();
    assert_eq!(resumed_ids, ids[1..]);
}
