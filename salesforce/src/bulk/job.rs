//! Bulk API 2.0 query jobs: create, read, wait for, abort and delete (reference §5.2).
//!
//! A query job is created `UploadComplete` (there is nothing to upload) and Salesforce moves
//! it `InProgress`, then `JobComplete`, `Failed` or `Aborted`. Waiting polls the job's info
//! with a backoff that starts at 0.2 s and doubles up to a cap, as Estuary's connector does:
//! a small job is seen complete within a second, and a long one costs a poll per cap
//! (streaming-bulk-scale.md §3.3). Each poll is an ordinary API request: it waits for the
//! org's rate limiter and counts against the daily allocation like any other.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::Bulk;
use crate::client::ApiRequest;
use crate::datetime;
use crate::error::{Error, Result};

/// `query` (live records) or `queryAll` (deleted and archived ones too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum QueryOperation {
    /// `query`: records in the org, as SOQL's `query` sees them.
    #[serde(rename = "query")]
    Query,
    /// `queryAll`: also soft-deleted records (`IsDeleted = true`) and archived activities.
    #[serde(rename = "queryAll")]
    QueryAll,
}

/// A Bulk API 2.0 job's `state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JobState {
    /// An ingest job taking uploads; query jobs never are.
    Open,
    /// Ready to be processed; where a query job starts.
    UploadComplete,
    /// Being processed.
    InProgress,
    /// Done; its results can be read.
    JobComplete,
    /// Ended in failure; `errorMessage` says why.
    Failed,
    /// Aborted by a client.
    Aborted,
}

impl JobState {
    /// Whether the job has ended: `JobComplete`, `Failed` or `Aborted`.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::JobComplete | JobState::Failed | JobState::Aborted
        )
    }

    /// The state as Salesforce spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Open => "Open",
            JobState::UploadComplete => "UploadComplete",
            JobState::InProgress => "InProgress",
            JobState::JobComplete => "JobComplete",
            JobState::Failed => "Failed",
            JobState::Aborted => "Aborted",
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A job's info, as `POST /jobs/query` and `GET /jobs/query/<id>` send it. The create answer
/// leaves out the processing figures, which then read as zero.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobInfo {
    /// The job's Id (key prefix `750`).
    pub id: String,
    /// `query` or `queryAll` for query jobs; `insert`, `update`, … for ingest jobs.
    pub operation: String,
    /// The object queried or loaded.
    pub object: String,
    /// The user who created the job.
    #[serde(default)]
    pub created_by_id: Option<String>,
    /// When the job was created.
    #[serde(deserialize_with = "datetime::deserialize")]
    pub created_date: DateTime<Utc>,
    /// When the job last changed.
    #[serde(deserialize_with = "datetime::deserialize")]
    pub system_modstamp: DateTime<Utc>,
    /// Where the job is.
    pub state: JobState,
    /// `Parallel`.
    #[serde(default)]
    pub concurrency_mode: Option<String>,
    /// `CSV`.
    #[serde(default)]
    pub content_type: Option<String>,
    /// The API version the job was created with, a JSON number such as `62.0`; its results
    /// must be read with the same version (409 otherwise).
    #[serde(default)]
    pub api_version: Option<f64>,
    /// `LF` or `CRLF`.
    #[serde(default)]
    pub line_ending: Option<String>,
    /// `COMMA`, `TAB`, ….
    #[serde(default)]
    pub column_delimiter: Option<String>,
    /// Records processed so far; for a complete query job, the records its results hold.
    #[serde(default)]
    pub number_records_processed: u64,
    /// Ingest jobs: records that failed.
    #[serde(default)]
    pub number_records_failed: u64,
    /// Times Salesforce retried the job internally.
    #[serde(default)]
    pub retries: u64,
    /// Milliseconds spent processing.
    #[serde(default)]
    pub total_processing_time: u64,
    /// `V2Query` or `V2Ingest`.
    #[serde(default)]
    pub job_type: Option<String>,
    /// Why the job failed.
    #[serde(default)]
    pub error_message: Option<String>,
    /// Query jobs: whether Salesforce splits the query in primary-key chunks.
    #[serde(default)]
    pub is_pk_chunking_supported: Option<bool>,
    /// Ingest jobs: where the CSV is uploaded.
    #[serde(default)]
    pub content_url: Option<String>,
}

impl JobInfo {
    /// The job, or [`Error::BulkJob`] when it ended `Failed` or `Aborted`.
    pub fn ok_unless_ended_badly(self) -> Result<Self> {
        match self.state {
            JobState::Failed | JobState::Aborted => Err(Error::BulkJob {
                job_id: self.id,
                state: self.state,
                error_message: self.error_message,
            }),
            _ => Ok(self),
        }
    }

    /// Checks that the result pages held `counted` records in all, as many as the job
    /// processed: a page lost or read twice shows here. [`Error::BulkTotalCount`] if not.
    pub fn check_total(&self, counted: u64) -> Result<()> {
        if counted == self.number_records_processed {
            return Ok(());
        }
        Err(Error::BulkTotalCount {
            job_id: self.id.clone(),
            number_records_processed: self.number_records_processed,
            counted,
        })
    }
}

/// The waits between polls of a job: 0.2 s, doubling, never above the cap.
#[derive(Debug, Clone)]
pub struct PollBackoff {
    next: Duration,
    cap: Duration,
}

/// The first wait of [`PollBackoff`].
pub const FIRST_POLL: Duration = Duration::from_millis(200);

