//! Ingest jobs: `POST|GET /jobs/ingest` (create, list), `GET|PATCH|DELETE
//! /jobs/ingest/<id>` (job info, close or abort, delete), `PUT /jobs/ingest/<id>/batches`
//! (the CSV), and the three result files ([`ingest_results`](super::ingest_results)).
//!
//! As the Bulk API 2.0 guide documents them: a job is created `Open` with a `contentUrl`;
//! its data is `PUT` there as `text/csv` (201, no body), only while it is `Open`, at most
//! 150 MB once base64-encoded ("Upload Job Data"; the emulator counts
//! `4 * ceil(bytes / 3)`); `PATCH {"state": "UploadComplete"}` queues it (the processing
//! then runs in the background, [`ingest_runner`](super::ingest_runner)), `{"state":
//! "Aborted"}` stops it. A job takes one upload: a second `PUT` is accepted, and closing
//! the job then answers `400 INVALIDJOB` with the message Salesforce sends (observed,
//! typo included). Not documented, and the emulator's: the code and message of an upload
//! over the limit (`400 CLIENTINPUTERROR`, worded as Bulk API 1.0 words its own limit),
//! and of an upload to a job that is not `Open` (`400 INVALIDJOBSTATE`).

use axum::body::{Body, Bytes};
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::jobs::{InfoForm, Job, JobInfo, JobKind, JobState, KeysAt, StateBody};
use super::query::info_response;
use super::{csv_settings, ingest_runner, invalid_job, invalid_job_state, job_not_found};
use crate::http::auth::Caller;
use crate::http::error::{RestError, parse_json};
use crate::http::state::AppState;
use crate::org::CsvFormat;
use crate::org::ingest::{IngestOperation, IngestTarget, RowOutcome};

/// The first API version with Bulk API 2.0 ingest jobs.
pub const FIRST_INGEST_VERSION: u16 = 41;

/// The most one upload may hold once base64-encoded: 150 MB.
pub const MAX_UPLOAD_BASE64_BYTES: usize = 150 * 1024 * 1024;

/// What an ingest job adds to the common job.
#[derive(Debug, Clone)]
pub struct IngestJob {
    pub target: IngestTarget,
    pub external_id_field_name: Option<String>,
    /// Where the data goes (`services/data/vXX.X/jobs/ingest/<id>/batches`); only while
    /// the job is `Open`.
    pub content_url: Option<String>,
    /// Every `PUT`, in order; a job runs only with exactly one.
    pub uploads: Vec<Bytes>,
    /// The outcome of each row processed so far, in upload order.
    pub outcomes: Vec<RowOutcome>,
    /// The rows of the upload, once it was checked.
    pub rows: usize,
    pub number_records_failed: u64,
    /// `changeOrigin` of the job's changes: `com/salesforce/api/bulkapi/62.0`, with the
    /// `client=` of the creating request's `Sforce-Call-Options`.
    pub change_origin: String,
}

impl IngestJob {
    /// The one upload, or an empty one when none came.
    pub fn data(&self) -> Bytes {
        self.uploads.first().cloned().unwrap_or_default()
    }
}

impl JobKind for IngestJob {
    const JOB_TYPE: &'static str = "V2Ingest";

    fn keys<M: serde::ser::SerializeMap>(
        &self,
        at: KeysAt,
        _form: InfoForm,
        map: &mut M,
    ) -> Result<(), M::Error> {
        match at {
            KeysAt::AfterState => match &self.external_id_field_name {
                Some(name) => map.serialize_entry("externalIdFieldName", name),
                None => Ok(()),
            },
            KeysAt::AfterApiVersion => match &self.content_url {
                Some(url) => map.serialize_entry("contentUrl", url),
                None => Ok(()),
            },
            KeysAt::AfterNumberRecordsProcessed => {
                map.serialize_entry("numberRecordsFailed", &self.number_records_failed)
            }
            KeysAt::AfterTotalProcessingTime => {
                map.serialize_entry("apiActiveProcessingTime", &0)?;
                map.serialize_entry("apexProcessingTime", &0)
            }
        }
    }
}

