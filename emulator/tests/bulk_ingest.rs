//! Bulk API 2.0 ingest jobs over HTTP: the job's life (create Open with contentUrl, PUT
//! the CSV, close, processing in the background), the three result files byte for byte,
//! each operation saving through the org's REST rules, and the refusals (upload when not
//! Open, two uploads, over 150 MB, a header the object lacks, the wrong line ending).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{API, Harness, refused};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sfpg_emulator::http::EmulatorConfig;

async fn harness() -> Harness {
    Harness::with(EmulatorConfig {
        bulk_processing_delay: Duration::from_millis(100),
        ..EmulatorConfig::default()
    })
    .await
}

async fn create(h: &Harness, body: Value) -> Value {
    let response = h
        .send_json(Method::POST, &format!("{API}/jobs/ingest"), &body)
        .await;
    let status = response.status();
    let info: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{info}");
    info
}

async fn put_csv(h: &Harness, id: &str, csv: impl Into<reqwest::Body>) -> reqwest::Response {
    h.request(Method::PUT, &format!("{API}/jobs/ingest/{id}/batches"))
        .header("Content-Type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap()
}

async fn patch_state(h: &Harness, id: &str, state: &str) -> reqwest::Response {
    h.send_json(
        Method::PATCH,
        &format!("{API}/jobs/ingest/{id}"),
        &json!({"state": state}),
    )
    .await
}

async fn info(h: &Harness, id: &str) -> Value {
    h.get_json(&format!("{API}/jobs/ingest/{id}")).await
}

async fn wait(h: &Harness, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info = info(h, id).await;
        if ["JobComplete", "Failed", "Aborted"].contains(&info["state"].as_str().unwrap()) {
            return info;
        }
        assert!(Instant::now() < deadline, "{info}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn results(h: &Harness, id: &str, file: &str) -> String {
    let response = h.get(&format!("{API}/jobs/ingest/{id}/{file}/")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/csv");
    response.text().await.unwrap()
}

/// Creates, uploads, closes and waits for a job; its final info.
async fn run(h: &Harness, job: Value, csv: &str) -> Value {
    let id = create(h, job).await["id"].as_str().unwrap().to_owned();
    assert_eq!(put_csv(h, &id, csv.to_owned()).await.status(), 201);
    assert_eq!(patch_state(h, &id, "UploadComplete").await.status(), 200);
    wait(h, &id).await
}

fn id_of(info: &Value) -> &str {
    info["id"].as_str().unwrap()
}

#[tokio::test]
async fn an_insert_job_runs_and_reports_every_row() {
    let h = harness().await;
    let account = h.create("Account", json!({"Name": "Acme"})).await;
    let created = create(&h, json!({"object": "invoice__c", "operation": "insert"})).await;
    let id = id_of(&created).to_owned();
    assert_eq!(created["state"], "Open");
    assert_eq!(created["object"], "Invoice__c");
    assert_eq!(
        created["contentUrl"],
        format!("services/data/v62.0/jobs/ingest/{id}/batches")
    );
    assert_eq!(info(&h, &id).await["contentUrl"], created["contentUrl"]);

    let csv = format!(
        "Account__r.Id,Amount__c,Tax__c,Notes__c\n{account},100,20,\"a, \"\"b\"\"\"\n\
         {account},-5,,\n{account},7,x,\n"
    );
    assert_eq!(put_csv(&h, &id, csv).await.status(), StatusCode::CREATED);
    let closed: Value = patch_state(&h, &id, "UploadComplete")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(closed["state"], "UploadComplete");
    assert!(closed.get("contentUrl").is_none(), "{closed}");
    let done = wait(&h, &id).await;
    assert_eq!(done["state"], "JobComplete", "{done}");
    assert_eq!(done["jobType"], "V2Ingest");
    assert_eq!(done["numberRecordsProcessed"], 3);
    assert_eq!(done["numberRecordsFailed"], 2);

    let saved = h
        .query("SELECT Id, Total__c, Account_Name__c, Notes__c FROM Invoice__c")
        .await;
    let record = &saved["records"][0];
    assert_eq!(saved["totalSize"], 1);
    assert_eq!(record["Total__c"], json!(120.0));
    assert_eq!(record["Account_Name__c"], "Acme");
    let new_id = record["Id"].as_str().unwrap();
    assert_eq!(
        results(&h, &id, "successfulResults").await,
        format!(
            "\"sf__Id\",\"sf__Created\",Account__r.Id,Amount__c,Tax__c,Notes__c\n\
             \"{new_id}\",\"true\",\"{account}\",\"100\",\"20\",\"a, \"\"b\"\"\"\n"
        )
    );
    assert_eq!(
        results(&h, &id, "failedResults").await,
        format!(
            "\"sf__Id\",\"sf__Error\",Account__r.Id,Amount__c,Tax__c,Notes__c\n\
             \"\",\"FIELD_CUSTOM_VALIDATION_EXCEPTION:Amount cannot be negative unless the \
             invoice is void.:Amount__c --\",\"{account}\",\"-5\",\"\",\"\"\n\
             \"\",\"INVALID_FIELD:Failed to deserialize field at col 2. Due to, 'x' is not a \
             valid value for the type xsd:double:Tax__c --\",\"{account}\",\"7\",\"x\",\"\"\n"
        )
    );
    for spelling in ["unprocessedrecords", "unprocessedRecords"] {
        assert_eq!(
            results(&h, &id, spelling).await,
            "Account__r.Id,Amount__c,Tax__c,Notes__c\n"
        );
    }
}

#[tokio::test]
async fn updates_leave_empty_cells_and_null_na_cells() {
    let h = harness().await;
    let id = h
        .create(
            "Account",
            json!({"Name": "Acme", "BillingCity": "Paris", "Phone": "555"}),
        )
        .await;
    let before = h.get_json(&format!("{API}/sobjects/Account/{id}")).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let job = run(
        &h,
        json!({"object": "Account", "operation": "update", "columnDelimiter": "TAB",
               "lineEnding": "CRLF"}),
        &format!("Id\tName\tBillingCity\tPhone\r\n{id}\tAcme 2\t\t#N/A\r\n"),
    )
    .await;
    assert_eq!(job["state"], "JobComplete", "{job}");
    let after = h.get_json(&format!("{API}/sobjects/Account/{id}")).await;
    assert_eq!(after["Name"], "Acme 2");
    assert_eq!(after["BillingCity"], "Paris");
    assert_eq!(after["Phone"], Value::Null);
    assert_ne!(after["SystemModstamp"], before["SystemModstamp"]);
    assert_eq!(
        results(&h, id_of(&job), "successfulResults").await,
        format!(
            "\"sf__Id\"\t\"sf__Created\"\tId\tName\tBillingCity\tPhone\r\n\
             \"{id}\"\t\"false\"\t\"{id}\"\t\"Acme 2\"\t\"\"\t\"#N/A\"\r\n"
        )
    );
}

#[tokio::test]
async fn upserts_match_by_external_id() {
    let h = harness().await;
    let existing = h
        .create(
            "Invoice__c",
            json!({"External_Id__c": "INV-1", "Amount__c": 1}),
        )
        .await;
    let job = run(
        &h,
        json!({"object": "Invoice__c", "operation": "upsert",
               "externalIdFieldName": "External_Id__c"}),
        "External_Id__c,Amount__c\nINV-1,10\nINV-2,20\n",
    )
    .await;
    assert_eq!(job["externalIdFieldName"], "External_Id__c");
    let successes = results(&h, id_of(&job), "successfulResults").await;
    let lines: Vec<&str> = successes.lines().collect();
    assert_eq!(
        lines[1],
        format!("\"{existing}\",\"false\",\"INV-1\",\"10\"")
    );
    assert!(
        lines[2].ends_with(",\"true\",\"INV-2\",\"20\""),
        "{successes}"
    );
    let amount = h
        .get_json(&format!("{API}/sobjects/Invoice__c/{existing}"))
        .await["Amount__c"]
        .clone();
    assert_eq!(amount, json!(10.0));
    let response = h
        .send_json(
            Method::POST,
            &format!("{API}/jobs/ingest"),
            &json!({"object": "Invoice__c", "operation": "upsert"}),
        )
        .await;
    refused(response, StatusCode::BAD_REQUEST, "INVALIDJOB").await;
}

#[tokio::test]
async fn delete_uses_the_recycle_bin_and_hard_delete_does_not() {
    let h = harness().await;
    let soft = h.create("Account", json!({"Name": "Soft"})).await;
    let hard = h.create("Account", json!({"Name": "Hard"})).await;
    let job = run(
        &h,
        json!({"object": "Account", "operation": "delete"}),
        &format!("Id\n{soft}\n"),
    )
    .await;
    assert_eq!(job["numberRecordsFailed"], 0, "{job}");
    let job = run(
        &h,
        json!({"object": "Account", "operation": "hardDelete"}),
        &format!("Id\n{hard}\n{soft}\n"),
    )
    .await;
    assert_eq!(
        results(&h, id_of(&job), "failedResults").await,
        format!(
            "\"sf__Id\",\"sf__Error\",Id\n\"{soft}\",\"ENTITY_IS_DELETED:entity is deleted: --\",\
             \"{soft}\"\n"
        )
    );
    let all = h
        .request(Method::GET, &format!("{API}/queryAll"))
        .query(&[("q", "SELECT Id, IsDeleted FROM Account")])
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(all["totalSize"], 1, "{all}");
    assert_eq!(all["records"][0]["Id"], soft.as_str());
    assert_eq!(all["records"][0]["IsDeleted"], true);
}

#[tokio::test]
async fn uploads_only_while_open_once_and_within_150_mb() {
    let h = harness().await;
    let twice = create(&h, json!({"object": "Account", "operation": "insert"})).await;
    let id = id_of(&twice).to_owned();
    put_csv(&h, &id, "Name\nA\n").await;
    put_csv(&h, &id, "Name\nB\n").await;
    let body = refused(
        patch_state(&h, &id, "UploadComplete").await,
        StatusCode::BAD_REQUEST,
        "INVALIDJOB",
    )
    .await;
    assert_eq!(
        body[0]["message"],
        format!(
            "Found multipe contents for job: <{}>, please 'Close' / 'Abort' / 'Delete' the \
             current Job then create a new Job and make sure you only do 'PUT' once on a given \
             Job.",
            &id[..15]
        )
    );
    let aborted: Value = patch_state(&h, &id, "Aborted").await.json().await.unwrap();
    assert_eq!(aborted["state"], "Aborted");
    refused(
        put_csv(&h, &id, "Name\nC\n").await,
        StatusCode::BAD_REQUEST,
        "INVALIDJOBSTATE",
    )
    .await;
    assert_eq!(
        results(&h, &id, "unprocessedrecords").await,
        "Name\n\"A\"\n",
        "an aborted job's rows were never processed"
    );

    let big = create(&h, json!({"object": "Account", "operation": "insert"})).await;
    // 150 MB once base64-encoded is 117,964,800 bytes of CSV.
    let mut csv = b"Name\n".to_vec();
    csv.resize(117_964_801, b'x');
    let body = refused(
        put_csv(&h, id_of(&big), csv).await,
        StatusCode::BAD_REQUEST,
        "CLIENTINPUTERROR",
    )
    .await;
    assert!(body[0]["message"].as_str().unwrap().contains("157286400"));
    let mut csv = b"Name\n".to_vec();
    csv.resize(117_964_800, b'x');
    assert_eq!(put_csv(&h, id_of(&big), csv).await.status(), 201);
}

#[tokio::test]
async fn a_header_the_object_lacks_or_the_wrong_line_ending_fails_the_job() {
    let h = harness().await;
    let job = run(
        &h,
        json!({"object": "Account", "operation": "insert"}),
        "Name,Bogus__c\nA,1\n",
    )
    .await;
    assert_eq!(job["state"], "Failed");
    assert_eq!(
        job["errorMessage"],
        "InvalidBatch : Field name not found : Bogus__c"
    );
    assert_eq!(job["numberRecordsProcessed"], 0);
    assert_eq!(
        results(&h, id_of(&job), "unprocessedrecords").await,
        "Name,Bogus__c\n\"A\",\"1\"\n"
    );
    let job = run(
        &h,
        json!({"object": "Account", "operation": "insert"}),
        "Name\r\nA\r\n",
    )
    .await;
    assert_eq!(
        job["errorMessage"],
        "ClientInputError : LineEnding is invalid on user data. Current LineEnding setting is LF"
    );
    let count = h.query("SELECT COUNT() FROM Account").await;
    assert_eq!(count["totalSize"], 0, "nothing was saved");
}
