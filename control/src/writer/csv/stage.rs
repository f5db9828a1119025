//! A CSV page that may meet rows already mirrored: `COPY`ed into a staging table of the
//! transaction (the mirror's column types, so PostgreSQL reads each value once, as it would
//! into the table), then merged into the mirror with the writer's own statements: the
//! multi-row upsert under the version guard ([`super::super::sql::upsert_sql`]), or the
//! column update of the formula refresh.
//!
//! The staging table is analyzed before it is joined: the first merge of this writer staged
//! pages without statistics, and PostgreSQL's guess made it scan the whole mirror for every
//! page (docs/architecture.md, "The mirror writer").

use bytes::Bytes;
use futures::Stream;
use tokio_postgres::GenericClient;

use super::super::apply::{Applied, OnLocked};
use super::super::sql::{assignments, cast_list, column_list, upsert_sql};
use super::{CsvApplied, CsvError, copy_csv};
use crate::error::ControlError;
use crate::mirror::{qualified, quote_ident};
use crate::plan::{IS_DELETED_FIELD, MirroredField, ObjectPlan};

/// The staging table, dropped at the end of the transaction.
const STAGE: &str = "pg_temp.sfpg_csv_page";

/// Creates the staging table with a column `c<i>` of each field's mirror column type, and
/// copies `body` into it; returns the records staged.
async fn stage<S, E>(
    client: &impl GenericClient,
    plan: &ObjectPlan,
    fields: &[&MirroredField],
    body: S,
) -> Result<u64, CsvError<E>>
where
    S: Stream<Item = Result<Bytes, E>>,
{
    let columns: Vec<String> = fields
        .iter()
        .enumerate()
        .map(|(i, f)| format!("{} AS c{i}", quote_ident(&f.column)))
        .collect();
    client
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS {STAGE}; \
             CREATE TEMP TABLE sfpg_csv_page ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA",
            columns.join(", "),
            qualified(&plan.schema, &plan.table)
        ))
        .await?;
    let names: Vec<String> = (0..fields.len()).map(|i| format!("c{i}")).collect();
    let staged = copy_csv(client, plan, fields, STAGE, &names, body).await?;
    client.batch_execute(&format!("ANALYZE {STAGE}")).await?;
    Ok(staged)
}

/// Which staged records are deletes (`IsDeleted = true`, from `queryAll`) and which are
/// not, as conditions on the staging table's columns.
fn live_and_gone(fields: &[&MirroredField]) -> (String, String) {
    match fields
        .iter()
        .position(|f| f.field.eq_ignore_ascii_case(IS_DELETED_FIELD))
    {
        Some(k) => (format!("c{k} IS NOT TRUE"), format!("c{k}")),
        None => ("true".to_owned(), "false".to_owned()),
    }
}

/// Takes, without waiting, the row locks of the staged records' mirror rows (the lock a
/// delete needs for records to delete, the lighter one of an update for the rest), and
/// removes from the staging table the records whose rows another session holds: their Ids.
async fn unstage_locked(
    client: &impl GenericClient,
    plan: &ObjectPlan,
    fields: &[&MirroredField],
) -> Result<Vec<String>, ControlError> {
    let table = qualified(&plan.schema, &plan.table);
    let (live, gone) = live_and_gone(fields);
    let sql = format!(
        "WITH free_live AS (SELECT sfid FROM {table} WHERE sfid IN \
             (SELECT c0 FROM {STAGE} WHERE {live}) FOR NO KEY UPDATE SKIP LOCKED), \
         free_gone AS (SELECT sfid FROM {table} WHERE sfid IN \
             (SELECT c0 FROM {STAGE} WHERE {gone}) FOR UPDATE SKIP LOCKED) \
         DELETE FROM {STAGE} s \
          WHERE EXISTS (SELECT 1 FROM {table} m WHERE m.sfid = s.c0) \
            AND NOT EXISTS (SELECT 1 FROM free_live f WHERE f.sfid = s.c0) \
            AND NOT EXISTS (SELECT 1 FROM free_gone f WHERE f.sfid = s.c0) \
         RETURNING s.c0"
    );
    Ok(client
        .query(&sql, &[])
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?)
}

/// [`super::CsvMode::Merge`]: the staged records deleted (`IsDeleted = true`) or upserted
/// under the version guard.
pub(super) async fn merge<S, E>(
    client: &impl GenericClient,
    plan: &ObjectPlan,
    fields: &[&MirroredField],
    body: S,
    on_locked: OnLocked,
) -> Result<CsvApplied, CsvError<E>>
where
    S: Stream<Item = Result<Bytes, E>>,
{
    let received = stage(client, plan, fields, body).await?;
    let mut applied = Applied::default();
    if on_locked == OnLocked::Skip {
        applied.locked = unstage_locked(client, plan, fields).await?;
    }
    let table = qualified(&plan.schema, &plan.table);
    let (live, gone) = live_and_gone(fields);
    applied.deleted = client
        .execute(
            &format!("DELETE FROM {table} m USING {STAGE} s WHERE m.sfid = s.c0 AND {gone}"),
            &[],
        )
        .await?;
    let source = format!("(SELECT * FROM {STAGE} WHERE {live}) AS u");
    let row = client
        .query_one(&upsert_sql(plan, fields, &source), &[])
        .await?;
    let count = |i: usize| {
        row.try_get::<_, i64>(i)
            .map(|n| u64::try_from(n).unwrap_or(0))
    };
    applied.inserted = count(0)?;
    applied.written = count(1)?;
    Ok(CsvApplied { received, applied })
}

/// [`super::CsvMode::UpdateColumns`]: the columns of the fields after `Id` set on the rows
/// that exist and differ, without the version guard.
pub(super) async fn update_columns<S, E>(
    client: &impl GenericClient,
    plan: &ObjectPlan,
    fields: &[&MirroredField],
    body: S,
    on_locked: OnLocked,
) -> Result<CsvApplied, CsvError<E>>
where
    S: Stream<Item = Result<Bytes, E>>,
{
    let received = stage(client, plan, fields, body).await?;
    let mut applied = Applied::default();
    if fields.len() < 2 {
        return Ok(CsvApplied { received, applied });
    }
    if on_locked == OnLocked::Skip {
        applied.locked = unstage_locked(client, plan, fields).await?;
    }
    let updated = &fields[1..];
    let sql = format!(
        "WITH incoming AS (SELECT {casts} FROM {STAGE} AS u)\n\
         UPDATE {table} AS m SET {set} FROM incoming\n\
         WHERE m.sfid = incoming.sfid AND ROW({mine}) IS DISTINCT FROM ROW({theirs})",
        casts = cast_list(fields, "u"),
        table = qualified(&plan.schema, &plan.table),
        set = assignments(fields, "incoming"),
        mine = column_list(updated, "m."),
        theirs = column_list(updated, "incoming."),
    );
    applied.written = client.execute(&sql, &[]).await?;
    Ok(CsvApplied { received, applied })
}
