//! sObject Collections at `/composite/sobjects` (reference §4.1): create, update, upsert,
//! delete and retrieve up to 200 records in one request, results in request order, with
//! `allOrNone` rolling everything back on one failure.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::HeaderMap;
use serde_json::{Map, Value as JsonValue};

use super::auth::Caller;
use super::error::{RestError, parse_json};
use super::sobjects::{jackson_token, refuse_xml};
use super::state::AppState;
use crate::org::SaveResult;

/// `{"allOrNone": bool, "records": [...]}`.
pub(super) struct SaveBody {
    pub(super) all_or_none: bool,
    pub(super) records: Vec<JsonValue>,
}

/// `POST /composite/sobjects`: create.
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Vec<SaveResult>>, RestError> {
    let body = save_body(&headers, &body)?;
    let results = state
        .org_write(caller.change_origin("rest"))
        .collection_create(&body.records, body.all_or_none, &caller.user_id)?;
    Ok(Json(results))
}

/// `PATCH /composite/sobjects`: update; every record carries its `id`.
pub async fn update(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Vec<SaveResult>>, RestError> {
    let body = save_body(&headers, &body)?;
    let results = state
        .org_write(caller.change_origin("rest"))
        .collection_update(&body.records, body.all_or_none, &caller.user_id)?;
    Ok(Json(results))
}

/// `PATCH /composite/sobjects/X/ExtField`: upsert by external id; results carry `created`.
pub async fn upsert(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((_, object, field)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Vec<SaveResult>>, RestError> {
    let body = save_body(&headers, &body)?;
    let results = state
        .org_write(caller.change_origin("rest"))
        .collection_upsert(
            &object,
            &field,
            &body.records,
            body.all_or_none,
            &caller.user_id,
        )?;
    Ok(Json(results))
}

/// `DELETE /composite/sobjects?ids=a,b&allOrNone=true`.
pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<SaveResult>>, RestError> {
    let params = QueryParams::parse(query.as_deref());
    let ids = params.ids().ok_or_else(missing_ids)?;
    let all_or_none = params.flag("allOrNone")?;
    let results = state
        .org_write(caller.change_origin("rest"))
        .collection_delete(&ids, all_or_none, &caller.user_id)?;
    Ok(Json(results))
}

/// `GET /composite/sobjects/X?ids=a,b&fields=F,G`: the records in request order, `null`
/// for each Id that names no live record.
pub async fn retrieve(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((_, object)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<JsonValue>>, RestError> {
    let params = QueryParams::parse(query.as_deref());
    let ids = params.ids().ok_or_else(missing_ids)?;
    let fields = params.get("fields").ok_or_else(missing_fields)?;
    let records =
        state
            .org()
            .collection_retrieve(&object, &ids, fields, &caller.version.number())?;
    Ok(Json(records))
}

/// `POST /composite/sobjects/X` with `{"ids": [...], "fields": [...]}`: retrieve for Id
/// lists too long for a URL.
pub async fn retrieve_by_body(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((_, object)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Vec<JsonValue>>, RestError> {
    refuse_xml(&headers)?;
    let body = object_body(&body)?;
    let ids = string_list(&body, "ids")?.ok_or_else(missing_ids)?;
    let fields = string_list(&body, "fields")?.ok_or_else(missing_fields)?;
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let records = state.org().collection_retrieve(
        &object,
        &ids,
        &fields.join(","),
        &caller.version.number(),
    )?;
    Ok(Json(records))
}

fn save_body(headers: &HeaderMap, body: &[u8]) -> Result<SaveBody, RestError> {
    refuse_xml(headers)?;
    save_body_of(object_body(body)?)
}

/// A Collections save body already parsed (a Composite subrequest's).
pub(super) fn save_body_of(mut body: Map<String, JsonValue>) -> Result<SaveBody, RestError> {
    let all_or_none = match body.remove("allOrNone") {
        None | Some(JsonValue::Null) => false,
        Some(JsonValue::Bool(b)) => b,
        Some(other) => {
            return Err(RestError::json_parser(format!(
                "Cannot deserialize instance of boolean from {} value",
                jackson_token(&other)
            )));
        }
    };
    let records = match body.remove("records") {
        Some(JsonValue::Array(records)) => records,
        None | Some(JsonValue::Null) => Vec::new(),
        Some(other) => {
            return Err(RestError::json_parser(format!(
                "Cannot deserialize instance of List from {} value",
                jackson_token(&other)
            )));
        }
    };
    if records.is_empty() {
        return Err(RestError::bad_request(
            "INVALID_FIELD",
            "No records were specified in the request",
        ));
    }
    Ok(SaveBody {
        all_or_none,
        records,
    })
}

fn object_body(body: &[u8]) -> Result<Map<String, JsonValue>, RestError> {
    match parse_json::<JsonValue>(body)? {
        JsonValue::Object(map) => Ok(map),
        other => Err(RestError::json_parser(format!(
            "Cannot deserialize instance of request from {} value",
            jackson_token(&other)
        ))),
    }
}

/// A list of strings in a body (`["a", "b"]`), or `None` when absent.
fn string_list(body: &Map<String, JsonValue>, key: &str) -> Result<Option<Vec<String>>, RestError> {
    match body.get(key) {
        None | Some(JsonValue::Null) => Ok(None),
        Some(JsonValue::Array(items)) => items
            .iter()
            .map(|item| match item {
                JsonValue::String(s) => Ok(s.clone()),
                other => Err(RestError::json_parser(format!(
                    "Cannot deserialize instance of String from {} value",
                    jackson_token(other)
                ))),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(other) => Err(RestError::json_parser(format!(
            "Cannot deserialize instance of List from {} value",
            jackson_token(other)
        ))),
    }
}

pub(super) fn missing_ids() -> RestError {
    RestError::bad_request("MISSING_ARGUMENT", "The ids parameter is required")
}

fn missing_fields() -> RestError {
    RestError::bad_request("MISSING_ARGUMENT", "The fields parameter is required")
}

/// Query-string parameters, read once.
pub(super) struct QueryParams(Vec<(String, String)>);

impl QueryParams {
    pub(super) fn parse(query: Option<&str>) -> QueryParams {
        QueryParams(
            query
                .map(|q| {
                    url::form_urlencoded::parse(q.as_bytes())
                        .into_owned()
                        .collect()
                })
                .unwrap_or_default(),
        )
    }

    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// `ids=a,b,c` as a list, or `None` when absent or empty.
    pub(super) fn ids(&self) -> Option<Vec<&str>> {
        let ids: Vec<&str> = self
            .get("ids")?
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        (!ids.is_empty()).then_some(ids)
    }

    /// A `true`/`false` parameter, false when absent.
    pub(super) fn flag(&self, name: &str) -> Result<bool, RestError> {
        match self.get(name) {
            None => Ok(false),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(v) => Err(RestError::bad_request(
                "INVALID_FIELD",
                format!("'{v}' is not a valid value for the type xsd:boolean"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ids_and_flags() {
        let params = QueryParams::parse(Some("ids=001A,%20001B,&allOrNone=TRUE"));
        assert_eq!(params.ids(), Some(vec!["001A", "001B"]));
        assert!(params.flag("allOrNone").unwrap());
        assert!(!params.flag("other").unwrap());
        assert!(
            QueryParams::parse(Some("allOrNone=yes"))
                .flag("allOrNone")
                .is_err()
        );
        assert_eq!(QueryParams::parse(Some("ids=")).ids(), None);
    }

    #[test]
    fn save_body_checks_its_shape() {
        let headers = HeaderMap::new();
        let body = save_body(&headers, br#"{"allOrNone": true, "records": [{}]}"#).unwrap();
        assert!(body.all_or_none);
        assert_eq!(body.records.len(), 1);
        let error = save_body(&headers, br#"{"allOrNone": "yes", "records": [{}]}"#)
            .err()
            .unwrap();
        assert_eq!(error.error_code, "JSON_PARSER_ERROR");
        let error = save_body(&headers, br#"[1]"#).err().unwrap();
        assert_eq!(error.error_code, "JSON_PARSER_ERROR");
    }
}
