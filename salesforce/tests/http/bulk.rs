//! Bulk API 2.0 query jobs against the scripted server: what each call sends, the result
//! page read as a gzip stream (handed over before it has all arrived), the headers read,
//! the 412 race asked again, a session renewed and a 503 retried on the results resource.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use sfpg_salesforce::bulk::{JobState, QueryOperation, ResultsPage};
use sfpg_salesforce::{Error, Result};

use crate::scripted::*;

const JOB_ID: &str = "750R0000000zlh9IAA";
const RESULTS_PATH: &str = "/services/data/v62.0/jobs/query/750R0000000zlh9IAA/results";

fn job_info(state: &str, extra: &str) -> String {
    format!(
        r#"{{"id":"{JOB_ID}","operation":"query","object":"Account",
            "createdById":"005R0000000GiwjIAC","createdDate":"2018-12-10T17:50:19.000+0000",
            "systemModstamp":"2018-12-10T17:51:27.000+0000","state":"{state}",
            "concurrencyMode":"Parallel","contentType":"CSV","apiVersion":62.0,
            "lineEnding":"LF","columnDelimiter":"COMMA"{extra}}}"#
    )
}

const PAGE: &str = "\"Id\",\"Name\"\n\"001R0000001\",\"Acme\nWest\"\n\"001R0000002\",\"Globex\"\n";

fn gzip(text: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(text).unwrap();
    encoder.finish().unwrap()
}

fn csv_page(body: impl Into<Bytes>, records: &str, locator: &str) -> Reply {
    Reply::bytes(200, "text/csv", body)
        .header("Sforce-NumberOfRecords", records)
        .header("Sforce-Locator", locator)
}

async fn read(page: &mut ResultsPage) -> Result<Vec<u8>> {
    let chunks: Vec<Bytes> = page.try_collect().await?;
    Ok(chunks.concat())
}

