//! The results of a Bulk API 2.0 query job, one page per request
//! (`GET /jobs/query/<id>/results?locator=&maxRecords=`).
//!
//! A page is `text/csv` with a header row, and two headers: `Sforce-NumberOfRecords`, the
//! records in this page, and `Sforce-Locator`, the next page's locator or the literal `null`
//! after the last page. Locators stay valid, and pages can be read again, for as long as the
//! job exists (seven days after it ends), so a reader that checkpoints the next locator with
//! the records of a page can resume after a crash at the page it had not finished.
//!
//! The body is never held whole: it is asked for with `Accept-Encoding: gzip` (which the
//! docs recommend for download speed, and Salesforce then compresses), gunzipped as it
//! arrives by the HTTP client, stripped of NUL bytes and counted as it passes (see
//! `csv_body`).
//!
//! Job info can say `JobComplete` a moment before the results resource agrees, which then
//! answers 412 `JOB_NOT_COMPLETE`; that answer is retried a few times after short waits.
//!
//! `/resultPages` (API 58.0 and later) is not used. It hands out up to five result URLs per
//! call so that a client can download pages in parallel; sfpg copies pages one after
//! another into one table, each committed with the next locator, which the page before
//! already gives for free in `Sforce-Locator`. Asking `/resultPages` first would add a
//! request per five pages and nothing the sequential reader can use.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use reqwest::Method;
use reqwest::header::HeaderValue;

use super::Bulk;
use super::csv_body::{CsvBody, PageIdentity};
use super::job::PollBackoff;
use crate::client::{BodyStream, Response};
use crate::error::{Error, Result};

/// The response header with the records in the page.
pub const NUMBER_OF_RECORDS_HEADER: &str = "Sforce-NumberOfRecords";

/// The response header with the next page's locator, `null` after the last page.
pub const LOCATOR_HEADER: &str = "Sforce-Locator";

/// Requests in all for a page while the results answer 412 `JOB_NOT_COMPLETE`, and the cap
/// of the waits between them (0.2 s doubling: about 6 s in all).
const NOT_COMPLETE_ATTEMPTS: u32 = 6;
const NOT_COMPLETE_WAIT_CAP: Duration = Duration::from_millis(3200);

/// One page of a query job's results: its headers, and its CSV body as a stream of chunks.
///
/// The body (this value as a [`Stream`]) yields the CSV as Salesforce wrote it, header row
/// first, gunzipped and without NUL bytes. After the last chunk it checks the records it
/// held against [`ResultsPage::number_of_records`] and yields [`Error::BulkPageCount`]
/// instead of ending if they differ; a connection cut half-way yields
/// [`Error::Transport`]. Whatever a consumer did with the chunks (a `COPY`) must therefore
/// not be committed until the stream has ended without an error. A page can be read again
/// with the same locator.
pub struct ResultsPage {
    /// The job the page belongs to.
    pub job_id: String,
    /// The locator the page was asked for with; `None` for the first page.
    pub locator: Option<String>,
    /// `Sforce-NumberOfRecords`: the records in this page.
    pub number_of_records: u64,
    /// `Sforce-Locator`: the next page's locator; `None` after the last page (`null`).
    pub next_locator: Option<String>,
    body: CsvBody,
}

impl std::fmt::Debug for ResultsPage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResultsPage")
            .field("job_id", &self.job_id)
            .field("locator", &self.locator)
            .field("number_of_records", &self.number_of_records)
            .field("next_locator", &self.next_locator)
            .finish_non_exhaustive()
    }
}

impl Stream for ResultsPage {
    type Item = Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.body).poll_next(cx)
    }
}

