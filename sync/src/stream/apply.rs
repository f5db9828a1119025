//! Applies Salesforce transactions to the mirror: each batch of whole transactions in one
//! PostgreSQL transaction, through the one mirror writer (its version guard included), with
//! the replay id saved in that same transaction. Events at or below the saved replay id
//! were applied before (a crash after the commit, a reconnect that delivers again) and are
//! skipped, so nothing is lost or doubled.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sfpg_control::streams::{Advance, Checkpoint};
use sfpg_control::writer::{self, OnLocked, Patches, Rows, Write, WriteStrategy};
use sfpg_salesforce::Record;

use super::change::{Change, ChangeKind};
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
/// `db`, and saves the last replay id with it.
pub async fn apply_batch(
    db: &mut tokio_postgres::Client,
    org: &str,
    plans: &Plans,
    batch: &[Transaction],
    lock_timeout: Duration,
) -> Result<BatchApplied> {
    let transaction = writer::begin(db, Some(lock_timeout)).await?;
    let saved = Checkpoint::load_for_update(&transaction, org).await?;
    let mut applied = BatchApplied::default();
    let mut last: Option<&Change> = None;
    let mut gaps = 0;
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
        match change.kind {
            ChangeKind::Gap => {
                gaps += 1;
                applied.read_again.extend(
                    change
                        .record_ids
                        .iter()
                        .map(|id| (change.entity.clone(), id.clone())),
                );
            }
            ChangeKind::Overflow => {
                gaps += 1;
                applied.overflowed.insert(change.entity.clone());
            }
            _ => {
                // An object the org does not mirror (or not yet) is not written; its events
                // still move the checkpoint.
                let Some(plan) = plans.get(&change.entity) else {
                    continue;
                };
                let records = change.records();
                let done = apply_change(&transaction, plan, change, &records).await?;
                applied.written += done;
                if change.name_parts_changed
                    && change.kind == ChangeKind::Update
                    && plan.fields.iter().any(|f| f.field == "Name")
                {
                    applied.read_again.extend(
                        change
                            .record_ids
                            .iter()
                            .map(|id| (change.entity.clone(), id.clone())),
                    );
                }
            }
        }
    }
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

/// Writes one event's records to `plan`'s table.
async fn apply_change(
    transaction: &tokio_postgres::Transaction<'_>,
    plan: &ObjectPlan,
    change: &Change,
    records: &[Record],
) -> Result<u64> {
    let object = plan.object.as_str();
    let write = match change.kind {
        ChangeKind::Delete => Write::Delete(change.record_ids.clone()),
        // An echo of a create through the proxy only updates the row the proxy's write-back
        // brings: inserting it here could take its sfid before the write-back, whose own
        // row would then collide with it.
        ChangeKind::Create if change.echo => {
            Write::Patch(Patches::from_records(object, &plan.fields, records)?)
        }
        // Every non-null field: those the event lacks are NULL. Formula fields are never
        // published; their columns are left to the formula refresh.
        ChangeKind::Create | ChangeKind::Undelete => {
            let fields: Vec<&MirroredField> =
                plan.fields.iter().filter(|f| !f.calculated).collect();
            Write::Upsert(Rows::from_records(object, fields, records)?)
        }
        ChangeKind::Update => Write::Patch(Patches::from_records(object, &plan.fields, records)?),
        ChangeKind::Gap | ChangeKind::Overflow => return Ok(0),
    };
    // A row a client holds locked is waited for (within the lock timeout, after which the
    // batch is tried again): the stream has nowhere to keep an event for later.
    let applied = writer::apply(
        transaction,
        plan,
        &[write],
        WriteStrategy::Unnest,
        OnLocked::Wait,
    )
    .await?;
    Ok(applied.written + applied.deleted)
}
