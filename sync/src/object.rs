//! One object's sync: its saved progress, its plan, and what it does with its next turn.
//!
//! An object's turns alternate between its main work (the backfill, then the incremental
//! feed) and maintenance (describe, the backfill of new fields, `deleted/`, the Id
//! reconciliation, the formula refresh) whenever maintenance is due. So maintenance never
//! takes more than every other turn, and a new field or a delete is never more than two of
//! the object's turns away.

mod bulk;

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sfpg_salesforce::SalesforceId;

use crate::error::Result;
use crate::plan::ObjectPlan;
use crate::settings::SyncSettings;
use crate::source::Page;
use sfpg_control::objects::{ObjectState, Phase};

pub use bulk::{JobSweep, JobWatch, MAX_JOB_FAILURES};

/// One request's worth of work for an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Task {
    /// Describe the object: create its table, or evolve it.
    Describe,
    /// Count its records: the backfill's total, taken after the snapshot time.
    Count,
    /// Copy the next page of records.
    Backfill,
    /// Fill in fields added after the backfill, a page at a time.
    FieldBackfill,
    /// Read the next page of changes (`queryAll`).
    Changes,
    /// Read `deleted/` for deletes that never showed up as soft deletes.
    Deleted,
    /// Compare the next page of Ids with the mirror's.
    Reconcile,
    /// Re-read the next page of formula fields.
    Formulas,
    /// Read again the records whose rows were locked when their page was written, once
    /// their rows are free.
    Locked,
    /// One request of the object's Bulk API 2.0 query job (a backfill, or a catch-up):
    /// create it, ask how it is doing, or read and write its next page.
    Bulk,
    /// Count the incremental backlog: above the org's bulk threshold, it is read through a
    /// query job.
    Backlog,
}

impl Task {
    /// Whether this is maintenance, as opposed to the object's main work.
    pub fn is_maintenance(self) -> bool {
        matches!(
            self,
            Task::Describe
                | Task::FieldBackfill
                | Task::Deleted
                | Task::Reconcile
                | Task::Formulas
                | Task::Locked
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Task::Describe => "describe",
            Task::Count => "count",
            Task::Backfill => "backfill",
            Task::FieldBackfill => "field backfill",
            Task::Changes => "changes",
            Task::Deleted => "deleted",
            Task::Reconcile => "reconcile",
            Task::Formulas => "formulas",
            Task::Locked => "locked records",
            Task::Bulk => "bulk job",
            Task::Backlog => "backlog count",
        }
    }
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A sweep over all of an object's Ids, one page per turn, kept in memory: after a restart
/// it starts over, which costs requests but never correctness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sweep {
    /// The last Id covered; `None` before the first page.
    pub after: Option<SalesforceId>,
    /// When the sweep began: what `reconciled_at` or `formulas_refreshed_at` becomes.
    pub started_at: DateTime<Utc>,
}

impl Sweep {
    pub fn start(now: DateTime<Utc>) -> Self {
        Self {
            after: None,
            started_at: now,
        }
    }
}

