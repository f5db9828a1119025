//! Writing pages into the mirror: batched upserts that never rewrite an unchanged row,
//! column updates for new and formula fields, and deletes.
//!
//! Every write runs inside a transaction from [`begin`], which sets the sync origin (so the
//! proxy's capture triggers let it through without recording it) and a `lock_timeout`. Rows
//! a client holds locked are left out of a write rather than waited for ([`locks`]); the
//! timeout bounds the waits that remain (a table lock, an Id another session is inserting).

use std::collections::HashSet;
use std::fmt::Write as _;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::SinkExt;
use sfpg_control::capture::SET_SYNC_ORIGIN_SQL;
use sfpg_control::mapping::ColumnType;
use sfpg_control::mirror::{qualified, quote_ident};
use sfpg_salesforce::{Record, RecordsDecoder};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Transaction};

use crate::decode::{Columns, TextColumns};
use crate::error::{Result, SyncError};
use crate::plan::{ID_FIELD, MirroredField, ObjectPlan};
use crate::settings::WriteStrategy;
use crate::value::push_copy_text;

mod binary;
pub mod locks;

/// Opens a transaction for writing the mirror: sync origin, and a bounded wait for locks.
pub async fn begin(client: &mut Client, lock_timeout: Duration) -> Result<Transaction<'_>> {
    let transaction = client.transaction().await?;
    let millis = lock_timeout.as_millis().max(1);
    transaction
        .batch_execute(&format!(
            "SET LOCAL lock_timeout = '{millis}ms'; {SET_SYNC_ORIGIN_SQL}"
        ))
        .await?;
    Ok(transaction)
}

/// Records made ready for the mirror: one text value per written column.
#[derive(Debug, Clone)]
pub struct Rows<'p> {
    /// The fields written, `Id` first.
    fields: Vec<&'p MirroredField>,
    /// One value per field, in the order of `fields`.
    values: Columns,
}

impl<'p> Rows<'p> {
    /// Records read by [`TextColumns`] for `fields` (which must start with `Id`). A record
    /// without an Id is refused.
    pub fn new(object: &str, fields: Vec<&'p MirroredField>, values: Columns) -> Result<Self> {
        if fields.first().is_none_or(|f| f.field != ID_FIELD) {
            return Err(SyncError::corrupt(format!(
                "the fields written to {object} must start with Id"
            )));
        }
        if values.width() != fields.len() {
            return Err(SyncError::corrupt(format!(
                "the records read for {object} do not have one value per field"
            )));
        }
        if values.column(0).any(|id| id.is_none_or(str::is_empty)) {
            return Err(SyncError::MalformedRecord {
                object: object.to_owned(),
                detail: "without an Id".to_owned(),
            });
        }
        Ok(Self { fields, values })
    }

    /// Takes `fields` (which must start with `Id`) from records already parsed into JSON
    /// maps, converting them as a query page's records are. A field missing from a record
    /// is NULL.
    pub fn from_records(
        object: &str,
        fields: Vec<&'p MirroredField>,
        records: &[Record],
    ) -> Result<Self> {
        let json = serde_json::to_vec(records)
            .map_err(|e| SyncError::corrupt(format!("records of {object}: {e}")))?;
        let values = TextColumns::new(&fields)
            .decode(&mut serde_json::Deserializer::from_slice(&json))
            .map_err(|e| SyncError::MalformedRecord {
                object: object.to_owned(),
                detail: e.to_string(),
            })?;
        Self::new(object, fields, values)
    }

    /// The records' Salesforce Ids, in order.
    pub fn ids(&self) -> impl ExactSizeIterator<Item = &str> {
        self.values.column(0).map(Option::unwrap_or_default)
    }

    /// The values of the field named `field`, record by record, if it was read.
    pub fn values_of(
        &self,
        field: &str,
    ) -> Option<impl ExactSizeIterator<Item = Option<&str>> + '_> {
        self.fields
            .iter()
            .position(|f| f.field == field)
            .map(|i| self.values.column(i))
    }

    /// How many records.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The records at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Result<Rows<'p>> {
        Ok(Rows {
            fields: self.fields.clone(),
            values: self
                .values
                .subset(indices)
                .map_err(|e| SyncError::corrupt(e.to_string()))?,
        })
    }
}

