//! The Bulk part of the admin API, under `/__emulator/bulk/` (not Salesforce: no
//! session, never counted, never faulted), and the same operations for Rust tests on
//! [`RunningEmulator`]:
//!
//! - `GET|POST|DELETE /bulk/query-job-faults`: rules for the next query jobs (see
//!   [`QueryJobFault`]);
//! - `POST /bulk/query-jobs/<id>/fail` `{"errorMessage"?}`: the job ends `Failed` now
//!   (its results are gone: 412 with `FAILED`);
//! - `DELETE /bulk/query-jobs/<id>`: the job expires, as Salesforce deletes jobs 7 days
//!   after they end: job info, results and every locator answer 404;
//! - `PUT /bulk/processing-delay` `{"ms"}`: how long jobs take from now on;
//! - `PUT /bulk/page-size` `{"records"}`: records per results page when a request names
//!   no `maxRecords`;
//! - `GET|PUT /bulk/limits` `{"queryJobsMax"?, "consumeQueryJobs"?, "consumeResultKb"?}`
//!   and `POST /bulk/limits/reset`: the query allocations.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value as JsonValue, json};

use super::faults::{DEFAULT_FAILURE, QueryJobFault};
use super::jobs::JobState;
use crate::http::error::{RestError, parse_json};
use crate::http::server::RunningEmulator;
use crate::http::state::{AppState, Shared};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/bulk/query-job-faults",
            get(faults).post(add_fault).delete(clear_faults),
        )
        .route("/bulk/query-jobs/{id}/fail", post(fail_job))
        .route("/bulk/query-jobs/{id}", axum::routing::delete(expire_job))
        .route("/bulk/processing-delay", put(set_delay))
        .route("/bulk/page-size", put(set_page_size))
        .route("/bulk/limits", get(limits).put(set_limits))
        .route("/bulk/limits/reset", post(reset_limits))
}

impl Shared {
    /// Ends a query job `Failed` now, dropping its results. False when there is no job.
    fn fail_query_job(&self, id: &str, message: Option<&str>) -> bool {
        let now = self.org().now();
        let mut bulk = self.bulk();
        let Some(job) = bulk.query.get_mut(id) else {
            return false;
        };
        job.detail.snapshot = None;
        job.error_message = Some(message.unwrap_or(DEFAULT_FAILURE).to_owned());
        job.set_state(JobState::Failed, now);
        true
    }

    /// Removes a query job, as its expiry would. False when there is no job.
    fn expire_query_job(&self, id: &str) -> bool {
        self.bulk().query.remove(id).is_some()
    }

    fn bulk_limits_json(&self) -> JsonValue {
        let view = self.bulk().limits.view();
        json!({
            "DailyBulkV2QueryJobs": {"Max": view.jobs_max, "Remaining": view.jobs_remaining},
            "DailyBulkV2QueryFileStorageMB": {
                "Max": view.storage_max_mb,
                "Remaining": view.storage_remaining_mb,
            },
        })
    }
}

fn no_job(id: &str) -> RestError {
    RestError::new(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        format!("no query job {id}"),
    )
}

async fn faults(State(state): State<AppState>) -> Json<Vec<QueryJobFault>> {
    Json(state.bulk().faults.view())
}

