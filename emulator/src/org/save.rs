//! Saving records: create, update, delete and undelete, each enforcing what Salesforce
//! enforces, in its order: writable fields, field formats (Ids, lengths, picklists,
//! numbers, emails), required fields, lookups, validation rules, then unique values.
//!
//! Every change goes through a [`Journal`], so sObject Collections can undo a whole batch
//! under `allOrNone`. What a value must be to be saved is in `checks`.

mod checks;

use std::sync::Arc;

use serde_json::{Map, Value as Json};

use self::checks::rule_error;
use super::input::{Assignment, Input, decode};
use super::store::DeletedRecord;
use super::{ApiError, Org, SaveError};
use crate::ids::Id;
use crate::model::{FieldType, ObjectDef, Record, Value};

/// What a batch changed, newest last, so it can be undone.
#[derive(Debug, Default)]
pub struct Journal {
    entries: Vec<Entry>,
}

#[derive(Debug)]
enum Entry {
    /// `store`'s record `id` held `previous` before.
    Record {
        store: usize,
        id: Id,
        previous: Option<Arc<Record>>,
    },
    /// A delete log entry was appended to `store`.
    DeleteLogged { store: usize },
    /// A platform event was prepared for publishing at commit.
    EventPrepared,
}

impl Journal {
    /// Takes over what `other` recorded, after what this one holds, so that one roll back
    /// undoes both (a Composite request's subrequests share one journal).
    pub(crate) fn append(&mut self, other: Journal) {
        self.entries.extend(other.entries);
    }

    /// Notes that a platform event was prepared: a roll back drops it unpublished.
    pub(super) fn event_prepared(&mut self) {
        self.entries.push(Entry::EventPrepared);
    }
}

/// Where a deleted record goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Deletion {
    /// The recycle bin (`IsDeleted = true`), whence it can be undeleted.
    RecycleBin,
    /// Nowhere: Bulk API's `hardDelete`.
    Hard,
}

impl Org {
    /// Stores a record and notes what it replaced.
    fn put(&mut self, store: usize, id: Id, record: Option<Record>, journal: &mut Journal) {
        let previous = self.stores[store].put(id, record.map(Arc::new));
        // The one place every record write passes: Change Data Capture notes it here.
        self.note_change(store, id, &previous);
        journal.entries.push(Entry::Record {
            store,
            id,
            previous,
        });
    }

    /// Undoes everything `journal` recorded, newest first.
    pub(crate) fn roll_back(&mut self, journal: Journal) {
        for entry in journal.entries.into_iter().rev() {
            match entry {
                Entry::Record {
                    store,
                    id,
                    previous,
                } => {
                    self.stores[store].put(id, previous);
                }
                Entry::DeleteLogged { store } => {
                    self.stores[store].delete_log.pop();
                }
                Entry::EventPrepared => self.drop_prepared_event(),
            }
        }
    }

    /// `POST /sobjects/X/`: creates a record and returns its Id.
    pub fn create(
        &mut self,
        object: &str,
        body: &Map<String, Json>,
        user: &Id,
    ) -> Result<Id, ApiError> {
        self.create_journaled(object, body, user, &mut Journal::default())
    }

    /// [`Org::create`], noting the change in `journal`.
    pub(crate) fn create_journaled(
        &mut self,
        object: &str,
        body: &Map<String, Json>,
        user: &Id,
        journal: &mut Journal,
    ) -> Result<Id, ApiError> {
        let store = self.store_index_or_404(object)?;
        let input = decode(&self.stores[store].def, body)?;
        if !self.stores[store].def.createable {
            return Err(cannot_create(&self.stores[store].def).into());
        }
        Ok(self.create_record(store, &input, *user, journal)?)
    }

    /// `PATCH /sobjects/X/id`: updates a record.
    pub fn update(
        &mut self,
        object: &str,
        id: &str,
        body: &Map<String, Json>,
        user: &Id,
    ) -> Result<(), ApiError> {
        self.update_journaled(object, id, body, user, &mut Journal::default())
    }

