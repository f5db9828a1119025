//! Bulk API 2.0 query results into the mirror: each page's CSV byte stream is parsed as it
//! arrives and goes on into `COPY … FROM STDIN (FORMAT binary)` ([`transcode`]); no page is
//! held whole, and the memory a page takes is a batch of a few hundred kilobytes. PostgreSQL
//! reading the CSV itself was the backfill's bottleneck (one backend, one core); the parse
//! here runs on the other core, and PostgreSQL is handed each value in its internal form.
//!
//! Salesforce writes every value of a query job's CSV double-quoted, and null and empty the
//! same way (`""`); both become NULL (`FORCE_NULL` on every column, on the text path), which is safe because
//! Salesforce never stores an empty string (a save of `''` stores null), and is what the
//! JSON path does too ([`super::value`]). The other renderings are ones the binary encoder
//! and PostgreSQL's input functions both take as they are (`tests.rs` checks each column type the mirror uses):
//! datetimes `2021-11-06T17:38:40.000Z`, times `17:38:40.000Z`, dates `2021-11-06`,
//! `true`/`false`, numbers as the REST API writes them (`1.5E7` included), multi-picklists
//! `a;b`, and text with quotes, commas and line breaks inside the quotes. A value in any
//! other shape sends the rest of its page as text, to `COPY … (FORMAT csv, FORCE_NULL (…))`,
//! where PostgreSQL's input functions take it or name what is wrong with it.
//!
//! The header row names the fields in the order of the query's `SELECT` (API 50 on; before,
//! alphabetically). It is checked against the fields asked for before any row is sent, so a
//! page whose columns came in another order can never land in the wrong columns.
//!
//! Three ways in, chosen by the caller ([`CsvMode`]): a plain `COPY` of rows that are new;
//! the merge, through a staging table and the writer's version guard, for pages that may
//! meet rows already mirrored; and the column update of the formula refresh. The Ids of a
//! reconciliation go through [`ids`].

mod header;
pub mod ids;
mod stage;
#[cfg(test)]
mod tests;
mod transcode;

use std::pin::Pin;

use bytes::Bytes;
use futures::{SinkExt, Stream, StreamExt};
use tokio_postgres::{CopyInSink, GenericClient};

use super::apply::{Applied, OnLocked};
use super::binary;
use crate::error::ControlError;
use crate::mapping::ColumnType;
use crate::mirror::{qualified, quote_ident};
use crate::plan::{ID_FIELD, MirroredField, ObjectPlan};
use header::HeaderCheck;
use transcode::{Piece, Transcoder};

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

/// `COPY target (columns) FROM STDIN (FORMAT csv, FORCE_NULL (columns))`: the rows of a
/// page that fell back to text, without its header row.
fn csv_statement(target: &str, columns: &[String]) -> String {
    let list = columns.join(", ");
    format!("COPY {target} ({list}) FROM STDIN (FORMAT csv, FORCE_NULL ({list}))")
}

/// Streams `body` into `target`'s `columns` (already quoted), checking its header against
/// `fields` first; returns the rows copied. The rows go as binary `COPY` while each value
/// is in Salesforce's layout for its type, and as the CSV they came in from the first one
/// that is not ([`transcode`]).
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
    let types: Vec<ColumnType> = fields.iter().map(|f| f.column_type).collect();
    let mut page = Transcoder::new(HeaderCheck::new(plan, fields), types);
    let mut copy = PageCopy {
        client,
        target,
        columns,
        sink: None,
        copied: 0,
    };
    futures::pin_mut!(body);
    while let Some(chunk) = body.next().await {
        // On a failed body the sink is dropped unfinished, which aborts the COPY.
        let chunk = chunk.map_err(CsvError::Body)?;
        for piece in page.feed(&chunk)? {
            copy.send(piece).await?;
        }
    }
    for piece in page.finish()? {
        copy.send(piece).await?;
    }
    Ok(copy.finish().await?)
}

/// The `COPY` a page is going into: none yet, binary, or text from the first row that
/// could not go as binary.
enum Sink {
    Binary(Pin<Box<CopyInSink<Bytes>>>),
    Csv(Pin<Box<CopyInSink<Bytes>>>),
}

/// Sends a page's pieces, opening and finishing its `COPY` statements.
struct PageCopy<'c, C> {
    client: &'c C,
    target: &'c str,
    columns: &'c [String],
    sink: Option<Sink>,
    /// Rows of the statements already finished.
    copied: u64,
}

impl<C: GenericClient> PageCopy<'_, C> {
    async fn send(&mut self, piece: Piece) -> Result<(), ControlError> {
        match piece {
            Piece::Binary(rows) => {
                if self.sink.is_none() {
                    let statement = format!(
                        "COPY {} ({}) FROM STDIN (FORMAT binary)",
                        self.target,
                        self.columns.join(", ")
                    );
                    let sink = self.client.client().copy_in(&statement).await?;
                    self.sink = Some(Sink::Binary(Box::pin(sink)));
                }
                if let Some(Sink::Binary(sink) | Sink::Csv(sink)) = &mut self.sink {
                    sink.send(rows).await?;
                }
            }
            Piece::Csv(rows) => {
                if !matches!(self.sink, Some(Sink::Csv(_))) {
                    tracing::debug!(
                        table = self.target,
                        "a value out of Salesforce's layout: the rest of the page goes as CSV"
                    );
                    self.finish_binary().await?;
                    let statement = csv_statement(self.target, self.columns);
                    let sink = self.client.client().copy_in(&statement).await?;
                    self.sink = Some(Sink::Csv(Box::pin(sink)));
                }
                if let Some(Sink::Csv(sink)) = &mut self.sink {
                    sink.send(rows).await?;
                }
            }
        }
        Ok(())
    }

    /// Ends a binary `COPY` in progress with the stream's trailer.
    async fn finish_binary(&mut self) -> Result<(), ControlError> {
        if let Some(Sink::Binary(mut sink)) = self.sink.take() {
            sink.send(Bytes::from_static(binary::TRAILER)).await?;
            self.copied += sink.as_mut().finish().await?;
        }
        Ok(())
    }

    /// Finishes the statement in progress; the rows copied in all.
    async fn finish(mut self) -> Result<u64, ControlError> {
        match self.sink.take() {
            Some(Sink::Binary(sink)) => {
                self.sink = Some(Sink::Binary(sink));
                self.finish_binary().await?;
            }
            Some(Sink::Csv(mut sink)) => self.copied += sink.as_mut().finish().await?,
            None => {}
        }
        Ok(self.copied)
    }
}
