//! What `sfpg status` shows: every org and object as the control schema has them, read by
//! any process (the sync saves its progress with every step).

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::GenericClient;

use crate::error::ControlError;

/// An org's sync, as saved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrgStatus {
    pub name: String,
    pub schema: String,
    pub enabled: bool,
    /// Why background polling is paused (the daily budget), if it is.
    pub paused_reason: Option<String>,
    /// `Sforce-Limit-Info` as last seen: calls used of the daily allocation.
    pub api_used: Option<i32>,
    pub api_max: Option<i32>,
    pub api_seen_at: Option<DateTime<Utc>>,
    /// The rate background sync may call the org at: `rate_requests` per `rate_period_ms`.
    pub rate_requests: i32,
    pub rate_period_ms: i64,
    /// The share of the daily allocation (0–1] background sync may use.
    pub max_daily_share: f64,
    /// The sync process holding the org (`host:pid`), if one does. A process that died
    /// without cleaning up (`kill -9`) leaves its name in `sfpg.orgs`, but its lock went with
    /// its connection: only an owner whose lock is held is shown.
    pub lease_owner: Option<String>,
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
    /// Its Change Data Capture stream.
    pub stream: Option<crate::streams::StreamStatus>,
    /// Its platform event streams, one per event object subscribed (V15).
    pub event_streams: Vec<crate::events::EventCheckpoint>,
    pub objects: Vec<ObjectStatus>,
}

/// An object's sync, as saved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObjectStatus {
    pub object: String,
    pub table: String,
    pub enabled: bool,
    /// `describing`, `backfilling` or `live`.
    pub phase: String,
    pub backfill_done: i64,
    pub backfill_total: Option<i64>,
    pub paused_reason: Option<String>,
    pub rows: i64,
    /// Where the next page of changes starts.
    pub cursor: Option<DateTime<Utc>>,
    /// The newest `SystemModstamp` seen.
    pub newest_modstamp: Option<DateTime<Utc>>,
    /// Now minus the newest `SystemModstamp` seen, in seconds.
    pub lag_seconds: Option<f64>,
    /// API requests spent on the object.
    pub requests: i64,
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
    /// Fields that left describe: their columns stay, unwritten.
    pub removed_fields: Vec<String>,
    /// Fields added later, still being filled in.
    pub pending_fields: Vec<String>,
    /// A Bulk API 2.0 query job the object is being read through: what for (`backfill`,
    /// `changes`), its Id once created, and its `numberRecordsProcessed` as last seen.
    pub bulk_purpose: Option<String>,
    pub bulk_job_id: Option<String>,
    pub bulk_processed: Option<i64>,
    /// Where its changes come from: `stream` (Change Data Capture) or `poll`.
    pub source: String,
}

impl ObjectStatus {
    /// The phase as people read it: `describing`, `backfilling 400/1000`, `live`, `paused`,
    /// `disabled`.
    pub fn phase_label(&self) -> String {
        if !self.enabled {
            return "disabled".to_owned();
        }
        if self.paused_reason.is_some() {
            return "paused".to_owned();
        }
        let label = match (self.phase.as_str(), self.backfill_total) {
            ("backfilling", Some(total)) => format!("backfilling {}/{}", self.backfill_done, total),
            ("backfilling", None) => "backfilling (counting)".to_owned(),
            ("live", _) if self.bulk_purpose.is_some() => "live, catching up".to_owned(),
            ("live", _) if !self.pending_fields.is_empty() => {
                format!("live (filling {})", self.pending_fields.join(", "))
            }
            (phase, _) => phase.to_owned(),
        };
        match self.bulk_note() {
            Some(note) => format!("{label} {note}"),
            None => label,
        }
    }

    /// `via Bulk (job 750…, 120000 processed)` while a query job reads the object, `via
    /// Bulk (starting a job)` before it exists.
    pub fn bulk_note(&self) -> Option<String> {
        self.bulk_purpose.as_ref()?;
        Some(match (&self.bulk_job_id, self.bulk_processed) {
            (None, _) => "via Bulk (starting a job)".to_owned(),
            (Some(job), None) => format!("via Bulk (job {job})"),
            (Some(job), Some(processed)) => {
                format!("via Bulk (job {job}, {processed} processed)")
            }
        })
    }
}

