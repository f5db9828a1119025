//! After a push: what Salesforce set (the Id of a new record, SystemModstamp, formulas,
//! defaults) is read back and written into the mirror rows the transaction changed, so the
//! client's transaction commits the record as Salesforce holds it. That replaces every
//! provisional sfid the push resolved: the new rows' own, and those held in the lookups of
//! rows that refer to them.
//!
//! The rows are written by `sfpg.write_back` (migrations V8, V11), a function of the
//! control schema's owner, on the client's connection: no statement here names anything a
//! client could stand in for, and the client's column grants do not matter. They are made
//! by the mirror writer's pure half ([`WriteBackRow`]): values converted as the sync's are,
//! and the writer's version guard applied by the function. A bulk push's read-back pages go
//! by `COPY` instead ([`WriteBackCopy`], V25), staged and written by sfpg's functions under
//! the same guard, at half the server's time a row.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde_json::json;
use sfpg_control::events::is_platform_event;
use sfpg_control::plan::MirroredField;
use sfpg_control::writer::{WriteBackCopy, WriteBackRow, WriteBackText};
use sfpg_salesforce::{Record, SalesforceId};
use tokio::sync::mpsc;

use super::bulk::read_back::{self, ReadBackError, ResultPages};
use super::catalog::ObjectHandle;
use super::plan::{Operation, Plan};

/// What to write into one mirrored table in the client's transaction: `rows`, in the
/// form `form` says.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteBack {
    pub schema: String,
    pub table: String,
    pub rows: String,
    pub form: RowsForm,
}

/// What a [`WriteBack`]'s `rows` hold, and so which of sfpg's functions writes them.
#[derive(Debug, Clone, PartialEq)]
pub enum RowsForm {
    /// A JSON array of objects with each row's local `id` and the columns to set
    /// ([`sfpg_control::capture::WRITE_BACK_SQL`], and the restore's
    /// [`sfpg_control::capture::RESTORE_REFUSED_SQL`]).
    Json,
    /// A platform event table's `{"id", "sfid", "eventuuid"}`
    /// ([`sfpg_control::events::EVENT_WRITE_BACK_SQL`]).
    Events,
    /// `COPY … FROM STDIN` text rows of `columns` (`id` first), staged and written by
    /// [`sfpg_control::capture::WRITE_BACK_STAGING_SQL`] and
    /// [`sfpg_control::capture::WRITE_BACK_STAGED_SQL`]: a bulk push's read-back.
    Copy { columns: Vec<String> },
}

/// A record created by the push, for patching `RETURNING sfid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    pub table_oid: u32,
    pub row_id: i64,
    pub sfid: String,
    /// The provisional sfid the row had until the push.
    pub provisional: Option<String>,
}

/// A table's records to read back: where one of them is in the plan, and each one.
type TableRows<'p> = (usize, Vec<Pushed<'p>>);

/// The records to read back by (schema, table).
type ByTable<'p> = BTreeMap<(&'p str, &'p str), TableRows<'p>>;

/// A created or updated record to read back: its index in the plan, its local id and its
/// Salesforce Id, borrowed from the plan or the push's answer (a bulk push has 100,000).
#[derive(Debug, Clone, Copy)]
struct Pushed<'p> {
    index: usize,
    row_id: i64,
    sfid: &'p str,
}

/// Rows of one write-back or restore statement: a bulk push's 100,000 rows go in several, so
/// that no one JSON text (and the server's `jsonb` of it) holds them all. A Contact's row
/// as read back is about 3 KB of JSON, held as text only ([`WriteBackText`]); each
/// statement's text is held once more in the connection's buffer while it is sent. Fewer
/// rows a statement cost more a row: 2,000 took 0.2 s, 5,000 0.3 s.
pub(crate) const WRITE_BACK_ROWS: usize = 5_000;

/// One statement a push has the client's connection run, in the order the push makes them.
#[derive(Debug, Clone, PartialEq)]
pub enum MirrorWrite {
    /// `sfpg.restore_refused`: refused rows of a bulk push back as they were before the
    /// transaction.
    Restore(WriteBack),
    /// What Salesforce set: `sfpg.write_back`, the events' own, or a staged `COPY` (V25),
    /// as its [`RowsForm`] says.
    WriteBack(WriteBack),
}

/// How many statements the push may have made that the connection has not begun to run.
const WRITES_AHEAD: usize = 1;

/// Where a push sends what it writes into the mirror: the commit's loop, which holds the
/// client's connection, runs each statement as it comes. The channel holds
/// `WRITES_AHEAD` statements, so a large push's read-back waits while the connection
/// writes, and the rows of no more than a few statements are held at once.
#[derive(Debug, Clone)]
pub struct ToMirror(mpsc::Sender<MirrorWrite>);