/// An object of an org being synced.
#[derive(Debug, Clone)]
pub struct ObjectSync {
    /// The saved progress, as last committed.
    pub state: ObjectState,
    /// The fields mirrored; `None` until the first describe.
    pub plan: Option<ObjectPlan>,
    /// Whether the last turn was maintenance (so the next one is main work).
    pub last_was_maintenance: bool,
    /// The kind of maintenance that ran last.
    pub last_maintenance: Option<Task>,
    /// Describe before anything else (a query named a field that is gone).
    pub describe_requested: bool,
    /// A page did not fit the table and a describe was asked for to see why; the same
    /// failure again pauses the object.
    pub redescribed_for_data: bool,
    pub next_describe_at: DateTime<Utc>,
    /// A full Id reconciliation was asked for (the delete log no longer reaches back to
    /// the watermark).
    pub reconcile_requested: bool,
    pub reconcile: Option<Sweep>,
    pub formulas: Option<Sweep>,
    /// After a failed turn, the object rests until then.
    pub resume_at: Option<DateTime<Utc>>,
    /// When the rows of the records owed for a lock (`state.locked_ids`) are looked at
    /// again.
    pub locked_retry_at: DateTime<Utc>,
    /// The next backfill page, read while the previous one was being written.
    pub read_ahead: Option<ReadAhead>,
    /// The query job of `state.bulk`, as far as memory goes.
    pub bulk_job: JobWatch,
    /// A changes page came back full: the backlog is to be counted, to read it through a
    /// query job if it is larger than the org's bulk threshold.
    pub backlog_count_due: bool,
    /// The backlog was counted (or Bulk gave up on it) since the feed was last caught up:
    /// it is not counted again until then.
    pub backlog_counted: bool,
    /// The reconciliation and the formula refresh of an object above the threshold, each
    /// through a query job.
    pub reconcile_job: Option<JobSweep>,
    pub formulas_job: Option<JobSweep>,
    /// The org's Change Data Capture stream keeps the object current: its changes are
    /// polled only every `poll_while_streaming`.
    pub streamed: bool,
    /// Poll the changes at once whatever the cadence (a `GAP_OVERFLOW`).
    pub poll_now: bool,
    /// When the last page of changes was asked for.
    pub changes_polled_at: Option<DateTime<Utc>>,
    /// When the current pass over the changes began (its first page, asked for with no
    /// cursor Id).
    pub changes_pass_started: Option<DateTime<Utc>>,
}

/// A backfill page read ahead of its turn. It is used only if the backfill is still at the
/// same checkpoint and asks for the same fields; a crash simply loses it.
#[derive(Debug, Clone)]
pub struct ReadAhead {
    /// The checkpoint the page follows.
    pub after: Option<String>,
    /// The fields it was read with.
    pub fields: Vec<String>,
    pub page: Page,
}

impl ObjectSync {
    /// Resumes an object from its saved row: the stored plan is used as is, and describe
    /// runs again when its timer says so.
    pub fn resume(state: ObjectState, schema: &str, settings: &SyncSettings) -> Result<Self> {
        let plan = match state.phase {
            Phase::Describing => None,
            Phase::Backfilling | Phase::Live => Some(ObjectPlan::from_stored(
                &state.object,
                schema,
                &state.table,
                state.mirrored_fields.clone(),
            )?),
        };
        let next_describe_at = match state.describe_modified_at {
            Some(described) => described + chrono_duration(settings.describe_interval),
            None => Utc::now(),
        };
        Ok(Self {
            plan,
            last_was_maintenance: false,
            last_maintenance: None,
            describe_requested: false,
            redescribed_for_data: false,
            next_describe_at,
            reconcile_requested: false,
            reconcile: None,
            formulas: None,
            resume_at: None,
            locked_retry_at: Utc::now(),
            read_ahead: None,
            // A saved locator means the job was complete: its next page can be read.
            bulk_job: JobWatch::new(
                state.bulk.as_ref().is_some_and(|b| b.locator.is_some()),
                settings.bulk_poll_cap,
            ),
            backlog_count_due: false,
            backlog_counted: false,
            reconcile_job: None,
            formulas_job: None,
            streamed: false,
            poll_now: false,
            changes_polled_at: None,
            changes_pass_started: None,
            state,
        })
    }

    /// The object's name.
    pub fn name(&self) -> &str {
        &self.state.object
    }

    /// What this object would do with a turn now, if anything.
    pub fn next_task(&self, now: DateTime<Utc>, settings: &SyncSettings) -> Option<Task> {
        if !self.state.enabled || self.resume_at.is_some_and(|at| at > now) {
            return None;
        }
        let describe_due = self.describe_requested || self.next_describe_at <= now;
        if self.state.paused_reason.is_some() {
            // A paused object only looks at its metadata again, in case the cause is gone.
            return describe_due.then_some(Task::Describe);
        }
        if self.plan.is_none() || self.state.phase == Phase::Describing || self.describe_requested {
            return Some(Task::Describe);
        }
        let (main, maintenance) = match self.state.phase {
            Phase::Describing => return Some(Task::Describe),
            Phase::Backfilling if self.state.backfill_total.is_none() => (Some(Task::Count), None),
            Phase::Backfilling => (
                self.main_read(now, Task::Backfill, settings),
                [Task::Describe, Task::Locked]
                    .into_iter()
                    .find(|task| self.is_due(*task, now, settings, describe_due)),
            ),
            Phase::Live => (
                self.main_read(now, Task::Changes, settings),
                self.maintenance_due(now, settings, describe_due),
            ),
        };
        match (main, maintenance) {
            (Some(main), Some(_)) if self.last_was_maintenance => Some(main),
            (main, maintenance) => maintenance.or(main),
        }
    }

