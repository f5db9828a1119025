//! A batch of changes to one table, applied in the caller's transaction: what the sync's
//! steps and the journal's repair hand the writer, and what it did.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;

use super::delete::{IdRange, delete, delete_absent};
use super::locks::{LockFor, skip_locked, skip_locked_ids};
use super::merge::{copy_all_new, update_columns, update_existing, upsert};
use super::partial::Patches;
use super::{Rows, Upserted, WriteStrategy};
use crate::error::ControlError;
use crate::plan::ObjectPlan;

/// A change to the mirror.
#[derive(Debug)]
pub enum Write<'p> {
    /// Insert or update whole records, under the version guard.
    Upsert(Rows<'p>),
    /// Insert whole records that are not expected to be mirrored yet (update any that are,
    /// under the version guard).
    InsertNew(Rows<'p>),
    /// Set some columns of existing rows, without the version guard (values that change
    /// without a new `SystemModstamp`: formulas, a field added to the mirror).
    UpdateColumns(Rows<'p>),
    /// Set the fields each record carries on existing rows, under the version guard (a
    /// partial record: an event that names only what changed).
    Patch(Patches<'p>),
    /// Delete rows by Salesforce Id.
    Delete(Vec<String>),
    /// Delete the rows in an Id range that Salesforce no longer has. Rows another session
    /// holds locked are left and reported, whatever [`OnLocked`] says.
    DeleteAbsent {
        after: Option<String>,
        upto: Option<String>,
        present: Vec<String>,
        modified_before: DateTime<Utc>,
    },
}

/// What a batch of writes does about rows another session holds locked (a client's
/// `SELECT … FOR UPDATE`, or a change through the proxy not yet committed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnLocked {
    /// Leave their records out, without waiting, and report them ([`Applied::locked`]):
    /// the sync, which keeps them and writes them once the rows are free.
    Skip,
    /// Wait for them, as long as the transaction's `lock_timeout` allows: a writer with
    /// nowhere to keep a record for later (the journal's repair).
    Wait,
}

/// What a batch of writes did to the mirror.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    pub inserted: u64,
    pub written: u64,
    pub deleted: u64,
    /// Records left out because another session held their rows locked.
    pub locked: Vec<String>,
}

impl Applied {
    fn upserted(&mut self, upserted: Upserted) {
        self.inserted += upserted.inserted;
        self.written += upserted.written;
    }
}

/// Applies `writes` to `plan`'s table in order, in the transaction open on `client`.
pub async fn apply(
    client: &impl GenericClient,
    plan: &ObjectPlan,
    writes: &[Write<'_>],
    strategy: WriteStrategy,
    on_locked: OnLocked,
) -> Result<Applied, ControlError> {
    let mut applied = Applied::default();
    for change in writes {
        match change {
            Write::Upsert(rows) => {
                let rows = free_rows(client, plan, rows, on_locked, &mut applied).await?;
                applied.upserted(upsert(client, plan, &rows, strategy).await?);
            }
            Write::InsertNew(rows) => {
                // A backfill page is copied in without asking which rows exist (and so
                // without locking any), unless one does.
                if let Some(copied) = copy_all_new(client, plan, rows, strategy).await? {
                    applied.upserted(copied);
                    continue;
                }
                let rows = free_rows(client, plan, rows, on_locked, &mut applied).await?;
                applied.upserted(upsert(client, plan, &rows, strategy).await?);
            }
            Write::UpdateColumns(rows) => {
                let rows = free_rows(client, plan, rows, on_locked, &mut applied).await?;
                applied.written += update_columns(client, plan, &rows).await?;
            }
            Write::Patch(patches) => {
                for rows in patches.groups() {
                    let rows = free_rows(client, plan, rows, on_locked, &mut applied).await?;
                    if !rows.is_empty() {
                        applied.written += update_existing(client, plan, &rows).await?;
                    }
                }
            }
            Write::Delete(ids) => {
                let free = match on_locked {
                    OnLocked::Wait => ids.clone(),
                    OnLocked::Skip => {
                        let (free, locked) =
                            skip_locked_ids(client, plan, ids, LockFor::Delete).await?;
                        applied.locked.extend(locked);
                        free
                    }
                };
                applied.deleted += delete(client, plan, &free).await?;
            }
            Write::DeleteAbsent {
                after,
                upto,
                present,
                modified_before,
            } => {
                let range = IdRange {
                    after: after.as_deref(),
                    upto: upto.as_deref(),
                };
                let (deleted, locked) =
                    delete_absent(client, plan, range, present, *modified_before).await?;
                applied.deleted += deleted;
                applied.locked.extend(locked);
            }
        }
    }
    Ok(applied)
}

/// `rows`, less (with [`OnLocked::Skip`]) the records whose rows another session holds,
/// which are added to `applied.locked`.
async fn free_rows<'a, 'p>(
    client: &impl GenericClient,
    plan: &ObjectPlan,
    rows: &'a Rows<'p>,
    on_locked: OnLocked,
    applied: &mut Applied,
) -> Result<Cow<'a, Rows<'p>>, ControlError> {
    if on_locked == OnLocked::Wait {
        return Ok(Cow::Borrowed(rows));
    }
    let (free, locked) = skip_locked(client, plan, rows, LockFor::Update).await?;
    applied.locked.extend(locked);
    Ok(free.map_or(Cow::Borrowed(rows), Cow::Owned))
}
