//! The read-back of a bulk push's many records through one Bulk API 2.0 query job per
//! object, instead of a Collections retrieve per 200 records (500 requests, one after the
//! other, for 100,000 records).
//!
//! The job asks for the object's records changed since the push's first ingest job was
//! created (`SystemModstamp >=`, a little earlier for the clocks' granularity): every
//! record the push saved is among them, and an `IN` list of 100,000 Ids would pass SOQL's
//! length limit. Other records changed meanwhile come too and are passed over. The results
//! are read one page at a time ([`ResultPages`]), each page's rows parsed one at a time
//! ([`PageRows`]) as the caller writes them back, each cell of the push's records taken as
//! the column's text (the CSV's own rendering, which the mirror writer takes as a query
//! page's, `sfpg_control::writer::csv`); the caller writes each page into the mirror before
//! the next is read.

use std::time::Duration;

use std::io::Cursor;

use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use csv::StringRecord;
use futures::StreamExt;
use sfpg_control::plan::MirroredField;
use sfpg_salesforce::Error as SalesforceError;
use sfpg_salesforce::bulk::QueryOperation;

use crate::push::catalog::{ObjectHandle, OrgHandle};

/// From how many records of one object the read-back goes through a query job.
pub const BULK_READ_BACK_FROM: usize = 2_000;
/// Records per results page: one request each; a page's CSV is held while its rows are
/// parsed and written back, a statement of
/// [`crate::push::write_back::WRITE_BACK_ROWS`] at a time.
pub const PAGE_RECORDS: u32 = 10_000;
/// The longest wait between two polls of the query job.
const POLL_CAP: Duration = Duration::from_secs(1);
/// How much earlier than the first ingest job the query looks: `SystemModstamp` and the
/// job's `createdDate` come from different clocks of Salesforce, and SOQL compares whole
/// seconds.
const MARGIN: chrono::TimeDelta = chrono::TimeDelta::seconds(2);

/// Why a read-back by query failed: the caller then writes the records' Ids only.
#[derive(Debug, thiserror::Error)]
pub enum ReadBackError {
    #[error(transparent)]
    Salesforce(#[from] SalesforceError),
    #[error("a Bulk API query results page did not parse: {0}")]
    Csv(#[from] csv::Error),
}

/// The results of a read-back's query job, one page at a time: each page is parsed and
/// dropped before the next is asked for, so no more than one page's records are held.
pub struct ResultPages<'o> {
    org: &'o OrgHandle,
    job_id: String,
    /// The next page's locator; `None` before the first page.
    locator: Option<String>,
    done: bool,
}

impl<'o> ResultPages<'o> {
    /// Runs the query job of `object`'s records changed since `since` and waits for it.
    pub async fn query(
        org: &'o OrgHandle,
        object: &ObjectHandle,
        since: DateTime<Utc>,
    ) -> Result<Self, ReadBackError> {
        let soql = soql(object, since);
        let bulk = org.client.bulk();
        let job = bulk.create_query_job(&soql, QueryOperation::Query).await?;
        let job = bulk.wait_for_query_job(&job.id, POLL_CAP).await?;
        Ok(ResultPages {
            org,
            job_id: job.id,
            locator: None,
            done: false,
        })
    }

    /// The next page's rows, parsed one at a time as they are read; `None` after the last
    /// page, once the job is deleted. The page's CSV is held (about 500 bytes a record),
    /// its records are not: parsed whole, a page of 10,000 Contacts held 70 MB.
    pub async fn next(&mut self) -> Result<Option<PageRows>, ReadBackError> {
        if self.done {
            return Ok(None);
        }
        let bulk = self.org.client.bulk();
        let mut page = bulk
            .query_results(&self.job_id, self.locator.as_deref(), Some(PAGE_RECORDS))
            .await?;
        let next = page.next_locator.clone();
        let mut csv = BytesMut::new();
        while let Some(chunk) = page.next().await {
            csv.extend_from_slice(&chunk?);
        }
        match next {
            Some(next) => self.locator = Some(next),
            None => {
                self.done = true;
                if let Err(error) = bulk.delete_query_job(&self.job_id).await {
                    tracing::debug!(%error, job = %self.job_id, "cannot delete a read-back's query job");
                }
            }
        }
        Ok(Some(PageRows::new(csv.freeze())?))
    }
}

/// The rows of one results page, each with its `Id`, parsed as they are asked for.
pub struct PageRows {
    header: StringRecord,
    id_at: Option<usize>,
    rows: csv::StringRecordsIntoIter<Cursor<Bytes>>,
}

impl PageRows {
    fn new(csv: Bytes) -> Result<Self, csv::Error> {
        let mut reader = csv::ReaderBuilder::new().from_reader(Cursor::new(csv));
        let header = reader.headers()?.clone();
        let id_at = header.iter().position(|name| name == "Id");
        Ok(PageRows {
            header,
            id_at,
            rows: reader.into_records(),
        })
    }

    /// Where each of `fields` is among the page's columns (`None`: not there), by API name.
    pub fn positions(&self, fields: &[MirroredField]) -> Vec<Option<usize>> {
        fields
            .iter()
            .map(|field| self.header.iter().position(|name| name == field.field))
            .collect()
    }
}

impl Iterator for PageRows {
    /// The row's `Id` and the row; a page without an `Id` column has no rows.
    type Item = Result<(String, StringRecord), csv::Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let id_at = self.id_at?;
        let row = match self.rows.next()? {
            Ok(row) => row,
            Err(error) => return Some(Err(error)),
        };
        let id = row.get(id_at).unwrap_or_default().to_owned();
        Some(Ok((id, row)))
    }
}

/// The query: every mirrored field, `Id` first, of the records changed since `since`.
fn soql(object: &ObjectHandle, since: DateTime<Utc>) -> String {
    let mut fields = vec!["Id"];
    fields.extend(object.fields().into_iter().filter(|f| *f != "Id"));
    format!(
        "SELECT {} FROM {} WHERE SystemModstamp >= {}",
        fields.join(", "),
        object.object,
        (since - MARGIN).format("%Y-%m-%dT%H:%M:%SZ"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use sfpg_control::mapping::ColumnType;

    #[test]
    fn a_page_gives_each_row_with_its_id_and_where_each_field_is() {
        let csv = b"\"Id\",\"LastName\",\"NumberOfEmployees\",\"Title\"\n\
                    \"003A\",\"Smith, Jr.\",\"12\",\"\"\n\
                    \"003B\",\"Other\",\"1\",\"x\"\n";
        let mut rows = PageRows::new(Bytes::from_static(csv)).unwrap();
        let fields = [
            MirroredField::new("Title", ColumnType::Text),
            MirroredField::new("Email", ColumnType::Text),
            MirroredField::new("LastName", ColumnType::Text),
        ];
        let at = rows.positions(&fields);
        assert_eq!(at, [Some(3), None, Some(1)]);
        let (id, row) = rows.next().unwrap().unwrap();
        assert_eq!(id, "003A");
        let cells: Vec<Option<&str>> = at.iter().map(|at| at.and_then(|i| row.get(i))).collect();
        assert_eq!(cells, [Some(""), None, Some("Smith, Jr.")]);
        let (id, _) = rows.next().unwrap().unwrap();
        assert_eq!(id, "003B");
        assert!(rows.next().is_none());
    }

    #[test]
    fn a_page_without_an_id_column_has_no_rows() {
        let mut rows = PageRows::new(Bytes::from_static(b"\"Name\"\n\"x\"\n")).unwrap();
        assert!(rows.next().is_none());
    }
}
