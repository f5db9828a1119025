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

// The three forms are written digit by digit into a fixed buffer: a page of records holds
// thousands of them, and both chrono's `format` (which parses its pattern every time) and
// `write!` (a formatter call per number) cost several times more than the digits. The
// `Display` forms below remain for years outside 0..=9999, which `{:04}` writes with a
// sign or a fifth digit.

/// Milliseconds of a second; a leap second's nanoseconds (past 10^9) count as the second's.
fn millis(nanos: u32) -> u32 {
    (nanos % 1_000_000_000) / 1_000_000
}

/// Writes `value`'s last `out.len()` decimal digits into `out`, zero-padded.
fn put_digits(out: &mut [u8], mut value: u32) {
    for slot in out.iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// `2021-11-06`, or `None` for a year `{:04}` would not write as four digits.
fn date_bytes(d: &NaiveDate) -> Option<[u8; 10]> {
    let year = u32::try_from(d.year()).ok().filter(|y| *y <= 9999)?;
    let mut out = *b"0000-00-00";
    put_digits(&mut out[0..4], year);
    put_digits(&mut out[5..7], d.month());
    put_digits(&mut out[8..10], d.day());
    Some(out)
}

/// `17:38:40.000` (without the zone Salesforce puts after it).
fn clock_bytes(t: &NaiveTime) -> [u8; 12] {
    let mut out = *b"00:00:00.000";
    put_digits(&mut out[0..2], t.hour());
    put_digits(&mut out[3..5], t.minute());
    put_digits(&mut out[6..8], t.second());
    put_digits(&mut out[9..12], millis(t.nanosecond()));
    out
}

/// `17:38:40.000Z`.
fn time_bytes(t: &NaiveTime) -> [u8; 13] {
    let mut out = *b"00:00:00.000Z";
    out[..12].copy_from_slice(&clock_bytes(t));
    out
}

/// `2021-11-06T17:38:40.000+0000`, or `None` as for [`date_bytes`].
fn datetime_bytes(d: &DateTime<Utc>) -> Option<[u8; 28]> {
    let utc = d.naive_utc();
    let mut out = *b"0000-00-00T00:00:00.000+0000";
    out[..10].copy_from_slice(&date_bytes(&utc.date())?);
    out[11..23].copy_from_slice(&clock_bytes(&utc.time()));
    Some(out)
}

/// The ASCII the functions above write, as text.
fn ascii(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap_or_default()
}

struct SalesforceDate<'a>(&'a NaiveDate);

impl fmt::Display for SalesforceDate<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        match date_bytes(d) {
            Some(bytes) => f.write_str(ascii(&bytes)),
            None => write!(f, "{:04}-{:02}-{:02}", d.year(), d.month(), d.day()),
        }
    }
}

struct SalesforceTime<'a>(&'a NaiveTime);

impl fmt::Display for SalesforceTime<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(ascii(&time_bytes(self.0)))
    }
}

struct SalesforceDateTime<'a>(&'a DateTime<Utc>);

impl fmt::Display for SalesforceDateTime<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        match datetime_bytes(d) {
            Some(bytes) => f.write_str(ascii(&bytes)),
            None => write!(
                f,
                "{}T{}+0000",
                SalesforceDate(&d.date_naive()),
                ascii(&clock_bytes(&d.time()))
            ),
        }
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

