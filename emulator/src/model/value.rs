//! Field values and records, kept small: the org holds a million records in memory.

use std::fmt;

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, Timelike, Utc};
use serde::{Serialize, Serializer};

use super::FieldDef;
use super::FieldType;

/// One field's value. Currency, percent and double fields hold `Double`; a multipicklist
/// holds `Text` with `;` between its values; Ids and references hold 18-character `Text`.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    #[default]
    Null,
    Bool(bool),
    Int(i64),
    Double(f64),
    Text(Box<str>),
    Date(NaiveDate),
    DateTime(DateTime<Utc>),
    Time(NaiveTime),
}

impl Value {
    pub fn text(s: impl Into<Box<str>>) -> Value {
        Value::Text(s.into())
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The value as a number, for arithmetic over int, double, currency and percent fields.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Double(d) => Some(*d),
            _ => None,
        }
    }

    pub fn as_datetime(&self) -> Option<DateTime<Utc>> {
        match self {
            Value::DateTime(d) => Some(*d),
            _ => None,
        }
    }
}

/// A record of one object: `values[i]` belongs to `ObjectDef::fields[i]`. Slots of
/// computed fields (formulas, compound names and addresses) hold `Null`; their values are
/// computed on read.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub values: Vec<Value>,
}

impl Record {
    /// A record with every field null.
    pub fn empty(field_count: usize) -> Record {
        Record {
            values: vec![Value::Null; field_count],
        }
    }

    /// The value at `index`, or `Null` past the end (a field defined after the record was
    /// stored).
    pub fn get(&self, index: usize) -> &Value {
        self.values.get(index).unwrap_or(&Value::Null)
    }
}

/// `2021-11-06T17:38:40.000+0000`, the form Salesforce's JSON responses use.
pub fn format_datetime(d: &DateTime<Utc>) -> String {
    SalesforceDateTime(d).to_string()
}

/// `2021-11-06`.
pub fn format_date(d: &NaiveDate) -> String {
    SalesforceDate(d).to_string()
}

/// `17:38:40.000Z`.
pub fn format_time(t: &NaiveTime) -> String {
    SalesforceTime(t).to_string()
}

// The three forms are written field by field: a page of records holds thousands of them,
// and chrono's `format` parses its pattern and buffers its output every time.

/// Milliseconds of a second; a leap second's nanoseconds (past 10^9) count as the second's.
fn millis(nanos: u32) -> u32 {
    (nanos % 1_000_000_000) / 1_000_000
}

struct SalesforceDate<'a>(&'a NaiveDate);

impl fmt::Display for SalesforceDate<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        write!(f, "{:04}-{:02}-{:02}", d.year(), d.month(), d.day())
    }
}

struct SalesforceTime<'a>(&'a NaiveTime);

impl fmt::Display for SalesforceTime<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.0;
        write!(
            f,
            "{:02}:{:02}:{:02}.{:03}Z",
            t.hour(),
            t.minute(),
            t.second(),
            millis(t.nanosecond())
        )
    }
}

struct SalesforceDateTime<'a>(&'a DateTime<Utc>);

impl fmt::Display for SalesforceDateTime<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        write!(
            f,
            "{}T{:02}:{:02}:{:02}.{:03}+0000",
            SalesforceDate(&d.date_naive()),
            d.hour(),
            d.minute(),
            d.second(),
            millis(d.nanosecond())
        )
    }
}

/// Parses a dateTime as the API accepts it: `2021-11-06T17:38:40.000+0000`,
/// `…+00:00`, `…Z`, with or without fractional seconds, or a bare date (midnight UTC).
/// Fractions below a millisecond are dropped, as Salesforce keeps milliseconds.
pub fn parse_datetime(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    let parsed = DateTime::parse_from_rfc3339(text)
        .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .map(|d| d.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|d| d.and_utc())
        })?;
    let millis = parsed.timestamp_subsec_millis();
    parsed.with_nanosecond(millis * 1_000_000)
}

/// Parses a date, `yyyy-MM-dd` (no offset allowed).
pub fn parse_date(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").ok()
}

/// Parses a time, `HH:mm:ss[.SSS][Z]`.
pub fn parse_time(text: &str) -> Option<NaiveTime> {
    let text = text.trim();
    let text = text.strip_suffix('Z').unwrap_or(text);
    NaiveTime::parse_from_str(text, "%H:%M:%S%.f").ok()
}