/// The commit no longer takes what the push writes: it has stopped (a refused statement,
/// a lost connection), and the push's end no longer matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MirrorGone;

impl ToMirror {
    /// A push's way to the mirror, and the commit's end of it.
    pub fn channel() -> (ToMirror, mpsc::Receiver<MirrorWrite>) {
        let (sender, receiver) = mpsc::channel(WRITES_AHEAD);
        (ToMirror(sender), receiver)
    }

    /// Hands `write` to the connection, once it has room.
    pub async fn send(&self, write: MirrorWrite) -> Result<(), MirrorGone> {
        self.0.send(write).await.map_err(|_| MirrorGone)
    }
}

/// Reads back every created and updated record (`created`: the Id of each create, in plan
/// order) and sends the write-backs of each table to `mirror` as they are made; returns
/// the creates, for `RETURNING`. If the read fails, new records still get their Id (the
/// sync fills in the rest). `bulk_since`: the push went through ingest jobs, the first
/// created then; a table with many records is read back by one Bulk query job
/// ([`read_back`]), each page written back before the next is read, rather than by
/// Collections retrieves of 200.
pub async fn write_backs(
    plan: &Plan,
    created_ids: &[String],
    event_uuids: &[Option<String>],
    bulk_since: Option<DateTime<Utc>>,
    mirror: &ToMirror,
) -> Vec<Created> {
    let (by_table, created) = by_table(plan, created_ids);
    // The Id of each create, by its index in the plan.
    let ids: Vec<Option<&String>> = {
        let mut creates = created_ids.iter();
        plan.records
            .iter()
            .map(|p| match p.operation {
                Operation::Create => creates.next(),
                _ => None,
            })
            .collect()
    };
    // The EventUuid of each create, by its index in the plan.
    let uuids: Vec<Option<&String>> = {
        let mut creates = event_uuids.iter();
        plan.records
            .iter()
            .map(|p| match p.operation {
                Operation::Create => creates.next().and_then(Option::as_ref),
                _ => None,
            })
            .collect()
    };
    for (_, (index, rows)) in by_table {
        let object = &plan.records[index].object;
        let sent = if is_platform_event(&object.object) {
            // An event cannot be read back (it is not retrievable): its row gets the Id
            // and EventUuid of the publish; the bus delivers the rest.
            let events = event_write_back(object, &rows, &uuids);
            mirror.send(MirrorWrite::WriteBack(events)).await
        } else {
            let table = TableWrite::new(plan, object, &ids, mirror);
            match bulk_since {
                Some(since) if rows.len() >= read_back::BULK_READ_BACK_FROM => {
                    table.by_query(&rows, since).await
                }
                _ => table.by_id(&rows).await,
            }
        };
        if sent.is_err() {
            break;
        }
    }
    created
}

/// The write-back of one table's records.
struct TableWrite<'a> {
    plan: &'a Plan,
    object: &'a ObjectHandle,
    /// The Id of each create, by its index in the plan.
    ids: &'a [Option<&'a String>],
    /// The fields copied from a record as read: all but the Id, which is the push's own
    /// (a create's from its answer).
    copied: Vec<MirroredField>,
    mirror: &'a ToMirror,
}

/// Why the pages of a query stopped.
enum PagesStopped {
    Read(ReadBackError),
    Gone(MirrorGone),
}

