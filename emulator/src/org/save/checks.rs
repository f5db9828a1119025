//! What a value must be to be saved, field by field, as Salesforce checks it: writable,
//! in the field's format (Ids, lengths, picklists, numbers, emails), defaults applied,
//! lookups pointing to live records of the right object; and the error a failing
//! validation rule raises.

use super::super::input::{Assignment, decode_value};
use super::super::{Org, SaveError};
use crate::ids::Id;
use crate::model::{FieldDef, FieldType, ObjectDef, Record, Value};

impl Org {
    /// The value an assignment writes, resolving a lookup given by external id.
    pub(super) fn assigned_value(
        &self,
        def: &ObjectDef,
        assignment: &Assignment,
    ) -> Result<Value, SaveError> {
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
    pub(super) fn apply_defaults(
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
    pub(super) fn check_fields(
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

    pub(super) fn check_text(
        &self,
        field: &FieldDef,
        text: &str,
    ) -> Result<Option<Value>, SaveError> {
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
    pub(super) fn check_reference(&self, field: &FieldDef, text: &str) -> Result<Value, SaveError> {
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

pub(super) fn rule_error(def: &ObjectDef, rule: &crate::model::ValidationRule) -> SaveError {
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
