//! Decoding a record body (`{"attributes": ..., "Name": "Acme", ...}`) into field
//! assignments, the way Salesforce's deserializer does: field names ignore case, scalars
//! are coerced where Salesforce coerces them (`"100"` into a number, `"true"` into a
//! checkbox), and anything else fails the request with `JSON_PARSER_ERROR` or
//! `INVALID_FIELD` before any record is looked at.

use serde_json::{Map, Value as Json};

use super::ApiError;
use crate::model::{FieldDef, FieldType, ObjectDef, Value, parse_date, parse_datetime, parse_time};

/// One field a body sets.
#[derive(Debug, Clone, PartialEq)]
pub enum Assignment {
    /// `field` gets `value` (`Null` clears it).
    Set { field: usize, value: Value },
    /// A lookup set through the parent's external id:
    /// `"Account__r": {"External_Id__c": "X-1"}`.
    ByExternalId {
        field: usize,
        ext_field: String,
        value: String,
    },
}

impl Assignment {
    pub fn field(&self) -> usize {
        match self {
            Assignment::Set { field, .. } | Assignment::ByExternalId { field, .. } => *field,
        }
    }
}

/// A decoded record body.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Input {
    pub assignments: Vec<Assignment>,
    /// The body's `Id`, if it has one (updates name their record this way).
    pub id: Option<String>,
}

/// Decodes a record body for `object`.
pub fn decode(object: &ObjectDef, body: &Map<String, Json>) -> Result<Input, ApiError> {
    let mut input = Input::default();
    for (key, json) in body {
        if key == "attributes" {
            continue;
        }
        if key.eq_ignore_ascii_case("Id") {
            input.id = match json {
                Json::Null => None,
                Json::String(s) => Some(s.trim().to_owned()),
                other => Some(other.to_string()),
            };
            continue;
        }
        if let Some((index, field)) = object.field(key) {
            let value = decode_value(field, json)?;
            input.assignments.push(Assignment::Set {
                field: index,
                value,
            });
            continue;
        }
        if let Some((index, _)) = object.relationship(key)
            && let Json::Object(parent) = json
        {
            input
                .assignments
                .push(by_external_id(object, index, parent)?);
            continue;
        }
        return Err(ApiError::no_such_column(object, key));
    }
    Ok(input)
}

/// `{"External_Id__c": "X-1"}` (and optionally `attributes`) under a relationship name.
fn by_external_id(
    object: &ObjectDef,
    field: usize,
    parent: &Map<String, Json>,
) -> Result<Assignment, ApiError> {
    let mut keys = parent.iter().filter(|(k, _)| k.as_str() != "attributes");
    match (keys.next(), keys.next()) {
        (Some((ext_field, value)), None) => {
            let value = match value {
                Json::String(s) => s.clone(),
                Json::Number(n) => n.to_string(),
                _ => {
                    return Err(ApiError::new(
                        400,
                        "INVALID_FIELD",
                        format!(
                            "The value provided for foreign key reference {} is not a nested \
                             SObject",
                            object.fields[field]
                                .relationship_name
                                .as_deref()
                                .unwrap_or("")
                        ),
                    ));
                }
            };
            Ok(Assignment::ByExternalId {
                field,
                ext_field: ext_field.clone(),
                value,
            })
        }
        _ => Err(ApiError::new(
            400,
            "INVALID_FIELD",
            format!(
                "The value provided for foreign key reference {} is not a nested SObject",
                object.fields[field]
                    .relationship_name
                    .as_deref()
                    .unwrap_or("")
            ),
        )),
    }
}

/// The Jackson token name of a JSON value, as Salesforce's messages show it.
fn token(json: &Json) -> &'static str {
    match json {
        Json::Null => "VALUE_NULL",
        Json::Bool(true) => "VALUE_TRUE",
        Json::Bool(false) => "VALUE_FALSE",
        Json::Number(n) if n.is_f64() => "VALUE_NUMBER_FLOAT",
        Json::Number(_) => "VALUE_NUMBER_INT",
        Json::String(_) => "VALUE_STRING",
        Json::Array(_) => "START_ARRAY",
        Json::Object(_) => "START_OBJECT",
    }
}

