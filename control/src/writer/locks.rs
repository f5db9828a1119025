//! Mirror rows that another session holds locked (a client's `SELECT … FOR UPDATE`, or an
//! open transaction that changed them through the proxy). A page's write takes the locks of
//! its rows first without waiting (`SKIP LOCKED`); the records whose rows are taken are left
//! out of the write and reported, so the caller can keep them for later. One locked row thus
//! delays its own record only, never the rest of its page or the object's other pages.

use std::collections::HashSet;
use std::time::Duration;

use tokio_postgres::GenericClient;

use super::{Rows, begin};
use crate::error::ControlError;
use crate::mirror::qualified;
use crate::plan::ObjectPlan;

/// The row lock a write needs: an update leaves the key (`sfid`) alone, a delete does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockFor {
    Update,
    Delete,
}

impl LockFor {
    fn clause(self) -> &'static str {
        match self {
            // The lock an UPDATE of non-key columns takes: a client's `FOR KEY SHARE`
            // (a foreign key check) does not stand in its way.
            LockFor::Update => "FOR NO KEY UPDATE SKIP LOCKED",
            LockFor::Delete => "FOR UPDATE SKIP LOCKED",
        }
    }
}

/// Takes, without waiting, the row locks of the mirror rows of `ids` for this transaction,
/// and returns the Ids whose rows exist but another session holds. The writes that follow
/// in this transaction cannot wait on the rows it did lock.
pub async fn lock_rows(
    client: &impl GenericClient,
    plan: &ObjectPlan,
    ids: &[&str],
    mode: LockFor,
) -> Result<HashSet<String>, ControlError> {
    if ids.is_empty() {
        return Ok(HashSet::new());
    }
    let table = qualified(&plan.schema, &plan.table);
    let sql = format!(
        "WITH free AS (SELECT sfid FROM {table} WHERE sfid = ANY($1::varchar[]) {lock})\n\
         SELECT sfid FROM {table} WHERE sfid = ANY($1::varchar[])\n\
            AND sfid NOT IN (SELECT sfid FROM free)",
        lock = mode.clause(),
    );
    let rows = client.query(&sql, &[&ids]).await?;
    Ok(rows
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?)
}

/// `rows` without the records whose rows another session holds locked (see [`lock_rows`]):
/// `None` when none is, else the records left, and the Ids left out.
pub async fn skip_locked<'p>(
    client: &impl GenericClient,
    plan: &ObjectPlan,
    rows: &Rows<'p>,
    mode: LockFor,
) -> Result<(Option<Rows<'p>>, Vec<String>), ControlError> {
    let ids: Vec<&str> = rows.ids().collect();
    let locked = lock_rows(client, plan, &ids, mode).await?;
    if locked.is_empty() {
        return Ok((None, Vec::new()));
    }
    let free: Vec<usize> = (0..ids.len())
        .filter(|&i| !locked.contains(ids[i]))
        .collect();
    let skipped = ids
        .iter()
        .filter(|id| locked.contains(**id))
        .map(|id| (*id).to_owned())
        .collect();
    Ok((Some(rows.subset(&free)?), skipped))
}

/// `ids` without those whose rows another session holds locked, and those.
pub async fn skip_locked_ids(
    client: &impl GenericClient,
    plan: &ObjectPlan,
    ids: &[String],
    mode: LockFor,
) -> Result<(Vec<String>, Vec<String>), ControlError> {
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let locked = lock_rows(client, plan, &refs, mode).await?;
    Ok(ids.iter().cloned().partition(|id| !locked.contains(id)))
}

/// Which of `ids`' rows another session holds locked right now. Looks in a transaction of
/// its own that is rolled back, so it keeps no lock.
pub async fn still_locked<C: GenericClient>(
    client: &mut C,
    plan: &ObjectPlan,
    ids: &[String],
    lock_timeout: Duration,
) -> Result<HashSet<String>, ControlError> {
    let transaction = begin(client, Some(lock_timeout)).await?;
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let locked = lock_rows(&transaction, plan, &refs, LockFor::Update).await?;
    transaction.rollback().await?;
    Ok(locked)
}

#[cfg(test)]
mod tests;
