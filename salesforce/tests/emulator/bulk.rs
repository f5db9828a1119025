//! Bulk API 2.0 query jobs against the emulator over real HTTP: a job read page by page
//! with `maxRecords`, every record once and the counts checked; `queryAll` seeing deleted
//! records; a deleted job gone (404); the 412 race; another API version (409); an aborted
//! job; a refused query with its errorCode; a dropped download retried; polls through the
//! rate limiter; and the emulator's Bulk faults: a job that fails, the 412 poll race, a
//! download cut mid-page, an expired job, the daily job allocation spent. Gzip on the wire
//! is in `bulk_wire`.

use bytes::Bytes;
use sfpg_emulator::http::{DropRule, QueryJobFault};
use sfpg_salesforce::bulk::{JobInfo, JobState, QueryOperation, ResultsPage};

use super::*;

pub(super) async fn start_bulk(records: usize, delay: Duration) -> RunningEmulator {
    emulator::start(EmulatorConfig {
        org: OrgSource::Generated { records, seed: 7 },
        bulk_processing_delay: delay,
        ..EmulatorConfig::default()
    })
    .await
    .unwrap()
}

/// The CSV records of `text`, each a list of its values, header row first.
pub(super) fn csv_rows(text: &[u8]) -> Vec<Vec<String>> {
    let mut reader = csv_core::Reader::new();
    let (mut rows, mut row, mut field) = (Vec::new(), Vec::new(), Vec::new());
    let mut input = text;
    let mut output = [0u8; 4096];
    loop {
        let (result, read, written) = reader.read_field(input, &mut output);
        input = &input[read..];
        field.extend_from_slice(&output[..written]);
        match result {
            csv_core::ReadFieldResult::Field { record_end } => {
                row.push(String::from_utf8(std::mem::take(&mut field)).unwrap());
                if record_end {
                    rows.push(std::mem::take(&mut row));
                }
            }
            csv_core::ReadFieldResult::End => return rows,
            csv_core::ReadFieldResult::InputEmpty | csv_core::ReadFieldResult::OutputFull => {}
        }
    }
}

/// Reads a page's body to its end.
pub(super) async fn read_page(page: &mut ResultsPage) -> sfpg_salesforce::Result<Vec<u8>> {
    let chunks: Vec<Bytes> = page.try_collect().await?;
    Ok(chunks.concat())
}

/// Runs `soql` as a job and reads every page of `max_records`: the job, and each page's
/// rows (header first).
async fn run_job(
    client: &Client,
    soql: &str,
    operation: QueryOperation,
    max_records: Option<u32>,
) -> (JobInfo, Vec<Vec<Vec<String>>>) {
    let bulk = client.bulk();
    let created = bulk.create_query_job(soql, operation).await.unwrap();
    assert_eq!(created.state, JobState::UploadComplete);
    let job = bulk
        .wait_for_query_job(&created.id, Duration::from_secs(1))
        .await
        .unwrap();
    let (mut pages, mut locator, mut total) = (Vec::new(), None, 0);
    loop {
        let mut page = bulk
            .query_results(&job.id, locator.as_deref(), max_records)
            .await
            .unwrap();
        let rows = csv_rows(&read_page(&mut page).await.unwrap());
        assert_eq!(rows.len() as u64, page.number_of_records + 1);
        total += page.number_of_records;
        pages.push(rows);
        locator = page.next_locator.take();
        if locator.is_none() {
            break;
        }
    }
    job.check_total(total).unwrap();
    (job, pages)
}

