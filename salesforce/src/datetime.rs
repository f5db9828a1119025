//! The date-time spellings Salesforce reads and writes.
//!
//! Responses use `2021-11-06T17:38:40.000+0000` (an offset without a colon, which RFC 3339
//! parsers reject); requests accept ISO 8601 with `Z` or `+00:00`; conditional headers use
//! the HTTP date format `Sat, 06 Nov 2021 17:38:40 GMT`.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime, Utc};
use serde::{Deserialize, Deserializer};

/// Parses a date-time as Salesforce sends it, also accepting RFC 3339 forms.
pub fn parse(value: &str) -> Option<DateTime<Utc>> {
    if let Some(utc) = parse_utc_millis(value) {
        return Some(utc);
    }
    DateTime::<FixedOffset>::parse_from_str(value, "%Y-%m-%dT%H:%M:%S%.f%z")
        .or_else(|_| DateTime::parse_from_rfc3339(value))
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The form every response uses, `2021-11-06T17:38:40.000+0000`, read digit by digit: the
/// sync reads one per record, and chrono's pattern parser costs twenty times more. `None`
/// for anything else (a leap second too), which the general parsers then read.
fn parse_utc_millis(value: &str) -> Option<DateTime<Utc>> {
    let b = value.as_bytes();
    if b.len() != 28 || &b[23..] != b"+0000" {
        return None;
    }
    for (at, separator) in [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'.'),
    ] {
        if b[at] != separator {
            return None;
        }
    }
    let number = |range: std::ops::Range<usize>| {
        b[range].iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    let date = NaiveDate::from_ymd_opt(
        i32::try_from(number(0..4)?).ok()?,
        number(5..7)?,
        number(8..10)?,
    )?;
    let time = NaiveTime::from_hms_milli_opt(
        number(11..13)?,
        number(14..16)?,
        number(17..19)?,
        number(20..23)?,
    )?;
    Some(date.and_time(time).and_utc())
}

/// Formats a date-time for a query parameter such as `updated/?start=`.
pub(crate) fn to_query_param(value: DateTime<Utc>) -> String {
    value.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()
}

/// Formats a date-time for `If-Modified-Since`.
pub(crate) fn to_http_date(value: DateTime<Utc>) -> String {
    value.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// Serde adapter for a required Salesforce date-time.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<DateTime<Utc>, D::Error> {
    let value = String::deserialize(deserializer)?;
    parse(&value)
        .ok_or_else(|| serde::de::Error::custom(format!("{value:?} is not a Salesforce date-time")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn parses_salesforce_and_iso_forms() {
        let expected = Utc.with_ymd_and_hms(2021, 11, 6, 17, 38, 40).unwrap();
        for text in [
            "2021-11-06T17:38:40.000+0000",
            "2021-11-06T17:38:40Z",
            "2021-11-06T17:38:40.000Z",
            "2021-11-06T17:38:40+00:00",
            "2021-11-06T19:38:40.000+0200",
        ] {
            assert_eq!(parse(text), Some(expected), "{text}");
        }
        assert_eq!(parse("2021-11-06"), None);
        assert_eq!(parse("2021-13-06T17:38:40.000+0000"), None);
        assert_eq!(parse("2021-11-06T17:38:4x.000+0000"), None);
    }

    #[test]
    fn the_response_form_reads_as_the_general_parser_reads_it() {
        let general = |text: &str| {
            DateTime::<FixedOffset>::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z")
                .ok()
                .map(|t| t.with_timezone(&Utc))
        };
        for text in [
            "2021-11-06T17:38:40.000+0000",
            "2021-11-06T17:38:40.123+0000",
            "0001-01-01T00:00:00.000+0000",
            "9999-12-31T23:59:59.999+0000",
            "2024-02-29T12:00:00.001+0000",
            "2023-02-29T12:00:00.000+0000",
            "2021-11-06T24:00:00.000+0000",
            "2016-12-31T23:59:60.500+0000",
        ] {
            assert_eq!(parse(text), general(text), "{text}");
            if parse_utc_millis(text).is_some() {
                assert_eq!(parse_utc_millis(text), general(text), "{text}");
            }
        }
        assert!(parse_utc_millis("2021-11-06T17:38:40.000+0000").is_some());
        assert!(parse_utc_millis("2021-11-06T17:38:40.000+0100").is_none());
        assert_eq!(parse("yesterday"), None);
    }

    #[test]
    fn formats_request_forms() {
        let t = Utc.with_ymd_and_hms(2013, 5, 5, 0, 0, 0).unwrap();
        assert_eq!(to_query_param(t), "2013-05-05T00:00:00+00:00");
        assert_eq!(to_http_date(t), "Sun, 05 May 2013 00:00:00 GMT");
    }
}