/// Every org and its objects, by name.
pub async fn load(client: &impl GenericClient) -> Result<Vec<OrgStatus>, ControlError> {
    let orgs = client
        .query(
            "SELECT name, schema_name, enabled, paused_reason, api_used, api_max, api_seen_at,
                    CASE WHEN EXISTS (
                        SELECT 1 FROM sfpg.leases l
                         WHERE l.org_name = o.name AND l.owner = o.lease_owner
                           AND l.expires_at > now()
                    ) THEN lease_owner END,
                    last_error, last_error_at, rate_requests, rate_period_ms, max_daily_share
               FROM sfpg.orgs o ORDER BY name",
            &[],
        )
        .await?;
    let objects = client
        .query(
            "SELECT org_name, object_name, table_name, enabled, phase, backfill_done, backfill_total,
                    paused_reason, row_count, cursor_modstamp, newest_modstamp,
                    extract(epoch FROM now() - newest_modstamp)::float8, requests, last_error,
                    last_error_at, removed_fields, pending_field_backfill, bulk_purpose,
                    bulk_job_id, bulk_processed, source
               FROM sfpg.objects ORDER BY org_name, object_name",
            &[],
        )
        .await?;
    let mut streams = crate::streams::load_status(client).await?;
    let mut statuses = Vec::with_capacity(orgs.len());
    for org in &orgs {
        let name: String = org.try_get(0)?;
        let mut mine = Vec::new();
        for row in objects.iter().filter(|r| r.get::<_, &str>(0) == name) {
            mine.push(ObjectStatus {
                object: row.try_get(1)?,
                table: row.try_get(2)?,
                enabled: row.try_get(3)?,
                phase: row.try_get(4)?,
                backfill_done: row.try_get(5)?,
                backfill_total: row.try_get(6)?,
                paused_reason: row.try_get(7)?,
                rows: row.try_get(8)?,
                cursor: row.try_get(9)?,
                newest_modstamp: row.try_get(10)?,
                lag_seconds: row.try_get(11)?,
                requests: row.try_get(12)?,
                last_error: row.try_get(13)?,
                last_error_at: row.try_get(14)?,
                removed_fields: row.try_get(15)?,
                pending_fields: row.try_get(16)?,
                bulk_purpose: row.try_get(17)?,
                bulk_job_id: row.try_get(18)?,
                bulk_processed: row.try_get(19)?,
                source: row.try_get(20)?,
            });
        }
        let event_streams = crate::events::EventCheckpoint::load_all(client, &name).await?;
        let statuses_name = name.clone();
        statuses.push(OrgStatus {
            name,
            schema: org.try_get(1)?,
            enabled: org.try_get(2)?,
            paused_reason: org.try_get(3)?,
            api_used: org.try_get(4)?,
            api_max: org.try_get(5)?,
            api_seen_at: org.try_get(6)?,
            rate_requests: org.try_get(10)?,
            rate_period_ms: org.try_get(11)?,
            max_daily_share: f64::from(org.try_get::<_, f32>(12)?),
            lease_owner: org.try_get(7)?,
            last_error: org.try_get(8)?,
            last_error_at: org.try_get(9)?,
            stream: streams
                .iter()
                .position(|(org, _)| *org == statuses_name)
                .map(|i| streams.swap_remove(i).1),
            event_streams,
            objects: mine,
        });
    }
    Ok(statuses)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(phase: &str) -> ObjectStatus {
        ObjectStatus {
            object: "Account".into(),
            table: "account".into(),
            enabled: true,
            phase: phase.into(),
            backfill_done: 400,
            backfill_total: Some(1000),
            paused_reason: None,
            rows: 400,
            cursor: None,
            newest_modstamp: None,
            lag_seconds: None,
            requests: 3,
            last_error: None,
            last_error_at: None,
            removed_fields: vec![],
            pending_fields: vec![],
            bulk_purpose: None,
            bulk_job_id: None,
            bulk_processed: None,
            source: "poll".into(),
        }
    }

    #[test]
    fn phases_read_as_people_say_them() {
        assert_eq!(object("backfilling").phase_label(), "backfilling 400/1000");
        assert_eq!(object("live").phase_label(), "live");
        assert_eq!(object("describing").phase_label(), "describing");
        let mut filling = object("live");
        filling.pending_fields = vec!["Due__c".into()];
        assert_eq!(filling.phase_label(), "live (filling Due__c)");
        let mut paused = object("live");
        paused.paused_reason = Some("type change".into());
        assert_eq!(paused.phase_label(), "paused");
        let mut counting = object("backfilling");
        counting.backfill_total = None;
        assert_eq!(counting.phase_label(), "backfilling (counting)");
        let mut bulk = object("backfilling");
        bulk.bulk_purpose = Some("backfill".into());
        assert_eq!(
            bulk.phase_label(),
            "backfilling 400/1000 via Bulk (starting a job)"
        );
        bulk.bulk_job_id = Some("750000000000001AAA".into());
        bulk.bulk_processed = Some(1000);
        assert_eq!(
            bulk.phase_label(),
            "backfilling 400/1000 via Bulk (job 750000000000001AAA, 1000 processed)"
        );
        let mut catching_up = object("live");
        catching_up.bulk_purpose = Some("changes".into());
        catching_up.bulk_job_id = Some("750000000000002AAA".into());
        assert_eq!(
            catching_up.phase_label(),
            "live, catching up via Bulk (job 750000000000002AAA)"
        );
    }
}