impl Bulk {
    /// One page of the job's results: the first when `locator` is `None`, else the page at
    /// `locator` (a previous page's [`ResultsPage::next_locator`]). `max_records` bounds the
    /// page; without it Salesforce picks the size. The job must be `JobComplete` (412
    /// otherwise, retried a few times for the moment job info runs ahead of the results);
    /// a deleted or expired job is 404 ([`Error::is_job_gone`]); another API version than
    /// the job's is 409.
    pub async fn query_results(
        &self,
        id: &str,
        locator: Option<&str>,
        max_records: Option<u32>,
    ) -> Result<ResultsPage> {
        let mut waits = PollBackoff::new(NOT_COMPLETE_WAIT_CAP);
        let mut attempt = 1;
        let response = loop {
            let request = self.results_request(id, locator, max_records)?;
            match self.client.execute_streamed(request).await {
                Err(error) if error.is_job_not_complete() && attempt < NOT_COMPLETE_ATTEMPTS => {
                    attempt += 1;
                    let wait = waits.next_wait();
                    tracing::info!(
                        job = id,
                        ?wait,
                        "results not ready although the job is complete; asking again"
                    );
                    tokio::time::sleep(wait).await;
                }
                answer => break answer?,
            }
        };
        page(id, locator, response)
    }

    fn results_request(
        &self,
        id: &str,
        locator: Option<&str>,
        max_records: Option<u32>,
    ) -> Result<crate::client::ApiRequest> {
        let mut request = self
            .query_request(Method::GET, &[id, "results"])?
            .header("accept", HeaderValue::from_static("text/csv"))
            // Explicit, so compression does not hang on the HTTP client's defaults.
            .header("accept-encoding", HeaderValue::from_static("gzip"));
        if let Some(locator) = locator {
            request = request.query("locator", locator);
        }
        if let Some(max_records) = max_records {
            request = request.query("maxRecords", max_records.to_string());
        }
        Ok(request)
    }
}

/// The page a results response is.
fn page(id: &str, locator: Option<&str>, response: Response<BodyStream>) -> Result<ResultsPage> {
    let protocol = |detail: String| Error::Protocol {
        endpoint: response.endpoint.clone(),
        detail,
    };
    let number_of_records = response
        .header(NUMBER_OF_RECORDS_HEADER)
        .ok_or_else(|| protocol(format!("no {NUMBER_OF_RECORDS_HEADER} header")))?;
    let number_of_records = number_of_records.trim().parse::<u64>().map_err(|_| {
        protocol(format!(
            "{NUMBER_OF_RECORDS_HEADER}: {number_of_records:?} is not a count"
        ))
    })?;
    let next_locator = next_locator(response.header(LOCATOR_HEADER))
        .ok_or_else(|| protocol(format!("no {LOCATOR_HEADER} header")))?;
    let identity = PageIdentity {
        endpoint: response.endpoint.clone(),
        job_id: id.to_owned(),
        locator: locator.map(str::to_owned),
        number_of_records,
    };
    Ok(ResultsPage {
        job_id: id.to_owned(),
        locator: locator.map(str::to_owned),
        number_of_records,
        next_locator,
        body: CsvBody::new(response.body, identity),
    })
}

/// The next page's locator from `Sforce-Locator`: `Some(None)` for the literal `null` of
/// the last page, `None` when the header is missing or empty (a broken answer: taking it
/// for the last page would drop the rest of the results silently).
pub(crate) fn next_locator(header: Option<&str>) -> Option<Option<String>> {
    match header.map(str::trim) {
        None | Some("") => None,
        Some("null") => Some(None),
        Some(locator) => Some(Some(locator.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_literal_null_ends_the_pages() {
        assert_eq!(next_locator(Some("null")), Some(None));
        assert_eq!(
            next_locator(Some("MTAwMDA")),
            Some(Some("MTAwMDA".to_owned()))
        );
        // Up to API 48 locators were numbers.
        assert_eq!(next_locator(Some("50000")), Some(Some("50000".to_owned())));
        assert_eq!(next_locator(None), None);
        assert_eq!(next_locator(Some("")), None);
    }
}