    /// [`Org::update`], noting the change in `journal`.
    pub(crate) fn update_journaled(
        &mut self,
        object: &str,
        id: &str,
        body: &Map<String, Json>,
        user: &Id,
        journal: &mut Journal,
    ) -> Result<(), ApiError> {
        let store = self.store_index_or_404(object)?;
        let id = self.url_id(store, id)?;
        let input = decode(&self.stores[store].def, body)?;
        if let Some(body_id) = &input.id
            && Id::parse(body_id).ok() != Some(id)
        {
            return Err(ApiError::new(
                400,
                "INVALID_FIELD",
                "The Id field should not be specified in the sobject data.",
            ));
        }
        Ok(self.update_record(store, id, &input, *user, journal)?)
    }

    /// `DELETE /sobjects/X/id`: moves a record to the recycle bin.
    pub fn delete(&mut self, object: &str, id: &str, user: &Id) -> Result<(), ApiError> {
        self.delete_journaled(object, id, user, &mut Journal::default())
    }

    /// [`Org::delete`], noting the change in `journal`.
    pub(crate) fn delete_journaled(
        &mut self,
        object: &str,
        id: &str,
        user: &Id,
        journal: &mut Journal,
    ) -> Result<(), ApiError> {
        let store = self.store_index_or_404(object)?;
        let id = self.url_id(store, id)?;
        Ok(self.delete_record(store, id, *user, journal)?)
    }

    /// Restores a record from the recycle bin (the admin API's undelete).
    pub fn undelete(&mut self, id: &str, user: &Id) -> Result<(), ApiError> {
        let parsed = Id::parse(id).map_err(|_| malformed_id(id))?;
        let store = self
            .store_index_for_id(&parsed)
            .ok_or_else(ApiError::not_found)?;
        Ok(self.undelete_record(store, parsed, *user, &mut Journal::default())?)
    }

    /// `GET /sobjects/X/id[?fields=A,B]`: one record, every field or those listed.
    pub fn retrieve(
        &self,
        object: &str,
        id: &str,
        fields: Option<&str>,
        api_version: &str,
    ) -> Result<Json, ApiError> {
        let store = self.store_index_or_404(object)?;
        let id = self.url_id(store, id)?;
        let store = &self.stores[store];
        let record = store.get(&id).ok_or_else(ApiError::not_found)?;
        if store.is_deleted(record) {
            return Err(SaveError::entity_is_deleted().into());
        }
        let selected = fields.map(|f| field_list(&store.def, f)).transpose()?;
        Ok(self.record_json(&store.def, record, selected.as_deref(), api_version))
    }

    /// Creates a record with back-dated audit fields: created at `created`, last changed
    /// at `modified` (the data generator's path; every rule of a create still applies).
    pub(crate) fn insert_backdated(
        &mut self,
        store: usize,
        values: Vec<(usize, Value)>,
        user: Id,
        created: chrono::DateTime<chrono::Utc>,
        modified: chrono::DateTime<chrono::Utc>,
    ) -> Result<Id, SaveError> {
        let input = Input {
            assignments: values
                .into_iter()
                .map(|(field, value)| Assignment::Set { field, value })
                .collect(),
            id: None,
        };
        let created = super::clock::whole_seconds(created);
        let modified = super::clock::whole_seconds(modified).max(created);
        let id = self.create_record_at(store, &input, user, created, &mut Journal::default())?;
        if modified != created {
            let s = &mut self.stores[store];
            let system = s.def.system;
            if let Some(record) = s.records.get_mut(&id).map(Arc::make_mut) {
                record.values[system.last_modified_date] = Value::DateTime(modified);
                record.values[system.system_modstamp] = Value::DateTime(modified);
            }
        }
        Ok(id)
    }

