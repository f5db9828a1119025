//! Object metadata: Describe Global (`GET /sobjects`) and sObject Describe
//! (`GET /sobjects/<name>/describe`), each optionally conditional on `If-Modified-Since`,
//! which Salesforce answers with 304 and no body when nothing changed (reference §2.3).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use reqwest::header::HeaderValue;
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::client::{ApiRequest, Client, Response};
use crate::datetime;
use crate::error::{Error, Result, null_as_default};
use crate::sobject::SObject;

/// The answer to a conditional request.
#[derive(Debug, Clone, PartialEq)]
pub enum Conditional<T> {
    /// Changed since the given time: the new value.
    Modified(T),
    /// 304 Not Modified: nothing changed since the given time.
    NotModified,
}

impl<T> Conditional<T> {
    /// The new value, if there is one.
    pub fn modified(self) -> Option<T> {
        match self {
            Conditional::Modified(value) => Some(value),
            Conditional::NotModified => None,
        }
    }
}

/// Describe Global: `{"encoding", "maxBatchSize", "sobjects": […]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeGlobal {
    /// The character encoding, `UTF-8`.
    #[serde(default)]
    pub encoding: String,
    /// The most records one request may hold (200).
    #[serde(default)]
    pub max_batch_size: u32,
    /// Every object the user can see.
    pub sobjects: Vec<SObjectSummary>,
}

/// What Describe Global says about one object; also the top of an sObject Describe.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SObjectSummary {
    pub name: String,
    pub label: String,
    pub label_plural: String,
    /// The Id prefix of the object's records; `null` for objects without records.
    pub key_prefix: Option<String>,
    pub custom: bool,
    pub custom_setting: bool,
    pub createable: bool,
    pub deletable: bool,
    pub updateable: bool,
    pub queryable: bool,
    /// Whether `updated/` and `deleted/` work for the object.
    pub replicateable: bool,
    pub retrieveable: bool,
    pub searchable: bool,
    pub triggerable: bool,
    pub undeletable: bool,
    pub layoutable: bool,
    pub mergeable: bool,
    pub activateable: bool,
    pub feed_enabled: bool,
    pub deprecated_and_hidden: bool,
    #[serde(deserialize_with = "null_as_default")]
    pub urls: BTreeMap<String, String>,
}

/// sObject Describe: the object's properties, its fields and its child relationships.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SObjectDescribe {
    /// The object-level properties, as in Describe Global.
    #[serde(flatten)]
    pub summary: SObjectSummary,
    /// Every field the user can see.
    pub fields: Vec<Field>,
    /// Relationships from other objects' lookups to this one.
    #[serde(default, deserialize_with = "null_as_default")]
    pub child_relationships: Vec<ChildRelationship>,
}

impl SObjectDescribe {
    /// The field named `name`, compared as Salesforce does, without regard to case.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }
}

/// One field of an sObject Describe (the `fields[]` entries of reference §2.3).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Field {
    pub name: String,
    pub label: String,
    #[serde(rename = "type")]
    pub field_type: FieldType,
    /// `xsd:string`, `tns:ID`, …
    pub soap_type: String,
    /// Maximum characters for text fields.
    pub length: u32,
    pub byte_length: u32,
    /// Total digits for double, currency and percent.
    pub precision: u32,
    /// Digits after the decimal point for double, currency and percent.
    pub scale: u32,
    /// Digits of an int.
    pub digits: u32,
    pub nillable: bool,
    pub createable: bool,
    pub updateable: bool,
    /// A formula or roll-up: computed, never written.
    pub calculated: bool,
    pub calculated_formula: Option<String>,
    pub defaulted_on_create: bool,
    pub default_value: Option<Value>,
    pub default_value_formula: Option<String>,
    pub external_id: bool,
    pub id_lookup: bool,
    pub unique: bool,
    pub case_sensitive: bool,
    pub custom: bool,
    pub auto_number: bool,
    pub name_field: bool,
    #[serde(deserialize_with = "null_as_default")]
    pub reference_to: Vec<String>,
    pub relationship_name: Option<String>,
    pub relationship_order: Option<u32>,
    pub polymorphic_foreign_key: bool,
    #[serde(deserialize_with = "null_as_default")]
    pub picklist_values: Vec<PicklistValue>,
    pub restricted_picklist: bool,
    pub dependent_picklist: bool,
    pub controller_name: Option<String>,
    /// The compound field this one is a component of (`BillingAddress` for `BillingCity`).
    pub compound_field_name: Option<String>,
    pub extra_type_info: Option<String>,
    pub html_formatted: bool,
    pub encrypted: bool,
    pub filterable: bool,
    pub sortable: bool,
    pub groupable: bool,
    pub aggregatable: bool,
    pub cascade_delete: bool,
    pub restricted_delete: bool,
    pub deprecated_and_hidden: bool,
    pub permissionable: bool,
    pub high_scale_number: bool,
    pub inline_help_text: Option<String>,
    pub mask: Option<String>,
    pub mask_type: Option<String>,
    pub write_requires_master_read: Option<bool>,
    pub query_by_distance: bool,
    pub reference_target_field: Option<String>,
}

