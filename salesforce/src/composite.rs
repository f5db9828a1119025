//! Composite (`POST /composite`): up to 25 subrequests in one call that counts as one API
//! request, run in order in one transaction, later ones referring to earlier results with
//! `@{referenceId.field}` (reference §4.2).
//!
//! With `allOrNone`, a failing subrequest rolls the whole request back; the culprit keeps
//! its own answer and every other subrequest answers 400 `PROCESSING_HALTED` (sObject
//! Collections inside carry `ALL_OR_NONE_OPERATION_ROLLED_BACK` on their innocent
//! records). The top-level status is 200 either way, so callers read
//! [`SubrequestResult`]s, not the status.
//!
//! Salesforce documents the `.` and `[]` reference operators for any JSON in an earlier
//! response (`@{AccountInfo.recentItems[0].Id}`); an sObject Collections response is an
//! array, so its `n`-th record's Id is `@{referenceId[n].id}` ([`Subrequest::record_id`]).
//! Also documented: the outer `allOrNone: true` overrides the `allOrNone` of each
//! Collections subrequest ("allOrNone Parameters in Composite and Collections Requests"),
//! and referenceIds hold only letters, digits and underscores.

use std::collections::HashMap;

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::Record;
use crate::client::{ApiRequest, Client, Response};
use crate::collections::MAX_RECORDS;
use crate::error::{
    ALL_OR_NONE_OPERATION_ROLLED_BACK, ApiError, Error, PROCESSING_HALTED, Result,
    UNABLE_TO_LOCK_ROW,
};
use crate::sobject::SaveResult;

/// The most subrequests one Composite request takes.
pub const MAX_SUBREQUESTS: usize = 25;

/// Of them, the most that may be sObject Collections or query operations.
pub const MAX_COLLECTIONS: usize = 5;

/// Composite requests. Cheap; makes no call.
#[derive(Clone, Debug)]
pub struct Composite {
    client: Client,
    all_or_none: bool,
}

/// One subrequest: a method, a path under `/services/data/vXX.X/`, its referenceId and
/// body. Build them with the constructors, which know the resources' shapes.
#[derive(Clone, Debug, PartialEq)]
pub struct Subrequest {
    method: Method,
    /// Under `/services/data/vXX.X/`, query string included.
    path: String,
    reference_id: String,
    body: Option<Value>,
    /// An sObject Collections or query subrequest, of which Salesforce takes at most five.
    collection: bool,
}

/// What Salesforce answered for one subrequest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SubrequestResult {
    /// The subrequest's own response body: a save result, an array of them, an error
    /// array, or `null`.
    #[serde(default)]
    pub body: Value,
    #[serde(rename = "httpHeaders", default)]
    pub http_headers: HashMap<String, String>,
    #[serde(rename = "httpStatusCode")]
    pub http_status_code: u16,
    #[serde(rename = "referenceId")]
    pub reference_id: String,
}

#[derive(Serialize)]
struct Body {
    #[serde(rename = "allOrNone")]
    all_or_none: bool,
    /// Off, so that subrequests run in the order given, as the references need.
    #[serde(rename = "collateSubrequests")]
    collate_subrequests: bool,
    #[serde(rename = "compositeRequest")]
    composite_request: Vec<Value>,
}

#[derive(Deserialize)]
struct CompositeResponse {
    #[serde(rename = "compositeResponse")]
    composite_response: Vec<SubrequestResult>,
}

impl Client {
    /// Composite requests, with `allOrNone` off (Salesforce's default).
    pub fn composite(&self) -> Composite {
        Composite {
            client: self.clone(),
            all_or_none: false,
        }
    }
}

impl Subrequest {
    /// `POST /composite/sobjects`: creates up to 200 records, each naming its object in
    /// `attributes.type`.
    pub fn create_records(reference_id: impl Into<String>, records: &[Record]) -> Self {
        Self::collection(Method::POST, "composite/sobjects", reference_id, records)
    }

    /// `PATCH /composite/sobjects`: updates up to 200 records, each with its `Id`.
    pub fn update_records(reference_id: impl Into<String>, records: &[Record]) -> Self {
        Self::collection(Method::PATCH, "composite/sobjects", reference_id, records)
    }

    /// `DELETE /composite/sobjects?ids=…`: deletes up to 200 records by Id.
    pub fn delete_records(reference_id: impl Into<String>, ids: &[impl AsRef<str>]) -> Self {
        let ids: Vec<&str> = ids.iter().map(AsRef::as_ref).collect();
        Subrequest {
            method: Method::DELETE,
            path: format!("composite/sobjects?ids={}&allOrNone=true", ids.join(",")),
            reference_id: reference_id.into(),
            body: None,
            collection: true,
        }
    }