#[tokio::test]
async fn create_sends_the_query_and_the_csv_dialect_it_reads() {
    let server = Scripted::start().await;
    let bulk = server.client().bulk();
    server.reply(Reply::json(200, &job_info("UploadComplete", "")));

    let job = bulk
        .create_query_job("SELECT Id, Name FROM Account", QueryOperation::QueryAll)
        .await
        .unwrap();

    assert_eq!(job.id, JOB_ID);
    assert_eq!(job.state, JobState::UploadComplete);
    let request = &server.requests()[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/services/data/v62.0/jobs/query");
    // reqwest's gzip feature asks for compression on every request, not only results.
    assert_eq!(request.header("accept-encoding"), Some("gzip"));
    assert_eq!(
        request.json(),
        serde_json::json!({
            "operation": "queryAll",
            "query": "SELECT Id, Name FROM Account",
            "contentType": "CSV",
            "columnDelimiter": "COMMA",
            "lineEnding": "LF",
        })
    );
}

#[tokio::test]
async fn waiting_polls_with_a_doubling_backoff_until_the_job_ends() {
    let server = Scripted::start().await;
    let bulk = server.client().bulk();
    server.reply(Reply::json(200, &job_info("UploadComplete", "")));
    server.reply(Reply::json(200, &job_info("InProgress", "")));
    server.reply(Reply::json(
        200,
        &job_info("JobComplete", r#","numberRecordsProcessed":2"#),
    ));

    let job = bulk
        .wait_for_query_job(JOB_ID, Duration::from_secs(5))
        .await
        .unwrap();

    assert_eq!(job.state, JobState::JobComplete);
    assert_eq!(job.number_records_processed, 2);
    let requests = server.requests();
    assert_eq!(requests.len(), 3);
    assert!(requests.iter().all(
        |r| r.method == "GET" && r.path == "/services/data/v62.0/jobs/query/750R0000000zlh9IAA"
    ));
    let gaps: Vec<Duration> = requests.windows(2).map(|w| w[1].at - w[0].at).collect();
    assert!(gaps[0] >= Duration::from_millis(400), "{gaps:?}");
    assert!(gaps[1] >= Duration::from_millis(800), "{gaps:?}");
}

#[tokio::test]
async fn a_failed_job_is_an_error_with_its_message() {
    let server = Scripted::start().await;
    let bulk = server.client().bulk();
    server.reply(Reply::json(
        200,
        &job_info(
            "Failed",
            r#","errorMessage":"InvalidBatch : Failed to process query: INVALID_FIELD""#,
        ),
    ));

    let error = bulk
        .wait_for_query_job(JOB_ID, Duration::from_secs(1))
        .await
        .unwrap_err();

    assert_eq!(error.bulk_job_state(), Some(JobState::Failed));
    match &error {
        Error::BulkJob { error_message, .. } => assert_eq!(
            error_message.as_deref(),
            Some("InvalidBatch : Failed to process query: INVALID_FIELD")
        ),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn abort_and_delete() {
    let server = Scripted::start().await;
    let bulk = server.client().bulk();
    server.reply(Reply::json(200, &job_info("Aborted", "")));
    server.reply(Reply::empty(204));

    let job = bulk.abort_query_job(JOB_ID).await.unwrap();
    bulk.delete_query_job(JOB_ID).await.unwrap();

    assert_eq!(job.state, JobState::Aborted);
    let requests = server.requests();
    assert_eq!(requests[0].method, "PATCH");
    assert_eq!(requests[0].json(), serde_json::json!({"state": "Aborted"}));
    assert_eq!(requests[1].method, "DELETE");
    assert_eq!(
        requests[1].path,
        "/services/data/v62.0/jobs/query/750R0000000zlh9IAA"
    );
}

#[tokio::test]
async fn a_gzipped_page_is_read_with_its_headers() {
    let server = Scripted::start().await;
    let bulk = server.client().bulk();
    server
        .reply(csv_page(gzip(PAGE.as_bytes()), "2", "MTAwMDA").header("Content-Encoding", "gzip"));

    let mut page = bulk
        .query_results(JOB_ID, Some("MTAwMA"), Some(2))
        .await
        .unwrap();

    assert_eq!(page.number_of_records, 2);
    assert_eq!(page.next_locator.as_deref(), Some("MTAwMDA"));
    assert_eq!(page.locator.as_deref(), Some("MTAwMA"));
    assert_eq!(read(&mut page).await.unwrap(), PAGE.as_bytes());
    let request = &server.requests()[0];
    assert_eq!(request.path, RESULTS_PATH);
    assert_eq!(
        request.query.as_deref(),
        Some("locator=MTAwMA&maxRecords=2")
    );
    assert_eq!(request.header("accept-encoding"), Some("gzip"));
    assert_eq!(request.header("accept"), Some("text/csv"));
}

#[tokio::test]
async fn the_last_page_has_no_next_locator_and_nul_bytes_are_dropped() {
    let server = Scripted::start().await;
    let bulk = server.client().bulk();
    let with_nul = PAGE.replace("Globex", "Glo\0bex\0");
    server.reply(csv_page(with_nul.into_bytes(), "2", "null"));

    let mut page = bulk.query_results(JOB_ID, None, None).await.unwrap();

    assert_eq!(page.next_locator, None);
    assert_eq!(read(&mut page).await.unwrap(), PAGE.as_bytes());
    assert_eq!(server.requests()[0].query, None);
}

#[tokio::test]
async fn a_page_short_of_its_count_fails_at_its_end() {
    let server = Scripted::start().await;
    let bulk = server.client().bulk();
    server.reply(csv_page(PAGE, "3", "null"));

    let mut page = bulk.query_results(JOB_ID, None, None).await.unwrap();

    let error = read(&mut page).await.unwrap_err();
    assert!(
        matches!(
            error,
            Error::BulkPageCount {
                number_of_records: 3,
                counted: 2,
                ..
            }
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_page_without_its_locator_header_is_a_protocol_error() {
    let server = Scripted::start().await;
    let bulk = server.client().bulk();
    server.reply(Reply::bytes(200, "text/csv", PAGE).header("Sforce-NumberOfRecords", "2"));

    let error = bulk.query_results(JOB_ID, None, None).await.unwrap_err();

    assert!(matches!(error, Error::Protocol { .. }), "{error:?}");
    assert!(error.to_string().contains("Sforce-Locator"), "{error}");
}

/// The body is handed over as it arrives: the first chunk is read while the server still
/// holds back the rest, so a page is never waited for, or held, whole.
#[tokio::test]
async fn a_page_is_handed_over_before_it_has_all_arrived() {
    let server = Scripted::start().await;
    let bulk = server.client().bulk();
    let gate = Arc::new(tokio::sync::Notify::new());
    let first = PAGE.find('\n').unwrap() + 1;
    server.reply(csv_page(PAGE, "2", "null").hold_back_after(first, Arc::clone(&gate)));

    let page = bulk.query_results(JOB_ID, None, None);
    let mut page = tokio::time::timeout(Duration::from_secs(5), page)
        .await
        .expect("the page is handed over while the server holds back its end")
        .unwrap();

    let head = tokio::time::timeout(Duration::from_secs(5), page.next())
        .await
        .expect("the first chunk arrives while the rest is held back")
        .unwrap()
        .unwrap();
    assert_eq!(head, &PAGE.as_bytes()[..first]);
    gate.notify_one();
    let rest = read(&mut page).await.unwrap();
    assert_eq!(rest, &PAGE.as_bytes()[first..]);
}

/// Job info said JobComplete, the results resource does not agree yet: asked again.
#[tokio::test]
async fn job_not_complete_on_the_results_is_asked_again() {
    let server = Scripted::start().await;
    let bulk = server.client().bulk();
    for _ in 0..2 {
        server.reply(Reply::error(412, "JOB_NOT_COMPLETE", "Job is not complete"));
    }
    server.reply(csv_page(PAGE, "2", "null"));

    let mut page = bulk.query_results(JOB_ID, None, None).await.unwrap();

    assert_eq!(read(&mut page).await.unwrap(), PAGE.as_bytes());
    let requests = server.requests();
    assert_eq!(requests.len(), 3);
    assert!(requests[2].at - requests[0].at >= Duration::from_millis(600));
}

#[tokio::test]
async fn job_not_complete_for_good_is_returned_with_its_error_code() {
    let server = Scripted::start().await;
    let bulk = server.client().bulk();
    for _ in 0..10 {
        server.reply(Reply::error(412, "JOB_NOT_COMPLETE", "Job is not complete"));
    }

    let error = bulk.query_results(JOB_ID, None, None).await.unwrap_err();

    assert!(error.is_job_not_complete(), "{error:?}");
    assert_eq!(error.error_code(), Some("JOB_NOT_COMPLETE"));
    assert_eq!(server.requests().len(), 6);
}

#[tokio::test]
async fn a_deleted_job_is_gone() {
    let server = Scripted::start().await;
    let bulk = server.client().bulk();
    server.reply(Reply::error(
        404,
        "NOT_FOUND",
        "The requested resource does not exist",
    ));

    let error = bulk.query_results(JOB_ID, None, None).await.unwrap_err();

    assert!(error.is_job_gone(), "{error:?}");
    assert_eq!(error.error_code(), Some("NOT_FOUND"));
    assert_eq!(server.requests().len(), 1);
}

/// The streamed request path is the usual one: a 401 logs in again and replays, a 503 is
/// retried.
#[tokio::test]
async fn results_renew_the_session_and_retry_a_503() {
    let server = Scripted::start().await;
    let client = server.client();
    client.token().await.unwrap();
    server.revoke_sessions();
    server.reply(Reply::error(503, "SERVER_UNAVAILABLE", "down"));
    server.reply(csv_page(PAGE, "2", "null"));

    let mut page = client
        .bulk()
        .query_results(JOB_ID, None, None)
        .await
        .unwrap();

    assert_eq!(read(&mut page).await.unwrap(), PAGE.as_bytes());
    let paths: Vec<String> = server.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, [RESULTS_PATH; 3]);
    assert_eq!(server.token_requests().len(), 2);
}

/// A part spooled to a file goes up whole with its length, and whole again after a 401
/// renewed the session: the body is read from the file's start for each attempt.
#[tokio::test]
async fn a_spooled_part_is_uploaded_whole_and_again_after_a_renewed_session() {
    use sfpg_salesforce::bulk::ingest::{Columns, CsvData, CsvParts, MAX_PART_BYTES};
    let server = Scripted::start().await;
    let client = server.client();
    client.token().await.unwrap();
    server.revoke_sessions();
    server.reply(Reply::empty(201));

    let name = |i: usize| serde_json::Value::String(format!("Acme, \"{i}\"\n{}", "x".repeat(300)));
    let mut columns = Columns::default();
    columns.add_scalar_fields(["Name"]);
    let mut parts = CsvParts::spooled(columns, MAX_PART_BYTES).unwrap();
    for i in 0..2_000 {
        assert!(parts.push([("Name", &name(i))]).unwrap().is_none());
    }
    let part = parts.finish().unwrap().unwrap();
    assert!(matches!(part.csv, CsvData::Spooled(_)));
    let expected = part.csv.to_bytes().unwrap();
    assert!(expected.len() > 600_000, "more than two upload chunks");

    client
        .bulk()
        .upload_ingest_data("750R0000000zlhAIAQ", part.csv)
        .await
        .unwrap();

    let uploads = server.requests();
    assert_eq!(uploads.len(), 2, "the 401, then the upload again");
    for upload in uploads {
        assert_eq!(upload.method, reqwest::Method::PUT);
        assert_eq!(upload.body, expected);
        assert_eq!(
            upload.headers["content-length"].to_str().unwrap(),
            expected.len().to_string()
        );
        assert_eq!(upload.headers["content-type"], "text/csv");
    }
}
