//! The org's two error shapes: [`ApiError`], a whole request refused (Salesforce's error
//! array, `errorCode`), and [`SaveError`], one record refused inside a save result
//! (`statusCode`), with the codes and messages Salesforce uses.

use serde::Serialize;

use crate::model::{FieldDef, ObjectDef};
use crate::soql::SoqlError;

/// A request Salesforce refuses as a whole: HTTP `status` with
/// `[{"message": ..., "errorCode": ..., "fields": [...]}]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {error_code}: {message}")]
pub struct ApiError {
    pub status: u16,
    pub error_code: String,
    pub message: String,
    /// Absent for most request-level errors; present for field-level ones.
    pub fields: Option<Vec<String>>,
}

impl ApiError {
    pub fn new(status: u16, error_code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            error_code: error_code.to_owned(),
            message: message.into(),
            fields: None,
        }
    }

    pub fn with_fields(mut self, fields: Vec<String>) -> ApiError {
        self.fields = Some(fields);
        self
    }

    /// `404 NOT_FOUND`: an unknown object, record or external-id field.
    pub fn not_found() -> ApiError {
        ApiError::new(404, "NOT_FOUND", "The requested resource does not exist")
    }

    /// `400 INVALID_FIELD` for a field the object does not have, worded as the record
    /// endpoints word it.
    pub fn no_such_column(object: &ObjectDef, field: &str) -> ApiError {
        ApiError::new(
            400,
            "INVALID_FIELD",
            format!(
                "No such column '{field}' on sobject of type {}",
                object.name
            ),
        )
    }

    /// `400 INVALID_FIELD` for an unknown field in a `fields=` list, worded as SOQL
    /// words it (the record endpoints run a query underneath).
    pub fn no_such_column_on_entity(object: &ObjectDef, field: &str) -> ApiError {
        ApiError::new(
            400,
            "INVALID_FIELD",
            format!(
                "No such column '{field}' on entity '{}'. If you are attempting to use a custom \
                 field, be sure to append the '__c' after the custom field name. Please \
                 reference your WSDL or the describe call for the appropriate names.",
                object.name
            ),
        )
    }

    /// `400 JSON_PARSER_ERROR` for a value of the wrong JSON type, in the Jackson wording
    /// Salesforce passes through. Salesforce appends the value's position in the body
    /// (`at [line:1, column:22]`); the org sees parsed JSON, so it leaves the position out.
    pub fn cannot_deserialize(field: &FieldDef, token: &str, value: Option<&str>) -> ApiError {
        let type_name = serde_json::to_value(field.field_type)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let message = match value {
            Some(value) => format!(
                "Cannot deserialize instance of {type_name} from {token} value {value} or \
                 request may be missing a required field"
            ),
            None => format!("Cannot deserialize instance of {type_name} from {token} value"),
        };
        ApiError::new(400, "JSON_PARSER_ERROR", message)
    }
}

impl From<SaveError> for ApiError {
    /// A single-record save answers its record's error as a request error: 404 for a
    /// record that is gone, 400 otherwise.
    fn from(e: SaveError) -> ApiError {
        let status = match e.status_code.as_str() {
            "ENTITY_IS_DELETED" | "NOT_FOUND" => 404,
            _ => 400,
        };
        ApiError {
            status,
            error_code: e.status_code,
            message: e.message,
            fields: Some(e.fields),
        }
    }
}

impl From<SoqlError> for ApiError {
    fn from(e: SoqlError) -> ApiError {
        ApiError::new(SoqlError::STATUS, e.error_code.as_str(), e.message)
    }
}

/// One error of one record inside a save result: `{"statusCode", "message", "fields"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{status_code}: {message}")]
pub struct SaveError {
    #[serde(rename = "statusCode")]
    pub status_code: String,
    pub message: String,
    pub fields: Vec<String>,
}

impl SaveError {
    pub fn new(status_code: &str, message: impl Into<String>, fields: Vec<String>) -> SaveError {
        SaveError {
            status_code: status_code.to_owned(),
            message: message.into(),
            fields,
        }
    }

