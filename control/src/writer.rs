//! The one writer of the mirror: every path that turns Salesforce records into mirror rows
//! goes through here (the sync's pages, the journal's repair, and the proxy's write-back,
//! which uses the pure half, [`partial`]). Its contract, written out in
//! docs/architecture.md ("The mirror writer"):
//!
//! - Records are decoded into the text each column takes ([`decode`], [`value`]): one
//!   conversion for every path, by the column's type.
//! - The version guard: a row is overwritten only by a copy of its record that is not
//!   older, by `SystemModstamp`, and only when something differs. Two writers racing
//!   different versions of one record leave the newest, whatever the order.
//! - Writes run in a transaction from [`begin`], under the sync origin (so the capture
//!   triggers let them through uncaptured) and a `lock_timeout`.
//! - New rows are `COPY`ed (binary when every value is in Salesforce's layout, else text),
//!   existing ones merged from arrays, or everything upserted in one statement
//!   ([`WriteStrategy`]); the result is the same rows.
//! - Rows another session holds locked are either left out and reported ([`OnLocked::Skip`],
//!   the sync) or waited for ([`OnLocked::Wait`], the repair); see [`locks`].
//! - Pages of a Bulk API 2.0 query job (CSV) stream straight into `COPY`, or through a
//!   staging table into the same merge and version guard ([`csv`]).
//!
//! Every function takes any [`tokio_postgres::GenericClient`] inside a transaction.

mod apply;
mod binary;
mod copy;
pub mod csv;
pub mod decode;
mod delete;
pub mod locks;
mod merge;
pub mod partial;
mod sql;
pub mod value;

use std::time::Duration;

use sfpg_salesforce::{Record, RecordsDecoder};
use tokio_postgres::{GenericClient, Transaction};

use crate::capture::SET_SYNC_ORIGIN_SQL;
use crate::error::ControlError;
use crate::plan::{ID_FIELD, MirroredField};

pub use apply::{Applied, OnLocked, Write, apply};
pub use csv::ids::IdSet;
pub use csv::{CsvApplied, CsvError, CsvMode, write_csv};
pub use decode::{Columns, PageTooLarge, TextColumns};
pub use delete::{IdRange, delete, delete_absent};
pub use merge::{copy_all_new, insert_new, update_columns, upsert};
pub use partial::{Patches, WriteBackCopy, WriteBackRow, WriteBackText};

/// Opens a transaction for writing the mirror: the sync origin, and with `lock_timeout` a
/// bounded wait for locks (without, waits are as long as PostgreSQL's own setting).
pub async fn begin<C: GenericClient>(
    client: &mut C,
    lock_timeout: Option<Duration>,
) -> Result<Transaction<'_>, ControlError> {
    let transaction = client.transaction().await?;
    let lock_timeout = match lock_timeout {
        Some(timeout) => format!(
            "SET LOCAL lock_timeout = '{}ms'; ",
            timeout.as_millis().max(1)
        ),
        None => String::new(),
    };
    transaction
        .batch_execute(&format!("{lock_timeout}{SET_SYNC_ORIGIN_SQL}"))
        .await?;
    Ok(transaction)
}

/// How a batch of records reaches the mirror table. Both run in the caller's transaction
/// and produce the same rows; `docs/architecture.md` records which is faster and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WriteStrategy {
    /// One `INSERT … SELECT FROM unnest($1::text[], …) ON CONFLICT (sfid) DO UPDATE`: one
    /// text array per column, cast by PostgreSQL.
    Unnest,
    /// The page's Ids are looked up first; the new rows are `COPY`ed straight into the
    /// table, and the others updated from arrays. The faster: the default.
    #[default]
    CopyMerge,
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
    pub fn new(
        object: &str,
        fields: Vec<&'p MirroredField>,
        values: Columns,
    ) -> Result<Self, ControlError> {
        let unwritable = |detail: &str| ControlError::Unwritable {
            object: object.to_owned(),
            detail: detail.to_owned(),
        };
        if fields.first().is_none_or(|f| f.field != ID_FIELD) {
            return Err(unwritable("the fields written must start with Id"));
        }
        if values.width() != fields.len() {
            return Err(unwritable("the records do not have one value per field"));
        }
        if values.column(0).any(|id| id.is_none_or(str::is_empty)) {
            return Err(ControlError::MalformedRecord {
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
    ) -> Result<Self, ControlError> {
        let malformed = |detail: String| ControlError::MalformedRecord {
            object: object.to_owned(),
            detail,
        };
        // A map of strings to values always serializes.
        let json = serde_json::to_vec(records)
            .map_err(|e| malformed(format!("that does not serialize: {e}")))?;
        let values = TextColumns::new(&fields)
            .decode(&mut serde_json::Deserializer::from_slice(&json))
            .map_err(|e| malformed(e.to_string()))?;
        Self::new(object, fields, values)
    }

    /// The records' Salesforce Ids, in order.
    pub fn ids(&self) -> impl ExactSizeIterator<Item = &str> {
        self.values.column(0).map(Option::unwrap_or_default)
    }

    /// The fields written, `Id` first.
    pub fn fields(&self) -> &[&'p MirroredField] {
        &self.fields
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
    pub fn subset(&self, indices: &[usize]) -> Result<Rows<'p>, ControlError> {
        Ok(Rows {
            fields: self.fields.clone(),
            values: self.values.subset(indices)?,
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

#[cfg(test)]
mod tests;