    /// The Id in a record URL: 404 when it is no Id at all (Salesforce then reads the
    /// segment as an external-id field name), `MALFORMED_ID` when it names another object.
    pub(crate) fn url_id(&self, store: usize, text: &str) -> Result<Id, ApiError> {
        let def = &self.stores[store].def;
        let id = Id::parse(text).map_err(|_| {
            ApiError::new(
                404,
                "NOT_FOUND",
                format!("Provided external ID field does not exist or is not accessible: {text}"),
            )
        })?;
        if id.key_prefix() != def.key_prefix {
            return Err(ApiError::new(
                400,
                "MALFORMED_ID",
                format!("{} ID: id value of incorrect type: {text}", def.label),
            )
            .with_fields(vec!["Id".to_owned()]));
        }
        Ok(id)
    }

    pub(crate) fn create_record(
        &mut self,
        store: usize,
        input: &Input,
        user: Id,
        journal: &mut Journal,
    ) -> Result<Id, SaveError> {
        if self.stores[store].def.is_platform_event() {
            // A create of an event object publishes it (at commit); nothing is stored.
            return self.prepare_event(store, input, user, journal);
        }
        let now = self.stamp();
        self.create_record_at(store, input, user, now, journal)
    }

    /// [`Org::create_record`] with the audit timestamps set to `now` (the generator
    /// back-dates records this way).
    pub(crate) fn create_record_at(
        &mut self,
        store: usize,
        input: &Input,
        user: Id,
        now: chrono::DateTime<chrono::Utc>,
        journal: &mut Journal,
    ) -> Result<Id, SaveError> {
        let mut record = self.new_record(store, input, user)?;
        let id = self.mint(store, &mut record, user, now);
        let s = &self.stores[store];
        if let Some((field, other)) = s.unique_conflict(&record, Some(id)) {
            return Err(SaveError::duplicate(&s.def.fields[field], other.as_str()));
        }
        self.put(store, id, Some(record), journal);
        Ok(id)
    }

    /// The record `input` creates, before it has an Id: writable fields only, values in
    /// their fields' formats, defaults applied, required fields present, validation rules
    /// passed.
    pub(super) fn new_record(
        &self,
        store: usize,
        input: &Input,
        user: Id,
    ) -> Result<Record, SaveError> {
        if input.id.is_some() {
            return Err(SaveError::new(
                "INVALID_FIELD",
                "cannot specify Id in an insert call",
                vec!["Id".to_owned()],
            ));
        }
        let def = &self.stores[store].def;
        let read_only: Vec<String> = input
            .assignments
            .iter()
            .map(|a| &def.fields[a.field()])
            .filter(|f| !f.createable)
            .map(|f| f.name.clone())
            .collect();
        if !read_only.is_empty() {
            return Err(SaveError::not_writable(read_only));
        }
        let mut record = Record::empty(def.fields.len());
        let mut written = Vec::with_capacity(input.assignments.len());
        for assignment in &input.assignments {
            let value = self.assigned_value(def, assignment)?;
            record.values[assignment.field()] = value;
            written.push(assignment.field());
        }
        self.apply_defaults(def, &mut record, &written, user)?;
        let checked: Vec<usize> = (0..def.fields.len()).collect();
        self.check_fields(def, &mut record, &checked)?;
        let missing: Vec<String> = def
            .fields
            .iter()
            .enumerate()
            .filter(|(i, f)| f.is_required_on_create() && record.get(*i).is_null())
            .map(|(_, f)| f.name.clone())
            .collect();
        if !missing.is_empty() {
            return Err(SaveError::required_missing(missing));
        }
        if let Some(rule) = self.failing_rule(def, &record) {
            return Err(rule_error(def, rule));
        }
        Ok(record)
    }

