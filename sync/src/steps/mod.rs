//! The work of one turn, one module per kind: each sends one request to Salesforce, then
//! writes what it learned and the object's new progress in one transaction.

mod backfill;
mod deletes;
mod describe;
mod formulas;
mod incremental;

use std::time::Duration;

use chrono::{DateTime, Utc};
use sfpg_salesforce::{Client, SalesforceId};
use tokio_postgres::Transaction;

use crate::error::{Result, SyncError};
use crate::object::{ObjectSync, Task};
use crate::plan::{ObjectPlan, SYSTEM_MODSTAMP_FIELD};
use crate::settings::SyncSettings;
use crate::source::Source;
use crate::state::{ObjectState, OrgSettings};
use crate::write::{self, Rows};

/// What a step works with.
pub struct Context<'a> {
    /// The org's Salesforce client (background priority, the org's rate limiter).
    pub client: &'a Client,
    /// Where records come from.
    pub source: &'a dyn Source,
    /// The mirror database.
    pub db: &'a mut tokio_postgres::Client,
    pub org: &'a OrgSettings,
    pub settings: &'a SyncSettings,
    /// Whether this step may hold a page read ahead: one object of the org at a time does,
    /// which bounds the memory read-ahead takes to one page per org.
    pub may_read_ahead: bool,
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
        Task::Reconcile => deletes::reconcile(context, object).await,
        Task::Formulas => formulas::refresh(context, object).await,
    }
}

/// A change to the mirror, applied inside the step's transaction.
pub enum Write<'p> {
    /// Insert or update whole records.
    Upsert(Rows<'p>),
    /// Insert whole records that are not expected to be mirrored yet (update any that are).
    InsertNew(Rows<'p>),
    /// Update some columns of existing rows.
    UpdateColumns(Rows<'p>),
    /// Delete rows by Salesforce Id.
    Delete(Vec<String>),
    /// Delete the rows in an Id range that Salesforce no longer has.
    DeleteAbsent {
        after: Option<String>,
        upto: Option<String>,
        present: Vec<String>,
        modified_before: DateTime<Utc>,
    },
}

/// What the writes of a step did to the mirror.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    pub inserted: u64,
    pub written: u64,
    pub deleted: u64,
}

async fn apply(
    transaction: &Transaction<'_>,
    plan: &ObjectPlan,
    writes: &[Write<'_>],
    settings: &SyncSettings,
) -> Result<Applied> {
    let mut applied = Applied::default();
    for change in writes {
        match change {
            Write::Upsert(rows) => {
                let upserted =
                    write::upsert(transaction, plan, rows, settings.write_strategy).await?;
                applied.inserted += upserted.inserted;
                applied.written += upserted.written;
            }
            Write::InsertNew(rows) => {
                let upserted =
                    write::insert_new(transaction, plan, rows, settings.write_strategy).await?;
                applied.inserted += upserted.inserted;
                applied.written += upserted.written;
            }
            Write::UpdateColumns(rows) => {
                applied.written += write::update_columns(transaction, plan, rows).await?
            }
            Write::Delete(ids) => applied.deleted += write::delete(transaction, plan, ids).await?,
            Write::DeleteAbsent {
                after,
                upto,
                present,
                modified_before,
            } => {
                let range = write::IdRange {
                    after: after.as_deref(),
                    upto: upto.as_deref(),
                };
                applied.deleted +=
                    write::delete_absent(transaction, plan, range, present, *modified_before)
                        .await?;
            }
        }
    }
    Ok(applied)
}

/// Writes `writes` and the object's next state (computed from what the writes did) in one
/// transaction. A lock held by a proxy client makes the attempt time out; it is tried again
/// a few times, with the same page, before the step gives up.
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
            let transaction = write::begin(context.db, context.settings.lock_timeout).await?;
            let applied = apply(&transaction, plan, writes, context.settings).await?;
            let state = next_state(&applied);
            state.save(&transaction).await?;
            transaction.commit().await?;
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
        .ok_or_else(|| SyncError::Control(format!("{object}'s SystemModstamp was not read")))?;
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
        SyncError::Control(format!(
            "{} has no plan yet; it must be described first",
            object.name()
        ))
    })
}
