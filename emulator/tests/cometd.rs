//! The Streaming API over real HTTP: CometD handshake, subscribe with replay, long-poll
//! connects carrying change events made through the REST API, and the documented errors.

mod common;

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use sfpg_emulator::http::EmulatorConfig;

use common::cometd::{Bayeux, COMETD};

#[allow(unused)]
const _: &str = COMETD;
use common::{API, Harness};

fn quick() -> EmulatorConfig {
    EmulatorConfig {
        cometd_connect_timeout: Duration::from_millis(300),
        ..EmulatorConfig::default()
    }
}

#[tokio::test]
async fn a_rest_create_reaches_a_subscriber_as_a_change_event() {
    let h = Harness::with(quick()).await;
    let mut client = Bayeux::handshake(&h).await;
    assert!(client.cookie.is_some(), "the handshake sets BAYEUX_BROWSER");
    let reply = client.subscribe("/data/AccountChangeEvent", -1).await;
    assert_eq!(reply["successful"], true, "{reply}");
    let reply = client.subscribe("/data/ChangeEvents", -1).await;
    assert_eq!(reply["successful"], true, "{reply}");
    // The first connect answers at once.
    let (events, reply) = client.connect().await;
    assert!(events.is_empty());
    assert_eq!(reply["advice"]["timeout"], 300);

    let response = h
        .request(Method::POST, &format!("{API}/sobjects/Account"))
        .header("Sforce-Call-Options", "client=sfpg-test")
        .json(&json!({"Name": "Streamed", "BillingCity": "Paris", "Industry": null}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let id = response.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let events = client.events(2).await;
    let channels: Vec<&str> = events
        .iter()
        .map(|e| e["channel"].as_str().unwrap())
        .collect();
    assert!(
        channels.contains(&"/data/AccountChangeEvent") && channels.contains(&"/data/ChangeEvents")
    );
    let event = &events[0];
    let payload = &event["data"]["payload"];
    let header = &payload["ChangeEventHeader"];
    assert_eq!(header["entityName"], "Account");
    assert_eq!(header["changeType"], "CREATE");
    assert_eq!(header["recordIds"], json!([id]));
    assert_eq!(
        header["changeOrigin"],
        "com/salesforce/api/rest/62.0;client=sfpg-test"
    );
    assert_eq!(header["sequenceNumber"], 1);
    assert!(header["commitTimestamp"].as_i64().unwrap() > 1_600_000_000_000);
    assert!(header["transactionKey"].as_str().unwrap().len() == 36);
    assert!(header["commitUser"].as_str().unwrap().starts_with("005"));
    assert_eq!(payload["Name"], "Streamed");
    assert_eq!(payload["BillingAddress"]["City"], "Paris");
    assert!(
        payload.get("Industry").is_none(),
        "CREATE carries non-null fields only"
    );
    assert!(payload.get("SystemModstamp").is_none() && payload.get("IsDeleted").is_none());
    assert!(payload.get("Id").is_none());
    assert!(event["data"]["event"]["replayId"].as_i64().is_some());
    assert!(event["data"]["schema"].as_str().is_some());
}
