//! The Bulk API allocations: `DailyBulkApiBatches` (15,000 batches per rolling 24 hours,
//! which ingest jobs use, one per 10,000 records processed; a job is refused when none is
//! left), and the Bulk API 2.0 query allocations: `DailyBulkV2QueryJobs` (10,000 jobs per rolling
//! 24 hours) and `DailyBulkV2QueryFileStorageMB` (1 TB of results per rolling 24 hours),
//! as `/limits/` reports them and as job creation enforces them ("Bulk API and Bulk API
//! 2.0 Limits and Allocations").
//!
//! A job is counted when it is created. Result storage is counted in kilobytes as the
//! result is written: Salesforce counts the results a job generates; the emulator writes
//! a page when it is first asked for, so it counts each page the first time it is
//! served (a page fetched again is not counted twice).
//!
//! Spent allocations refuse job creation with `400 LIMIT_EXCEEDED` and the messages
//! Estuary's connector matches (`Max bulk v2 query jobs (10000) per 24 hrs has been
//! reached`, `Max bulk v2 query result size stored (1000000000) kb per 24 hrs has been
//! exceeded`); the `errorCode` is the one Airbyte's connector expects on job creation.
//!
//! Every Bulk request also counts against `DailyApiRequests`, like any REST request:
//! "Each HTTP request counts as one call for the purposes of calculating usage limits"
//! (Salesforce help article 000382576, on the Bulk API) — job creation, each poll of job
//! info, each results page, `resultPages`, abort, delete and list. The REST gate counts
//! them.

use axum::http::StatusCode;

use crate::http::error::RestError;
use crate::http::limits::{Admission, ApiUsage};

/// Query jobs per rolling 24 hours.
pub const DAILY_QUERY_JOBS: u64 = 10_000;
/// Kilobytes of query results per rolling 24 hours (1 TB as Salesforce counts it).
pub const DAILY_RESULT_KB: u64 = 1_000_000_000;
/// Batches per rolling 24 hours (`DailyBulkApiBatches`), shared by Bulk API and Bulk API
/// 2.0; only ingest uses them, one per 10,000 records a job processes.
pub const DAILY_BATCHES: u64 = 15_000;
/// Records of an ingest job that make one batch.
pub const RECORDS_PER_BATCH: u64 = 10_000;

/// The two rolling counts.
#[derive(Debug)]
pub struct BulkLimits {
    jobs: ApiUsage,
    result_kb: ApiUsage,
    batches: ApiUsage,
    /// Bytes served but not yet a whole kilobyte.
    pending_bytes: u64,
}

impl Default for BulkLimits {
    fn default() -> Self {
        BulkLimits {
            jobs: ApiUsage::new(DAILY_QUERY_JOBS),
            result_kb: ApiUsage::new(DAILY_RESULT_KB),
            batches: ApiUsage::new(DAILY_BATCHES),
            pending_bytes: 0,
        }
    }
}

/// The two allocations as `/limits/` reports them: (Max, Remaining) each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BulkLimitsView {
    pub jobs_max: u64,
    pub jobs_remaining: u64,
    pub storage_max_mb: u64,
    pub storage_remaining_mb: u64,
    pub batches_max: u64,
    pub batches_remaining: u64,
}

impl BulkLimits {
    /// Counts one new query job, or refuses it when the allocation or the result
    /// storage is spent.
    pub fn admit_job(&mut self) -> Result<(), RestError> {
        let (kb_used, kb_max) = self.result_kb.usage();
        if kb_used >= kb_max {
            return Err(limit_exceeded(format!(
                "Max bulk v2 query result size stored ({kb_max}) kb per 24 hrs has been exceeded"
            )));
        }
        match self.jobs.admit() {
            Admission::Counted { .. } => Ok(()),
            Admission::Exceeded { max, .. } => Err(limit_exceeded(format!(
                "Max bulk v2 query jobs ({max}) per 24 hrs has been reached"
            ))),
        }
    }

    /// Refuses a new ingest job when the batch allocation is spent (the job would have
    /// none to run in).
    pub fn admit_ingest_job(&mut self) -> Result<(), RestError> {
        let (used, max) = self.batches.usage();
        if used >= max {
            return Err(limit_exceeded(format!(
                "Exceeded max number of batches allowed in a 24 hour period ({max})"
            )));
        }
        Ok(())
    }

