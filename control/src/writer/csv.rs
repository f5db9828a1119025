//! Bulk API 2.0 query results into the mirror: each page's CSV byte stream goes straight
//! into `COPY … FROM STDIN (FORMAT csv, HEADER true, FORCE_NULL (…))`, as it arrives. No
//! record is parsed on the way and no page is held whole: PostgreSQL's CSV reader and each
//! column type's input function do the reading, once, and the memory a page takes is the
//! few chunks in flight between the HTTP body and the database socket.
//!
//! Salesforce writes every value of a query job's CSV double-quoted, and null and empty the
//! same way (`""`); `FORCE_NULL` on every column makes both NULL, which is safe because
//! Salesforce never stores an empty string (a save of `''` stores null), and is what the
//! JSON path does too ([`super::value`]). The other renderings are ones PostgreSQL's input
//! functions take as they are (`tests.rs` checks each column type the mirror uses):
//! datetimes `2021-11-06T17:38:40.000Z`, times `17:38:40.000Z`, dates `2021-11-06`,
//! `true`/`false`, numbers as the REST API writes them (`1.5E7` included), multi-picklists
//! `a;b`, and text with quotes, commas and line breaks inside the quotes.
//!
//! The header row names the fields in the order of the query's `SELECT` (API 50 on; before,
//! alphabetically). It is checked against the fields asked for before any row is sent, so a
//! page whose columns came in another order can never land in the wrong columns.
//!
//! Three ways in, chosen by the caller ([`CsvMode`]): a plain `COPY` of rows that are new;
//! the merge, through a staging table and the writer's version guard, for pages that may
//! meet rows already mirrored; and the column update of the formula refresh. The Ids of a
//! reconciliation go through [`ids`].

pub mod ids;
mod stage;
#[cfg(test)]
mod tests;

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, Stream, StreamExt};
use tokio_postgres::GenericClient;

use super::apply::{Applied, OnLocked};
use crate::error::ControlError;
use crate::mirror::{qualified, quote_ident};
use crate::plan::{ID_FIELD, MirroredField, ObjectPlan};

/// How a page of CSV reaches the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsvMode {
    /// `COPY` straight into the table, without taking any lock: the rows are new (the
    /// first job of a backfill into an empty table). Should one of its Ids be mirrored
    /// already (the proxy wrote back a record it created), the copy fails with SQLSTATE
    /// 23505 and the transaction with it; the caller reads the page again through
    /// [`CsvMode::Merge`] (a locator can be read again for as long as its job exists).
    Copy,
    /// Through a staging table: rows already mirrored are updated under the version guard
    /// (`SystemModstamp`), new ones inserted, and records carrying `IsDeleted = true`
    /// (`queryAll`) deleted. Rows another session holds locked are left out and reported
    /// ([`OnLocked::Skip`]) or waited for ([`OnLocked::Wait`]).
    Merge,
    /// Sets the columns of the fields after `Id` on rows that exist, without the version
    /// guard: the formula refresh, whose values change without a new `SystemModstamp`.
    /// Locked rows as for [`CsvMode::Merge`].
    UpdateColumns,
}

/// What a page of CSV did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CsvApplied {
    /// Records in the page.
    pub received: u64,
    /// What they did to the table.
    pub applied: Applied,
}

