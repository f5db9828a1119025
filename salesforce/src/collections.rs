//! sObject Collections (`/composite/sobjects`): create, update, upsert, delete and retrieve
//! up to 200 records in one call, which counts as one API request (reference §4.1).
//!
//! A retrieve of more Ids is split into calls of at most 200: reading again is harmless,
//! so nothing is lost by splitting. A write of more records is refused before sending
//! instead: split, an `allOrNone` write would no longer be one transaction, and a failure
//! between two calls would leave the caller without the results of the calls that worked.
//!
//! With `allOrNone`, any failure rolls the whole call back: the failing record carries its
//! real error and every other one `ALL_OR_NONE_OPERATION_ROLLED_BACK`. When nothing failed
//! but lock contention (`UNABLE_TO_LOCK_ROW`), nothing was written and the whole call is
//! retried under the client's retry policy.

use reqwest::Method;
use serde::Serialize;
use serde_json::Value;

use crate::Record;
use crate::client::{ApiRequest, Client, Response};
use crate::error::{ALL_OR_NONE_OPERATION_ROLLED_BACK, Error, Result, UNABLE_TO_LOCK_ROW};
use crate::ids::SalesforceId;
use crate::sobject::{SaveResult, check_api_name};

/// The most records (or Ids) one collection request may carry.
pub const MAX_RECORDS: usize = 200;

/// sObject Collections requests. Cheap; makes no call.
#[derive(Clone, Debug)]
pub struct Collections {
    client: Client,
    all_or_none: bool,
}

#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "allOrNone")]
    all_or_none: bool,
    records: &'a [Record],
}

impl Client {
    /// sObject Collections, with `allOrNone` off (Salesforce's default).
    pub fn collections(&self) -> Collections {
        Collections {
            client: self.clone(),
            all_or_none: false,
        }
    }
}

impl Collections {
    /// Sets `allOrNone`: when true, one failing record rolls back the whole request.
    pub fn all_or_none(mut self, all_or_none: bool) -> Self {
        self.all_or_none = all_or_none;
        self
    }

    /// Creates records, of one or several objects (`POST /composite/sobjects`). Each record
    /// names its object in `attributes.type` and has no `Id`. Results come in request order.
    pub async fn create(&self, records: &[Record]) -> Result<Vec<SaveResult>> {
        check_count(records.len())?;
        check_typed(records)?;
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let request = ApiRequest::rest(Method::POST, ["composite", "sobjects"]);
        self.write(request, records).await
    }

    /// Updates records (`PATCH /composite/sobjects`). Each record has `attributes.type` and
    /// its `id`.
    pub async fn update(&self, records: &[Record]) -> Result<Vec<SaveResult>> {
        check_count(records.len())?;
        check_typed(records)?;
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let request = ApiRequest::rest(Method::PATCH, ["composite", "sobjects"]);
        self.write(request, records).await
    }

    /// Creates or updates records of `sobject` matched by `external_id_field`
    /// (`PATCH /composite/sobjects/<sobject>/<field>`). Records without `attributes.type` get
    /// it. Results carry `created`.
    pub async fn upsert(
        &self,
        sobject: &str,
        external_id_field: &str,
        records: &[Record],
    ) -> Result<Vec<SaveResult>> {
        check_api_name("object", sobject)?;
        check_api_name("field", external_id_field)?;
        check_count(records.len())?;
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let typed: Vec<Record> = records.iter().map(|r| with_type(r, sobject)).collect();
        let request = ApiRequest::rest(
            Method::PATCH,
            ["composite", "sobjects", sobject, external_id_field],
        );
        self.write(request, &typed).await
    }

    /// Deletes records by Id (`DELETE /composite/sobjects?ids=…&allOrNone=…`).
    pub async fn delete(&self, ids: &[SalesforceId]) -> Result<Vec<SaveResult>> {
        check_count(ids.len())?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut request = ApiRequest::rest(Method::DELETE, ["composite", "sobjects"])
            .query("ids", join_ids(ids))
            .query("allOrNone", self.all_or_none.to_string());
        if self.all_or_none {
            request = request.retry_when(rolled_back_for_lock_contention);
        }
        let response = self.client.execute(request).await?;
        results(&response, ids.len())
    }

