//! sObject Collections over HTTP: create, update, upsert, delete and retrieve, results in
//! request order, `allOrNone` rollback, and the 200-record limit.

// Helpers outside `#[test]` functions fail loudly too, as the tests do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Harness, error_code};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const COLLECTION: &str = "/services/data/v62.0/composite/sobjects";

async fn save(h: &Harness, method: Method, path: &str, body: Value) -> Vec<Value> {
    let response = h.send_json(method, path, &body).await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_array().unwrap().clone()
}

fn account(name: &str) -> Value {
    json!({"attributes": {"type": "Account"}, "Name": name})
}

#[tokio::test]
async fn create_returns_results_in_request_order() {
    let h = Harness::new().await;
    let results = save(
        &h,
        Method::POST,
        COLLECTION,
        json!({"allOrNone": false, "records": [
            account("One"),
            {"attributes": {"type": "Contact"}, "LastName": "Two"},
            {"attributes": {"type": "Account"}},
            account("Four"),
        ]}),
    )
    .await;
    assert_eq!(results.len(), 4);
    assert!(results[0]["id"].as_str().unwrap().starts_with("001"));
    assert!(results[1]["id"].as_str().unwrap().starts_with("003"));
    assert_eq!(results[2]["success"], false);
    assert!(results[2].get("id").is_none() || results[2]["id"].is_null());
    assert_eq!(
        results[2]["errors"][0]["statusCode"],
        "REQUIRED_FIELD_MISSING"
    );
    assert_eq!(results[2]["errors"][0]["fields"], json!(["Name"]));
    assert_eq!(results[3]["success"], true);
    assert_eq!(results[3]["errors"], json!([]));
}

#[tokio::test]
async fn all_or_none_rolls_back_every_sibling() {
    let h = Harness::new().await;
    let results = save(
        &h,
        Method::POST,
        COLLECTION,
        json!({"allOrNone": true, "records": [
            account("Kept?"),
            {"attributes": {"type": "Account"}},
            account("Kept too?"),
        ]}),
    )
    .await;
    let codes: Vec<&str> = results
        .iter()
        .map(|r| r["errors"][0]["statusCode"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        [
            "ALL_OR_NONE_OPERATION_ROLLED_BACK",
            "REQUIRED_FIELD_MISSING",
            "ALL_OR_NONE_OPERATION_ROLLED_BACK"
        ]
    );
    assert!(results.iter().all(|r| r["success"] == false));
    let count = h.query("SELECT COUNT() FROM Account").await;
    assert_eq!(count["totalSize"], 0, "nothing was kept");
}

#[tokio::test]
async fn update_upsert_retrieve_and_delete() {
    let h = Harness::new().await;
    let a = h.create("Account", json!({"Name": "A"})).await;
    let b = h.create("Account", json!({"Name": "B"})).await;

    let updated = save(
        &h,
        Method::PATCH,
        COLLECTION,
        json!({"records": [
            {"attributes": {"type": "Account"}, "id": a, "Industry": "Energy"},
            {"attributes": {"type": "Account"}, "id": b, "Industry": "Banking"},
        ]}),
    )
    .await;
    assert_eq!(updated[0], json!({"id": a, "success": true, "errors": []}));

    let upserted = save(
        &h,
        Method::PATCH,
        &format!("{COLLECTION}/Invoice__c/External_Id__c"),
        json!({"allOrNone": true, "records": [
            {"attributes": {"type": "Invoice__c"}, "External_Id__c": "C-1", "Amount__c": 1},
            {"attributes": {"type": "Invoice__c"}, "External_Id__c": "C-2", "Amount__c": 2},
        ]}),
    )
    .await;
    assert_eq!(upserted[0]["created"], true);
    let again = save(
        &h,
        Method::PATCH,
        &format!("{COLLECTION}/Invoice__c/External_Id__c"),
        json!({"records": [
            {"attributes": {"type": "Invoice__c"}, "External_Id__c": "C-1", "Amount__c": 10},
        ]}),
    )
    .await;
    assert_eq!(again[0]["created"], false);
    assert_eq!(again[0]["id"], upserted[0]["id"]);

    let missing = "001000000000000AAA";
    let fetched = h
        .get_json(&format!(
            "{COLLECTION}/Account?ids={a},{missing},{b}&fields=Id,Name,Industry"
        ))
        .await;
    assert_eq!(fetched[0]["Industry"], "Energy");
    assert!(fetched[1].is_null());
    assert_eq!(fetched[2]["Name"], "B");

    let by_body = h
        .send_json(
            Method::POST,
            &format!("{COLLECTION}/Account"),
            &json!({"ids": [b], "fields": ["Name"]}),
        )
        .await;
    assert_eq!(by_body.status(), StatusCode::OK);
    assert_eq!(by_body.json::<Value>().await.unwrap()[0]["Name"], "B");

    let deleted = h
        .request(
            Method::DELETE,
            &format!("{COLLECTION}?ids={a},{b}&allOrNone=false"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::OK);
    let deleted: Value = deleted.json().await.unwrap();
    assert_eq!(deleted[0], json!({"id": a, "success": true, "errors": []}));
    assert_eq!(deleted[1]["success"], true);
    let count = h.query("SELECT COUNT() FROM Account").await;
    assert_eq!(count["totalSize"], 0);
}

#[tokio::test]
async fn oversized_and_malformed_batches_fail_as_a_whole() {
    let h = Harness::new().await;
    let records: Vec<Value> = (0..201).map(|i| account(&format!("N{i}"))).collect();
    let (status, code, body) = error_code(
        h.send_json(Method::POST, COLLECTION, &json!({"records": records}))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(code, "EXCEEDED_ID_LIMIT");

    let (status, code, _) = error_code(
        h.send_json(
            Method::POST,
            COLLECTION,
            &json!({"records": [{"Name": "no type"}]}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "INVALID_TYPE")
    );

    let (status, code, _) = error_code(
        h.request(Method::POST, COLLECTION)
            .header("Content-Type", "application/json")
            .body("{\"records\": [")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "JSON_PARSER_ERROR")
    );

    let (status, code, _) =
        error_code(h.request(Method::DELETE, COLLECTION).send().await.unwrap()).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "MISSING_ARGUMENT")
    );

    let (status, code, _) = error_code(
        h.get(&format!("{COLLECTION}/Bogus?ids=001&fields=Id"))
            .await,
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::NOT_FOUND, "NOT_FOUND")
    );
}

#[tokio::test]
async fn a_collection_call_counts_once() {
    let h = Harness::new().await;
    let before = h.emulator.api_usage().0;
    let records: Vec<Value> = (0..200).map(|i| account(&format!("Bulk {i}"))).collect();
    let results = save(&h, Method::POST, COLLECTION, json!({"records": records})).await;
    assert_eq!(results.len(), 200);
    assert_eq!(h.emulator.api_usage().0, before + 1);
}
