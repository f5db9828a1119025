//! `GET /sobjects/X/updated/?start=&end=` and `/deleted/?start=&end=` (reference §2.5).
//! The windows themselves (seconds ignored, day limits, the delete log) are the org's.

use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;
use serde_json::Value as JsonValue;

use super::auth::Caller;
use super::error::RestError;
use super::state::AppState;

#[derive(Debug, Deserialize)]
pub struct Window {
    start: Option<String>,
    end: Option<String>,
}

impl Window {
    fn bounds(&self) -> Result<(DateTime<Utc>, DateTime<Utc>), RestError> {
        Ok((
            bound("start", self.start.as_deref())?,
            bound("end", self.end.as_deref())?,
        ))
    }
}

/// `GET /sobjects/X/updated/`.
pub async fn updated(
    State(state): State<AppState>,
    Extension(_caller): Extension<Caller>,
    Path((_, object)): Path<(String, String)>,
    Query(window): Query<Window>,
) -> Result<Json<JsonValue>, RestError> {
    let (start, end) = window.bounds()?;
    Ok(Json(state.org().updated(&object, start, end)?))
}

/// `GET /sobjects/X/deleted/`.
pub async fn deleted(
    State(state): State<AppState>,
    Extension(_caller): Extension<Caller>,
    Path((_, object)): Path<(String, String)>,
    Query(window): Query<Window>,
) -> Result<Json<JsonValue>, RestError> {
    let (start, end) = window.bounds()?;
    Ok(Json(state.org().deleted(&object, start, end)?))
}

fn bound(name: &str, value: Option<&str>) -> Result<DateTime<Utc>, RestError> {
    let value = value.ok_or_else(|| {
        RestError::bad_request(
            "MISSING_ARGUMENT",
            format!("Missing required parameter: {name}"),
        )
    })?;
    parse_datetime(value).ok_or_else(|| {
        RestError::bad_request(
            "INVALID_REPLICATION_DATE",
            format!("{name}: invalid date/time format: {value}"),
        )
    })
}

/// The dateTime forms Salesforce accepts in a URL: `2024-01-02T03:04:05Z`,
/// `...+00:00`, `...+0000`, with or without milliseconds.
pub fn parse_datetime(text: &str) -> Option<DateTime<Utc>> {
    // An offset's `+` arrives as a space when the client did not URL-encode it.
    let text = text.trim().replace(' ', "+");
    let text = text.as_str();
    if let Ok(d) = DateTime::parse_from_rfc3339(text) {
        return Some(d.with_timezone(&Utc));
    }
    if let Ok(d) = DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return Some(d.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|n| n.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn reads_salesforce_datetime_forms() {
        let expected = Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap();
        for text in [
            "2024-01-02T03:04:05Z",
            "2024-01-02T03:04:05.000Z",
            "2024-01-02T03:04:05+00:00",
            "2024-01-02T03:04:05.000+0000",
            "2024-01-02T05:04:05+02:00",
        ] {
            assert_eq!(parse_datetime(text), Some(expected), "{text}");
        }
        assert_eq!(parse_datetime("2024-01-02T03:04:05 00:00"), Some(expected));
        assert_eq!(parse_datetime("2024-01-02"), None);
    }
}