    /// Reads `fields` of records of `sobject` by Id (`GET /composite/sobjects/<sobject>`).
    /// An Id that matches no record comes back as `None`, in its place. More than
    /// [`MAX_RECORDS`] Ids take one call per [`MAX_RECORDS`], made one after the other; the
    /// answer is the calls' records, in the order of `ids`.
    pub async fn retrieve(
        &self,
        sobject: &str,
        ids: &[SalesforceId],
        fields: &[&str],
    ) -> Result<Vec<Option<Record>>> {
        check_api_name("object", sobject)?;
        if fields.is_empty() {
            return Err(Error::InvalidRequest(
                "a collection retrieve needs at least one field".to_owned(),
            ));
        }
        for field in fields {
            check_api_name("field", field)?;
        }
        let fields = fields.join(",");
        let mut records = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(MAX_RECORDS) {
            records.extend(self.retrieve_call(sobject, chunk, &fields).await?);
        }
        Ok(records)
    }

    /// One retrieve call, of at most [`MAX_RECORDS`] Ids.
    async fn retrieve_call(
        &self,
        sobject: &str,
        ids: &[SalesforceId],
        fields: &str,
    ) -> Result<Vec<Option<Record>>> {
        check_count(ids.len())?;
        let request = ApiRequest::rest(Method::GET, ["composite", "sobjects", sobject])
            .query("ids", join_ids(ids))
            .query("fields", fields);
        let response = self.client.execute(request).await?;
        let records: Vec<Option<Record>> = response.json("retrieved records")?;
        if records.len() != ids.len() {
            return Err(count_mismatch(&response, ids.len(), records.len()));
        }
        Ok(records)
    }

    async fn write(&self, request: ApiRequest, records: &[Record]) -> Result<Vec<SaveResult>> {
        let mut request = request.json(&Body {
            all_or_none: self.all_or_none,
            records,
        })?;
        if self.all_or_none {
            request = request.retry_when(rolled_back_for_lock_contention);
        }
        let response = self.client.execute(request).await?;
        results(&response, records.len())
    }
}

/// Per-record results, one per record sent, in order.
fn results(response: &Response, expected: usize) -> Result<Vec<SaveResult>> {
    let results: Vec<SaveResult> = response.json("collection results")?;
    if results.len() != expected {
        return Err(count_mismatch(response, expected, results.len()));
    }
    Ok(results)
}

fn count_mismatch(response: &Response, expected: usize, got: usize) -> Error {
    Error::Protocol {
        endpoint: response.endpoint.clone(),
        detail: format!("{got} results for {expected} records"),
    }
}

/// An `allOrNone` request that failed only for lock contention wrote nothing, and may
/// succeed if sent again.
fn rolled_back_for_lock_contention(response: &Response) -> bool {
    let Ok(results) = serde_json::from_slice::<Vec<SaveResult>>(&response.body) else {
        return false;
    };
    let codes = || {
        results
            .iter()
            .flat_map(|r| r.errors.iter().map(|e| e.status_code.as_str()))
    };
    results.iter().all(|r| !r.success)
        && codes().any(|code| code == UNABLE_TO_LOCK_ROW)
        && codes()
            .all(|code| code == UNABLE_TO_LOCK_ROW || code == ALL_OR_NONE_OPERATION_ROLLED_BACK)
}

fn check_count(count: usize) -> Result<()> {
    if count > MAX_RECORDS {
        return Err(Error::InvalidRequest(format!(
            "sObject Collections take at most {MAX_RECORDS} records, got {count}"
        )));
    }
    Ok(())
}

/// Salesforce needs `attributes.type` on every record of a create or update, since one
/// request may mix objects; checking here saves a counted call that would fail.
fn check_typed(records: &[Record]) -> Result<()> {
    for (index, record) in records.iter().enumerate() {
        let typed = record
            .get("attributes")
            .and_then(|a| a.get("type"))
            .and_then(Value::as_str)
            .is_some_and(|t| check_api_name("object", t).is_ok());
        if !typed {
            return Err(Error::InvalidRequest(format!(
                "record {index} has no attributes.type naming its object"
            )));
        }
    }
    Ok(())
}

fn with_type(record: &Record, sobject: &str) -> Record {
    let mut record = record.clone();
    let attributes = record
        .entry("attributes")
        .or_insert_with(|| Value::Object(Record::new()));
    if let Value::Object(attributes) = attributes {
        attributes
            .entry("type")
            .or_insert_with(|| Value::from(sobject));
    }
    record
}