impl PollBackoff {
    /// Waits from 0.2 s up to `cap` (a cap below 0.2 s caps every wait).
    pub fn new(cap: Duration) -> Self {
        Self {
            next: FIRST_POLL.min(cap),
            cap,
        }
    }

    /// The next wait.
    pub fn next_wait(&mut self) -> Duration {
        let wait = self.next;
        self.next = self.next.saturating_mul(2).min(self.cap);
        wait
    }

    /// The next wait for a job that has processed `processed` of its `total` records in
    /// the `running` time since it was closed: the doubled wait, or, when the job should end
    /// sooner at the pace it has kept, the time its other records should take, so that a
    /// job near its end is not left for most of a doubled wait. Never more often than a
    /// twentieth of the time the job has run (nor than 0.1 s): a job whose records are all
    /// processed but which has not ended yet is not polled in a loop.
    pub fn next_wait_paced(&mut self, processed: u64, total: u64, running: Duration) -> Duration {
        let doubled = self.next_wait();
        if processed == 0 || total == 0 {
            return doubled;
        }
        let left = total.saturating_sub(processed);
        #[allow(clippy::cast_precision_loss)] // a ratio of record counts
        let rest = running.mul_f64(left as f64 / processed as f64);
        let floor = (running / 20).max(MIN_PACED_POLL);
        rest.max(floor).min(doubled)
    }
}

/// The shortest wait [`PollBackoff::next_wait_paced`] gives for a job's pace.
pub const MIN_PACED_POLL: Duration = Duration::from_millis(100);

impl Iterator for PollBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        Some(self.next_wait())
    }
}

/// The body of `POST /jobs/query`. The format is spelled out, not left to defaults, because
/// the record count and the sync's COPY read exactly this dialect.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CreateQueryJob<'a> {
    operation: QueryOperation,
    query: &'a str,
    content_type: &'static str,
    column_delimiter: &'static str,
    line_ending: &'static str,
}

impl Bulk {
    /// Creates a query job for `soql` (`POST /jobs/query`). Salesforce refuses, with 400
    /// and the errorCode in the error, what Bulk query does not run: aggregates, `OFFSET`,
    /// compound fields, parent-to-child subqueries. Leave out `ORDER BY` and `LIMIT` where
    /// possible: they turn off PK chunking and make large queries slow.
    pub async fn create_query_job(&self, soql: &str, operation: QueryOperation) -> Result<JobInfo> {
        let body = CreateQueryJob {
            operation,
            query: soql,
            content_type: "CSV",
            column_delimiter: "COMMA",
            line_ending: "LF",
        };
        let request = self.query_request(Method::POST, &[])?.json(&body)?;
        self.client
            .execute(request)
            .await?
            .json("Bulk API job info")
    }

    /// The job's info (`GET /jobs/query/<id>`), whatever its state.
    pub async fn query_job(&self, id: &str) -> Result<JobInfo> {
        let request = self.query_request(Method::GET, &[id])?;
        self.client
            .execute(request)
            .await?
            .json("Bulk API job info")
    }

    /// Polls the job until it ends, waiting 0.2 s before the first poll and doubling each
    /// wait up to `cap`. `JobComplete` returns its info; `Failed` or `Aborted` is
    /// [`Error::BulkJob`] with the job's `errorMessage`. There is no overall deadline:
    /// Salesforce gives a query job up to its own timeouts, and a caller with a deadline of
    /// its own puts this in a `tokio::time::timeout`.
    pub async fn wait_for_query_job(&self, id: &str, cap: Duration) -> Result<JobInfo> {
        let mut waits = PollBackoff::new(cap);
        loop {
            tokio::time::sleep(waits.next_wait()).await;
            let info = self.query_job(id).await?;
            if info.state.is_terminal() {
                return info.ok_unless_ended_badly();
            }
            tracing::debug!(job = id, state = %info.state, "Bulk API job still running");
        }
    }

    /// Aborts the job (`PATCH … {"state": "Aborted"}`) and returns its info. Salesforce
    /// refuses (400) to abort a job that has already ended.
    pub async fn abort_query_job(&self, id: &str) -> Result<JobInfo> {
        let request = self
            .query_request(Method::PATCH, &[id])?
            .json(&serde_json::json!({"state": "Aborted"}))?;
        self.client
            .execute(request)
            .await?
            .json("Bulk API job info")
    }

    /// Deletes the job and its results (`DELETE`, 204). Its locators stop working; later
    /// calls about it answer 404 ([`Error::is_job_gone`]).
    pub async fn delete_query_job(&self, id: &str) -> Result<()> {
        let request = self.query_request(Method::DELETE, &[id])?;
        self.client.execute(request).await.map(drop)
    }

    /// A request under `/jobs/query`, the job id checked to be one.
    pub(super) fn query_request(&self, method: Method, segments: &[&str]) -> Result<ApiRequest> {
        if let Some(id) = segments.first() {
            check_job_id(id)?;
        }
        let path = ["jobs", "query"]
            .into_iter()
            .chain(segments.iter().copied());
        Ok(ApiRequest::rest(method, path))
    }
}

/// Refuses what cannot be a job id before it goes into a URL: Salesforce Ids are 15 or 18
/// letters and digits.
pub(super) fn check_job_id(id: &str) -> Result<()> {
    let well_formed = matches!(id.len(), 15 | 18) && id.bytes().all(|b| b.is_ascii_alphanumeric());
    if well_formed {
        return Ok(());
    }
    Err(Error::InvalidRequest(format!(
        "{id:?} is not a Bulk API job id"
    )))
}

#[cfg(test)]
mod tests;
