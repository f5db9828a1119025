//! The org's allocations (`GET /limits/`, reference §2.6): each limit's `Max` and
//! `Remaining` over Salesforce's rolling 24 hours, such as `DailyApiRequests` and
//! `DailyBulkApiBatches`. What a caller checks before a large piece of work, so that it is
//! refused before anything is sent rather than cut off half way.

use std::collections::BTreeMap;

use reqwest::Method;
use serde::Deserialize;

use crate::client::{ApiRequest, Client};
use crate::error::Result;

/// The daily API request allocation.
pub const DAILY_API_REQUESTS: &str = "DailyApiRequests";
/// The Bulk API batch allocation, which ingest jobs use (one per 10,000 records).
pub const DAILY_BULK_API_BATCHES: &str = "DailyBulkApiBatches";

/// One allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Limit {
    #[serde(rename = "Max")]
    pub max: u64,
    #[serde(rename = "Remaining")]
    pub remaining: u64,
}

/// Every allocation the org reports, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Limits(BTreeMap<String, serde_json::Value>);

impl Limits {
    /// The allocation `name`, if the org reports it.
    pub fn get(&self, name: &str) -> Option<Limit> {
        serde_json::from_value(self.0.get(name)?.clone()).ok()
    }
}

impl Client {
    /// The org's allocations (`GET /limits/`). The request counts against
    /// `DailyApiRequests` like any other.
    pub async fn limits(&self) -> Result<Limits> {
        let request = ApiRequest::rest(Method::GET, ["limits"]);
        self.execute(request).await?.json("Limits")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocations_read_by_name() {
        let limits: Limits = serde_json::from_value(serde_json::json!({
            "DailyApiRequests": {"Max": 15000, "Remaining": 14998},
            "DailyBulkApiBatches": {"Max": 15000, "Remaining": 0},
            "PermissionSets": {"Max": 1500, "Remaining": 1499, "CreateCustom": {"Max": 1000, "Remaining": 999}}
        }))
        .unwrap();
        assert_eq!(
            limits.get(DAILY_API_REQUESTS),
            Some(Limit {
                max: 15000,
                remaining: 14998
            })
        );
        assert_eq!(limits.get(DAILY_BULK_API_BATCHES).unwrap().remaining, 0);
        assert_eq!(limits.get("PermissionSets").unwrap().max, 1500);
        assert_eq!(limits.get("Nothing"), None);
    }
}
