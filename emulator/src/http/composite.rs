//! Composite (`POST /composite`, reference §4.2): up to 25 subrequests run in order under
//! one write lock, as one API request, later ones reading earlier answers through
//! `@{referenceId.field}` references (`.` for a key, `[n]` for an array element,
//! case-sensitive), in the URL and in string values of the body.
//!
//! Served subrequests: sObject Collections create, update and delete, and one record's
//! create (`POST /sobjects/X`), read, update and delete (`/sobjects/X/id`). Any other URL
//! answers as Salesforce answers an unknown resource, `404 NOT_FOUND`.
//!
//! `allOrNone: true` (documented): one journal spans the subrequests, the first failure
//! (an error status, or a Collections record refused) stops the request and undoes
//! everything, the outer flag forces each Collections subrequest's own `allOrNone`, and
//! the failing subrequest keeps its answer while every other answers 400. The 400 body,
//! `PROCESSING_HALTED` "The transaction was rolled back since another operation in the
//! same transaction failed.", is as observed in client code, not documented.
//! `allOrNone: false`: each subrequest stands alone, and one that refers to a failed one
//! is not run. Unverified, and chosen here: the wording of unresolvable references and of
//! envelope errors (limits, duplicate or malformed referenceIds).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::http::HeaderMap;
use serde::Serialize;
use serde_json::{Map, Value as JsonValue, json};

use super::auth::Caller;
use super::collections::{QueryParams, missing_ids, save_body_of};
use super::error::{RestError, parse_json};
use super::sobjects::{jackson_token, refuse_xml};
use super::state::AppState;
use crate::ids::Id;
use crate::org::{Journal, Org};

use self::references::{reference_id_of, resolve};

mod references;
#[cfg(test)]
mod tests;

/// The most subrequests one Composite request takes.
pub const MAX_SUBREQUESTS: usize = 25;
/// Of them, the most that may be sObject Collections or query operations.
pub const MAX_COLLECTIONS: usize = 5;

/// The body of every subrequest other than the culprit, under `allOrNone`.
const HALTED_MESSAGE: &str =
    "The transaction was rolled back since another operation in the same transaction failed.";

/// Headers a subrequest inherits from the top-level request and may not set.
const INHERITED_HEADERS: [&str; 3] = ["accept", "authorization", "content-type"];

/// One subrequest as the client sent it.
#[derive(Debug, Clone, PartialEq)]
struct Subrequest {
    method: String,
    url: String,
    reference_id: String,
    body: Option<JsonValue>,
}

/// One entry of `compositeResponse`.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct SubResponse {
    body: JsonValue,
    #[serde(rename = "httpHeaders")]
    http_headers: Map<String, JsonValue>,
    #[serde(rename = "httpStatusCode")]
    http_status_code: u16,
    #[serde(rename = "referenceId")]
    reference_id: String,
}

impl SubResponse {
    fn new(status: u16, body: JsonValue) -> SubResponse {
        SubResponse {
            body,
            http_headers: Map::new(),
            http_status_code: status,
            reference_id: String::new(),
        }
    }

    fn error(error: RestError) -> SubResponse {
        let mut entry = json!({"message": error.message, "errorCode": error.error_code});
        if let Some(fields) = error.fields {
            entry["fields"] = json!(fields);
        }
        SubResponse::new(error.status.as_u16(), JsonValue::Array(vec![entry]))
    }

    fn halted() -> SubResponse {
        SubResponse::new(
            400,
            json!([{"errorCode": "PROCESSING_HALTED", "message": HALTED_MESSAGE}]),
        )
    }

    /// Whether the subrequest did what it was asked: a 2xx status and, for Collections,
    /// every record saved.
    fn succeeded(&self) -> bool {
        (200..300).contains(&self.http_status_code)
            && match &self.body {
                JsonValue::Array(items) => items
                    .iter()
                    .all(|i| i.get("success").and_then(JsonValue::as_bool) != Some(false)),
                _ => true,
            }
    }
}

