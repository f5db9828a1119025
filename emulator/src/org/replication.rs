//! The replication windows, `GET /sobjects/X/updated/` and `/deleted/` (reference §2.5):
//! seconds are ignored, `start` must precede `end`, `updated` reaches 30 days back and
//! `deleted` 15, at most 600,000 Ids, and only replicateable objects.
//!
//! Documented: `INVALID_REPLICATION_DATE` when start does not precede end, the day limits,
//! `EXCEEDED_ID_LIMIT`. The messages of those errors and `INVALID_TYPE` for an object that
//! is not replicateable are not published; they are worded like their neighbours.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value as Json, json};

use super::clock::whole_minutes;
use super::store::ObjectStore;
use super::{ApiError, Org};
use crate::model::{Value, format_datetime};

/// A checked window: its start, its end, and the end it actually covers.
type Window = (DateTime<Utc>, DateTime<Utc>, DateTime<Utc>);

/// The most Ids one call returns.
pub const MAX_REPLICATION_IDS: usize = 600_000;

impl Org {
    /// `updated/`: Ids of records created or changed (by `SystemModstamp`) within
    /// `[start, end)`, and `latestDateCovered`.
    pub fn updated(
        &self,
        object: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Json, ApiError> {
        let store = self.replicateable(object)?;
        let (start, end, covered) = self.window(start, end, 30)?;
        let stamp = store.def.system.system_modstamp;
        let ids: Vec<&str> = store
            .records
            .iter()
            .filter(|(_, r)| !store.is_deleted(r))
            .filter(|(_, r)| match r.get(stamp) {
                Value::DateTime(t) => *t >= start && *t < end,
                _ => false,
            })
            .map(|(id, _)| id.as_str())
            .collect();
        if ids.len() > MAX_REPLICATION_IDS {
            return Err(too_many_ids());
        }
        Ok(json!({
            "ids": ids,
            "latestDateCovered": format_datetime(&covered),
        }))
    }

    /// `deleted/`: the delete log within `[start, end)` (records still in the recycle
    /// bin, or hard-deleted), `earliestDateAvailable` and `latestDateCovered`.
    pub fn deleted(
        &self,
        object: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Json, ApiError> {
        let store = self.replicateable(object)?;
        let (start, end, covered) = self.window(start, end, 15)?;
        let records: Vec<Json> = store
            .delete_log
            .iter()
            .filter(|d| d.deleted_date >= start && d.deleted_date < end)
            // Undeleted records leave the list; hard-deleted ones, gone from the store, stay.
            .filter(|d| store.get(&d.id).is_none_or(|r| store.is_deleted(r)))
            .map(|d| json!({"id": d.id.as_str(), "deletedDate": format_datetime(&d.deleted_date)}))
            .collect();
        if records.len() > MAX_REPLICATION_IDS {
            return Err(too_many_ids());
        }
        Ok(json!({
            "deletedRecords": records,
            "earliestDateAvailable": format_datetime(&store.delete_log_purged),
            "latestDateCovered": format_datetime(&covered),
        }))
    }

    fn replicateable(&self, object: &str) -> Result<&ObjectStore, ApiError> {
        let store = self.store(object).ok_or_else(ApiError::not_found)?;
        if !store.def.replicateable {
            return Err(ApiError::new(
                400,
                "INVALID_TYPE",
                format!("sObject type '{}' is not replicateable.", store.def.name),
            ));
        }
        Ok(store)
    }

    /// The window with seconds dropped, checked, and the end it actually covers.
    fn window(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        max_days: i64,
    ) -> Result<Window, ApiError> {
        let (start, end) = (whole_minutes(start), whole_minutes(end));
        if start >= end {
            return Err(ApiError::new(
                400,
                "INVALID_REPLICATION_DATE",
                "startDate must chronologically precede endDate",
            ));
        }
        let now = self.now();
        if start < now - Duration::days(max_days) {
            return Err(ApiError::new(
                400,
                "INVALID_REPLICATION_DATE",
                format!("startDate cannot be more than {max_days} days ago"),
            ));
        }
        Ok((start, end, end.min(whole_minutes(now))))
    }
}

fn too_many_ids() -> ApiError {
    ApiError::new(
        400,
        "EXCEEDED_ID_LIMIT",
        "record limit reached. cannot return more than 600000 ids; narrow the date range",
    )
}
