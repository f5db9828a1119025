//! Whole records into the mirror: the multi-row upsert, and `COPY` of new rows with a merge
//! of the rest ([`WriteStrategy`]); and column updates of existing rows.

use std::collections::HashSet;

use tokio_postgres::GenericClient;
use tokio_postgres::error::SqlState;

use super::copy::{copy_in, copy_statement};
use super::sql::{
    array_params, assignments, cast_list, column_arrays, column_list, takes_update, unnest_source,
    upsert_sql,
};
use super::{Rows, Upserted, WriteStrategy};
use crate::error::ControlError;
use crate::mirror::qualified;
use crate::plan::ObjectPlan;

/// Writes `rows` (which must hold the plan's `SystemModstamp`) as inserts or updates,
/// under the version guard.
pub async fn upsert(
    client: &impl GenericClient,
    plan: &ObjectPlan,
    rows: &Rows<'_>,
    strategy: WriteStrategy,
) -> Result<Upserted, ControlError> {
    if rows.is_empty() {
        return Ok(Upserted::default());
    }
    match strategy {
        WriteStrategy::Unnest => unnest_upsert(client, plan, rows).await,
        WriteStrategy::CopyMerge => copy_merge(client, plan, rows).await,
    }
}

/// One `INSERT … SELECT FROM unnest(…) ON CONFLICT … DO UPDATE … WHERE` for all of `rows`.
async fn unnest_upsert(
    client: &impl GenericClient,
    plan: &ObjectPlan,
    rows: &Rows<'_>,
) -> Result<Upserted, ControlError> {
    let sql = upsert_sql(plan, &rows.fields, &unnest_source(rows.fields.len()));
    let arrays = column_arrays(rows);
    let row = client.query_one(&sql, &array_params(&arrays)).await?;
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
    client: &impl GenericClient,
    plan: &ObjectPlan,
    rows: &Rows<'_>,
    strategy: WriteStrategy,
) -> Result<Upserted, ControlError> {
    match copy_all_new(client, plan, rows, strategy).await? {
        Some(upserted) => Ok(upserted),
        None => upsert(client, plan, rows, strategy).await,
    }
}

/// The first half of [`insert_new`]: with the COPY strategy, `rows` copied straight in;
/// `None` (nothing written) when one of their Ids is mirrored already, or with another
/// strategy, and the caller upserts them instead. Also `None` when the copy timed out on a
/// lock: a row of theirs exists and a client's open transaction changed it, so the unique
/// index waited for that transaction; the upsert can leave that record out.
pub async fn copy_all_new(
    client: &impl GenericClient,
    plan: &ObjectPlan,
    rows: &Rows<'_>,
    strategy: WriteStrategy,
) -> Result<Option<Upserted>, ControlError> {
    if rows.is_empty() || strategy != WriteStrategy::CopyMerge {
        return Ok(None);
    }
    let fall_back_on = [SqlState::UNIQUE_VIOLATION, SqlState::LOCK_NOT_AVAILABLE];
    Ok(copy_new(client, plan, rows, &fall_back_on)
        .await?
        .map(|inserted| Upserted {
            inserted,
            written: inserted,
        }))
}

/// `COPY`s `rows` into the table inside a savepoint; `None` (the savepoint rolled back)
/// when the copy fails with one of the SQLSTATEs of `fall_back_on`.
async fn copy_new(
    client: &impl GenericClient,
    plan: &ObjectPlan,
    rows: &Rows<'_>,
    fall_back_on: &[SqlState],
) -> Result<Option<u64>, ControlError> {
    client.batch_execute("SAVEPOINT sfpg_sync_copy").await?;
    match copy_in(client, &copy_statement(plan, rows), rows).await {
        Ok(inserted) => {
            client
                .batch_execute("RELEASE SAVEPOINT sfpg_sync_copy")
                .await?;
            Ok(Some(inserted))
        }
        Err(error) if error.code().is_some_and(|code| fall_back_on.contains(code)) => {
            client
                .batch_execute("ROLLBACK TO SAVEPOINT sfpg_sync_copy")
                .await?;
            Ok(None)
        }
        Err(error) => Err(error),
    }
}

