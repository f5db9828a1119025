//! The sObject resources: describe global, basic info and describe (with
//! `If-Modified-Since`), and one record at a time: create, retrieve, update, delete, and
//! upsert, retrieve or delete by external id (reference §2.3, §2.4).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value as JsonValue, json};

use super::auth::Caller;
use super::error::{RestError, parse_json};
use super::state::AppState;
use crate::org::{SaveResult, UpsertOutcome};

/// The first API version whose upsert answers an update with `200` and a body; older
/// versions answer `204`.
const UPSERT_BODY_SINCE: u16 = 46;

/// `GET /sobjects/`.
pub async fn describe_global(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
) -> Response {
    let org = state.org();
    if not_modified_since(&headers, org.global_last_modified()) {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    Json(org.describe_global(&caller.version.number())).into_response()
}

/// `GET /sobjects/X/`.
pub async fn basic_info(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((_, object)): Path<(String, String)>,
) -> Result<Json<JsonValue>, RestError> {
    Ok(Json(
        state.org().basic_info(&object, &caller.version.number())?,
    ))
}

/// `GET /sobjects/X/describe/`.
pub async fn describe(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((_, object)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, RestError> {
    let org = state.org();
    let modified = org
        .describe_last_modified(&object)
        .ok_or_else(RestError::not_found)?;
    if not_modified_since(&headers, modified) {
        return Ok(StatusCode::NOT_MODIFIED.into_response());
    }
    Ok(Json(org.describe(&object, &caller.version.number())?).into_response())
}

/// `POST /sobjects/X/`: `201 {"id", "success": true, "errors": []}`.
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((_, object)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, RestError> {
    let fields = record_body(&headers, &body)?;
    let result = {
        let mut org = state.org_write(caller.change_origin("rest"));
        let id = org.create(&object, &fields, &caller.user_id)?;
        // A platform event's result names its EventUuid; it is published as the guard
        // drops (the transaction's commit).
        org.created_result(id, None)
    };
    Ok((StatusCode::CREATED, Json(result)).into_response())
}

#[derive(Debug, Deserialize)]
pub struct FieldsParam {
    fields: Option<String>,
}

/// `GET /sobjects/X/id[?fields=A,B]`.
pub async fn retrieve(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((_, object, id)): Path<(String, String, String)>,
    Query(params): Query<FieldsParam>,
) -> Result<Json<JsonValue>, RestError> {
    let record = state.org().retrieve(
        &object,
        &id,
        params.fields.as_deref(),
        &caller.version.number(),
    )?;
    Ok(Json(record))
}

/// `PATCH /sobjects/X/id`: `204`.
pub async fn update(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((_, object, id)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, RestError> {
    if id == "Id" {
        // `PATCH /sobjects/X/Id` names the Id field without a value.
        return Err(RestError::method_not_allowed("PATCH", "GET,HEAD,POST"));
    }
    let fields = record_body(&headers, &body)?;
    state
        .org_write(caller.change_origin("rest"))
        .update(&object, &id, &fields, &caller.user_id)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `DELETE /sobjects/X/id`: `204`.
pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((_, object, id)): Path<(String, String, String)>,
) -> Result<Response, RestError> {
    state
        .org_write(caller.change_origin("rest"))
        .delete(&object, &id, &caller.user_id)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /sobjects/X/Id`: an insert through the upsert resource (API 37.0 and later),
/// answered as an upsert that created its record.
pub async fn create_through_upsert(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((_, object, field)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, RestError> {
    if field != "Id" {
        return Err(RestError::method_not_allowed(
            "POST",
            "GET,PATCH,DELETE,HEAD",
        ));
    }
    let fields = record_body(&headers, &body)?;
    let id =
        state
            .org_write(caller.change_origin("rest"))
            .create(&object, &fields, &caller.user_id)?;
    let mut result = SaveResult::ok(id.to_string());
    result.created = Some(true);
    Ok((StatusCode::CREATED, Json(result)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpsertParams {
    #[serde(default)]
    update_only: Option<String>,
}

/// `PATCH /sobjects/X/Field/value`: `201` created, `200` updated (`204` before API
/// 46.0), `300` with the matching records' URLs when several match.
pub async fn upsert(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((_, object, field, value)): Path<(String, String, String, String)>,
    Query(params): Query<UpsertParams>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, RestError> {
    let fields = record_body(&headers, &body)?;
    let update_only = params
        .update_only
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let outcome = state.org_write(caller.change_origin("rest")).upsert(
        &object,
        &field,
        &value,
        &fields,
        &caller.user_id,
        &caller.version.number(),
        update_only,
    )?;
    Ok(match outcome {
        UpsertOutcome::Created(id) => {
            let mut result = SaveResult::ok(id.to_string());
            result.created = Some(true);
            (StatusCode::CREATED, Json(result)).into_response()
        }
        UpsertOutcome::Updated(id) => {
            if caller.version.0 < UPSERT_BODY_SINCE {
                StatusCode::NO_CONTENT.into_response()
            } else {
                let mut result = SaveResult::ok(id.to_string());
                result.created = Some(false);
                (StatusCode::OK, Json(result)).into_response()
            }
        }
        UpsertOutcome::Multiple(urls) => (StatusCode::MULTIPLE_CHOICES, Json(urls)).into_response(),
    })
}

/// `GET /sobjects/X/Field/value`: the record with this external id.
pub async fn retrieve_by_external_id(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((_, object, field, value)): Path<(String, String, String, String)>,
    Query(params): Query<FieldsParam>,
) -> Result<Response, RestError> {
    let version = caller.version.number();
    let org = state.org();
    match external_id_matches(&org, &object, &field, &value)?.as_slice() {
        [] => Err(RestError::not_found()),
        [id] => {
            let record = org.retrieve(&object, id, params.fields.as_deref(), &version)?;
            Ok(Json(record).into_response())
        }
        several => Ok(multiple_choices(&object, several, &caller)),
    }
}

/// `DELETE /sobjects/X/Field/value`: deletes the record with this external id.
pub async fn delete_by_external_id(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((_, object, field, value)): Path<(String, String, String, String)>,
) -> Result<Response, RestError> {
    let mut org = state.org_write(caller.change_origin("rest"));
    match external_id_matches(&org, &object, &field, &value)?.as_slice() {
        [] => Err(RestError::not_found()),
        [id] => {
            org.delete(&object, id, &caller.user_id)?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        several => Ok(multiple_choices(&object, several, &caller)),
    }
}

/// The Ids of the live records whose external-id field holds `value`, found with SOQL
/// (the field must be an external id or the `Id`; anything else is `404 NOT_FOUND`).
fn external_id_matches(
    org: &crate::org::Org,
    object: &str,
    field: &str,
    value: &str,
) -> Result<Vec<String>, RestError> {
    let def = org
        .objects()
        .find(|o| o.name.eq_ignore_ascii_case(object))
        .ok_or_else(RestError::not_found)?;
    let (_, field_def) = def.field(field).ok_or_else(RestError::not_found)?;
    if !(field_def.external_id || field_def.id_lookup) {
        return Err(RestError::not_found());
    }
    let soql = format!(
        "SELECT Id FROM {} WHERE {} = '{}'",
        def.name,
        field_def.name,
        soql_escape(value)
    );
    let cursor = org.query(&soql, false)?;
    Ok(org
        .page(&cursor, 0, cursor.len(), "62.0")
        .iter()
        .filter_map(|r| r.get("Id").and_then(JsonValue::as_str).map(str::to_owned))
        .collect())
}

fn multiple_choices(object: &str, ids: &[String], caller: &Caller) -> Response {
    let base = caller.version.base_path();
    let urls: Vec<String> = ids
        .iter()
        .map(|id| format!("{base}/sobjects/{object}/{id}"))
        .collect();
    (StatusCode::MULTIPLE_CHOICES, Json(json!(urls))).into_response()
}

/// Quotes a value for a SOQL string literal.
fn soql_escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('\'', "\\'")
}

/// A record body: a JSON object. The emulator speaks JSON only, so an XML body is refused
/// as an unsupported media type.
pub fn record_body(headers: &HeaderMap, body: &[u8]) -> Result<Map<String, JsonValue>, RestError> {
    refuse_xml(headers)?;
    match parse_json::<JsonValue>(body)? {
        JsonValue::Object(map) => Ok(map),
        other => Err(RestError::json_parser(format!(
            "Cannot deserialize instance of sObject from {} value",
            jackson_token(&other)
        ))),
    }
}

/// Refuses an XML request body: the emulator speaks JSON only.
pub fn refuse_xml(headers: &HeaderMap) -> Result<(), RestError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if content_type.contains("xml") {
        return Err(RestError::unsupported_media_type(content_type));
    }
    Ok(())
}

/// Jackson's name for the token a JSON value starts with.
pub fn jackson_token(value: &JsonValue) -> &'static str {
    match value {
        JsonValue::Null => "VALUE_NULL",
        JsonValue::Bool(true) => "VALUE_TRUE",
        JsonValue::Bool(false) => "VALUE_FALSE",
        JsonValue::Number(n) if n.is_f64() => "VALUE_NUMBER_FLOAT",
        JsonValue::Number(_) => "VALUE_NUMBER_INT",
        JsonValue::String(_) => "VALUE_STRING",
        JsonValue::Array(_) => "START_ARRAY",
        JsonValue::Object(_) => "START_OBJECT",
    }
}

/// Whether `If-Modified-Since` names a time at or after `modified`. The header's format
/// is `EEE, dd MMM yyyy HH:mm:ss z` (e.g. `Wed, 21 Oct 2015 07:28:00 GMT`); a header
/// that does not parse is ignored, as HTTP says.
fn not_modified_since(headers: &HeaderMap, modified: DateTime<Utc>) -> bool {
    headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_http_date)
        .is_some_and(|since| modified <= since)
}

fn parse_http_date(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    // `z` may be GMT, UTC or a numeric offset.
    if let Some(naive) = text
        .strip_suffix(" GMT")
        .or_else(|| text.strip_suffix(" UTC"))
    {
        return chrono::NaiveDateTime::parse_from_str(naive, "%a, %d %b %Y %H:%M:%S")
            .ok()
            .map(|n| n.and_utc());
    }
    DateTime::parse_from_str(text, "%a, %d %b %Y %H:%M:%S %z")
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn parses_http_dates() {
        let expected = Utc.with_ymd_and_hms(2015, 10, 21, 7, 28, 0).unwrap();
        assert_eq!(
            parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(expected)
        );
        assert_eq!(
            parse_http_date("Wed, 21 Oct 2015 09:28:00 +0200"),
            Some(expected)
        );
        assert_eq!(parse_http_date("yesterday"), None);
    }

    #[test]
    fn if_modified_since_compares_with_the_definition_time() {
        let modified = Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap();
        let mut headers = HeaderMap::new();
        assert!(!not_modified_since(&headers, modified));
        headers.insert(
            header::IF_MODIFIED_SINCE,
            "Tue, 02 Jan 2024 03:04:05 GMT".parse().unwrap(),
        );
        assert!(not_modified_since(&headers, modified));
        headers.insert(
            header::IF_MODIFIED_SINCE,
            "Tue, 02 Jan 2024 03:04:04 GMT".parse().unwrap(),
        );
        assert!(!not_modified_since(&headers, modified));
    }

    #[test]
    fn escapes_soql_literals() {
        assert_eq!(soql_escape(r"O'Brien\x"), r"O\'Brien\\x");
    }
}
