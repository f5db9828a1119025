//! The REST resources over real HTTP: versions, limits, describe (with
//! If-Modified-Since), record CRUD and upsert, replication windows, and Salesforce's
//! errors for bad input.

// Helpers outside `#[test]` functions fail loudly too, as the tests do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{API, Harness, error_code, refused};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[tokio::test]
async fn versions_need_no_session_and_are_not_counted() {
    let h = Harness::new().await;
    let response = h.http.get(h.url("/services/data/")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get("sforce-limit-info").is_none());
    let versions: Value = response.json().await.unwrap();
    let list = versions.as_array().unwrap();
    assert!(list.iter().any(|v| v
        == &json!({
            "label": "Winter '25", "url": "/services/data/v62.0", "version": "62.0"
        })));
    for v in ["58.0", "59.0", "60.0", "61.0", "62.0"] {
        assert!(list.iter().any(|e| e["version"] == v), "{v} is served");
    }
    assert_eq!(h.emulator.api_usage().0, 0);
}

#[tokio::test]
async fn unknown_versions_are_not_found_and_retired_ones_gone() {
    let h = Harness::new().await;
    let (status, code, _) = error_code(h.get("/services/data/v99.0/sobjects").await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::NOT_FOUND, "NOT_FOUND")
    );
    let (status, _, _) = error_code(h.get("/services/data/v25.0/sobjects").await).await;
    assert_eq!(status, StatusCode::GONE);
    let resources = h.get_json(API).await;
    assert_eq!(resources["sobjects"], "/services/data/v62.0/sobjects");
    assert_eq!(resources["query"], "/services/data/v62.0/query");
}

#[tokio::test]
async fn every_api_response_carries_the_limit_header() {
    let h = Harness::new().await;
    let first = h.get(&format!("{API}/limits")).await;
    assert_eq!(
        first.headers()["sforce-limit-info"].to_str().unwrap(),
        "api-usage=1/15000"
    );
    let limits: Value = first.json().await.unwrap();
    assert_eq!(
        limits["DailyApiRequests"],
        json!({"Max": 15000, "Remaining": 14999})
    );
    for name in [
        "DailyBulkApiBatches",
        "DailyBulkV2QueryJobs",
        "DailyBulkV2QueryFileStorageMB",
        "DailyDeliveredPlatformEvents",
        "DataStorageMB",
        "DurableStreamingApiConcurrentClients",
    ] {
        assert!(limits[name]["Max"].is_u64(), "{name}");
        assert!(limits[name]["Remaining"].is_u64(), "{name}");
    }
    // Errors carry it too.
    let missing = h.get(&format!("{API}/sobjects/Nope/describe")).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        missing.headers()["sforce-limit-info"].to_str().unwrap(),
        "api-usage=2/15000"
    );
}

