//! Bulk API 2.0 ingest jobs (reference §5.1): records written as CSV, in jobs of one
//! upload each, and every record's outcome joined back to it.
//!
//! ```no_run
//! use std::time::Duration;
//! use serde_json::json;
//! use sfpg_salesforce::Client;
//! use sfpg_salesforce::bulk::{IngestOperation, RecordOutcome};
//!
//! # async fn run(client: Client) -> sfpg_salesforce::Result<()> {
//! let records = vec![
//!     json!({"Name": "Acme", "Phone": null}).as_object().cloned().unwrap_or_default(),
//! ];
//! let report = client
//!     .bulk()
//!     .ingest("Account", &IngestOperation::Insert, &records, Duration::from_secs(10))
//!     .await?;
//! for (record, outcome) in records.iter().zip(&report.outcomes) {
//!     if let RecordOutcome::Failed { error, .. } = outcome {
//!         eprintln!("{}: {}: {}", record["Name"], error.status_code, error.message);
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! [`Bulk::ingest`] builds the CSV ([`csv_parts`]: `null` is `#N/A`, never an empty
//! cell) one record at a time, in parts of at most 100 MB, and runs one job per part, one after the
//! other, as Salesforce takes one upload per job: create, upload, close, poll with the
//! query jobs' backoff (0.2 s doubling up to a cap), then read the three result files and
//! join them to the records ([`results`]: by the rows' cells, since Salesforce keeps no
//! order and takes no column of ours). Every request goes through the client's one path:
//! the org's rate limiter, retries, re-authentication. The upload is retried only when
//! Salesforce certainly did not receive it, since a job given two uploads refuses to run.

mod csv_parts;
mod results;
mod upload;

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use reqwest::Method;
use reqwest::header::HeaderValue;
use serde::Serialize;

pub use csv_parts::{Columns, CsvParts, MAX_PART_BYTES, NULL_CELL, Part, PartRows, record_fields};
pub use results::RecordOutcome;
pub use upload::{CsvData, SpooledCsv};

use self::results::{Join, ResultsFile};
use super::csv_body::RecordRuns;
use super::{Bulk, JobInfo, JobState, PollBackoff};
use crate::Record;
use crate::client::ApiRequest;
use crate::error::{Error, Result};

/// How much of a result file is parsed at a time.
const RESULTS_RUN_BYTES: usize = 1024 * 1024;

/// What an ingest job does with each record (`operation`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestOperation {
    /// Creates records.
    Insert,
    /// Updates the records the `Id` column names.
    Update,
    /// Updates the record the external id field's value matches, or creates one.
    Upsert {
        /// The external id field (`externalIdFieldName`).
        external_id_field: String,
    },
    /// Deletes the records the `Id` column names, to the recycle bin.
    Delete,
    /// Deletes them for good: no recycle bin (needs the "Bulk API Hard Delete" permission).
    HardDelete,
}

impl IngestOperation {
    /// As Salesforce spells it.
    pub fn as_str(&self) -> &'static str {
        match self {
            IngestOperation::Insert => "insert",
            IngestOperation::Update => "update",
            IngestOperation::Upsert { .. } => "upsert",
            IngestOperation::Delete => "delete",
            IngestOperation::HardDelete => "hardDelete",
        }
    }
}

/// What an ingest did.
#[derive(Debug)]
pub struct IngestReport {
    /// One outcome per record given, in the same order.
    pub outcomes: Vec<RecordOutcome>,
    /// The jobs run, one per part, as they ended.
    pub jobs: Vec<JobInfo>,
    /// What stopped the ingest before every part was done (a request that failed after its
    /// retries); the records it left are `Unprocessed` (never sent) or `Unknown` (their job
    /// was closed and may have run).
    pub error: Option<Error>,
}

/// The body of `POST /jobs/ingest`; the CSV format is spelled out, as the parts are built
/// in it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CreateIngestJob<'a> {
    object: &'a str,
    operation: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    external_id_field_name: Option<&'a str>,
    content_type: &'static str,
    column_delimiter: &'static str,
    line_ending: &'static str,
}

impl Bulk {
    /// Writes `records` to `object` through ingest jobs and returns each record's outcome.
    /// A record's fields are its keys (`attributes` left out): `null` or `""` sets a field
    /// to null, a key left out leaves it as it is; a parent by external id is
    /// `{"Account__r": {"External_Id__c": "A-1"}}`. Values with no CSV form (arrays) are
    /// refused before anything is sent. Polls back off up to `poll_cap`.
    pub async fn ingest(
        &self,
        object: &str,
        operation: &IngestOperation,
        records: &[Record],
        poll_cap: Duration,
    ) -> Result<IngestReport> {
        self.ingest_in_parts(object, operation, records, poll_cap, MAX_PART_BYTES)
            .await
    }

