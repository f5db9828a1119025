//! A Pub/Sub change event's Avro payload turned into the [`ChangeEvent`] CometD would have
//! delivered for the same change, so that nothing above the transport knows which one ran.
//!
//! The two differ on the wire (reference streaming §2.3, api §6.5): a Pub/Sub body carries
//! every field, unchanged ones null, and says which fields changed or became null only in
//! the header's bitmaps; dates and times are epoch numbers. So:
//! - CREATE and UNDELETE keep the non-null fields (a compound field with all its parts);
//! - UPDATE keeps exactly `changedFields` ∪ `nulledFields`, a field set to null as an explicit
//!   `null`, the changed parts of a compound field nested under it;
//! - DELETE and the `GAP_*` types keep none;
//! - date-times become `2026-12-06T08:03:44.000Z`, dates `2026-12-06`, times
//!   `08:03:44.000Z`, as the `doc` annotation (`"Name:DateTime"`) or a logical type says;
//! - the header's bitmaps become field names the way CometD lists them (`BillingAddress.City`
//!   rather than `BillingAddress` as well).

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value as Avro;
use chrono::{DateTime, NaiveDate, NaiveTime};
use serde_json::{Map, Number, Value as Json};

use super::bitmap::{self, BitmapError};
use super::schema::{EventSchema, SchemaField, Temporal};
use crate::Record;
use crate::streaming::{ChangeEvent, ChangeEventHeader, ChangeType, ReplayId};

/// The header's name in a change event schema.
const HEADER: &str = "ChangeEventHeader";

