//! Query jobs: `POST /jobs/query` (create), `GET /jobs/query` (list), and
//! `GET|PATCH|DELETE /jobs/query/<id>` (job info, abort, delete).
//!
//! Job creation checks the query at once, as Salesforce does: syntax, objects and fields
//! (the REST query resource's codes) and Bulk's own refusals answer `400` before any job
//! exists. The job then starts `UploadComplete` and moves on in the background
//! ([`super::runner`]).

use std::collections::HashSet;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use serde::{Deserialize, Serialize};

use super::faults::QueryJobFault;
use super::jobs::{
    ColumnDelimiter, InfoForm, Job, JobInfo, JobKind, JobState, KeysAt, LineEnding, StateBody,
};
use super::{
    FIRST_QUERY_VERSION, csv_settings, invalid_job, invalid_job_state, job_not_found, runner,
};
use crate::http::auth::Caller;
use crate::http::error::{RestError, parse_json};
use crate::http::state::AppState;
use crate::org::{CsvFormat, QuerySnapshot};

/// How long a job is kept after it ended: Salesforce deletes jobs in a terminal state
/// after 7 days. Ended jobs are swept when a job is created.
const JOB_LIFESPAN: chrono::Duration = chrono::Duration::days(7);

/// How many jobs one page of `GET /jobs/query` lists.
const LIST_PAGE: usize = 1_000;

/// What a query job adds to the common job: its SOQL, and once it ran, its snapshot.
#[derive(Debug, Clone, Default)]
pub struct QueryJob {
    pub query: String,
    /// The records the job read; set when it completes.
    pub snapshot: Option<Arc<QuerySnapshot>>,
    /// The first record of each page served so far: result storage counts a page once.
    pub served_pages: HashSet<usize>,
    /// What the fault rule it was created under said (by default, nothing).
    pub fault: QueryJobFault,
    /// Results requests still to answer 412 although the job is complete.
    pub results_not_ready: u32,
    /// Records after which the next download is cut off.
    pub cut_download_after: Option<usize>,
}

impl JobKind for QueryJob {
    const JOB_TYPE: &'static str = "V2Query";

    fn keys<M: serde::ser::SerializeMap>(
        &self,
        at: KeysAt,
        _form: InfoForm,
        map: &mut M,
    ) -> Result<(), M::Error> {
        // Every object the emulator serves is one PK chunking supports: the standard
        // objects it bundles are on Salesforce's list, and custom objects always are.
        match at {
            KeysAt::AfterTotalProcessingTime => map.serialize_entry("isPkChunkingSupported", &true),
            _ => Ok(()),
        }
    }
}

impl Job<QueryJob> {
    /// `queryAll` reads the recycle bin too.
    pub fn include_deleted(&self) -> bool {
        self.operation == "queryAll"
    }

    /// The CSV format the job's results are written in.
    pub fn csv_format(&self) -> CsvFormat {
        CsvFormat {
            delimiter: self.column_delimiter.byte(),
            line_ending: self.line_ending.bytes(),
        }
    }
}

/// A job info answer.
pub fn info_response<T: JobKind>(job: &Job<T>, form: InfoForm) -> Response {
    json_response(StatusCode::OK, &JobInfo { job, form })
}