    /// [`Bulk::ingest`] with parts of at most `max_part_bytes` of CSV (at most
    /// [`MAX_PART_BYTES`]), for callers that want smaller jobs: each finishes sooner, and
    /// a failure stops less.
    pub async fn ingest_in_parts(
        &self,
        object: &str,
        operation: &IngestOperation,
        records: &[Record],
        poll_cap: Duration,
        max_part_bytes: usize,
    ) -> Result<IngestReport> {
        // Every part is built before the first job, so that a record the CSV cannot carry
        // is refused before anything is sent.
        let mut builder = CsvParts::new(
            Columns::of_records(records)?,
            max_part_bytes.min(MAX_PART_BYTES),
        );
        let mut parts = Vec::new();
        for record in records {
            parts.extend(builder.push(record_fields(record))?);
        }
        parts.extend(builder.finish()?);
        let mut report = IngestReport {
            outcomes: Vec::with_capacity(records.len()),
            jobs: Vec::new(),
            error: None,
        };
        for part in parts {
            if report.error.is_some() {
                report
                    .outcomes
                    .extend(part.rows.map(|_| RecordOutcome::Unprocessed));
                continue;
            }
            let rows = part.rows.len();
            match self.ingest_part(object, operation, part, poll_cap).await {
                Ok((job, outcomes)) => {
                    report.jobs.push(job);
                    report.outcomes.extend(outcomes);
                }
                Err((fate, error)) => {
                    report.outcomes.extend((0..rows).map(|_| fate.clone()));
                    report.error = Some(error);
                }
            }
        }
        Ok(report)
    }

    /// One part through one job. `Err` carries what became of the part's records as far
    /// as is known, and why the job could not be followed.
    async fn ingest_part(
        &self,
        object: &str,
        operation: &IngestOperation,
        part: Part,
        poll_cap: Duration,
    ) -> std::result::Result<(JobInfo, Vec<RecordOutcome>), (RecordOutcome, Error)> {
        let unprocessed = |e| (RecordOutcome::Unprocessed, e);
        let unknown = |e| (RecordOutcome::Unknown, e);
        let job = self
            .create_ingest_job(object, operation)
            .await
            .map_err(unprocessed)?;
        if let Err(error) = self.upload_ingest_data(&job.id, part.csv).await {
            // Never closed, the job never runs; aborting it tidies up.
            let _ = self.abort_ingest_job(&job.id).await;
            return Err(unprocessed(error));
        }
        self.close_ingest_job(&job.id).await.map_err(unknown)?;
        let job = self
            .wait_for_ingest_job(&job.id, poll_cap)
            .await
            .map_err(unknown)?;
        let outcomes = self
            .ingest_outcomes(&job, &part.results)
            .await
            .map_err(unknown)?;
        Ok((job, outcomes))
    }

    /// The outcome of each row of the part `job` (ended) was uploaded with ([`Part::results`]),
    /// in upload order, from its three result files. For callers that run the job's steps
    /// themselves ([`Bulk::create_ingest_job`], [`Bulk::upload_ingest_data`],
    /// [`Bulk::close_ingest_job`], polling [`Bulk::ingest_job`]); a job that ended
    /// `Failed` or `Aborted` leaves the rows it did not reach `Unprocessed`.
    pub async fn ingest_outcomes(
        &self,
        job: &JobInfo,
        rows: &PartRows,
    ) -> Result<Vec<RecordOutcome>> {
        let mut join = Join::new(rows);
        for file in [
            ResultsFile::Successful,
            ResultsFile::Failed,
            ResultsFile::Unprocessed,
        ] {
            self.join_results_file(&job.id, file, &mut join).await?;
        }
        if job.state == JobState::JobComplete {
            join.finish()
                .map_err(|detail| self.results_protocol(&job.id, detail))
        } else {
            Ok(join.finish_unprocessed())
        }
    }

