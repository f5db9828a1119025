//! Bulk API 2.0 query jobs over HTTP, beyond one job's life: gzip, `/resultPages`,
//! listing, aborting and deleting jobs, and Bulk's refusals of what it cannot query.

// Helpers outside `#[test]` functions fail loudly too, as the tests do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Read as _;
use std::time::Duration;

use common::{API, Harness, refused, seed_accounts};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sfpg_emulator::http::EmulatorConfig;

async fn harness(delay: Duration) -> Harness {
    Harness::with(EmulatorConfig {
        bulk_processing_delay: delay,
        ..EmulatorConfig::default()
    })
    .await
}

#[tokio::test]
async fn results_are_gzipped_when_the_client_accepts_gzip() {
    let h = harness(Duration::ZERO).await;
    seed_accounts(&h.emulator, "Zip", 300);
    let id = h.completed_job("SELECT Id, Name FROM Account").await;
    // A client that does not decompress by itself, to see the bytes on the wire.
    let raw = reqwest::Client::builder().no_gzip().build().unwrap();
    let url = h.url(&format!("{API}/jobs/query/{id}/results"));
    let plain = raw.get(&url).bearer_auth(&h.token).send().await.unwrap();
    assert_eq!(plain.headers().get("content-encoding"), None);
    let plain = plain.bytes().await.unwrap();
    let zipped = raw
        .get(&url)
        .bearer_auth(&h.token)
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(zipped.headers()["content-encoding"], "gzip");
    assert_eq!(zipped.headers()["sforce-numberofrecords"], "300");
    let zipped = zipped.bytes().await.unwrap();
    assert!(
        zipped.len() < plain.len() / 2,
        "{} vs {}",
        zipped.len(),
        plain.len()
    );
    let mut unzipped = Vec::new();
    flate2::read::GzDecoder::new(&zipped[..])
        .read_to_end(&mut unzipped)
        .unwrap();
    assert_eq!(unzipped, plain);
}

#[tokio::test]
async fn result_pages_lists_up_to_five_page_urls() {
    let h = harness(Duration::ZERO).await;
    seed_accounts(&h.emulator, "Pages", 3);
    let id = h.completed_job("SELECT Id FROM Account").await;
    let body = h
        .get_json(&format!("{API}/jobs/query/{id}/resultPages"))
        .await;
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["resultPages", "nextRecordsUrl", "done"]);
    assert_eq!(body["done"], true);
    assert_eq!(body["nextRecordsUrl"], Value::Null);
    let pages = body["resultPages"].as_array().unwrap();
    assert_eq!(pages.len(), 1);
    let url = pages[0]["resultUrl"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("{API}/jobs/query/{id}/results?locator=")),
        "{url}"
    );
    // The URL is a results request like any other.
    let page = h.get(url).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()["sforce-numberofrecords"], "3");

    // Before API 58.0 the resource does not exist.
    let old = h
        .get(&format!("/services/data/v57.0/jobs/query/{id}/resultPages"))
        .await;
    refused(old, StatusCode::NOT_FOUND, "NOT_FOUND").await;
}