    fn collection(
        method: Method,
        path: &str,
        reference_id: impl Into<String>,
        records: &[Record],
    ) -> Self {
        Subrequest {
            method,
            path: path.to_owned(),
            reference_id: reference_id.into(),
            // The outer allOrNone decides under allOrNone; true keeps a Collections call
            // atomic on its own too.
            body: Some(json!({ "allOrNone": true, "records": records })),
            collection: true,
        }
    }

    /// The reference to the Id of the `index`-th record of a Collections subrequest's
    /// answer: `@{referenceId[index].id}`.
    pub fn record_id(reference_id: &str, index: usize) -> String {
        format!("@{{{reference_id}[{index}].id}}")
    }

    pub fn reference_id(&self) -> &str {
        &self.reference_id
    }

    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The path under `/services/data/vXX.X/`.
    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn body(&self) -> Option<&Value> {
        self.body.as_ref()
    }

    /// Whether Salesforce counts it among the five Collections or query subrequests.
    pub fn is_collection(&self) -> bool {
        self.collection
    }

    fn records(&self) -> usize {
        match &self.body {
            Some(body) => body
                .get("records")
                .and_then(Value::as_array)
                .map_or(0, Vec::len),
            None => self.path.split_once("ids=").map_or(0, |(_, ids)| {
                ids.split('&').next().unwrap_or("").split(',').count()
            }),
        }
    }
}

impl SubrequestResult {
    /// Whether the subrequest succeeded: a 2xx status and, for sObject Collections, every
    /// record saved.
    pub fn succeeded(&self) -> bool {
        (200..300).contains(&self.http_status_code)
            && self
                .save_results()
                .is_none_or(|results| results.iter().all(|r| r.success))
    }

    /// The per-record results of an sObject Collections subrequest, when the body is an
    /// array of them.
    pub fn save_results(&self) -> Option<Vec<SaveResult>> {
        let items = self.body.as_array()?;
        if items.iter().any(|item| item.get("success").is_none()) {
            return None;
        }
        serde_json::from_value(self.body.clone()).ok()
    }

