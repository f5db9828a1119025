//! Whether the org's daily allocations can carry a bulk push, asked before anything is
//! sent (one `GET /limits/`): a push that would spend the Bulk API's batches
//! (`DailyBulkApiBatches`, one per 10,000 records a job processes) or the org's API
//! requests (`DailyApiRequests`: each job's creation, upload, close, polls and result
//! files, and the read-back: Collections retrieves of 200, or a query job from
//! `read_back::BULK_READ_BACK_FROM` records on) is refused with 53400, rather than cut off
//! half way with part of it saved.

use sfpg_salesforce::limits::{DAILY_API_REQUESTS, DAILY_BULK_API_BATCHES, Limits};
use tokio_postgres::error::SqlState;

use super::jobs::groups;
use super::read_back::{BULK_READ_BACK_FROM, PAGE_RECORDS};
use crate::push::Refusal;
use crate::push::plan::{MAX_RECORDS, Operation, Plan};

/// Records of an ingest job that use one batch.
const RECORDS_PER_BATCH: usize = 10_000;
/// Requests of one job besides its polls: create, upload, close, three result files.
const REQUESTS_PER_JOB: usize = 6;
/// Polls counted for each job: its first ones, which the backoff makes most of.
const POLLS_PER_JOB: usize = 4;
/// Records of a read-back's results page.
const READ_BACK_PAGE_RECORDS: usize = PAGE_RECORDS as usize;

/// What a push needs of the org's allocations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    pub batches: u64,
    pub requests: u64,
}

/// What pushing `plan` through ingest jobs uses, at the least.
pub fn needs(plan: &Plan) -> Needs {
    let mut batches = 0;
    let mut requests = 0;
    for group in groups(plan) {
        let records = group.records.len();
        batches += records.div_ceil(RECORDS_PER_BATCH).max(1);
        requests += REQUESTS_PER_JOB + POLLS_PER_JOB;
        if group.operation == Operation::Delete {
            continue;
        }
        requests += if records >= BULK_READ_BACK_FROM {
            // The read-back by a query job: created, polled, a page per 10,000, deleted.
            REQUESTS_PER_JOB + records.div_ceil(READ_BACK_PAGE_RECORDS)
        } else {
            // The read-back: one Collections retrieve per 200 records.
            records.div_ceil(MAX_RECORDS)
        };
    }
    Needs {
        batches: batches as u64,
        requests: requests as u64,
    }
}

/// Refuses a push whose `needs` the org's `limits` cannot carry.
pub fn check(needs: Needs, limits: &Limits) -> Result<(), Refusal> {
    let short = |name: &str, needed: u64| {
        let limit = limits.get(name)?;
        (limit.remaining < needed).then(|| {
            Refusal::new(
                SqlState::CONFIGURATION_LIMIT_EXCEEDED,
                format!(
                    "this bulk push needs {needed} of the org's {name}, which has {} of {} left for the rolling 24 hours",
                    limit.remaining, limit.max
                ),
            )
            .detail("Nothing was sent to Salesforce; the transaction was rolled back.")
            .hint("Wait until the org's allocation has recovered, or push fewer records.")
        })
    };
    match short(DAILY_BULK_API_BATCHES, needs.batches)
        .or_else(|| short(DAILY_API_REQUESTS, needs.requests))
    {
        Some(refusal) => Err(refusal),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(batches: u64, requests: u64) -> Limits {
        serde_json::from_value(serde_json::json!({
            "DailyApiRequests": {"Max": 15000, "Remaining": requests},
            "DailyBulkApiBatches": {"Max": 15000, "Remaining": batches},
        }))
        .unwrap()
    }

    #[test]
    fn a_push_beyond_the_batches_or_requests_left_is_refused() {
        let needs = Needs {
            batches: 2,
            requests: 30,
        };
        assert!(check(needs, &limits(2, 30)).is_ok());
        let refusal = check(needs, &limits(1, 30)).unwrap_err();
        assert_eq!(refusal.sqlstate, SqlState::CONFIGURATION_LIMIT_EXCEEDED);
        assert!(
            refusal.message.contains("DailyBulkApiBatches"),
            "{}",
            refusal.message
        );
        let refusal = check(needs, &limits(2, 29)).unwrap_err();
        assert!(
            refusal.message.contains("DailyApiRequests"),
            "{}",
            refusal.message
        );
        // An org that reports neither is not held back.
        assert!(check(needs, &Limits::default()).is_ok());
    }
}