/// A page that could not be written: its body failed (the stream's own error, kept as it
/// is, so the caller can tell a job that is gone from a dropped connection), or the
/// database refused it.
#[derive(Debug, thiserror::Error)]
pub enum CsvError<E> {
    #[error("{0}")]
    Body(E),
    #[error(transparent)]
    Write(#[from] ControlError),
}

impl<E> From<tokio_postgres::Error> for CsvError<E> {
    fn from(error: tokio_postgres::Error) -> Self {
        CsvError::Write(ControlError::Db(error))
    }
}

/// Writes one page of a query job's results, `body`, whose columns are `fields` (`Id`
/// first), into `plan`'s table in the transaction open on `client`, as `mode` says. The
/// body is read as it is written; when it fails, the `COPY` is aborted, and with it the
/// caller's transaction.
pub async fn write_csv<S, E>(
    client: &impl GenericClient,
    plan: &ObjectPlan,
    fields: &[&MirroredField],
    body: S,
    mode: CsvMode,
    on_locked: OnLocked,
) -> Result<CsvApplied, CsvError<E>>
where
    S: Stream<Item = Result<Bytes, E>>,
{
    if fields.first().is_none_or(|f| f.field != ID_FIELD) {
        return Err(ControlError::Unwritable {
            object: plan.object.clone(),
            detail: "the fields written must start with Id".to_owned(),
        }
        .into());
    }
    match mode {
        CsvMode::Copy => {
            let table = qualified(&plan.schema, &plan.table);
            let columns: Vec<String> = fields.iter().map(|f| quote_ident(&f.column)).collect();
            let received = copy_csv(client, plan, fields, &table, &columns, body).await?;
            Ok(CsvApplied {
                received,
                applied: Applied {
                    inserted: received,
                    written: received,
                    ..Applied::default()
                },
            })
        }
        CsvMode::Merge => stage::merge(client, plan, fields, body, on_locked).await,
        CsvMode::UpdateColumns => {
            stage::update_columns(client, plan, fields, body, on_locked).await
        }
    }
}

/// `COPY target (columns) FROM STDIN (FORMAT csv, HEADER true, FORCE_NULL (columns))`.
fn copy_statement(target: &str, columns: &[String]) -> String {
    let list = columns.join(", ");
    format!("COPY {target} ({list}) FROM STDIN (FORMAT csv, HEADER true, FORCE_NULL ({list}))")
}

/// Streams `body` into `target`'s `columns` (already quoted), checking its header against
/// `fields` first; returns the rows copied.
async fn copy_csv<S, E>(
    client: &impl GenericClient,
    plan: &ObjectPlan,
    fields: &[&MirroredField],
    target: &str,
    columns: &[String],
    body: S,
) -> Result<u64, CsvError<E>>
where
    S: Stream<Item = Result<Bytes, E>>,
{
    let sink = client
        .client()
        .copy_in::<_, Bytes>(&copy_statement(target, columns))
        .await?;
    futures::pin_mut!(sink);
    futures::pin_mut!(body);
    let mut header = HeaderCheck::new(plan, fields);
    // The body's chunks (a few kilobytes each, as they come off the socket and out of
    // gzip) are gathered into `CopyData` messages of up to `COPY_MESSAGE` bytes: one
    // message per chunk cost a hand-over to the connection's task each.
    let mut message = BytesMut::with_capacity(COPY_MESSAGE);
    while let Some(chunk) = body.next().await {
        // On a failed body the sink is dropped unfinished, which aborts the COPY.
        let chunk = chunk.map_err(CsvError::Body)?;
        if let Some(piece) = header.feed(chunk)? {
            message.extend_from_slice(&piece);
            if message.len() >= COPY_MESSAGE {
                sink.feed(message.split().freeze()).await?;
                message.reserve(COPY_MESSAGE);
            }
        }
    }
    if let Some(rest) = header.finish()? {
        message.extend_from_slice(&rest);
    }
    if !message.is_empty() {
        sink.feed(message.freeze()).await?;
    }
    Ok(sink.finish().await?)
}

/// The size of the `CopyData` messages a page is sent in.
const COPY_MESSAGE: usize = 256 * 1024;

/// The longest header row taken: a few hundred field names.
const MAX_HEADER: usize = 256 * 1024;

/// Holds a page's first bytes until its header row is whole, checks the row against the
/// fields asked for, then lets everything through untouched.
struct HeaderCheck<'a> {
    object: &'a str,
    fields: &'a [&'a MirroredField],
    /// The bytes before the first line break, while it has not come.
    pending: Option<Vec<u8>>,
}

impl<'a> HeaderCheck<'a> {
    fn new(plan: &'a ObjectPlan, fields: &'a [&'a MirroredField]) -> Self {
        Self {
            object: &plan.object,
            fields,
            pending: Some(Vec::new()),
        }
    }

    /// What of `chunk` can go to the database now: nothing while the header is
    /// incomplete, then the header with what followed it, then each chunk as it is.
    fn feed(&mut self, chunk: Bytes) -> Result<Option<Bytes>, ControlError> {
        let Some(mut pending) = self.pending.take() else {
            return Ok(Some(chunk));
        };
        let Some(end) = chunk.iter().position(|b| *b == b'\n') else {
            pending.extend_from_slice(&chunk);
            if pending.len() > MAX_HEADER {
                return Err(self.mismatch("a header row longer than 256 KiB"));
            }
            self.pending = Some(pending);
            return Ok(None);
        };
        pending.extend_from_slice(&chunk[..end]);
        self.check(&pending)?;
        pending.extend_from_slice(&chunk[end..]);
        Ok(Some(Bytes::from(pending)))
    }

    /// The end of the body: a header without a line break (a page of no records) is
    /// checked and sent; an empty body is an empty page.
    fn finish(&mut self) -> Result<Option<Bytes>, ControlError> {
        match self.pending.take() {
            Some(pending) if !pending.is_empty() => {
                self.check(&pending)?;
                Ok(Some(Bytes::from(pending)))
            }
            _ => Ok(None),
        }
    }

    /// The header row (quoted or not, with or without a byte-order mark or a carriage
    /// return) must name the fields asked for, in order, in any case.
    fn check(&self, line: &[u8]) -> Result<(), ControlError> {
        let line = String::from_utf8_lossy(line);
        let line = line.trim_start_matches('\u{feff}').trim_end_matches('\r');
        let names: Vec<&str> = line.split(',').map(|n| n.trim_matches('"')).collect();
        let same = names.len() == self.fields.len()
            && names
                .iter()
                .zip(self.fields)
                .all(|(name, field)| name.eq_ignore_ascii_case(&field.field));
        if same {
            Ok(())
        } else {
            Err(self.mismatch(&format!("the columns {}", names.join(", "))))
        }
    }

    fn mismatch(&self, found: &str) -> ControlError {
        let expected: Vec<&str> = self.fields.iter().map(|f| f.field.as_str()).collect();
        ControlError::CsvColumns {
            object: self.object.to_owned(),
            expected: expected.join(", "),
            found: found.to_owned(),
        }
    }
}