    /// Gives a new record of `store` its Id, audit fields (created and modified by `user`
    /// at `now`), and auto-numbers; returns the Id.
    fn mint(
        &mut self,
        store: usize,
        record: &mut Record,
        user: Id,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Id {
        let s = &mut self.stores[store];
        let id = s.mint_id();
        let system = s.def.system;
        record.values[system.id] = Value::text(id.as_str());
        if let Some(i) = system.is_deleted {
            record.values[i] = Value::Bool(false);
        }
        for i in [
            system.created_date,
            system.last_modified_date,
            system.system_modstamp,
        ] {
            record.values[i] = Value::DateTime(now);
        }
        for i in [system.created_by_id, system.last_modified_by_id] {
            record.values[i] = Value::text(user.as_str());
        }
        let auto_numbers: Vec<(usize, Option<String>)> = s
            .def
            .fields
            .iter()
            .enumerate()
            .filter(|(_, f)| f.auto_number)
            .map(|(i, f)| (i, f.display_format.clone()))
            .collect();
        for (i, format) in auto_numbers {
            record.values[i] = Value::text(s.next_auto_number(format.as_deref()));
        }
        id
    }

    pub(crate) fn update_record(
        &mut self,
        store: usize,
        id: Id,
        input: &Input,
        user: Id,
        journal: &mut Journal,
    ) -> Result<(), SaveError> {
        let s = &self.stores[store];
        let def = &s.def;
        if !def.updateable {
            return Err(insufficient_access(&id));
        }
        let current = s.get(&id).ok_or_else(|| missing_record(&id))?;
        if s.is_deleted(current) {
            return Err(SaveError::entity_is_deleted());
        }
        let read_only: Vec<String> = input
            .assignments
            .iter()
            .map(|a| &def.fields[a.field()])
            .filter(|f| !f.updateable)
            .map(|f| f.name.clone())
            .collect();
        if !read_only.is_empty() {
            return Err(SaveError::not_writable(read_only));
        }
        let mut record = current.clone();
        let mut written = Vec::with_capacity(input.assignments.len());
        for assignment in &input.assignments {
            let value = self.assigned_value(def, assignment)?;
            if def.fields[assignment.field()].field_type == FieldType::Boolean && value.is_null() {
                record.values[assignment.field()] = Value::Bool(false);
            } else {
                record.values[assignment.field()] = value;
            }
            written.push(assignment.field());
        }
        self.check_fields(def, &mut record, &written)?;
        let missing: Vec<String> = written
            .iter()
            .map(|&i| (i, &def.fields[i]))
            .filter(|(i, f)| !f.nillable && record.get(*i).is_null())
            .map(|(_, f)| f.name.clone())
            .collect();
        if !missing.is_empty() {
            return Err(SaveError::required_missing(missing));
        }
        if let Some(rule) = self.failing_rule(def, &record) {
            return Err(rule_error(def, rule));
        }
        if let Some((field, other)) = s.unique_conflict(&record, Some(id)) {
            return Err(SaveError::duplicate(&def.fields[field], other.as_str()));
        }
        let system = def.system;
        let now = self.stamp();
        record.values[system.last_modified_date] = Value::DateTime(now);
        record.values[system.system_modstamp] = Value::DateTime(now);
        record.values[system.last_modified_by_id] = Value::text(user.as_str());
        self.put(store, id, Some(record), journal);
        Ok(())
    }

    pub(crate) fn delete_record(
        &mut self,
        store: usize,
        id: Id,
        user: Id,
        journal: &mut Journal,
    ) -> Result<(), SaveError> {
        let s = &self.stores[store];
        let (Some(is_deleted), true) = (s.def.system.is_deleted, s.def.deletable) else {
            return Err(insufficient_access(&id));
        };
        let current = s.get(&id).ok_or_else(|| missing_record(&id))?;
        if s.is_deleted(current) {
            return Err(SaveError::entity_is_deleted());
        }
        let mut record = current.clone();
        let system = s.def.system;
        let now = self.stamp();
        record.values[is_deleted] = Value::Bool(true);
        record.values[system.last_modified_date] = Value::DateTime(now);
        record.values[system.system_modstamp] = Value::DateTime(now);
        record.values[system.last_modified_by_id] = Value::text(user.as_str());
        self.put(store, id, Some(record), journal);
        self.stores[store].delete_log.push(DeletedRecord {
            id,
            deleted_date: now,
        });
        journal.entries.push(Entry::DeleteLogged { store });
        Ok(())
    }

    /// Bulk API's `hardDelete`: the record skips the recycle bin and is gone at once (no
    /// undelete, not in `queryAll`), its unique values freed; like any delete it is
    /// logged for `deleted/`. The same refusals as [`Org::delete_record`].
    pub(crate) fn hard_delete_record(
        &mut self,
        store: usize,
        id: Id,
        user: Id,
        journal: &mut Journal,
    ) -> Result<(), SaveError> {
        let s = &self.stores[store];
        let (Some(_), true) = (s.def.system.is_deleted, s.def.deletable) else {
            return Err(insufficient_access(&id));
        };
        let current = s.get(&id).ok_or_else(|| missing_record(&id))?;
        if s.is_deleted(current) {
            return Err(SaveError::entity_is_deleted());
        }
        let _ = user;
        let now = self.stamp();
        self.put(store, id, None, journal);
        self.stores[store].delete_log.push(DeletedRecord {
            id,
            deleted_date: now,
        });
        journal.entries.push(Entry::DeleteLogged { store });
        Ok(())
    }

    pub(crate) fn undelete_record(
        &mut self,
        store: usize,
        id: Id,
        user: Id,
        journal: &mut Journal,
    ) -> Result<(), SaveError> {
        let s = &self.stores[store];
        let current = s.get(&id).ok_or_else(|| missing_record(&id))?;
        let Some(is_deleted) = s.def.system.is_deleted.filter(|_| s.is_deleted(current)) else {
            return Err(SaveError::new(
                "UNDELETE_FAILED",
                "Entity is not in the recycle bin",
                Vec::new(),
            ));
        };
        let mut record = current.clone();
        record.values[is_deleted] = Value::Bool(false);
        if let Some((field, other)) = s.unique_conflict(&record, Some(id)) {
            return Err(SaveError::duplicate(&s.def.fields[field], other.as_str()));
        }
        let system = s.def.system;
        let now = self.stamp();
        record.values[system.last_modified_date] = Value::DateTime(now);
        record.values[system.system_modstamp] = Value::DateTime(now);
        record.values[system.last_modified_by_id] = Value::text(user.as_str());
        self.put(store, id, Some(record), journal);
        Ok(())
    }
}

fn missing_record(id: &Id) -> SaveError {
    let _ = id;
    SaveError::new(
        "NOT_FOUND",
        "The requested resource does not exist",
        Vec::new(),
    )
}

fn insufficient_access(id: &Id) -> SaveError {
    SaveError::new(
        "INSUFFICIENT_ACCESS_OR_READONLY",
        format!("insufficient access rights on object id: {id}"),
        Vec::new(),
    )
}

fn cannot_create(def: &ObjectDef) -> SaveError {
    SaveError::new(
        "INSUFFICIENT_ACCESS_OR_READONLY",
        format!("You do not have permission to create {} records", def.label),
        Vec::new(),
    )
}

pub(crate) fn malformed_id(text: &str) -> ApiError {
    ApiError::new(400, "MALFORMED_ID", format!("malformed id {text}"))
        .with_fields(vec!["Id".to_owned()])
}

/// The positions of a `fields=` list, refusing names the object does not have.
pub(crate) fn field_list(def: &ObjectDef, list: &str) -> Result<Vec<usize>, ApiError> {
    list.split(',')
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(|name| {
            def.field(name)
                .map(|(i, _)| i)
                .ok_or_else(|| ApiError::no_such_column_on_entity(def, name))
        })
        .collect()
}