    /// `REQUIRED_FIELD_MISSING`: `Required fields are missing: [LastName, Company]`.
    pub fn required_missing(fields: Vec<String>) -> SaveError {
        let message = format!("Required fields are missing: [{}]", fields.join(", "));
        SaveError::new("REQUIRED_FIELD_MISSING", message, fields)
    }

    /// `INVALID_FIELD_FOR_INSERT_UPDATE` for fields the caller may not write.
    pub fn not_writable(fields: Vec<String>) -> SaveError {
        let message = format!(
            "Unable to create/update fields: {}. Please check the security settings of this \
             field and verify that it is read/write for your profile or permission set.",
            fields.join(", ")
        );
        SaveError::new("INVALID_FIELD_FOR_INSERT_UPDATE", message, fields)
    }

    /// `STRING_TOO_LONG`: `Billing City: data value too large: … (max length=40)`.
    pub fn too_long(field: &FieldDef, value: &str) -> SaveError {
        SaveError::new(
            "STRING_TOO_LONG",
            format!(
                "{}: data value too large: {value} (max length={})",
                field.label, field.length
            ),
            vec![field.name.clone()],
        )
    }

    /// `INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST`.
    pub fn bad_picklist_value(field: &FieldDef, value: &str) -> SaveError {
        SaveError::new(
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            format!(
                "{}: bad value for restricted picklist field: {value}",
                field.label
            ),
            vec![field.name.clone()],
        )
    }

    /// `MALFORMED_ID` for a lookup holding something that is not an Id.
    pub fn malformed_reference(field: &FieldDef, value: &str) -> SaveError {
        SaveError::new(
            "MALFORMED_ID",
            format!("{}: id value of incorrect type: {value}", field.label),
            vec![field.name.clone()],
        )
    }

    /// `FIELD_INTEGRITY_EXCEPTION` for a lookup holding an Id of the wrong object.
    pub fn wrong_reference_type(field: &FieldDef, value: &str) -> SaveError {
        SaveError::new(
            "FIELD_INTEGRITY_EXCEPTION",
            format!("{}: id value of incorrect type: {value}", field.label),
            vec![field.name.clone()],
        )
    }

    /// `INVALID_CROSS_REFERENCE_KEY` for a lookup to a record that does not exist.
    pub fn missing_reference(field: &FieldDef) -> SaveError {
        SaveError::new(
            "INVALID_CROSS_REFERENCE_KEY",
            "invalid cross reference id",
            vec![field.name.clone()],
        )
    }

    /// `DUPLICATE_VALUE` on a unique field.
    pub fn duplicate(field: &FieldDef, existing: &str) -> SaveError {
        SaveError::new(
            "DUPLICATE_VALUE",
            format!(
                "duplicate value found: {} duplicates value on record with id: {existing}",
                field.name
            ),
            vec![field.name.clone()],
        )
    }

    /// `ENTITY_IS_DELETED` for a record in the recycle bin.
    pub fn entity_is_deleted() -> SaveError {
        SaveError::new("ENTITY_IS_DELETED", "entity is deleted", Vec::new())
    }

    /// The error every valid sibling of a failed record carries under `allOrNone`.
    pub fn rolled_back() -> SaveError {
        SaveError::new(
            "ALL_OR_NONE_OPERATION_ROLLED_BACK",
            "Record rolled back because not all records were valid and the request was using \
             AllOrNone header",
            Vec::new(),
        )
    }
}

/// One record's outcome in a save result list (sObject Collections, upsert).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SaveResult {
    /// Absent when the record never got an Id (a failed create, a malformed Id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub success: bool,
    pub errors: Vec<SaveError>,
    /// Upserts only: whether the record was created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<bool>,
}

impl SaveResult {
    pub fn ok(id: String) -> SaveResult {
        SaveResult {
            id: Some(id),
            success: true,
            errors: Vec::new(),
            created: None,
        }
    }

    pub fn failed(id: Option<String>, error: SaveError) -> SaveResult {
        SaveResult {
            id,
            success: false,
            errors: vec![error],
            created: None,
        }
    }
}
