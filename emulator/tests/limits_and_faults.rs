//! The daily API allocation (`Sforce-Limit-Info`, 403 REQUEST_LIMIT_EXCEEDED), fault
//! injection (latency, failures, dropped connections), the request log, and the admin
//! API over HTTP.

// Helpers outside `#[test]` functions fail loudly too, as the tests do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{API, Harness, error_code};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sfpg_emulator::http::{DropRule, EmulatorConfig, FailureRule, Latency, RequestMatcher};

#[tokio::test]
async fn spent_allocation_answers_403_until_reset() {
    let h = Harness::with(EmulatorConfig {
        daily_api_limit: 3,
        ..EmulatorConfig::default()
    })
    .await;
    let limits = format!("{API}/limits");
    for used in 1..=3 {
        let response = h.get(&limits).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()["sforce-limit-info"].to_str().unwrap(),
            format!("api-usage={used}/3")
        );
    }
    let refused = h.get(&limits).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        refused.headers()["sforce-limit-info"].to_str().unwrap(),
        "api-usage=3/3"
    );
    assert_eq!(
        refused.text().await.unwrap(),
        r#"[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]"#
    );
    // The versions list is not metered and keeps working.
    let versions = h.http.get(h.url("/services/data")).send().await.unwrap();
    assert_eq!(versions.status(), StatusCode::OK);

    let reset = h.admin(Method::POST, "/limits/reset").send().await.unwrap();
    assert_eq!(reset.status(), StatusCode::NO_CONTENT);
    assert_eq!(h.get(&limits).await.status(), StatusCode::OK);

    // The admin API can spend the allocation as another client would.
    let spent = h
        .admin(Method::PUT, "/limits")
        .json(&json!({"max": 100, "consume": 99}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        spent.json::<Value>().await.unwrap(),
        json!({"used": 100, "max": 100})
    );
    assert_eq!(h.get(&limits).await.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn injected_failures_answer_with_status_and_error_code() {
    let h = Harness::new().await;
    h.emulator.fail_next(
        FailureRule::new(503, "SERVER_UNAVAILABLE")
            .times(2)
            .matching(Some("GET"), "/services/data/*/query*"),
    );
    let query = format!("{API}/query?q=SELECT+Id+FROM+Account");
    // Other requests are untouched.
    assert_eq!(
        h.get(&format!("{API}/limits")).await.status(),
        StatusCode::OK
    );
    for _ in 0..2 {
        let (status, code, _) = error_code(h.get(&query).await).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, "SERVER_UNAVAILABLE")
        );
    }
    assert_eq!(h.get(&query).await.status(), StatusCode::OK);

    let added = h
        .admin(Method::POST, "/faults/failures")
        .json(&json!({
            "method": "PATCH",
            "path": "/services/data/*/sobjects/Account/*",
            "status": 400,
            "errorCode": "UNABLE_TO_LOCK_ROW",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), StatusCode::CREATED);
    let id = h.create("Account", json!({"Name": "Locked"})).await;
    let (status, code, body) = error_code(
        h.send_json(
            Method::PATCH,
            &format!("{API}/sobjects/Account/{id}"),
            &json!({"Name": "x"}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "UNABLE_TO_LOCK_ROW")
    );
    assert!(
        body[0]["message"]
            .as_str()
            .unwrap()
            .contains("unable to obtain exclusive access")
    );
    let retried = h
        .send_json(
            Method::PATCH,
            &format!("{API}/sobjects/Account/{id}"),
            &json!({"Name": "x"}),
        )
        .await;
    assert_eq!(retried.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn injected_failures_are_logged_but_not_counted() {
    let h = Harness::new().await;
    h.emulator.clear_requests();
    let before = h.emulator.api_usage().0;
    h.emulator
        .fail_next(FailureRule::new(403, "REQUEST_LIMIT_EXCEEDED"));
    let (status, code, body) = error_code(h.get(&format!("{API}/sobjects")).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::FORBIDDEN, "REQUEST_LIMIT_EXCEEDED")
    );
    assert_eq!(body[0]["message"], "TotalRequests Limit exceeded.");
    assert_eq!(h.emulator.api_usage().0, before);
    let log = h.emulator.requests(0);
    let last = log.last().unwrap();
    assert!(last.injected);
    assert!(!last.counted);
    assert_eq!(last.status, Some(403));
}

#[tokio::test]
async fn dropped_connections_get_no_response() {
    let h = Harness::new().await;
    h.emulator.drop_next(DropRule {
        matcher: RequestMatcher {
            method: None,
            path: Some("/services/data/*/limits".to_owned()),
        },
        count: 1,
        after_ms: None,
    });
    let dropped = h
        .request(Method::GET, &format!("{API}/limits"))
        .send()
        .await;
    assert!(dropped.is_err(), "the connection closed without a response");
    assert_eq!(
        h.get(&format!("{API}/limits")).await.status(),
        StatusCode::OK
    );
    let log = h.emulator.requests(0);
    let dropped_entry = log
        .iter()
        .find(|e| e.path.ends_with("/limits") && e.status.is_none())
        .expect("the dropped request is logged");
    assert!(dropped_entry.injected);
    assert!(!dropped_entry.counted);

    let added = h
        .admin(Method::POST, "/faults/drops")
        .json(&json!({"path": "/services/data/*/sobjects", "count": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), StatusCode::CREATED);
    assert!(
        h.request(Method::GET, &format!("{API}/sobjects"))
            .send()
            .await
            .is_err()
    );
}

/// A drop with `afterMs` loses only the answer: the request is carried out, as Salesforce
/// carries out a request whose connection broke after it arrived.
#[tokio::test]
async fn a_drop_after_a_delay_carries_the_request_out() {
    let h = Harness::new().await;
    let added = h
        .admin(Method::POST, "/faults/drops")
        .json(&json!({"method": "POST", "path": "*/sobjects/Account", "count": 1, "afterMs": 200}))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), StatusCode::CREATED);
    let started = Instant::now();
    let dropped = h
        .request(Method::POST, &format!("{API}/sobjects/Account"))
        .json(&json!({"Name": "Made, answer lost"}))
        .send()
        .await;
    assert!(dropped.is_err(), "the connection closed without a response");
    assert!(started.elapsed() >= Duration::from_millis(200));
    let found = h
        .query("SELECT Id FROM Account WHERE Name = 'Made, answer lost'")
        .await;
    assert_eq!(found["totalSize"], 1, "{found}");
}

#[tokio::test]
async fn latency_is_added_to_matching_requests() {
    let h = Harness::new().await;
    h.emulator.set_latency(Some(Latency {
        fixed_ms: 200,
        jitter_ms: 50,
        matcher: RequestMatcher {
            method: None,
            path: Some("*/limits".to_owned()),
        },
    }));
    let started = Instant::now();
    assert_eq!(
        h.get(&format!("{API}/limits")).await.status(),
        StatusCode::OK
    );
    let slow = started.elapsed();
    assert!(slow >= Duration::from_millis(200), "{slow:?}");
    assert!(slow < Duration::from_millis(2000), "{slow:?}");

    let started = Instant::now();
    h.get(&format!("{API}/sobjects")).await;
    assert!(started.elapsed() < Duration::from_millis(200));

    let cleared = h.admin(Method::DELETE, "/faults").send().await.unwrap();
    assert_eq!(cleared.status(), StatusCode::NO_CONTENT);
    assert!(h.emulator.faults().latency.is_none());

    let set = h
        .admin(Method::PUT, "/faults/latency")
        .json(&json!({"fixedMs": 150}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), StatusCode::NO_CONTENT);
    let started = Instant::now();
    h.get(&format!("{API}/sobjects")).await;
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn request_log_records_method_path_time_counted_and_status() {
    let h = Harness::new().await;
    h.emulator.clear_requests();
    h.http.get(h.url("/services/data")).send().await.unwrap();
    h.get(&format!("{API}/limits")).await;
    h.http
        .get(h.url(&format!("{API}/limits")))
        .send()
        .await
        .unwrap();
    h.admin(Method::GET, "/faults").send().await.unwrap();

    let log: Value = h
        .admin(Method::GET, "/requests")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let entries = log.as_array().unwrap();
    assert_eq!(entries.len(), 3, "admin calls are not logged: {log}");
    let summary: Vec<(String, String, bool, u64)> = entries
        .iter()
        .map(|e| {
            (
                e["method"].as_str().unwrap().to_owned(),
                e["path"].as_str().unwrap().to_owned(),
                e["counted"].as_bool().unwrap(),
                e["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("GET".to_owned(), "/services/data".to_owned(), false, 200),
            ("GET".to_owned(), format!("{API}/limits"), true, 200),
            ("GET".to_owned(), format!("{API}/limits"), false, 401),
        ]
    );
    assert!(entries[0]["time"].as_str().unwrap().ends_with("+0000"));

    let after = entries[1]["seq"].as_u64().unwrap();
    let newer: Value = h
        .admin(Method::GET, &format!("/requests?after={after}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(newer.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn admin_changes_records_as_another_user_without_counting() {
    let mut config = EmulatorConfig::default();
    config.users.push(sfpg_emulator::http::UserLogin {
        username: "other@sfpg.example".to_owned(),
        password: "pw".to_owned(),
        security_token: None,
    });
    let h = Harness::with(config).await;
    let id = h.create("Account", json!({"Name": "Owned"})).await;
    let other = h.emulator.user_id("other@sfpg.example").unwrap();
    let before = h.emulator.api_usage().0;

    let changed = h
        .admin(Method::PATCH, &format!("/sobjects/Account/{id}"))
        .json(&json!({"asUser": "other@sfpg.example", "fields": {"Industry": "Energy"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), StatusCode::NO_CONTENT);
    assert_eq!(h.emulator.api_usage().0, before);
    let record = h.get_json(&format!("{API}/sobjects/Account/{id}")).await;
    assert_eq!(record["Industry"], "Energy");
    assert_eq!(record["LastModifiedById"], other.as_str());

    let deleted = h
        .admin(
            Method::DELETE,
            &format!("/sobjects/Account/{id}?asUser={other}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        h.get(&format!("{API}/sobjects/Account/{id}"))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    let restored = h
        .admin(Method::POST, &format!("/records/{id}/undelete"))
        .send()
        .await
        .unwrap();
    assert_eq!(restored.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        h.get_json(&format!("{API}/sobjects/Account/{id}")).await["Name"],
        "Owned"
    );

    let created = h
        .admin(Method::POST, "/sobjects/Contact")
        .json(&json!({"fields": {"LastName": "Admin-made"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let unknown_user = h
        .admin(Method::POST, "/sobjects/Contact")
        .json(&json!({"asUser": "ghost@nowhere", "fields": {"LastName": "x"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown_user.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn admin_adds_object_definitions() {
    let h = Harness::new().await;
    let definition = json!({
        "name": "Widget__c", "label": "Widget", "labelPlural": "Widgets",
        "keyPrefix": "a0W", "custom": true,
        "fields": [
            {"name": "Name", "label": "Widget Name", "type": "string", "length": 80,
             "nillable": false, "nameField": true}
        ]
    });
    let added = h
        .admin(Method::POST, "/objects")
        .json(&definition)
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), StatusCode::CREATED);
    let id = h.create("Widget__c", json!({"Name": "Sprocket"})).await;
    assert!(id.starts_with("a0W"));
    let again = h
        .admin(Method::POST, "/objects")
        .json(&definition)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);

    let summary: Value = h
        .admin(Method::GET, "/")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(summary["instanceUrl"], h.emulator.instance_url());
    assert_eq!(summary["orgId"], h.emulator.org_id());
}
