//! The date-time spellings Salesforce reads and writes.
//!
//! Responses use `2021-11-06T17:38:40.000+0000` (an offset without a colon, which RFC 3339
//! parsers reject); requests accept ISO 8601 with `Z` or `+00:00`; conditional headers use
//! the HTTP date format `Sat, 06 Nov 2021 17:38:40 GMT`.

use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Deserializer};

/// Parses a date-time as Salesforce sends it, also accepting RFC 3339 forms.
pub fn parse(value: &str) -> Option<DateTime<Utc>> {
    DateTime::<FixedOffset>::parse_from_str(value, "%Y-%m-%dT%H:%M:%S%.f%z")
        .or_else(|_| DateTime::parse_from_rfc3339(value))
        .ok()
        .map(|t| t.with_timezone(&Utc))
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
        assert_eq!(parse("yesterday"), None);
    }

    #[test]
    fn formats_request_forms() {
        let t = Utc.with_ymd_and_hms(2013, 5, 5, 0, 0, 0).unwrap();
        assert_eq!(to_query_param(t), "2013-05-05T00:00:00+00:00");
        assert_eq!(to_http_date(t), "Sun, 05 May 2013 00:00:00 GMT");
    }
}