/// A payload that does not read as a change event of its schema.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DecodeError {
    #[error("the Avro payload does not read with schema {schema_id}: {source}")]
    Avro {
        schema_id: String,
        #[source]
        source: Box<apache_avro::Error>,
    },
    #[error("the payload is not a record")]
    NotARecord,
    #[error("the payload has no ChangeEventHeader")]
    NoHeader,
    #[error("the ChangeEventHeader does not read: {0}")]
    Header(#[source] serde_json::Error),
    #[error("{0}")]
    Bitmap(#[from] BitmapError),
}

/// The bitmaps of a header, as sent.
struct Bitmaps {
    changed: Vec<String>,
    nulled: Vec<String>,
    diff: Vec<String>,
}

/// The change event in `payload`, written with `schema`.
pub(crate) fn change_event(
    schema: &EventSchema,
    payload: &[u8],
    replay_id: ReplayId,
    channel: &str,
) -> Result<ChangeEvent, DecodeError> {
    let mut reader = payload;
    let value = GenericDatumReader::builder(&schema.avro)
        .build()
        .and_then(|datum| datum.read_value(&mut reader))
        .map_err(|e| DecodeError::Avro {
            schema_id: schema.id.clone(),
            source: Box::new(e),
        })?;
    let Avro::Record(values) = value else {
        return Err(DecodeError::NotARecord);
    };
    let header_value = values
        .iter()
        .find(|(name, _)| name == HEADER)
        .map(|(_, v)| plain_json(v))
        .ok_or(DecodeError::NoHeader)?;
    let (header, bitmaps) = header(header_value)?;
    let changed = bitmap::decode(&bitmaps.changed, schema)?;
    let nulled = bitmap::decode(&bitmaps.nulled, schema)?;
    let fields = match header.change_type {
        ChangeType::Create | ChangeType::Undelete => set_fields(schema, &values),
        ChangeType::Update => named_fields(schema, &values, changed.iter().chain(&nulled)),
        _ => Record::new(),
    };
    let header = ChangeEventHeader {
        changed_fields: as_cometd_lists(changed),
        nulled_fields: as_cometd_lists(nulled),
        diff_fields: as_cometd_lists(bitmap::decode(&bitmaps.diff, schema)?),
        ..header
    };
    Ok(ChangeEvent {
        replay_id,
        channel: channel.to_owned(),
        schema: Some(schema.id.clone()),
        header,
        fields,
    })
}

/// The header with its bitmaps set aside.
fn header(value: Json) -> Result<(ChangeEventHeader, Bitmaps), DecodeError> {
    let Json::Object(mut header) = value else {
        return Err(DecodeError::NoHeader);
    };
    let mut take = |name: &str| -> Result<Vec<String>, DecodeError> {
        match header.remove(name) {
            None | Some(Json::Null) => Ok(Vec::new()),
            Some(list) => serde_json::from_value(list).map_err(DecodeError::Header),
        }
    };
    let bitmaps = Bitmaps {
        changed: take("changedFields")?,
        nulled: take("nulledFields")?,
        diff: take("diffFields")?,
    };
    let header = serde_json::from_value(Json::Object(header)).map_err(DecodeError::Header)?;
    Ok((header, bitmaps))
}

/// `BillingAddress.City` stands for itself and its compound: a compound's own name is
/// dropped where one of its parts is listed, as CometD lists them.
fn as_cometd_lists(names: Vec<String>) -> Vec<String> {
    let parents: Vec<String> = names
        .iter()
        .filter_map(|n| n.split_once('.').map(|(parent, _)| parent.to_owned()))
        .collect();
    names.into_iter().filter(|n| !parents.contains(n)).collect()
}

/// CREATE and UNDELETE: every field that is not null.
fn set_fields(schema: &EventSchema, values: &[(String, Avro)]) -> Record {
    let mut fields = Record::new();
    for (position, (name, value)) in values.iter().enumerate() {
        if name == HEADER {
            continue;
        }
        let value = match schema.fields.get(position) {
            Some(field) if field.name == *name => json(value, field),
            _ => plain_json(value),
        };
        if !value.is_null() {
            fields.insert(name.clone(), value);
        }
    }
    fields
}

/// UPDATE: the fields `names` lists, with their values (`null` for a field set to null); a
/// compound field's parts nested under it.
fn named_fields<'a>(
    schema: &EventSchema,
    values: &[(String, Avro)],
    names: impl Iterator<Item = &'a String>,
) -> Record {
    let value_of = |name: &str| -> Option<(&SchemaField, &Avro)> {
        let (position, field) = schema.field(name)?;
        let (_, value) = values.get(position)?;
        Some((field, value))
    };
    let names: Vec<&String> = names.collect();
    let mut fields = Record::new();
    for name in &names {
        match name.split_once('.') {
            Some((parent, part)) => {
                let Some((field, value)) = value_of(parent) else {
                    continue;
                };
                let value = nested_value(field, value, part);
                let entry = fields
                    .entry(parent.to_owned())
                    .or_insert_with(|| Json::Object(Map::new()));
                if let Json::Object(parts) = entry {
                    parts.insert(part.to_owned(), value);
                }
            }
            None => {
                let has_parts = names
                    .iter()
                    .any(|n| n.split_once('.').is_some_and(|(p, _)| p == name.as_str()));
                if has_parts || name.as_str() == HEADER {
                    continue;
                }
                if let Some((field, value)) = value_of(name) {
                    fields.insert((*name).clone(), json(value, field));
                }
            }
        }
    }
    fields
}

/// The value of `part` in the compound record `value` (null when the record is).
fn nested_value(field: &SchemaField, value: &Avro, part: &str) -> Json {
    let (Avro::Record(parts), Some(nested)) = (unwrap_union(value), &field.nested) else {
        return Json::Null;
    };
    parts
        .iter()
        .zip(nested)
        .find(|((name, _), _)| name == part)
        .map_or(Json::Null, |((_, value), meta)| json(value, meta))
}

fn unwrap_union(value: &Avro) -> &Avro {
    match value {
        Avro::Union(_, inner) => unwrap_union(inner),
        other => other,
    }
}

/// A field's value as CometD carries it.
fn json(value: &Avro, field: &SchemaField) -> Json {
    let value = unwrap_union(value);
    if let Some(temporal) = field.temporal
        && let Some(text) = temporal_text(value, temporal)
    {
        return Json::String(text);
    }
    match (value, &field.nested) {
        (Avro::Record(parts), Some(nested)) => Json::Object(
            parts
                .iter()
                .enumerate()
                .map(|(i, (name, value))| {
                    let value = match nested.get(i) {
                        Some(meta) if meta.name == *name => json(value, meta),
                        _ => plain_json(value),
                    };
                    (name.clone(), value)
                })
                .collect(),
        ),
        _ => plain_json(value),
    }
}