fn join_ids(ids: &[SalesforceId]) -> String {
    ids.iter()
        .map(SalesforceId::as_str)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use reqwest::StatusCode;
    use serde_json::json;

    use super::*;
    use crate::error::Endpoint;

    fn response(body: &str) -> Response {
        Response {
            endpoint: Endpoint {
                method: Method::POST,
                path: "/services/data/v62.0/composite/sobjects".into(),
            },
            status: StatusCode::OK,
            headers: reqwest::header::HeaderMap::new(),
            body: Bytes::from(body.to_owned()),
            sent_at: chrono::Utc::now(),
        }
    }

    const ALL_OR_NONE_FAILURE: &str = r#"[
      {"id": null, "success": false, "errors": [
        {"statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
         "message": "Record rolled back because not all records were valid and the request was using AllOrNone header",
         "fields": []}]},
      {"id": null, "success": false, "errors": [
        {"statusCode": "REQUIRED_FIELD_MISSING", "message": "Required fields are missing: [LastName]", "fields": ["LastName"]}]}
    ]"#;

    #[test]
    fn all_or_none_failure_keeps_each_records_error() {
        let results = results(&response(ALL_OR_NONE_FAILURE), 2).unwrap();
        assert!(results.iter().all(|r| !r.success && r.id.is_none()));
        assert_eq!(
            results[0].errors[0].status_code,
            ALL_OR_NONE_OPERATION_ROLLED_BACK
        );
        assert_eq!(results[1].errors[0].status_code, "REQUIRED_FIELD_MISSING");
        assert_eq!(results[1].errors[0].fields, vec!["LastName"]);
        assert!(!rolled_back_for_lock_contention(&response(
            ALL_OR_NONE_FAILURE
        )));
    }

    #[test]
    fn partial_success_without_all_or_none() {
        let body = r#"[
          {"id": "001RM000003oLnnYAE", "success": true, "errors": []},
          {"success": false, "errors": [{"statusCode": "DUPLICATE_VALUE", "message": "duplicate value found: Code__c duplicates value on record with id: 001RM000003oLnmYAE", "fields": []}]}
        ]"#;
        let results = results(&response(body), 2).unwrap();
        assert_eq!(
            results[0].id.as_ref().unwrap().as_str(),
            "001RM000003oLnnYAE"
        );
        assert_eq!(results[1].id, None);
        assert_eq!(results[1].errors[0].status_code, "DUPLICATE_VALUE");
    }

    #[test]
    fn upsert_results_carry_created() {
        let body = r#"[{"id":"001RM000003oLnnYAE","success":true,"errors":[],"created":true},
                       {"id":"001RM000003oLnmYAE","success":true,"errors":[],"created":false}]"#;
        let results = results(&response(body), 2).unwrap();
        assert_eq!(results[0].created, Some(true));
        assert_eq!(results[1].created, Some(false));
    }

    #[test]
    fn result_count_must_match() {
        assert!(matches!(
            results(&response("[]"), 1),
            Err(Error::Protocol { .. })
        ));
        assert!(matches!(
            results(&response("{}"), 1),
            Err(Error::Decode { .. })
        ));
    }

    #[test]
    fn lock_contention_under_all_or_none_is_retried() {
        let body = r#"[
          {"id": null, "success": false, "errors": [{"statusCode": "UNABLE_TO_LOCK_ROW", "message": "unable to obtain exclusive access to this record or 1 records: 001RM000003oLnnYAE", "fields": []}]},
          {"id": null, "success": false, "errors": [{"statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK", "message": "Record rolled back because not all records were valid and the request was using AllOrNone header", "fields": []}]}
        ]"#;
        assert!(rolled_back_for_lock_contention(&response(body)));
        let success = r#"[{"id":"001RM000003oLnnYAE","success":true,"errors":[]}]"#;
        assert!(!rolled_back_for_lock_contention(&response(success)));
    }

    #[test]
    fn retrieve_with_missing_records() {
        let records: Vec<Option<Record>> = serde_json::from_str(
            r#"[{"attributes":{"type":"Account","url":"/services/data/v62.0/sobjects/Account/001xx000003DGb1AAG"},"Id":"001xx000003DGb1AAG","Name":"Acme"},null]"#,
        )
        .unwrap();
        assert_eq!(records[0].as_ref().unwrap()["Name"], "Acme");
        assert!(records[1].is_none());
    }

    #[test]
    fn records_must_name_their_object() {
        let typed = json!({"attributes": {"type": "Account"}, "Name": "Acme"});
        let untyped = json!({"Name": "Acme"});
        let records: Vec<Record> = [typed, untyped]
            .into_iter()
            .map(|v| v.as_object().unwrap().clone())
            .collect();
        assert!(check_typed(&records[..1]).is_ok());
        let error = check_typed(&records).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid Salesforce request: record 1 has no attributes.type naming its object"
        );
        let typed = with_type(&records[1], "Contact");
        assert_eq!(typed["attributes"]["type"], "Contact");
        assert_eq!(typed["Name"], "Acme");
        assert!(check_count(MAX_RECORDS).is_ok() && check_count(MAX_RECORDS + 1).is_err());
    }
}