    /// Joins one of job `id`'s result files to the rows of `join`, read from the streamed
    /// body a run of whole records at a time: the file of a 100 MB part is as large.
    async fn join_results_file(
        &self,
        id: &str,
        file: ResultsFile,
        join: &mut Join<'_>,
    ) -> Result<()> {
        let response = self
            .client
            .execute_streamed(self.ingest_results_request(id, file)?)
            .await?;
        let endpoint = response.endpoint;
        let mut body = response.body;
        let mut file_join = join.file(file);
        let mut runs = RecordRuns::new(RESULTS_RUN_BYTES);
        let protocol = |detail| self.results_protocol(id, detail);
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|source| Error::Transport {
                endpoint: endpoint.clone(),
                source: source.without_url(),
            })?;
            if let Some(run) = runs.feed(&chunk) {
                file_join.run(&run).map_err(protocol)?;
            }
        }
        if let Some(run) = runs.finish() {
            file_join.run(&run).map_err(protocol)?;
        }
        Ok(())
    }

    fn results_protocol(&self, id: &str, detail: String) -> Error {
        Error::Protocol {
            endpoint: crate::error::Endpoint {
                method: Method::GET,
                path: format!("jobs/ingest/{id}"),
            },
            detail: format!("the results do not describe the upload: {detail}"),
        }
    }

    /// Creates an `Open` ingest job (`POST /jobs/ingest`), comma-separated with LF line
    /// endings as [`CsvParts`] writes.
    pub async fn create_ingest_job(
        &self,
        object: &str,
        operation: &IngestOperation,
    ) -> Result<JobInfo> {
        let external_id_field_name = match operation {
            IngestOperation::Upsert { external_id_field } => Some(external_id_field.as_str()),
            _ => None,
        };
        let body = CreateIngestJob {
            object,
            operation: operation.as_str(),
            external_id_field_name,
            content_type: "CSV",
            column_delimiter: "COMMA",
            line_ending: "LF",
        };
        let request = self.ingest_request(Method::POST, &[])?.json(&body)?;
        self.client
            .execute(request)
            .await?
            .json("Bulk API job info")
    }

    /// Uploads the job's CSV (`PUT …/batches`, 201). A job takes one upload.
    pub async fn upload_ingest_data(&self, id: &str, csv: impl Into<CsvData>) -> Result<()> {
        let csv = csv.into();
        let request = self
            .ingest_request(Method::PUT, &[id, "batches"])?
            .csv(csv)
            .not_idempotent();
        self.client.execute(request).await.map(drop)
    }

    /// Closes the job (`PATCH {"state": "UploadComplete"}`): Salesforce queues it.
    pub async fn close_ingest_job(&self, id: &str) -> Result<JobInfo> {
        self.set_ingest_state(id, JobState::UploadComplete).await
    }

    /// Aborts the job (`PATCH {"state": "Aborted"}`); refused (400) once it has ended.
    pub async fn abort_ingest_job(&self, id: &str) -> Result<JobInfo> {
        self.set_ingest_state(id, JobState::Aborted).await
    }

    async fn set_ingest_state(&self, id: &str, state: JobState) -> Result<JobInfo> {
        let request = self
            .ingest_request(Method::PATCH, &[id])?
            .json(&serde_json::json!({"state": state.as_str()}))?;
        self.client
            .execute(request)
            .await?
            .json("Bulk API job info")
    }

    /// The job's info (`GET /jobs/ingest/<id>`).
    pub async fn ingest_job(&self, id: &str) -> Result<JobInfo> {
        let request = self.ingest_request(Method::GET, &[id])?;
        self.client
            .execute(request)
            .await?
            .json("Bulk API job info")
    }

    /// Polls the job until it ends (0.2 s, doubling up to `cap`) and returns its info,
    /// `Failed` and `Aborted` included: their result files still say what was done.
    pub async fn wait_for_ingest_job(&self, id: &str, cap: Duration) -> Result<JobInfo> {
        let mut waits = PollBackoff::new(cap);
        loop {
            tokio::time::sleep(waits.next_wait()).await;
            let info = self.ingest_job(id).await?;
            if info.state.is_terminal() {
                return Ok(info);
            }
        }
    }

    /// The Ids of the records job `id` saved, from its `successfulResults/` (`sf__Id`):
    /// what a caller that lost the job's upload learns of it, a record created, updated or
    /// deleted each. Read whole (about 100 bytes a row), kept as Ids only.
    pub async fn ingest_saved_ids(&self, id: &str) -> Result<Vec<String>> {
        let csv = self.ingest_results(id, ResultsFile::Successful).await?;
        results::saved_ids(&csv).map_err(|detail| self.results_protocol(id, detail))
    }

    /// Deletes the job (`DELETE`, 204).
    pub async fn delete_ingest_job(&self, id: &str) -> Result<()> {
        let request = self.ingest_request(Method::DELETE, &[id])?;
        self.client.execute(request).await.map(drop)
    }

    /// One of the job's result files, whole.
    async fn ingest_results(&self, id: &str, file: ResultsFile) -> Result<Bytes> {
        Ok(self
            .client
            .execute(self.ingest_results_request(id, file)?)
            .await?
            .body)
    }

    /// The request for one of job `id`'s result files.
    fn ingest_results_request(&self, id: &str, file: ResultsFile) -> Result<ApiRequest> {
        Ok(self
            .ingest_request(Method::GET, &[id, file.segment()])?
            .header("accept", HeaderValue::from_static("text/csv")))
    }

    /// A request under `/jobs/ingest`, the job id checked to be one.
    fn ingest_request(&self, method: Method, segments: &[&str]) -> Result<ApiRequest> {
        if let Some(id) = segments.first() {
            super::job::check_job_id(id)?;
        }
        let path = ["jobs", "ingest"]
            .into_iter()
            .chain(segments.iter().copied());
        Ok(ApiRequest::rest(method, path))
    }
}
