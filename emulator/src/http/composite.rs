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
use crate::org::{Journal, Org, SaveResult};

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
        let mut org = state.org_mut();
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

/// The subrequest's URL and body with every reference replaced, or the first reference
/// that has no value.
fn resolve(
    subrequest: &Subrequest,
    done: &[SubResponse],
) -> Result<(String, Option<JsonValue>), String> {
    let lookup = |expression: &str| -> Option<JsonValue> {
        let reference_id = reference_id_of(expression);
        // Only an earlier subrequest's answer can be read, and only if it succeeded.
        let response = done.iter().find(|r| r.reference_id == reference_id)?;
        if !response.succeeded() {
            return None;
        }
        navigate(&response.body, &expression[reference_id.len()..])
    };
    let url = substitute_text(&subrequest.url, &lookup)?;
    let body = subrequest
        .body
        .as_ref()
        .map(|b| substitute_json(b, &lookup))
        .transpose()?;
    Ok((url, body))
}

/// The referenceId an expression such as `NewAccount.id` or `create0[2].id` starts with.
fn reference_id_of(expression: &str) -> &str {
    let end = expression.find(['.', '[']).unwrap_or(expression.len());
    &expression[..end]
}

/// Follows `.key` and `[n]` steps into `value`; `None` when a step does not exist or the
/// end is not a scalar.
fn navigate(value: &JsonValue, mut steps: &str) -> Option<JsonValue> {
    let mut current = value;
    while !steps.is_empty() {
        if let Some(rest) = steps.strip_prefix('[') {
            let (index, rest) = rest.split_once(']')?;
            current = current.as_array()?.get(index.parse::<usize>().ok()?)?;
            steps = rest;
        } else if let Some(rest) = steps.strip_prefix('.') {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            current = current.as_object()?.get(&rest[..end])?;
            steps = &rest[end..];
        } else {
            return None;
        }
    }
    match current {
        JsonValue::String(_) | JsonValue::Number(_) | JsonValue::Bool(_) => Some(current.clone()),
        _ => None,
    }
}

