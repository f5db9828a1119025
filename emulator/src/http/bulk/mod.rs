//! Bulk API 2.0: the job store every kind of job shares, its routes under
//! `/services/data/vXX.X/jobs/`, and query jobs.
//!
//! - [`jobs`]: the generic job (`Job<T>`, states, CSV format, job info JSON) and a table
//!   of jobs of one kind (`JobTable<T>`), with the `750…` Id minter shared by all kinds;
//! - [`query`]: creating, reading, listing, aborting and deleting query jobs;
//! - [`runner`]: the background task that moves a query job through its states;
//! - [`results`]: `…/results` (CSV pages, gzip) and `…/resultPages`;
//! - [`ingest`], [`ingest_runner`], [`ingest_results`]: ingest jobs (create, upload,
//!   close, abort, delete), their processing, and their three result files.
//! - [`limits`]: `DailyBulkV2QueryJobs` and `DailyBulkV2QueryFileStorageMB`;
//! - [`faults`] and [`admin`]: failing, slow, expired and not-yet-readable jobs on demand,
//!   under `/__emulator/bulk/`.
//!
//! Ingest jobs have a `JobTable` of their own in [`BulkJobs`] and their routes in
//! [`routes`], beside the query routes.
//!
//! Every route sits behind the REST gate (version, session, daily allocation): a Bulk
//! request is an API request like any other. The store sits behind its own lock, taken
//! for short sections and never together with the org's lock.

mod admin;
pub mod faults;
pub mod ingest;
mod ingest_results;
mod ingest_runner;
pub mod jobs;
pub mod limits;
mod query;
mod results;
mod runner;

use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, put};

use self::faults::QueryJobFaults;
pub use self::ingest::IngestJob;
use self::jobs::{JobIds, JobTable};
use self::limits::BulkLimits;
pub use self::query::QueryJob;
use super::error::RestError;
use super::state::AppState;
use crate::ids::IdError;

/// The first API version that has Bulk API 2.0 query jobs.
pub const FIRST_QUERY_VERSION: u16 = 47;

/// Every Bulk job in the org, by kind, and how long processing takes.
#[derive(Debug)]
pub struct BulkJobs {
    ids: JobIds,
    pub query: JobTable<QueryJob>,
    pub ingest: JobTable<IngestJob>,
    /// `DailyBulkV2QueryJobs` and `DailyBulkV2QueryFileStorageMB`.
    pub limits: BulkLimits,
    /// Faults waiting for the next query jobs.
    pub faults: QueryJobFaults,
    /// How long a job takes from `UploadComplete` to its end (half of it queued, half
    /// in progress).
    pub processing_delay: Duration,
    /// Records per results page when a request names no `maxRecords` (and per
    /// `resultUrl` of `/resultPages`).
    pub default_page_size: usize,
}

impl BulkJobs {
    pub fn new(processing_delay: Duration) -> Result<BulkJobs, IdError> {
        Ok(BulkJobs {
            ids: JobIds::new()?,
            query: JobTable::default(),
            ingest: JobTable::default(),
            limits: BulkLimits::default(),
            faults: QueryJobFaults::default(),
            processing_delay,
            default_page_size: results::DEFAULT_MAX_RECORDS,
        })
    }

    /// A new job Id (`750…`), unique across every kind of job.
    pub fn next_id(&mut self) -> crate::ids::Id {
        self.ids.next_id()
    }
}

pub use self::admin::routes as admin_routes;

/// The Bulk routes; the caller puts them behind the REST gate.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/services/data/{version}/jobs/query",
            get(query::list).post(query::create),
        )
        .route(
            "/services/data/{version}/jobs/query/{id}",
            get(query::info).patch(query::abort).delete(query::delete),
        )
        .route(
            "/services/data/{version}/jobs/query/{id}/results",
            get(results::results),
        )
        .route(
            "/services/data/{version}/jobs/query/{id}/resultPages",
            get(results::result_pages),
        )
        .route(
            "/services/data/{version}/jobs/ingest",
            get(ingest::list).post(ingest::create),
        )
        .route(
            "/services/data/{version}/jobs/ingest/{id}",
            get(ingest::info)
                .patch(ingest::change_state)
                .delete(ingest::delete),
        )
        .route(
            "/services/data/{version}/jobs/ingest/{id}/batches",
            put(ingest::upload),
        )
        .route(
            "/services/data/{version}/jobs/ingest/{id}/successfulResults",
            get(ingest_results::successful),
        )
        .route(
            "/services/data/{version}/jobs/ingest/{id}/failedResults",
            get(ingest_results::failed),
        )
        .route(
            "/services/data/{version}/jobs/ingest/{id}/unprocessedrecords",
            get(ingest_results::unprocessed),
        )
        // The guide spells it all lower case; simple-salesforce, which works against
        // Salesforce, asks for `unprocessedRecords`.
        .route(
            "/services/data/{version}/jobs/ingest/{id}/unprocessedRecords",
            get(ingest_results::unprocessed),
        )
}

/// `404 NOT_FOUND` for a job that does not exist (any more).
pub fn job_not_found() -> RestError {
    RestError::not_found()
}

/// A job field with a value Bulk does not take: `400 INVALIDJOB`. The code is one of
/// the Bulk API 2.0 error codes Salesforce lists ("Errors"); the messages are the
/// emulator's (no capture found).
/// A new job's CSV settings as its body gives them (`contentType`, `columnDelimiter`,
/// `lineEnding`), each defaulted when absent; only CSV exists.
pub fn csv_settings(
    content_type: Option<&str>,
    column_delimiter: Option<&str>,
    line_ending: Option<&str>,
) -> Result<(jobs::ColumnDelimiter, jobs::LineEnding), RestError> {
    if let Some(content_type) = content_type
        && content_type != "CSV"
    {
        return Err(invalid_job(format!("Invalid contentType: {content_type}")));
    }
    let column_delimiter = match column_delimiter {
        None => jobs::ColumnDelimiter::default(),
        Some(text) => jobs::ColumnDelimiter::parse(text)
            .ok_or_else(|| invalid_job(format!("Invalid columnDelimiter: {text}")))?,
    };
    let line_ending = match line_ending {
        None => jobs::LineEnding::default(),
        Some(text) => jobs::LineEnding::parse(text)
            .ok_or_else(|| invalid_job(format!("Invalid lineEnding: {text}")))?,
    };
    Ok((column_delimiter, line_ending))
}

pub fn invalid_job(message: impl Into<String>) -> RestError {
    RestError::bad_request("INVALIDJOB", message)
}

/// `400 INVALIDJOBSTATE`: a state change or deletion the job's state does not allow.
pub fn invalid_job_state(message: impl Into<String>) -> RestError {
    RestError::bad_request("INVALIDJOBSTATE", message)
}

/// `409` for results asked for in another API version than the job's. Salesforce
/// documents the status ("Get Results for a Query Job"), not the body; the code and
/// message here are the emulator's.
pub fn version_mismatch(job_version: u16, asked: u16) -> RestError {
    RestError::new(
        StatusCode::CONFLICT,
        "API_VERSION_MISMATCH",
        format!(
            "Use the API version the job was created with ({job_version}.0) to get its \
             results, not {asked}.0"
        ),
    )
}