    /// The main work: the query job while there is one (nothing while it is waited for),
    /// the backlog count when due, else `rest` (REST pages).
    fn main_read(&self, now: DateTime<Utc>, rest: Task, settings: &SyncSettings) -> Option<Task> {
        if self.state.bulk.is_some() {
            return self.bulk_job.is_due(now).then_some(Task::Bulk);
        }
        if rest == Task::Changes && self.backlog_count_due {
            return Some(Task::Backlog);
        }
        if rest == Task::Changes && !self.changes_due(now, settings) {
            return None;
        }
        Some(rest)
    }

    /// Whether the changes are to be polled now: always, unless the org's stream keeps the
    /// object current and the feed is caught up, when only every `poll_while_streaming`
    /// (or at once when asked). A pass that has read past the time it began counts as
    /// caught up then: what changed since is the stream's, and a pass that followed records
    /// changing faster than its pages would poll at the org's rate for as long as they do.
    fn changes_due(&self, now: DateTime<Utc>, settings: &SyncSettings) -> bool {
        let past_its_start = matches!(
            (self.state.cursor_modstamp, self.changes_pass_started),
            (Some(cursor), Some(started)) if cursor >= started
        );
        !self.streamed
            || self.poll_now
            || (self.state.cursor_id.is_some() && !past_its_start)
            || self
                .changes_polled_at
                .is_none_or(|at| at + chrono_duration(settings.poll_while_streaming) <= now)
    }

    /// When the next safety poll of an object the stream keeps current is due.
    pub fn next_safety_poll(&self, settings: &SyncSettings) -> Option<DateTime<Utc>> {
        if !self.streamed || self.state.phase != Phase::Live {
            return None;
        }
        self.changes_polled_at
            .map(|at| at + chrono_duration(settings.poll_while_streaming))
    }

    /// When a job this object waits for is next to be asked about, if one is.
    pub fn next_poll_at(&self) -> Option<DateTime<Utc>> {
        let main = self
            .state
            .bulk
            .as_ref()
            .and_then(|_| self.bulk_job.due_at());
        let sweeps = [&self.reconcile_job, &self.formulas_job]
            .into_iter()
            .flatten()
            .filter_map(|sweep| sweep.watch.due_at());
        main.into_iter().chain(sweeps).min()
    }

    /// The maintenance due now, taking turns: the kind after the one that ran last is
    /// considered first, so a timer that is always due cannot starve the others.
    fn maintenance_due(
        &self,
        now: DateTime<Utc>,
        settings: &SyncSettings,
        describe_due: bool,
    ) -> Option<Task> {
        let start = self
            .last_maintenance
            .and_then(|last| MAINTENANCE.iter().position(|t| *t == last))
            .map_or(0, |i| i + 1);
        (0..MAINTENANCE.len())
            .map(|i| MAINTENANCE[(start + i) % MAINTENANCE.len()])
            .find(|task| self.is_due(*task, now, settings, describe_due))
    }