/// A stored or computed value as Salesforce writes it in JSON for this field.
///
/// Compound address and location fields are assembled from their components by the org,
/// not from a single value; here they come out as `null`.
pub fn value_to_json(value: &Value, field: &FieldDef) -> serde_json::Value {
    serde_json::to_value(JsonField { value, field }).unwrap_or(serde_json::Value::Null)
}

/// A field's value as Salesforce's JSON shows it, serialized in place: query pages write
/// records straight into the response body without building a JSON tree first.
#[derive(Debug, Clone, Copy)]
pub struct JsonField<'a> {
    pub value: &'a Value,
    pub field: &'a FieldDef,
}

impl Serialize for JsonField<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.value {
            Value::Null => serializer.serialize_unit(),
            Value::Bool(b) => serializer.serialize_bool(*b),
            Value::Int(i) if self.field.field_type.is_fractional() => {
                serializer.serialize_f64(*i as f64)
            }
            Value::Int(i) => serializer.serialize_i64(*i),
            Value::Double(d) if self.field.field_type == FieldType::Int => {
                serializer.serialize_i64(d.round() as i64)
            }
            // JSON has no NaN or infinity.
            Value::Double(d) if !d.is_finite() => serializer.serialize_unit(),
            Value::Double(d) => serializer.serialize_f64(*d),
            Value::Text(s) => serializer.serialize_str(s),
            Value::Date(d) => serializer.collect_str(&SalesforceDate(d)),
            Value::DateTime(d) => serializer.collect_str(&SalesforceDateTime(d)),
            Value::Time(t) => serializer.collect_str(&SalesforceTime(t)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn field(field_type: FieldType) -> FieldDef {
        serde_json::from_value(json!({"name": "F", "label": "F", "type": field_type})).unwrap()
    }

    #[test]
    fn datetimes_use_salesforce_response_format() {
        let d = Utc.with_ymd_and_hms(2021, 11, 6, 17, 38, 40).unwrap();
        assert_eq!(
            value_to_json(&Value::DateTime(d), &field(FieldType::Datetime)),
            json!("2021-11-06T17:38:40.000+0000")
        );
    }

    #[test]
    fn dates_and_times_use_their_own_formats() {
        let d = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
        assert_eq!(
            value_to_json(&Value::Date(d), &field(FieldType::Date)),
            json!("2024-02-29")
        );
        let t = NaiveTime::from_hms_milli_opt(9, 5, 1, 250).unwrap();
        assert_eq!(
            value_to_json(&Value::Time(t), &field(FieldType::Time)),
            json!("09:05:01.250Z")
        );
    }

    #[test]
    fn numbers_follow_the_field_type() {
        assert_eq!(
            value_to_json(&Value::Double(1500.5), &field(FieldType::Currency)),
            json!(1500.5)
        );
        assert_eq!(
            value_to_json(&Value::Int(12), &field(FieldType::Int)),
            json!(12)
        );
        assert_eq!(
            value_to_json(&Value::Null, &field(FieldType::Percent)),
            serde_json::Value::Null
        );
    }

    #[test]
    fn parses_the_datetime_forms_the_api_accepts() {
        let expected = Utc.with_ymd_and_hms(2021, 11, 6, 17, 38, 40).unwrap();
        for text in [
            "2021-11-06T17:38:40.000+0000",
            "2021-11-06T17:38:40.000Z",
            "2021-11-06T17:38:40Z",
            "2021-11-06T19:38:40+02:00",
            "2021-11-06T17:38:40.000+00:00",
        ] {
            assert_eq!(parse_datetime(text), Some(expected), "{text}");
        }
        assert_eq!(
            parse_datetime("2021-11-06"),
            Some(Utc.with_ymd_and_hms(2021, 11, 6, 0, 0, 0).unwrap())
        );
        assert_eq!(
            parse_datetime("2021-11-06T17:38:40.123456Z").map(|d| d.timestamp_subsec_nanos()),
            Some(123_000_000)
        );
        assert_eq!(parse_datetime("yesterday"), None);
        assert_eq!(parse_date("2024-02-30"), None);
        assert_eq!(
            parse_time("10:15:00.000Z"),
            NaiveTime::from_hms_opt(10, 15, 0)
        );
    }

    #[test]
    fn value_stays_small() {
        assert!(std::mem::size_of::<Value>() <= 24);
    }
}
