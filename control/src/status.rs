//! What `sfpg status` and the status page show: every org and object as the control schema
//! has them, read by any process (the sync saves its progress with every step). The facts
//! it derives (the org's state and worker, each object's freshness lag) come from the view
//! `sfpg.status` (V18), which SQL dashboards read too, so the three never disagree.

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
    /// `disabled`, `auth_error`, `budget_exhausted`, `backfilling`, `streaming` or
    /// `polling` (the view's `org_state`).
    pub state: String,
    /// The largest freshness lag of its enabled objects, in seconds.
    pub lag_seconds: Option<f64>,
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
    /// The sync worker holding the org (`host:pid`), if one does: the view's `worker`, the
    /// owner of its lease (V17) while unexpired (a worker killed with -9 holds it until then).
    pub lease_owner: Option<String>,
    pub last_error: Option<String>,
    /// Salesforce's code for it (`invalid_grant`, `REQUEST_LIMIT_EXCEEDED`).
    pub last_error_code: Option<String>,
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
    /// The rows the object's table holds, as PostgreSQL's statistics count them (every
    /// writer's: the sync's, the stream's, the proxy's clients'), a few seconds behind; the
    /// sync's own count of what it wrote until the statistics have seen the table.
    pub rows: i64,
    /// Where the next page of changes starts.
    pub cursor: Option<DateTime<Utc>>,
    /// The newest `SystemModstamp` seen (when a record last changed, not how fresh the
    /// mirror is).
    pub newest_modstamp: Option<DateTime<Utc>>,
    /// What the mirror holds is complete as of then: the start of the last poll that came
    /// back caught up, or while the stream keeps the object current, its last event
    /// applied (`commitTimestamp`) or keepalive, whichever is later.
    pub fresh_as_of: Option<DateTime<Utc>>,
    /// Now minus `fresh_as_of`, in seconds: how far behind Salesforce the mirror may be.
    /// `None` before the object's first poll caught up.
    pub lag_seconds: Option<f64>,
    /// API requests spent on the object.
    pub requests: i64,
    pub last_error: Option<String>,
    /// Salesforce's `errorCode` of the last error.
    pub last_error_code: Option<String>,
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
            "SELECT o.name, o.schema_name, o.enabled, o.paused_reason, o.api_used, o.api_max,
                    o.api_seen_at, v.worker, o.last_error, o.last_error_at, o.rate_requests,
                    o.rate_period_ms, o.max_daily_share, o.last_error_code, v.org_state,
                    v.org_lag_seconds
               FROM sfpg.orgs o
               JOIN (SELECT DISTINCT org_name, org_state, worker, org_lag_seconds
                       FROM sfpg.status) v ON v.org_name = o.name
              ORDER BY o.name",
            &[],
        )
        .await?;
    let objects = client
        .query(
            "SELECT j.org_name, j.object_name, j.table_name, j.enabled, j.phase, j.backfill_done,
                    j.backfill_total, j.paused_reason,
                    CASE WHEN st.n_tup_ins > 0 OR st.n_live_tup > 0 THEN st.n_live_tup
                         ELSE j.row_count END,
                    j.cursor_modstamp,
                    j.newest_modstamp, v.lag_seconds, j.requests, j.last_error, j.last_error_at,
                    j.removed_fields, j.pending_field_backfill, j.bulk_purpose, j.bulk_job_id,
                    j.bulk_processed, j.source, v.fresh_as_of, j.last_error_code
               FROM sfpg.objects j
               JOIN sfpg.orgs o ON o.name = j.org_name
               JOIN sfpg.status v ON v.org_name = j.org_name AND v.object_name = j.object_name
               LEFT JOIN pg_catalog.pg_stat_user_tables st
                      ON st.schemaname = o.schema_name AND st.relname = j.table_name
              ORDER BY j.org_name, j.object_name",
            &[],
        )
        .await?;
    let mut streams = crate::streams::load_status(client).await?;
    let mut statuses = Vec::with_capacity(orgs.len());
    for org in &orgs {
        let name: String = org.try_get(0)?;
        let mut mine = Vec::new();
        for row in objects.iter().filter(|r| r.get::<_, &str>(0) == name) {
            mine.push(object_status(row)?);
        }
        let event_streams = crate::events::EventCheckpoint::load_all(client, &name).await?;
        let statuses_name = name.clone();
        statuses.push(OrgStatus {
            name,
            schema: org.try_get(1)?,
            enabled: org.try_get(2)?,
            state: org.try_get(14)?,
            lag_seconds: org.try_get(15)?,
            paused_reason: org.try_get(3)?,
            api_used: org.try_get(4)?,
            api_max: org.try_get(5)?,
            api_seen_at: org.try_get(6)?,
            rate_requests: org.try_get(10)?,
            rate_period_ms: org.try_get(11)?,
            max_daily_share: f64::from(org.try_get::<_, f32>(12)?),
            lease_owner: org.try_get(7)?,
            last_error: org.try_get(8)?,
            last_error_code: org.try_get(13)?,
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

/// One row of the objects query in [`load`].
fn object_status(row: &tokio_postgres::Row) -> Result<ObjectStatus, ControlError> {
    Ok(ObjectStatus {
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
        fresh_as_of: row.try_get(21)?,
        lag_seconds: row.try_get(11)?,
        requests: row.try_get(12)?,
        last_error: row.try_get(13)?,
        last_error_code: row.try_get(22)?,
        last_error_at: row.try_get(14)?,
        removed_fields: row.try_get(15)?,
        pending_fields: row.try_get(16)?,
        bulk_purpose: row.try_get(17)?,
        bulk_job_id: row.try_get(18)?,
        bulk_processed: row.try_get(19)?,
        source: row.try_get(20)?,
    })
}

#[cfg(test)]
mod view_tests;

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
            fresh_as_of: None,
            lag_seconds: None,
            requests: 3,
            last_error: None,
            last_error_code: None,
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