fn as_text(value: &JsonValue) -> String {
    match value {
        JsonValue::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Replaces every `@{…}` in `text` with its value.
fn substitute_text(
    text: &str,
    lookup: &impl Fn(&str) -> Option<JsonValue>,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("@{") {
        let Some(len) = rest[start + 2..].find('}') else {
            break;
        };
        let expression = &rest[start + 2..start + 2 + len];
        let value = lookup(expression).ok_or_else(|| expression.to_owned())?;
        out.push_str(&rest[..start]);
        out.push_str(&as_text(&value));
        rest = &rest[start + 3 + len..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Replaces references in every string of `value`; a string that is one reference and
/// nothing else takes the referenced value as it is (a number stays a number).
fn substitute_json(
    value: &JsonValue,
    lookup: &impl Fn(&str) -> Option<JsonValue>,
) -> Result<JsonValue, String> {
    Ok(match value {
        JsonValue::String(s) => {
            let whole = s
                .strip_prefix("@{")
                .and_then(|r| r.strip_suffix('}'))
                .filter(|inner| !inner.contains('}'));
            match whole {
                Some(expression) => lookup(expression).ok_or_else(|| expression.to_owned())?,
                None => JsonValue::String(substitute_text(s, lookup)?),
            }
        }
        JsonValue::Array(items) => JsonValue::Array(
            items
                .iter()
                .map(|i| substitute_json(i, lookup))
                .collect::<Result<_, _>>()?,
        ),
        JsonValue::Object(map) => JsonValue::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), substitute_json(v, lookup)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
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
            let mut response = SubResponse::new(201, json!(SaveResult::ok(id.to_string())));
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

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;

    fn lookup_in(body: JsonValue) -> impl Fn(&str) -> Option<JsonValue> {
        move |expression: &str| {
            let id = reference_id_of(expression);
            (id == "create0").then(|| navigate(&body, &expression[id.len()..]))?
        }
    }

    #[test]
    fn references_follow_keys_and_indexes_case_sensitively() {
        let lookup = lookup_in(json!([
            {"id": "001A", "success": true},
            {"id": "001B", "success": true, "n": 3, "nested": {"City": "Lyon"}}
        ]));
        assert_eq!(
            substitute_text("x/@{create0[1].id}/y", &lookup).unwrap(),
            "x/001B/y"
        );
        assert_eq!(
            substitute_json(
                &json!({"AccountId": "@{create0[0].id}", "N": "@{create0[1].n}"}),
                &lookup
            )
            .unwrap(),
            json!({"AccountId": "001A", "N": 3})
        );
        assert_eq!(
            substitute_json(&json!("in @{create0[1].nested.City}"), &lookup).unwrap(),
            json!("in Lyon")
        );
        // Case-sensitive: neither the key nor the referenceId may change case.
        assert_eq!(
            substitute_text("@{create0[0].Id}", &lookup).unwrap_err(),
            "create0[0].Id"
        );
        assert!(substitute_text("@{Create0[0].id}", &lookup).is_err());
        assert!(substitute_text("@{create0[7].id}", &lookup).is_err());
        // A structure is not a value.
        assert!(substitute_text("@{create0[1].nested}", &lookup).is_err());
        assert_eq!(
            substitute_text("no references", &lookup).unwrap(),
            "no references"
        );
    }

    #[test]
    fn the_envelope_is_checked_as_a_whole() {
        let one = |i: usize| json!({"method": "DELETE", "url": "/services/data/v62.0/composite/sobjects?ids=001A", "referenceId": format!("d{i}")});
        let body = |items: Vec<JsonValue>| {
            serde_json::to_vec(&json!({"allOrNone": true, "compositeRequest": items})).unwrap()
        };
        let (all_or_none, subrequests) = envelope(&body((0..5).map(one).collect())).unwrap();
        assert!(all_or_none);
        assert_eq!(subrequests.len(), 5);
        let error = envelope(&body((0..6).map(one).collect())).unwrap_err();
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
        assert_eq!(error.error_code, "LIMIT_EXCEEDED");
        let record = |i: usize| json!({"method": "POST", "url": "/services/data/v62.0/sobjects/Account", "referenceId": format!("a{i}"), "body": {"Name": "x"}});
        assert!(envelope(&body((0..25).map(record).collect())).is_ok());
        assert!(envelope(&body((0..26).map(record).collect())).is_err());
        assert!(envelope(&body(vec![one(1), one(1)])).is_err());
        let bad_reference = json!({"method": "GET", "url": "/x", "referenceId": "a-b"});
        assert!(envelope(&body(vec![bad_reference])).is_err());
        let no_reference = json!({"method": "GET", "url": "/x"});
        assert!(envelope(&body(vec![no_reference])).is_err());
        let header = json!({"method": "GET", "url": "/x", "referenceId": "a", "httpHeaders": {"Content-Type": "text/plain"}});
        assert!(envelope(&body(vec![header])).is_err());
        assert!(envelope(&body(Vec::new())).is_err());
    }

    fn account(name: Option<&str>) -> JsonValue {
        match name {
            Some(name) => json!({"attributes": {"type": "Account"}, "Name": name}),
            None => json!({"attributes": {"type": "Account"}}),
        }
    }

    fn create(reference_id: &str, records: Vec<JsonValue>) -> Subrequest {
        Subrequest {
            method: "POST".into(),
            url: "/services/data/v62.0/composite/sobjects".into(),
            reference_id: reference_id.into(),
            body: Some(json!({"allOrNone": false, "records": records})),
        }
    }

    fn contact(reference_id: &str, account_id: &str, last_name: Option<&str>) -> Subrequest {
        let mut body = json!({"AccountId": account_id});
        if let Some(last_name) = last_name {
            body["LastName"] = json!(last_name);
        }
        Subrequest {
            method: "POST".into(),
            url: "/services/data/v62.0/sobjects/Contact".into(),
            reference_id: reference_id.into(),
            body: Some(body),
        }
    }

    fn org() -> (Org, Id) {
        let mut org = Org::new().unwrap();
        let user = org
            .add_user(&crate::org::NewUser::from_username("composite@example.com"))
            .unwrap();
        (org, user)
    }

    #[test]
    fn a_child_refers_to_its_parent_created_in_the_same_request() {
        let (mut org, user) = org();
        let subrequests = [
            create(
                "accounts",
                vec![account(Some("Parent A")), account(Some("Parent B"))],
            ),
            contact("child", "@{accounts[1].id}", Some("Child")),
        ];
        let responses = run(&mut org, &subrequests, true, &user, "/services/data/v62.0");
        assert!(
            responses.iter().all(SubResponse::succeeded),
            "{responses:?}"
        );
        assert_eq!(responses[1].http_status_code, 201);
        let parent = responses[0].body[1]["id"].as_str().unwrap().to_owned();
        let child = responses[1].body["id"].as_str().unwrap();
        let record = org
            .retrieve("Contact", child, Some("AccountId"), "62.0")
            .unwrap();
        assert_eq!(record["AccountId"], json!(parent));
        assert!(
            responses[1].http_headers["Location"]
                .as_str()
                .unwrap()
                .ends_with(child)
        );
        assert_eq!(org.record_count("Account"), 2);
    }

    #[test]
    fn all_or_none_undoes_every_subrequest_and_halts_the_others() {
        let (mut org, user) = org();
        let subrequests = [
            create("accounts", vec![account(Some("Kept?"))]),
            // LastName is required.
            contact("child", "@{accounts[0].id}", None),
            create("never", vec![account(Some("Never run"))]),
        ];
        let responses = run(&mut org, &subrequests, true, &user, "/services/data/v62.0");
        assert_eq!(org.record_count("Account"), 0);
        assert_eq!(org.record_count("Contact"), 0);
        assert_eq!(responses[1].http_status_code, 400);
        assert_eq!(responses[1].body[0]["errorCode"], "REQUIRED_FIELD_MISSING");
        for halted in [&responses[0], &responses[2]] {
            assert_eq!(halted.http_status_code, 400);
            assert_eq!(halted.body[0]["errorCode"], "PROCESSING_HALTED");
        }
        let names: Vec<&str> = responses.iter().map(|r| r.reference_id.as_str()).collect();
        assert_eq!(names, ["accounts", "child", "never"]);
    }

    #[test]
    fn all_or_none_forces_a_collections_subrequest_all_or_none() {
        let (mut org, user) = org();
        let subrequests = [
            create("first", vec![account(Some("First"))]),
            create("second", vec![account(Some("Fine")), account(None)]),
        ];
        let responses = run(&mut org, &subrequests, true, &user, "/services/data/v62.0");
        assert_eq!(org.record_count("Account"), 0);
        let results = &responses[1].body;
        assert_eq!(
            results[0]["errors"][0]["statusCode"],
            "ALL_OR_NONE_OPERATION_ROLLED_BACK"
        );
        assert_eq!(
            results[1]["errors"][0]["statusCode"],
            "REQUIRED_FIELD_MISSING"
        );
        assert_eq!(responses[0].body[0]["errorCode"], "PROCESSING_HALTED");
    }

    #[test]
    fn without_all_or_none_only_dependants_of_a_failure_are_skipped() {
        let (mut org, user) = org();
        let subrequests = [
            create("bad", vec![account(None)]),
            contact("orphan", "@{bad[0].id}", Some("Orphan")),
            create("good", vec![account(Some("Good"))]),
            contact("child", "@{good[0].id}", Some("Child")),
        ];
        let responses = run(&mut org, &subrequests, false, &user, "/services/data/v62.0");
        assert!(!responses[0].succeeded());
        assert_eq!(responses[1].http_status_code, 400);
        assert_eq!(responses[1].body[0]["errorCode"], "PROCESSING_HALTED");
        assert!(responses[2].succeeded() && responses[3].succeeded());
        assert_eq!(org.record_count("Account"), 1);
        assert_eq!(org.record_count("Contact"), 1);
    }

    #[test]
    fn single_records_update_and_delete_and_unknown_resources_answer_404() {
        let (mut org, user) = org();
        let subrequests = [
            create("accounts", vec![account(Some("A")), account(Some("B"))]),
            Subrequest {
                method: "PATCH".into(),
                url: "/services/data/v62.0/sobjects/Account/@{accounts[0].id}".into(),
                reference_id: "rename".into(),
                body: Some(json!({"Name": "Renamed"})),
            },
            Subrequest {
                method: "DELETE".into(),
                url: "/services/data/v62.0/sobjects/Account/@{accounts[1].id}".into(),
                reference_id: "remove".into(),
                body: None,
            },
            Subrequest {
                method: "GET".into(),
                url: "/services/data/v62.0/sobjects/Account/@{accounts[0].id}?fields=Name".into(),
                reference_id: "read".into(),
                body: None,
            },
        ];
        let responses = run(&mut org, &subrequests, true, &user, "/services/data/v62.0");
        assert!(
            responses.iter().all(SubResponse::succeeded),
            "{responses:?}"
        );
        assert_eq!(responses[1].http_status_code, 204);
        assert_eq!(responses[1].body, JsonValue::Null);
        assert_eq!(responses[3].body["Name"], "Renamed");
        let removed = responses[0].body[1]["id"].as_str().unwrap();
        assert!(org.retrieve("Account", removed, None, "62.0").is_err());

        let unknown = [Subrequest {
            method: "POST".into(),
            url: "/services/data/v62.0/composite/tree/Account".into(),
            reference_id: "tree".into(),
            body: Some(json!({})),
        }];
        let responses = run(&mut org, &unknown, true, &user, "/services/data/v62.0");
        assert_eq!(responses[0].http_status_code, 404);
        assert_eq!(responses[0].body[0]["errorCode"], "NOT_FOUND");
    }
}
