//! sObject Collections (`/composite/sobjects`): create, update, upsert, delete and
//! retrieve of up to 200 records in one call, results in request order.
//!
//! Without `allOrNone` each record stands alone. With it, every record is still tried
//! (so each failing record reports its own error), then the whole batch is undone: the
//! failing records keep their errors and every other record carries
//! `ALL_OR_NONE_OPERATION_ROLLED_BACK`, all with `success: false`.
//!
//! Inside a Composite request under `allOrNone`, each call's changes go on into the
//! request's one journal (the `_in` variants), so a later subrequest's failure undoes them.

use serde_json::{Map, Value as Json};

use super::input::{Input, decode};
use super::save::{Deletion, Journal, field_list};
use super::{ApiError, Org, SaveError, SaveResult};
use crate::ids::Id;

/// The most records one Collections call takes.
pub const MAX_RECORDS: usize = 200;

/// One record of a Collections body, decoded: its object (from `attributes.type`) and
/// its fields.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CollectionRecord {
    store: usize,
    input: Input,
}

fn too_many() -> ApiError {
    ApiError::new(
        400,
        "EXCEEDED_ID_LIMIT",
        "record limit reached. cannot submit more than 200 records into this call",
    )
}

impl Org {
    /// `POST /composite/sobjects`.
    pub fn collection_create(
        &mut self,
        records: &[Json],
        all_or_none: bool,
        user: &Id,
    ) -> Result<Vec<SaveResult>, ApiError> {
        self.collection_create_in(records, all_or_none, user, None)
    }

    /// [`Org::collection_create`]; with `journal`, under a Composite request's `allOrNone`, the
    /// changes go on into it.
    pub(crate) fn collection_create_in(
        &mut self,
        records: &[Json],
        all_or_none: bool,
        user: &Id,
        journal: Option<&mut Journal>,
    ) -> Result<Vec<SaveResult>, ApiError> {
        let records = self.decode_collection(records, None)?;
        Ok(
            self.run_batch(&records, all_or_none, journal, |org, r, journal| {
                org.create_record(r.store, &r.input, *user, journal)
                    .map(|id| (id, None))
                    .map_err(|e| (None, e))
            }),
        )
    }

    /// `PATCH /composite/sobjects`: every record names itself with `id`.
    pub fn collection_update(
        &mut self,
        records: &[Json],
        all_or_none: bool,
        user: &Id,
    ) -> Result<Vec<SaveResult>, ApiError> {
        self.collection_update_in(records, all_or_none, user, None)
    }

    /// [`Org::collection_update`]; with `journal`, under a Composite request's `allOrNone`, the
    /// changes go on into it.
    pub(crate) fn collection_update_in(
        &mut self,
        records: &[Json],
        all_or_none: bool,
        user: &Id,
        journal: Option<&mut Journal>,
    ) -> Result<Vec<SaveResult>, ApiError> {
        let records = self.decode_collection(records, None)?;
        Ok(
            self.run_batch(&records, all_or_none, journal, |org, r, journal| {
                org.update_input(r.store, &r.input, *user, journal)
                    .map(|id| (id, None))
            }),
        )
    }

    /// `PATCH /composite/sobjects/X/ExtField`: results carry `created`.
    pub fn collection_upsert(
        &mut self,
        object: &str,
        ext_field: &str,
        records: &[Json],
        all_or_none: bool,
        user: &Id,
    ) -> Result<Vec<SaveResult>, ApiError> {
        let store = self.store_index_or_404(object)?;
        let ext_index = self.external_id_field(store, ext_field)?;
        let records = self.decode_collection(records, Some(store))?;
        Ok(
            self.run_batch(&records, all_or_none, None, |org, r, journal| {
                org.upsert_input(store, ext_index, &r.input, *user, journal)
                    .map(|(id, created)| (id, Some(created)))
            }),
        )
    }

    /// `DELETE /composite/sobjects?ids=…`.
    pub fn collection_delete(
        &mut self,
        ids: &[&str],
        all_or_none: bool,
        user: &Id,
    ) -> Result<Vec<SaveResult>, ApiError> {
        self.collection_delete_in(ids, all_or_none, user, None)
    }

    /// [`Org::collection_delete`]; with `journal`, under a Composite request's `allOrNone`, the
    /// changes go on into it.
    pub(crate) fn collection_delete_in(
        &mut self,
        ids: &[&str],
        all_or_none: bool,
        user: &Id,
        journal: Option<&mut Journal>,
    ) -> Result<Vec<SaveResult>, ApiError> {
        if ids.len() > MAX_RECORDS {
            return Err(too_many());
        }
        let ids: Vec<String> = ids.iter().map(|s| s.trim().to_owned()).collect();
        Ok(
            self.run_batch(&ids, all_or_none, journal, |org, text, journal| {
                org.delete_by_text(text, None, Deletion::RecycleBin, *user, journal)
            }),
        )
    }

    /// `GET /composite/sobjects/X?ids=…&fields=…`: the records in request order, `null`
    /// for each Id that names no live record.
    pub fn collection_retrieve(
        &self,
        object: &str,
        ids: &[&str],
        fields: &str,
        api_version: &str,
    ) -> Result<Vec<Json>, ApiError> {
        let store = &self.stores[self.store_index_or_404(object)?];
        if ids.len() > 2000 {
            return Err(too_many());
        }
        let selected = field_list(&store.def, fields)?;
        Ok(ids
            .iter()
            .map(|text| {
                Id::parse(text.trim())
                    .ok()
                    .filter(|id| id.key_prefix() == store.def.key_prefix)
                    .and_then(|id| store.get(&id))
                    .filter(|r| !store.is_deleted(r))
                    .map_or(Json::Null, |r| {
                        self.record_json(&store.def, r, Some(&selected), api_version)
                    })
            })
            .collect())
    }

