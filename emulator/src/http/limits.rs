//! The org's daily API allocation: a rolling 24-hour count of API requests, the
//! `Sforce-Limit-Info` header it feeds, and the `/limits/` resource.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use axum::Json as JsonResponse;
use axum::extract::State;
use serde_json::{Value as Json, json};

use super::bulk::limits::BulkLimitsView;
use super::state::AppState;

/// Salesforce charges data storage at 2 KB per record.
const BYTES_PER_RECORD: u64 = 2 * 1024;

/// `GET /limits/`.
pub async fn limits(State(state): State<AppState>) -> JsonResponse<Json> {
    let (used, max) = state.usage().usage();
    let records = state.org().total_records() as u64;
    let storage_mb = records * BYTES_PER_RECORD / (1024 * 1024);
    let bulk = state.bulk().limits.view();
    JsonResponse(limits_body(used, max, storage_mb, bulk))
}

/// Requests are counted in one-minute buckets so usage rolls off after 24 hours, as
/// Salesforce's allocation does, without remembering each request.
const BUCKET: Duration = Duration::from_secs(60);
const WINDOW_BUCKETS: u64 = 24 * 60;

/// The rolling count of API requests against the daily allocation.
#[derive(Debug)]
pub struct ApiUsage {
    max: u64,
    start: Instant,
    /// (bucket number since `start`, requests in it), oldest first.
    buckets: VecDeque<(u64, u64)>,
    used: u64,
}

/// The outcome of asking for one more API request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Counted; `used` includes this request.
    Counted { used: u64, max: u64 },
    /// The allocation is spent; nothing was counted.
    Exceeded { used: u64, max: u64 },
}

impl ApiUsage {
    pub fn new(max: u64) -> ApiUsage {
        ApiUsage {
            max,
            start: Instant::now(),
            buckets: VecDeque::new(),
            used: 0,
        }
    }

    /// Counts one request if the allocation allows it.
    pub fn admit(&mut self) -> Admission {
        self.admit_at(Instant::now())
    }

    fn admit_at(&mut self, now: Instant) -> Admission {
        let bucket = self.bucket(now);
        self.expire(bucket);
        if self.used >= self.max {
            return Admission::Exceeded {
                used: self.used,
                max: self.max,
            };
        }
        match self.buckets.back_mut() {
            Some((b, n)) if *b == bucket => *n += 1,
            _ => self.buckets.push_back((bucket, 1)),
        }
        self.used += 1;
        Admission::Counted {
            used: self.used,
            max: self.max,
        }
    }

    /// (used, max) over the last 24 hours.
    pub fn usage(&mut self) -> (u64, u64) {
        let bucket = self.bucket(Instant::now());
        self.expire(bucket);
        (self.used, self.max)
    }

    /// Forgets every counted request (admin API).
    pub fn reset(&mut self) {
        self.buckets.clear();
        self.used = 0;
    }

    /// Changes the allocation; requests already counted stay counted.
    pub fn set_max(&mut self, max: u64) {
        self.max = max;
    }

    /// Marks `n` requests as used now, as if another client had made them (admin API), so
    /// tests can reach the limit without making thousands of calls.
    pub fn consume(&mut self, n: u64) {
        let bucket = self.bucket(Instant::now());
        match self.buckets.back_mut() {
            Some((b, count)) if *b == bucket => *count += n,
            _ => self.buckets.push_back((bucket, n)),
        }
        self.used += n;
    }

    fn bucket(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.start);
        elapsed.as_secs() / BUCKET.as_secs()
    }

    fn expire(&mut self, current: u64) {
        while let Some(&(b, n)) = self.buckets.front() {
            if current.saturating_sub(b) < WINDOW_BUCKETS {
                break;
            }
            self.used -= n;
            self.buckets.pop_front();
        }
    }
}

/// The `Sforce-Limit-Info` header value.
pub fn limit_info(used: u64, max: u64) -> String {
    format!("api-usage={used}/{max}")
}

