//! Bulk API 2.0 query jobs over HTTP: creation and job info byte for byte, the states
//! in the background, CSV results paged by locator, the snapshot a job reads, and the
//! refusals (404 unknown job, 412 before JobComplete, 409 another API version).

// Helpers outside `#[test]` functions fail loudly too, as the tests do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

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

fn keys(value: &Value) -> Vec<&str> {
    value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect()
}

#[tokio::test]
async fn job_info_has_salesforce_keys_and_states_advance_in_the_background() {
    let h = harness(Duration::from_millis(300)).await;
    seed_accounts(&h.emulator, "Acme", 3);
    let user_id = h.emulator.user_id(&h.emulator.users()[0].username).unwrap();

    let created = h.create_job("SELECT Id, Name FROM Account", "query").await;
    assert_eq!(
        keys(&created),
        [
            "id",
            "operation",
            "object",
            "createdById",
            "createdDate",
            "systemModstamp",
            "state",
            "concurrencyMode",
            "contentType",
            "apiVersion",
            "lineEnding",
            "columnDelimiter"
        ]
    );
    let id = created["id"].as_str().unwrap();
    assert!(id.starts_with("750") && id.len() == 18, "{id}");
    assert_eq!(created["operation"], "query");
    assert_eq!(created["object"], "Account");
    assert_eq!(created["createdById"], user_id.as_str());
    assert_eq!(created["state"], "UploadComplete");
    assert_eq!(created["concurrencyMode"], "Parallel");
    assert_eq!(created["contentType"], "CSV");
    assert_eq!(created["apiVersion"], json!(62.0));
    assert_eq!(created["lineEnding"], "LF");
    assert_eq!(created["columnDelimiter"], "COMMA");
    let date = created["createdDate"].as_str().unwrap();
    assert!(
        date.len() == 28 && date.ends_with("+0000") && date.as_bytes()[23] == b'+',
        "{date}"
    );

    h.wait_for_state(id, "InProgress").await;
    let done = h.wait_for_job(id).await;
    assert_eq!(
        keys(&done),
        [
            "id",
            "operation",
            "object",
            "createdById",
            "createdDate",
            "systemModstamp",
            "state",
            "concurrencyMode",
            "contentType",
            "apiVersion",
            "jobType",
            "lineEnding",
            "columnDelimiter",
            "numberRecordsProcessed",
            "retries",
            "totalProcessingTime",
            "isPkChunkingSupported"
        ]
    );
    assert_eq!(done["state"], "JobComplete");
    assert_eq!(done["jobType"], "V2Query");
    assert_eq!(done["numberRecordsProcessed"], 3);
    assert_eq!(done["retries"], 0);
    assert_eq!(done["isPkChunkingSupported"], true);
    assert!(
        done["totalProcessingTime"].as_u64().unwrap() >= 250,
        "{done}"
    );
}

#[tokio::test]
async fn results_are_quoted_csv_in_select_order_and_id_order() {
    let h = harness(Duration::ZERO).await;
    let mut ids = seed_accounts(&h.emulator, "Acme", 3);
    let username = h.emulator.users()[0].username.clone();
    let mut fields = serde_json::Map::new();
    fields.insert("Name".into(), json!("Quote \"Co\", Ltd"));
    fields.insert("NumberOfEmployees".into(), json!(42));
    fields.insert("AnnualRevenue".into(), json!(2500000));
    fields.insert("Active__c".into(), json!("Yes"));
    ids.push(
        h.emulator
            .create_as("Account", &fields, Some(&username))
            .unwrap(),
    );

    let id = h
        .completed_job(
            "SELECT Name, Id, NumberOfEmployees, AnnualRevenue, Owner.Username, \
             Parent.Name, CreatedDate FROM Account",
        )
        .await;
    let page = h.results_page("v62.0", &id, None, None, false).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.content_type.as_deref(), Some("text/csv"));
    assert_eq!(page.number_of_records.as_deref(), Some("4"));
    assert_eq!(page.locator.as_deref(), Some("null"));
    let text = page.text();
    let mut lines = text.split('\n');
    assert_eq!(
        lines.next().unwrap(),
        "\"Name\",\"Id\",\"NumberOfEmployees\",\"AnnualRevenue\",\"Owner.Username\",\
         \"Parent.Name\",\"CreatedDate\""
    );
    let rows: Vec<&str> = lines.filter(|l| !l.is_empty()).collect();
    assert_eq!(rows.len(), 4);
    // Without ORDER BY the records come in Id order.
    let mut sorted = ids.clone();
    sorted.sort();
    for (row, id) in rows.iter().zip(&sorted) {
        assert!(row.contains(&format!(",\"{id}\",")), "{row}");
    }
    let last = rows[3];
    assert!(
        last.starts_with(&format!(
            "\"Quote \"\"Co\"\", Ltd\",\"{}\",\"42\",\"2500000.0\",\"{username}\",\"\",\"",
            ids[3]
        )),
        "{last}"
    );
    // Datetimes as `2021-11-06T17:38:40.000Z`.
    let created = last.rsplit(',').next().unwrap().trim_matches('"');
    assert!(
        created.len() == 24 && created.ends_with(".000Z"),
        "{created}"
    );
    assert!(text.ends_with('\n') && !text.contains('\r'));
}