impl Job<IngestJob> {
    /// The CSV format of the job's data and results.
    pub fn csv_format(&self) -> CsvFormat {
        CsvFormat {
            delimiter: self.column_delimiter.byte(),
            line_ending: self.line_ending.bytes(),
        }
    }

    /// Leaves `Open` for `state`: no more uploads, no more `contentUrl`.
    pub fn close(&mut self, state: JobState, now: chrono::DateTime<chrono::Utc>) {
        self.detail.content_url = None;
        self.set_state(state, now);
    }
}

/// Ingest jobs came with API 41.0; before it the resource does not exist.
pub fn require_ingest_version(caller: &Caller) -> Result<(), RestError> {
    if caller.version.0 < FIRST_INGEST_VERSION {
        return Err(RestError::not_found());
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateBody {
    #[serde(default)]
    object: Option<String>,
    #[serde(default)]
    operation: Option<String>,
    #[serde(default)]
    external_id_field_name: Option<String>,
    #[serde(default)]
    content_type: Option<String>,
    #[serde(default)]
    column_delimiter: Option<String>,
    #[serde(default)]
    line_ending: Option<String>,
}

fn operation(text: Option<&str>) -> Result<IngestOperation, RestError> {
    Ok(match text {
        Some("insert") => IngestOperation::Insert,
        Some("update") => IngestOperation::Update,
        Some("upsert") => IngestOperation::Upsert,
        Some("delete") => IngestOperation::Delete,
        Some("hardDelete") => IngestOperation::HardDelete,
        Some(other) => return Err(invalid_job(format!("Invalid operation: {other}"))),
        None => return Err(invalid_job("Operation is required")),
    })
}

/// `POST /jobs/ingest`: a new `Open` job.
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Response, RestError> {
    require_ingest_version(&caller)?;
    let body: CreateBody = parse_json(&body)?;
    let op = operation(body.operation.as_deref())?;
    let object = body
        .object
        .ok_or_else(|| invalid_job("Object is required"))?;
    let (column_delimiter, line_ending) = csv_settings(
        body.content_type.as_deref(),
        body.column_delimiter.as_deref(),
        body.line_ending.as_deref(),
    )?;
    let external_id = body
        .external_id_field_name
        .filter(|_| op == IngestOperation::Upsert);
    let (target, object, now) = {
        let org = state.org();
        let (target, object) = org.ingest_target(&object, op, external_id.as_deref())?;
        (target, object, org.now())
    };
    let mut bulk = state.bulk();
    bulk.limits.admit_ingest_job()?;
    let id = bulk.next_id();
    let job = Job {
        id,
        operation: body.operation.unwrap_or_default(),
        object,
        created_by_id: caller.user_id,
        created_date: now,
        system_modstamp: now,
        state: JobState::Open,
        api_version: caller.version.0,
        column_delimiter,
        line_ending,
        number_records_processed: 0,
        retries: 0,
        total_processing_time: 0,
        error_message: None,
        detail: IngestJob {
            target,
            external_id_field_name: external_id,
            content_url: Some(format!(
                "services/data/v{}.0/jobs/ingest/{id}/batches",
                caller.version.0
            )),
            uploads: Vec::new(),
            outcomes: Vec::new(),
            rows: 0,
            number_records_failed: 0,
            change_origin: caller.change_origin("bulkapi"),
        },
    };
    let response = info_response(&job, InfoForm::Short);
    bulk.ingest.insert(job);
    Ok(response)
}

/// `GET /jobs/ingest/<id>`.
pub async fn info(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, RestError> {
    require_ingest_version(&caller)?;
    let bulk = state.bulk();
    let job = bulk.ingest.get(&id).ok_or_else(job_not_found)?;
    Ok(info_response(job, InfoForm::Full))
}

/// `GET /jobs/ingest`: every ingest job, as `GET /jobs/query` lists query jobs.
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, RestError> {
    require_ingest_version(&caller)?;
    let bulk = state.bulk();
    let records: Vec<JobInfo<IngestJob>> = bulk
        .ingest
        .iter()
        .map(|job| JobInfo {
            job,
            form: InfoForm::List,
        })
        .collect();
    let page = serde_json::json!({"done": true, "records": records, "nextRecordsUrl": null});
    Ok(axum::Json(page).into_response())
}

/// `PUT /jobs/ingest/<id>/batches`: the job's CSV. Read up to the limit and no further.
pub async fn upload(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((_, id)): Path<(String, String)>,
    body: Body,
) -> Result<StatusCode, RestError> {
    require_ingest_version(&caller)?;
    {
        let bulk = state.bulk();
        let job = bulk.ingest.get(&id).ok_or_else(job_not_found)?;
        if job.state != JobState::Open {
            return Err(not_open(job.state));
        }
    }
    let max_raw = MAX_UPLOAD_BASE64_BYTES / 4 * 3;
    let data = axum::body::to_bytes(body, max_raw)
        .await
        .map_err(|_| too_large())?;
    let mut bulk = state.bulk();
    let job = bulk.ingest.get_mut(&id).ok_or_else(job_not_found)?;
    if job.state != JobState::Open {
        return Err(not_open(job.state));
    }
    job.detail.uploads.push(data);
    Ok(StatusCode::CREATED)
}

fn not_open(state: JobState) -> RestError {
    invalid_job_state(format!(
        "Job is in state {}; data can be uploaded only while it is Open",
        state.as_str()
    ))
}

fn too_large() -> RestError {
    RestError::bad_request(
        "CLIENTINPUTERROR",
        format!(
            "Failed to read request. Exceeded max size limit of {MAX_UPLOAD_BASE64_BYTES} bytes \
             (base64-encoded)"
        ),
    )
}

/// `PATCH /jobs/ingest/<id>`: `UploadComplete` (close) or `Aborted`.
pub async fn change_state(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((_, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, RestError> {
    require_ingest_version(&caller)?;
    let wanted: StateBody = parse_json(&body)?;
    let now = state.org().now();
    let response = {
        let mut bulk = state.bulk();
        let job = bulk.ingest.get_mut(&id).ok_or_else(job_not_found)?;
        match wanted.state.as_deref() {
            Some("UploadComplete") if job.state == JobState::Open => {
                if job.detail.uploads.len() > 1 {
                    let short = &job.id.as_str()[..15];
                    return Err(invalid_job(format!(
                        "Found multipe contents for job: <{short}>, please 'Close' / 'Abort' / \
                         'Delete' the current Job then create a new Job and make sure you only \
                         do 'PUT' once on a given Job."
                    )));
                }
                job.close(JobState::UploadComplete, now);
            }
            Some("Aborted") if !job.state.is_terminal() => {
                job.close(JobState::Aborted, now);
                return Ok(info_response(job, InfoForm::Short));
            }
            other => {
                return Err(invalid_job_state(format!(
                    "Cannot change the state of a job in state {} to {}",
                    job.state.as_str(),
                    other.unwrap_or("null")
                )));
            }
        }
        info_response(job, InfoForm::Short)
    };
    if let Ok(id) = crate::ids::Id::parse(&id) {
        ingest_runner::spawn(state, id);
    }
    Ok(response)
}

/// `DELETE /jobs/ingest/<id>`: 204, unless the job is being processed.
pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((_, id)): Path<(String, String)>,
) -> Result<StatusCode, RestError> {
    require_ingest_version(&caller)?;
    let mut bulk = state.bulk();
    let job = bulk.ingest.get(&id).ok_or_else(job_not_found)?;
    if matches!(job.state, JobState::UploadComplete | JobState::InProgress) {
        return Err(invalid_job_state(format!(
            "Cannot delete a job in state {}",
            job.state.as_str()
        )));
    }
    bulk.ingest.remove(&id);
    Ok(StatusCode::NO_CONTENT)
}
