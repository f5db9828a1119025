//! The sync's rows in the control schema: an org's settings (`sfpg.orgs`) and each object's
//! progress (`sfpg.objects`). Every step saves its object's row in the same transaction as
//! the mirror rows it wrote, so a crash never separates the two.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sfpg_salesforce::{ApiUsage, Rate};
use tokio_postgres::GenericClient;
use tokio_postgres::Row;

use crate::error::{Result, SyncError};

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

    fn parse(text: &str) -> Result<Self> {
        match text {
            "describing" => Ok(Phase::Describing),
            "backfilling" => Ok(Phase::Backfilling),
            "live" => Ok(Phase::Live),
            other => Err(SyncError::Control(format!(
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
    /// The plan, as [`crate::ObjectPlan::to_stored`] writes it.
    pub mirrored_fields: serde_json::Value,
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
    /// The newest `SystemModstamp` seen: lag is measured from it.
    pub newest_modstamp: Option<DateTime<Utc>>,
    /// Deletes up to here have been read from `deleted/`.
    pub deleted_watermark: Option<DateTime<Utc>>,
    pub reconciled_at: Option<DateTime<Utc>>,
    pub formulas_refreshed_at: Option<DateTime<Utc>>,
    pub row_count: i64,
    /// API requests spent on this object.
    pub requests: i64,
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
    /// Bumped by `sfpg objects resync`: progress is saved only over the generation it
    /// started from.
    pub generation: i64,
    /// Records a page could not write because a client held their rows locked: the
    /// checkpoint moved past them, so they are read again by Id once the rows are free.
    pub locked_ids: Vec<String>,
}

const OBJECT_COLUMNS: &str = "org_name, object_name, table_name, enabled, phase, paused_reason, \
    describe_modified_at, mirrored_fields, removed_fields, pending_field_backfill, backfill_snapshot, \
    backfill_last_id, backfill_done, backfill_total, cursor_modstamp, cursor_id, newest_modstamp, \
    deleted_watermark, reconciled_at, formulas_refreshed_at, row_count, requests, last_error, last_error_at, generation, \
    locked_ids";

impl ObjectState {
    fn from_row(row: &Row) -> Result<Self> {
        Ok(Self {
            org: row.try_get(0)?,
            object: row.try_get(1)?,
            table: row.try_get(2)?,
            enabled: row.try_get(3)?,
            phase: Phase::parse(row.try_get(4)?)?,
            paused_reason: row.try_get(5)?,
            describe_modified_at: row.try_get(6)?,
            mirrored_fields: row.try_get(7)?,
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
        })
    }

    /// The org's objects, enabled or not, by name.
    pub async fn load_all(client: &impl GenericClient, org: &str) -> Result<Vec<Self>> {
        let sql = format!(
            "SELECT {OBJECT_COLUMNS} FROM sfpg.objects WHERE org_name = $1 ORDER BY object_name"
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
    ) -> Result<Option<Self>> {
        let sql = format!(
            "SELECT {OBJECT_COLUMNS} FROM sfpg.objects WHERE org_name = $1 AND object_name = $2"
        );
        client
            .query_opt(&sql, &[&org, &object])
            .await?
            .as_ref()
            .map(Self::from_row)
            .transpose()
    }

    /// Saves everything the sync owns (not `enabled`, which belongs to the operator).
    async fn exists(client: &impl GenericClient, org: &str, object: &str) -> Result<bool> {
        let row = client
            .query_opt(
                "SELECT 1 FROM sfpg.objects WHERE org_name = $1 AND object_name = $2",
                &[&org, &object],
            )
            .await?;
        Ok(row.is_some())
    }

    pub async fn save(&self, client: &impl GenericClient) -> Result<()> {
        let updated = client
            .execute(
                "UPDATE sfpg.objects SET phase = $3, paused_reason = $4, describe_modified_at = $5,
                        mirrored_fields = $6, removed_fields = $7, pending_field_backfill = $8,
                        backfill_snapshot = $9, backfill_last_id = $10, backfill_done = $11,
                        backfill_total = $12, cursor_modstamp = $13, cursor_id = $14,
                        newest_modstamp = $15, deleted_watermark = $16, reconciled_at = $17,
                        formulas_refreshed_at = $18, row_count = $19, requests = $20,
                        last_error = $21, last_error_at = $22, locked_ids = $24, updated_at = now()
                  WHERE org_name = $1 AND object_name = $2 AND generation = $23",
                &[
                    &self.org,
                    &self.object,
                    &self.phase.as_str(),
                    &self.paused_reason,
                    &self.describe_modified_at,
                    &self.mirrored_fields,
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
            return Err(SyncError::Control(format!(
                "sfpg.objects has no row for {}.{} any more",
                self.org, self.object
            )));
        }
        Ok(())
    }
}

/// What the sync reads of an `sfpg.orgs` row.
#[derive(Debug, Clone, PartialEq)]
pub struct OrgSettings {
    pub name: String,
    /// The Postgres schema the org's tables live in.
    pub schema: String,
    pub enabled: bool,
    /// Records per page (200–2,000).
    pub batch_size: u32,
    pub rate: Rate,
    /// The share of the daily API allocation background polling may use (0–1].
    pub max_daily_share: f64,
    pub paused_reason: Option<String>,
}

impl OrgSettings {
    /// The org's row, or `None` when there is none.
    pub async fn load(client: &impl GenericClient, org: &str) -> Result<Option<Self>> {
        let Some(row) = client
            .query_opt(
                "SELECT name, schema_name, enabled, batch_size, rate_requests, rate_period_ms,
                        max_daily_share, paused_reason
                   FROM sfpg.orgs WHERE name = $1",
                &[&org],
            )
            .await?
        else {
            return Ok(None);
        };
        let batch_size: i32 = row.try_get(3)?;
        let requests: i32 = row.try_get(4)?;
        let period_ms: i64 = row.try_get(5)?;
        let share: f32 = row.try_get(6)?;
        let invalid = |what: &str| SyncError::Control(format!("sfpg.orgs {org}: invalid {what}"));
        let rate = Rate::new(
            u32::try_from(requests).map_err(|_| invalid("rate_requests"))?,
            Duration::from_millis(u64::try_from(period_ms).map_err(|_| invalid("rate_period_ms"))?),
        )
        .map_err(|_| invalid("rate"))?;
        Ok(Some(Self {
            name: row.try_get(0)?,
            schema: row.try_get(1)?,
            enabled: row.try_get(2)?,
            batch_size: u32::try_from(batch_size).map_err(|_| invalid("batch_size"))?,
            rate,
            max_daily_share: f64::from(share),
            paused_reason: row.try_get(7)?,
        }))
    }

    /// The names of the enabled orgs.
    pub async fn enabled_names(client: &impl GenericClient) -> Result<Vec<String>> {
        let rows = client
            .query(
                "SELECT name FROM sfpg.orgs WHERE enabled ORDER BY name",
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| r.try_get(0).map_err(SyncError::from))
            .collect()
    }

    /// Records (or clears) why the org's background polling is paused.
    pub async fn set_paused(
        client: &impl GenericClient,
        org: &str,
        reason: Option<&str>,
    ) -> Result<()> {
        client
            .execute(
                "UPDATE sfpg.orgs SET paused_reason = $2, updated_at = now() WHERE name = $1",
                &[&org, &reason],
            )
            .await?;
        Ok(())
    }

    /// Records the API usage Salesforce last reported.
    pub async fn record_usage(
        client: &impl GenericClient,
        org: &str,
        usage: &ApiUsage,
    ) -> Result<()> {
        let used = i32::try_from(usage.api.used).unwrap_or(i32::MAX);
        let max = i32::try_from(usage.api.max).unwrap_or(i32::MAX);
        client
            .execute(
                "UPDATE sfpg.orgs SET api_used = $2, api_max = $3, api_seen_at = now() WHERE name = $1",
                &[&org, &used, &max],
            )
            .await?;
        Ok(())
    }

    /// Records an org-wide failure (credentials refused), or clears it.
    pub async fn record_error(
        client: &impl GenericClient,
        org: &str,
        error: Option<&str>,
    ) -> Result<()> {
        client
            .execute(
                "UPDATE sfpg.orgs SET last_error = $2,
                        last_error_at = CASE WHEN $2::text IS NULL THEN last_error_at ELSE now() END
                  WHERE name = $1",
                &[&org, &error],
            )
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use sfpg_control::{MasterKey, NewOrg, admin, orgs};
    use sfpg_testkit::TestDatabase;

    use super::*;

    #[tokio::test]
    async fn progress_of_a_turn_in_flight_does_not_undo_a_resync() {
        let db = TestDatabase::create().await;
        let mut client = db.connect().await;
        sfpg_control::apply_control_schema(&mut client)
            .await
            .unwrap();
        let org = NewOrg::client_credentials(
            "acme",
            "https://login.salesforce.com",
            "id",
            "secret",
            &["Account"],
        );
        orgs::insert(&mut client, &org, &MasterKey::from_bytes([7; 32]))
            .await
            .unwrap();
        // A scheduler has the object mid-backfill in memory ...
        let mut in_flight = ObjectState::load(&client, "acme", "Account")
            .await
            .unwrap()
            .unwrap();
        in_flight.phase = Phase::Backfilling;
        in_flight.backfill_done = 400;
        in_flight.save(&client).await.unwrap();
        // ... when the operator starts it over, before the turn saves its progress.
        admin::resync_object(&client, "acme", "Account")
            .await
            .unwrap();
        in_flight.backfill_done = 600;
        in_flight.save(&client).await.unwrap();

        let stored = ObjectState::load(&client, "acme", "Account")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.phase, Phase::Describing);
        assert_eq!(stored.backfill_done, 0);
        assert_eq!(stored.generation, in_flight.generation + 1);
        // From the fresh row on, saves go through again.
        let mut fresh = stored;
        fresh.backfill_done = 200;
        fresh.save(&client).await.unwrap();
        let stored = ObjectState::load(&client, "acme", "Account")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.backfill_done, 200);
    }
}
