//! What the sync keeps in memory of the Bulk API 2.0 query jobs an object is read through:
//! whether a job is known to be complete, when to ask about it next, and how many jobs in a
//! row did not deliver ([`JobWatch`]); and the sweeps (the Id reconciliation, the formula
//! refresh) that read through a job of their own ([`JobSweep`]).
//!
//! A backfill's or a catch-up's job is saved in `sfpg.objects` with every page
//! ([`sfpg_control::objects::BulkRead`]); what is here is lost at a restart, which costs a
//! poll (the job's state is asked again) or a new sweep, never correctness.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sfpg_control::writer::IdSet;
use sfpg_salesforce::bulk::PollBackoff;

use super::chrono_duration;

/// Jobs that may fail, expire or miscount in a row before the object is read through REST
/// instead: a query Salesforce's Bulk API keeps failing on must not stop the object.
pub const MAX_JOB_FAILURES: u32 = 3;

/// Where the sync stands with a query job.
#[derive(Debug, Clone)]
pub struct JobWatch {
    /// The job said `JobComplete`: its result pages can be read.
    pub complete: bool,
    /// When to ask about the job next; `None`: now.
    pub poll_at: Option<DateTime<Utc>>,
    /// The waits between polls: 0.2 s, doubling up to the cap.
    backoff: PollBackoff,
    cap: Duration,
    /// Jobs that failed, expired or miscounted in a row.
    pub failures: u32,
}

impl JobWatch {
    /// A watch over a job known complete (its pages are being read) or not.
    pub fn new(complete: bool, cap: Duration) -> Self {
        Self {
            complete,
            poll_at: None,
            backoff: PollBackoff::new(cap),
            cap,
            failures: 0,
        }
    }

    /// A job was just created: its first poll comes after the first wait.
    pub fn created(&mut self, now: DateTime<Utc>) {
        self.complete = false;
        self.backoff = PollBackoff::new(self.cap);
        self.wait(now);
    }

    /// The job is still running: the next poll after the next wait.
    pub fn wait(&mut self, now: DateTime<Utc>) {
        self.poll_at = Some(now + chrono_duration(self.backoff.next_wait()));
    }

    /// The job must be asked about again (the results said it was not complete after all).
    pub fn not_complete(&mut self, now: DateTime<Utc>) {
        self.complete = false;
        self.wait(now);
    }

    /// Whether the job may be asked about (or its pages read) now.
    pub fn is_due(&self, now: DateTime<Utc>) -> bool {
        self.complete || self.poll_at.is_none_or(|at| at <= now)
    }

    /// When it will be due, if it is not now.
    pub fn due_at(&self) -> Option<DateTime<Utc>> {
        if self.complete { None } else { self.poll_at }
    }
}

/// A sweep read through a query job, kept in memory like the REST sweeps: the Id
/// reconciliation (Ids into an [`IdSet`]) or the formula refresh.
#[derive(Debug, Clone)]
pub struct JobSweep {
    /// The job, once created.
    pub job_id: Option<String>,
    /// The next page's locator; `None` for the first page.
    pub locator: Option<String>,
    pub watch: JobWatch,
    /// When the sweep began (before the job was asked for): what `reconciled_at` or
    /// `formulas_refreshed_at` becomes, and the reconciliation's bound on rows it may
    /// delete.
    pub started_at: DateTime<Utc>,
    /// The job's `numberRecordsProcessed`, once complete.
    pub processed: u64,
    /// The records of its pages read so far.
    pub read: u64,
    /// The reconciliation's Ids so far.
    pub ids: Option<IdSet>,
    /// The fields the job reads; a sweep whose fields the plan no longer has starts over.
    pub fields: Vec<String>,
}

impl JobSweep {
    pub fn start(now: DateTime<Utc>, cap: Duration) -> Self {
        Self {
            job_id: None,
            locator: None,
            watch: JobWatch::new(false, cap),
            started_at: now,
            processed: 0,
            read: 0,
            ids: None,
            fields: Vec::new(),
        }
    }
}
