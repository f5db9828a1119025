//! Bulk API 2.0 query limits and faults over HTTP: `DailyBulkV2QueryJobs` and
//! `DailyBulkV2QueryFileStorageMB` in `/limits/` and their refusals, every Bulk request
//! counted against `DailyApiRequests`, and the admin API's failing, expiring, not-ready
//! and cut-off jobs.

// Helpers outside `#[test]` functions fail loudly too, as the tests do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{API, Harness, refused, seed_accounts};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sfpg_emulator::http::{EmulatorConfig, JobState, QueryJobFault};

async fn harness() -> Harness {
    Harness::with(EmulatorConfig {
        bulk_processing_delay: Duration::ZERO,
        ..EmulatorConfig::default()
    })
    .await
}

async fn limits(h: &Harness) -> Value {
    h.get_json(&format!("{API}/limits")).await
}

#[tokio::test]
async fn query_jobs_and_result_storage_are_counted_in_limits() {
    let h = harness().await;
    let before = limits(&h).await;
    assert_eq!(
        before["DailyBulkV2QueryJobs"],
        json!({"Max": 10000, "Remaining": 10000})
    );
    assert_eq!(
        before["DailyBulkV2QueryFileStorageMB"],
        json!({"Max": 976562, "Remaining": 976562})
    );
    // About 2.5 MB of CSV: 4,000 accounts with a 600-character description.
    let username = h.emulator.users()[0].username.clone();
    let description = "x".repeat(600);
    for i in 0..4_000 {
        let mut fields = serde_json::Map::new();
        fields.insert("Name".into(), json!(format!("Big {i}")));
        fields.insert("Description".into(), json!(description));
        h.emulator
            .create_as("Account", &fields, Some(&username))
            .unwrap();
    }
    let id = h.completed_job("SELECT Id, Description FROM Account").await;
    let pages = h.all_pages(&id, Some(1_500)).await;
    let bytes: usize = pages.iter().map(|(_, text)| text.len()).sum();
    assert!(bytes > 2_400_000, "{bytes}");
    // Fetching a page again does not count again.
    h.results_page("v62.0", &id, None, Some(1_500), false).await;
    let after = limits(&h).await;
    assert_eq!(after["DailyBulkV2QueryJobs"]["Remaining"], 9_999);
    let kb = (bytes as u64) / 1024;
    let expected = (1_000_000_000 - kb) / 1024;
    assert_eq!(
        after["DailyBulkV2QueryFileStorageMB"]["Remaining"], expected,
        "{bytes} bytes"
    );
}

#[tokio::test]
async fn spent_bulk_allocations_refuse_new_jobs() {
    let h = harness().await;
    h.emulator.set_bulk_query_jobs_max(2);
    h.completed_job("SELECT Id FROM Account").await;
    h.emulator.consume_bulk_query_jobs(1);
    let refused_job = h
        .create_job_raw(
            "v62.0",
            &json!({"operation": "query", "query": "SELECT Id FROM Account"}),
        )
        .await;
    let body = refused(refused_job, StatusCode::BAD_REQUEST, "LIMIT_EXCEEDED").await;
    assert_eq!(
        body[0]["message"],
        "Max bulk v2 query jobs (2) per 24 hrs has been reached"
    );
    assert_eq!(limits(&h).await["DailyBulkV2QueryJobs"]["Remaining"], 0);

    // The admin API over HTTP: reset, then spend the result storage.
    let reset = h
        .admin(Method::POST, "/bulk/limits/reset")
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), StatusCode::NO_CONTENT);
    let spent = h
        .admin(Method::PUT, "/bulk/limits")
        .json(&json!({"queryJobsMax": 10000, "consumeResultKb": 1_000_000_000u64}))
        .send()
        .await
        .unwrap();
    let spent: Value = spent.json().await.unwrap();
    assert_eq!(spent["DailyBulkV2QueryFileStorageMB"]["Remaining"], 0);
    let refused_job = h
        .create_job_raw(
            "v62.0",
            &json!({"operation": "query", "query": "SELECT Id FROM Account"}),
        )
        .await;
    let body = refused(refused_job, StatusCode::BAD_REQUEST, "LIMIT_EXCEEDED").await;
    assert_eq!(
        body[0]["message"],
        "Max bulk v2 query result size stored (1000000000) kb per 24 hrs has been exceeded"
    );
}

