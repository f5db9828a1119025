//! Composite over HTTP: a child created with its parent's new Id in one request, the whole
//! request rolled back under `allOrNone`, envelope limits refused as a whole, and the
//! request counted once.

// Helpers outside `#[test]` functions fail loudly too, as the tests do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Harness, error_code};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const COMPOSITE: &str = "/services/data/v62.0/composite";

async fn composite(h: &Harness, body: Value) -> Vec<Value> {
    let response = h.send_json(Method::POST, COMPOSITE, &body).await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    body["compositeResponse"].as_array().unwrap().clone()
}

fn parent_and_child(all_or_none: bool, last_name: Option<&str>) -> Value {
    let mut contact = json!({"attributes": {"type": "Contact"}, "AccountId": "@{parents[0].id}"});
    if let Some(last_name) = last_name {
        contact["LastName"] = json!(last_name);
    }
    json!({
        "allOrNone": all_or_none,
        "compositeRequest": [
            {"method": "POST", "url": "/services/data/v62.0/composite/sobjects", "referenceId": "parents",
             "body": {"allOrNone": true, "records": [{"attributes": {"type": "Account"}, "Name": "Composite Parent"}]}},
            {"method": "POST", "url": "/services/data/v62.0/composite/sobjects", "referenceId": "children",
             "body": {"allOrNone": true, "records": [contact]}}
        ]
    })
}

#[tokio::test]
async fn a_child_gets_its_parents_new_id_in_one_counted_request() {
    let h = Harness::new().await;
    let before = h.emulator.requests(0).len();
    let response = h
        .send_json(
            Method::POST,
            COMPOSITE,
            &parent_and_child(true, Some("Child")),
        )
        .await;
    let usage = response.headers()["sforce-limit-info"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.unwrap();
    let results = body["compositeResponse"].as_array().unwrap();
    assert_eq!(results[0]["referenceId"], "parents");
    assert_eq!(results[0]["httpStatusCode"], 200);
    let parent = results[0]["body"][0]["id"].as_str().unwrap();
    let child = results[1]["body"][0]["id"].as_str().unwrap();
    assert!(parent.starts_with("001") && child.starts_with("003"));
    let record = h
        .get_json(&format!(
            "/services/data/v62.0/sobjects/Contact/{child}?fields=AccountId"
        ))
        .await;
    assert_eq!(record["AccountId"], json!(parent));
    // One request in the log and in the allocation, whatever it held.
    let logged: Vec<_> = h.emulator.requests(0).into_iter().skip(before).collect();
    assert_eq!(logged.len(), 2, "{logged:?}");
    assert_eq!(logged[0].path, COMPOSITE);
    assert!(logged[0].counted);
    assert!(usage.starts_with("api-usage=1/"), "{usage}");
}

#[tokio::test]
async fn all_or_none_leaves_nothing_behind() {
    let h = Harness::new().await;
    let accounts = h.query("SELECT COUNT() FROM Account").await["totalSize"].clone();
    let results = composite(&h, parent_and_child(true, None)).await;
    assert_eq!(results[0]["httpStatusCode"], 400);
    assert_eq!(results[0]["body"][0]["errorCode"], "PROCESSING_HALTED");
    assert_eq!(
        results[1]["body"][0]["errors"][0]["statusCode"],
        "REQUIRED_FIELD_MISSING"
    );
    assert_eq!(
        h.query("SELECT COUNT() FROM Account").await["totalSize"],
        accounts
    );

    // Without allOrNone the parent stands; only the failing child is refused.
    let results = composite(&h, parent_and_child(false, None)).await;
    assert_eq!(results[0]["body"][0]["success"], true);
    assert_eq!(results[1]["body"][0]["success"], false);
    assert_eq!(
        h.query("SELECT COUNT() FROM Account").await["totalSize"],
        json!(accounts.as_u64().unwrap() + 1)
    );
}

#[tokio::test]
async fn more_than_five_collections_are_refused_as_a_whole() {
    let h = Harness::new().await;
    let subrequests: Vec<Value> = (0..6)
        .map(|i| {
            json!({"method": "POST", "url": "/services/data/v62.0/composite/sobjects", "referenceId": format!("c{i}"),
                   "body": {"records": [{"attributes": {"type": "Account"}, "Name": format!("N{i}")}]}})
        })
        .collect();
    let response = h
        .send_json(
            Method::POST,
            COMPOSITE,
            &json!({"allOrNone": true, "compositeRequest": subrequests}),
        )
        .await;
    let (status, code, _) = error_code(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(code, "LIMIT_EXCEEDED");
    let response = h
        .send_json(Method::POST, COMPOSITE, &json!({"allOrNone": true}))
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}