    /// Counts the batches of an ingest job of `records` records as it starts processing.
    pub fn consume_ingest_records(&mut self, records: u64) {
        self.batches
            .consume(records.div_ceil(RECORDS_PER_BATCH).max(1));
    }

    /// Changes the batch allocation (admin API).
    pub fn set_batches_max(&mut self, max: u64) {
        self.batches.set_max(max);
    }

    /// Counts `n` batches as used now (admin API).
    pub fn consume_batches(&mut self, n: u64) {
        self.batches.consume(n);
    }

    /// Counts `bytes` of results written.
    pub fn add_result_bytes(&mut self, bytes: u64) {
        let total = self.pending_bytes + bytes;
        let kb = total / 1024;
        self.pending_bytes = total % 1024;
        if kb > 0 {
            self.result_kb.consume(kb);
        }
    }

    pub fn view(&mut self) -> BulkLimitsView {
        let (jobs_used, jobs_max) = self.jobs.usage();
        let (kb_used, kb_max) = self.result_kb.usage();
        let (batches_used, batches_max) = self.batches.usage();
        BulkLimitsView {
            jobs_max,
            jobs_remaining: jobs_max.saturating_sub(jobs_used),
            storage_max_mb: kb_max / 1024,
            storage_remaining_mb: kb_max.saturating_sub(kb_used) / 1024,
            batches_max,
            batches_remaining: batches_max.saturating_sub(batches_used),
        }
    }

    /// Changes the job allocation (admin API), so tests reach it without 10,000 jobs.
    pub fn set_jobs_max(&mut self, max: u64) {
        self.jobs.set_max(max);
    }

    /// Counts `n` jobs as created now, as if another client had made them (admin API).
    pub fn consume_jobs(&mut self, n: u64) {
        self.jobs.consume(n);
    }

    /// Counts `kb` kilobytes of results as stored now (admin API).
    pub fn consume_result_kb(&mut self, kb: u64) {
        self.result_kb.consume(kb);
    }

    /// Forgets everything counted (admin API).
    pub fn reset(&mut self) {
        self.jobs.reset();
        self.result_kb.reset();
        self.batches.reset();
        self.pending_bytes = 0;
    }
}

fn limit_exceeded(message: String) -> RestError {
    RestError::new(StatusCode::BAD_REQUEST, "LIMIT_EXCEEDED", message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_and_storage_are_counted_and_refused_when_spent() {
        let mut limits = BulkLimits::default();
        let view = limits.view();
        assert_eq!(
            view,
            BulkLimitsView {
                jobs_max: 10_000,
                jobs_remaining: 10_000,
                storage_max_mb: 976_562,
                storage_remaining_mb: 976_562,
                batches_max: 15_000,
                batches_remaining: 15_000,
            }
        );
        limits.set_jobs_max(2);
        assert!(limits.admit_job().is_ok());
        assert!(limits.admit_job().is_ok());
        let refused = limits.admit_job().unwrap_err();
        assert_eq!(refused.status, StatusCode::BAD_REQUEST);
        assert_eq!(refused.error_code, "LIMIT_EXCEEDED");
        assert_eq!(
            refused.message,
            "Max bulk v2 query jobs (2) per 24 hrs has been reached"
        );
        // Ingest: one batch per 10,000 records processed, at least one a job.
        limits.consume_ingest_records(1);
        limits.consume_ingest_records(10_001);
        assert_eq!(limits.view().batches_remaining, 15_000 - 3);
        limits.set_batches_max(3);
        assert_eq!(
            limits.admit_ingest_job().unwrap_err().message,
            "Exceeded max number of batches allowed in a 24 hour period (3)"
        );
        limits.reset();
        limits.add_result_bytes(3 * 1024 * 1024 - 1);
        assert_eq!(limits.view().storage_remaining_mb, 976_562 - 3);
        limits.add_result_bytes(1);
        limits.consume_result_kb(DAILY_RESULT_KB);
        assert_eq!(
            limits.admit_job().unwrap_err().message,
            "Max bulk v2 query result size stored (1000000000) kb per 24 hrs has been exceeded"
        );
    }
}
