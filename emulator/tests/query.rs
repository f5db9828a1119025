//! SOQL over HTTP: `/query/` and `/queryAll/`, paging by `nextRecordsUrl` with
//! `Sforce-Query-Options` batch sizes, locator expiry, and SOQL errors.

// Helpers outside `#[test]` functions fail loudly too, as the tests do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{API, Harness, error_code, seed_accounts};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use sfpg_emulator::http::EmulatorConfig;

async fn query_with_batch(h: &Harness, resource: &str, soql: &str, batch: Option<u32>) -> Value {
    let mut request = h
        .request(Method::GET, &format!("{API}/{resource}"))
        .query(&[("q", soql)]);
    if let Some(batch) = batch {
        request = request.header("Sforce-Query-Options", format!("batchSize={batch}"));
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

#[tokio::test]
async fn pages_follow_next_records_url_until_done() {
    let h = Harness::new().await;
    let ids = seed_accounts(&h.emulator, "Paged", 450);
    let soql = "SELECT Id, Name FROM Account WHERE Name LIKE 'Paged%' ORDER BY Name";

    let mut page = query_with_batch(&h, "query", soql, Some(200)).await;
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        pages += 1;
        assert_eq!(page["totalSize"], 450, "totalSize on every page");
        let records = page["records"].as_array().unwrap();
        seen.extend(records.iter().map(|r| r["Id"].as_str().unwrap().to_owned()));
        if page["done"] == true {
            assert!(page.get("nextRecordsUrl").is_none());
            break;
        }
        let next = page["nextRecordsUrl"].as_str().unwrap().to_owned();
        assert!(next.starts_with("/services/data/v62.0/query/0r8"), "{next}");
        assert_eq!(records.len(), 200);
        // The follow-up is a plain GET on the path, with no parameters.
        page = h.get_json(&next).await;
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ids);
}

#[tokio::test]
async fn batch_size_defaults_to_2000_and_is_clamped() {
    let h = Harness::new().await;
    seed_accounts(&h.emulator, "Batch", 2_100);
    let soql = "SELECT Id FROM Account WHERE Name LIKE 'Batch%'";
    let default = query_with_batch(&h, "query", soql, None).await;
    assert_eq!(default["records"].as_array().unwrap().len(), 2000);
    assert_eq!(default["done"], false);
    let small = query_with_batch(&h, "query", soql, Some(10)).await;
    assert_eq!(small["records"].as_array().unwrap().len(), 200);
    let large = query_with_batch(&h, "query", soql, Some(5000)).await;
    assert_eq!(large["records"].as_array().unwrap().len(), 2000);
    let last = h.get_json(large["nextRecordsUrl"].as_str().unwrap()).await;
    assert_eq!(last["records"].as_array().unwrap().len(), 100);
    assert_eq!(last["done"], true);
}

#[tokio::test]
async fn query_all_includes_the_recycle_bin_on_every_page() {
    let h = Harness::new().await;
    let ids = seed_accounts(&h.emulator, "Binned", 300);
    for id in &ids[..250] {
        h.emulator.delete_as("Account", id, None).unwrap();
    }
    let soql = "SELECT Id, IsDeleted FROM Account WHERE Name LIKE 'Binned%' ORDER BY Id";
    let live = query_with_batch(&h, "query", soql, Some(200)).await;
    assert_eq!(live["totalSize"], 50);
    let first = query_with_batch(&h, "queryAll", soql, Some(200)).await;
    assert_eq!(first["totalSize"], 300);
    let next = first["nextRecordsUrl"].as_str().unwrap();
    // queryAll's follow-ups use /query/ too, and still return deleted rows.
    assert!(next.starts_with("/services/data/v62.0/query/"), "{next}");
    let second = h.get_json(next).await;
    let records = second["records"].as_array().unwrap();
    assert_eq!(records.len(), 100);
    assert_eq!(
        records.iter().filter(|r| r["IsDeleted"] == true).count(),
        50
    );
}

#[tokio::test]
async fn count_queries_report_only_total_size() {
    let h = Harness::new().await;
    seed_accounts(&h.emulator, "Counted", 7);
    let body = h
        .query("SELECT COUNT() FROM Account WHERE Name LIKE 'Counted%'")
        .await;
    assert_eq!(body["totalSize"], 7);
    assert_eq!(body["done"], true);
    assert_eq!(body["records"], serde_json::json!([]));
}

#[tokio::test]
async fn expired_locators_answer_invalid_query_locator() {
    let h = Harness::new().await;
    seed_accounts(&h.emulator, "Expiring", 250);
    let soql = "SELECT Id FROM Account WHERE Name LIKE 'Expiring%'";
    let first = query_with_batch(&h, "query", soql, Some(200)).await;
    let next = first["nextRecordsUrl"].as_str().unwrap().to_owned();
    assert_eq!(h.emulator.expire_query_locators(), 1);
    let (status, code, _) = error_code(h.get(&next).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "INVALID_QUERY_LOCATOR")
    );

    let (status, code, _) = error_code(h.get(&format!("{API}/query/0r8garbage-200")).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "INVALID_QUERY_LOCATOR")
    );
}

#[tokio::test]
async fn idle_locators_expire_after_their_lifetime() {
    let h = Harness::with(EmulatorConfig {
        query_locator_lifetime: Duration::from_millis(300),
        ..EmulatorConfig::default()
    })
    .await;
    seed_accounts(&h.emulator, "Idle", 250);
    let first = query_with_batch(&h, "query", "SELECT Id FROM Account", Some(200)).await;
    let next = first["nextRecordsUrl"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (_, code, _) = error_code(h.get(&next).await).await;
    assert_eq!(code, "INVALID_QUERY_LOCATOR");
}

#[tokio::test]
async fn soql_errors_have_salesforce_codes() {
    let h = Harness::new().await;
    let cases = [
        ("SELECT Id FROM Account WHERE", "MALFORMED_QUERY"),
        ("SELECT Bogus__c FROM Account", "INVALID_FIELD"),
        ("SELECT Id FROM Bogus__c", "INVALID_TYPE"),
    ];
    for (soql, expected) in cases {
        let response = h
            .request(Method::GET, &format!("{API}/query"))
            .query(&[("q", soql)])
            .send()
            .await
            .unwrap();
        let (status, code, body) = error_code(response).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::BAD_REQUEST, expected),
            "{soql}"
        );
        if expected == "MALFORMED_QUERY" {
            assert!(
                body[0]["message"]
                    .as_str()
                    .unwrap()
                    .contains("ERROR at Row:1:Column:"),
                "{body}"
            );
        }
    }
    let (status, code, _) = error_code(h.get(&format!("{API}/query")).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "MALFORMED_QUERY")
    );
}

#[tokio::test]
async fn records_use_canonical_names_and_nest_parents() {
    let h = Harness::new().await;
    let account = h
        .create("Account", serde_json::json!({"Name": "Parent Co"}))
        .await;
    h.create(
        "Contact",
        serde_json::json!({"LastName": "Child", "AccountId": account}),
    )
    .await;
    let body = h
        .query("select lastname, account.name from contact where lastname = 'Child'")
        .await;
    let record = &body["records"][0];
    assert_eq!(record["LastName"], "Child");
    assert_eq!(record["Account"]["Name"], "Parent Co");
    assert_eq!(record["attributes"]["type"], "Contact");
    assert_eq!(record["Account"]["attributes"]["type"], "Account");
}
