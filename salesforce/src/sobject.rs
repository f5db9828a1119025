//! One object's REST resources: record create, read, update, delete and upsert by external
//! id (reference §2.4). Describe and replication live in their own modules.

use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};

use crate::Record;
use crate::client::{ApiRequest, Client};
use crate::error::{Error, RecordError, Result, null_as_default};
use crate::ids::SalesforceId;

/// A handle on one object, such as `Account` or `Invoice__c`. Cheap; makes no call.
#[derive(Clone, Debug)]
pub struct SObject {
    pub(crate) client: Client,
    pub(crate) name: String,
}

/// The result of saving one record: `{"id": …, "success": …, "errors": […], "created"?: …}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaveResult {
    /// The record's Id; `null` when a create failed.
    #[serde(default)]
    pub id: Option<SalesforceId>,
    /// Whether the record was saved.
    pub success: bool,
    /// Why it was not.
    #[serde(default, deserialize_with = "null_as_default")]
    pub errors: Vec<RecordError>,
    /// For upserts: whether the record was created rather than updated.
    #[serde(default)]
    pub created: Option<bool>,
}

impl SaveResult {
    /// The `EventUuid` of a published platform event: Salesforce answers a successful
    /// publish with `{"id", "success": true, "errors": [{"statusCode": "OPERATION_ENQUEUED",
    /// "message": <EventUuid>}]}` (Platform Events Developer Guide, "Match a Publish Result
    /// with the Event Published"), the same UUID the delivered event carries.
    pub fn event_uuid(&self) -> Option<&str> {
        self.errors
            .iter()
            .find(|e| e.status_code == OPERATION_ENQUEUED)
            .map(|e| e.message.as_str())
            .filter(|_| self.success)
    }
}

/// The status code of a successful platform event publish's result.
pub const OPERATION_ENQUEUED: &str = "OPERATION_ENQUEUED";

/// What an upsert by external id did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upserted {
    /// The record's Id. API versions up to 45.0 answer an update with no body, hence no Id.
    pub id: Option<SalesforceId>,
    /// Whether the record was created rather than updated.
    pub created: bool,
}

impl Client {
    /// A handle on the object `name` (its API name, such as `Account` or `Invoice__c`).
    pub fn sobject(&self, name: impl Into<String>) -> SObject {
        SObject {
            client: self.clone(),
            name: name.into(),
        }
    }
}

