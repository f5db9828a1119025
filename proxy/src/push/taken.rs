//! A transaction's captured changes as a push keeps them: taken from
//! `sfpg.take_pending_changes` a page of rows at a time (migration V21: a row's changes never
//! straddle two pages), each page reduced to its rows' net changes with their images cut to
//! what planning reads ([`plan::compact`]), and, of the rows a bulk push may have to put
//! back, the image from before the transaction kept as JSON text. Parsed whole, a
//! Contact's change held about 20 KB (two maps of 52 columns), and the whole transaction's
//! answer was one text held with its parse.

use std::collections::HashMap;

use sfpg_control::capture::{Operation as Captured, PendingChange, parse_pending};
use tokio_postgres::error::SqlState;

use super::Refusal;
use super::commit::Stop;
use super::plan;
use crate::backend::statements::Upstream;

/// Rows of captured changes taken at a time: a page's text and parse are held until it is
/// reduced (about 20 KB a row of 50 columns at the most).
const TAKE_ROWS: u32 = 1_000;

/// A row: its table's OID and its local id.
type RowKey = (u32, i64);

/// The images from before the transaction of the rows a bulk push may have to restore
/// (those it updated or deleted and did not create), as JSON text: of an update, the
/// columns the transaction changed (a restore sets those and leaves the others, which it
/// did not change); of a delete, the whole row, which a restore inserts again.
#[derive(Debug, Default)]
pub struct RowsBefore(HashMap<RowKey, Box<str>>);

impl RowsBefore {
    /// The image of row `row_id` of table `table_oid` before the transaction.
    pub fn get(&self, table_oid: u32, row_id: i64) -> Option<&str> {
        self.0.get(&(table_oid, row_id)).map(|row| &**row)
    }
}

/// The captured changes of a transaction, ready to plan.
#[derive(Debug, Default)]
pub struct TakenChanges {
    /// One change per net change of a row, in the order of each one's first change. An old
    /// image holds only its `sfid` (all the plan reads of it).
    pub changes: Vec<PendingChange>,
    /// Of each row the transaction did not create, its image before the transaction.
    pub before: RowsBefore,
}

impl TakenChanges {
    /// Adds a page of changes: every change of each of its rows, oldest first.
    fn add_page(&mut self, page: &[PendingChange]) -> Result<(), serde_json::Error> {
        for mut change in plan::compact(page) {
            let key = (change.table_oid, change.row_id.unwrap_or_default());
            if change.operation != Captured::Insert
                && let Some(old) = &change.old
                && !self.before.0.contains_key(&key)
            {
                self.before
                    .0
                    .insert(key, serde_json::to_string(old)?.into_boxed_str());
            }
            change.old = change.old.take().map(|old| {
                old.into_iter()
                    .filter(|(column, _)| column == "sfid")
                    .collect()
            });
            self.changes.push(change);
        }
        Ok(())
    }
}

/// Takes the transaction's captured changes with its push `ticket`, a page of rows at a
/// time, each page reduced before the next is taken.
pub(super) async fn take<U: Upstream>(
    upstream: &mut U,
    ticket: &str,
) -> Result<TakenChanges, Stop> {
    let unreadable = |error: serde_json::Error| {
        Refusal::new(
            SqlState::INTERNAL_ERROR,
            format!("sfpg proxy: cannot read the captured changes: {error}"),
        )
    };
    let mut taken = TakenChanges::default();
    let mut after = None;
    loop {
        let text = upstream
            .take_pending_changes(ticket, TAKE_ROWS, after)
            .await?;
        let page = parse_pending(text.as_deref().unwrap_or("[]")).map_err(unreadable)?;
        drop(text);
        let rows = rows_in(&page);
        after = last_row(&page).or(after);
        taken.add_page(&page).map_err(unreadable)?;
        if rows < TAKE_ROWS as usize {
            break;
        }
    }
    // Each page is in capture order; planning reads the whole in capture order too.
    taken.changes.sort_by_key(|change| change.seq);
    Ok(taken)
}

/// The page's last row (table OID and local id), where the next page starts after.
fn last_row(page: &[PendingChange]) -> Option<(u32, i64)> {
    page.iter()
        .filter_map(|c| c.row_id.map(|row| (c.table_oid, row)))
        .max()
}

/// How many rows a page holds changes of: fewer than asked for, it was the last.
fn rows_in(page: &[PendingChange]) -> usize {
    let mut rows: Vec<(u32, Option<i64>)> = page.iter().map(|c| (c.table_oid, c.row_id)).collect();
    rows.sort_unstable();
    rows.dedup();
    rows.len()
}

#[cfg(test)]
mod tests;
