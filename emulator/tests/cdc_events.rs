//! Change Data Capture over real HTTP: every write path (REST, Collections, Composite,
//! Bulk ingest, the admin API's "as another user", delete and undelete) publishes change
//! events with the documented payload.
//! Events are read from the bus here; `cometd.rs` tests their delivery, and
//! `cdc_selection.rs` the selection, overflow, gaps and retention.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{API, Harness};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sfpg_emulator::events::{ChangeEvent, ChangeType};
use sfpg_emulator::http::EmulatorConfig;

async fn patch(h: &Harness, path: &str, body: Value) -> reqwest::Response {
    h.send_json(Method::PATCH, path, &body).await
}

#[tokio::test]
async fn rest_create_update_delete_and_undelete_publish_the_documented_payloads() {
    let h = Harness::new().await;
    let start = h.tip();
    let id = h
        .create(
            "Account",
            json!({"Name": "Acme", "Industry": "Energy", "BillingCity": "Lyon"}),
        )
        .await;
    let response = patch(
        &h,
        &format!("{API}/sobjects/Account/{id}"),
        json!({"Industry": null, "BillingStreet": "1 Rue"}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let response = h
        .request(Method::DELETE, &format!("{API}/sobjects/Account/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    h.emulator.undelete(&id, None).unwrap();

    let events = h.events_after(start);
    let types: Vec<ChangeType> = events.iter().map(|e| e.header.change_type).collect();
    assert_eq!(
        types,
        [
            ChangeType::Create,
            ChangeType::Update,
            ChangeType::Delete,
            ChangeType::Undelete
        ]
    );
    let ids: Vec<i64> = events.iter().map(|e| e.replay_id).collect();
    assert!(
        ids.windows(2).all(|w| w[1] > w[0]),
        "replay ids increase: {ids:?}"
    );
    for e in &events {
        assert_eq!(e.header.record_ids, std::slice::from_ref(&id));
        assert_eq!(e.header.entity_name, "Account");
    }

    assert_create_payload(&events[0]);
    assert_update_payload(&events[1]);

    assert!(events[2].fields.is_empty(), "DELETE carries no fields");
    let undelete = &events[3];
    assert_eq!(undelete.fields["Name"], "Acme");
    assert_eq!(undelete.fields["BillingAddress"]["Street"], "1 Rue");
    assert!(!undelete.fields.contains_key("Industry"));
    // Each REST call is its own transaction.
    let keys: std::collections::HashSet<&str> = events
        .iter()
        .map(|e| e.header.transaction_key.as_str())
        .collect();
    assert_eq!(keys.len(), 4);
    // The admin API's undelete has no API origin.
    assert_eq!(
        events[0].header.change_origin,
        "com/salesforce/api/rest/62.0"
    );
    assert_eq!(undelete.header.change_origin, "");
}

/// A CREATE of an Account named Acme in Energy, billed in Lyon: every non-null field,
/// the address nested with every component, no system or absent fields.
fn assert_create_payload(create: &ChangeEvent) {
    assert_eq!(create.fields["Name"], "Acme");
    assert_eq!(create.fields["Industry"], "Energy");
    let mut components: Vec<&str> = create.fields["BillingAddress"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    components.sort_unstable();
    assert_eq!(
        components,
        [
            "City",
            "Country",
            "GeocodeAccuracy",
            "Latitude",
            "Longitude",
            "PostalCode",
            "State",
            "Street"
        ]
    );
    assert_eq!(create.fields["BillingAddress"]["City"], "Lyon");
    assert_eq!(create.fields["BillingAddress"]["Street"], Value::Null);
    for absent in ["Id", "SystemModstamp", "IsDeleted", "Phone", "BillingCity"] {
        assert!(
            !create.fields.contains_key(absent),
            "CREATE has no {absent}"
        );
    }
    assert!(create.fields.contains_key("CreatedDate"));
    assert!(create.header.changed_fields.is_empty());
}

/// An UPDATE that nulled Industry and set BillingStreet: those, nested, and
/// `LastModifiedDate`, nothing else.
fn assert_update_payload(update: &ChangeEvent) {
    let mut keys: Vec<&str> = update.fields.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["BillingAddress", "Industry", "LastModifiedDate"]);
    assert_eq!(
        update.fields["Industry"],
        Value::Null,
        "a nulled field is present as null"
    );
    assert_eq!(update.fields["BillingAddress"], json!({"Street": "1 Rue"}));
    let mut changed = update.header.changed_fields.clone();
    changed.sort_unstable();
    assert_eq!(
        changed,
        ["BillingAddress.Street", "Industry", "LastModifiedDate"]
    );
    assert_eq!(update.header.nulled_fields, ["Industry"]);
    assert!(
        update.fields["LastModifiedDate"]
            .as_str()
            .unwrap()
            .ends_with(".000Z")
    );
}

#[tokio::test]
async fn contact_name_is_nested_and_formula_fields_are_never_published() {
    let h = Harness::new().await;
    let account = h.create("Account", json!({"Name": "Parent"})).await;
    let start = h.tip();
    let contact = h
        .create(
            "Contact",
            json!({"FirstName": "Ada", "LastName": "Lovelace", "AccountId": account}),
        )
        .await;
    h.create(
        "Invoice__c",
        json!({"Account__c": account, "Amount__c": 100.0, "Tax__c": 20.0}),
    )
    .await;
    let response = patch(
        &h,
        &format!("{API}/sobjects/Contact/{contact}"),
        json!({"LastName": "King"}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let events = h.events_after(start);
    assert_eq!(events.len(), 3);
    assert_eq!(events[0].fields["Name"]["FirstName"], "Ada");
    assert_eq!(events[0].fields["Name"]["LastName"], "Lovelace");
    assert!(!events[0].fields.contains_key("LastName"));
    let invoice = &events[1];
    assert_eq!(invoice.header.entity_name, "Invoice__c");
    assert_eq!(invoice.event_name(), "Invoice__ChangeEvent");
    assert!(invoice.fields.contains_key("Amount__c"));
    assert!(invoice.fields["Name"].as_str().unwrap().starts_with("INV-"));
    for formula in ["Total__c", "Account_Name__c"] {
        assert!(
            !invoice.fields.contains_key(formula),
            "no formula {formula}"
        );
    }
    assert_eq!(events[2].fields["Name"], json!({"LastName": "King"}));
    assert!(
        events[2]
            .header
            .changed_fields
            .contains(&"Name.LastName".to_owned())
    );
}

#[tokio::test]
async fn collections_publish_one_transaction_and_merge_identical_changes() {
    let h = Harness::new().await;
    let start = h.tip();
    let response = h
        .request(Method::POST, &format!("{API}/composite/sobjects"))
        .header("Sforce-Call-Options", "client=sfpg")
        .json(&json!({"allOrNone": true, "records": [
            {"attributes": {"type": "Account"}, "Name": "A"},
            {"attributes": {"type": "Account"}, "Name": "B"},
            {"attributes": {"type": "Contact"}, "LastName": "C"}]}))
        .send()
        .await
        .unwrap();
    let results: Value = response.json().await.unwrap();
    let ids: Vec<String> = results
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    let events = h.events_after(start);
    assert_eq!(events.len(), 3);
    let key = &events[0].header.transaction_key;
    assert!(events.iter().all(|e| &e.header.transaction_key == key));
    let sequence: Vec<i64> = events.iter().map(|e| e.header.sequence_number).collect();
    assert_eq!(sequence, [1, 2, 3]);
    assert!(
        events
            .iter()
            .all(|e| e.header.change_origin == "com/salesforce/api/rest/62.0;client=sfpg")
    );

    // The same change to two Accounts in one call: one event, two record ids.
    let start = h.tip();
    let response = patch(
        &h,
        &format!("{API}/composite/sobjects"),
        json!({"allOrNone": false, "records": [
            {"attributes": {"type": "Account"}, "id": ids[0], "Industry": "Energy"},
            {"attributes": {"type": "Account"}, "id": ids[1], "Industry": "Energy"}]}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let events = h.events_after(start);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        events[0].header.record_ids,
        [ids[0].clone(), ids[1].clone()]
    );

    // A batch rolled back under allOrNone publishes nothing.
    let start = h.tip();
    let response = patch(
        &h,
        &format!("{API}/composite/sobjects"),
        json!({"allOrNone": true, "records": [
            {"attributes": {"type": "Account"}, "id": ids[0], "Industry": "Banking"},
            {"attributes": {"type": "Account"}, "id": ids[1], "Name": null}]}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(h.events_after(start).is_empty());

    // Collections delete: one DELETE event for both (no fields, same change).
    let start = h.tip();
    let response = h
        .request(
            Method::DELETE,
            &format!("{API}/composite/sobjects?ids={},{}", ids[0], ids[1]),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let events = h.events_after(start);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].header.change_type, ChangeType::Delete);
    assert_eq!(events[0].header.record_ids.len(), 2);
}

#[tokio::test]
async fn composite_subrequests_publish_their_changes() {
    let h = Harness::new().await;
    let start = h.tip();
    let body = json!({"allOrNone": true, "compositeRequest": [
        {"method": "POST", "url": format!("{API}/sobjects/Account"), "referenceId": "acct",
         "body": {"Name": "Composite"}},
        {"method": "POST", "url": format!("{API}/sobjects/Contact"), "referenceId": "ct",
         "body": {"LastName": "Ref", "AccountId": "@{acct.id}"}}]});
    let response = h
        .send_json(Method::POST, &format!("{API}/composite"), &body)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let events = h.events_after(start);
    let entities: Vec<&str> = events
        .iter()
        .map(|e| e.header.entity_name.as_str())
        .collect();
    assert_eq!(entities, ["Account", "Contact"]);
    assert!(
        events
            .iter()
            .all(|e| e.header.change_type == ChangeType::Create)
    );
}

/// Runs a Bulk ingest job of `operation` on Account with `csv`; returns once it ended.
async fn bulk_job(h: &Harness, operation: &str, csv: &str) {
    let job: Value = h
        .request(Method::POST, &format!("{API}/jobs/ingest"))
        .header("Sforce-Call-Options", "client=loader")
        .json(&json!({"object": "Account", "operation": operation, "lineEnding": "LF"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = job["id"].as_str().unwrap();
    let response = h
        .request(Method::PUT, &format!("{API}/jobs/ingest/{id}/batches"))
        .header("Content-Type", "text/csv")
        .body(csv.to_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let response = patch(
        h,
        &format!("{API}/jobs/ingest/{id}"),
        json!({"state": "UploadComplete"}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info = h.get_json(&format!("{API}/jobs/ingest/{id}")).await;
        if info["state"] == "JobComplete" {
            return;
        }
        assert!(Instant::now() < deadline, "{info}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn rest_upserts_and_bulk_hard_deletes_publish() {
    let h = Harness::with(EmulatorConfig {
        bulk_processing_delay: Duration::from_millis(20),
        ..EmulatorConfig::default()
    })
    .await;
    let start = h.tip();
    let path = format!("{API}/sobjects/Invoice__c/External_Id__c/X-1");
    let created = patch(&h, &path, json!({"Amount__c": 10.0})).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let updated = patch(&h, &path, json!({"Amount__c": 12.5})).await;
    assert_eq!(updated.status(), StatusCode::OK);
    let events = h.events_after(start);
    let types: Vec<ChangeType> = events.iter().map(|e| e.header.change_type).collect();
    assert_eq!(types, [ChangeType::Create, ChangeType::Update]);
    assert_eq!(events[0].fields["External_Id__c"], "X-1");
    assert_eq!(events[1].fields["Amount__c"], 12.5);

    let account = h.create("Account", json!({"Name": "Doomed"})).await;
    let start = h.tip();
    bulk_job(&h, "hardDelete", &format!("Id\n{account}\n")).await;
    let events = h.events_after(start);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].header.change_type, ChangeType::Delete);
    assert_eq!(events[0].header.record_ids, [account]);
}

#[tokio::test]
async fn bulk_ingest_publishes_with_the_bulk_origin() {
    let h = Harness::with(EmulatorConfig {
        bulk_processing_delay: Duration::from_millis(50),
        ..EmulatorConfig::default()
    })
    .await;
    let start = h.tip();
    bulk_job(&h, "insert", "Name,Industry\nOne,Energy\nTwo,Banking\n").await;
    let events = h.events_after(start);
    assert_eq!(events.len(), 2);
    assert!(
        events
            .iter()
            .all(|e| e.header.change_origin == "com/salesforce/api/bulkapi/62.0;client=loader")
    );
    assert_eq!(events[0].fields["Name"], "One");
}

#[tokio::test]
async fn admin_changes_as_another_user_are_committed_by_that_user() {
    let h = Harness::new().await;
    let other = h.emulator.with_org_mut(|org| {
        org.add_user(&sfpg_emulator::org::NewUser::from_username(
            "other@sfpg.example",
        ))
        .unwrap()
    });
    let start = h.tip();
    let response = h
        .admin(Method::POST, "/sobjects/Account")
        .json(&json!({"asUser": "other@sfpg.example", "fields": {"Name": "By another"}}))
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{}",
        response.text().await.unwrap()
    );
    let events = h.events_after(start);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].header.commit_user, other.to_string());
    assert_eq!(events[0].header.change_origin, "");
}
