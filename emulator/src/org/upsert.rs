//! Upsert by external id (`PATCH /sobjects/X/Field/value`): create when nothing matches,
//! update when one record does, and answer `300 Multiple Choices` with the matching
//! records' URLs when several do.

use serde_json::{Map, Value as Json};

use super::input::{Assignment, Input, decode};
use super::save::Journal;
use super::{ApiError, Org, SaveError};
use crate::ids::Id;
use crate::model::{FieldType, Value};

/// What an upsert did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpsertOutcome {
    /// No record matched; this one was created (`201`, `created: true`).
    Created(Id),
    /// One record matched and was updated (`200`, `created: false`).
    Updated(Id),
    /// Several records matched; nothing changed (`300`, a JSON array of these URLs).
    Multiple(Vec<String>),
}

/// The records an external-id value matches.
pub(crate) enum Matches {
    None,
    One(Id),
    Several(Vec<Id>),
}

impl Org {
    /// `PATCH /sobjects/X/ExtField/value`. `ext_field` must be an external-id or
    /// id-lookup field (else `404 NOT_FOUND`); `Id` upserts by record Id. With
    /// `update_only` (`?updateOnly=true`) a miss is `404 NOT_FOUND` instead of a create.
    #[allow(clippy::too_many_arguments)]
    pub fn upsert(
        &mut self,
        object: &str,
        ext_field: &str,
        value: &str,
        body: &Map<String, Json>,
        user: &Id,
        api_version: &str,
        update_only: bool,
    ) -> Result<UpsertOutcome, ApiError> {
        let store = self.store_index_or_404(object)?;
        let ext_index = self.external_id_field(store, ext_field)?;
        let input = decode(&self.stores[store].def, body)?;
        let mut journal = Journal::default();
        match self.matches(store, ext_index, value) {
            Matches::Several(ids) => {
                let name = &self.stores[store].def.name;
                let version = api_version.strip_prefix('v').unwrap_or(api_version);
                Ok(UpsertOutcome::Multiple(
                    ids.iter()
                        .map(|id| format!("/services/data/v{version}/sobjects/{name}/{id}"))
                        .collect(),
                ))
            }
            Matches::One(id) => {
                let input = without_field(input, ext_index);
                self.update_record(store, id, &input, *user, &mut journal)?;
                Ok(UpsertOutcome::Updated(id))
            }
            Matches::None if update_only => Err(ApiError::not_found()),
            Matches::None => {
                let input = self.with_external_id(store, input, ext_index, value)?;
                let id = self.create_record(store, &input, *user, &mut journal)?;
                Ok(UpsertOutcome::Created(id))
            }
        }
    }

    /// Upserts one decoded record by the key field at `ext_index` (its value in the
    /// body, or the body's `Id` when the key is `Id`): updates the one record it matches,
    /// creates one when none does, refuses several. Returns the Id and whether the record
    /// was created (sObject Collections and Bulk upserts).
    pub(crate) fn upsert_input(
        &mut self,
        store: usize,
        ext_index: usize,
        input: &Input,
        user: Id,
        journal: &mut Journal,
    ) -> Result<(Id, bool), (Option<Id>, SaveError)> {
        let key_name = self.stores[store].def.fields[ext_index].name.clone();
        let key = input.assignments.iter().find_map(|a| match a {
            Assignment::Set { field, value } if *field == ext_index => {
                value.as_str().map(str::to_owned)
            }
            _ => None,
        });
        let key = match (key, &input.id) {
            (Some(k), _) => k,
            (None, Some(id)) if key_name == "Id" => id.clone(),
            _ => {
                return Err((
                    None,
                    SaveError::new(
                        "MISSING_ARGUMENT",
                        format!("{key_name} not specified"),
                        Vec::new(),
                    ),
                ));
            }
        };
        let mut input = input.clone();
        input.id = None;
        match self.matches(store, ext_index, &key) {
            Matches::One(id) => {
                let input = without_field(input, ext_index);
                self.update_record(store, id, &input, user, journal)
                    .map(|()| (id, false))
                    .map_err(|e| (Some(id), e))
            }
            Matches::Several(ids) => Err((
                None,
                SaveError::new(
                    "DUPLICATE_EXTERNAL_ID",
                    format!(
                        "More than 1 record found for external id field: [{}]",
                        ids.iter().map(Id::as_str).collect::<Vec<_>>().join(", ")
                    ),
                    vec![key_name],
                ),
            )),
            Matches::None => {
                let input = self
                    .with_external_id(store, input, ext_index, &key)
                    .map_err(|e| (None, e))?;
                self.create_record(store, &input, user, journal)
                    .map(|id| (id, true))
                    .map_err(|e| (None, e))
            }
        }
    }

    /// The position of an upsert's key field, or `404 NOT_FOUND` as Salesforce answers an
    /// unknown or non-external-id field.
    pub(crate) fn external_id_field(&self, store: usize, name: &str) -> Result<usize, ApiError> {
        self.stores[store]
            .def
            .field(name)
            .filter(|(_, f)| f.external_id || f.id_lookup)
            .map(|(i, _)| i)
            .ok_or_else(|| {
                ApiError::new(
                    404,
                    "NOT_FOUND",
                    format!(
                        "Provided external ID field does not exist or is not accessible: {name}"
                    ),
                )
            })
    }

    pub(crate) fn matches(&self, store: usize, field: usize, value: &str) -> Matches {
        let s = &self.stores[store];
        let def = &s.def.fields[field];
        let ids = if def.field_type == FieldType::Id {
            Id::parse(value)
                .ok()
                .filter(|id| s.get(id).is_some_and(|r| !s.is_deleted(r)))
                .into_iter()
                .collect()
        } else {
            s.find_by_value(field, value.trim(), def.case_sensitive)
        };
        match ids.as_slice() {
            [] => Matches::None,
            [one] => Matches::One(*one),
            _ => Matches::Several(ids),
        }
    }

    /// A create through upsert also writes the key value (unless the key is `Id`).
    pub(crate) fn with_external_id(
        &self,
        store: usize,
        mut input: Input,
        field: usize,
        value: &str,
    ) -> Result<Input, SaveError> {
        if self.stores[store].def.fields[field].field_type == FieldType::Id {
            if value.is_empty() {
                return Ok(input);
            }
            return Err(SaveError::new(
                "NOT_FOUND",
                "The requested resource does not exist",
                Vec::new(),
            ));
        }
        input.assignments.retain(|a| a.field() != field);
        input.assignments.push(Assignment::Set {
            field,
            value: Value::text(value.trim()),
        });
        Ok(input)
    }
}

/// Drops the key field from an update: it already holds the value.
fn without_field(mut input: Input, field: usize) -> Input {
    input.assignments.retain(|a| a.field() != field);
    input
}
