//! The Avro schema of an event, as `GetSchema` gives it, and the cache of schemas by id.
//!
//! Besides the parsed Avro schema (to read payloads), an [`EventSchema`] keeps what turning
//! a payload into the values CometD would carry needs: each field's position (the bitmaps
//! count positions), its Salesforce type from the `doc` annotation (`"CreatedDate:DateTime"`:
//! Pub/Sub carries date-times as epoch numbers, CometD as ISO text), and the fields of a
//! nested compound record (`BillingAddress`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use apache_avro::Schema;

use super::bitmap::FieldPositions;

/// How a field's value is spelled in a CometD event, when its Avro form is a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Temporal {
    /// `2026-12-06T08:03:44.000Z`, from epoch milliseconds.
    DateTime,
    /// `2026-12-06`, from epoch days (Avro `int`) or epoch milliseconds (`long`).
    Date,
    /// `08:03:44.000Z`, from milliseconds since midnight.
    Time,
}

/// One field of an event schema.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SchemaField {
    pub(crate) name: String,
    /// Set when the `doc` annotation names a date or time type.
    pub(crate) temporal: Option<Temporal>,
    /// The fields of the nested record this field holds (a compound field), if it does.
    pub(crate) nested: Option<Vec<SchemaField>>,
}

/// An event's schema.
#[derive(Debug)]
pub(crate) struct EventSchema {
    pub(crate) id: String,
    pub(crate) avro: Schema,
    pub(crate) fields: Vec<SchemaField>,
}

/// A schema that is not the Avro record an event schema is.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SchemaError {
    #[error("the schema does not parse: {0}")]
    Avro(#[from] Box<apache_avro::Error>),
    #[error("the schema is not a record")]
    NotARecord,
}

impl EventSchema {
    /// Parses the Avro JSON `GetSchema` returned for `id`.
    pub(crate) fn parse(id: &str, json: &str) -> Result<Self, SchemaError> {
        let avro = Schema::parse_str(json).map_err(Box::new)?;
        let mut named = HashMap::new();
        let Schema::Record(record) = &avro else {
            return Err(SchemaError::NotARecord);
        };
        named.insert(record.name.fullname(None), avro.clone());
        let fields = record
            .fields
            .iter()
            .map(|field| schema_field(&field.name, field.doc.as_deref(), &field.schema, &mut named))
            .collect();
        Ok(EventSchema {
            id: id.to_owned(),
            avro,
            fields,
        })
    }

    /// The field named `name`, with its position.
    pub(crate) fn field(&self, name: &str) -> Option<(usize, &SchemaField)> {
        self.fields.iter().enumerate().find(|(_, f)| f.name == name)
    }
}

impl FieldPositions for EventSchema {
    fn field_name(&self, position: usize) -> Option<&str> {
        self.fields.get(position).map(|f| f.name.as_str())
    }

    fn nested_field_name(&self, position: usize, child: usize) -> Option<&str> {
        let nested = self.fields.get(position)?.nested.as_ref()?;
        nested.get(child).map(|f| f.name.as_str())
    }
}

/// What a field is, looking through `["null", T]` unions and named references.
fn schema_field(
    name: &str,
    doc: Option<&str>,
    schema: &Schema,
    named: &mut HashMap<String, Schema>,
) -> SchemaField {
    let mut nested = None;
    let mut temporal = doc.and_then(temporal_of);
    if let Some(inner) = non_null(schema, named) {
        match &inner {
            Schema::Record(record) => {
                named
                    .entry(record.name.fullname(None))
                    .or_insert_with(|| inner.clone());
                nested = Some(
                    record
                        .fields
                        .iter()
                        .map(|f| schema_field(&f.name, f.doc.as_deref(), &f.schema, named))
                        .collect(),
                );
            }
            Schema::TimestampMillis | Schema::TimestampMicros => {
                temporal = temporal.or(Some(Temporal::DateTime));
            }
            Schema::Date => temporal = temporal.or(Some(Temporal::Date)),
            Schema::TimeMillis | Schema::TimeMicros => {
                temporal = temporal.or(Some(Temporal::Time));
            }
            _ => {}
        }
    }
    SchemaField {
        name: name.to_owned(),
        temporal,
        nested,
    }
}

/// The one non-null branch of a union (or the schema itself), with references resolved.
fn non_null(schema: &Schema, named: &HashMap<String, Schema>) -> Option<Schema> {
    let schema = match schema {
        Schema::Union(union) => union
            .variants()
            .iter()
            .find(|variant| !matches!(variant, Schema::Null))?,
        other => other,
    };
    match schema {
        Schema::Ref { name } => named.get(&name.fullname(None)).cloned(),
        other => Some(other.clone()),
    }
}

/// The date or time type a `doc` annotation names: `"CreatedDate:DateTime"`,
/// `"Data:Date"`; none for any other type.
fn temporal_of(doc: &str) -> Option<Temporal> {
    let (_, salesforce_type) = doc.rsplit_once(':')?;
    match salesforce_type.trim() {
        t if t.eq_ignore_ascii_case("DateTime") => Some(Temporal::DateTime),
        t if t.eq_ignore_ascii_case("Date") => Some(Temporal::Date),
        t if t.eq_ignore_ascii_case("Time") => Some(Temporal::Time),
        _ => None,
    }
}

/// Schemas by id, shared by a transport's subscriptions. A schema id names one schema for
/// good (a changed describe gets a new id), so entries never go stale.
#[derive(Debug, Clone, Default)]
pub(crate) struct SchemaCache(Arc<Mutex<HashMap<String, Arc<EventSchema>>>>);

impl SchemaCache {
    pub(crate) fn get(&self, id: &str) -> Option<Arc<EventSchema>> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned()
    }

    pub(crate) fn insert(&self, schema: EventSchema) -> Arc<EventSchema> {
        let schema = Arc::new(schema);
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(schema.id.clone(), Arc::clone(&schema));
        schema
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE_FIELD: &str = r#"{"type": "record", "name": "E", "namespace": "com.sforce.eventbus",
        "fields": [{"name": "CreatedDate", "type": "long", "doc": "CreatedDate:DateTime"}]}"#;

    #[test]
    fn the_cache_keeps_schemas_by_id_for_every_clone() {
        let cache = SchemaCache::default();
        let shared = cache.clone();
        assert!(cache.get("id-1").is_none());
        cache.insert(EventSchema::parse("id-1", ONE_FIELD).unwrap());
        let schema = shared.get("id-1").unwrap();
        assert_eq!(schema.fields[0].temporal, Some(Temporal::DateTime));
        assert_eq!(shared.len(), 1);
    }

    #[test]
    fn a_schema_that_is_not_a_record_is_refused() {
        assert!(matches!(
            EventSchema::parse("x", r#""string""#),
            Err(SchemaError::NotARecord)
        ));
        assert!(matches!(
            EventSchema::parse("x", "{"),
            Err(SchemaError::Avro(_))
        ));
    }
}
