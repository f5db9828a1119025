//! One request of a Bulk API 2.0 query job's life, whoever reads through it (a backfill, a
//! catch-up, a reconciliation, a formula refresh): create the job, ask how it is doing, or
//! ask for its next result page. What the answer means for the object is the caller's.

use sfpg_salesforce::bulk::{JobInfo, JobState, QueryOperation, ResultsPage};
use sfpg_salesforce::{Client, ErrorClass};

use crate::error::Result;
use crate::object::JobWatch;

/// Where a reader stands with its job.
#[derive(Debug, Clone, Copy)]
pub struct JobPosition<'a> {
    /// The job, once created.
    pub job_id: Option<&'a str>,
    /// The next page's locator; `None` for the first.
    pub locator: Option<&'a str>,
}

/// What the request found.
pub enum Advance {
    /// The job was created.
    Created(JobInfo),
    /// The job is still being processed.
    Running(JobInfo),
    /// The job is complete: its pages can be read.
    Complete(JobInfo),
    /// The next page, its body still to be read (boxed: a page is large beside the rest).
    Page(Box<ResultsPage>),
    /// The job said it was complete but its results did not agree (Salesforce's 412
    /// `JOB_NOT_COMPLETE` race): it must be asked about again.
    NotReady,
    /// The job will not deliver: deleted, expired (404), `Failed` or `Aborted`. A new job
    /// must replace it; the reason says why.
    Gone(String),
    /// Salesforce's Bulk API will not run this query at all (an object or a field it does
    /// not support): only REST can read it.
    Refused(String),
}

/// Sends the one request `position` calls for: a job for `soql` when there is none, a poll
/// while `watch` says it is not complete, else the page at the locator.
pub async fn advance(
    client: &Client,
    watch: &JobWatch,
    position: JobPosition<'_>,
    soql: &str,
    operation: QueryOperation,
    page_size: Option<u32>,
) -> Result<Advance> {
    let bulk = client.bulk();
    let Some(job) = position.job_id else {
        return match bulk.create_query_job(soql, operation).await {
            Ok(info) => Ok(Advance::Created(info)),
            Err(error) if refused(&error) => Ok(Advance::Refused(error.to_string())),
            Err(error) => Err(error.into()),
        };
    };
    let answer = if watch.complete {
        bulk.query_results(job, position.locator, page_size)
            .await
            .map(|page| Advance::Page(Box::new(page)))
    } else {
        bulk.query_job(job).await.map(|info| match info.state {
            JobState::JobComplete => Advance::Complete(info),
            JobState::Failed | JobState::Aborted => {
                crate::telemetry::bulk_job_failed(client.config().org_label());
                Advance::Gone(format!(
                    "query job {job} ended {}: {}",
                    info.state,
                    info.error_message.as_deref().unwrap_or("(no errorMessage)")
                ))
            }
            _ => Advance::Running(info),
        })
    };
    match answer {
        Err(error) if error.is_job_gone() => {
            crate::telemetry::bulk_job_failed(client.config().org_label());
            Ok(Advance::Gone(format!(
                "query job {job} is gone (deleted or expired): {error}"
            )))
        }
        Err(error) if error.is_job_not_complete() => Ok(Advance::NotReady),
        answer => Ok(answer?),
    }
}

/// Whether creating a job failed because the Bulk API will not run the query: a refusal
/// that no retry changes. A field or object gone from describe is not one: the sync
/// describes the object again, as for a REST query.
fn refused(error: &sfpg_salesforce::Error) -> bool {
    error.class() == ErrorClass::NotRetryable
        && matches!(error, sfpg_salesforce::Error::Api { .. })
        && !matches!(error.error_code(), Some("INVALID_FIELD" | "INVALID_TYPE"))
}
