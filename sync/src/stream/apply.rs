//! Applies Salesforce transactions to the mirror: each batch of whole transactions in one
//! PostgreSQL transaction, through the one mirror writer (its version guard included), with
//! the replay id saved in that same transaction. Events at or below the saved replay id
//! were applied before (a crash after the commit, a reconnect that delivers again) and are
//! skipped, so nothing is lost or doubled.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sfpg_control::leases::{self, Fence};
use sfpg_control::streams::{Advance, Checkpoint};
use sfpg_control::writer::{self, OnLocked, Patches, Rows, Write, WriteStrategy};

use super::change::{Change, ChangeKind};
use super::segment::{Segment, WriteKind};
use super::transactions::Transaction;
use crate::error::Result;
use crate::plan::{MirroredField, ObjectPlan};

/// The plans of the objects the stream writes, by lower-case object name.
#[derive(Debug, Clone, Default)]
pub struct Plans {
    by_name: HashMap<String, ObjectPlan>,
}

impl Plans {
    pub fn new(plans: impl IntoIterator<Item = ObjectPlan>) -> Self {
        Self {
            by_name: plans
                .into_iter()
                .map(|p| (p.object.to_ascii_lowercase(), p))
                .collect(),
        }
    }

    pub fn get(&self, object: &str) -> Option<&ObjectPlan> {
        self.by_name.get(&object.to_ascii_lowercase())
    }

    /// The objects, by their API names.
    pub fn objects(&self) -> Vec<String> {
        self.by_name.values().map(|p| p.object.clone()).collect()
    }
}

/// What applying a batch did, and what it leaves to do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchApplied {
    /// Events applied, and of those sfpg's own echoes.
    pub events: i64,
    pub echoes: i64,
    /// Events skipped: at or below the saved replay id.
    pub skipped: i64,
    /// Rows written or deleted.
    pub written: u64,
    /// Records to read again, by object: those a `GAP_*` event names, and those whose
    /// compound `Name` changed in part.
    pub read_again: Vec<(String, String)>,
    /// Objects a `GAP_OVERFLOW` event names: to catch up by polling.
    pub overflowed: BTreeSet<String>,
    /// The replay id saved, if the batch moved it.
    pub saved: Option<i64>,
    /// The newest `commitTimestamp` applied.
    pub newest_commit: Option<DateTime<Utc>>,
}

/// Applies `batch` (whole transactions, in replay order) for `org`, in one transaction on
/// `db`, and saves the last replay id with it. Consecutive events on distinct records are
/// written together ([`Segment`]), one statement per object and kind of write.
pub async fn apply_batch(
    db: &mut tokio_postgres::Client,
    fence: Option<&Fence>,
    org: &str,
    plans: &Plans,
    batch: &[Transaction],
    lock_timeout: Duration,
) -> Result<BatchApplied> {
    let transaction = leases::begin(db, fence, Some(lock_timeout)).await?;
    let saved = Checkpoint::load_for_update(&transaction, org).await?;
    let mut applied = BatchApplied::default();
    let mut last: Option<&Change> = None;
    let mut gaps = 0;
    let mut segment = Segment::default();
    for change in batch.iter().flat_map(|t| &t.changes) {
        if saved
            .replay_id
            .is_some_and(|saved| change.replay_id <= saved)
        {
            applied.skipped += 1;
            continue;
        }
        applied.events += 1;
        applied.echoes += i64::from(change.echo);
        if last.is_none_or(|l| change.replay_id >= l.replay_id) {
            last = Some(change);
        }
        if change_needs(&mut applied, plans, change) {
            gaps += 1;
        }
        // An object the org does not mirror (or not yet) is not written; its events still
        // move the checkpoint.
        let Some(plan) = plans.get(&change.entity) else {
            continue;
        };
        if segment.touches(&plan.object, change) {
            applied.written += write_segment(&transaction, plans, &mut segment).await?;
        }
        segment.push(&plan.object, change);
    }
    applied.written += write_segment(&transaction, plans, &mut segment).await?;
    if let Some(last) = last {
        Checkpoint::advance(
            &transaction,
            org,
            &Advance {
                replay_id: last.replay_id,
                commit_at: last.commit_at(),
                events: applied.events,
                echoes: applied.echoes,
                gaps,
            },
        )
        .await?;
        applied.saved = Some(last.replay_id);
        applied.newest_commit = Some(last.commit_at());
    }
    transaction.commit().await?;
    Ok(applied)
}

/// Notes what `change` leaves to do after the batch: records to read again (a `GAP_*`
/// event, a compound `Name` changed in part), an object to poll (`GAP_OVERFLOW`). Whether
/// it is a gap.
fn change_needs(applied: &mut BatchApplied, plans: &Plans, change: &Change) -> bool {
    let these_records = || {
        change
            .record_ids
            .iter()
            .map(|id| (change.entity.clone(), id.clone()))
    };
    match change.kind {
        ChangeKind::Gap => {
            applied.read_again.extend(these_records());
            true
        }
        ChangeKind::Overflow => {
            applied.overflowed.insert(change.entity.clone());
            true
        }
        ChangeKind::Update
            if change.name_parts_changed
                && plans
                    .get(&change.entity)
                    .is_some_and(|plan| plan.fields.iter().any(|f| f.field == "Name")) =>
        {
            applied.read_again.extend(these_records());
            false
        }
        _ => false,
    }
}

/// Writes what `segment` holds, one statement per object and kind of write, and empties
/// it; returns the rows written or deleted.
async fn write_segment(
    transaction: &tokio_postgres::Transaction<'_>,
    plans: &Plans,
    segment: &mut Segment,
) -> Result<u64> {
    let mut written = 0;
    for ((object, kind), group) in segment.take() {
        let Some(plan) = plans.get(&object) else {
            continue;
        };
        let write = match kind {
            WriteKind::Delete => Write::Delete(group.ids),
            WriteKind::Patch => Write::Patch(Patches::from_records(
                &object,
                &plan.fields,
                &group.records,
            )?),
            // Every non-null field: those the event lacks are NULL. Formula fields are
            // never published; their columns are left to the formula refresh.
            WriteKind::Upsert => {
                let fields: Vec<&MirroredField> =
                    plan.fields.iter().filter(|f| !f.calculated).collect();
                Write::Upsert(Rows::from_records(&object, fields, &group.records)?)
            }
        };
        // A row a client holds locked is waited for (within the lock timeout, after which
        // the batch is tried again): the stream has nowhere to keep an event for later.
        let done = writer::apply(
            transaction,
            plan,
            &[write],
            WriteStrategy::Unnest,
            OnLocked::Wait,
        )
        .await?;
        written += done.written + done.deleted;
    }
    Ok(written)
}