/// What an upsert did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Upserted {
    /// Rows that did not exist.
    pub inserted: u64,
    /// Rows inserted or changed; the rest were already mirrored as they are.
    pub written: u64,
}

/// The type a text value is cast to before it is assigned to its column. Lengths and
/// precisions are left to the assignment, which refuses a value too long instead of
/// truncating it as an explicit `::varchar(n)` would.
fn cast_type(column_type: ColumnType) -> &'static str {
    match column_type {
        ColumnType::Varchar(_) | ColumnType::Text => "text",
        ColumnType::Boolean => "boolean",
        ColumnType::Integer => "integer",
        ColumnType::BigInt => "bigint",
        ColumnType::Numeric { .. } | ColumnType::NumericAny => "numeric",
        ColumnType::Date => "date",
        ColumnType::TimestampTz => "timestamptz",
        ColumnType::Time => "time",
    }
}

/// `u.c0::text AS "sfid", u.c1::timestamptz AS "systemmodstamp", …`
fn cast_list(fields: &[&MirroredField], source: &str) -> String {
    let mut list = String::new();
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            list.push_str(", ");
        }
        let _ = write!(
            list,
            "{source}.c{i}::{} AS {}",
            cast_type(field.column_type),
            quote_ident(&field.column)
        );
    }
    list
}