#[tokio::test]
async fn result_pages_walk_a_large_result_five_pages_at_a_time() {
    let h = harness(Duration::ZERO).await;
    // Eleven records in pages of two: six pages, five URLs and then one.
    seed_accounts(&h.emulator, "Big", 11);
    h.emulator.set_bulk_default_page_size(2);
    let id = h.completed_job("SELECT Id FROM Account").await;
    let first = h
        .get_json(&format!("{API}/jobs/query/{id}/resultPages"))
        .await;
    assert_eq!(first["done"], false);
    assert_eq!(first["resultPages"].as_array().unwrap().len(), 5);
    let next = first["nextRecordsUrl"].as_str().unwrap();
    assert!(next.starts_with(&format!("{API}/jobs/query/{id}/resultPages?locator=")));
    let second = h.get_json(next).await;
    assert_eq!(second["done"], true);
    assert_eq!(second["nextRecordsUrl"], Value::Null);
    let urls: Vec<String> = first["resultPages"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["resultPages"].as_array().unwrap())
        .map(|p| p["resultUrl"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(urls.len(), 6);
    // Fetched in any order, the pages hold every record once.
    let mut rows = Vec::new();
    for url in urls.iter().rev() {
        let page = h.get(url).await;
        let count: usize = page.headers()["sforce-numberofrecords"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let text = page.text().await.unwrap();
        assert_eq!(text.lines().count(), count + 1);
        rows.extend(text.lines().skip(1).map(str::to_owned));
    }
    rows.sort();
    rows.dedup();
    assert_eq!(rows.len(), 11);
}

#[tokio::test]
async fn jobs_are_listed_aborted_and_deleted() {
    let h = harness(Duration::from_secs(30)).await;
    let slow = h.create_job("SELECT Id FROM Account", "query").await;
    let slow_id = slow["id"].as_str().unwrap().to_owned();
    h.emulator.set_bulk_processing_delay(Duration::ZERO);
    let quick_id = h.completed_job("SELECT Name FROM Contact").await;

    let list = h.get_json(&format!("{API}/jobs/query")).await;
    let keys: Vec<&str> = list
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["done", "records", "nextRecordsUrl"]);
    assert_eq!(list["done"], true);
    assert_eq!(list["nextRecordsUrl"], Value::Null);
    let records = list["records"].as_array().unwrap();
    let ids: Vec<&str> = records.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [slow_id.as_str(), quick_id.as_str()]);
    assert_eq!(records[0]["jobType"], "V2Query");
    assert_eq!(records[0]["state"], "UploadComplete");
    assert_eq!(records[1]["object"], "Contact");
    assert!(records[0].get("numberRecordsProcessed").is_none());
    let classic = h
        .get_json(&format!("{API}/jobs/query?jobType=Classic"))
        .await;
    assert_eq!(classic["records"], json!([]));

    // Abort: the slow job stops where it is.
    let aborted = h
        .send_json(
            Method::PATCH,
            &format!("{API}/jobs/query/{slow_id}"),
            &json!({"state": "Aborted"}),
        )
        .await;
    assert_eq!(aborted.status(), StatusCode::OK);
    let aborted: Value = aborted.json().await.unwrap();
    assert_eq!(aborted["state"], "Aborted");
    assert_eq!(h.job_info(&slow_id).await["state"], "Aborted");
    let results = h.get(&format!("{API}/jobs/query/{slow_id}/results")).await;
    let body = refused(results, StatusCode::PRECONDITION_FAILED, "JOB_NOT_COMPLETE").await;
    assert!(
        body[0]["message"]
            .as_str()
            .unwrap()
            .ends_with("Current status: ABORTED"),
        "{body}"
    );
    // A finished job cannot be aborted; a job takes no other state.
    for (id, state) in [(&quick_id, "Aborted"), (&slow_id, "UploadComplete")] {
        let again = h
            .send_json(
                Method::PATCH,
                &format!("{API}/jobs/query/{id}"),
                &json!({"state": state}),
            )
            .await;
        refused(again, StatusCode::BAD_REQUEST, "INVALIDJOBSTATE").await;
    }

    // Delete: 204, then the job and its results are gone.
    let deleted = h
        .request(Method::DELETE, &format!("{API}/jobs/query/{quick_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let gone = h.get(&format!("{API}/jobs/query/{quick_id}/results")).await;
    refused(gone, StatusCode::NOT_FOUND, "NOT_FOUND").await;
    let gone = h.get(&format!("{API}/jobs/query/{quick_id}")).await;
    refused(gone, StatusCode::NOT_FOUND, "NOT_FOUND").await;
    let list = h.get_json(&format!("{API}/jobs/query")).await;
    assert_eq!(list["records"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_job_in_progress_cannot_be_deleted() {
    let h = harness(Duration::from_secs(30)).await;
    // Queued (UploadComplete) jobs may be deleted.
    let queued = h.create_job("SELECT Id FROM Account", "query").await;
    let queued = queued["id"].as_str().unwrap();
    let deleted = h
        .request(Method::DELETE, &format!("{API}/jobs/query/{queued}"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    // InProgress ones may not, until they end.
    h.emulator
        .add_query_job_fault(sfpg_emulator::http::QueryJobFault {
            processing_delay_ms: Some(600),
            ..Default::default()
        });
    let running = h.create_job("SELECT Id FROM Account", "query").await;
    let running = running["id"].as_str().unwrap();
    h.wait_for_state(running, "InProgress").await;
    let refused_delete = h
        .request(Method::DELETE, &format!("{API}/jobs/query/{running}"))
        .send()
        .await
        .unwrap();
    refused(refused_delete, StatusCode::BAD_REQUEST, "INVALIDJOBSTATE").await;
    h.wait_for_job(running).await;
    let deleted = h
        .request(Method::DELETE, &format!("{API}/jobs/query/{running}"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn bulk_refuses_what_it_cannot_query_at_job_creation() {
    let h = harness(Duration::ZERO).await;
    let cases = [
        (
            "SELECT Id, BillingAddress FROM Account",
            "Selecting compound data not supported in Bulk Query",
        ),
        (
            "SELECT Id, Owner.Name, (SELECT LastName FROM Contacts) FROM Account",
            "Aggregate Relationships not supported in Bulk V2 Query with CSV content type",
        ),
        (
            "SELECT COUNT() FROM Account",
            "Aggregate queries are not supported in Bulk V2 Query",
        ),
        (
            "SELECT Industry, COUNT(Id) FROM Account GROUP BY Industry",
            "Aggregate queries are not supported in Bulk V2 Query",
        ),
        (
            "SELECT Industry FROM Account GROUP BY Industry",
            "GROUP BY is not supported in Bulk V2 Query",
        ),
        (
            "SELECT Id FROM Account LIMIT 10 OFFSET 5",
            "OFFSET is not supported in Bulk V2 Query",
        ),
        (
            "SELECT TYPEOF What WHEN Account THEN Name END FROM Task",
            "TYPEOF is not supported in Bulk V2 Query",
        ),
    ];
    for (soql, message) in cases {
        let response = h
            .create_job_raw("v62.0", &json!({"operation": "query", "query": soql}))
            .await;
        let body = refused(response, StatusCode::BAD_REQUEST, "API_ERROR").await;
        assert_eq!(body[0]["message"], message, "{soql}");
    }
    // Child-to-parent dot notation, ORDER BY and LIMIT are served.
    let id = h
        .completed_job("SELECT Id, Owner.Name FROM Account ORDER BY Name LIMIT 5")
        .await;
    assert_eq!(h.job_info(&id).await["state"], "JobComplete");
    let list = h.get_json(&format!("{API}/jobs/query")).await;
    assert_eq!(
        list["records"].as_array().unwrap().len(),
        1,
        "refused jobs do not exist"
    );
}