    fn is_due(
        &self,
        task: Task,
        now: DateTime<Utc>,
        settings: &SyncSettings,
        describe_due: bool,
    ) -> bool {
        match task {
            Task::Describe => describe_due,
            Task::FieldBackfill => !self.state.pending_field_backfill.is_empty(),
            Task::Deleted => self
                .state
                .deleted_watermark
                .is_none_or(|mark| mark + chrono_duration(settings.deleted_interval) <= now),
            Task::Reconcile if self.reconcile_job.is_some() => self
                .reconcile_job
                .as_ref()
                .is_some_and(|sweep| sweep.watch.is_due(now)),
            Task::Formulas if self.formulas_job.is_some() => self
                .formulas_job
                .as_ref()
                .is_some_and(|sweep| sweep.watch.is_due(now)),
            Task::Reconcile => {
                self.reconcile.is_some()
                    || self.reconcile_requested
                    || self
                        .state
                        .reconciled_at
                        .is_none_or(|at| at + chrono_duration(settings.reconcile_interval) <= now)
            }
            Task::Formulas => {
                let Some(interval) = settings.formula_interval else {
                    return false;
                };
                let has_formulas = self
                    .plan
                    .as_ref()
                    .is_some_and(|p| !p.calculated_fields().is_empty());
                has_formulas
                    && (self.formulas.is_some()
                        || self
                            .state
                            .formulas_refreshed_at
                            .is_none_or(|at| at + chrono_duration(interval) <= now))
            }
            Task::Locked => !self.state.locked_ids.is_empty() && self.locked_retry_at <= now,
            Task::Count | Task::Backfill | Task::Changes | Task::Bulk | Task::Backlog => false,
        }
    }

    /// Notes which kind of work a turn did.
    pub fn record_turn(&mut self, task: Task) {
        self.last_was_maintenance = task.is_maintenance();
        if task.is_maintenance() {
            self.last_maintenance = Some(task);
        }
    }
}

/// The kinds of maintenance, in the order they take turns.
const MAINTENANCE: [Task; 6] = [
    Task::Describe,
    Task::FieldBackfill,
    Task::Deleted,
    Task::Reconcile,
    Task::Formulas,
    Task::Locked,
];

