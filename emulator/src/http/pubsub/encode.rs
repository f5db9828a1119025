//! Encoding events as the Pub/Sub API carries them: Avro binary with the event's schema.
//! A change event's body carries every field of the schema; the ones the bus's event
//! does not have (unchanged, or never set) are null, as Salesforce sends them. The field
//! values come off the bus in the JSON CometD sends and are turned into the schema's
//! types here (datetimes and dates to epoch milliseconds).

use std::sync::Arc;

use apache_avro::Schema;
use apache_avro::types::Value;
use serde_json::{Map, Value as Json};

use super::bitmap;
use super::schema::{Layout, Slot, avro_type, schema_id, schema_json};
use crate::events::{ChangeEvent, PlatformEvent};
use crate::model::{FieldType, ObjectDef, parse_date, parse_datetime, parse_time};

/// Why an event could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("the generated Avro schema of {event} does not parse: {source}")]
    Schema {
        event: String,
        #[source]
        source: Box<apache_avro::Error>,
    },
    #[error("the value {value} of {field} is not a {expected}")]
    Value {
        field: String,
        value: Json,
        expected: &'static str,
    },
    #[error("Avro encoding failed: {0}")]
    Avro(#[source] Box<apache_avro::Error>),
    #[error("the payload is not a record")]
    NotARecord,
}

/// An event schema: its JSON, id, parsed form and layout.
#[derive(Debug)]
pub struct EventSchema {
    pub id: String,
    pub json: String,
    pub schema: Schema,
    pub layout: Layout,
}

impl EventSchema {
    /// The schema of `event_name` with `layout`, generated from `def`.
    pub fn generate(
        event_name: &str,
        layout: Layout,
        def: &ObjectDef,
    ) -> Result<Arc<EventSchema>, EncodeError> {
        let json = schema_json(event_name, &layout, def).to_string();
        let schema = Schema::parse_str(&json).map_err(|e| EncodeError::Schema {
            event: event_name.to_owned(),
            source: Box::new(e),
        })?;
        Ok(Arc::new(EventSchema {
            id: schema_id(&json),
            json,
            schema,
            layout,
        }))
    }

    /// A change event's Avro binary body.
    pub fn encode_change(&self, event: &ChangeEvent) -> Result<Vec<u8>, EncodeError> {
        let mut record = Vec::with_capacity(self.layout.slots.len());
        for slot in &self.layout.slots {
            let value = match slot {
                Slot::Header => self.header(event),
                other => slot_value(other, &event.fields)?,
            };
            record.push((slot.name().to_owned(), value));
        }
        self.write(Value::Record(record))
    }

    /// A platform event's Avro binary body.
    pub fn encode_platform(&self, event: &PlatformEvent) -> Result<Vec<u8>, EncodeError> {
        let mut record = Vec::with_capacity(self.layout.slots.len());
        for slot in &self.layout.slots {
            let value = match slot {
                Slot::CreatedDate => Value::Long(event.created_date.timestamp_millis()),
                Slot::CreatedById => Value::String(event.created_by_id.to_string()),
                other => slot_value(other, &event.fields)?,
            };
            record.push((slot.name().to_owned(), value));
        }
        self.write(Value::Record(record))
    }

    /// A published platform event's own fields, decoded from its Avro body into the JSON
    /// a REST create takes (`CreatedDate` and `CreatedById` are the server's to set).
    pub fn decode_platform(&self, payload: &[u8]) -> Result<Map<String, Json>, EncodeError> {
        let value = apache_avro::reader::datum::GenericDatumReader::builder(&self.schema)
            .build()
            .and_then(|reader| reader.read_value(&mut &payload[..]))
            .map_err(|e| EncodeError::Avro(Box::new(e)))?;
        let Value::Record(fields) = value else {
            return Err(EncodeError::NotARecord);
        };
        let mut body = Map::new();
        for (slot, (name, value)) in self.layout.slots.iter().zip(fields) {
            if let Slot::Field { field_type, .. } = slot {
                body.insert(name, untyped(*field_type, value));
            }
        }
        Ok(body)
    }

    fn write(&self, value: Value) -> Result<Vec<u8>, EncodeError> {
        apache_avro::writer::datum::GenericDatumWriter::builder(&self.schema)
            .build()
            .and_then(|writer| writer.write_value_to_vec(value))
            .map_err(|e| EncodeError::Avro(Box::new(e)))
    }