    /// The REST error array of a failed subrequest; empty when the body is not one.
    pub fn errors(&self) -> Vec<ApiError> {
        if self.http_status_code < 400 {
            return Vec::new();
        }
        match &self.body {
            Value::Array(_) => serde_json::from_value(self.body.clone()).unwrap_or_default(),
            Value::Object(_) => serde_json::from_value(self.body.clone())
                .map(|error| vec![error])
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    /// Whether it failed only because another subrequest did: halted, or every record
    /// rolled back.
    pub fn halted_by_another(&self) -> bool {
        if self.succeeded() {
            return false;
        }
        if let Some(results) = self.save_results() {
            return results.iter().all(|r| {
                r.errors
                    .iter()
                    .all(|e| e.status_code == ALL_OR_NONE_OPERATION_ROLLED_BACK)
            });
        }
        let errors = self.errors();
        !errors.is_empty() && errors.iter().all(|e| e.error_code == PROCESSING_HALTED)
    }

    /// Every error code the subrequest carries, record errors included.
    fn codes(&self) -> Vec<String> {
        match self.save_results() {
            Some(results) => results
                .into_iter()
                .flat_map(|r| r.errors.into_iter().map(|e| e.status_code))
                .collect(),
            None => self.errors().into_iter().map(|e| e.error_code).collect(),
        }
    }
}

impl Composite {
    /// Sets `allOrNone`: when true, one failing subrequest rolls back the whole request.
    pub fn all_or_none(mut self, all_or_none: bool) -> Self {
        self.all_or_none = all_or_none;
        self
    }

    /// Sends `subrequests` as one Composite request (`POST /composite`), in order, and
    /// returns one result per subrequest, in request order.
    pub async fn send(&self, subrequests: &[Subrequest]) -> Result<Vec<SubrequestResult>> {
        check(subrequests)?;
        if subrequests.is_empty() {
            return Ok(Vec::new());
        }
        let version = self.client.config().api_version().segment();
        let body = Body {
            all_or_none: self.all_or_none,
            collate_subrequests: false,
            composite_request: subrequests
                .iter()
                .map(|s| {
                    let mut entry = json!({
                        "method": s.method.as_str(),
                        "url": format!("/services/data/{version}/{}", s.path),
                        "referenceId": s.reference_id,
                    });
                    if let Some(body) = &s.body {
                        entry["body"] = body.clone();
                    }
                    entry
                })
                .collect(),
        };
        let mut request = ApiRequest::rest(Method::POST, ["composite"]).json(&body)?;
        if self.all_or_none {
            request = request.retry_when(rolled_back_for_lock_contention);
        }
        let response = self.client.execute(request).await?;
        in_request_order(&response, subrequests)
    }
}

/// Salesforce's limits and the referenceIds' form, checked before a counted call is spent.
fn check(subrequests: &[Subrequest]) -> Result<()> {
    let collections = subrequests.iter().filter(|s| s.collection).count();
    if subrequests.len() > MAX_SUBREQUESTS || collections > MAX_COLLECTIONS {
        return Err(Error::CompositeLimit {
            subrequests: subrequests.len(),
            collections,
            max_subrequests: MAX_SUBREQUESTS,
            max_collections: MAX_COLLECTIONS,
        });
    }
    let mut seen = std::collections::HashSet::new();
    for subrequest in subrequests {
        let id = &subrequest.reference_id;
        let well_formed = !id.is_empty()
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && id.as_bytes()[0].is_ascii_alphanumeric();
        if !well_formed {
            return Err(Error::InvalidRequest(format!(
                "referenceId {id:?} must be letters, digits and underscores, starting with a letter or digit"
            )));
        }
        if !seen.insert(id.as_str()) {
            return Err(Error::InvalidRequest(format!(
                "referenceId {id:?} is used twice"
            )));
        }
        if subrequest.collection && subrequest.records() > MAX_RECORDS {
            return Err(Error::InvalidRequest(format!(
                "subrequest {id} carries {} records; sObject Collections take at most {MAX_RECORDS}",
                subrequest.records()
            )));
        }
    }
    Ok(())
}

/// One result per subrequest, in the order they were sent (matched by referenceId, since
/// collated requests may answer in another order).
fn in_request_order(
    response: &Response,
    subrequests: &[Subrequest],
) -> Result<Vec<SubrequestResult>> {
    let answer: CompositeResponse = response.json("composite response")?;
    let mut by_reference: HashMap<String, SubrequestResult> = answer
        .composite_response
        .into_iter()
        .map(|r| (r.reference_id.clone(), r))
        .collect();
    subrequests
        .iter()
        .map(|s| {
            by_reference
                .remove(&s.reference_id)
                .ok_or_else(|| Error::Protocol {
                    endpoint: response.endpoint.clone(),
                    detail: format!("no result for subrequest {}", s.reference_id),
                })
        })
        .collect()
}

/// An `allOrNone` request that failed only for lock contention wrote nothing, and may
/// succeed if sent again.
fn rolled_back_for_lock_contention(response: &Response) -> bool {
    let Ok(answer) = serde_json::from_slice::<CompositeResponse>(&response.body) else {
        return false;
    };
    let results = answer.composite_response;
    let codes: Vec<String> = results.iter().flat_map(SubrequestResult::codes).collect();
    results.iter().all(|r| !r.succeeded())
        && codes.iter().any(|c| c == UNABLE_TO_LOCK_ROW)
        && codes.iter().all(|c| {
            c == UNABLE_TO_LOCK_ROW
                || c == ALL_OR_NONE_OPERATION_ROLLED_BACK
                || c == PROCESSING_HALTED
        })
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use reqwest::StatusCode;

    use super::*;
    use crate::error::Endpoint;

    fn response(body: &str) -> Response {
        Response {
            endpoint: Endpoint {
                method: Method::POST,
                path: "/services/data/v62.0/composite".into(),
            },
            status: StatusCode::OK,
            headers: reqwest::header::HeaderMap::new(),
            body: Bytes::from(body.to_owned()),
            sent_at: chrono::Utc::now(),
        }
    }

    fn record(value: Value) -> Record {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn subrequests_take_the_collections_shapes() {
        let create = Subrequest::create_records(
            "create0",
            &[record(
                json!({"attributes": {"type": "Account"}, "Name": "A"}),
            )],
        );
        assert_eq!(create.method(), &Method::POST);
        assert_eq!(create.path(), "composite/sobjects");
        assert_eq!(create.body().unwrap()["records"][0]["Name"], "A");
        assert!(create.is_collection());
        let delete = Subrequest::delete_records("delete", &["001A", "001B"]);
        assert_eq!(
            delete.path(),
            "composite/sobjects?ids=001A,001B&allOrNone=true"
        );
        assert_eq!(delete.records(), 2);
        assert_eq!(Subrequest::record_id("create0", 3), "@{create0[3].id}");
    }

    #[test]
    fn limits_are_checked_before_sending() {
        let one = |i: usize| Subrequest::delete_records(format!("d{i}"), &["001A"]);
        let five: Vec<Subrequest> = (0..5).map(one).collect();
        assert!(check(&five).is_ok());
        let six: Vec<Subrequest> = (0..6).map(one).collect();
        assert!(matches!(
            check(&six),
            Err(Error::CompositeLimit {
                subrequests: 6,
                collections: 6,
                ..
            })
        ));
        assert!(check(&[one(1), one(1)]).is_err());
        assert!(check(&[Subrequest::delete_records("bad-id", &["001A"])]).is_err());
        let ids: Vec<String> = (0..201).map(|i| format!("001{i}")).collect();
        assert!(check(&[Subrequest::delete_records("d", &ids)]).is_err());
    }

    const ROLLED_BACK: &str = r#"{"compositeResponse": [
      {"body": [{"errorCode": "PROCESSING_HALTED", "message": "The transaction was rolled back since another operation in the same transaction failed."}],
       "httpHeaders": {}, "httpStatusCode": 400, "referenceId": "create0"},
      {"body": [
         {"success": false, "errors": [{"statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK", "message": "Record rolled back because not all records were valid and the request was using AllOrNone header", "fields": []}]},
         {"success": false, "errors": [{"statusCode": "REQUIRED_FIELD_MISSING", "message": "Required fields are missing: [LastName]", "fields": ["LastName"]}]}],
       "httpHeaders": {}, "httpStatusCode": 200, "referenceId": "create1"}
    ]}"#;

    #[test]
    fn results_come_in_request_order_and_tell_the_culprit() {
        let subrequests = [
            Subrequest::create_records("create0", &[]),
            Subrequest::create_records("create1", &[]),
        ];
        let results = in_request_order(&response(ROLLED_BACK), &subrequests).unwrap();
        assert_eq!(results[0].reference_id, "create0");
        assert!(!results[0].succeeded() && results[0].halted_by_another());
        assert_eq!(results[0].errors()[0].error_code, PROCESSING_HALTED);
        assert!(!results[1].succeeded() && !results[1].halted_by_another());
        let saved = results[1].save_results().unwrap();
        assert_eq!(saved[1].errors[0].status_code, "REQUIRED_FIELD_MISSING");
        assert!(!rolled_back_for_lock_contention(&response(ROLLED_BACK)));
        // Reordered answers are matched by referenceId; a missing one is a protocol error.
        let reversed = [
            Subrequest::create_records("create1", &[]),
            Subrequest::create_records("create0", &[]),
        ];
        let results = in_request_order(&response(ROLLED_BACK), &reversed).unwrap();
        assert_eq!(results[0].reference_id, "create1");
        let missing = [Subrequest::create_records("other", &[])];
        assert!(matches!(
            in_request_order(&response(ROLLED_BACK), &missing),
            Err(Error::Protocol { .. })
        ));
    }

    #[test]
    fn success_and_lock_contention() {
        let ok = r#"{"compositeResponse": [
          {"body": [{"id": "001RM000003oLnnYAE", "success": true, "errors": []}],
           "httpHeaders": {}, "httpStatusCode": 200, "referenceId": "create0"},
          {"body": null, "httpHeaders": {}, "httpStatusCode": 204, "referenceId": "patch"}
        ]}"#;
        let results = in_request_order(
            &response(ok),
            &[
                Subrequest::create_records("create0", &[]),
                Subrequest::update_records("patch", &[]),
            ],
        )
        .unwrap();
        assert!(results.iter().all(SubrequestResult::succeeded));
        assert!(!rolled_back_for_lock_contention(&response(ok)));
        let locked = r#"{"compositeResponse": [
          {"body": [{"success": false, "errors": [{"statusCode": "UNABLE_TO_LOCK_ROW", "message": "unable to obtain exclusive access to this record", "fields": []}]}],
           "httpHeaders": {}, "httpStatusCode": 200, "referenceId": "update"},
          {"body": [{"errorCode": "PROCESSING_HALTED", "message": "halted"}],
           "httpHeaders": {}, "httpStatusCode": 400, "referenceId": "delete"}
        ]}"#;
        assert!(rolled_back_for_lock_contention(&response(locked)));
    }
}
