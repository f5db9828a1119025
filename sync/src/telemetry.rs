//! What the sync records for `/metrics` (through the `metrics` facade, a no-op until a
//! process installs a recorder): records written by source, gaps, resubscribes of the
//! stream, failed Bulk jobs, and when each object last succeeded, which [`refresh`] turns
//! into seconds at each scrape.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Instant;

use crate::object::Task;

/// Where records written to the mirror came from: `backfill`, `poll`, `bulk` or `cdc`
/// (the proxy's own writes are `write_back`).
pub fn source_of(task: Task) -> &'static str {
    match task {
        Task::Backfill | Task::FieldBackfill | Task::Count | Task::Describe => "backfill",
        Task::Bulk => "bulk",
        Task::Changes
        | Task::Deleted
        | Task::Reconcile
        | Task::Formulas
        | Task::Locked
        | Task::Backlog => "poll",
    }
}

/// Whether a successful `task` reads the object's records (a poll in the metric's sense).
fn reads_records(task: Task) -> bool {
    matches!(
        task,
        Task::Backfill | Task::FieldBackfill | Task::Changes | Task::Bulk | Task::Locked
    )
}

/// `count` records written (inserted, changed or deleted) from `source`.
pub fn records_written(org: &str, source: &'static str, count: u64) {
    if count > 0 {
        metrics::counter!(
            "sfpg_records_written_total",
            "org" => org.to_owned(),
            "source" => source
        )
        .increment(count);
    }
}

/// A step of `task` on `object` succeeded, having written `written` records.
pub fn step_done(org: &str, object: &str, task: Task, written: u64) {
    records_written(org, source_of(task), written);
    if reads_records(task) {
        succeeded(org, object);
    }
}

/// `object` of `org` had a successful poll or change event just now.
pub fn succeeded(org: &str, object: &str) {
    last_successes()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert((org.to_owned(), object.to_owned()), Instant::now());
}

/// Gap and overflow events received for `org`.
pub fn gaps(org: &str, count: u64) {
    if count > 0 {
        metrics::counter!("sfpg_cdc_gaps_total", "org" => org.to_owned()).increment(count);
    }
}

/// The org's stream subscribing again for `reason` (`replay_invalid`, `down`, `reload`;
/// the client counts its own reconnects).
pub fn resubscribed(org: &str, reason: &'static str) {
    metrics::counter!(
        "sfpg_cdc_resubscribes_total",
        "org" => org.to_owned(),
        "reason" => reason
    )
    .increment(1);
}

/// A Bulk API 2.0 query job that will not deliver (failed, aborted, expired).
pub fn bulk_job_failed(org: &str) {
    metrics::counter!("sfpg_bulk_jobs_failed_total", "org" => org.to_owned()).increment(1);
}

/// Sets `sfpg_seconds_since_last_success` of every object this process has synced: called
/// before each scrape, so the value grows while nothing succeeds.
pub fn refresh() {
    let now = Instant::now();
    let successes = last_successes()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    for ((org, object), at) in successes {
        metrics::gauge!("sfpg_seconds_since_last_success", "org" => org, "object" => object)
            .set(now.duration_since(at).as_secs_f64());
    }
}

fn last_successes() -> &'static Mutex<HashMap<(String, String), Instant>> {
    static LAST: OnceLock<Mutex<HashMap<(String, String), Instant>>> = OnceLock::new();
    LAST.get_or_init(Mutex::default)
}