impl SObject {
    /// The object's API name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `/sobjects/<name>/<rest…>`, after checking the object name.
    pub(crate) fn request<'a>(
        &'a self,
        method: Method,
        rest: impl IntoIterator<Item = &'a str>,
    ) -> Result<ApiRequest> {
        let name = check_api_name("object", &self.name)?;
        Ok(ApiRequest::rest(
            method,
            ["sobjects", name].into_iter().chain(rest),
        ))
    }

    /// Creates a record (`POST /sobjects/<name>`); returns its Id.
    pub async fn create(&self, record: &Record) -> Result<SalesforceId> {
        let request = self.request(Method::POST, [])?.json(record)?;
        let response = self.client.execute(request).await?;
        if response.status != StatusCode::CREATED {
            return Err(response.unexpected());
        }
        let result: SaveResult = response.json("save result")?;
        match result.id {
            Some(id) if result.success => Ok(id),
            _ => Err(Error::Protocol {
                endpoint: response.endpoint,
                detail: "201 Created without a successful save result".to_owned(),
            }),
        }
    }

    /// Reads a record (`GET /sobjects/<name>/<id>`), all fields or only `fields`.
    pub async fn get(&self, id: &SalesforceId, fields: &[&str]) -> Result<Record> {
        let mut request = self.request(Method::GET, [id.as_str()])?;
        if !fields.is_empty() {
            for field in fields {
                check_api_name("field", field)?;
            }
            request = request.query("fields", fields.join(","));
        }
        self.client.execute(request).await?.json("record")
    }

    /// Updates a record's fields (`PATCH /sobjects/<name>/<id>`).
    pub async fn update(&self, id: &SalesforceId, record: &Record) -> Result<()> {
        let request = self.request(Method::PATCH, [id.as_str()])?.json(record)?;
        let response = self.client.execute(request).await?;
        match response.status {
            StatusCode::NO_CONTENT | StatusCode::OK => Ok(()),
            _ => Err(response.unexpected()),
        }
    }

    /// Deletes a record (`DELETE /sobjects/<name>/<id>`); it goes to the recycle bin.
    pub async fn delete(&self, id: &SalesforceId) -> Result<()> {
        let request = self.request(Method::DELETE, [id.as_str()])?;
        let response = self.client.execute(request).await?;
        match response.status {
            StatusCode::NO_CONTENT | StatusCode::OK => Ok(()),
            _ => Err(response.unexpected()),
        }
    }

    /// Creates or updates the record whose `external_id_field` is `value`
    /// (`PATCH /sobjects/<name>/<field>/<value>`). Several matches are an
    /// [`Error::MultipleMatches`], and nothing is written.
    pub async fn upsert(
        &self,
        external_id_field: &str,
        value: &str,
        record: &Record,
    ) -> Result<Upserted> {
        check_api_name("field", external_id_field)?;
        if value.is_empty() {
            return Err(Error::InvalidRequest(
                "an upsert needs an external id value".to_owned(),
            ));
        }
        let request = self
            .request(Method::PATCH, [external_id_field, value])?
            .json(record)?;
        let response = self.client.execute(request).await?;
        match response.status {
            StatusCode::CREATED | StatusCode::OK => {
                let result: SaveResult = response.json("upsert result")?;
                Ok(Upserted {
                    id: result.id,
                    created: result
                        .created
                        .unwrap_or(response.status == StatusCode::CREATED),
                })
            }
            StatusCode::NO_CONTENT => Ok(Upserted {
                id: None,
                created: false,
            }),
            StatusCode::MULTIPLE_CHOICES => Err(Error::MultipleMatches {
                sobject: self.name.clone(),
                field: external_id_field.to_owned(),
                records: response.json("list of matching records")?,
            }),
            _ => Err(response.unexpected()),
        }
    }
}

/// Object and field API names are letters, digits and underscores (`Invoice__c`,
/// `ns__Field__c`); refusing anything else keeps names from reshaping the URL.
pub(crate) fn check_api_name<'a>(kind: &str, name: &'a str) -> Result<&'a str> {
    let valid = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if valid {
        Ok(name)
    } else {
        Err(Error::InvalidRequest(format!(
            "{name:?} is not an {kind} API name"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_results() {
        let created: SaveResult =
            serde_json::from_str(r#"{"id":"001D000000IqhSLIAZ","success":true,"errors":[]}"#)
                .unwrap();
        assert_eq!(created.id.unwrap().as_str(), "001D000000IqhSLIAZ");
        assert_eq!(created.created, None);
        let upserted: SaveResult = serde_json::from_str(
            r#"{"id":"001D000000IqhSLIAZ","success":true,"errors":[],"created":false}"#,
        )
        .unwrap();
        assert_eq!(upserted.created, Some(false));
        let failed: SaveResult = serde_json::from_str(
            r#"{"id":null,"success":false,"errors":[{"statusCode":"REQUIRED_FIELD_MISSING","message":"Required fields are missing: [Name]","fields":["Name"]}]}"#,
        )
        .unwrap();
        assert_eq!(failed.id, None);
        assert_eq!(failed.errors[0].status_code, "REQUIRED_FIELD_MISSING");
    }

    #[test]
    fn api_names() {
        for good in ["Account", "Invoice__c", "ns__Field__c", "Name"] {
            assert!(check_api_name("field", good).is_ok(), "{good}");
        }
        for bad in ["", "Account/../User", "Na me", "Id?x=1", "é"] {
            assert!(check_api_name("field", bad).is_err(), "{bad:?}");
        }
    }
}
