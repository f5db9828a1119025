//! Job info as Salesforce writes it, the poll backoff, and the checks on a job's end.

use super::*;

/// The get-job-info example of the Bulk API 2.0 guide, with the query job's fields.
const JOB_INFO: &str = r#"{
  "id" : "750R0000000zlh9IAA",
  "operation" : "query",
  "object" : "Account",
  "createdById" : "005R0000000GiwjIAC",
  "createdDate" : "2018-12-10T17:50:19.000+0000",
  "systemModstamp" : "2018-12-10T17:51:27.000+0000",
  "state" : "JobComplete",
  "concurrencyMode" : "Parallel",
  "contentType" : "CSV",
  "apiVersion" : 62.0,
  "jobType" : "V2Query",
  "lineEnding" : "LF",
  "columnDelimiter" : "COMMA",
  "numberRecordsProcessed" : 500,
  "retries" : 0,
  "totalProcessingTime" : 334,
  "isPkChunkingSupported" : true
}"#;

#[test]
fn reads_job_info_as_sent() {
    let info: JobInfo = serde_json::from_str(JOB_INFO).unwrap();
    assert_eq!(info.id, "750R0000000zlh9IAA");
    assert_eq!(info.state, JobState::JobComplete);
    assert_eq!(info.number_records_processed, 500);
    assert_eq!(info.api_version, Some(62.0));
    assert_eq!(info.is_pk_chunking_supported, Some(true));
    assert_eq!(info.error_message, None);
    assert_eq!(info.created_date.to_rfc3339(), "2018-12-10T17:50:19+00:00");
}

#[test]
fn the_create_answer_reads_with_zero_figures() {
    let created = r#"{"id":"750R0000000zlh9IAA","operation":"queryAll","object":"Account",
        "createdById":"005R0000000GiwjIAC","createdDate":"2018-12-10T17:50:19.000+0000",
        "systemModstamp":"2018-12-10T17:50:19.000+0000","state":"UploadComplete",
        "concurrencyMode":"Parallel","contentType":"CSV","apiVersion":62.0,
        "lineEnding":"LF","columnDelimiter":"COMMA"}"#;
    let info: JobInfo = serde_json::from_str(created).unwrap();
    assert_eq!(info.operation, "queryAll");
    assert_eq!(info.state, JobState::UploadComplete);
    assert_eq!(info.number_records_processed, 0);
    assert!(!info.state.is_terminal());
}

#[test]
fn states_spell_as_salesforce_does() {
    for state in [
        JobState::Open,
        JobState::UploadComplete,
        JobState::InProgress,
        JobState::JobComplete,
        JobState::Failed,
        JobState::Aborted,
    ] {
        let json = serde_json::to_string(&state).unwrap();
        assert_eq!(json, format!("\"{state}\""));
        assert_eq!(serde_json::from_str::<JobState>(&json).unwrap(), state);
    }
    assert_eq!(
        serde_json::to_string(&QueryOperation::QueryAll).unwrap(),
        "\"queryAll\""
    );
}

#[test]
fn the_backoff_starts_at_a_fifth_of_a_second_and_doubles_to_its_cap() {
    let waits: Vec<u64> = PollBackoff::new(Duration::from_secs(5))
        .take(8)
        .map(|d| u64::try_from(d.as_millis()).unwrap())
        .collect();
    assert_eq!(waits, [200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
    let tiny: Vec<Duration> = PollBackoff::new(Duration::from_millis(50))
        .take(2)
        .collect();
    assert_eq!(tiny, [Duration::from_millis(50); 2]);
}

#[test]
fn a_paced_wait_is_the_time_the_rest_should_take_within_the_doubled_wait() {
    let ms = Duration::from_millis;
    let mut waits = PollBackoff::new(Duration::from_secs(3));
    // Nothing processed yet: the doubled wait.
    assert_eq!(waits.next_wait_paced(0, 100_000, ms(200)), ms(200));
    // 40% in 0.6 s: the rest should take 0.9 s, longer than the doubled wait, 0.4 s.
    assert_eq!(waits.next_wait_paced(40_000, 100_000, ms(600)), ms(400));
    // 80% in 1.0 s: 0.25 s left, sooner than the 0.8 s doubled wait.
    assert_eq!(waits.next_wait_paced(80_000, 100_000, ms(1_000)), ms(250));
    // Every record processed, the job not ended: not polled in a loop, a twentieth of the
    // 1.3 s it has run at the least, 0.1 s.
    assert_eq!(waits.next_wait_paced(100_000, 100_000, ms(1_300)), ms(100));
    // After five minutes, at the cap: 15 s would be a twentieth, the cap is less.
    assert_eq!(
        waits.next_wait_paced(100_000, 100_000, Duration::from_secs(300)),
        Duration::from_secs(3)
    );
    // Far from its end, a job is polled no more often than the doubling says.
    let mut waits = PollBackoff::new(Duration::from_secs(3));
    let slow: Vec<Duration> = (1..=6u32)
        .map(|n| waits.next_wait_paced(u64::from(n), 1_000_000, ms(1_000) * n))
        .collect();
    assert_eq!(
        slow,
        [ms(200), ms(400), ms(800), ms(1_600), ms(3_000), ms(3_000)]
    );
}

#[test]
fn a_failed_or_aborted_job_is_an_error_with_its_message() {
    let mut info: JobInfo = serde_json::from_str(JOB_INFO).unwrap();
    info.state = JobState::Failed;
    info.error_message = Some("INVALID_FIELD: No such column 'Nope' on entity 'Account'".into());
    let error = info.clone().ok_unless_ended_badly().unwrap_err();
    assert_eq!(error.bulk_job_state(), Some(JobState::Failed));
    assert!(error.to_string().contains("No such column"), "{error}");
    assert!(!error.is_retryable());
    info.state = JobState::Aborted;
    info.error_message = None;
    assert_eq!(
        info.ok_unless_ended_badly().unwrap_err().bulk_job_state(),
        Some(JobState::Aborted)
    );
}

#[test]
fn the_total_must_match_the_records_processed() {
    let info: JobInfo = serde_json::from_str(JOB_INFO).unwrap();
    info.check_total(500).unwrap();
    let error = info.check_total(499).unwrap_err();
    assert!(
        matches!(
            error,
            Error::BulkTotalCount {
                number_records_processed: 500,
                counted: 499,
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn job_ids_are_checked_before_they_reach_a_url() {
    check_job_id("750R0000000zlh9IAA").unwrap();
    check_job_id("750R0000000zlh9").unwrap();
    for bad in [
        "",
        "../../sobjects",
        "750R0000000zlh9IA",
        "750R0000000zlh9IA/",
    ] {
        assert!(check_job_id(bad).is_err(), "{bad:?}");
    }
}