async fn add_fault(
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Result<StatusCode, RestError> {
    let rule: QueryJobFault = parse_json(&body)?;
    state.bulk().faults.add(rule);
    Ok(StatusCode::CREATED)
}

async fn clear_faults(State(state): State<AppState>) -> StatusCode {
    state.bulk().faults.clear();
    StatusCode::NO_CONTENT
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FailBody {
    #[serde(default)]
    error_message: Option<String>,
}

async fn fail_job(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<StatusCode, RestError> {
    let body: FailBody = if body.iter().all(u8::is_ascii_whitespace) {
        FailBody::default()
    } else {
        parse_json(&body)?
    };
    if state.fail_query_job(&id, body.error_message.as_deref()) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(no_job(&id))
    }
}

async fn expire_job(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, RestError> {
    if state.expire_query_job(&id) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(no_job(&id))
    }
}

#[derive(Debug, Deserialize)]
struct DelayBody {
    ms: u64,
}

#[derive(Debug, Deserialize)]
struct PageSizeBody {
    records: usize,
}

async fn set_page_size(
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Result<StatusCode, RestError> {
    let body: PageSizeBody = parse_json(&body)?;
    state.bulk().default_page_size = body.records.max(1);
    Ok(StatusCode::NO_CONTENT)
}

async fn set_delay(
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Result<StatusCode, RestError> {
    let body: DelayBody = parse_json(&body)?;
    state.bulk().processing_delay = Duration::from_millis(body.ms);
    Ok(StatusCode::NO_CONTENT)
}

async fn limits(State(state): State<AppState>) -> Json<JsonValue> {
    Json(state.bulk_limits_json())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LimitsBody {
    #[serde(default)]
    query_jobs_max: Option<u64>,
    #[serde(default)]
    consume_query_jobs: Option<u64>,
    #[serde(default)]
    consume_result_kb: Option<u64>,
}

async fn set_limits(
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Json<JsonValue>, RestError> {
    let body: LimitsBody = parse_json(&body)?;
    {
        let mut bulk = state.bulk();
        if let Some(max) = body.query_jobs_max {
            bulk.limits.set_jobs_max(max);
        }
        if let Some(n) = body.consume_query_jobs {
            bulk.limits.consume_jobs(n);
        }
        if let Some(kb) = body.consume_result_kb {
            bulk.limits.consume_result_kb(kb);
        }
    }
    Ok(Json(state.bulk_limits_json()))
}

async fn reset_limits(State(state): State<AppState>) -> StatusCode {
    state.bulk().limits.reset();
    StatusCode::NO_CONTENT
}

impl RunningEmulator {
    /// Applies `rule` to the next matching query jobs created.
    pub fn add_query_job_fault(&self, rule: QueryJobFault) {
        self.state.bulk().faults.add(rule);
    }

    /// Ends a query job `Failed` now (`errorMessage` by default Salesforce's retry
    /// text). False when there is no such job.
    pub fn fail_query_job(&self, id: &str, error_message: Option<&str>) -> bool {
        self.state.fail_query_job(id, error_message)
    }

    /// Removes a query job as its expiry would; its locators then answer 404. False
    /// when there is no such job.
    pub fn expire_query_job(&self, id: &str) -> bool {
        self.state.expire_query_job(id)
    }

    /// A query job's state, without an API call.
    pub fn query_job_state(&self, id: &str) -> Option<JobState> {
        self.state.bulk().query.get(id).map(|job| job.state)
    }

    /// How long Bulk jobs take from now on.
    pub fn set_bulk_processing_delay(&self, delay: Duration) {
        self.state.bulk().processing_delay = delay;
    }

    /// Records per results page when a request names no `maxRecords`.
    pub fn set_bulk_default_page_size(&self, records: usize) {
        self.state.bulk().default_page_size = records.max(1);
    }

    /// Changes the `DailyBulkV2QueryJobs` allocation.
    pub fn set_bulk_query_jobs_max(&self, max: u64) {
        self.state.bulk().limits.set_jobs_max(max);
    }

    /// Counts `n` query jobs as created now, as if another client had made them.
    pub fn consume_bulk_query_jobs(&self, n: u64) {
        self.state.bulk().limits.consume_jobs(n);
    }

    /// Changes the `DailyBulkApiBatches` allocation.
    pub fn set_bulk_batches_max(&self, max: u64) {
        self.state.bulk().limits.set_batches_max(max);
    }

    /// Counts `n` Bulk API batches as used now, as if another client had used them.
    pub fn consume_bulk_batches(&self, n: u64) {
        self.state.bulk().limits.consume_batches(n);
    }

    /// Counts `kb` kilobytes of query results as stored now.
    pub fn consume_bulk_result_kb(&self, kb: u64) {
        self.state.bulk().limits.consume_result_kb(kb);
    }
}
