//! Bulk API 2.0 ingest jobs on the org's side: which object and operation a job targets,
//! its uploaded CSV read and checked ([`upload`]), its header resolved and its rows turned
//! into records ([`columns`]), and each row saved.
//!
//! A row is saved by the very code a REST or sObject Collections write uses (create,
//! update by `Id`, upsert by external id, delete to the recycle bin), so it meets the same
//! writable-field, format, required, lookup, validation-rule and unique checks, gets the
//! same audit fields and `SystemModstamp`, and its formulas read the same. Each row stands
//! alone, as in Salesforce's Bulk API: one refused row does not undo the others. Only
//! `hardDelete` is Bulk's own: the record skips the recycle bin.
//!
//! The HTTP layer keeps the job and its upload, and calls [`Org::ingest_rows`] on one
//! internal batch of rows at a time, so the org's lock is never held for a whole job.

mod columns;
mod upload;

use csv::StringRecord;
use serde::{Deserialize, Serialize};

pub use columns::{Columns, NULL_CELL};
pub use upload::{CheckedUpload, check as check_upload, reader as upload_reader};

use super::save::{Deletion, Journal};
use super::{ApiError, Org, SaveError};
use crate::ids::Id;

/// What an ingest job does with each row (`operation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum IngestOperation {
    Insert,
    Update,
    Upsert,
    Delete,
    HardDelete,
}

impl IngestOperation {
    /// Whether only the `Id` column counts.
    pub fn deletes(self) -> bool {
        matches!(self, IngestOperation::Delete | IngestOperation::HardDelete)
    }
}

/// A job's object and operation, checked when the job is created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestTarget {
    store: usize,
    operation: IngestOperation,
    /// The upsert key field's position.
    external_id: Option<usize>,
}

impl IngestTarget {
    pub fn operation(&self) -> IngestOperation {
        self.operation
    }
}

/// What became of one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowOutcome {
    /// Saved: the record's Id, and whether this row created it (`sf__Created`).
    Succeeded { id: Id, created: bool },
    /// Refused: the record's Id when the row named an existing one (`sf__Id`), and why.
    Failed { id: Option<Id>, error: SaveError },
}

impl Org {
    /// Checks a new job's object and operation: an object the org lacks, an upsert
    /// without `externalIdFieldName` or naming a field that is no external id, are
    /// refused with `400` (codes and messages as the Bulk API words them for 1.0; 2.0's
    /// are not documented). Returns the object's name in the org's spelling too.
    pub fn ingest_target(
        &self,
        object: &str,
        operation: IngestOperation,
        external_id_field: Option<&str>,
    ) -> Result<(IngestTarget, String), ApiError> {
        let store = self.store_index(object).ok_or_else(|| {
            ApiError::new(
                400,
                "INVALIDENTITY",
                format!("sObject type '{object}' is not supported."),
            )
        })?;
        let def = &self.stores[store].def;
        let external_id = match (operation, external_id_field) {
            (IngestOperation::Upsert, None | Some("")) => {
                return Err(ApiError::new(
                    400,
                    "INVALIDJOB",
                    format!(
                        "External ID was blank for {}. An External ID must be specified for \
                         upsert.",
                        def.name
                    ),
                ));
            }
            (IngestOperation::Upsert, Some(name)) => Some(
                def.field(name)
                    .filter(|(_, f)| f.external_id || f.id_lookup)
                    .map(|(i, _)| i)
                    .ok_or_else(|| {
                        ApiError::new(
                            400,
                            "INVALIDJOB",
                            format!(
                                "Field name provided, {name} is not an External ID or indexed \
                                 field for {}",
                                def.name
                            ),
                        )
                    })?,
            ),
            _ => None,
        };
        let target = IngestTarget {
            store,
            operation,
            external_id,
        };
        Ok((target, def.name.clone()))
    }

    /// The upload's header resolved for `target`; `Err` is the job's `errorMessage`.
    pub fn ingest_columns(
        &self,
        target: &IngestTarget,
        header: &StringRecord,
    ) -> Result<Columns, String> {
        Columns::resolve(
            &self.stores[target.store].def,
            header,
            target.operation.deletes(),
        )
    }

    /// Saves `rows` as `user`, each on its own, and returns their outcomes in order.
    pub fn ingest_rows(
        &mut self,
        target: &IngestTarget,
        columns: &Columns,
        rows: &[StringRecord],
        user: &Id,
    ) -> Vec<RowOutcome> {
        rows.iter()
            .map(|row| match self.ingest_row(target, columns, row, *user) {
                Ok((id, created)) => RowOutcome::Succeeded { id, created },
                Err((id, error)) => RowOutcome::Failed { id, error },
            })
            .collect()
    }

    fn ingest_row(
        &mut self,
        target: &IngestTarget,
        columns: &Columns,
        row: &StringRecord,
        user: Id,
    ) -> Result<(Id, bool), (Option<Id>, SaveError)> {
        let store = target.store;
        let input = columns
            .input(&self.stores[store].def, row)
            .map_err(|e| (None, e))?;
        let journal = &mut Journal::default();
        match (target.operation, target.external_id) {
            (IngestOperation::Insert, _) => self
                .create_record(store, &input, user, journal)
                .map(|id| (id, true))
                .map_err(|e| (None, e)),
            (IngestOperation::Update, _) => self
                .update_input(store, &input, user, journal)
                .map(|id| (id, false)),
            (IngestOperation::Upsert, Some(ext_index)) => {
                self.upsert_input(store, ext_index, &input, user, journal)
            }
            (IngestOperation::Upsert, None) => Err((
                None,
                SaveError::new("MISSING_ARGUMENT", "External ID not specified", Vec::new()),
            )),
            (IngestOperation::Delete | IngestOperation::HardDelete, _) => {
                let deletion = match target.operation {
                    IngestOperation::HardDelete => Deletion::Hard,
                    _ => Deletion::RecycleBin,
                };
                let Some(text) = input.id.as_deref() else {
                    return Err((
                        None,
                        SaveError::new(
                            "MISSING_ARGUMENT",
                            "Id not specified in a delete call",
                            Vec::new(),
                        ),
                    ));
                };
                self.delete_by_text(text, Some(store), deletion, user, journal)
                    .map(|(id, _)| (id, false))
            }
        }
    }
}

#[cfg(test)]
mod tests;