#[tokio::test]
async fn every_bulk_request_counts_against_daily_api_requests() {
    let h = harness().await;
    seed_accounts(&h.emulator, "Counted", 5);
    let (start, _) = h.emulator.api_usage();
    let created = h.create_job("SELECT Id FROM Account", "query").await;
    let id = created["id"].as_str().unwrap();
    let mut requests = 1;
    loop {
        requests += 1;
        if h.job_info(id).await["state"] == "JobComplete" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let pages = h.all_pages(id, Some(2)).await;
    requests += pages.len() as u64;
    requests += 1;
    h.get_json(&format!("{API}/jobs/query/{id}/resultPages"))
        .await;
    requests += 1;
    h.get_json(&format!("{API}/jobs/query")).await;
    let (used, _) = h.emulator.api_usage();
    assert_eq!(used - start, requests);
    let limits = limits(&h).await;
    // The /limits/ call itself counts too.
    assert_eq!(limits["DailyApiRequests"]["Remaining"], 15_000 - (used + 1));
}

#[tokio::test]
async fn a_job_fails_after_some_records_with_its_error_message() {
    let h = harness().await;
    seed_accounts(&h.emulator, "Fail", 10);
    let rule = h
        .admin(Method::POST, "/bulk/query-job-faults")
        .json(&json!({"object": "account", "failAfterRecords": 4,
                      "errorMessage": "InternalServerError: retried too often"}))
        .send()
        .await
        .unwrap();
    assert_eq!(rule.status(), StatusCode::CREATED);
    // A job on another object is not affected; the next Account job is.
    let contact = h.completed_job("SELECT Id FROM Contact").await;
    assert_eq!(h.job_info(&contact).await["state"], "JobComplete");
    let created = h.create_job("SELECT Id FROM Account", "query").await;
    let id = created["id"].as_str().unwrap();
    let info = h.wait_for_job(id).await;
    assert_eq!(info["state"], "Failed");
    assert_eq!(info["numberRecordsProcessed"], 4);
    assert_eq!(
        info["errorMessage"],
        "InternalServerError: retried too often"
    );
    let results = h.get(&format!("{API}/jobs/query/{id}/results")).await;
    let body = refused(results, StatusCode::PRECONDITION_FAILED, "JOB_NOT_COMPLETE").await;
    assert!(
        body[0]["message"]
            .as_str()
            .unwrap()
            .ends_with("Current status: FAILED")
    );
    // The rule ran out: the next job completes.
    h.completed_job("SELECT Id FROM Account").await;

    // A complete job can be failed afterwards, too.
    let done = h.completed_job("SELECT Id FROM Account").await;
    let failed = h
        .admin(Method::POST, &format!("/bulk/query-jobs/{done}/fail"))
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), StatusCode::NO_CONTENT);
    let info = h.job_info(&done).await;
    assert_eq!(info["state"], "Failed");
    assert!(info["errorMessage"].as_str().unwrap().contains("15 times"));
}