/// One picklist entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PicklistValue {
    /// The API value stored in records.
    pub value: String,
    /// The label shown to users.
    pub label: Option<String>,
    /// Whether the value can still be chosen.
    pub active: bool,
    /// Whether it is the field's default.
    pub default_value: bool,
    /// For dependent picklists: a base64 bitmap of the controlling values it is valid for.
    pub valid_for: Option<String>,
}

/// A relationship from a child object's lookup to the described object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ChildRelationship {
    /// The child object.
    #[serde(rename = "childSObject")]
    pub child_sobject: String,
    /// The child's lookup field.
    pub field: String,
    /// The name a parent-to-child subquery uses (`Contacts`); `null` when there is none.
    pub relationship_name: Option<String>,
    pub cascade_delete: bool,
    pub restricted_delete: bool,
    pub deprecated_and_hidden: bool,
}

/// A field's `type`, per the Partner WSDL's `fieldType` enumeration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum FieldType {
    Id,
    #[default]
    String,
    Textarea,
    Picklist,
    Multipicklist,
    Combobox,
    Reference,
    Base64,
    Boolean,
    Currency,
    Int,
    Long,
    Double,
    Percent,
    Phone,
    Email,
    Url,
    Date,
    Datetime,
    Time,
    EncryptedString,
    DataCategoryGroupReference,
    Location,
    Address,
    AnyType,
    ComplexValue,
    /// A type this crate does not know yet, as Salesforce spelled it.
    Other(std::string::String),
}

impl FieldType {
    /// The type as Salesforce spells it.
    pub fn as_str(&self) -> &str {
        match self {
            FieldType::Id => "id",
            FieldType::String => "string",
            FieldType::Textarea => "textarea",
            FieldType::Picklist => "picklist",
            FieldType::Multipicklist => "multipicklist",
            FieldType::Combobox => "combobox",
            FieldType::Reference => "reference",
            FieldType::Base64 => "base64",
            FieldType::Boolean => "boolean",
            FieldType::Currency => "currency",
            FieldType::Int => "int",
            FieldType::Long => "long",
            FieldType::Double => "double",
            FieldType::Percent => "percent",
            FieldType::Phone => "phone",
            FieldType::Email => "email",
            FieldType::Url => "url",
            FieldType::Date => "date",
            FieldType::Datetime => "datetime",
            FieldType::Time => "time",
            FieldType::EncryptedString => "encryptedstring",
            FieldType::DataCategoryGroupReference => "datacategorygroupreference",
            FieldType::Location => "location",
            FieldType::Address => "address",
            FieldType::AnyType => "anyType",
            FieldType::ComplexValue => "complexvalue",
            FieldType::Other(other) => other,
        }
    }
}

impl From<std::string::String> for FieldType {
    fn from(value: std::string::String) -> Self {
        const KNOWN: &[FieldType] = &[
            FieldType::Id,
            FieldType::String,
            FieldType::Textarea,
            FieldType::Picklist,
            FieldType::Multipicklist,
            FieldType::Combobox,
            FieldType::Reference,
            FieldType::Base64,
            FieldType::Boolean,
            FieldType::Currency,
            FieldType::Int,
            FieldType::Long,
            FieldType::Double,
            FieldType::Percent,
            FieldType::Phone,
            FieldType::Email,
            FieldType::Url,
            FieldType::Date,
            FieldType::Datetime,
            FieldType::Time,
            FieldType::EncryptedString,
            FieldType::DataCategoryGroupReference,
            FieldType::Location,
            FieldType::Address,
            FieldType::AnyType,
            FieldType::ComplexValue,
        ];
        KNOWN
            .iter()
            .find(|known| known.as_str().eq_ignore_ascii_case(&value))
            .cloned()
            .unwrap_or(FieldType::Other(value))
    }
}

impl From<FieldType> for std::string::String {
    fn from(value: FieldType) -> Self {
        value.as_str().to_owned()
    }
}

impl Client {
    /// Describe Global: every object the user can see.
    pub async fn describe_global(&self) -> Result<DescribeGlobal> {
        let response = self
            .execute(ApiRequest::rest(Method::GET, ["sobjects"]))
            .await?;
        response.json("Describe Global")
    }