/// `c0, c1, …`
fn placeholders(count: usize) -> String {
    (0..count)
        .map(|i| format!("c{i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn column_list(fields: &[&MirroredField], prefix: &str) -> String {
    fields
        .iter()
        .map(|f| format!("{prefix}{}", quote_ident(&f.column)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The condition under which a mirrored row takes Salesforce's copy: that copy is not
/// older than the mirror's (the proxy may have written a newer one) and something differs.
/// Rows already mirrored at the same `SystemModstamp` with the same values are left alone,
/// while two changes within one second (the stamp's resolution) still leave the later one.
fn takes_update(fields: &[&MirroredField], theirs: &str) -> String {
    let updated = &fields[1..];
    format!(
        "(m.systemmodstamp IS NULL OR m.systemmodstamp <= {theirs}.systemmodstamp) \
         AND ROW({}) IS DISTINCT FROM ROW({})",
        column_list(updated, "m."),
        column_list(updated, &format!("{theirs}.")),
    )
}

/// The multi-row upsert from `source` (a `FROM` item whose columns are `c0`, `c1`, … as
/// text): one `INSERT … ON CONFLICT (sfid) DO UPDATE`, counting inserts by `xmax = 0`.
fn upsert_sql(plan: &ObjectPlan, fields: &[&MirroredField], source: &str) -> String {
    let set = fields[1..]
        .iter()
        .map(|f| format!("{0} = EXCLUDED.{0}", quote_ident(&f.column)))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "WITH written AS (\n\
         INSERT INTO {table} AS m ({columns})\n\
         SELECT {casts} FROM {source}\n\
         ON CONFLICT (sfid) DO UPDATE SET {set}\n\
         WHERE {condition}\n\
         RETURNING (xmax = 0) AS inserted)\n\
         SELECT count(*) FILTER (WHERE inserted), count(*) FROM written",
        table = qualified(&plan.schema, &plan.table),
        columns = column_list(fields, ""),
        casts = cast_list(fields, "u"),
        condition = takes_update(fields, "EXCLUDED"),
    )
}

/// `unnest($1::text[], $2::text[], …) AS u(c0, c1, …)`
fn unnest_source(count: usize) -> String {
    let arrays = (1..=count)
        .map(|i| format!("${i}::text[]"))
        .collect::<Vec<_>>()
        .join(", ");
    format!("unnest({arrays}) AS u({})", placeholders(count))
}

/// Each column of `rows` as an array, for [`unnest_source`].
fn column_arrays<'a>(rows: &'a Rows<'_>) -> Vec<Vec<Option<&'a str>>> {
    (0..rows.values.width())
        .map(|column| rows.values.column(column).collect())
        .collect()
}

fn array_params<'a>(arrays: &'a [Vec<Option<&str>>]) -> Vec<&'a (dyn ToSql + Sync)> {
    arrays
        .iter()
        .map(|column| column as &(dyn ToSql + Sync))
        .collect()
}

/// Writes `rows` (which must hold the plan's `SystemModstamp`) as inserts or updates.
pub async fn upsert(
    transaction: &Transaction<'_>,
    plan: &ObjectPlan,
    rows: &Rows<'_>,
    strategy: WriteStrategy,
) -> Result<Upserted> {
    if rows.is_empty() {
        return Ok(Upserted::default());
    }
    match strategy {
        WriteStrategy::Unnest => unnest_upsert(transaction, plan, rows).await,
        WriteStrategy::CopyMerge => copy_merge(transaction, plan, rows).await,
    }
}

/// One `INSERT … SELECT FROM unnest(…) ON CONFLICT … DO UPDATE … WHERE` for all of `rows`.
async fn unnest_upsert(
    transaction: &Transaction<'_>,
    plan: &ObjectPlan,
    rows: &Rows<'_>,
) -> Result<Upserted> {
    let sql = upsert_sql(plan, &rows.fields, &unnest_source(rows.fields.len()));
    let arrays = column_arrays(rows);
    let row = transaction.query_one(&sql, &array_params(&arrays)).await?;
    let count = |i: usize| {
        row.try_get::<_, i64>(i)
            .map(|n| u64::try_from(n).unwrap_or(0))
    };
    Ok(Upserted {
        inserted: count(0)?,
        written: count(1)?,
    })
}

/// Writes `rows` that are expected not to be mirrored yet (a backfill page): with the COPY
/// strategy they are copied straight in, without first asking which exist, and should one
/// exist after all (the proxy wrote back a record it created), the page is upserted instead.
pub async fn insert_new(
    transaction: &Transaction<'_>,
    plan: &ObjectPlan,
    rows: &Rows<'_>,
    strategy: WriteStrategy,
) -> Result<Upserted> {
    match copy_all_new(transaction, plan, rows, strategy).await? {
        Some(upserted) => Ok(upserted),
        None => upsert(transaction, plan, rows, strategy).await,
    }
}

/// The first half of [`insert_new`]: with the COPY strategy, `rows` copied straight in;
/// `None` (nothing written) when one of their Ids is mirrored already, or with another
/// strategy, and the caller upserts them instead. Also `None` when the copy timed out on a
/// lock: a row of theirs exists and a client's open transaction changed it, so the unique
/// index waited for that transaction; the upsert can leave that record out.
pub async fn copy_all_new(
    transaction: &Transaction<'_>,
    plan: &ObjectPlan,
    rows: &Rows<'_>,
    strategy: WriteStrategy,
) -> Result<Option<Upserted>> {
    if rows.is_empty() || strategy != WriteStrategy::CopyMerge {
        return Ok(None);
    }
    Ok(copy_new(
        transaction,
        plan,
        rows,
        &[UNIQUE_VIOLATION, LOCK_NOT_AVAILABLE],
    )
    .await?
    .map(|inserted| Upserted {
        inserted,
        written: inserted,
    }))
}

/// SQLSTATE 23505: an Id is in the table already.
const UNIQUE_VIOLATION: &str = "23505";
/// SQLSTATE 55P03: `lock_timeout` ran out.
const LOCK_NOT_AVAILABLE: &str = "55P03";

/// `COPY`s `rows` into the table inside a savepoint; `None` (the savepoint rolled back)
/// when the copy fails with one of the SQLSTATEs of `fall_back_on`.
async fn copy_new(
    transaction: &Transaction<'_>,
    plan: &ObjectPlan,
    rows: &Rows<'_>,
    fall_back_on: &[&str],
) -> Result<Option<u64>> {
    transaction
        .batch_execute("SAVEPOINT sfpg_sync_copy")
        .await?;
    match copy_in(transaction, &copy_statement(plan, rows), rows).await {
        Ok(inserted) => {
            transaction
                .batch_execute("RELEASE SAVEPOINT sfpg_sync_copy")
                .await?;
            Ok(Some(inserted))
        }
        Err(error)
            if error
                .sqlstate()
                .is_some_and(|code| fall_back_on.contains(&code)) =>
        {
            transaction
                .batch_execute("ROLLBACK TO SAVEPOINT sfpg_sync_copy")
                .await?;
            Ok(None)
        }
        Err(error) => Err(error),
    }
}

/// `COPY table (columns) FROM STDIN` for `rows`' fields.
fn copy_statement(plan: &ObjectPlan, rows: &Rows<'_>) -> String {
    format!(
        "COPY {} ({}) FROM STDIN",
        qualified(&plan.schema, &plan.table),
        column_list(&rows.fields, "")
    )
}

/// Splits the page by whether its Ids are mirrored already (one index probe each), `COPY`s
/// the new rows straight into the table and updates the others from arrays. A plain `COPY`
/// costs about half of `ON CONFLICT`'s speculative insert, and a backfill page is almost
/// all new rows. Should another session insert one of the new Ids meanwhile (the proxy
/// writing back a record it just created), the new rows fall back to the upsert.
async fn copy_merge(
    transaction: &Transaction<'_>,
    plan: &ObjectPlan,
    rows: &Rows<'_>,
) -> Result<Upserted> {
    let table = qualified(&plan.schema, &plan.table);
    let ids: Vec<&str> = rows.ids().collect();
    let existing: HashSet<String> = transaction
        .query(
            &format!("SELECT sfid FROM {table} WHERE sfid = ANY($1::varchar[])"),
            &[&ids],
        )
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
    let (old, new): (Vec<usize>, Vec<usize>) =
        (0..rows.len()).partition(|&i| existing.contains(ids[i]));
    let updated = if old.is_empty() {
        0
    } else {
        update_existing(transaction, plan, &rows.subset(&old)?).await?
    };
    if new.is_empty() {
        return Ok(Upserted {
            inserted: 0,
            written: updated,
        });
    }
    let new_rows = rows.subset(&new)?;
    // Without a copy, an Id arrived from elsewhere since the probe: upsert instead.
    let inserted = match copy_new(transaction, plan, &new_rows, &[UNIQUE_VIOLATION]).await? {
        Some(inserted) => Upserted {
            inserted,
            written: inserted,
        },
        None => unnest_upsert(transaction, plan, &new_rows).await?,
    };
    Ok(Upserted {
        inserted: inserted.inserted,
        written: updated + inserted.written,
    })
}

/// Updates mirrored rows from `rows` where [`takes_update`] says so.
async fn update_existing(
    transaction: &Transaction<'_>,
    plan: &ObjectPlan,
    rows: &Rows<'_>,
) -> Result<u64> {
    let set = rows.fields[1..]
        .iter()
        .map(|f| format!("{0} = s.{0}", quote_ident(&f.column)))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "UPDATE {table} AS m SET {set} FROM (SELECT {casts} FROM {source}) AS s \
         WHERE m.sfid = s.sfid AND {condition}",
        table = qualified(&plan.schema, &plan.table),
        casts = cast_list(&rows.fields, "u"),
        source = unnest_source(rows.fields.len()),
        condition = takes_update(&rows.fields, "s"),
    );
    let arrays = column_arrays(rows);
    Ok(transaction.execute(&sql, &array_params(&arrays)).await?)
}

/// Runs `statement` (a `COPY … FROM STDIN`) with `rows`: in the binary format when every
/// value is in Salesforce's layout for its type, which spares PostgreSQL parsing them,
/// and otherwise as text, for PostgreSQL's input functions to take or refuse.
async fn copy_in(transaction: &Transaction<'_>, statement: &str, rows: &Rows<'_>) -> Result<u64> {
    let types: Vec<ColumnType> = rows.fields.iter().map(|f| f.column_type).collect();
    if let Some(data) = binary::encode(&types, &rows.values) {
        let sink = transaction
            .copy_in(&format!("{statement} (FORMAT binary)"))
            .await?;
        futures::pin_mut!(sink);
        let data = Bytes::from(data);
        // A few hundred kilobytes per message keeps the socket busy.
        for start in (0..data.len()).step_by(COPY_CHUNK) {
            sink.send(data.slice(start..(start + COPY_CHUNK).min(data.len())))
                .await?;
        }
        return Ok(sink.finish().await?);
    }
    let sink = transaction.copy_in(statement).await?;
    futures::pin_mut!(sink);
    let mut buffer: Vec<u8> = Vec::with_capacity(64 * 1024);
    for row in 0..rows.len() {
        for (i, value) in rows.values.row(row).enumerate() {
            if i > 0 {
                buffer.push(b'\t');
            }
            push_copy_text(&mut buffer, value);
        }
        buffer.push(b'\n');
        if buffer.len() >= COPY_CHUNK {
            sink.send(Bytes::from(std::mem::take(&mut buffer))).await?;
        }
    }
    if !buffer.is_empty() {
        sink.send(Bytes::from(buffer)).await?;
    }
    Ok(sink.finish().await?)
}

/// The size of one `CopyData` message.
const COPY_CHUNK: usize = 256 * 1024;

/// Sets the columns of `rows`' fields (after `Id`) on the rows that exist, leaving every
/// other column alone: the backfill of new fields and the formula refresh. Returns how many
/// rows changed.
pub async fn update_columns(
    transaction: &Transaction<'_>,
    plan: &ObjectPlan,
    rows: &Rows<'_>,
) -> Result<u64> {
    if rows.is_empty() || rows.fields.len() < 2 {
        return Ok(0);
    }
    let updated = &rows.fields[1..];
    let set = updated
        .iter()
        .map(|f| format!("{0} = incoming.{0}", quote_ident(&f.column)))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "WITH incoming AS (SELECT {casts} FROM {source})\n\
         UPDATE {table} AS m SET {set} FROM incoming\n\
         WHERE m.sfid = incoming.sfid AND ROW({mine}) IS DISTINCT FROM ROW({theirs})",
        casts = cast_list(&rows.fields, "u"),
        source = unnest_source(rows.fields.len()),
        table = qualified(&plan.schema, &plan.table),
        mine = column_list(updated, "m."),
        theirs = column_list(updated, "incoming."),
    );
    let arrays = column_arrays(rows);
    Ok(transaction.execute(&sql, &array_params(&arrays)).await?)
}