/// `POST /composite`.
pub async fn composite(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<JsonValue>, RestError> {
    refuse_xml(&headers)?;
    let (all_or_none, subrequests) = envelope(&body)?;
    let base = caller.version.base_path();
    let responses = {
        let mut org = state.org_write(caller.change_origin("rest"));
        run(&mut org, &subrequests, all_or_none, &caller.user_id, &base)
    };
    Ok(Json(json!({ "compositeResponse": responses })))
}

/// Reads and checks the envelope: any fault refuses the whole request with 400.
fn envelope(body: &[u8]) -> Result<(bool, Vec<Subrequest>), RestError> {
    let JsonValue::Object(mut body) = parse_json::<JsonValue>(body)? else {
        return Err(RestError::json_parser(
            "Cannot deserialize instance of CompositeRequest from non-object value",
        ));
    };
    let all_or_none = flag(&mut body, "allOrNone")?;
    flag(&mut body, "collateSubrequests")?;
    let items = match body.remove("compositeRequest") {
        Some(JsonValue::Array(items)) if !items.is_empty() => items,
        Some(JsonValue::Array(_)) | None | Some(JsonValue::Null) => {
            return Err(RestError::bad_request(
                "INVALID_INPUT",
                "compositeRequest must hold at least one subrequest",
            ));
        }
        Some(other) => {
            return Err(RestError::json_parser(format!(
                "Cannot deserialize instance of List from {} value",
                jackson_token(&other)
            )));
        }
    };
    let subrequests = items
        .into_iter()
        .map(subrequest)
        .collect::<Result<Vec<_>, _>>()?;
    let collections = subrequests
        .iter()
        .filter(|s| counts_as_collection(&s.url))
        .count();
    if subrequests.len() > MAX_SUBREQUESTS || collections > MAX_COLLECTIONS {
        return Err(RestError::bad_request(
            "LIMIT_EXCEEDED",
            format!(
                "A composite request may have at most {MAX_SUBREQUESTS} subrequests, of which at \
                 most {MAX_COLLECTIONS} sObject Collections or query operations; this one has {} \
                 and {collections}",
                subrequests.len()
            ),
        ));
    }
    for (i, s) in subrequests.iter().enumerate() {
        if subrequests[..i]
            .iter()
            .any(|earlier| earlier.reference_id == s.reference_id)
        {
            return Err(RestError::bad_request(
                "INVALID_INPUT",
                format!(
                    "Duplicate ReferenceId provided in the request: {}",
                    s.reference_id
                ),
            ));
        }
    }
    Ok((all_or_none, subrequests))
}

fn flag(body: &mut Map<String, JsonValue>, key: &str) -> Result<bool, RestError> {
    match body.remove(key) {
        None | Some(JsonValue::Null) => Ok(false),
        Some(JsonValue::Bool(b)) => Ok(b),
        Some(other) => Err(RestError::json_parser(format!(
            "Cannot deserialize instance of boolean from {} value",
            jackson_token(&other)
        ))),
    }
}

fn subrequest(item: JsonValue) -> Result<Subrequest, RestError> {
    let JsonValue::Object(mut item) = item else {
        return Err(RestError::json_parser(
            "Cannot deserialize instance of CompositeSubrequest from non-object value",
        ));
    };
    let mut text = |key: &str| match item.remove(key) {
        Some(JsonValue::String(s)) if !s.is_empty() => Ok(s),
        _ => Err(RestError::bad_request(
            "INVALID_INPUT",
            format!("Each subrequest needs a {key}"),
        )),
    };
    let method = text("method")?;
    let url = text("url")?;
    let reference_id = text("referenceId")?;
    let well_formed = reference_id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !well_formed {
        return Err(RestError::bad_request(
            "INVALID_INPUT",
            format!(
                "Provided referenceId ('{reference_id}') must contain only letters, numbers and underscores ('_')"
            ),
        ));
    }
    if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method.as_str()) {
        return Err(RestError::bad_request(
            "INVALID_INPUT",
            format!("Invalid HTTP method {method} in subrequest {reference_id}"),
        ));
    }
    match item.remove("httpHeaders") {
        None | Some(JsonValue::Null) => {}
        Some(JsonValue::Object(headers)) => {
            if let Some(name) = headers
                .keys()
                .find(|k| INHERITED_HEADERS.contains(&k.to_ascii_lowercase().as_str()))
            {
                return Err(RestError::bad_request(
                    "INVALID_INPUT",
                    format!("Subrequests may not set the {name} header"),
                ));
            }
        }
        Some(other) => {
            return Err(RestError::json_parser(format!(
                "Cannot deserialize instance of Map from {} value",
                jackson_token(&other)
            )));
        }
    }
    Ok(Subrequest {
        method,
        url,
        reference_id,
        body: item.remove("body").filter(|b| !b.is_null()),
    })
}

/// sObject Collections and queries: Salesforce takes at most five of them per request.
fn counts_as_collection(url: &str) -> bool {
    let path = url.split('?').next().unwrap_or_default();
    let rest = version_relative(path).unwrap_or(path);
    rest.starts_with("composite/sobjects")
        || rest == "query"
        || rest.starts_with("query/")
        || rest == "queryAll"
        || rest.starts_with("queryAll/")
}

/// The path after `/services/data/vNN.N/`.
fn version_relative(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/services/data/v")?;
    let (version, rest) = rest.split_once('/')?;
    version
        .bytes()
        .all(|b| b.is_ascii_digit() || b == b'.')
        .then_some(rest.trim_end_matches('/'))
}