fn mismatch(field: &FieldDef, json: &Json) -> ApiError {
    match json {
        Json::Array(_) | Json::Object(_) => ApiError::cannot_deserialize(field, token(json), None),
        Json::String(s) => ApiError::cannot_deserialize(field, token(json), Some(s)),
        other => ApiError::cannot_deserialize(field, token(other), Some(&other.to_string())),
    }
}

/// One JSON value as `field`'s type. Text is trimmed (text areas keep their inner
/// whitespace) and empty text becomes null, as Salesforce never stores `''`.
pub fn decode_value(field: &FieldDef, json: &Json) -> Result<Value, ApiError> {
    if json.is_null() {
        return Ok(Value::Null);
    }
    let t = field.field_type;
    let text = || -> Option<String> {
        match json {
            Json::String(s) => Some(s.clone()),
            Json::Number(n) => Some(n.to_string()),
            Json::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    };
    let value = match t {
        FieldType::Boolean => decode_bool(field, json)?,
        FieldType::Int | FieldType::Double | FieldType::Currency | FieldType::Percent => {
            decode_number(field, json)?
        }
        FieldType::Date | FieldType::Datetime | FieldType::Time => decode_temporal(field, json)?,
        // Compound fields are read-only; the save refuses them by name, whatever the value.
        FieldType::Address | FieldType::Location => Value::Null,
        FieldType::Textarea => {
            let s = text().ok_or_else(|| mismatch(field, json))?;
            if s.trim().is_empty() {
                Value::Null
            } else {
                Value::text(s)
            }
        }
        _ => {
            let s = text().ok_or_else(|| mismatch(field, json))?;
            let s = s.trim();
            if s.is_empty() {
                Value::Null
            } else {
                Value::text(s)
            }
        }
    };
    Ok(value)
}

/// A boolean: JSON's, `"true"`/`"false"` in any case, or an integer (0 is false).
fn decode_bool(field: &FieldDef, json: &Json) -> Result<Value, ApiError> {
    Ok(match json {
        Json::Bool(b) => Value::Bool(*b),
        Json::String(s) if s.trim().eq_ignore_ascii_case("true") => Value::Bool(true),
        Json::String(s) if s.trim().eq_ignore_ascii_case("false") => Value::Bool(false),
        Json::Number(n) if n.as_i64() == Some(0) => Value::Bool(false),
        Json::Number(n) if n.as_i64().is_some() => Value::Bool(true),
        _ => return Err(mismatch(field, json)),
    })
}

/// A number of an integer or a decimal field; empty text is null.
fn decode_number(field: &FieldDef, json: &Json) -> Result<Value, ApiError> {
    if field.field_type == FieldType::Int {
        let n = match json {
            Json::Number(n) => n
                .as_i64()
                .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
            Json::String(s) if s.trim().is_empty() => return Ok(Value::Null),
            Json::String(s) => s.trim().parse::<i64>().ok(),
            _ => None,
        };
        return Ok(Value::Int(n.ok_or_else(|| mismatch(field, json))?));
    }

    let n = match json {
        Json::Number(n) => n.as_f64(),
        Json::String(s) if s.trim().is_empty() => return Ok(Value::Null),
        Json::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    };
    Ok(Value::Double(n.ok_or_else(|| mismatch(field, json))?))
}

/// A date, a datetime or a time, from text in Salesforce's formats; empty text is null.
fn decode_temporal(field: &FieldDef, json: &Json) -> Result<Value, ApiError> {
    Ok(match field.field_type {
        FieldType::Date => match json {
            Json::String(s) if s.trim().is_empty() => Value::Null,
            Json::String(s) => parse_date(s)
                .or_else(|| parse_datetime(s).map(|d| d.date_naive()))
                .map(Value::Date)
                .ok_or_else(|| mismatch(field, json))?,
            _ => return Err(mismatch(field, json)),
        },
        FieldType::Datetime => match json {
            Json::String(s) if s.trim().is_empty() => Value::Null,
            Json::String(s) => parse_datetime(s)
                .map(Value::DateTime)
                .ok_or_else(|| mismatch(field, json))?,
            _ => return Err(mismatch(field, json)),
        },
        _ => match json {
            Json::String(s) if s.trim().is_empty() => Value::Null,
            Json::String(s) => parse_time(s)
                .map(Value::Time)
                .ok_or_else(|| mismatch(field, json))?,
            _ => return Err(mismatch(field, json)),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::bundled_objects;
    use chrono::NaiveDate;
    use serde_json::json;

    fn account() -> ObjectDef {
        bundled_objects()
            .unwrap()
            .into_iter()
            .find(|o| o.name == "Account")
            .unwrap()
    }

    fn decode_one(body: Json) -> Result<Input, ApiError> {
        decode(&account(), body.as_object().unwrap())
    }

    fn set(def: &ObjectDef, name: &str, value: Value) -> Assignment {
        Assignment::Set {
            field: def.field(name).unwrap().0,
            value,
        }
    }

    #[test]
    fn coerces_scalars_like_salesforce() {
        let def = account();
        let input = decode_one(json!({
            "attributes": {"type": "Account"},
            "name": "  Acme  ",
            "NumberOfEmployees": "100",
            "AnnualRevenue": 1500000,
            "SLAExpirationDate__c": "2025-01-31",
            "Phone": "",
            "Description": "  keep  inner  ",
            "Id": "001000000000001",
        }))
        .unwrap();
        assert_eq!(
            input.assignments,
            vec![
                set(&def, "Name", Value::text("Acme")),
                set(&def, "NumberOfEmployees", Value::Int(100)),
                set(&def, "AnnualRevenue", Value::Double(1_500_000.0)),
                set(
                    &def,
                    "SLAExpirationDate__c",
                    Value::Date(NaiveDate::from_ymd_opt(2025, 1, 31).unwrap())
                ),
                set(&def, "Phone", Value::Null),
                set(&def, "Description", Value::text("  keep  inner  ")),
            ]
        );
        assert_eq!(input.id.as_deref(), Some("001000000000001"));
    }

    #[test]
    fn wrong_json_types_are_parser_errors() {
        let e = decode_one(json!({"NumberOfEmployees": "many"})).unwrap_err();
        assert_eq!(e.status, 400);
        assert_eq!(e.error_code, "JSON_PARSER_ERROR");
        assert_eq!(
            e.message,
            "Cannot deserialize instance of int from VALUE_STRING value many or request may be \
             missing a required field"
        );
        let e = decode_one(json!({"Regions__c": ["AMER"]})).unwrap_err();
        assert_eq!(
            e.message,
            "Cannot deserialize instance of multipicklist from START_ARRAY value"
        );
        let e = decode_one(json!({"SLAExpirationDate__c": "2025-13-01"})).unwrap_err();
        assert_eq!(e.error_code, "JSON_PARSER_ERROR");
    }

    #[test]
    fn unknown_fields_are_invalid() {
        let e = decode_one(json!({"Bogus__c": 1})).unwrap_err();
        assert_eq!(e.error_code, "INVALID_FIELD");
        assert_eq!(
            e.message,
            "No such column 'Bogus__c' on sobject of type Account"
        );
    }

    #[test]
    fn lookups_by_external_id() {
        let def = account();
        let input = decode_one(json!({"Parent": {"AccountNumber": "A-1"}})).unwrap();
        assert_eq!(
            input.assignments,
            vec![Assignment::ByExternalId {
                field: def.field("ParentId").unwrap().0,
                ext_field: "AccountNumber".into(),
                value: "A-1".into()
            }]
        );
    }
}