/// Deletes the rows of these Salesforce Ids; returns how many there were.
pub async fn delete(
    transaction: &Transaction<'_>,
    plan: &ObjectPlan,
    ids: &[String],
) -> Result<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let sql = format!(
        "DELETE FROM {} WHERE sfid = ANY($1::varchar[])",
        qualified(&plan.schema, &plan.table)
    );
    Ok(transaction.execute(&sql, &[&ids]).await?)
}

/// A range of Ids: after `after` (or from the first) up to `upto` (or without end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange<'a> {
    pub after: Option<&'a str>,
    pub upto: Option<&'a str>,
}

/// Deletes the rows in `range` that are not in `present` and were last stamped before
/// `modified_before`: what one page of an Id reconciliation proves gone. Ids compare byte
/// by byte (`COLLATE "C"`), as Salesforce orders them, whatever the database's collation.
/// Rows another session holds locked are left, and their Ids returned with the count of
/// rows deleted.
pub async fn delete_absent(
    transaction: &Transaction<'_>,
    plan: &ObjectPlan,
    range: IdRange<'_>,
    present: &[String],
    modified_before: DateTime<Utc>,
) -> Result<(u64, Vec<String>)> {
    let table = qualified(&plan.schema, &plan.table);
    // Provisional sfids (`~` and digits) sort after every Salesforce Id: a row the proxy
    // created and has not pushed is never taken for one Salesforce no longer has.
    let absent = "sfid COLLATE \"C\" > $1::text COLLATE \"C\" \
         AND sfid COLLATE \"C\" < '~' \
         AND ($2::text IS NULL OR sfid COLLATE \"C\" <= $2::text COLLATE \"C\") \
         AND sfid <> ALL($3::varchar[]) \
         AND (systemmodstamp IS NULL OR systemmodstamp < $4)";
    let after = range.after.unwrap_or("");
    let params: [&(dyn ToSql + Sync); 4] = [&after, &range.upto, &present, &modified_before];
    let deleted = transaction
        .execute(
            &format!(
                "DELETE FROM {table} WHERE sfid IN \
                 (SELECT sfid FROM {table} WHERE {absent} FOR UPDATE SKIP LOCKED)"
            ),
            &params,
        )
        .await?;
    // What is left of them is what another session holds.
    let locked = transaction
        .query(&format!("SELECT sfid FROM {table} WHERE {absent}"), &params)
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
    Ok((deleted, locked))
}

#[cfg(test)]
mod tests;