#[tokio::test]
async fn locators_page_the_results_and_can_be_fetched_again() {
    let h = harness(Duration::ZERO).await;
    seed_accounts(&h.emulator, "Paged", 25);
    let id = h
        .completed_job("SELECT Id, Name FROM Account ORDER BY Name DESC")
        .await;
    let pages = h.all_pages(&id, Some(10)).await;
    let counts: Vec<usize> = pages.iter().map(|(n, _)| *n).collect();
    assert_eq!(counts, [10, 10, 5]);
    let mut names = Vec::new();
    for (n, text) in &pages {
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some("\"Id\",\"Name\""),
            "a header on every page"
        );
        let rows: Vec<&str> = lines.collect();
        assert_eq!(rows.len(), *n);
        names.extend(
            rows.iter()
                .map(|r| r.rsplit(',').next().unwrap().to_owned()),
        );
    }
    let expected: Vec<String> = (0..25).rev().map(|i| format!("\"Paged {i:03}\"")).collect();
    assert_eq!(names, expected, "ORDER BY is kept across pages");

    // The second page's locator names the same page when fetched again.
    let first = h.results_page("v62.0", &id, None, Some(10), false).await;
    let locator = first.locator.unwrap();
    let again = h
        .results_page("v62.0", &id, Some(&locator), Some(10), false)
        .await;
    assert_eq!(again.text(), pages[1].1);
    let once_more = h
        .results_page("v62.0", &id, Some(&locator), Some(10), false)
        .await;
    assert_eq!(once_more.body, again.body);

    // Without maxRecords, one page holds them all here.
    let whole = h.results_page("v62.0", &id, None, None, false).await;
    assert_eq!(whole.number_of_records.as_deref(), Some("25"));
    assert_eq!(whole.locator.as_deref(), Some("null"));

    let bad = h
        .results_page("v62.0", &id, Some("not-a-locator"), None, false)
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_job_reads_the_org_as_it_was_when_it_ran() {
    let h = harness(Duration::from_millis(600)).await;
    let ids = seed_accounts(&h.emulator, "Before", 2);
    let id = h.create_job("SELECT Id, Name FROM Account", "query").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    h.wait_for_state(&id, "InProgress").await;
    // Changes while the job is in progress, after it read the org.
    let mut renamed = serde_json::Map::new();
    renamed.insert("Name".into(), json!("After"));
    h.emulator
        .update_as("Account", &ids[0], &renamed, None)
        .unwrap();
    h.emulator.delete_as("Account", &ids[1], None).unwrap();
    seed_accounts(&h.emulator, "New", 1);
    assert_eq!(h.wait_for_job(&id).await["numberRecordsProcessed"], 2);
    let text = h.results_page("v62.0", &id, None, None, false).await.text();
    assert_eq!(
        text,
        format!(
            "\"Id\",\"Name\"\n\"{}\",\"Before 000\"\n\"{}\",\"Before 001\"\n",
            ids[0], ids[1]
        )
    );

    // queryAll sees the record now in the recycle bin; query does not.
    let all = h.create_job("SELECT Id FROM Account", "queryAll").await;
    let all = h.wait_for_job(all["id"].as_str().unwrap()).await;
    assert_eq!(all["operation"], "queryAll");
    assert_eq!(all["numberRecordsProcessed"], 3);
    let live = h.completed_job("SELECT Id FROM Account").await;
    assert_eq!(h.job_info(&live).await["numberRecordsProcessed"], 2);
}