    /// Describe Global, unless nothing in the org's metadata changed since `since`.
    pub async fn describe_global_if_modified_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Conditional<DescribeGlobal>> {
        let request = if_modified_since(ApiRequest::rest(Method::GET, ["sobjects"]), since)?;
        conditional(self.execute(request).await?, "Describe Global")
    }
}

impl SObject {
    /// sObject Describe: the object's fields and relationships.
    pub async fn describe(&self) -> Result<SObjectDescribe> {
        let request = self.request(Method::GET, ["describe"])?;
        self.client.execute(request).await?.json("sObject Describe")
    }

    /// sObject Describe, unless the object's metadata did not change since `since`.
    pub async fn describe_if_modified_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Conditional<SObjectDescribe>> {
        let request = if_modified_since(self.request(Method::GET, ["describe"])?, since)?;
        conditional(self.client.execute(request).await?, "sObject Describe")
    }
}

fn if_modified_since(request: ApiRequest, since: DateTime<Utc>) -> Result<ApiRequest> {
    let value = HeaderValue::from_str(&datetime::to_http_date(since))
        .map_err(|e| Error::InvalidRequest(format!("If-Modified-Since: {e}")))?;
    Ok(request.header("if-modified-since", value))
}

fn conditional<T: serde::de::DeserializeOwned>(
    response: Response,
    what: &'static str,
) -> Result<Conditional<T>> {
    match response.status {
        StatusCode::NOT_MODIFIED => Ok(Conditional::NotModified),
        StatusCode::OK => response.json(what).map(Conditional::Modified),
        _ => Err(response.unexpected()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DESCRIBE_GLOBAL: &str = r#"{
      "encoding": "UTF-8",
      "maxBatchSize": 200,
      "sobjects": [
        {"activateable": false, "createable": true, "custom": false, "customSetting": false,
         "deletable": true, "deprecatedAndHidden": false, "feedEnabled": true, "keyPrefix": "001",
         "label": "Account", "labelPlural": "Accounts", "layoutable": true, "mergeable": true,
         "name": "Account", "queryable": true, "replicateable": true, "retrieveable": true,
         "searchable": true, "triggerable": true, "undeletable": true, "updateable": true,
         "urls": {"sobject": "/services/data/v62.0/sobjects/Account",
                  "describe": "/services/data/v62.0/sobjects/Account/describe",
                  "rowTemplate": "/services/data/v62.0/sobjects/Account/{ID}"}},
        {"activateable": false, "createable": false, "custom": false, "customSetting": false,
         "deletable": false, "deprecatedAndHidden": false, "feedEnabled": false, "keyPrefix": null,
         "label": "Account Change Event", "labelPlural": "Account Change Events", "layoutable": false,
         "mergeable": false, "name": "AccountChangeEvent", "queryable": false, "replicateable": false,
         "retrieveable": false, "searchable": false, "triggerable": true, "undeletable": false,
         "updateable": false, "urls": {}}
      ]
    }"#;

    const DESCRIBE_INVOICE: &str = r#"{
      "name": "Invoice__c", "label": "Invoice", "labelPlural": "Invoices", "keyPrefix": "a01",
      "custom": true, "createable": true, "updateable": true, "deletable": true, "queryable": true,
      "replicateable": true, "retrieveable": true, "undeletable": true, "searchable": true,
      "urls": {"sobject": "/services/data/v62.0/sobjects/Invoice__c"},
      "childRelationships": [
        {"cascadeDelete": true, "childSObject": "InvoiceLine__c", "deprecatedAndHidden": false,
         "field": "Invoice__c", "junctionIdListNames": [], "junctionReferenceTo": [],
         "relationshipName": "Lines__r", "restrictedDelete": false},
        {"cascadeDelete": false, "childSObject": "Attachment", "deprecatedAndHidden": false,
         "field": "ParentId", "relationshipName": null, "restrictedDelete": false}
      ],
      "fields": [
        {"aggregatable": true, "autoNumber": false, "byteLength": 18, "calculated": false,
         "calculatedFormula": null, "cascadeDelete": false, "caseSensitive": false,
         "compoundFieldName": null, "controllerName": null, "createable": false, "custom": false,
         "defaultValue": null, "defaultValueFormula": null, "defaultedOnCreate": true,
         "dependentPicklist": false, "deprecatedAndHidden": false, "digits": 0, "encrypted": false,
         "externalId": false, "extraTypeInfo": null, "filterable": true, "groupable": true,
         "highScaleNumber": false, "htmlFormatted": false, "idLookup": true, "inlineHelpText": null,
         "label": "Record ID", "length": 18, "mask": null, "maskType": null, "name": "Id",
         "nameField": false, "nillable": false, "permissionable": false, "picklistValues": [],
         "polymorphicForeignKey": false, "precision": 0, "queryByDistance": false,
         "referenceTargetField": null, "referenceTo": [], "relationshipName": null,
         "relationshipOrder": null, "restrictedDelete": false, "restrictedPicklist": false,
         "scale": 0, "soapType": "tns:ID", "sortable": true, "type": "id", "unique": false,
         "updateable": false, "writeRequiresMasterRead": false},
        {"name": "Account__c", "label": "Account", "type": "reference", "soapType": "tns:ID",
         "length": 18, "byteLength": 18, "referenceTo": ["Account"], "relationshipName": "Account__r",
         "relationshipOrder": 0, "nillable": true, "createable": true, "updateable": true, "custom": true},
        {"name": "Amount__c", "label": "Amount", "type": "currency", "soapType": "xsd:double",
         "precision": 18, "scale": 2, "nillable": true, "createable": true, "updateable": true, "custom": true},
        {"name": "Total__c", "label": "Total", "type": "double", "soapType": "xsd:double",
         "precision": 18, "scale": 2, "calculated": true,
         "calculatedFormula": "Amount__c * 1.2", "createable": false, "updateable": false},
        {"name": "Status__c", "label": "Status", "type": "picklist", "soapType": "xsd:string",
         "length": 255, "restrictedPicklist": true, "defaultValue": "Draft",
         "picklistValues": [
           {"active": true, "defaultValue": true, "label": "Draft", "validFor": null, "value": "Draft"},
           {"active": true, "defaultValue": false, "label": "Sent", "validFor": null, "value": "Sent"}]},
        {"name": "BillingCity__c", "label": "City", "type": "string", "length": 40,
         "compoundFieldName": null, "extraTypeInfo": null},
        {"name": "Payload__c", "label": "Payload", "type": "json", "soapType": "tns:json"}
      ]
    }"#;

    #[test]
    fn describe_global() {
        let global: DescribeGlobal = serde_json::from_str(DESCRIBE_GLOBAL).unwrap();
        assert_eq!(global.encoding, "UTF-8");
        assert_eq!(global.max_batch_size, 200);
        let account = &global.sobjects[0];
        assert_eq!(account.name, "Account");
        assert_eq!(account.key_prefix.as_deref(), Some("001"));
        assert!(account.replicateable && account.queryable && !account.custom);
        assert_eq!(
            account.urls["describe"],
            "/services/data/v62.0/sobjects/Account/describe"
        );
        assert_eq!(global.sobjects[1].key_prefix, None);
    }

    #[test]
    fn sobject_describe() {
        let describe: SObjectDescribe = serde_json::from_str(DESCRIBE_INVOICE).unwrap();
        assert_eq!(describe.summary.name, "Invoice__c");
        assert_eq!(describe.summary.key_prefix.as_deref(), Some("a01"));
        assert!(describe.summary.custom);

        let id = describe.field("id").unwrap();
        assert_eq!(id.field_type, FieldType::Id);
        assert_eq!(id.soap_type, "tns:ID");
        assert!(id.id_lookup && !id.nillable);

        let account = describe.field("Account__c").unwrap();
        assert_eq!(account.field_type, FieldType::Reference);
        assert_eq!(account.reference_to, vec!["Account"]);
        assert_eq!(account.relationship_name.as_deref(), Some("Account__r"));

        let amount = describe.field("Amount__c").unwrap();
        assert_eq!(
            (amount.field_type.clone(), amount.precision, amount.scale),
            (FieldType::Currency, 18, 2)
        );

        let total = describe.field("Total__c").unwrap();
        assert!(total.calculated && !total.createable);
        assert_eq!(total.calculated_formula.as_deref(), Some("Amount__c * 1.2"));

        let status = describe.field("Status__c").unwrap();
        assert!(status.restricted_picklist);
        assert_eq!(status.default_value, Some(Value::from("Draft")));
        assert_eq!(status.picklist_values.len(), 2);
        assert!(status.picklist_values[0].default_value);

        assert_eq!(
            describe.field("Payload__c").unwrap().field_type,
            FieldType::Other("json".into())
        );

        assert_eq!(
            describe.child_relationships[0].child_sobject,
            "InvoiceLine__c"
        );
        assert_eq!(
            describe.child_relationships[0].relationship_name.as_deref(),
            Some("Lines__r")
        );
        assert_eq!(describe.child_relationships[1].relationship_name, None);
    }

    #[test]
    fn field_types_round_trip() {
        for text in [
            "id",
            "string",
            "anyType",
            "encryptedstring",
            "multipicklist",
            "datetime",
            "address",
        ] {
            let parsed = FieldType::from(text.to_owned());
            assert!(!matches!(parsed, FieldType::Other(_)), "{text}");
            assert_eq!(std::string::String::from(parsed), text);
        }
    }
}
