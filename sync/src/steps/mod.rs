//! The work of one turn, one module per kind: each sends one request to Salesforce, then
//! writes what it learned and the object's new progress in one transaction.

mod backfill;
mod bulk;
mod deletes;
mod describe;
mod formulas;
mod incremental;
mod locked;

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sfpg_salesforce::{Client, SalesforceId};

use crate::error::{Result, SyncError};
use crate::object::{ObjectSync, Task};
use crate::plan::{IS_DELETED_FIELD, ObjectPlan, SYSTEM_MODSTAMP_FIELD};
use crate::settings::SyncSettings;
use crate::source::Source;
use sfpg_control::leases::{self, Fence};
use sfpg_control::objects::ObjectState;
use sfpg_control::orgs::OrgSettings;
use sfpg_control::writer::{self, Applied, OnLocked, Rows, Write};

/// What a step works with.
pub struct Context<'a> {
    /// The org's Salesforce client (background priority, the org's rate limiter).
    pub client: &'a Client,
    /// Where records come from.
    pub source: &'a dyn Source,
    /// The mirror database.
    pub db: &'a mut tokio_postgres::Client,
    /// The org's lease, which every write checks ([`Context::begin`]).
    pub fence: Option<&'a Fence>,
    pub org: &'a OrgSettings,
    pub settings: &'a SyncSettings,
    /// Whether this step may hold a page read ahead: one object of the org at a time does,
    /// which bounds the memory read-ahead takes to one page per org.
    pub may_read_ahead: bool,
}

impl Context<'_> {
    /// Saves `state` alone, under the org's lease.
    pub async fn save(&mut self, state: &ObjectState) -> Result<()> {
        let transaction = begin(self.db, self.fence, self.settings).await?;
        state.save(&transaction).await?;
        transaction.commit().await?;
        Ok(())
    }
}

/// Opens a write transaction for the org (sync origin, the lock timeout), checked by the
/// org's lease: `begin(context.db, context.fence, context.settings)`.
pub async fn begin<'c>(
    db: &'c mut tokio_postgres::Client,
    fence: Option<&Fence>,
    settings: &SyncSettings,
) -> Result<tokio_postgres::Transaction<'c>> {
    Ok(leases::begin(db, fence, Some(settings.lock_timeout)).await?)
}

/// What a finished step did, for logs and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Records Salesforce sent.
    pub received: u64,
    /// Mirror rows inserted or changed.
    pub written: u64,
    /// Mirror rows deleted.
    pub deleted: u64,
}

/// Runs `task` for `object`: one request, one transaction. On success the object's state is
/// the committed one; on failure it is unchanged.
pub async fn run(
    context: &mut Context<'_>,
    object: &mut ObjectSync,
    task: Task,
) -> Result<Outcome> {
    match task {
        Task::Describe => describe::describe(context, object).await,
        Task::Count => backfill::count(context, object).await,
        Task::Backfill => backfill::page(context, object).await,
        Task::FieldBackfill => backfill::field_page(context, object).await,
        Task::Changes => incremental::changes(context, object).await,
        Task::Deleted => deletes::deleted(context, object).await,
        Task::Reconcile if bulk::sweeps::reconciles_in_bulk(context, object) => {
            bulk::sweeps::reconcile(context, object).await
        }
        Task::Reconcile => deletes::reconcile(context, object).await,
        Task::Formulas if bulk::sweeps::refreshes_in_bulk(context, object) => {
            bulk::sweeps::formulas(context, object).await
        }
        Task::Formulas => formulas::refresh(context, object).await,
        Task::Locked => locked::retry(context, object).await,
        Task::Bulk => bulk::turn(context, object).await,
        Task::Backlog => incremental::backlog(context, object).await,
    }
}