async fn rest_ids(client: &Client, soql: &str) -> Vec<String> {
    client
        .query_all(soql)
        .collect_records()
        .await
        .unwrap()
        .iter()
        .map(|r| r["Id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_job_is_read_page_by_page_every_record_once_in_id_order() {
    let emulator = start_bulk(600, Duration::from_millis(100)).await;
    let client = client(&emulator);
    let mut expected = rest_ids(&client, "SELECT Id FROM Contact").await;
    expected.sort();
    assert!(expected.len() > 150, "{} contacts", expected.len());
    emulator.clear_requests();

    let (job, pages) = run_job(
        &client,
        "SELECT Id, LastName, Account.Name, CreatedDate FROM Contact",
        QueryOperation::Query,
        Some(70),
    )
    .await;

    assert_eq!(job.number_records_processed, expected.len() as u64);
    assert_eq!(pages.len(), expected.len().div_ceil(70));
    for rows in &pages {
        assert_eq!(rows[0], ["Id", "LastName", "Account.Name", "CreatedDate"]);
        assert!(rows.len() <= 71);
    }
    let ids: Vec<String> = pages
        .iter()
        .flat_map(|rows| rows[1..].iter().map(|r| r[0].clone()))
        .collect();
    assert_eq!(ids, expected, "every record once, in Id order");
    let requests = api_requests(&emulator);
    let results = requests
        .iter()
        .filter(|r| r.path.ends_with("/results"))
        .count();
    assert_eq!(results, pages.len());
    assert!(requests.iter().all(|r| r.counted && r.status == Some(200)));
    let first_results = requests
        .iter()
        .find(|r| r.path.ends_with("/results"))
        .unwrap();
    assert_eq!(first_results.query.as_deref(), Some("maxRecords=70"));
}

#[tokio::test]
async fn query_all_sees_deleted_records_and_query_does_not() {
    let emulator = start_bulk(0, Duration::ZERO).await;
    let client = client(&emulator);
    let accounts = client.sobject("Account");
    let kept = accounts
        .create(&record(json!({"Name": "Kept"})))
        .await
        .unwrap();
    let deleted = accounts
        .create(&record(
            json!({"Name": "Deleted, \"quoted\"\nand two lines"}),
        ))
        .await
        .unwrap();
    accounts.delete(&deleted).await.unwrap();
    let soql = "SELECT Id, Name, IsDeleted FROM Account";

    let (_, live) = run_job(&client, soql, QueryOperation::Query, None).await;
    let (_, all) = run_job(&client, soql, QueryOperation::QueryAll, None).await;

    let row = |rows: &[Vec<String>], id: &SalesforceId| {
        rows.iter().find(|r| r[0] == id.as_str()).cloned()
    };
    assert_eq!(live.len(), 1);
    assert!(row(&live[0], &kept).is_some());
    assert!(row(&live[0], &deleted).is_none());
    let gone = row(&all[0], &deleted).expect("queryAll has the deleted record");
    assert_eq!(gone[1], "Deleted, \"quoted\"\nand two lines");
    assert_eq!(gone[2], "true");
    assert_eq!(row(&all[0], &kept).unwrap()[2], "false");
}

#[tokio::test]
async fn a_deleted_job_is_gone_with_its_locators() {
    let emulator = start_bulk(300, Duration::ZERO).await;
    let client = client(&emulator);
    let bulk = client.bulk();
    let job = bulk
        .create_query_job("SELECT Id FROM Contact", QueryOperation::Query)
        .await
        .unwrap();
    bulk.wait_for_query_job(&job.id, Duration::from_secs(1))
        .await
        .unwrap();
    let first = bulk.query_results(&job.id, None, Some(10)).await.unwrap();
    let locator = first.next_locator.clone().unwrap();
    drop(first);

    bulk.delete_query_job(&job.id).await.unwrap();

    let info = bulk.query_job(&job.id).await.unwrap_err();
    assert!(info.is_job_gone(), "{info:?}");
    assert_eq!(info.error_code(), Some("NOT_FOUND"));
    let page = bulk
        .query_results(&job.id, Some(&locator), Some(10))
        .await
        .unwrap_err();
    assert!(page.is_job_gone(), "{page:?}");
    let again = bulk.delete_query_job(&job.id).await.unwrap_err();
    assert!(again.is_job_gone(), "{again:?}");
}

/// Job info says JobComplete, the results resource answers 412 twice (the emulator's
/// poll-race fault, as Salesforce does in the moment between the two): the page is read
/// on the third try, and the 412s were real requests.
#[tokio::test]
async fn job_not_complete_after_job_complete_is_asked_again() {
    let emulator = start_bulk(100, Duration::ZERO).await;
    emulator.add_query_job_fault(QueryJobFault {
        results_not_ready: 2,
        ..QueryJobFault::default()
    });
    let client = client(&emulator);
    let bulk = client.bulk();
    let job = bulk
        .create_query_job("SELECT Id FROM Account", QueryOperation::Query)
        .await
        .unwrap();
    let job = bulk
        .wait_for_query_job(&job.id, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(job.state, JobState::JobComplete);
    emulator.clear_requests();

    let mut page = bulk.query_results(&job.id, None, None).await.unwrap();
    let rows = csv_rows(&read_page(&mut page).await.unwrap());

    assert_eq!(rows.len() as u64 - 1, job.number_records_processed);
    let statuses: Vec<Option<u16>> = api_requests(&emulator).iter().map(|r| r.status).collect();
    assert_eq!(statuses, [Some(412), Some(412), Some(200)]);
}

/// Before the job completes the emulator answers 412 on its own; past the bounded retries
/// the error comes back with Salesforce's errorCode.
#[tokio::test]
async fn results_of_a_job_still_running_are_job_not_complete() {
    let emulator = start_bulk(10, Duration::from_secs(30)).await;
    let client = client(&emulator);
    let bulk = client.bulk();
    let job = bulk
        .create_query_job("SELECT Id FROM Account", QueryOperation::Query)
        .await
        .unwrap();

    let error = bulk.query_results(&job.id, None, None).await.unwrap_err();

    assert!(error.is_job_not_complete(), "{error:?}");
    assert_eq!(error.error_code(), Some("JOB_NOT_COMPLETE"));
    assert_eq!(error.status().map(|s| s.as_u16()), Some(412));
    let aborted = bulk.abort_query_job(&job.id).await.unwrap();
    assert_eq!(aborted.state, JobState::Aborted);
    let waited = bulk
        .wait_for_query_job(&job.id, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert_eq!(waited.bulk_job_state(), Some(JobState::Aborted));
}

#[tokio::test]
async fn results_in_another_api_version_are_a_conflict() {
    let emulator = start_bulk(10, Duration::ZERO).await;
    let client = client(&emulator);
    let bulk = client.bulk();
    let job = bulk
        .create_query_job("SELECT Id FROM Account", QueryOperation::Query)
        .await
        .unwrap();
    bulk.wait_for_query_job(&job.id, Duration::from_secs(1))
        .await
        .unwrap();
    let older = client_with(
        config(&emulator).with_api_version("61.0".parse().unwrap()),
        password(),
        Rate::per_second(1000).unwrap(),
    );

    let error = older
        .bulk()
        .query_results(&job.id, None, None)
        .await
        .unwrap_err();

    assert_eq!(error.status().map(|s| s.as_u16()), Some(409), "{error:?}");
    assert!(error.error_code().is_some(), "{error:?}");
    assert!(!error.is_job_gone() && !error.is_retryable());
}

#[tokio::test]
async fn a_query_bulk_does_not_run_is_refused_with_its_error_code() {
    let emulator = start_bulk(0, Duration::ZERO).await;
    let client = client(&emulator);

    let error = client
        .bulk()
        .create_query_job("SELECT COUNT() FROM Account", QueryOperation::Query)
        .await
        .unwrap_err();

    assert_eq!(error.status().map(|s| s.as_u16()), Some(400), "{error:?}");
    assert!(error.error_code().is_some(), "{error:?}");
    assert_eq!(error.class(), ErrorClass::NotRetryable);
}

/// The connection of a results request closes without an answer: the client sends it
/// again (a GET), and the page arrives whole.
#[tokio::test]
async fn a_dropped_result_download_is_sent_again() {
    let emulator = start_bulk(100, Duration::ZERO).await;
    let client = client(&emulator);
    let bulk = client.bulk();
    let job = bulk
        .create_query_job("SELECT Id, Name FROM Account", QueryOperation::Query)
        .await
        .unwrap();
    let job = bulk
        .wait_for_query_job(&job.id, Duration::from_secs(1))
        .await
        .unwrap();
    emulator.clear_requests();
    emulator.drop_next(DropRule {
        matcher: sfpg_emulator::http::RequestMatcher {
            method: Some("GET".into()),
            path: Some("/services/data/*/jobs/query/*/results".into()),
        },
        count: 1,
        after_ms: None,
    });

    let mut page = bulk.query_results(&job.id, None, None).await.unwrap();
    let rows = csv_rows(&read_page(&mut page).await.unwrap());

    assert_eq!(rows.len() as u64 - 1, job.number_records_processed);
    let statuses: Vec<Option<u16>> = api_requests(&emulator).iter().map(|r| r.status).collect();
    assert_eq!(statuses, [None, Some(200)]);
}

/// Creation, every poll and every page wait for the org's rate limiter: at two requests a
/// second they arrive at least half a second apart, although the polls' own backoff
/// (0.2 s, 0.4 s) and the pages (none) would send them sooner.
#[tokio::test]
async fn polls_and_pages_go_through_the_rate_limiter() {
    let emulator = start_bulk(200, Duration::from_millis(1200)).await;
    let rate = Rate::per_second(2).unwrap();
    let client = client_with(config(&emulator), password(), rate);
    client.token().await.unwrap();
    emulator.clear_requests();

    let (_, pages) = run_job(
        &client,
        "SELECT Id FROM Account",
        QueryOperation::Query,
        Some(20),
    )
    .await;

    let requests = api_requests(&emulator);
    let polls = requests
        .iter()
        .filter(|r| r.method == "GET" && !r.path.ends_with("/results"));
    assert!(polls.count() >= 2, "{requests:?}");
    assert!(pages.len() >= 2, "{} pages", pages.len());
    let gaps: Vec<Duration> = requests
        .windows(2)
        .map(|w| (w[1].time - w[0].time).to_std().unwrap())
        .collect();
    // One interval each, less a little for the way from the limiter to the server's log.
    let floor = rate.interval() - Duration::from_millis(30);
    assert!(gaps.iter().all(|&gap| gap >= floor), "{gaps:?}");
}

#[tokio::test]
async fn a_job_that_fails_is_an_error_with_its_message() {
    let emulator = start_bulk(100, Duration::ZERO).await;
    emulator.add_query_job_fault(QueryJobFault {
        fail_after_records: Some(5),
        error_message: Some("InvalidBatch : Failed to process query".into()),
        ..QueryJobFault::default()
    });
    let client = client(&emulator);
    let bulk = client.bulk();
    let job = bulk
        .create_query_job("SELECT Id FROM Account", QueryOperation::Query)
        .await
        .unwrap();

    let error = bulk
        .wait_for_query_job(&job.id, Duration::from_secs(1))
        .await
        .unwrap_err();

    assert_eq!(error.bulk_job_state(), Some(JobState::Failed), "{error:?}");
    assert!(
        matches!(&error, Error::BulkJob { error_message: Some(m), .. }
            if m == "InvalidBatch : Failed to process query"),
        "{error:?}"
    );
    let info = bulk.query_job(&job.id).await.unwrap();
    assert_eq!(info.state, JobState::Failed);
    let results = bulk.query_results(&job.id, None, None).await.unwrap_err();
    assert!(results.is_job_not_complete(), "{results:?}");
}

/// The connection is cut half-way through a page: the body ends in an error, never passes
/// for a whole page, and the same locator reads the whole page again.
#[tokio::test]
async fn a_download_cut_mid_page_fails_and_its_locator_reads_it_again() {
    let emulator = start_bulk(600, Duration::ZERO).await;
    emulator.add_query_job_fault(QueryJobFault {
        object: Some("Contact".into()),
        cut_download_after_records: Some(30),
        ..QueryJobFault::default()
    });
    let client = client(&emulator);
    let bulk = client.bulk();
    let job = bulk
        .create_query_job("SELECT Id, LastName FROM Contact", QueryOperation::Query)
        .await
        .unwrap();
    let job = bulk
        .wait_for_query_job(&job.id, Duration::from_secs(1))
        .await
        .unwrap();

    let mut cut = bulk.query_results(&job.id, None, Some(100)).await.unwrap();
    let error = read_page(&mut cut).await.unwrap_err();
    assert!(
        matches!(error, Error::Transport { .. } | Error::BulkPageCount { .. }),
        "{error:?}"
    );
    let mut again = bulk.query_results(&job.id, None, Some(100)).await.unwrap();
    let rows = csv_rows(&read_page(&mut again).await.unwrap());

    assert_eq!(again.number_of_records, 100);
    assert_eq!(rows.len(), 101);
    assert_eq!(again.next_locator, cut.next_locator);
}

#[tokio::test]
async fn an_expired_job_is_gone() {
    let emulator = start_bulk(300, Duration::ZERO).await;
    let client = client(&emulator);
    let bulk = client.bulk();
    let job = bulk
        .create_query_job("SELECT Id FROM Contact", QueryOperation::Query)
        .await
        .unwrap();
    bulk.wait_for_query_job(&job.id, Duration::from_secs(1))
        .await
        .unwrap();
    let first = bulk.query_results(&job.id, None, Some(10)).await.unwrap();
    let locator = first.next_locator.clone().unwrap();
    drop(first);

    assert!(emulator.expire_query_job(&job.id));

    let error = bulk
        .query_results(&job.id, Some(&locator), Some(10))
        .await
        .unwrap_err();
    assert!(error.is_job_gone(), "{error:?}");
}

#[tokio::test]
async fn the_daily_query_job_allocation_spent_is_refused_with_its_error_code() {
    let emulator = start_bulk(0, Duration::ZERO).await;
    emulator.set_bulk_query_jobs_max(1);
    emulator.consume_bulk_query_jobs(1);
    let client = client(&emulator);

    let error = client
        .bulk()
        .create_query_job("SELECT Id FROM Account", QueryOperation::Query)
        .await
        .unwrap_err();

    assert_eq!(error.error_code(), Some("LIMIT_EXCEEDED"), "{error:?}");
    assert!(!error.is_retryable());
}