impl<'a> TableWrite<'a> {
    fn new(
        plan: &'a Plan,
        object: &'a ObjectHandle,
        ids: &'a [Option<&'a String>],
        mirror: &'a ToMirror,
    ) -> Self {
        let copied = object
            .plan()
            .fields
            .into_iter()
            .filter(|f| f.column != "sfid")
            .collect();
        TableWrite {
            plan,
            object,
            ids,
            copied,
            mirror,
        }
    }

    /// `rows` read by Collections retrieves of 200, then written back.
    async fn by_id(&self, rows: &[Pushed<'_>]) -> Result<(), MirrorGone> {
        let records = read_by_id(self.plan, self.object, rows).await;
        let back: Vec<WriteBackRow> = rows
            .iter()
            .zip(records)
            .map(|(row, record)| self.row(*row, record.as_ref()))
            .collect();
        self.send(back).await
    }

    /// `rows` read by one Bulk query job, each page written back as it is read; the rows
    /// the query did not bring (it failed) get their Ids only.
    async fn by_query(&self, rows: &[Pushed<'_>], since: DateTime<Utc>) -> Result<(), MirrorGone> {
        // Each row not yet written back, by its Id: where it is in `rows`.
        let mut unwritten: HashMap<&str, usize> = rows
            .iter()
            .enumerate()
            .map(|(at, row)| (row.sfid, at))
            .collect();
        match self.write_pages(rows, &mut unwritten, since).await {
            Ok(()) => {}
            Err(PagesStopped::Gone(gone)) => return Err(gone),
            Err(PagesStopped::Read(error)) => {
                tracing::warn!(%error, object = %self.object.object, "cannot read back pushed records by a Bulk query; writing their Ids only");
            }
        }
        let rest: Vec<WriteBackRow> = rows
            .iter()
            .filter(|row| unwritten.contains_key(row.sfid))
            .map(|row| self.row(*row, None))
            .collect();
        self.send(rest).await
    }

    /// Writes back each page of the query's results as it comes, taking its rows out of
    /// `unwritten` (where each row of `to_write` not yet written is, by its Id).
    async fn write_pages(
        &self,
        to_write: &[Pushed<'_>],
        unwritten: &mut HashMap<&str, usize>,
        since: DateTime<Utc>,
    ) -> Result<(), PagesStopped> {
        let mut pages = ResultPages::query(&self.plan.org, self.object, since)
            .await
            .map_err(PagesStopped::Read)?;
        while let Some(rows) = pages.next().await.map_err(PagesStopped::Read)? {
            let at = rows.positions(&self.copied);
            // A page that has a column for every field is staged by `COPY` (V25), every
            // column of each row set from its cell: the lookups the push resolved included,
            // as Salesforce read them back. A page that lacks some keeps those columns as
            // they are, which only the JSON form can say.
            let cells: Option<Vec<usize>> = at.iter().copied().collect();
            let fresh = || match &cells {
                Some(cells) => PageBack::Copy(WriteBackCopy::new(&self.copied), cells.clone()),
                None => PageBack::Json(WriteBackText::default()),
            };
            let mut back = fresh();
            for parsed in rows {
                let (id, row) = parsed.map_err(|error| PagesStopped::Read(error.into()))?;
                let Some(pushed) = unwritten.remove(id.as_str()).map(|at| to_write[at]) else {
                    // Changed by others meanwhile: not the push's.
                    continue;
                };
                match &mut back {
                    // The CSV reader takes only rows of the header's length; a cell missing
                    // all the same leaves the row short, which COPY refuses.
                    PageBack::Copy(copy, cells) => copy.push_read(
                        pushed.row_id,
                        pushed.sfid,
                        cells.iter().filter_map(|&i| row.get(i)),
                    ),
                    PageBack::Json(text) => text.push_read(
                        self.ids_of(pushed),
                        &self.copied,
                        at.iter().map(|at| at.and_then(|i| row.get(i))),
                    ),
                }
                if back.rows() == WRITE_BACK_ROWS {
                    let full = std::mem::replace(&mut back, fresh());
                    self.send_page(full).await.map_err(PagesStopped::Gone)?;
                }
            }
            if back.rows() > 0 {
                self.send_page(back).await.map_err(PagesStopped::Gone)?;
            }
        }
        Ok(())
    }

    /// The write-back of one row: its Id, the Ids of the creates its lookups refer to,
    /// and what `record` (as read) holds.
    fn row(&self, pushed: Pushed<'_>, record: Option<&Record>) -> WriteBackRow {
        let mut row = self.ids_of(pushed);
        if let Some(record) = record
            && let Err(error) = row.copy(&self.object.object, &self.copied, record)
        {
            tracing::warn!(%error, object = %self.object.object, "cannot write back a record as read; writing its Ids only");
        }
        row
    }

    /// The write-back of one row's Ids: its own and those of the creates its lookups refer
    /// to.
    fn ids_of(&self, pushed: Pushed<'_>) -> WriteBackRow {
        let mut row = WriteBackRow::new(pushed.row_id);
        row.set("sfid", pushed.sfid);
        resolve_references(&mut row, self.plan, pushed.index, self.ids);
        row
    }

    /// Sends `rows` to the mirror, [`WRITE_BACK_ROWS`] to a statement.
    async fn send(&self, rows: Vec<WriteBackRow>) -> Result<(), MirrorGone> {
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            let mut text = WriteBackText::default();
            for row in rows.by_ref().take(WRITE_BACK_ROWS) {
                text.push(row);
            }
            self.send_text(text).await?;
        }
        Ok(())
    }

    /// Sends one statement's rows of a query page to the mirror.
    async fn send_page(&self, back: PageBack) -> Result<(), MirrorGone> {
        match back {
            PageBack::Json(text) => self.send_text(text).await,
            PageBack::Copy(copy, _) => {
                let (columns, rows) = copy.finish();
                let write_back = WriteBack {
                    schema: self.object.schema.clone(),
                    table: self.object.table.clone(),
                    rows,
                    form: RowsForm::Copy { columns },
                };
                self.mirror.send(MirrorWrite::WriteBack(write_back)).await
            }
        }
    }

    /// Sends one statement's rows to the mirror.
    async fn send_text(&self, rows: WriteBackText) -> Result<(), MirrorGone> {
        let write_back = WriteBack {
            schema: self.object.schema.clone(),
            table: self.object.table.clone(),
            rows: rows.finish(),
            form: RowsForm::Json,
        };
        self.mirror.send(MirrorWrite::WriteBack(write_back)).await
    }
}

/// One write-back statement's rows of a query page, as they are made.
enum PageBack {
    Json(WriteBackText),
    /// With the page's column of each field copied, in order.
    Copy(WriteBackCopy, Vec<usize>),
}

impl PageBack {
    fn rows(&self) -> usize {
        match self {
            PageBack::Json(text) => text.rows(),
            PageBack::Copy(copy, _) => copy.rows(),
        }
    }
}

/// The records of `rows` as Salesforce holds them, by Collections retrieves of 200; each
/// `None` that could not be read.
async fn read_by_id(
    plan: &Plan,
    object: &ObjectHandle,
    rows: &[Pushed<'_>],
) -> Vec<Option<Record>> {
    let sfids: Vec<SalesforceId> = rows
        .iter()
        .filter_map(|row| SalesforceId::parse(row.sfid).ok())
        .collect();
    match plan
        .org
        .client
        .collections()
        .retrieve(&object.object, &sfids, &object.fields())
        .await
    {
        Ok(records) => records,
        Err(error) => {
            tracing::warn!(%error, object = %object.object, "cannot read back pushed records; writing their Ids only");
            vec![None; rows.len()]
        }
    }
}

/// The write-back of published platform events: each row's Id and EventUuid.
fn event_write_back(
    object: &ObjectHandle,
    rows: &[Pushed<'_>],
    uuids: &[Option<&String>],
) -> WriteBack {
    let rows: Vec<serde_json::Value> = rows
        .iter()
        .map(|row| {
            let uuid = uuids.get(row.index).copied().flatten();
            json!({"id": row.row_id, "sfid": row.sfid, "eventuuid": uuid})
        })
        .collect();
    WriteBack {
        schema: object.schema.clone(),
        table: object.table.clone(),
        rows: serde_json::Value::Array(rows).to_string(),
        form: RowsForm::Events,
    }
}

/// The created and updated records of `plan` by table (`created_ids`: the Id of each
/// create, in plan order), and the creates, for patching `RETURNING sfid`.
fn by_table<'p>(plan: &'p Plan, created_ids: &'p [String]) -> (ByTable<'p>, Vec<Created>) {
    let mut by_table = ByTable::new();
    let mut created = Vec::with_capacity(created_ids.len());
    let mut creates = created_ids.iter();
    for (index, planned) in plan.records.iter().enumerate() {
        let sfid = match planned.operation {
            Operation::Create => {
                let Some(id) = creates.next() else { continue };
                created.push(Created {
                    table_oid: planned.table_oid,
                    row_id: planned.row_id,
                    sfid: id.clone(),
                    provisional: planned.provisional.clone(),
                });
                id.as_str()
            }
            Operation::Update => match &planned.sfid {
                Some(id) => id.as_str(),
                None => continue,
            },
            Operation::Delete => continue,
        };
        let key = (
            planned.object.schema.as_str(),
            planned.object.table.as_str(),
        );
        by_table
            .entry(key)
            .or_insert_with(|| (index, Vec::new()))
            .1
            .push(Pushed {
                index,
                row_id: planned.row_id,
                sfid,
            });
    }
    (by_table, created)
}

/// Gives the lookups of record `index` that held a provisional sfid the real Id of the
/// create they refer to (`ids`: the Id of each create, by its index in the plan), even if
/// the read-back fails; when it succeeds, the record's copy sets the same values.
fn resolve_references(row: &mut WriteBackRow, plan: &Plan, index: usize, ids: &[Option<&String>]) {
    let object = &plan.records[index].object;
    for reference in &plan.records[index].references {
        let column = object.columns.iter().find(|c| c.field == reference.field);
        let id = ids.get(reference.create).copied().flatten();
        if let (Some(column), Some(id)) = (column, id) {
            row.set(&column.column, id);
        }
    }
}