    /// Updates the record a body names with its `Id`: `MISSING_ARGUMENT` without one,
    /// `MALFORMED_ID` for an Id of another object (sObject Collections and Bulk updates).
    pub(crate) fn update_input(
        &mut self,
        store: usize,
        input: &Input,
        user: Id,
        journal: &mut Journal,
    ) -> Result<Id, (Option<Id>, SaveError)> {
        let text = input.id.clone().unwrap_or_default();
        let id = Id::parse(&text)
            .ok()
            .filter(|id| self.stores[store].def.key_prefix == id.key_prefix())
            .ok_or_else(|| {
                let error = if text.is_empty() {
                    SaveError::new(
                        "MISSING_ARGUMENT",
                        "Id not specified in an update call",
                        Vec::new(),
                    )
                } else {
                    SaveError::new(
                        "MALFORMED_ID",
                        format!("malformed id {text}"),
                        vec!["Id".to_owned()],
                    )
                };
                (None, error)
            })?;
        let mut input = input.clone();
        input.id = None;
        self.update_record(store, id, &input, user, journal)
            .map(|()| id)
            .map_err(|e| (Some(id), e))
    }

    /// Deletes the record an Id in text names, of `object` when given (a Bulk job's), to
    /// the recycle bin or for good.
    pub(crate) fn delete_by_text(
        &mut self,
        text: &str,
        object: Option<usize>,
        deletion: Deletion,
        user: Id,
        journal: &mut Journal,
    ) -> Result<(Id, Option<bool>), (Option<Id>, SaveError)> {
        let malformed =
            || SaveError::new("MALFORMED_ID", format!("malformed id {text}"), Vec::new());
        let id = Id::parse(text).map_err(|_| (None, malformed()))?;
        let store = self
            .store_index_for_id(&id)
            .filter(|store| object.is_none_or(|object| object == *store))
            .ok_or_else(|| (None, malformed()))?;
        let deleted = match deletion {
            Deletion::RecycleBin => self.delete_record(store, id, user, journal),
            Deletion::Hard => self.hard_delete_record(store, id, user, journal),
        };
        deleted.map(|()| (id, None)).map_err(|e| (Some(id), e))
    }

    /// Checks a Collections body as a whole: at most 200 records, each an object naming
    /// its type (or of `object` for upserts), with fields that exist and values of the
    /// right JSON type. Any failure refuses the whole request.
    fn decode_collection(
        &self,
        records: &[Json],
        object: Option<usize>,
    ) -> Result<Vec<CollectionRecord>, ApiError> {
        if records.len() > MAX_RECORDS {
            return Err(too_many());
        }
        records
            .iter()
            .map(|record| {
                let Json::Object(fields) = record else {
                    return Err(ApiError::new(
                        400,
                        "JSON_PARSER_ERROR",
                        "Cannot deserialize instance of SObject from non-object value",
                    ));
                };
                let store = match (object, type_of(fields)) {
                    (Some(store), None) => store,
                    (Some(store), Some(t))
                        if self.stores[store].def.name.eq_ignore_ascii_case(t) =>
                    {
                        store
                    }
                    (Some(_), Some(t)) | (None, Some(t)) => {
                        self.store_index(t).ok_or_else(|| {
                            ApiError::new(
                                400,
                                "INVALID_TYPE",
                                format!("sObject type '{t}' is not supported."),
                            )
                        })?
                    }
                    (None, None) => {
                        return Err(ApiError::new(
                            400,
                            "INVALID_TYPE",
                            "No SObject Type defined in the attributes",
                        ));
                    }
                };
                let input = decode(&self.stores[store].def, fields)?;
                Ok(CollectionRecord { store, input })
            })
            .collect()
    }

    /// Runs `save` over `items` in order and shapes the results; under `allOrNone` a
    /// single failure undoes every change and marks the successful siblings rolled back.
    /// A batch that stands is handed to `outer`, when given.
    fn run_batch<T>(
        &mut self,
        items: &[T],
        all_or_none: bool,
        outer: Option<&mut Journal>,
        mut save: impl FnMut(
            &mut Org,
            &T,
            &mut Journal,
        ) -> Result<(Id, Option<bool>), (Option<Id>, SaveError)>,
    ) -> Vec<SaveResult> {
        let mut journal = Journal::default();
        let outcomes: Vec<_> = items
            .iter()
            .map(|item| {
                if all_or_none {
                    save(self, item, &mut journal)
                } else {
                    save(self, item, &mut Journal::default())
                }
            })
            .collect();
        let failed = outcomes.iter().any(Result::is_err);
        if all_or_none && failed {
            self.roll_back(journal);
            return outcomes
                .into_iter()
                .map(|outcome| match outcome {
                    Ok((id, _)) => SaveResult {
                        // A rolled-back create never existed; an updated or deleted record
                        // still does and keeps its Id.
                        id: self
                            .store_for_id(&id)
                            .and_then(|s| s.get(&id))
                            .map(|_| id.to_string()),
                        success: false,
                        errors: vec![SaveError::rolled_back()],
                        created: None,
                    },
                    Err((id, error)) => SaveResult::failed(id.map(|i| i.to_string()), error),
                })
                .collect();
        }
        if let Some(outer) = outer {
            outer.append(journal);
        }
        outcomes
            .into_iter()
            .map(|outcome| match outcome {
                Ok((id, created)) => self.created_result(id, created),
                Err((id, error)) => SaveResult::failed(id.map(|i| i.to_string()), error),
            })
            .collect()
    }
}

fn type_of(fields: &Map<String, Json>) -> Option<&str> {
    fields.get("attributes")?.get("type")?.as_str()
}
