//! Each mirrored object's row in `sfpg.objects`: its sync progress ([`ObjectState`]), which
//! the sync saves in the same transaction as the mirror rows it wrote, so a crash never
//! separates the two; and what `sfpg org show` lists of an org's objects.

use std::fmt;

use chrono::{DateTime, Utc};
use tokio_postgres::types::Json;
use tokio_postgres::{GenericClient, Row};

use crate::error::ControlError;
use crate::plan::{MirroredField, parse_mirrored_fields};

mod bulk;

use bulk::{BULK_COLUMNS, BulkValues};
pub use bulk::{BulkPurpose, BulkRead};

/// Where an object's sync stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Not described yet: no table, no plan.
    Describing,
    /// Its records are being copied, page by page.
    Backfilling,
    /// Copied; following changes.
    Live,
}

impl Phase {
    /// The value in `sfpg.objects.phase`.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Describing => "describing",
            Phase::Backfilling => "backfilling",
            Phase::Live => "live",
        }
    }

    fn parse(text: &str) -> Result<Self, ControlError> {
        match text {
            "describing" => Ok(Phase::Describing),
            "backfilling" => Ok(Phase::Backfilling),
            "live" => Ok(Phase::Live),
            other => Err(ControlError::Corrupt(format!(
                "unknown phase {other:?} in sfpg.objects"
            ))),
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of `sfpg.objects`: an object's sync progress.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectState {
    pub org: String,
    pub object: String,
    pub table: String,
    pub enabled: bool,
    pub phase: Phase,
    /// Why the object is not being synced, until someone acts (or a describe shows the
    /// cause gone).
    pub paused_reason: Option<String>,
    /// When describe last answered with the object's metadata: the next `If-Modified-Since`.
    pub describe_modified_at: Option<DateTime<Utc>>,
    /// The fields mirrored, `Id` and `SystemModstamp` first once described (see
    /// [`crate::plan::ObjectPlan::from_stored`]); empty before.
    pub mirrored_fields: Vec<MirroredField>,
    /// Fields that left describe; their columns stay, unwritten.
    pub removed_fields: Vec<String>,
    /// Fields added after the backfill, still to be filled in.
    pub pending_field_backfill: Vec<String>,
    /// When the backfill started: where the incremental cursor starts.
    pub backfill_snapshot: Option<DateTime<Utc>>,
    /// The backfill's checkpoint: the last Id written. Once live, the checkpoint of the
    /// backfill of pending fields.
    pub backfill_last_id: Option<String>,
    pub backfill_done: i64,
    pub backfill_total: Option<i64>,
    /// The incremental cursor: the next page starts after `(cursor_modstamp, cursor_id)`,
    /// or at `cursor_modstamp` when `cursor_id` is NULL.
    pub cursor_modstamp: Option<DateTime<Utc>>,
    pub cursor_id: Option<String>,
    /// The newest `SystemModstamp` seen.
    pub newest_modstamp: Option<DateTime<Utc>>,
    /// Deletes up to here have been read from `deleted/`.
    pub deleted_watermark: Option<DateTime<Utc>>,
    pub reconciled_at: Option<DateTime<Utc>>,
    pub formulas_refreshed_at: Option<DateTime<Utc>>,
    pub row_count: i64,
    /// API requests spent on this object.
    pub requests: i64,
    pub last_error: Option<String>,
    /// Salesforce's `errorCode` of the last error, when it had one (V18).
    pub last_error_code: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
    /// When the last poll of the changes that came back caught up was started (V18): the
    /// mirror holds every change committed before it. Saved with the poll's checkpoint.
    pub caught_up_at: Option<DateTime<Utc>>,
    /// Bumped by `sfpg objects resync`: progress is saved only over the generation it
    /// started from.
    pub generation: i64,
    /// Records a page could not write because a client held their rows locked: the
    /// checkpoint moved past them, so they are read again by Id once the rows are free.
    pub locked_ids: Vec<String>,
    /// The Bulk API 2.0 query job the object is being read through, if it is.
    pub bulk: Option<BulkRead>,
}

const OBJECT_COLUMNS: &str = "org_name, object_name, table_name, enabled, phase, paused_reason, \
    describe_modified_at, mirrored_fields, removed_fields, pending_field_backfill, backfill_snapshot, \
    backfill_last_id, backfill_done, backfill_total, cursor_modstamp, cursor_id, newest_modstamp, \
    deleted_watermark, reconciled_at, formulas_refreshed_at, row_count, requests, last_error, last_error_at, generation, \
    locked_ids, last_error_code, caught_up_at";

impl ObjectState {
    fn from_row(row: &Row) -> Result<Self, ControlError> {
        let object: String = row.try_get(1)?;
        Ok(Self {
            org: row.try_get(0)?,
            mirrored_fields: parse_mirrored_fields(&object, row.try_get(7)?)?,
            object,
            table: row.try_get(2)?,
            enabled: row.try_get(3)?,
            phase: Phase::parse(row.try_get(4)?)?,
            paused_reason: row.try_get(5)?,
            describe_modified_at: row.try_get(6)?,
            removed_fields: row.try_get(8)?,
            pending_field_backfill: row.try_get(9)?,
            backfill_snapshot: row.try_get(10)?,
            backfill_last_id: row.try_get(11)?,
            backfill_done: row.try_get(12)?,
            backfill_total: row.try_get(13)?,
            cursor_modstamp: row.try_get(14)?,
            cursor_id: row.try_get(15)?,
            newest_modstamp: row.try_get(16)?,
            deleted_watermark: row.try_get(17)?,
            reconciled_at: row.try_get(18)?,
            formulas_refreshed_at: row.try_get(19)?,
            row_count: row.try_get(20)?,
            requests: row.try_get(21)?,
            last_error: row.try_get(22)?,
            last_error_at: row.try_get(23)?,
            generation: row.try_get(24)?,
            locked_ids: row.try_get(25)?,
            last_error_code: row.try_get(26)?,
            caught_up_at: row.try_get(27)?,
            bulk: BulkRead::from_row(row, 28)?,
        })
    }

    /// The org's objects, enabled or not, by name.
    pub async fn load_all(
        client: &impl GenericClient,
        org: &str,
    ) -> Result<Vec<Self>, ControlError> {
        let sql = format!(
            "SELECT {OBJECT_COLUMNS}, {BULK_COLUMNS} FROM sfpg.objects WHERE org_name = $1 ORDER BY object_name"
        );
        client
            .query(&sql, &[&org])
            .await?
            .iter()
            .map(Self::from_row)
            .collect()
    }

    /// One object's row.
    pub async fn load(
        client: &impl GenericClient,
        org: &str,
        object: &str,
    ) -> Result<Option<Self>, ControlError> {
        let sql = format!(
            "SELECT {OBJECT_COLUMNS}, {BULK_COLUMNS} FROM sfpg.objects WHERE org_name = $1 AND object_name = $2"
        );
        client
            .query_opt(&sql, &[&org, &object])
            .await?
            .as_ref()
            .map(Self::from_row)
            .transpose()
    }

    async fn exists(
        client: &impl GenericClient,
        org: &str,
        object: &str,
    ) -> Result<bool, ControlError> {
        let row = client
            .query_opt(
                "SELECT 1 FROM sfpg.objects WHERE org_name = $1 AND object_name = $2",
                &[&org, &object],
            )
            .await?;
        Ok(row.is_some())
    }

    /// Saves everything the sync owns (not `enabled`, which belongs to the operator), over
    /// the generation it was loaded from only: a row started over meanwhile (`sfpg objects
    /// resync`) keeps its fresh start.
    pub async fn save(&self, client: &impl GenericClient) -> Result<(), ControlError> {
        let bulk = BulkValues::of(self.bulk.as_ref());
        let updated = client
            .execute(
                "UPDATE sfpg.objects SET phase = $3, paused_reason = $4, describe_modified_at = $5,
                        mirrored_fields = $6, removed_fields = $7, pending_field_backfill = $8,
                        backfill_snapshot = $9, backfill_last_id = $10, backfill_done = $11,
                        backfill_total = $12, cursor_modstamp = $13, cursor_id = $14,
                        newest_modstamp = $15, deleted_watermark = $16, reconciled_at = $17,
                        formulas_refreshed_at = $18, row_count = $19, requests = $20,
                        last_error = $21, last_error_at = $22, locked_ids = $24,
                        bulk_purpose = $25, bulk_job_id = $26, bulk_locator = $27,
                        bulk_snapshot = $28, bulk_processed = $29, bulk_read = $30,
                        bulk_merge = $31, last_error_code = $32, caught_up_at = $33,
                        updated_at = now()
                  WHERE org_name = $1 AND object_name = $2 AND generation = $23",
                &[
                    &self.org,
                    &self.object,
                    &self.phase.as_str(),
                    &self.paused_reason,
                    &self.describe_modified_at,
                    &Json(&self.mirrored_fields),
                    &self.removed_fields,
                    &self.pending_field_backfill,
                    &self.backfill_snapshot,
                    &self.backfill_last_id,
                    &self.backfill_done,
                    &self.backfill_total,
                    &self.cursor_modstamp,
                    &self.cursor_id,
                    &self.newest_modstamp,
                    &self.deleted_watermark,
                    &self.reconciled_at,
                    &self.formulas_refreshed_at,
                    &self.row_count,
                    &self.requests,
                    &self.last_error,
                    &self.last_error_at,
                    &self.generation,
                    &self.locked_ids,
                    &bulk.purpose,
                    &bulk.job_id,
                    &bulk.locator,
                    &bulk.snapshot,
                    &bulk.processed,
                    &bulk.read,
                    &bulk.merge,
                    &self.last_error_code,
                    &self.caught_up_at,
                ],
            )
            .await?;
        if updated == 0 && Self::exists(client, &self.org, &self.object).await? {
            // Started over meanwhile (`sfpg objects resync`): the fresh start stands. Its
            // notification makes the scheduler load it before the next turn.
            tracing::info!(org = %self.org, object = %self.object, "started over while a turn was in flight; its progress is dropped");
            return Ok(());
        }
        if updated == 0 {
            return Err(ControlError::UnknownObject {
                org: self.org.clone(),
                object: self.object.clone(),
            });
        }
        Ok(())
    }
}

/// An object as `sfpg org show` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectSummary {
    pub object: String,
    pub table: String,
    pub enabled: bool,
    pub phase: Phase,
}