#[tokio::test]
async fn describe_global_and_object_describe() {
    let h = Harness::new().await;
    let global = h.get_json(&format!("{API}/sobjects")).await;
    assert_eq!(global["encoding"], "UTF-8");
    assert_eq!(global["maxBatchSize"], 200);
    let names: Vec<&str> = global["sobjects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    for name in [
        "Account",
        "Contact",
        "Lead",
        "Opportunity",
        "User",
        "Product2",
        "Invoice__c",
    ] {
        assert!(names.contains(&name), "{name}");
    }
    // Object names in URLs ignore case; output uses the canonical name.
    let describe = h
        .get_json(&format!("{API}/sobjects/invoice__C/describe/"))
        .await;
    assert_eq!(describe["name"], "Invoice__c");
    let total = describe["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "Total__c")
        .unwrap();
    assert_eq!(total["calculated"], true);
    assert_eq!(total["type"], "currency");
    let basic = h.get_json(&format!("{API}/sobjects/Account")).await;
    assert_eq!(basic["objectDescribe"]["keyPrefix"], "001");
    assert!(basic["recentItems"].is_array());
}

#[tokio::test]
async fn describe_honours_if_modified_since() {
    let h = Harness::new().await;
    let future = "Fri, 01 Jan 2100 00:00:00 GMT";
    let past = "Mon, 01 Jan 2001 00:00:00 GMT";
    for path in [
        format!("{API}/sobjects/Account/describe"),
        format!("{API}/sobjects"),
    ] {
        let unchanged = h
            .request(Method::GET, &path)
            .header("If-Modified-Since", future)
            .send()
            .await
            .unwrap();
        assert_eq!(unchanged.status(), StatusCode::NOT_MODIFIED, "{path}");
        assert!(unchanged.bytes().await.unwrap().is_empty());
        let changed = h
            .request(Method::GET, &path)
            .header("If-Modified-Since", past)
            .send()
            .await
            .unwrap();
        assert_eq!(changed.status(), StatusCode::OK, "{path}");
    }
}

#[tokio::test]
async fn record_create_read_update_delete() {
    let h = Harness::new().await;
    let response = h
        .send_json(
            Method::POST,
            &format!("{API}/sobjects/Account/"),
            &json!({"Name": "Acme", "Industry": "Energy"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let created: Value = response.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created, json!({"id": id, "success": true, "errors": []}));
    assert_eq!(id.len(), 18);
    assert!(id.starts_with("001"));

    let record = h.get_json(&format!("{API}/sobjects/account/{id}")).await;
    assert_eq!(record["Name"], "Acme");
    assert_eq!(record["attributes"]["type"], "Account");
    assert_eq!(
        record["attributes"]["url"],
        format!("/services/data/v62.0/sobjects/Account/{id}")
    );
    let stamp = record["SystemModstamp"].as_str().unwrap();
    assert!(stamp.ends_with(".000+0000"), "{stamp}");

    let some = h
        .get_json(&format!("{API}/sobjects/Account/{id}?fields=Name,industry"))
        .await;
    let keys: Vec<&String> = some.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 3, "{some}");

    let update = h
        .send_json(
            Method::PATCH,
            &format!("{API}/sobjects/Account/{id}"),
            &json!({"Industry": "Banking"}),
        )
        .await;
    assert_eq!(update.status(), StatusCode::NO_CONTENT);
    // Clients that cannot PATCH override the method.
    let overridden = h
        .send_json(
            Method::POST,
            &format!("{API}/sobjects/Account/{id}?_HttpMethod=PATCH"),
            &json!({"Phone": "555-0100"}),
        )
        .await;
    assert_eq!(overridden.status(), StatusCode::NO_CONTENT);
    let record = h.get_json(&format!("{API}/sobjects/Account/{id}")).await;
    assert_eq!(record["Industry"], "Banking");
    assert_eq!(record["Phone"], "555-0100");

    let delete = h
        .request(Method::DELETE, &format!("{API}/sobjects/Account/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), StatusCode::NO_CONTENT);
    let (status, code, _) = error_code(h.get(&format!("{API}/sobjects/Account/{id}")).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::NOT_FOUND, "ENTITY_IS_DELETED")
    );
}

#[tokio::test]
async fn upsert_by_external_id_creates_updates_and_reports_ambiguity() {
    let h = Harness::new().await;
    let path = format!("{API}/sobjects/Invoice__c/External_Id__c/INV-1");
    let created = h
        .send_json(Method::PATCH, &path, &json!({"Amount__c": 10}))
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let body: Value = created.json().await.unwrap();
    assert_eq!(body["created"], true);
    assert_eq!(body["success"], true);
    let id = body["id"].as_str().unwrap().to_owned();

    let updated = h
        .send_json(Method::PATCH, &path, &json!({"Amount__c": 20}))
        .await;
    assert_eq!(updated.status(), StatusCode::OK);
    assert_eq!(
        updated.json::<Value>().await.unwrap(),
        json!({"id": id, "success": true, "errors": [], "created": false})
    );
    // Before API 46.0 an upsert that updates answers 204.
    let old = h
        .send_json(
            Method::PATCH,
            "/services/data/v45.0/sobjects/Invoice__c/External_Id__c/INV-1",
            &json!({"Amount__c": 30}),
        )
        .await;
    assert_eq!(old.status(), StatusCode::NO_CONTENT);

    let by_external_id = h.get_json(&path).await;
    assert_eq!(by_external_id["Id"], id.as_str());
    assert_eq!(by_external_id["Amount__c"], 30.0);

    // A field that is not an external id is not a resource.
    let (status, code, _) = error_code(
        h.send_json(
            Method::PATCH,
            &format!("{API}/sobjects/Invoice__c/Notes__c/x"),
            &json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::NOT_FOUND, "NOT_FOUND")
    );

    // updateOnly refuses to create.
    let (status, _, _) = error_code(
        h.send_json(
            Method::PATCH,
            &format!("{API}/sobjects/Invoice__c/External_Id__c/INV-2?updateOnly=true"),
            &json!({"Amount__c": 1}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn upsert_with_several_matches_answers_300() {
    let h = Harness::new().await;
    // Product2.ExternalId is an external id that is not unique, so two records may share it.
    let first = h
        .create("Product2", json!({"Name": "A", "ExternalId": "SKU-1"}))
        .await;
    let second = h
        .create("Product2", json!({"Name": "B", "ExternalId": "SKU-1"}))
        .await;
    let response = h
        .send_json(
            Method::PATCH,
            &format!("{API}/sobjects/Product2/ExternalId/SKU-1"),
            &json!({"Name": "C"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::MULTIPLE_CHOICES);
    let urls: Vec<String> = response.json().await.unwrap();
    let mut expected = vec![
        format!("/services/data/v62.0/sobjects/Product2/{first}"),
        format!("/services/data/v62.0/sobjects/Product2/{second}"),
    ];
    expected.sort();
    let mut urls = urls;
    urls.sort();
    assert_eq!(urls, expected);
}

#[tokio::test]
async fn insert_through_upsert_and_patch_without_value() {
    let h = Harness::new().await;
    let response = h
        .send_json(
            Method::POST,
            &format!("{API}/sobjects/Account/Id"),
            &json!({"Name": "Through upsert"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.json::<Value>().await.unwrap()["created"], true);
    let (status, code, body) = error_code(
        h.send_json(
            Method::PATCH,
            &format!("{API}/sobjects/Account/Id"),
            &json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED")
    );
    assert_eq!(
        body[0]["message"],
        "HTTP Method 'PATCH' not allowed. Allowed are GET,HEAD,POST"
    );
}

#[tokio::test]
async fn bad_bodies_get_salesforce_errors() {
    let h = Harness::new().await;
    let account = format!("{API}/sobjects/Account");
    let unknown_field = json!({"Name": "x", "Bogus__c": 1});
    let response = h.send_json(Method::POST, &account, &unknown_field).await;
    refused(response, StatusCode::BAD_REQUEST, "INVALID_FIELD").await;

    let malformed = h
        .request(Method::POST, &account)
        .header("Content-Type", "application/json")
        .body("{\"Name\": ")
        .send()
        .await
        .unwrap();
    let body = refused(malformed, StatusCode::BAD_REQUEST, "JSON_PARSER_ERROR").await;
    assert!(
        body[0]["message"]
            .as_str()
            .unwrap()
            .contains("[line:1, column:"),
        "{body}"
    );

    let not_a_number = json!({"Name": "x", "NumberOfEmployees": "many"});
    let response = h.send_json(Method::POST, &account, &not_a_number).await;
    refused(response, StatusCode::BAD_REQUEST, "JSON_PARSER_ERROR").await;

    let response = h.send_json(Method::POST, &account, &json!({})).await;
    let body = refused(response, StatusCode::BAD_REQUEST, "REQUIRED_FIELD_MISSING").await;
    assert_eq!(body[0]["fields"], json!(["Name"]));

    let response = h.send_json(Method::POST, &account, &json!([1])).await;
    refused(response, StatusCode::BAD_REQUEST, "JSON_PARSER_ERROR").await;

    let xml = h
        .request(Method::POST, &account)
        .header("Content-Type", "application/xml")
        .body("<Name>x</Name>")
        .send()
        .await
        .unwrap();
    refused(
        xml,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "UNSUPPORTED_MEDIA_TYPE",
    )
    .await;
}

#[tokio::test]
async fn unknown_resources_and_methods_get_salesforce_errors() {
    let h = Harness::new().await;
    let response = h.get(&format!("{API}/sobjects/Bogus/describe")).await;
    refused(response, StatusCode::NOT_FOUND, "NOT_FOUND").await;

    let (status, code, _) =
        error_code(h.get(&format!("{API}/sobjects/Account/001nope")).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{code}");

    let response = h.get(&format!("{API}/no/such/resource")).await;
    refused(response, StatusCode::NOT_FOUND, "NOT_FOUND").await;

    let put = h
        .request(Method::PUT, &format!("{API}/sobjects/Account"))
        .send()
        .await
        .unwrap();
    let body = refused(put, StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED").await;
    assert_eq!(
        body[0]["message"],
        "HTTP Method 'PUT' not allowed. Allowed are GET,HEAD,POST"
    );
}

#[tokio::test]
async fn updated_and_deleted_windows() {
    let h = Harness::new().await;
    let kept = h.create("Account", json!({"Name": "Kept"})).await;
    let gone = h.create("Account", json!({"Name": "Gone"})).await;
    let delete = h
        .request(Method::DELETE, &format!("{API}/sobjects/Account/{gone}"))
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), StatusCode::NO_CONTENT);

    let now = chrono::Utc::now();
    let start = (now - chrono::Duration::hours(1)).format("%Y-%m-%dT%H:%M:%SZ");
    let end = (now + chrono::Duration::hours(1)).format("%Y-%m-%dT%H:%M:%S%%2B00:00");
    let updated = h
        .get_json(&format!(
            "{API}/sobjects/Account/updated/?start={start}&end={end}"
        ))
        .await;
    let ids: Vec<&str> = updated["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(ids.contains(&kept.as_str()));
    assert!(!ids.contains(&gone.as_str()));
    assert!(
        updated["latestDateCovered"]
            .as_str()
            .unwrap()
            .ends_with("+0000")
    );

    let deleted = h
        .get_json(&format!(
            "{API}/sobjects/Account/deleted/?start={start}&end={end}"
        ))
        .await;
    let records = deleted["deletedRecords"].as_array().unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["id"], gone.as_str());
    assert!(deleted["earliestDateAvailable"].is_string());
    assert!(deleted["latestDateCovered"].is_string());

    let (status, code, _) = error_code(
        h.get(&format!(
            "{API}/sobjects/Account/updated/?start={end}&end={start}"
        ))
        .await,
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "INVALID_REPLICATION_DATE")
    );
    let (status, code, _) =
        error_code(h.get(&format!("{API}/sobjects/Account/updated")).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "MISSING_ARGUMENT")
    );
}