#[tokio::test]
async fn an_expired_job_and_its_locators_answer_404() {
    let h = harness().await;
    seed_accounts(&h.emulator, "Expire", 5);
    let id = h.completed_job("SELECT Id FROM Account").await;
    let first = h.results_page("v62.0", &id, None, Some(2), false).await;
    let locator = first.locator.unwrap();
    let expired = h
        .admin(Method::DELETE, &format!("/bulk/query-jobs/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(expired.status(), StatusCode::NO_CONTENT);
    let page = h
        .request(Method::GET, &format!("{API}/jobs/query/{id}/results"))
        .query(&[("locator", locator.as_str())])
        .send()
        .await
        .unwrap();
    refused(page, StatusCode::NOT_FOUND, "NOT_FOUND").await;
    let info = h.get(&format!("{API}/jobs/query/{id}")).await;
    refused(info, StatusCode::NOT_FOUND, "NOT_FOUND").await;
    assert!(!h.emulator.expire_query_job(&id));
}

#[tokio::test]
async fn the_412_poll_race_holds_results_back_after_job_complete() {
    let h = harness().await;
    seed_accounts(&h.emulator, "Race", 3);
    h.emulator.add_query_job_fault(QueryJobFault {
        results_not_ready: 2,
        ..QueryJobFault::default()
    });
    let id = h.completed_job("SELECT Id FROM Account").await;
    assert_eq!(h.emulator.query_job_state(&id), Some(JobState::JobComplete));
    for _ in 0..2 {
        let early = h.get(&format!("{API}/jobs/query/{id}/results")).await;
        let body = refused(early, StatusCode::PRECONDITION_FAILED, "JOB_NOT_COMPLETE").await;
        assert!(
            body[0]["message"]
                .as_str()
                .unwrap()
                .ends_with("IN_PROGRESS"),
            "{body}"
        );
        assert_eq!(h.job_info(&id).await["state"], "JobComplete");
    }
    let page = h.results_page("v62.0", &id, None, None, false).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.number_of_records.as_deref(), Some("3"));
}

#[tokio::test]
async fn a_cut_download_fails_mid_body_and_the_next_one_is_whole() {
    let h = harness().await;
    seed_accounts(&h.emulator, "Cut", 3_000);
    h.emulator.add_query_job_fault(QueryJobFault {
        cut_download_after_records: Some(1_500),
        ..QueryJobFault::default()
    });
    let id = h.completed_job("SELECT Id, Name FROM Account").await;
    let cut = h.get(&format!("{API}/jobs/query/{id}/results")).await;
    assert_eq!(cut.status(), StatusCode::OK);
    assert_eq!(cut.headers()["sforce-numberofrecords"], "3000");
    assert!(cut.bytes().await.is_err(), "the body ends with an error");
    let whole = h.results_page("v62.0", &id, None, None, false).await;
    assert_eq!(whole.text().lines().count(), 3_001);
}

#[tokio::test]
async fn slow_processing_keeps_a_job_in_progress() {
    let h = harness().await;
    let set = h
        .admin(Method::PUT, "/bulk/processing-delay")
        .json(&json!({"ms": 60_000}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), StatusCode::NO_CONTENT);
    let created = h.create_job("SELECT Id FROM Account", "query").await;
    let id = created["id"].as_str().unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(h.job_info(id).await["state"], "UploadComplete");
    h.emulator.add_query_job_fault(QueryJobFault {
        processing_delay_ms: Some(0),
        ..QueryJobFault::default()
    });
    // A rule's own delay wins over the emulator's.
    h.completed_job("SELECT Id FROM Account").await;
}

#[tokio::test]
async fn jobs_are_deleted_seven_days_after_they_end() {
    let clock = sfpg_emulator::org::ManualClock::new(chrono::Utc::now());
    let org = sfpg_emulator::org::Org::with_clock(std::sync::Arc::new(clock.clone())).unwrap();
    let h = Harness::with(EmulatorConfig {
        bulk_processing_delay: Duration::ZERO,
        org: sfpg_emulator::http::OrgSource::Given(Box::new(org)),
        ..EmulatorConfig::default()
    })
    .await;
    let old = h.completed_job("SELECT Id FROM Account").await;
    clock.advance(chrono::Duration::days(7));
    let kept = h.completed_job("SELECT Id FROM Account").await;
    assert_eq!(
        h.job_info(&old).await["state"],
        "JobComplete",
        "7 days: still there"
    );
    clock.advance(chrono::Duration::seconds(2));
    h.completed_job("SELECT Id FROM Account").await;
    let gone = h.get(&format!("{API}/jobs/query/{old}")).await;
    refused(gone, StatusCode::NOT_FOUND, "NOT_FOUND").await;
    assert_eq!(h.job_info(&kept).await["state"], "JobComplete");
}

/// `DailyBulkApiBatches`: an ingest job uses one batch per 10,000 records it processes;
/// once none is left, creating an ingest job is refused.
#[tokio::test]
async fn ingest_jobs_use_batches_and_are_refused_once_they_are_spent() {
    let h = harness().await;
    assert_eq!(
        limits(&h).await["DailyBulkApiBatches"],
        json!({"Max": 15000, "Remaining": 15000})
    );
    h.emulator.set_bulk_batches_max(1);
    let body = json!({"object": "Account", "operation": "insert", "lineEnding": "LF"});
    let created: Value = h
        .send_json(Method::POST, &format!("{API}/jobs/ingest"), &body)
        .await
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    let mut csv = String::from("Name\n");
    for i in 0..3 {
        csv.push_str(&format!("Batch {i}\n"));
    }
    let put = h
        .request(Method::PUT, &format!("{API}/jobs/ingest/{id}/batches"))
        .header("Content-Type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::CREATED);
    h.send_json(
        Method::PATCH,
        &format!("{API}/jobs/ingest/{id}"),
        &json!({"state": "UploadComplete"}),
    )
    .await;
    // Three records: one batch (a batch holds up to 10,000), the whole allocation.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while limits(&h).await["DailyBulkApiBatches"]["Remaining"] != 0 {
        assert!(std::time::Instant::now() < deadline, "no batch counted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let response = h
        .send_json(Method::POST, &format!("{API}/jobs/ingest"), &body)
        .await;
    let refusal = refused(response, StatusCode::BAD_REQUEST, "LIMIT_EXCEEDED").await;
    assert!(refusal.to_string().contains("batches"), "{refusal}");
}
