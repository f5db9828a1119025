//! A transaction's captured changes as a push takes them: from
//! `sfpg.take_pending_changes` a page of rows at a time (migration V21: a row's changes never
//! straddle two pages), each page reduced to its rows' net changes with their images cut to
//! what planning reads ([`plan::compact`]) and planned ([`Planner`]) before the next is
//! taken; of the rows a bulk push may have to put back, the image from before the
//! transaction is kept as JSON text. Parsed whole, a Contact's change held about 20 KB (two
//! maps of 52 columns), and the whole transaction's answer was one text held with its
//! parse; reduced but kept until planned, 100,000 one-column updates held 125 MB beside
//! their plan.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use futures::FutureExt;

use sfpg_control::capture::{Operation as Captured, PendingChange, parse_pending};
use tokio_postgres::error::SqlState;

use super::Refusal;
use super::commit::{Remote, Stop, canceled};
use super::plan::{self, Plan, Planner};
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

    /// Reduces `page` (every change of each of its rows, oldest first) to its rows' net
    /// changes ([`plan::compact`]), keeping the image before the transaction of each row a
    /// bulk push may restore.
    fn keep_page(
        &mut self,
        page: &[PendingChange],
    ) -> Result<Vec<PendingChange>, serde_json::Error> {
        let reduced = plan::compact(page);
        for change in &reduced {
            let key = (change.table_oid, change.row_id.unwrap_or_default());
            if change.operation != Captured::Insert
                && let Some(old) = &change.old
                && !self.0.contains_key(&key)
            {
                self.0
                    .insert(key, serde_json::to_string(old)?.into_boxed_str());
            }
        }
        Ok(reduced)
    }
}

/// A transaction's captured changes, taken and planned.
#[derive(Debug, Default)]
pub struct Taken {
    /// Whether the transaction captured any change.
    pub captured: bool,
    /// What to send; `None` when nothing needs sending (only local columns changed).
    pub plan: Option<Plan>,
    /// Of each row the transaction did not create, its image before the transaction.
    pub before: RowsBefore,
}

/// Takes the transaction's captured changes with its push `ticket`, a page of rows at a
/// time, and has `remote` plan each page before the next is taken: the changes are never
/// all held, only the plan and the images a bulk push may restore. `cancelled` (the
/// client's CancelRequest) stops it between pages: nothing has been sent.
pub(super) async fn take<U: Upstream, R: Remote>(
    upstream: &mut U,
    ticket: &str,
    remote: &R,
    cancelled: &mut Pin<&mut impl Future<Output = ()>>,
) -> Result<Taken, Stop> {
    let unreadable = |error: serde_json::Error| {
        Refusal::new(
            SqlState::INTERNAL_ERROR,
            format!("sfpg proxy: cannot read the captured changes: {error}"),
        )
    };
    let mut taken = Taken::default();
    let mut planner = Planner::default();
    let mut after = None;
    loop {
        let text = upstream
            .take_pending_changes(ticket, TAKE_ROWS, after)
            .await?;
        let page = parse_pending(text.as_deref().unwrap_or("[]")).map_err(unreadable)?;
        drop(text);
        let rows = rows_in(&page);
        after = last_row(&page).or(after);
        taken.captured |= !page.is_empty();
        let reduced = taken.before.keep_page(&page).map_err(unreadable)?;
        drop(page);
        if !reduced.is_empty() {
            tokio::select! {
                biased;
                () = cancelled.as_mut() => return Err(nothing_sent().into()),
                planned = remote.plan_page(&reduced, &mut planner) => planned?,
            }
        }
        if rows < TAKE_ROWS as usize {
            break;
        }
    }
    // A cancel that came during the last page's statement.
    if cancelled.as_mut().now_or_never().is_some() {
        return Err(nothing_sent().into());
    }
    taken.plan = planner.finish()?;
    Ok(taken)
}

fn nothing_sent() -> Refusal {
    canceled("Nothing was sent to Salesforce; the transaction was rolled back.")
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
