//! Salesforce's JSON values as the text PostgreSQL reads for a column.
//!
//! PostgreSQL parses every form the REST API sends (`2021-11-06T17:38:40.000+0000`,
//! `17:38:40.000Z`, `1.5E7`, `true`), so values travel as text and the database casts them:
//! one conversion, done by the party that knows the column's type best. Values are taken
//! from the raw JSON text, so a number reaches its column with every digit Salesforce sent,
//! never rounded through a float.

use std::borrow::Cow;
use std::fmt::Write as _;

use crate::mapping::ColumnType;

/// Appends the text for the raw JSON value `raw` in a column of `column_type` to `out`;
/// false (nothing appended) for NULL.
///
/// Salesforce never stores `''` (saving it stores null), so an empty string is NULL too.
/// PostgreSQL's text cannot hold NUL characters; they are dropped. A JSON string that does
/// not parse is an error.
pub fn push_raw_text(
    raw: &str,
    column_type: ColumnType,
    out: &mut String,
) -> serde_json::Result<bool> {
    match raw.as_bytes().first() {
        None | Some(b'n') => return Ok(false),
        // Without a backslash the text between the quotes is the string itself (JSON
        // escapes every control character, NUL included).
        Some(b'"') if raw.len() >= 2 && raw.ends_with('"') && !raw.contains('\\') => {
            let text = &raw[1..raw.len() - 1];
            if text.is_empty() {
                return Ok(false);
            }
            out.push_str(text);
        }
        Some(b'"') => {
            let text: Cow<'_, str> = serde_json::from_str(raw)?;
            if text.is_empty() {
                return Ok(false);
            }
            // One NUL-free run after another.
            out.extend(text.split('\0'));
        }
        Some(b'-' | b'0'..=b'9') => push_number_text(raw, column_type, out),
        // true, false; and for anyType or anything unexpected, the JSON itself, for the
        // column to take or refuse.
        Some(_) => out.push_str(raw),
    }
    Ok(true)
}

/// `3.0` or `3E0` for an integer column becomes `3`: PostgreSQL's integer input refuses a
/// fraction or an exponent.
fn push_number_text(raw: &str, column_type: ColumnType, out: &mut String) {
    let integer = matches!(column_type, ColumnType::Integer | ColumnType::BigInt);
    if integer
        && raw.contains(['.', 'e', 'E'])
        && let Ok(float) = raw.parse::<f64>()
        && float.fract() == 0.0
        && float.abs() < 9.0e15
    {
        let _ = write!(out, "{float:.0}");
        return;
    }
    out.push_str(raw);
}

/// Appends `text` to a `COPY … FROM STDIN` (text format) line, escaped.
pub fn push_copy_text(line: &mut Vec<u8>, text: Option<&str>) {
    let Some(text) = text else {
        line.extend_from_slice(b"\\N");
        return;
    };
    let mut rest = text.as_bytes();
    // Most values hold nothing to escape: copy the runs between the bytes that need it.
    while let Some(at) = rest
        .iter()
        .position(|b| matches!(b, b'\\' | b'\t' | b'\n' | b'\r'))
    {
        line.extend_from_slice(&rest[..at]);
        line.extend_from_slice(match rest[at] {
            b'\\' => b"\\\\",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            _ => b"\\r",
        });
        rest = &rest[at + 1..];
    }
    line.extend_from_slice(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(raw: &str, column_type: ColumnType) -> Option<String> {
        let mut out = String::new();
        push_raw_text(raw, column_type, &mut out)
            .unwrap()
            .then_some(out)
    }

    #[test]
    fn values_become_text_postgres_reads() {
        let t = ColumnType::Text;
        assert_eq!(text("null", t), None);
        assert_eq!(text(r#""""#, t), None);
        assert_eq!(text(r#""Acme""#, t).as_deref(), Some("Acme"));
        assert_eq!(text(r#""a\u0000b""#, t).as_deref(), Some("ab"));
        assert_eq!(
            text(r#""tab\there \"q\"""#, t).as_deref(),
            Some("tab\there \"q\"")
        );
        assert_eq!(text("true", ColumnType::Boolean).as_deref(), Some("true"));
        assert_eq!(
            text("1.5E7", ColumnType::NumericAny).as_deref(),
            Some("1.5E7")
        );
        assert_eq!(text("42", ColumnType::Integer).as_deref(), Some("42"));
        assert_eq!(text("42.0", ColumnType::Integer).as_deref(), Some("42"));
        assert_eq!(text("4.2E1", ColumnType::Integer).as_deref(), Some("42"));
        assert_eq!(text("4.5", ColumnType::Integer).as_deref(), Some("4.5"));
        assert_eq!(
            text(r#"{"city":"Paris"}"#, t).as_deref(),
            Some(r#"{"city":"Paris"}"#)
        );
        assert!(push_raw_text(r#""unterminated"#, t, &mut String::new()).is_err());
    }

    #[test]
    fn values_are_appended_after_what_the_buffer_holds() {
        let mut out = String::from("001");
        assert!(push_raw_text(r#""a\u0000b""#, ColumnType::Text, &mut out).unwrap());
        assert!(!push_raw_text("null", ColumnType::Text, &mut out).unwrap());
        assert!(!push_raw_text(r#""""#, ColumnType::Text, &mut out).unwrap());
        assert!(push_raw_text("1.0E3", ColumnType::BigInt, &mut out).unwrap());
        assert!(push_raw_text("2.50", ColumnType::NumericAny, &mut out).unwrap());
        assert!(push_raw_text("false", ColumnType::Boolean, &mut out).unwrap());
        assert_eq!(out, "001ab10002.50false");
        // A fraction, or an integer past what a double holds exactly, stays as sent.
        assert_eq!(text("4.5E0", ColumnType::BigInt).as_deref(), Some("4.5E0"));
        assert_eq!(
            text("1.0E16", ColumnType::BigInt).as_deref(),
            Some("1.0E16")
        );
        assert_eq!(text("-3.00", ColumnType::Integer).as_deref(), Some("-3"));
        // Only NULs: empty text, which is not NULL.
        assert_eq!(
            text(r#""\u0000\u0000""#, ColumnType::Text).as_deref(),
            Some("")
        );
    }

    #[test]
    fn numbers_keep_every_digit_salesforce_sent() {
        // 17 significant digits: an f64 would round the last ones away.
        let numeric = ColumnType::NumericAny;
        assert_eq!(
            text("12345678901234567.89", numeric).as_deref(),
            Some("12345678901234567.89")
        );
        assert_eq!(text("0.1", numeric).as_deref(), Some("0.1"));
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