fn json_response<B: Serialize>(status: StatusCode, body: &B) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// Query jobs came with API 47.0; before it the resource does not exist.
pub fn require_query_version(caller: &Caller) -> Result<(), RestError> {
    if caller.version.0 < FIRST_QUERY_VERSION {
        return Err(RestError::not_found());
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateBody {
    #[serde(default)]
    operation: Option<String>,
    #[serde(default)]
    query: Option<String>,
    #[serde(default)]
    content_type: Option<String>,
    #[serde(default)]
    column_delimiter: Option<String>,
    #[serde(default)]
    line_ending: Option<String>,
}

/// The job fields of a create request, checked.
struct NewJob {
    operation: &'static str,
    query: String,
    column_delimiter: ColumnDelimiter,
    line_ending: LineEnding,
}

impl CreateBody {
    fn check(self) -> Result<NewJob, RestError> {
        let operation = match self.operation.as_deref() {
            Some("query") => "query",
            Some("queryAll") => "queryAll",
            Some(other) => return Err(invalid_job(format!("Invalid operation: {other}"))),
            None => return Err(invalid_job("Operation is required")),
        };
        let query = self
            .query
            .filter(|q| !q.trim().is_empty())
            .ok_or_else(|| invalid_job("Query is required"))?;
        let (column_delimiter, line_ending) = csv_settings(
            self.content_type.as_deref(),
            self.column_delimiter.as_deref(),
            self.line_ending.as_deref(),
        )?;
        Ok(NewJob {
            operation,
            query,
            column_delimiter,
            line_ending,
        })
    }
}

/// `POST /jobs/query`.
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Response, RestError> {
    require_query_version(&caller)?;
    let new = parse_json::<CreateBody>(&body)?.check()?;
    let include_deleted = new.operation == "queryAll";
    // Binding a query over the org's definitions is quick; the records are read later.
    let (object, now) = {
        let org = state.org();
        let plan = org.bulk_query_plan(&new.query, include_deleted)?;
        (plan.object().to_owned(), org.now())
    };
    let (id, response) = {
        let mut bulk = state.bulk();
        bulk.limits.admit_job()?;
        bulk.query.expire_ended(now, JOB_LIFESPAN);
        let fault = bulk.faults.take(&object).unwrap_or_default();
        let id = bulk.next_id();
        let job = Job {
            id,
            operation: new.operation.to_owned(),
            object,
            created_by_id: caller.user_id,
            created_date: now,
            system_modstamp: now,
            state: JobState::UploadComplete,
            api_version: caller.version.0,
            column_delimiter: new.column_delimiter,
            line_ending: new.line_ending,
            number_records_processed: 0,
            retries: 0,
            total_processing_time: 0,
            error_message: None,
            detail: QueryJob {
                query: new.query,
                results_not_ready: fault.results_not_ready,
                cut_download_after: fault.cut_download_after_records,
                fault,
                ..QueryJob::default()
            },
        };
        let response = info_response(&job, InfoForm::Short);
        bulk.query.insert(job);
        (id, response)
    };
    runner::spawn(state, id);
    Ok(response)
}

/// `GET /jobs/query/<id>`.
pub async fn info(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, RestError> {
    require_query_version(&caller)?;
    let bulk = state.bulk();
    let job = bulk.query.get(&id).ok_or_else(job_not_found)?;
    Ok(info_response(job, InfoForm::Full))
}

/// `PATCH /jobs/query/<id>` with `{"state": "Aborted"}`, the one change a query job
/// takes.
pub async fn abort(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((_, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, RestError> {
    require_query_version(&caller)?;
    let wanted: StateBody = parse_json(&body)?;
    let now = state.org().now();
    let mut bulk = state.bulk();
    let job = bulk.query.get_mut(&id).ok_or_else(job_not_found)?;
    if wanted.state.as_deref() != Some("Aborted") {
        return Err(invalid_job_state(format!(
            "Invalid state: {}",
            wanted.state.as_deref().unwrap_or("null")
        )));
    }
    if job.state.is_terminal() {
        return Err(invalid_job_state(format!(
            "Cannot abort a job in state {}",
            job.state.as_str()
        )));
    }
    job.set_state(JobState::Aborted, now);
    Ok(info_response(job, InfoForm::Short))
}

/// `DELETE /jobs/query/<id>`: 204. Salesforce deletes only jobs that are not being
/// processed (`UploadComplete`, `JobComplete`, `Aborted` or `Failed`).
pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((_, id)): Path<(String, String)>,
) -> Result<StatusCode, RestError> {
    require_query_version(&caller)?;
    let mut bulk = state.bulk();
    let job = bulk.query.get(&id).ok_or_else(job_not_found)?;
    if job.state == JobState::InProgress {
        return Err(invalid_job_state("Cannot delete a job in state InProgress"));
    }
    bulk.query.remove(&id);
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListParams {
    #[serde(default)]
    job_type: Option<String>,
    #[serde(default)]
    concurrency_mode: Option<String>,
    #[serde(default)]
    is_pk_chunking_enabled: Option<bool>,
    #[serde(default)]
    query_locator: Option<String>,
}

/// `GET /jobs/query`: `{"done", "records", "nextRecordsUrl"}`, a thousand jobs a page.
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(params): Query<ListParams>,
) -> Result<Response, RestError> {
    require_query_version(&caller)?;
    let start = match params.query_locator.as_deref() {
        None => 0,
        Some(locator) => decode_offset(locator).ok_or_else(|| {
            RestError::bad_request("INVALID_QUERY_LOCATOR", "invalid query locator")
        })?,
    };
    // This resource lists Bulk API jobs too ("Classic"); the emulator has none, and
    // PK chunking is a Bulk API setting, so asking for it lists nothing either.
    let none = params.job_type.as_deref().is_some_and(|t| t != "V2Query")
        || params
            .concurrency_mode
            .as_deref()
            .is_some_and(|m| !m.eq_ignore_ascii_case("parallel"))
        || params.is_pk_chunking_enabled == Some(true);
    let bulk = state.bulk();
    let jobs: Vec<&Job<QueryJob>> = if none {
        Vec::new()
    } else {
        bulk.query.iter().collect()
    };
    let end = start.saturating_add(LIST_PAGE).min(jobs.len());
    let records: Vec<JobInfo<QueryJob>> = jobs
        .get(start.min(end)..end)
        .unwrap_or_default()
        .iter()
        .map(|job| JobInfo {
            job,
            form: InfoForm::List,
        })
        .collect();
    let done = end >= jobs.len();
    let next_records_url = (!done).then(|| {
        format!(
            "{}/jobs/query?queryLocator={}",
            caller.version.base_path(),
            encode_offset(end)
        )
    });
    Ok(json_response(
        StatusCode::OK,
        &ListPage {
            done,
            records,
            next_records_url,
        },
    ))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ListPage<'a> {
    done: bool,
    records: Vec<JobInfo<'a, QueryJob>>,
    next_records_url: Option<String>,
}

/// A locator naming a position: the position's decimal digits in base 64 without
/// padding, as Salesforce's own look (`MTAwMDA` is `10000`).
pub fn encode_offset(offset: usize) -> String {
    STANDARD_NO_PAD.encode(offset.to_string())
}

/// The position a locator names, if it is one.
pub fn decode_offset(locator: &str) -> Option<usize> {
    let bytes = STANDARD_NO_PAD.decode(locator.trim_end_matches('=')).ok()?;
    let text = std::str::from_utf8(&bytes).ok()?;
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locators_look_like_salesforce_ones() {
        assert_eq!(encode_offset(10_000), "MTAwMDA");
        assert_eq!(decode_offset("MTAwMDA"), Some(10_000));
        assert_eq!(decode_offset("MTAwMDA="), Some(10_000));
        assert_eq!(decode_offset("null"), None);
        assert_eq!(decode_offset("!!"), None);
        assert_eq!(decode_offset(&encode_offset(0)), Some(0));
    }
}
