//! Salesforce's JSON values as the text PostgreSQL reads for a column.
//!
//! PostgreSQL parses every form the REST API sends (`2021-11-06T17:38:40.000+0000`,
//! `17:38:40.000Z`, `1.5E7`, `true`), so values travel as text and the database casts them:
//! one conversion, done by the party that knows the column's type best.

use serde_json::Value;
use sfpg_schema::mapping::ColumnType;

/// The text for `value` in a column of `column_type`, or `None` for NULL.
///
/// Salesforce never stores `''` (saving it stores null), so an empty string is NULL too.
/// PostgreSQL's text cannot hold NUL characters; they are dropped.
pub fn to_text(value: &Value, column_type: ColumnType) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(text) if text.is_empty() => None,
        Value::String(text) if text.contains('\0') => Some(text.replace('\0', "")),
        Value::String(text) => Some(text.clone()),
        Value::Bool(flag) => Some(flag.to_string()),
        Value::Number(number) => Some(match column_type {
            // `3.0` for an integer column: PostgreSQL's integer input refuses a fraction.
            ColumnType::Integer | ColumnType::BigInt => match number.as_f64() {
                Some(float) if number.is_f64() && float.fract() == 0.0 && float.abs() < 9.0e15 => {
                    format!("{float:.0}")
                }
                _ => number.to_string(),
            },
            _ => number.to_string(),
        }),
        // anyType and anything unexpected: keep the JSON, and let the column decide.
        other => Some(other.to_string()),
    }
}

/// Appends `text` to a `COPY … FROM STDIN` (text format) line, escaped.
pub fn push_copy_text(line: &mut Vec<u8>, text: Option<&str>) {
    let Some(text) = text else {
        line.extend_from_slice(b"\\N");
        return;
    };
    for byte in text.bytes() {
        match byte {
            b'\\' => line.extend_from_slice(b"\\\\"),
            b'\t' => line.extend_from_slice(b"\\t"),
            b'\n' => line.extend_from_slice(b"\\n"),
            b'\r' => line.extend_from_slice(b"\\r"),
            other => line.push(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_become_text_postgres_reads() {
        let text = ColumnType::Text;
        assert_eq!(to_text(&json!(null), text), None);
        assert_eq!(to_text(&json!(""), text), None);
        assert_eq!(to_text(&json!("Acme"), text).as_deref(), Some("Acme"));
        assert_eq!(to_text(&json!("a\0b"), text).as_deref(), Some("ab"));
        assert_eq!(
            to_text(&json!(true), ColumnType::Boolean).as_deref(),
            Some("true")
        );
        assert_eq!(
            to_text(&json!(1.5e7), ColumnType::NumericAny).as_deref(),
            Some("15000000.0")
        );
        assert_eq!(
            to_text(&json!(42), ColumnType::Integer).as_deref(),
            Some("42")
        );
        assert_eq!(
            to_text(&json!(42.0), ColumnType::Integer).as_deref(),
            Some("42")
        );
        assert_eq!(
            to_text(&json!(4.5), ColumnType::Integer).as_deref(),
            Some("4.5")
        );
        assert_eq!(
            to_text(&json!({"city": "Paris"}), text).as_deref(),
            Some(r#"{"city":"Paris"}"#)
        );
    }

    #[test]
    fn copy_text_escapes_its_delimiters() {
        let mut line = Vec::new();
        push_copy_text(&mut line, Some("a\tb\nc\\d\re"));
        line.push(b'\t');
        push_copy_text(&mut line, None);
        assert_eq!(line, b"a\\tb\\nc\\\\d\\re\t\\N");
    }
}