/// The org's objects, enabled or not, by name.
pub async fn summaries(
    client: &impl GenericClient,
    org: &str,
) -> Result<Vec<ObjectSummary>, ControlError> {
    let rows = client
        .query(
            "SELECT object_name, table_name, enabled, phase FROM sfpg.objects
              WHERE org_name = $1 ORDER BY object_name",
            &[&org],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(ObjectSummary {
                object: row.try_get(0)?,
                table: row.try_get(1)?,
                enabled: row.try_get(2)?,
                phase: Phase::parse(row.try_get(3)?)?,
            })
        })
        .collect()
}

/// The object mirrored in `table` of `org`: its API name and stored fields, or `None` when
/// the table mirrors no object of the org.
pub async fn mirrored_in(
    client: &impl GenericClient,
    org: &str,
    table: &str,
) -> Result<Option<(String, Vec<MirroredField>)>, ControlError> {
    let Some(row) = client
        .query_opt(
            "SELECT object_name, mirrored_fields FROM sfpg.objects
              WHERE org_name = $1 AND table_name = $2",
            &[&org, &table],
        )
        .await?
    else {
        return Ok(None);
    };
    let object: String = row.try_get(0)?;
    let fields = parse_mirrored_fields(&object, row.try_get(1)?)?;
    Ok(Some((object, fields)))
}

#[cfg(test)]
mod tests;
