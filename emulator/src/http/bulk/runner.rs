//! Moves a query job through its states in the background: `UploadComplete` for half
//! the processing delay, then `InProgress` (the job reads its snapshot of the org just before
//! that moment), then, after the other half, `JobComplete` with its record count, or
//! `Failed` with an `errorMessage` (a query that no longer runs, or a fault rule). A job
//! aborted or deleted meanwhile is left as it is.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::faults::{DEFAULT_FAILURE, QueryJobFault};
use super::jobs::JobState;
use crate::http::state::AppState;
use crate::ids::Id;
use crate::org::{ApiError, QuerySnapshot};

/// Starts processing job `id` on its own task.
pub fn spawn(state: AppState, id: Id) {
    tokio::spawn(run(state, id));
}

async fn run(state: AppState, id: Id) {
    let started = Instant::now();
    let Some((delay, fault)) = schedule(&state, &id) else {
        return;
    };
    let queued = delay / 2;
    tokio::time::sleep(queued).await;
    let Some((query, include_deleted)) = job_query(&state, &id) else {
        return;
    };
    // The snapshot is read before the job shows `InProgress`, so a client that saw
    // `InProgress` knows its later changes are not in the results.
    let reader = state.clone();
    let read =
        tokio::task::spawn_blocking(move || reader.org().bulk_snapshot(&query, include_deleted))
            .await;
    if !begin(&state, &id) {
        return;
    }
    let outcome = match read {
        Ok(result) => result,
        Err(_) => Err(ApiError::new(
            500,
            "UNKNOWN_EXCEPTION",
            "InternalServerError: the query could not be processed",
        )),
    };
    tokio::time::sleep(delay.saturating_sub(queued)).await;
    finish(&state, &id, outcome, started, &fault);
}

/// How long the job takes, and the fault rule it was created under.
fn schedule(state: &AppState, id: &Id) -> Option<(Duration, QueryJobFault)> {
    let bulk = state.bulk();
    let job = bulk.query.get(id.as_str())?;
    let fault = job.detail.fault.clone();
    let delay = fault
        .processing_delay_ms
        .map_or(bulk.processing_delay, Duration::from_millis);
    Some((delay, fault))
}

/// The job's query, or `None` when the job is gone or no longer `UploadComplete`.
fn job_query(state: &AppState, id: &Id) -> Option<(String, bool)> {
    let bulk = state.bulk();
    let job = bulk.query.get(id.as_str())?;
    (job.state == JobState::UploadComplete)
        .then(|| (job.detail.query.clone(), job.include_deleted()))
}

/// `UploadComplete` → `InProgress`; `false` when the job is gone or was aborted.
fn begin(state: &AppState, id: &Id) -> bool {
    let now = state.org().now();
    let mut bulk = state.bulk();
    let Some(job) = bulk.query.get_mut(id.as_str()) else {
        return false;
    };
    if job.state != JobState::UploadComplete {
        return false;
    }
    job.set_state(JobState::InProgress, now);
    true
}

/// `InProgress` → `JobComplete` (or `Failed`).
fn finish(
    state: &AppState,
    id: &Id,
    outcome: Result<QuerySnapshot, ApiError>,
    started: Instant,
    fault: &QueryJobFault,
) {
    let now = state.org().now();
    let mut bulk = state.bulk();
    let Some(job) = bulk.query.get_mut(id.as_str()) else {
        return;
    };
    if job.state != JobState::InProgress {
        return;
    }
    job.total_processing_time = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    match outcome {
        Ok(snapshot) if fault.fail_after_records.is_some() => {
            let processed = fault.fail_after_records.unwrap_or_default();
            job.number_records_processed = processed.min(snapshot.len() as u64);
            job.error_message = Some(
                fault
                    .error_message
                    .clone()
                    .unwrap_or_else(|| DEFAULT_FAILURE.to_owned()),
            );
            job.set_state(JobState::Failed, now);
        }
        Ok(snapshot) => {
            job.number_records_processed = snapshot.len() as u64;
            job.detail.snapshot = Some(Arc::new(snapshot));
            job.set_state(JobState::JobComplete, now);
        }
        Err(error) => {
            job.error_message = Some(error.message);
            job.set_state(JobState::Failed, now);
        }
    }
}
