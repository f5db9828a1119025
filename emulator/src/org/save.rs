//! Saving records: create, update, delete and undelete, each enforcing what Salesforce
//! enforces, in its order: writable fields, field formats (Ids, lengths, picklists,
//! numbers, emails), required fields, lookups, validation rules, then unique values.
//!
//! Every change goes through a [`Journal`], so sObject Collections can undo a whole batch
//! under `allOrNone`.

use serde_json::{Map, Value as Json};

use super::input::{Assignment, Input, decode, decode_value};
use super::store::DeletedRecord;
use super::{ApiError, Org, SaveError};
use crate::ids::Id;
use crate::model::{FieldDef, FieldType, ObjectDef, Record, Value};

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
        previous: Option<Record>,
    },
    /// A delete log entry was appended to `store`.
    DeleteLogged { store: usize },
}

impl Journal {
    /// Takes over what `other` recorded, after what this one holds, so that one roll back
    /// undoes both (a Composite request's subrequests share one journal).
    pub(crate) fn append(&mut self, other: Journal) {
        self.entries.extend(other.entries);
    }
}

impl Org {
    /// Stores a record and notes what it replaced.
    fn put(&mut self, store: usize, id: Id, record: Option<Record>, journal: &mut Journal) {
        let previous = self.stores[store].put(id, record);
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
            if let Some(record) = s.records.get_mut(&id) {
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
        if let Some((field, other)) = s.unique_conflict(&record, Some(id)) {
            return Err(SaveError::duplicate(&s.def.fields[field], other.as_str()));
        }
        self.put(store, id, Some(record), journal);
        Ok(id)
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

    /// The value an assignment writes, resolving a lookup given by external id.
    fn assigned_value(&self, def: &ObjectDef, assignment: &Assignment) -> Result<Value, SaveError> {
        match assignment {
            Assignment::Set { value, .. } => Ok(value.clone()),
            Assignment::ByExternalId {
                field,
                ext_field,
                value,
            } => {
                let lookup = &def.fields[*field];
                let parent = lookup
                    .reference_to
                    .first()
                    .and_then(|name| self.store(name))
                    .ok_or_else(|| SaveError::missing_reference(lookup))?;
                let Some((ext_index, ext)) = parent
                    .def
                    .field(ext_field)
                    .filter(|(_, f)| f.external_id || f.id_lookup)
                else {
                    return Err(SaveError::new(
                        "INVALID_FIELD",
                        format!(
                            "Field name provided, {ext_field} is not an External ID or indexed \
                             field for {}",
                            parent.def.name
                        ),
                        vec![lookup.name.clone()],
                    ));
                };
                let matches = if ext.field_type == FieldType::Id {
                    Id::parse(value)
                        .ok()
                        .filter(|id| parent.get(id).is_some_and(|r| !parent.is_deleted(r)))
                        .into_iter()
                        .collect()
                } else {
                    parent.find_by_value(ext_index, value, ext.case_sensitive)
                };
                match matches.as_slice() {
                    [one] => Ok(Value::text(one.as_str())),
                    [] => Err(SaveError::new(
                        "INVALID_FIELD",
                        format!(
                            "Foreign key external ID: {value} not found for field {} in entity {}",
                            ext.name, parent.def.name
                        ),
                        vec![lookup.name.clone()],
                    )),
                    _ => Err(SaveError::new(
                        "DUPLICATE_EXTERNAL_ID",
                        format!(
                            "Foreign key external ID: {value} matched more than one record for \
                             field {} in entity {}",
                            ext.name, parent.def.name
                        ),
                        vec![lookup.name.clone()],
                    )),
                }
            }
        }
    }

    /// Fills what a create left out: the owner (the acting user), literal and picklist
    /// defaults, and unchecked checkboxes (a checkbox is never null, even when a body
    /// sends `null`).
    fn apply_defaults(
        &self,
        def: &ObjectDef,
        record: &mut Record,
        written: &[usize],
        user: Id,
    ) -> Result<(), SaveError> {
        for (i, field) in def.fields.iter().enumerate() {
            let is_boolean = field.field_type == FieldType::Boolean;
            if written.contains(&i) {
                if is_boolean && record.get(i).is_null() {
                    record.values[i] = Value::Bool(false);
                }
                continue;
            }
            record.values[i] = if def.system.owner_id == Some(i) {
                Value::text(user.as_str())
            } else if let Some(json) = field.default_value.as_ref().filter(|_| field.createable) {
                decode_value(field, json).map_err(|e| {
                    SaveError::new("INVALID_FIELD", e.message, vec![field.name.clone()])
                })?
            } else if let Some(p) = field
                .picklist_values
                .iter()
                .find(|p| p.default_value && p.active)
            {
                Value::text(p.value.as_str())
            } else if is_boolean {
                Value::Bool(false)
            } else {
                continue;
            };
        }
        Ok(())
    }

    /// Checks and normalises the values of `fields`: text lengths, restricted
    /// picklists, emails, numbers (rounded to the field's scale), and lookups.
    fn check_fields(
        &self,
        def: &ObjectDef,
        record: &mut Record,
        fields: &[usize],
    ) -> Result<(), SaveError> {
        for &i in fields {
            let field = &def.fields[i];
            if field.is_computed() {
                continue;
            }
            let normalised = match record.get(i) {
                Value::Null => continue,
                Value::Text(text) => self.check_text(field, text)?,
                Value::Double(n) => Some(check_number(field, *n)?),
                Value::Int(n) => {
                    let digits = if field.digits == 0 { 18 } else { field.digits };
                    if n.unsigned_abs().to_string().len() > digits as usize {
                        return Err(out_of_range(field, &n.to_string()));
                    }
                    None
                }
                _ => None,
            };
            if let Some(v) = normalised {
                record.values[i] = v;
            }
        }
        Ok(())
    }

    fn check_text(&self, field: &FieldDef, text: &str) -> Result<Option<Value>, SaveError> {
        match field.field_type {
            FieldType::Reference => return self.check_reference(field, text).map(Some),
            FieldType::Id => return Ok(None),
            _ => {}
        }
        if field.length > 0 && text.chars().count() > field.length as usize {
            return Err(SaveError::too_long(field, text));
        }
        match field.field_type {
            FieldType::Picklist
                if field.restricted_picklist
                    && !field
                        .picklist_values
                        .iter()
                        .any(|p| p.active && p.value == text) =>
            {
                return Err(SaveError::bad_picklist_value(field, text));
            }
            FieldType::Multipicklist => {
                let mut chosen: Vec<&str> = Vec::new();
                for value in text.split(';').map(str::trim).filter(|v| !v.is_empty()) {
                    if field.restricted_picklist
                        && !field
                            .picklist_values
                            .iter()
                            .any(|p| p.active && p.value == value)
                    {
                        return Err(SaveError::bad_picklist_value(field, value));
                    }
                    if !chosen.contains(&value) {
                        chosen.push(value);
                    }
                }
                let joined = chosen.join(";");
                if joined != text {
                    return Ok(Some(if joined.is_empty() {
                        Value::Null
                    } else {
                        Value::text(joined)
                    }));
                }
            }
            FieldType::Email if !looks_like_email(text) => {
                return Err(SaveError::new(
                    "INVALID_EMAIL_ADDRESS",
                    format!("{}: invalid email address: {text}", field.label),
                    vec![field.name.clone()],
                ));
            }
            _ => {}
        }
        Ok(None)
    }

    /// A lookup must hold an Id of an object it may point to, of a live record; it is
    /// stored in its 18-character form.
    fn check_reference(&self, field: &FieldDef, text: &str) -> Result<Value, SaveError> {
        let id = Id::parse(text).map_err(|_| SaveError::malformed_reference(field, text))?;
        let target = self
            .store_for_id(&id)
            .filter(|s| {
                field
                    .reference_to
                    .iter()
                    .any(|t| t.eq_ignore_ascii_case(&s.def.name))
            })
            .ok_or_else(|| SaveError::wrong_reference_type(field, text))?;
        match target.get(&id) {
            Some(r) if !target.is_deleted(r) => Ok(Value::text(id.as_str())),
            _ => Err(SaveError::missing_reference(field)),
        }
    }
}

/// A number rounded to the field's scale, refused when its integer part has more digits
/// than `precision - scale` allows.
fn check_number(field: &FieldDef, n: f64) -> Result<Value, SaveError> {
    if field.precision == 0 {
        return Ok(Value::Double(n));
    }
    let factor = 10f64.powi(field.scale as i32);
    let rounded = (n * factor).round() / factor;
    let integer_digits = field.precision.saturating_sub(field.scale) as i32;
    if rounded.abs() >= 10f64.powi(integer_digits) {
        return Err(out_of_range(field, &n.to_string()));
    }
    Ok(Value::Double(rounded))
}

fn out_of_range(field: &FieldDef, value: &str) -> SaveError {
    SaveError::new(
        "NUMBER_OUTSIDE_VALID_RANGE",
        format!(
            "{}: value outside of valid range on numeric field: {value}",
            field.label
        ),
        vec![field.name.clone()],
    )
}

/// Salesforce's check is looser than RFC 5322 and stricter than "has an @": one `@`, a
/// non-empty local part, and a dotted domain.
fn looks_like_email(text: &str) -> bool {
    let Some((local, domain)) = text.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !text.contains(char::is_whitespace)
}

fn rule_error(def: &ObjectDef, rule: &crate::model::ValidationRule) -> SaveError {
    let fields = rule
        .error_display_field
        .as_deref()
        .and_then(|f| def.field(f))
        .map(|(_, f)| vec![f.name.clone()])
        .unwrap_or_default();
    SaveError::new(
        "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        rule.error_message.clone(),
        fields,
    )
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
