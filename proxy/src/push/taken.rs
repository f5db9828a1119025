//! A transaction's captured changes as a push takes them: from
//! `sfpg.take_pending_changes` a page of rows at a time (migration V21: a row's changes never
//! straddle two pages), each page reduced to its rows' net changes with their images cut to
//! what planning reads ([`plan::compact`]) and planned ([`Planner`]) before the next is
//! taken; of the rows a bulk push may have to put back, the image from before the
//! transaction is kept as JSON text, in a spool file beyond one atomic push's rows. Parsed
//! whole, a Contact's change held about 20 KB (two maps of 52 columns), and the whole
//! transaction's answer was one text held with its parse; reduced but kept until planned,
//! 100,000 one-column updates held 125 MB beside their plan.

use std::borrow::Cow;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use futures::FutureExt;

use sfpg_control::capture::{Operation as Captured, PendingChange, parse_pending};
use tokio_postgres::error::SqlState;

use super::Refusal;
use super::commit::{Remote, Stop, canceled};
use super::plan::{self, Plan, Planner, SPOOL_AFTER, Slot, Spool, SpoolError, SpoolWriter};
use super::refusal::unspooled;
use crate::backend::statements::Upstream;

/// Rows of captured changes taken at a time: a page's text and parse are held until it is
/// reduced (about 20 KB a row of 50 columns at the most).
const TAKE_ROWS: u32 = 1_000;

/// A row: its table's OID and its local id.
type RowKey = (u32, i64);

/// The images from before the transaction of the rows a bulk push may have to restore
/// (those it updated or deleted and did not create), as JSON text: of an update, the
/// columns the transaction changed (a restore sets those and leaves the others, which it
/// did not change); of a delete, the whole row, which a restore inserts again. Beyond as
/// many rows as one atomic push carries ([`SPOOL_AFTER`]) they are in a spool file, not in
/// memory: a `DELETE` of a million wide rows would otherwise hold a million whole rows
/// through its push.
#[derive(Debug, Default)]
pub struct RowsBefore {
    images: HashMap<RowKey, Image>,
    spool: Option<Spool>,
}

/// One row's image from before the transaction: its text, or where it is in the spool.
#[derive(Debug)]
enum Image {
    Held(Box<str>),
    Spooled(Slot),
}

impl RowsBefore {
    /// Whether row `row_id` of table `table_oid` has an image from before the transaction.
    pub fn has(&self, table_oid: u32, row_id: i64) -> bool {
        self.images.contains_key(&(table_oid, row_id))
    }

    /// The image of row `row_id` of table `table_oid` before the transaction.
    pub fn get(&self, table_oid: u32, row_id: i64) -> Result<Option<Cow<'_, str>>, SpoolError> {
        match (self.images.get(&(table_oid, row_id)), &self.spool) {
            (None, _) => Ok(None),
            (Some(Image::Held(text)), _) => Ok(Some(Cow::Borrowed(text))),
            (Some(Image::Spooled(slot)), Some(spool)) => {
                spool.read_text(*slot).map(|text| Some(Cow::Owned(text)))
            }
            (Some(Image::Spooled(_)), None) => Err(SpoolError::Read(std::io::Error::other(
                "an image before the transaction is spooled, but there is no spool",
            ))),
        }
    }
}

#[cfg(test)]
impl RowsBefore {
    /// `images` (each row's key and its image's text) kept as [`take`] keeps them, held
    /// while there are no more than `spool_after`, all spooled beyond.
    pub fn kept(images: &[(RowKey, &str)], spool_after: usize) -> RowsBefore {
        let mut keeping = Keeping::spooling_after(spool_after);
        for (key, text) in images {
            keeping.keep(*key, (*text).to_owned()).unwrap();
        }
        keeping.finish().unwrap()
    }
}

/// The images as [`take`] keeps them, a page at a time.
#[derive(Debug)]
struct Keeping {
    images: HashMap<RowKey, Image>,
    spool_after: usize,
    spool: Option<SpoolWriter>,
}

impl Keeping {
    /// Keeps the images in memory up to `rows` of them, and all of them in a spool file
    /// beyond.
    fn spooling_after(rows: usize) -> Keeping {
        Keeping {
            images: HashMap::new(),
            spool_after: rows,
            spool: None,
        }
    }

    /// Reduces `page` (every change of each of its rows, oldest first) to its rows' net
    /// changes ([`plan::compact`]), keeping the image before the transaction of each row a
    /// bulk push may restore.
    fn keep_page(&mut self, page: &[PendingChange]) -> Result<Vec<PendingChange>, Refusal> {
        let reduced = plan::compact(page);
        for change in &reduced {
            let key = (change.table_oid, change.row_id.unwrap_or_default());
            if change.operation != Captured::Insert
                && let Some(old) = &change.old
                && !self.images.contains_key(&key)
            {
                let text = serde_json::to_string(old).map_err(unreadable)?;
                self.keep(key, text).map_err(unspooled)?;
            }
        }
        Ok(reduced)
    }

    /// Keeps `text` as the image of row `key`.
    fn keep(&mut self, key: RowKey, text: String) -> Result<(), SpoolError> {
        let image = match &mut self.spool {
            Some(spool) => Image::Spooled(spool.write_text(&text)?),
            None => Image::Held(text.into_boxed_str()),
        };
        self.images.insert(key, image);
        if self.spool.is_none() && self.images.len() > self.spool_after {
            self.start_spool()?;
        }
        Ok(())
    }

    /// Moves every image kept so far to a new spool, where the later ones will go too.
    fn start_spool(&mut self) -> Result<(), SpoolError> {
        let mut spool = SpoolWriter::new()?;
        for image in self.images.values_mut() {
            if let Image::Held(text) = image {
                *image = Image::Spooled(spool.write_text(text)?);
            }
        }
        self.spool = Some(spool);
        Ok(())
    }

    /// The images kept, to read.
    fn finish(self) -> Result<RowsBefore, SpoolError> {
        Ok(RowsBefore {
            images: self.images,
            spool: self.spool.map(SpoolWriter::finish).transpose()?,
        })
    }
}

/// A captured change that does not parse, or an image that does not serialize.
fn unreadable(error: serde_json::Error) -> Refusal {
    Refusal::new(
        SqlState::INTERNAL_ERROR,
        format!("sfpg proxy: cannot read the captured changes: {error}"),
    )
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
    let mut taken = Taken::default();
    let mut keeping = Keeping::spooling_after(SPOOL_AFTER);
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
        let reduced = keeping.keep_page(&page)?;
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
    taken.before = keeping.finish().map_err(unspooled)?;
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