/// The records a step owes after `writes`: those it owed before (`owed`), less those the
/// writes brought up to date whole (an upsert of the record as Salesforce has it now, or
/// its delete), plus those they left out for a lock.
fn still_owed(owed: &[String], writes: &[Write<'_>], applied: &Applied) -> Vec<String> {
    let mut settled: HashSet<&str> = HashSet::new();
    if !owed.is_empty() {
        for change in writes {
            match change {
                Write::Upsert(rows) | Write::InsertNew(rows) => settled.extend(rows.ids()),
                Write::Delete(ids) => settled.extend(ids.iter().map(String::as_str)),
                Write::UpdateColumns(_) | Write::Patch(_) | Write::DeleteAbsent { .. } => {}
            }
        }
    }
    let locked: HashSet<&str> = applied.locked.iter().map(String::as_str).collect();
    let mut still: Vec<String> = owed
        .iter()
        .filter(|id| !settled.contains(id.as_str()) || locked.contains(id.as_str()))
        .cloned()
        .collect();
    for id in &applied.locked {
        if !still.contains(id) {
            still.push(id.clone());
        }
    }
    still
}

/// Writes `writes` and the object's next state (computed from what the writes did) in one
/// transaction. Records whose rows another session holds locked are left out and kept in
/// the state's `locked_ids`, to be read again once their rows are free. Any other wait for
/// a lock (a table lock, an Id another session is inserting) times out; the attempt is
/// then made again a few times, with the same page, before the step gives up.
pub async fn commit(
    context: &mut Context<'_>,
    object: &mut ObjectSync,
    plan: &ObjectPlan,
    writes: &[Write<'_>],
    next_state: impl Fn(&Applied) -> ObjectState,
) -> Result<Applied> {
    let attempts = context.settings.lock_attempts.max(1);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = async {
            let transaction = begin(context.db, context.fence, context.settings).await?;
            let applied = writer::apply(
                &transaction,
                plan,
                writes,
                context.settings.write_strategy,
                OnLocked::Skip,
            )
            .await?;
            let mut state = next_state(&applied);
            state.locked_ids = still_owed(&state.locked_ids, writes, &applied);
            state.save(&transaction).await?;
            transaction.commit().await?;
            if !applied.locked.is_empty() {
                tracing::info!(object = %plan.object, locked = ?applied.locked, "rows held locked by another session were left for later; the rest is written");
            }
            Ok::<_, SyncError>((applied, state))
        }
        .await;
        match result {
            Ok((applied, state)) => {
                object.state = state;
                return Ok(applied);
            }
            Err(error) if error.is_lock_timeout() && attempt < attempts => {
                tracing::info!(object = %plan.object, attempt, "a mirror row is locked by another session; trying again");
                tokio::time::sleep(Duration::from_millis(100) * attempt).await;
            }
            Err(error) => return Err(error),
        }
    }
}

/// Records read with `queryAll`, split into the live ones and the Ids of those in the
/// recycle bin (`IsDeleted = true`), whose rows are to be deleted.
pub fn live_and_deleted<'p>(read: &Rows<'p>) -> Result<(Rows<'p>, Vec<String>)> {
    let is_deleted: Vec<bool> = match read.values_of(IS_DELETED_FIELD) {
        Some(values) => values.map(|value| value == Some("true")).collect(),
        None => vec![false; read.len()],
    };
    if !is_deleted.contains(&true) {
        return Ok((read.clone(), Vec::new()));
    }
    let (deleted, live): (Vec<usize>, Vec<usize>) = (0..read.len()).partition(|&r| is_deleted[r]);
    let ids: Vec<&str> = read.ids().collect();
    let deleted_ids = deleted.iter().map(|&r| ids[r].to_owned()).collect();
    Ok((read.subset(&live)?, deleted_ids))
}

/// The state after a successful request: one more request, and no error outstanding.
pub fn after_request(state: &ObjectState) -> ObjectState {
    let mut next = state.clone();
    next.requests += 1;
    next.last_error = None;
    next.last_error_at = None;
    next
}

/// A record's Id, from its text.
pub fn parse_id(object: &str, text: &str) -> Result<SalesforceId> {
    SalesforceId::parse(text).map_err(|e| SyncError::MalformedRecord {
        object: object.to_owned(),
        detail: format!("with an unusable Id: {e}"),
    })
}

/// The Id of the last of `rows`.
pub fn last_id(object: &str, rows: &Rows<'_>) -> Result<Option<SalesforceId>> {
    rows.ids().last().map(|id| parse_id(object, id)).transpose()
}

/// A record's `SystemModstamp`, from its text.
pub fn parse_stamp(object: &str, text: Option<&str>) -> Result<DateTime<Utc>> {
    let text = text.unwrap_or_default();
    sfpg_salesforce::datetime::parse(text).ok_or_else(|| SyncError::MalformedRecord {
        object: object.to_owned(),
        detail: format!("with an unusable SystemModstamp {text:?}"),
    })
}

/// The `SystemModstamp` of each of `rows`, which must have been read with it.
pub fn stamps(object: &str, rows: &Rows<'_>) -> Result<Vec<DateTime<Utc>>> {
    let values = rows
        .values_of(SYSTEM_MODSTAMP_FIELD)
        .ok_or_else(|| SyncError::corrupt(format!("{object}'s SystemModstamp was not read")))?;
    values.map(|text| parse_stamp(object, text)).collect()
}

/// The newest of `stamps` and `known`.
pub fn newest_stamp(
    stamps: &[DateTime<Utc>],
    known: Option<DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    stamps.iter().copied().chain(known).max()
}

/// The plan a step works with; only `Describe` runs without one.
pub fn plan_of(object: &ObjectSync) -> Result<ObjectPlan> {
    object.plan.clone().ok_or_else(|| {
        SyncError::corrupt(format!(
            "{} has no plan yet; it must be described first",
            object.name()
        ))
    })
}
