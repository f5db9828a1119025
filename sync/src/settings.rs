//! The sync's timers and tolerances. Per-org settings that change at run time (rate, batch
//! size, daily share) live in `sfpg.orgs`; these are per process and come from flags.

use std::time::Duration;

pub use sfpg_control::writer::WriteStrategy;

/// Records per result page of a query job: a million records in ten pages (ten requests,
/// ten transactions), each about 100 MB of CSV for an Account with every field.
pub const DEFAULT_BULK_PAGE_SIZE: u32 = 100_000;

/// How a sync process paces its maintenance work and tolerates Salesforce's timing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncSettings {
    /// How far the incremental cursor trails the newest `SystemModstamp` seen. Salesforce
    /// stamps a record before its transaction commits, so a slow commit can surface with a
    /// stamp older than records already read; re-reading this window catches it.
    pub overlap: Duration,
    /// How often each object is described again (with `If-Modified-Since`).
    pub describe_interval: Duration,
    /// How often each object's `deleted/` list is read, to catch deletes that left the
    /// recycle bin before a poll saw them.
    pub deleted_interval: Duration,
    /// How often each object's Ids are compared in full with the mirror's.
    pub reconcile_interval: Duration,
    /// How often formula (calculated) fields are re-read; `None` turns it off. Their values
    /// change without bumping `SystemModstamp`, so polling alone misses them.
    pub formula_interval: Option<Duration>,
    /// How long a mirror write waits for a lock before giving up and trying again. Rows a
    /// client holds locked are not waited for at all (their records are left out and
    /// written later); this bounds the waits that remain, such as a table lock.
    pub lock_timeout: Duration,
    /// How many times a mirror write is tried when it times out on a lock. The change
    /// stream, which cannot keep its events for later, tries on and warns after as many.
    pub lock_attempts: u32,
    /// How often an org paused for its daily API budget sends one request to learn whether
    /// usage has come down.
    pub budget_probe_interval: Duration,
    /// How long an object waits after a failed turn before it is served again.
    pub error_backoff: Duration,
    /// How the mirror is written.
    pub write_strategy: WriteStrategy,
    /// The most records asked for in one result page of a Bulk API 2.0 query job
    /// (`maxRecords`); `None` lets Salesforce choose. Each page is one request and one
    /// transaction, streamed into `COPY` without being held whole.
    pub bulk_page_size: Option<u32>,
    /// The longest wait between two polls of a running query job (the waits start at
    /// 0.2 s and double).
    pub bulk_poll_cap: Duration,
    /// How often an object the org's Change Data Capture stream keeps current is still
    /// polled (a safety net); it polls at its normal rate whenever the stream is down.
    pub poll_while_streaming: Duration,
    /// How long Salesforce keeps change events (72 h): a checkpoint older than this less
    /// 6 h is not replayed from, but caught up by polling.
    pub event_retention: Duration,
    /// Platform event rows older than this are deleted from their tables.
    pub event_table_retention: Duration,
    /// How long a worker's lease on an org (and its registration) lasts unrenewed: a
    /// killed worker's orgs move to others this long after its last heartbeat.
    pub lease_ttl: Duration,
    /// How often the worker renews its leases and looks at the placement again.
    pub heartbeat: Duration,
    /// The most orgs this worker runs.
    pub max_orgs: u32,
    /// The most orgs a worker takes, and the most it hands back, per heartbeat (orgs whose
    /// leases expired without being handed back are taken beyond it).
    pub lease_moves: u32,
    /// Database connections the worker's orgs share.
    pub db_pool_size: usize,
}

impl Default for SyncSettings {
    fn default() -> Self {
        Self {
            overlap: Duration::from_secs(5 * 60),
            describe_interval: Duration::from_secs(15 * 60),
            deleted_interval: Duration::from_secs(10 * 60),
            reconcile_interval: Duration::from_secs(24 * 60 * 60),
            formula_interval: None,
            lock_timeout: Duration::from_secs(2),
            lock_attempts: 5,
            budget_probe_interval: Duration::from_secs(5 * 60),
            error_backoff: Duration::from_secs(30),
            write_strategy: WriteStrategy::default(),
            bulk_page_size: Some(DEFAULT_BULK_PAGE_SIZE),
            bulk_poll_cap: Duration::from_secs(30),
            poll_while_streaming: Duration::from_secs(10 * 60),
            event_retention: Duration::from_secs(72 * 3600),
            event_table_retention: Duration::from_secs(7 * 24 * 3600),
            lease_ttl: Duration::from_secs(30),
            heartbeat: Duration::from_secs(10),
            max_orgs: 10_000,
            lease_moves: 20,
            db_pool_size: 16,
        }
    }
}