/// Splits the page by whether its Ids are mirrored already (one index probe each), `COPY`s
/// the new rows straight into the table and updates the others from arrays. A plain `COPY`
/// costs about half of `ON CONFLICT`'s speculative insert, and a backfill page is almost
/// all new rows. Should another session insert one of the new Ids meanwhile (the proxy
/// writing back a record it just created, another writer), the new rows fall back to the
/// upsert.
async fn copy_merge(
    client: &impl GenericClient,
    plan: &ObjectPlan,
    rows: &Rows<'_>,
) -> Result<Upserted, ControlError> {
    let table = qualified(&plan.schema, &plan.table);
    let ids: Vec<&str> = rows.ids().collect();
    let existing: HashSet<String> = client
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
        update_existing(client, plan, &rows.subset(&old)?).await?
    };
    if new.is_empty() {
        return Ok(Upserted {
            inserted: 0,
            written: updated,
        });
    }
    let new_rows = rows.subset(&new)?;
    // Without a copy, an Id arrived from elsewhere since the probe: upsert instead.
    let fall_back_on = [SqlState::UNIQUE_VIOLATION];
    let inserted = match copy_new(client, plan, &new_rows, &fall_back_on).await? {
        Some(inserted) => Upserted {
            inserted,
            written: inserted,
        },
        None => unnest_upsert(client, plan, &new_rows).await?,
    };
    Ok(Upserted {
        inserted: inserted.inserted,
        written: updated + inserted.written,
    })
}

/// Updates mirrored rows from `rows` where the version guard says so; `rows` may carry any
/// of the plan's fields, as long as `Id` comes first and `SystemModstamp` is among them.
pub(super) async fn update_existing(
    client: &impl GenericClient,
    plan: &ObjectPlan,
    rows: &Rows<'_>,
) -> Result<u64, ControlError> {
    let sql = format!(
        "UPDATE {table} AS m SET {set} FROM (SELECT {casts} FROM {source}) AS s \
         WHERE m.sfid = s.sfid AND {condition}",
        table = qualified(&plan.schema, &plan.table),
        set = assignments(&rows.fields, "s"),
        casts = cast_list(&rows.fields, "u"),
        source = unnest_source(rows.fields.len()),
        condition = takes_update(&rows.fields, "s"),
    );
    let arrays = column_arrays(rows);
    Ok(client.execute(&sql, &array_params(&arrays)).await?)
}

/// Sets the columns of `rows`' fields (after `Id`) on the rows that exist, leaving every
/// other column alone, without the version guard: the backfill of new fields and the
/// formula refresh, whose values change without a new `SystemModstamp`. Returns how many
/// rows changed.
pub async fn update_columns(
    client: &impl GenericClient,
    plan: &ObjectPlan,
    rows: &Rows<'_>,
) -> Result<u64, ControlError> {
    if rows.is_empty() || rows.fields.len() < 2 {
        return Ok(0);
    }
    let updated = &rows.fields[1..];
    let sql = format!(
        "WITH incoming AS (SELECT {casts} FROM {source})\n\
         UPDATE {table} AS m SET {set} FROM incoming\n\
         WHERE m.sfid = incoming.sfid AND ROW({mine}) IS DISTINCT FROM ROW({theirs})",
        casts = cast_list(&rows.fields, "u"),
        source = unnest_source(rows.fields.len()),
        table = qualified(&plan.schema, &plan.table),
        set = assignments(&rows.fields, "incoming"),
        mine = column_list(updated, "m."),
        theirs = column_list(updated, "incoming."),
    );
    let arrays = column_arrays(rows);
    Ok(client.execute(&sql, &array_params(&arrays)).await?)
}