#[tokio::test]
async fn results_before_completion_in_another_version_or_of_no_job_are_refused() {
    let h = harness(Duration::from_secs(30)).await;
    let created = h.create_job("SELECT Id FROM Account", "query").await;
    let id = created["id"].as_str().unwrap();
    let early = h
        .request(Method::GET, &format!("{API}/jobs/query/{id}/results"))
        .send()
        .await
        .unwrap();
    let body = refused(early, StatusCode::PRECONDITION_FAILED, "JOB_NOT_COMPLETE").await;
    assert_eq!(
        body[0]["message"],
        "can only download query results of successfully completed bulk job with status: \
         JOB_COMPLETE. Current status: UPLOAD_COMPLETE"
    );

    let h = harness(Duration::ZERO).await;
    let id = h.completed_job("SELECT Id FROM Account").await;
    let other = h
        .request(
            Method::GET,
            &format!("/services/data/v61.0/jobs/query/{id}/results"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::CONFLICT);
    let unknown = h
        .request(
            Method::GET,
            &format!("{API}/jobs/query/7508d0000000999AAA/results"),
        )
        .send()
        .await
        .unwrap();
    refused(unknown, StatusCode::NOT_FOUND, "NOT_FOUND").await;
    let info = h
        .request(Method::GET, &format!("{API}/jobs/query/7508d0000000999AAA"))
        .send()
        .await
        .unwrap();
    refused(info, StatusCode::NOT_FOUND, "NOT_FOUND").await;
    // Before API 47.0 there are no query jobs.
    let old = h
        .create_job_raw(
            "v46.0",
            &json!({"operation": "query", "query": "SELECT Id FROM Account"}),
        )
        .await;
    refused(old, StatusCode::NOT_FOUND, "NOT_FOUND").await;
}

#[tokio::test]
async fn job_creation_checks_its_fields_and_the_query() {
    let h = harness(Duration::ZERO).await;
    let cases = [
        (
            json!({"operation": "query", "query": "SELECT Nope__c FROM Account"}),
            "INVALID_FIELD",
        ),
        (
            json!({"operation": "query", "query": "SELECT Id FROM Nope"}),
            "INVALID_TYPE",
        ),
        (
            json!({"operation": "query", "query": "SELECT FROM"}),
            "MALFORMED_QUERY",
        ),
        (
            json!({"operation": "insert", "query": "SELECT Id FROM Account"}),
            "INVALIDJOB",
        ),
        (json!({"query": "SELECT Id FROM Account"}), "INVALIDJOB"),
        (json!({"operation": "query"}), "INVALIDJOB"),
        (
            json!({"operation": "query", "query": "SELECT Id FROM Account", "columnDelimiter": "SPACE"}),
            "INVALIDJOB",
        ),
        (
            json!({"operation": "query", "query": "SELECT Id FROM Account", "contentType": "JSON"}),
            "INVALIDJOB",
        ),
    ];
    for (body, code) in cases {
        let response = h.create_job_raw("v62.0", &body).await;
        refused(response, StatusCode::BAD_REQUEST, code).await;
    }
    // The CSV format the job names is the one its results use.
    seed_accounts(&h.emulator, "Tab", 1);
    let created = h
        .create_job_raw(
            "v62.0",
            &json!({"operation": "query", "query": "SELECT Name, Id FROM Account",
                    "contentType": "CSV", "columnDelimiter": "TAB", "lineEnding": "CRLF"}),
        )
        .await;
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["columnDelimiter"], "TAB");
    assert_eq!(created["lineEnding"], "CRLF");
    let id = created["id"].as_str().unwrap();
    h.wait_for_job(id).await;
    let text = h.results_page("v62.0", id, None, None, false).await.text();
    assert!(
        text.starts_with("\"Name\"\t\"Id\"\r\n\"Tab 000\"\t\"001"),
        "{text}"
    );
}