    fn header(&self, event: &ChangeEvent) -> Value {
        let h = &event.header;
        let strings =
            |list: &[String]| Value::Array(list.iter().map(|s| Value::String(s.clone())).collect());
        let bitmap = |names: &[String]| strings(&bitmap::encode(&self.layout, names));
        let change_type = h.change_type.as_str();
        let symbol = super::schema::change_type_index(change_type);
        Value::Record(vec![
            ("entityName".into(), Value::String(h.entity_name.clone())),
            ("recordIds".into(), strings(&h.record_ids)),
            (
                "changeType".into(),
                Value::Enum(symbol, change_type.to_owned()),
            ),
            (
                "changeOrigin".into(),
                Value::String(h.change_origin.clone()),
            ),
            (
                "transactionKey".into(),
                Value::String(h.transaction_key.clone()),
            ),
            (
                "sequenceNumber".into(),
                Value::Int(i32::try_from(h.sequence_number).unwrap_or(i32::MAX)),
            ),
            ("commitTimestamp".into(), Value::Long(h.commit_timestamp)),
            ("commitNumber".into(), Value::Long(h.commit_number)),
            ("commitUser".into(), Value::String(h.commit_user.clone())),
            ("nulledFields".into(), bitmap(&h.nulled_fields)),
            ("diffFields".into(), bitmap(&h.diff_fields)),
            ("changedFields".into(), bitmap(&h.changed_fields)),
        ])
    }
}

/// A nullable slot's value from the body: null when absent or null.
pub fn slot_value(slot: &Slot, fields: &Map<String, Json>) -> Result<Value, EncodeError> {
    let present = match slot {
        Slot::Field { name, field_type } => match fields.get(name) {
            Some(json) if !json.is_null() => Some(typed(name, *field_type, json)?),
            _ => None,
        },
        Slot::Compound { name, components } => match fields.get(name) {
            Some(Json::Object(nested)) => {
                let mut record = Vec::with_capacity(components.len());
                for (key, field_type) in components {
                    let value = match nested.get(key) {
                        Some(json) if !json.is_null() => Value::Union(
                            1,
                            Box::new(typed(&format!("{name}.{key}"), *field_type, json)?),
                        ),
                        _ => Value::Union(0, Box::new(Value::Null)),
                    };
                    record.push((key.clone(), value));
                }
                Some(Value::Record(record))
            }
            _ => None,
        },
        // Not nullable: the caller fills them.
        Slot::Header | Slot::CreatedDate | Slot::CreatedById => None,
    };
    Ok(match present {
        Some(value) => Value::Union(1, Box::new(value)),
        None => Value::Union(0, Box::new(Value::Null)),
    })
}

/// A JSON value (as CometD carries it) as the Avro value of `field_type`.
pub fn typed(field: &str, field_type: FieldType, json: &Json) -> Result<Value, EncodeError> {
    let wrong = || EncodeError::Value {
        field: field.to_owned(),
        value: json.clone(),
        expected: avro_type(field_type),
    };
    let text = || json.as_str().ok_or_else(wrong);
    Ok(match field_type {
        FieldType::Boolean => Value::Boolean(json.as_bool().ok_or_else(wrong)?),
        FieldType::Int => Value::Int(
            json.as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .ok_or_else(wrong)?,
        ),
        FieldType::Double | FieldType::Currency | FieldType::Percent => {
            Value::Double(json.as_f64().ok_or_else(wrong)?)
        }
        FieldType::Datetime => Value::Long(
            parse_datetime(text()?)
                .ok_or_else(wrong)?
                .timestamp_millis(),
        ),
        FieldType::Date => {
            let date = parse_date(text()?).ok_or_else(wrong)?;
            let midnight = date.and_hms_opt(0, 0, 0).ok_or_else(wrong)?;
            Value::Long(midnight.and_utc().timestamp_millis())
        }
        FieldType::Time => {
            let time = parse_time(text()?).ok_or_else(wrong)?;
            let since = time.signed_duration_since(chrono::NaiveTime::MIN);
            Value::Long(since.num_milliseconds())
        }
        _ => match json {
            Json::String(s) => Value::String(s.clone()),
            other => Value::String(other.to_string()),
        },
    })
}

/// An Avro value of a `field_type` field as the JSON a REST body gives it: datetimes and
/// dates from epoch milliseconds to ISO text, times from milliseconds after midnight.
pub fn untyped(field_type: FieldType, value: Value) -> Json {
    let millis = |ms: i64| chrono::DateTime::from_timestamp_millis(ms);
    match (field_type, value) {
        (_, Value::Union(_, inner)) => untyped(field_type, *inner),
        (_, Value::Null) => Json::Null,
        (FieldType::Datetime, Value::Long(ms)) => millis(ms).map_or(Json::Null, |t| {
            Json::String(t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        }),
        (FieldType::Date, Value::Long(ms)) => millis(ms).map_or(Json::Null, |t| {
            Json::String(t.format("%Y-%m-%d").to_string())
        }),
        (FieldType::Time, Value::Long(ms)) => millis(ms).map_or(Json::Null, |t| {
            Json::String(t.format("%H:%M:%S%.3fZ").to_string())
        }),
        (_, Value::Boolean(b)) => Json::Bool(b),
        (_, Value::Int(n)) => Json::from(n),
        (_, Value::Long(n)) => Json::from(n),
        (_, Value::Double(x)) => Json::from(x),
        (_, Value::Float(x)) => Json::from(f64::from(x)),
        (_, Value::String(text)) => Json::String(text),
        (_, other) => Json::String(format!("{other:?}")),
    }
}
