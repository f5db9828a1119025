//! The replication resources: `updated/` and `deleted/` list the Ids of an object's records
//! changed or deleted in a time window (reference §2.5).
//!
//! `updated/` looks back at most 30 days. `deleted/` reads the delete log, which Salesforce
//! trims; when a caller's watermark is older than `earliestDateAvailable`, deletes may have
//! been missed and only a full Id reconciliation can find them.

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::datetime;
use crate::error::{Result, null_as_default};
use crate::ids::SalesforceId;
use crate::sobject::SObject;

/// `{"ids": […], "latestDateCovered": …}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Updated {
    /// Records created or updated in the window.
    #[serde(default, deserialize_with = "null_as_default")]
    pub ids: Vec<SalesforceId>,
    /// The end of the window Salesforce actually covered; start the next window here.
    #[serde(deserialize_with = "datetime::deserialize")]
    pub latest_date_covered: DateTime<Utc>,
}

/// `{"deletedRecords": […], "earliestDateAvailable": …, "latestDateCovered": …}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deleted {
    /// Records deleted in the window.
    #[serde(default, deserialize_with = "null_as_default")]
    pub deleted_records: Vec<DeletedRecord>,
    /// The oldest delete the log still holds.
    #[serde(deserialize_with = "datetime::deserialize")]
    pub earliest_date_available: DateTime<Utc>,
    /// The end of the window Salesforce actually covered.
    #[serde(deserialize_with = "datetime::deserialize")]
    pub latest_date_covered: DateTime<Utc>,
}

/// One deleted record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeletedRecord {
    /// The record's Id.
    pub id: SalesforceId,
    /// When it was deleted.
    #[serde(deserialize_with = "datetime::deserialize")]
    pub deleted_date: DateTime<Utc>,
}

impl SObject {
    /// Ids of records created or updated between `start` and `end` (`GET updated/`).
    pub async fn updated(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> Result<Updated> {
        let request = self
            .request(Method::GET, ["updated"])?
            .query("start", datetime::to_query_param(start))
            .query("end", datetime::to_query_param(end));
        self.client.execute(request).await?.json("updated records")
    }

    /// Records deleted between `start` and `end` (`GET deleted/`).
    pub async fn deleted(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> Result<Deleted> {
        let request = self
            .request(Method::GET, ["deleted"])?
            .query("start", datetime::to_query_param(start))
            .query("end", datetime::to_query_param(end));
        self.client.execute(request).await?.json("deleted records")
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn updated_ids() {
        let updated: Updated = serde_json::from_str(
            r#"{"ids":["001D000000IqhSLIAZ","001M000000qfPySIAU"],"latestDateCovered":"2013-05-08T22:00:00.000+0000"}"#,
        )
        .unwrap();
        assert_eq!(updated.ids.len(), 2);
        assert_eq!(
            updated.latest_date_covered,
            Utc.with_ymd_and_hms(2013, 5, 8, 22, 0, 0).unwrap()
        );
        let none: Updated = serde_json::from_str(
            r#"{"ids":[],"latestDateCovered":"2013-05-08T22:00:00.000+0000"}"#,
        )
        .unwrap();
        assert!(none.ids.is_empty());
    }

    #[test]
    fn deleted_records() {
        let deleted: Deleted = serde_json::from_str(
            r#"{"deletedRecords":[{"id":"001D000000IqhSLIAZ","deletedDate":"2013-05-07T22:07:19.000+0000"}],
                "earliestDateAvailable":"2013-05-03T15:57:00.000+0000",
                "latestDateCovered":"2013-05-08T21:20:00.000+0000"}"#,
        )
        .unwrap();
        assert_eq!(deleted.deleted_records[0].id.as_str(), "001D000000IqhSLIAZ");
        assert_eq!(
            deleted.deleted_records[0].deleted_date,
            Utc.with_ymd_and_hms(2013, 5, 7, 22, 7, 19).unwrap()
        );
        assert_eq!(
            deleted.earliest_date_available,
            Utc.with_ymd_and_hms(2013, 5, 3, 15, 57, 0).unwrap()
        );
        assert!(
            serde_json::from_str::<Deleted>(
                r#"{"deletedRecords":[],"earliestDateAvailable":"soon","latestDateCovered":"x"}"#
            )
            .is_err()
        );
    }
}
