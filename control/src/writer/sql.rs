//! The writer's SQL text: casts, column lists, and the version guard every statement that
//! overwrites a row carries.
//!
//! Values travel as text and PostgreSQL casts them, to base types only, so that the
//! assignment to a `varchar(n)` column refuses a value too long rather than truncating it as
//! an explicit `::varchar(n)` cast would.

use std::fmt::Write as _;

use tokio_postgres::types::ToSql;

use super::Rows;
use crate::mapping::ColumnType;
use crate::mirror::{qualified, quote_ident};
use crate::plan::{MirroredField, ObjectPlan};

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
pub(super) fn cast_list(fields: &[&MirroredField], source: &str) -> String {
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

pub(super) fn column_list(fields: &[&MirroredField], prefix: &str) -> String {
    fields
        .iter()
        .map(|f| format!("{prefix}{}", quote_ident(&f.column)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `col = source.col, …` for the fields after `Id`.
pub(super) fn assignments(fields: &[&MirroredField], source: &str) -> String {
    fields[1..]
        .iter()
        .map(|f| format!("{0} = {source}.{0}", quote_ident(&f.column)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The version guard: the condition under which a mirrored row `m` takes Salesforce's copy
/// `theirs`. That copy is not older than the mirror's (another writer, or the proxy, may
/// have written a newer one) and something differs. Rows already mirrored at the same
/// `SystemModstamp` with the same values are left alone, while two changes within one
/// second (the stamp's resolution) still leave the later one. Under concurrent writers it
/// holds too: PostgreSQL evaluates it again on the newest version of a row it had to wait
/// for.
pub(super) fn takes_update(fields: &[&MirroredField], theirs: &str) -> String {
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
pub(super) fn upsert_sql(plan: &ObjectPlan, fields: &[&MirroredField], source: &str) -> String {
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
        set = assignments(fields, "EXCLUDED"),
        condition = takes_update(fields, "EXCLUDED"),
    )
}

/// `unnest($1::text[], $2::text[], …) AS u(c0, c1, …)`
pub(super) fn unnest_source(count: usize) -> String {
    let arrays = (1..=count)
        .map(|i| format!("${i}::text[]"))
        .collect::<Vec<_>>()
        .join(", ");
    format!("unnest({arrays}) AS u({})", placeholders(count))
}

/// Each column of `rows` as an array, for [`unnest_source`].
pub(super) fn column_arrays<'a>(rows: &'a Rows<'_>) -> Vec<Vec<Option<&'a str>>> {
    (0..rows.values.width())
        .map(|column| rows.values.column(column).collect())
        .collect()
}

pub(super) fn array_params<'a>(arrays: &'a [Vec<Option<&str>>]) -> Vec<&'a (dyn ToSql + Sync)> {
    arrays
        .iter()
        .map(|column| column as &(dyn ToSql + Sync))
        .collect()
}
