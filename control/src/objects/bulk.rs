//! The Bulk API 2.0 query job an object is being read through ([`BulkRead`]), as saved in
//! `sfpg.objects` (V12) with every page of its results, so that a crash resumes at the next
//! page of the same job.

use chrono::{DateTime, Utc};
use tokio_postgres::Row;

use crate::error::ControlError;

/// What a query job reads for the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkPurpose {
    /// Every record: the backfill of an object at or above the org's bulk threshold.
    Backfill,
    /// The records changed since the incremental cursor, soft deletes included
    /// (`queryAll`): a backlog larger than the threshold.
    Changes,
}

impl BulkPurpose {
    /// The value in `sfpg.objects.bulk_purpose`.
    pub fn as_str(self) -> &'static str {
        match self {
            BulkPurpose::Backfill => "backfill",
            BulkPurpose::Changes => "changes",
        }
    }

    fn parse(text: &str) -> Result<Self, ControlError> {
        match text {
            "backfill" => Ok(BulkPurpose::Backfill),
            "changes" => Ok(BulkPurpose::Changes),
            other => Err(ControlError::Corrupt(format!(
                "unknown bulk purpose {other:?} in sfpg.objects"
            ))),
        }
    }
}

/// A read of the object through one query job, from its decision to its last page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkRead {
    pub purpose: BulkPurpose,
    /// The job's Id (`750…`); `None` until it has been created.
    pub job_id: Option<String>,
    /// The `Sforce-Locator` of the next page to read; `None` for the first page.
    pub locator: Option<String>,
    /// When the job was asked for (taken before the request): a catch-up's cursor moves
    /// here, less the overlap, once its last page is in.
    pub snapshot: DateTime<Utc>,
    /// The job's `numberRecordsProcessed` as last seen.
    pub processed: Option<i64>,
    /// The records of its result pages written so far: `numberRecordsProcessed` once the
    /// last page is in.
    pub read: i64,
    /// Whether its pages may meet rows already mirrored, and so go through the merge
    /// under the version guard rather than a plain `COPY`.
    pub merge: bool,
}

impl BulkRead {
    /// A read about to create its job.
    pub fn new(purpose: BulkPurpose, snapshot: DateTime<Utc>, merge: bool) -> Self {
        Self {
            purpose,
            job_id: None,
            locator: None,
            snapshot,
            processed: None,
            read: 0,
            merge,
        }
    }

    /// Reads the V12 columns from `row`, starting at column `at` (purpose, job id, locator,
    /// snapshot, processed, read, merge): `None` when no purpose is set.
    pub(super) fn from_row(row: &Row, at: usize) -> Result<Option<Self>, ControlError> {
        let Some(purpose) = row.try_get::<_, Option<&str>>(at)? else {
            return Ok(None);
        };
        let snapshot: Option<DateTime<Utc>> = row.try_get(at + 3)?;
        let snapshot = snapshot.ok_or_else(|| {
            ControlError::Corrupt("a bulk read in sfpg.objects without its snapshot".to_owned())
        })?;
        Ok(Some(Self {
            purpose: BulkPurpose::parse(purpose)?,
            job_id: row.try_get(at + 1)?,
            locator: row.try_get(at + 2)?,
            snapshot,
            processed: row.try_get(at + 4)?,
            read: row.try_get(at + 5)?,
            merge: row.try_get(at + 6)?,
        }))
    }
}

/// The columns [`BulkRead::from_row`] reads, in its order.
pub(super) const BULK_COLUMNS: &str =
    "bulk_purpose, bulk_job_id, bulk_locator, bulk_snapshot, bulk_processed, bulk_read, bulk_merge";

/// The values of [`BULK_COLUMNS`] for `read` (all NULL, and no merge, for none).
pub(super) struct BulkValues<'a> {
    pub purpose: Option<&'static str>,
    pub job_id: Option<&'a str>,
    pub locator: Option<&'a str>,
    pub snapshot: Option<DateTime<Utc>>,
    pub processed: Option<i64>,
    pub read: i64,
    pub merge: bool,
}

impl<'a> BulkValues<'a> {
    pub(super) fn of(read: Option<&'a BulkRead>) -> Self {
        Self {
            purpose: read.map(|r| r.purpose.as_str()),
            job_id: read.and_then(|r| r.job_id.as_deref()),
            locator: read.and_then(|r| r.locator.as_deref()),
            snapshot: read.map(|r| r.snapshot),
            processed: read.and_then(|r| r.processed),
            read: read.map_or(0, |r| r.read),
            merge: read.is_some_and(|r| r.merge),
        }
    }
}
