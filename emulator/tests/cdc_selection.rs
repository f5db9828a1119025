//! Change Data Capture's selection and gaps over real HTTP: which entities publish (and
//! the selection changed at run time, and read through the Tooling API), a transaction over
//! the overflow threshold, injected `GAP_*` events and retention.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{API, Harness};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sfpg_emulator::events::{ChangeType, Selection};
use sfpg_emulator::http::EmulatorConfig;

#[tokio::test]
async fn only_selected_entities_publish_and_the_selection_changes_at_run_time() {
    let h = Harness::with(EmulatorConfig {
        cdc_entities: "Contact".parse().unwrap(),
        ..EmulatorConfig::default()
    })
    .await;
    let start = h.tip();
    h.create("Account", json!({"Name": "Unselected"})).await;
    h.create("Contact", json!({"LastName": "Selected"})).await;
    let events = h.events_after(start);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].header.entity_name, "Contact");

    let response = h
        .admin(Method::PUT, "/cdc")
        .json(&json!({"entities": ["Account"]}))
        .send()
        .await
        .unwrap();
    let settings: Value = response.json().await.unwrap();
    assert_eq!(settings["entities"], "account");
    assert_eq!(
        h.emulator.event_bus().selection(),
        Selection::of(["Account"])
    );
    let start = h.tip();
    h.create("Account", json!({"Name": "Now selected"})).await;
    h.create("Contact", json!({"LastName": "Not any more"}))
        .await;
    let events = h.events_after(start);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].header.entity_name, "Account");
}

#[tokio::test]
async fn a_transaction_over_the_threshold_publishes_gap_overflow_for_the_rest() {
    let h = Harness::with(EmulatorConfig {
        cdc_overflow_threshold: 2,
        ..EmulatorConfig::default()
    })
    .await;
    let start = h.tip();
    let records: Vec<Value> = (0..4)
        .map(|i| json!({"attributes": {"type": "Account"}, "Name": format!("N{i}")}))
        .collect();
    let response = h
        .send_json(
            Method::POST,
            &format!("{API}/composite/sobjects"),
            &json!({"allOrNone": true, "records": records}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let events = h.events_after(start);
    // Each create counts its non-null fields (Name, OwnerId, audit fields...), so the
    // threshold of 2 lets none through whole: every Account change overflows.
    let types: Vec<ChangeType> = events.iter().map(|e| e.header.change_type).collect();
    assert_eq!(types, [ChangeType::GapOverflow]);
    assert_eq!(events[0].header.entity_name, "Account");
    assert!(events[0].header.record_ids.is_empty());
    assert!(events[0].fields.is_empty());

    // Updates count their changed fields: with a threshold of 4, two updates of one
    // field (plus LastModifiedDate) pass and the third overflows.
    h.emulator.event_bus().set_overflow_threshold(4);
    let ids: Vec<String> = h.query("SELECT Id FROM Account ORDER BY Name").await["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Id"].as_str().unwrap().to_owned())
        .collect();
    let start = h.tip();
    let records: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(
            |(i, id)| json!({"attributes": {"type": "Account"}, "id": id, "Phone": format!("{i}")}),
        )
        .collect();
    let response = h
        .send_json(
            Method::PATCH,
            &format!("{API}/composite/sobjects"),
            &json!({"allOrNone": true, "records": records}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let types: Vec<ChangeType> = h
        .events_after(start)
        .iter()
        .map(|e| e.header.change_type)
        .collect();
    assert_eq!(
        types,
        [
            ChangeType::Update,
            ChangeType::Update,
            ChangeType::GapOverflow
        ]
    );
}

#[tokio::test]
async fn the_admin_api_injects_gap_events_and_expires_retained_events() {
    let h = Harness::new().await;
    let id = h.create("Account", json!({"Name": "Gap"})).await;
    let response = h
        .admin(Method::POST, "/cdc/gaps")
        .json(&json!({"entity": "Account", "changeType": "GAP_UPDATE", "recordIds": [id]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let replay: i64 = response.json::<Value>().await.unwrap()["replayId"]
        .as_i64()
        .unwrap();
    let gap = h.events_after(replay - 1);
    assert_eq!(gap.len(), 1);
    assert_eq!(gap[0].header.change_type, ChangeType::GapUpdate);
    assert_eq!(gap[0].header.record_ids, [id]);
    assert!(gap[0].fields.is_empty());
    let refused = h
        .admin(Method::POST, "/cdc/gaps")
        .json(&json!({"entity": "Account", "changeType": "UPDATE"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);

    let expired: Value = h
        .admin(Method::POST, "/cdc/expire")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(expired["expired"], 2);
    assert_eq!(h.emulator.event_bus().retained(), 0);
}

#[tokio::test]
async fn the_tooling_api_lists_the_selected_entities_as_platform_event_channel_members() {
    let h = Harness::with(EmulatorConfig {
        cdc_entities: "Account,Invoice__c".parse().unwrap(),
        ..EmulatorConfig::default()
    })
    .await;
    let soql =
        "SELECT SelectedEntity FROM PlatformEventChannelMember WHERE EventChannel = 'ChangeEvents'";
    let path = format!("{API}/tooling/query?q={}", soql.replace(' ', "+"));
    let body = h.get_json(&path).await;
    assert_eq!(body["done"], true);
    assert_eq!(body["totalSize"], 2);
    assert_eq!(body["entityTypeName"], "PlatformEventChannelMember");
    let records = body["records"].as_array().unwrap();
    let entities: Vec<&str> = records
        .iter()
        .map(|r| r["SelectedEntity"].as_str().unwrap())
        .collect();
    assert_eq!(entities, ["AccountChangeEvent", "Invoice__ChangeEvent"]);
    assert_eq!(
        records[0]["attributes"]["type"],
        "PlatformEventChannelMember"
    );
    assert!(
        records[0]["attributes"]["url"]
            .as_str()
            .unwrap()
            .starts_with("/services/data/v62.0/tooling/sobjects/PlatformEventChannelMember/0v8")
    );
    assert_eq!(
        records[0].as_object().unwrap().len(),
        2,
        "only the fields asked for"
    );

    let body = h
        .get_json(&format!(
            "{API}/tooling/query?q=SELECT+Id,DeveloperName,EventChannel+FROM+PlatformEventChannelMember"
        ))
        .await;
    assert_eq!(
        body["records"][0]["DeveloperName"],
        "ChangeEvents_AccountChangeEvent"
    );
    assert_eq!(body["records"][0]["EventChannel"], "ChangeEvents");

    // The selection changed through the admin API shows at once; none lists nothing.
    h.admin(Method::PUT, "/cdc")
        .json(&json!({"entities": "none"}))
        .send()
        .await
        .unwrap();
    assert_eq!(h.get_json(&path).await["totalSize"], 0);

    let response = h
        .get(&format!("{API}/tooling/query?q=SELECT+Id+FROM+Account"))
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body[0]["errorCode"], "INVALID_TYPE");
    // The session gate applies.
    let response = h.http.get(h.url(&path)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}