/// A value as Bulk API query results write it in CSV, without the quotes around it (the
/// caller quotes and escapes): booleans `true`/`false`, datetimes
/// `2021-11-06T17:38:40.000Z` (not the `+0000` of JSON), dates `2021-11-06`, times
/// `17:38:40.000Z`, numbers as the JSON form writes them, null as nothing.
pub fn write_csv_text(value: &Value, field: &FieldDef, out: &mut Vec<u8>) {
    match value {
        Value::Null => {}
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Int(_) | Value::Double(_) => {
            // The JSON writer already spells numbers as REST does (`12`, `1500.5`,
            // `500000.0`); a non-finite double, which JSON has no form for, stays empty.
            if !matches!(value, Value::Double(d) if !d.is_finite()) {
                let _ = serde_json::to_writer(&mut *out, &JsonField { value, field });
            }
        }
        Value::Text(s) => out.extend_from_slice(s.as_bytes()),
        Value::Date(d) => match date_bytes(d) {
            Some(bytes) => out.extend_from_slice(&bytes),
            None => out.extend_from_slice(SalesforceDate(d).to_string().as_bytes()),
        },
        Value::DateTime(d) => match datetime_bytes(d) {
            Some(bytes) => {
                out.extend_from_slice(&bytes[..23]);
                out.push(b'Z');
            }
            None => {
                let text = SalesforceDateTime(d).to_string();
                let clock = text.strip_suffix("+0000").unwrap_or(&text);
                out.extend_from_slice(clock.as_bytes());
                out.push(b'Z');
            }
        },
        Value::Time(t) => out.extend_from_slice(&time_bytes(t)),
    }
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
            Value::Date(d) => match date_bytes(d) {
                Some(bytes) => serializer.serialize_str(ascii(&bytes)),
                None => serializer.collect_str(&SalesforceDate(d)),
            },
            Value::DateTime(d) => match datetime_bytes(d) {
                Some(bytes) => serializer.serialize_str(ascii(&bytes)),
                None => serializer.collect_str(&SalesforceDateTime(d)),
            },
            Value::Time(t) => serializer.serialize_str(ascii(&time_bytes(t))),
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

    /// The forms as `write!` spelled them before they were written digit by digit.
    fn written(d: &DateTime<Utc>) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}+0000",
            d.year(),
            d.month(),
            d.day(),
            d.hour(),
            d.minute(),
            d.second(),
            millis(d.nanosecond())
        )
    }

    #[test]
    fn datetimes_are_written_as_write_would() {
        let leap = NaiveDate::from_ymd_opt(2016, 12, 31)
            .and_then(|d| d.and_hms_milli_opt(23, 59, 59, 1_500))
            .unwrap()
            .and_utc();
        let cases = [
            Utc.with_ymd_and_hms(2021, 11, 6, 17, 38, 40).unwrap(),
            Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap()
                + chrono::Duration::milliseconds(999),
            Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap()
                + chrono::Duration::microseconds(1_999),
            leap,
            // Outside four digits: the `write!` forms.
            Utc.with_ymd_and_hms(12345, 6, 7, 8, 9, 10).unwrap(),
            Utc.with_ymd_and_hms(-5, 6, 7, 8, 9, 10).unwrap(),
        ];
        for d in cases {
            assert_eq!(format_datetime(&d), written(&d));
            assert_eq!(
                value_to_json(&Value::DateTime(d), &field(FieldType::Datetime)),
                json!(written(&d))
            );
            let date = d.date_naive();
            let expected = format!("{:04}-{:02}-{:02}", date.year(), date.month(), date.day());
            assert_eq!(format_date(&date), expected);
            assert_eq!(
                value_to_json(&Value::Date(date), &field(FieldType::Date)),
                json!(expected)
            );
        }
        assert_eq!(format_datetime(&leap), "2016-12-31T23:59:59.500+0000");
        let t = leap.time();
        assert_eq!(format_time(&t), "23:59:59.500Z");
        assert_eq!(
            value_to_json(&Value::Time(t), &field(FieldType::Time)),
            json!("23:59:59.500Z")
        );
    }

    #[test]
    fn csv_text_is_what_bulk_query_writes() {
        let csv = |value: Value, field_type: FieldType| {
            let mut out = Vec::new();
            write_csv_text(&value, &field(field_type), &mut out);
            String::from_utf8(out).unwrap()
        };
        let d = Utc.with_ymd_and_hms(2021, 11, 6, 17, 38, 40).unwrap();
        assert_eq!(
            csv(Value::DateTime(d), FieldType::Datetime),
            "2021-11-06T17:38:40.000Z"
        );
        assert_eq!(
            csv(Value::Date(d.date_naive()), FieldType::Date),
            "2021-11-06"
        );
        let t = NaiveTime::from_hms_milli_opt(9, 5, 1, 250).unwrap();
        assert_eq!(csv(Value::Time(t), FieldType::Time), "09:05:01.250Z");
        assert_eq!(csv(Value::Bool(true), FieldType::Boolean), "true");
        assert_eq!(csv(Value::Bool(false), FieldType::Boolean), "false");
        assert_eq!(csv(Value::Int(12), FieldType::Int), "12");
        assert_eq!(csv(Value::Double(1500.5), FieldType::Currency), "1500.5");
        assert_eq!(
            csv(Value::Double(500000.0), FieldType::Currency),
            "500000.0"
        );
        assert_eq!(csv(Value::Double(f64::NAN), FieldType::Double), "");
        assert_eq!(csv(Value::Null, FieldType::String), "");
        assert_eq!(csv(Value::text("a\"b"), FieldType::String), "a\"b");
    }

    #[test]
    fn value_stays_small() {
        assert!(std::mem::size_of::<Value>() <= 24);
    }
}