/// The `/limits/` body: each limit `{"Max", "Remaining"}`. `DailyApiRequests`,
/// `DataStorageMB`, `DailyBulkApiBatches` and the two Bulk API 2.0 query allocations are live; the others
/// report their allocation untouched, because the emulator does not serve the APIs they
/// meter.
pub fn limits_body(used: u64, max: u64, storage_used_mb: u64, bulk: BulkLimitsView) -> Json {
    let untouched = |n: u64| json!({"Max": n, "Remaining": n});
    let storage_max: u64 = 1024;
    json!({
        "ConcurrentAsyncGetReportInstances": untouched(200),
        "ConcurrentSyncReportRuns": untouched(20),
        "DailyApiRequests": {
            "Max": max,
            "Remaining": max.saturating_sub(used),
        },
        "DailyAsyncApexExecutions": untouched(250_000),
        "DailyBulkApiBatches": {
            "Max": bulk.batches_max,
            "Remaining": bulk.batches_remaining,
        },
        "DailyBulkV2QueryFileStorageMB": {
            "Max": bulk.storage_max_mb,
            "Remaining": bulk.storage_remaining_mb,
        },
        "DailyBulkV2QueryJobs": {
            "Max": bulk.jobs_max,
            "Remaining": bulk.jobs_remaining,
        },
        "DailyDeliveredPlatformEvents": untouched(50_000),
        "DailyDurableStreamingApiEvents": untouched(1_000_000),
        "DailyGenericStreamingApiEvents": untouched(10_000),
        "DailyStreamingApiEvents": untouched(1_000_000),
        "DataStorageMB": {
            "Max": storage_max,
            "Remaining": storage_max.saturating_sub(storage_used_mb),
        },
        "DurableStreamingApiConcurrentClients": untouched(2_000),
        "FileStorageMB": untouched(1024),
        "HourlyPublishedPlatformEvents": untouched(250_000),
        "SingleEmailMessage": untouched(5_000),
        "StreamingApiConcurrentClients": untouched(2_000),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_until_the_allocation_is_spent() {
        let mut usage = ApiUsage::new(2);
        let now = usage.start;
        assert_eq!(usage.admit_at(now), Admission::Counted { used: 1, max: 2 });
        assert_eq!(usage.admit_at(now), Admission::Counted { used: 2, max: 2 });
        assert_eq!(usage.admit_at(now), Admission::Exceeded { used: 2, max: 2 });
        usage.reset();
        assert_eq!(usage.admit_at(now), Admission::Counted { used: 1, max: 2 });
    }

    #[test]
    fn requests_roll_off_after_a_day() {
        let mut usage = ApiUsage::new(10);
        let start = usage.start;
        usage.admit_at(start);
        usage.admit_at(start + Duration::from_secs(3600));
        let almost_a_day = start + Duration::from_secs(24 * 3600 - 60);
        assert_eq!(
            usage.admit_at(almost_a_day),
            Admission::Counted { used: 3, max: 10 }
        );
        let a_day_later = start + Duration::from_secs(24 * 3600 + 1);
        assert_eq!(
            usage.admit_at(a_day_later),
            Admission::Counted { used: 3, max: 10 }
        );
    }

    #[test]
    fn limits_body_reports_remaining_requests() {
        let bulk = BulkLimitsView {
            jobs_max: 10_000,
            jobs_remaining: 9_998,
            storage_max_mb: 976_562,
            storage_remaining_mb: 976_000,
            batches_max: 15_000,
            batches_remaining: 14_997,
        };
        let body = limits_body(20, 15_000, 3, bulk);
        assert_eq!(
            body["DailyBulkV2QueryJobs"],
            json!({"Max": 10000, "Remaining": 9998})
        );
        assert_eq!(
            body["DailyBulkV2QueryFileStorageMB"],
            json!({"Max": 976562, "Remaining": 976000})
        );
        assert_eq!(
            body["DailyApiRequests"],
            json!({"Max": 15000, "Remaining": 14980})
        );
        assert_eq!(
            body["DailyBulkApiBatches"],
            json!({"Max": 15000, "Remaining": 14997})
        );
        assert_eq!(body["DataStorageMB"]["Remaining"], json!(1021));
        assert_eq!(limit_info(20, 15_000), "api-usage=20/15000");
    }
}
