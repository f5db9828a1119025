//! Bulk API 2.0 (reference §5): query jobs that read a whole object in a few dozen requests
//! where REST takes one per 2,000 records.
//!
//! ```no_run
//! use std::time::Duration;
//! use futures::TryStreamExt;
//! use sfpg_salesforce::Client;
//! use sfpg_salesforce::bulk::QueryOperation;
//!
//! # async fn run(client: Client) -> sfpg_salesforce::Result<()> {
//! let bulk = client.bulk();
//! let job = bulk
//!     .create_query_job("SELECT Id, Name FROM Account", QueryOperation::QueryAll)
//!     .await?;
//! let job = bulk.wait_for_query_job(&job.id, Duration::from_secs(30)).await?;
//! let (mut locator, mut records) = (None, 0);
//! loop {
//!     let mut page = bulk.query_results(&job.id, locator.as_deref(), Some(50_000)).await?;
//!     while let Some(chunk) = page.try_next().await? {
//!         // CSV bytes, header row first: hand them to COPY … FROM STDIN (FORMAT csv).
//!         let _ = chunk;
//!     }
//!     // The stream ended without error: the page held its Sforce-NumberOfRecords.
//!     records += page.number_of_records;
//!     locator = page.next_locator.take();
//!     if locator.is_none() {
//!         break;
//!     }
//! }
//! job.check_total(records)?;
//! bulk.delete_query_job(&job.id).await?;
//! # Ok(())
//! # }
//! ```
//!
//! Every request, job polls and result pages included, goes through the client's one
//! request path: the org's rate limiter, the token and its one re-authentication on 401,
//! retries of transient failures. Errors keep Salesforce's `errorCode`;
//! [`Error::is_job_gone`](crate::Error::is_job_gone) tells a job that was deleted or expired
//! (404), [`Error::BulkJob`](crate::Error::BulkJob) one that ended `Failed` or `Aborted`
//! with its `errorMessage`.

mod csv_body;
mod job;
mod query;

pub use job::{FIRST_POLL, JobInfo, JobState, PollBackoff, QueryOperation};
pub use query::{LOCATOR_HEADER, NUMBER_OF_RECORDS_HEADER, ResultsPage};

use crate::client::Client;

/// Bulk API 2.0 calls for one org, made through its [`Client`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Bulk {
    client: Client,
}

impl Client {
    /// Bulk API 2.0 through this client: same token, rate limiter, retries and priority.
    pub fn bulk(&self) -> Bulk {
        Bulk {
            client: self.clone(),
        }
    }
}