/// Runs the subrequests in order and answers each.
fn run(
    org: &mut Org,
    subrequests: &[Subrequest],
    all_or_none: bool,
    user: &Id,
    base: &str,
) -> Vec<SubResponse> {
    let mut journal = Journal::default();
    let mut done: Vec<SubResponse> = Vec::with_capacity(subrequests.len());
    let mut failed_at = None;
    for (index, subrequest) in subrequests.iter().enumerate() {
        let response = match resolve(subrequest, &done) {
            Ok((url, body)) => {
                let journal = all_or_none.then_some(&mut journal);
                execute(
                    org,
                    &subrequest.method,
                    &url,
                    body,
                    all_or_none,
                    journal,
                    user,
                    base,
                )
            }
            Err(reference) => SubResponse::error(RestError::bad_request(
                "PROCESSING_HALTED",
                format!(
                    "Invalid reference specified. No value for {reference} found in {}.",
                    reference_id_of(&reference)
                ),
            )),
        };
        let failed = !response.succeeded();
        done.push(SubResponse {
            reference_id: subrequest.reference_id.clone(),
            ..response
        });
        if all_or_none && failed {
            failed_at = Some(index);
            break;
        }
    }
    let Some(culprit) = failed_at else {
        return done;
    };
    org.roll_back(journal);
    subrequests
        .iter()
        .enumerate()
        .map(|(index, subrequest)| {
            let response = match index == culprit {
                true => done[culprit].clone(),
                false => SubResponse::halted(),
            };
            SubResponse {
                reference_id: subrequest.reference_id.clone(),
                ..response
            }
        })
        .collect()
}

/// Runs one subrequest against the org. With `journal` (the request is all-or-none),
/// what it changes goes into the journal, and Collections run all-or-none whatever their
/// own flag says.
#[allow(clippy::too_many_arguments)]
fn execute(
    org: &mut Org,
    method: &str,
    url: &str,
    body: Option<JsonValue>,
    all_or_none: bool,
    journal: Option<&mut Journal>,
    user: &Id,
    base: &str,
) -> SubResponse {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let Some(rest) = version_relative(path) else {
        return SubResponse::error(RestError::not_found());
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let outcome = match (method, segments.as_slice()) {
        ("POST" | "PATCH", ["composite", "sobjects"]) => {
            collection_save(org, method, body, all_or_none, journal, user)
        }
        ("DELETE", ["composite", "sobjects"]) => {
            collection_delete(org, query, all_or_none, journal, user)
        }
        ("POST", ["sobjects", object]) => record_body(body).and_then(|fields| {
            let mut own = Journal::default();
            let id = org.create_journaled(object, &fields, user, journal.unwrap_or(&mut own))?;
            let mut response = SubResponse::new(201, json!(org.created_result(id, None)));
            response.http_headers.insert(
                "Location".into(),
                json!(format!("{base}/sobjects/{object}/{id}")),
            );
            Ok(response)
        }),
        ("PATCH", ["sobjects", object, id]) => record_body(body).and_then(|fields| {
            let mut own = Journal::default();
            org.update_journaled(object, id, &fields, user, journal.unwrap_or(&mut own))?;
            Ok(SubResponse::new(204, JsonValue::Null))
        }),
        ("DELETE", ["sobjects", object, id]) => {
            let mut own = Journal::default();
            org.delete_journaled(object, id, user, journal.unwrap_or(&mut own))
                .map(|()| SubResponse::new(204, JsonValue::Null))
                .map_err(RestError::from)
        }
        ("GET", ["sobjects", object, id]) => {
            let params = QueryParams::parse(Some(query));
            let version = base.trim_start_matches("/services/data/v");
            org.retrieve(object, id, params.get("fields"), version)
                .map(|record| SubResponse::new(200, record))
                .map_err(RestError::from)
        }
        _ => Err(RestError::not_found()),
    };
    outcome.unwrap_or_else(SubResponse::error)
}

fn record_body(body: Option<JsonValue>) -> Result<Map<String, JsonValue>, RestError> {
    match body {
        Some(JsonValue::Object(map)) => Ok(map),
        None => Ok(Map::new()),
        Some(other) => Err(RestError::json_parser(format!(
            "Cannot deserialize instance of sObject from {} value",
            jackson_token(&other)
        ))),
    }
}

fn collection_save(
    org: &mut Org,
    method: &str,
    body: Option<JsonValue>,
    all_or_none: bool,
    journal: Option<&mut Journal>,
    user: &Id,
) -> Result<SubResponse, RestError> {
    let Some(JsonValue::Object(body)) = body else {
        return Err(RestError::json_parser(
            "Cannot deserialize instance of request from non-object value",
        ));
    };
    let body = save_body_of(body)?;
    // The outer allOrNone overrides the inner one when true.
    let inner = all_or_none || body.all_or_none;
    let results = match method {
        "POST" => org.collection_create_in(&body.records, inner, user, journal)?,
        _ => org.collection_update_in(&body.records, inner, user, journal)?,
    };
    Ok(SubResponse::new(200, json!(results)))
}

fn collection_delete(
    org: &mut Org,
    query: &str,
    all_or_none: bool,
    journal: Option<&mut Journal>,
    user: &Id,
) -> Result<SubResponse, RestError> {
    let params = QueryParams::parse(Some(query));
    let ids = params.ids().ok_or_else(missing_ids)?;
    let inner = all_or_none || params.flag("allOrNone")?;
    let results = org.collection_delete_in(&ids, inner, user, journal)?;
    Ok(SubResponse::new(200, json!(results)))
}