/// A `std` duration as chrono's, saturating at chrono's range.
pub fn chrono_duration(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// An Account's state in `phase`, with Id, SystemModstamp and a formula mirrored.
    pub(crate) fn state(phase: Phase) -> ObjectState {
        ObjectState {
            org: "acme".into(),
            object: "Account".into(),
            table: "account".into(),
            enabled: true,
            phase,
            paused_reason: None,
            describe_modified_at: Some(Utc::now()),
            mirrored_fields: sfpg_control::plan::parse_mirrored_fields(
                "Account",
                json!([
                    {"field": "Id", "column": "sfid", "type": "varchar(18)"},
                    {"field": "SystemModstamp", "column": "systemmodstamp", "type": "timestamptz"},
                    {"field": "Total__c", "column": "total__c", "type": "numeric", "calculated": true},
                ]),
            )
            .unwrap(),
            removed_fields: vec![],
            pending_field_backfill: vec![],
            backfill_snapshot: Some(Utc::now()),
            backfill_last_id: None,
            backfill_done: 0,
            backfill_total: Some(10),
            cursor_modstamp: None,
            cursor_id: None,
            newest_modstamp: None,
            deleted_watermark: Some(Utc::now()),
            reconciled_at: Some(Utc::now()),
            formulas_refreshed_at: Some(Utc::now()),
            row_count: 0,
            requests: 0,
            last_error: None,
            last_error_at: None,
            last_error_code: None,
            caught_up_at: None,
            generation: 0,
            locked_ids: vec![],
            bulk: None,
        }
    }

    fn object(phase: Phase) -> ObjectSync {
        ObjectSync::resume(state(phase), "acme", &SyncSettings::default()).unwrap()
    }

    #[test]
    fn a_new_object_is_described_first() {
        let settings = SyncSettings::default();
        let mut fresh = state(Phase::Describing);
        fresh.describe_modified_at = None;
        let object = ObjectSync::resume(fresh, "acme", &settings).unwrap();
        assert!(object.plan.is_none());
        assert_eq!(
            object.next_task(Utc::now(), &settings),
            Some(Task::Describe)
        );
    }

    #[test]
    fn a_backfill_counts_then_pages() {
        let settings = SyncSettings::default();
        let mut object = object(Phase::Backfilling);
        object.state.backfill_total = None;
        assert_eq!(object.next_task(Utc::now(), &settings), Some(Task::Count));
        object.state.backfill_total = Some(10);
        assert_eq!(
            object.next_task(Utc::now(), &settings),
            Some(Task::Backfill)
        );
    }

    #[test]
    fn maintenance_alternates_with_polling() {
        let settings = SyncSettings {
            describe_interval: Duration::ZERO,
            ..SyncSettings::default()
        };
        let mut object = object(Phase::Live);
        object.next_describe_at = Utc::now();
        assert_eq!(
            object.next_task(Utc::now(), &settings),
            Some(Task::Describe)
        );
        object.last_was_maintenance = true;
        assert_eq!(object.next_task(Utc::now(), &settings), Some(Task::Changes));
        object.last_was_maintenance = false;
        object.next_describe_at = Utc::now() + chrono::Duration::hours(1);
        object.state.pending_field_backfill = vec!["Due__c".into()];
        assert_eq!(
            object.next_task(Utc::now(), &settings),
            Some(Task::FieldBackfill)
        );
        object.state.pending_field_backfill.clear();
        object.state.deleted_watermark = Some(Utc::now() - chrono::Duration::hours(1));
        assert_eq!(object.next_task(Utc::now(), &settings), Some(Task::Deleted));
        object.state.deleted_watermark = Some(Utc::now());
        object.reconcile_requested = true;
        assert_eq!(
            object.next_task(Utc::now(), &settings),
            Some(Task::Reconcile)
        );
        object.reconcile_requested = false;
        assert_eq!(object.next_task(Utc::now(), &settings), Some(Task::Changes));
    }

    #[test]
    fn formulas_refresh_only_when_asked_for() {
        let mut object = object(Phase::Live);
        object.state.formulas_refreshed_at = None;
        let off = SyncSettings::default();
        assert_eq!(object.next_task(Utc::now(), &off), Some(Task::Changes));
        let on = SyncSettings {
            formula_interval: Some(Duration::from_secs(60)),
            ..SyncSettings::default()
        };
        assert_eq!(object.next_task(Utc::now(), &on), Some(Task::Formulas));
    }

    #[test]
    fn paused_and_resting_objects_wait() {
        let settings = SyncSettings::default();
        let mut object = object(Phase::Live);
        object.state.paused_reason = Some("Account.Name changed type".into());
        assert_eq!(object.next_task(Utc::now(), &settings), None);
        object.next_describe_at = Utc::now() - chrono::Duration::seconds(1);
        assert_eq!(
            object.next_task(Utc::now(), &settings),
            Some(Task::Describe)
        );
        object.state.paused_reason = None;
        object.resume_at = Some(Utc::now() + chrono::Duration::seconds(30));
        assert_eq!(object.next_task(Utc::now(), &settings), None);
        object.state.enabled = false;
        object.resume_at = None;
        assert_eq!(object.next_task(Utc::now(), &settings), None);
    }

    #[test]
    fn a_safety_poll_of_a_streamed_object_stops_chasing_once_past_its_start() {
        let settings = SyncSettings::default();
        let mut object = object(Phase::Live);
        object.state.deleted_watermark = Some(Utc::now());
        object.state.reconciled_at = Some(Utc::now());
        let started = Utc::now() - chrono::Duration::seconds(30);
        object.streamed = true;
        object.changes_polled_at = Some(Utc::now());
        object.changes_pass_started = Some(started);
        // Behind its start: the pass goes on at the org's rate.
        object.state.cursor_modstamp = Some(started - chrono::Duration::seconds(5));
        object.state.cursor_id = Some("001000000000001AAA".into());
        assert_eq!(object.next_task(Utc::now(), &settings), Some(Task::Changes));
        // Past it, with records still changing faster than its pages: whatever changed
        // since the pass began is the stream's; the next page waits for the safety cadence.
        object.state.cursor_modstamp = Some(started + chrono::Duration::seconds(1));
        assert_eq!(object.next_task(Utc::now(), &settings), None);
        // The stream down: the poll is the only source again.
        object.streamed = false;
        assert_eq!(object.next_task(Utc::now(), &settings), Some(Task::Changes));
    }
}