/// A value without a Salesforce type to go by.
fn plain_json(value: &Avro) -> Json {
    match value {
        Avro::Null => Json::Null,
        Avro::Boolean(b) => Json::Bool(*b),
        Avro::Int(i) => Json::from(*i),
        Avro::Long(i) => Json::from(*i),
        Avro::Float(f) => float(f64::from(*f)),
        Avro::Double(f) => float(*f),
        Avro::String(s) | Avro::Enum(_, s) => Json::String(s.clone()),
        Avro::Bytes(bytes) | Avro::Fixed(_, bytes) => {
            Json::String(String::from_utf8_lossy(bytes).into_owned())
        }
        Avro::Union(_, inner) => plain_json(inner),
        Avro::Array(items) => Json::Array(items.iter().map(plain_json).collect()),
        Avro::Map(entries) => Json::Object(
            entries
                .iter()
                .map(|(k, v)| (k.clone(), plain_json(v)))
                .collect(),
        ),
        Avro::Record(parts) => Json::Object(
            parts
                .iter()
                .map(|(k, v)| (k.clone(), plain_json(v)))
                .collect(),
        ),
        Avro::Date(days) => date_from_days(i64::from(*days)).map_or(Json::Null, Json::String),
        Avro::TimestampMillis(ms) => datetime_from_millis(*ms).map_or(Json::Null, Json::String),
        Avro::TimestampMicros(us) => {
            datetime_from_millis(us.div_euclid(1000)).map_or(Json::Null, Json::String)
        }
        Avro::TimeMillis(ms) => time_from_millis(i64::from(*ms)).map_or(Json::Null, Json::String),
        Avro::TimeMicros(us) => {
            time_from_millis(us.div_euclid(1000)).map_or(Json::Null, Json::String)
        }
        other => Json::String(format!("{other:?}")),
    }
}

/// JSON has no NaN or infinity: CometD sends those as null too.
fn float(f: f64) -> Json {
    Number::from_f64(f).map_or(Json::Null, Json::Number)
}

/// The ISO text of a date or time field's epoch number; `None` for a value that is not one.
fn temporal_text(value: &Avro, temporal: Temporal) -> Option<String> {
    let number = match value {
        Avro::Int(i) | Avro::Date(i) | Avro::TimeMillis(i) => i64::from(*i),
        Avro::Long(i) | Avro::TimestampMillis(i) => *i,
        Avro::TimestampMicros(us) | Avro::TimeMicros(us) => us.div_euclid(1000),
        _ => return None,
    };
    match (temporal, value) {
        (Temporal::DateTime, _) => datetime_from_millis(number),
        // An Avro `int` date counts days; a `long` one milliseconds (Salesforce documents
        // "epoch time" without saying which).
        (Temporal::Date, Avro::Int(_) | Avro::Date(_)) => date_from_days(number),
        (Temporal::Date, _) => DateTime::from_timestamp_millis(number)
            .map(|t| t.date_naive().format("%Y-%m-%d").to_string()),
        (Temporal::Time, _) => time_from_millis(number),
    }
}

fn datetime_from_millis(ms: i64) -> Option<String> {
    DateTime::from_timestamp_millis(ms).map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
}

fn date_from_days(days: i64) -> Option<String> {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
    let date = epoch.checked_add_signed(chrono::Duration::try_days(days)?)?;
    Some(date.format("%Y-%m-%d").to_string())
}

fn time_from_millis(ms: i64) -> Option<String> {
    let seconds = u32::try_from(ms.div_euclid(1000)).ok()?;
    let nanos = u32::try_from(ms.rem_euclid(1000) * 1_000_000).ok()?;
    NaiveTime::from_num_seconds_from_midnight_opt(seconds, nanos)
        .map(|t| t.format("%H:%M:%S%.3fZ").to_string())
}

#[cfg(test)]
mod tests;
