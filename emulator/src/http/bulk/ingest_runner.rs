//! Moves a closed ingest job through its states in the background, as query jobs move:
//! `UploadComplete` for half the processing delay, then `InProgress` while its rows are
//! saved, then, after the other half, `JobComplete`, or `Failed` with an `errorMessage`
//! when the upload does not read (line endings, header, ragged rows).
//!
//! Rows are saved in internal batches of [`BATCH_ROWS`], as Salesforce splits a job's
//! data into batches of 10,000 records ("How Requests Are Processed"): the org's lock is
//! taken for one batch at a time, on the blocking pool, and `numberRecordsProcessed` and
//! `numberRecordsFailed` grow batch by batch. A job aborted meanwhile stops after the
//! batch in hand; the rows it did not reach are its unprocessed records.

use std::time::Instant;

use axum::body::Bytes;
use csv::StringRecord;

use super::jobs::JobState;
use crate::http::state::AppState;
use crate::ids::Id;
use crate::org::CsvFormat;
use crate::org::ingest::{Columns, IngestTarget, RowOutcome, check_upload, upload_reader};

/// Rows saved under one hold of the org's lock.
pub const BATCH_ROWS: usize = 10_000;

/// Starts processing job `id` on its own task.
pub fn spawn(state: AppState, id: Id) {
    tokio::spawn(run(state, id));
}

/// What processing a job needs, taken from it as it starts.
struct Work {
    target: IngestTarget,
    data: Bytes,
    format: CsvFormat,
    user: Id,
    /// `changeOrigin` of the job's changes: `com/salesforce/api/bulkapi/62.0`.
    origin: String,
}

async fn run(state: AppState, id: Id) {
    let started = Instant::now();
    let delay = state.bulk().processing_delay;
    let queued = delay / 2;
    tokio::time::sleep(queued).await;
    let Some(work) = begin(&state, &id) else {
        return;
    };
    let worker = state.clone();
    let job = id;
    let failure = tokio::task::spawn_blocking(move || process(&worker, &job, &work))
        .await
        .unwrap_or_else(|_| Some("InternalServerError : the job could not be processed".into()));
    tokio::time::sleep(delay.saturating_sub(queued)).await;
    finish(&state, &id, failure, started);
}

/// `UploadComplete` → `InProgress`; what the job needs, or `None` when it is gone or was
/// aborted.
fn begin(state: &AppState, id: &Id) -> Option<Work> {
    let now = state.org().now();
    let mut bulk = state.bulk();
    let job = bulk.ingest.get_mut(id.as_str())?;
    if job.state != JobState::UploadComplete {
        return None;
    }
    job.set_state(JobState::InProgress, now);
    Some(Work {
        target: job.detail.target.clone(),
        data: job.detail.data(),
        format: job.csv_format(),
        user: job.created_by_id,
        origin: job.detail.change_origin.clone(),
    })
}

/// Checks the upload and saves its rows batch by batch; `Some` is why the job failed.
fn process(state: &AppState, id: &Id, work: &Work) -> Option<String> {
    let checked = match check_upload(work.format, &work.data) {
        Ok(checked) => checked,
        Err(message) => return Some(message),
    };
    if checked.rows == 0 {
        return None;
    }
    let columns: Columns = match state.org().ingest_columns(&work.target, &checked.header) {
        Ok(columns) => columns,
        Err(message) => return Some(message),
    };
    if !record_rows(state, id, checked.rows) {
        return None;
    }
    let mut reader = upload_reader(work.format, &work.data);
    let mut rows = reader.records();
    loop {
        // The upload was read once already: a row that does not read now cannot happen.
        let batch: Vec<StringRecord> = rows.by_ref().take(BATCH_ROWS).flatten().collect();
        if batch.is_empty() {
            return None;
        }
        // Each batch is one transaction, as Salesforce processes Bulk data in chunks.
        let outcomes = state.org_write(work.origin.clone()).ingest_rows(
            &work.target,
            &columns,
            &batch,
            &work.user,
        );
        if !record_outcomes(state, id, outcomes) {
            return None;
        }
    }
}

/// Notes the upload's row count; `false` when the job was aborted or deleted meanwhile.
fn record_rows(state: &AppState, id: &Id, rows: usize) -> bool {
    let mut bulk = state.bulk();
    let Some(job) = bulk.ingest.get_mut(id.as_str()) else {
        return false;
    };
    job.detail.rows = rows;
    let running = job.state == JobState::InProgress;
    bulk.limits.consume_ingest_records(rows as u64);
    running
}

/// Adds one batch's outcomes to the job; `false` when it should stop (aborted, deleted).
fn record_outcomes(state: &AppState, id: &Id, outcomes: Vec<RowOutcome>) -> bool {
    let mut bulk = state.bulk();
    let Some(job) = bulk.ingest.get_mut(id.as_str()) else {
        return false;
    };
    let failed = outcomes
        .iter()
        .filter(|o| matches!(o, RowOutcome::Failed { .. }))
        .count();
    job.number_records_processed += outcomes.len() as u64;
    job.detail.number_records_failed += failed as u64;
    job.detail.outcomes.extend(outcomes);
    job.state == JobState::InProgress
}

/// `InProgress` → `JobComplete`, or `Failed` with `failure`.
fn finish(state: &AppState, id: &Id, failure: Option<String>, started: Instant) {
    let now = state.org().now();
    let mut bulk = state.bulk();
    let Some(job) = bulk.ingest.get_mut(id.as_str()) else {
        return;
    };
    if job.state != JobState::InProgress {
        return;
    }
    job.total_processing_time = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    match failure {
        None => job.set_state(JobState::JobComplete, now),
        Some(message) => {
            job.error_message = Some(message);
            job.set_state(JobState::Failed, now);
        }
    }
}
