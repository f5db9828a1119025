//! Describe: `/sobjects/` (describe global), `/sobjects/X/` (basic info) and
//! `/sobjects/X/describe/`, with the keys and value shapes Salesforce sends (keys in
//! alphabetical order, as Salesforce writes them), and the modification times that
//! `If-Modified-Since` compares against.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value as Json, json};

use super::{ApiError, Org};
use crate::model::{FieldDef, FieldType, ObjectDef};

/// The record type every object without record types has.
const MASTER_RECORD_TYPE: &str = "012000000000000AAA";

impl Org {
    /// `GET /sobjects/`.
    pub fn describe_global(&self, api_version: &str) -> Json {
        let version = bare(api_version);
        let sobjects: Vec<Json> = self
            .objects()
            .map(|o| Json::Object(object_properties(o, version)))
            .collect();
        json!({
            "encoding": "UTF-8",
            "maxBatchSize": 200,
            "sobjects": sobjects,
        })
    }

    /// `GET /sobjects/X/`: `objectDescribe` and `recentItems` (the five newest live
    /// records, with their names).
    pub fn basic_info(&self, object: &str, api_version: &str) -> Result<Json, ApiError> {
        let store = self.store(object).ok_or_else(ApiError::not_found)?;
        let version = bare(api_version);
        let def = &store.def;
        let name_field = def.system.name;
        let recent: Vec<Json> = store
            .records
            .values()
            .rev()
            .filter(|r| !store.is_deleted(r))
            .take(5)
            .map(|r| {
                let mut fields = vec![def.system.id];
                fields.extend(name_field);
                self.record_json(def, r, Some(&fields), version)
            })
            .collect();
        Ok(json!({
            "objectDescribe": Json::Object(object_properties(def, version)),
            "recentItems": recent,
        }))
    }

    /// `GET /sobjects/X/describe/`.
    pub fn describe(&self, object: &str, api_version: &str) -> Result<Json, ApiError> {
        let def = &self.store(object).ok_or_else(ApiError::not_found)?.def;
        let version = bare(api_version);
        let mut out = object_properties(def, version);
        let base = format!("/services/data/v{version}/sobjects/{}", def.name);
        out.insert("actionOverrides".into(), json!([]));
        out.insert(
            "childRelationships".into(),
            json!(self.child_relationships(def)),
        );
        out.insert("compactLayoutable".into(), json!(true));
        out.insert(
            "fields".into(),
            Json::Array(def.fields.iter().map(field_describe).collect()),
        );
        out.insert("listviewable".into(), Json::Null);
        out.insert("lookupLayoutable".into(), Json::Null);
        out.insert("namedLayoutInfos".into(), json!([]));
        out.insert("networkScopeFieldName".into(), Json::Null);
        out.insert(
            "recordTypeInfos".into(),
            json!([{
                "active": true,
                "available": true,
                "defaultRecordTypeMapping": true,
                "developerName": "Master",
                "master": true,
                "name": "Master",
                "recordTypeId": MASTER_RECORD_TYPE,
                "urls": {"layout": format!("{base}/describe/layouts/{MASTER_RECORD_TYPE}")},
            }]),
        );
        out.insert("searchLayoutable".into(), json!(def.searchable));
        out.insert(
            "supportedScopes".into(),
            json!([
                {"label": "All", "name": "everything"},
            ]),
        );
        let mut sorted: Vec<(String, Json)> = out.into_iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Json::Object(sorted.into_iter().collect()))
    }

    /// When `object`'s definition last changed (describe's `If-Modified-Since`).
    pub fn describe_last_modified(&self, object: &str) -> Option<DateTime<Utc>> {
        self.store(object).map(|s| s.def.last_modified)
    }

    /// When any definition last changed (describe global's `If-Modified-Since`).
    pub fn global_last_modified(&self) -> DateTime<Utc> {
        self.global_modified
    }

    /// The lookups of every object that point at `def`. The first lookup from each child
    /// object is named after the child's plural (`Contacts`, `Invoices__r`); the audit
    /// and merge lookups have no relationship name, as in Salesforce.
    fn child_relationships(&self, def: &ObjectDef) -> Vec<Json> {
        let mut out = Vec::new();
        for child in self.objects() {
            let mut named = false;
            for field in &child.fields {
                if !field
                    .reference_to
                    .iter()
                    .any(|t| t.eq_ignore_ascii_case(&def.name))
                {
                    continue;
                }
                let system = matches!(
                    field.name.as_str(),
                    "CreatedById" | "LastModifiedById" | "MasterRecordId"
                );
                let name = (!system && !named).then(|| {
                    named = true;
                    let plural: String = child
                        .label_plural
                        .chars()
                        .filter(char::is_ascii_alphanumeric)
                        .collect();
                    if field.custom {
                        format!("{plural}__r")
                    } else {
                        plural
                    }
                });
                out.push(json!({
                    "cascadeDelete": field.cascade_delete,
                    "childSObject": child.name,
                    "deprecatedAndHidden": false,
                    "field": field.name,
                    "junctionIdListNames": [],
                    "junctionReferenceTo": [],
                    "relationshipName": name,
                    "restrictedDelete": field.restricted_delete,
                }));
            }
        }
        out
    }
}

fn bare(api_version: &str) -> &str {
    api_version.strip_prefix('v').unwrap_or(api_version)
}

/// The object-level properties describe global lists for each object.
fn object_properties(def: &ObjectDef, version: &str) -> Map<String, Json> {
    let base = format!("/services/data/v{version}/sobjects/{}", def.name);
    let json = json!({
        "activateable": false,
        "associateEntityType": null,
        "associateParentEntity": null,
        "createable": def.createable,
        "custom": def.custom,
        "customSetting": false,
        "deepCloneable": false,
        "deletable": def.deletable,
        "deprecatedAndHidden": false,
        "feedEnabled": def.feed_enabled,
        "hasSubtypes": false,
        "isInterface": false,
        "isSubtype": false,
        "keyPrefix": def.key_prefix,
        "label": def.label,
        "labelPlural": def.label_plural,
        "layoutable": def.layoutable,
        "mergeable": def.mergeable,
        "mruEnabled": true,
        "name": def.name,
        "queryable": def.queryable,
        "replicateable": def.replicateable,
        "retrieveable": def.retrieveable,
        "searchable": def.searchable,
        "triggerable": def.triggerable,
        "undeletable": def.undeletable,
        "updateable": def.updateable,
        "urls": {
            "compactLayouts": format!("{base}/describe/compactLayouts"),
            "rowTemplate": format!("{base}/{{ID}}"),
            "approvalLayouts": format!("{base}/describe/approvalLayouts"),
            "defaultValues": format!("{base}/defaultValues?recordTypeId&fields"),
            "listviews": format!("{base}/listviews"),
            "describe": format!("{base}/describe"),
            "quickActions": format!("{base}/quickActions"),
            "layouts": format!("{base}/describe/layouts"),
            "sobject": base,
        },
    });
    match json {
        Json::Object(map) => map,
        _ => Map::new(),
    }
}

/// A field's default: its own, or `false` for a writable checkbox.
fn default_value(f: &FieldDef) -> Json {
    match (&f.default_value, f.field_type) {
        (Some(v), _) => v.clone(),
        (None, FieldType::Boolean) if f.createable || f.updateable => json!(false),
        _ => Json::Null,
    }
}

/// Whether a field can be aggregated: not compound, long text, multi-select or binary.
fn aggregatable(f: &FieldDef) -> bool {
    let t = f.field_type;
    let long_text = t == FieldType::Textarea && f.length > 255;
    !t.is_compound() && !long_text && !matches!(t, FieldType::Multipicklist | FieldType::Base64)
}

/// A picklist's values as a describe lists them.
fn picklist_values(f: &FieldDef) -> Vec<Json> {
    f.picklist_values
        .iter()
        .map(|p| {
            json!({
                "active": p.active,
                "defaultValue": p.default_value,
                "label": p.label(),
                "validFor": null,
                "value": p.value,
            })
        })
        .collect()
}

/// One `fields[]` entry of a describe.
fn field_describe(f: &FieldDef) -> Json {
    let t = f.field_type;
    let numeric = t.is_fractional() || t == FieldType::Int;
    let properties: [(&str, Json); 57] = [
        ("aggregatable", json!(aggregatable(f))),
        ("aiPredictionField", json!(false)),
        ("autoNumber", json!(f.auto_number)),
        ("byteLength", json!(f.byte_length())),
        ("calculated", json!(f.calculated)),
        ("calculatedFormula", json!(f.calculated_formula)),
        ("cascadeDelete", json!(f.cascade_delete)),
        ("caseSensitive", json!(f.case_sensitive)),
        ("compoundFieldName", json!(f.compound_field_name)),
        ("controllerName", json!(null)),
        ("createable", json!(f.createable)),
        ("custom", json!(f.custom)),
        ("defaultValue", default_value(f)),
        ("defaultValueFormula", json!(null)),
        ("defaultedOnCreate", json!(f.defaulted_on_create)),
        ("dependentPicklist", json!(false)),
        ("deprecatedAndHidden", json!(false)),
        ("digits", json!(f.digits)),
        ("displayLocationInDecimal", json!(false)),
        ("encrypted", json!(t == FieldType::Encryptedstring)),
        ("externalId", json!(f.external_id)),
        ("extraTypeInfo", json!(f.extra_type_info)),
        ("filterable", json!(f.filterable)),
        ("filteredLookupInfo", json!(null)),
        (
            "formulaTreatNullNumberAsZero",
            json!(f.calculated && numeric && f.blanks_as_zero()),
        ),
        ("groupable", json!(f.groupable)),
        ("highScaleNumber", json!(false)),
        ("htmlFormatted", json!(f.html_formatted)),
        ("idLookup", json!(f.id_lookup)),
        ("inlineHelpText", json!(f.inline_help_text)),
        ("label", json!(f.label)),
        ("length", json!(f.length)),
        ("mask", json!(null)),
        ("maskType", json!(null)),
        ("name", json!(f.name)),
        ("nameField", json!(f.name_field)),
        ("namePointing", json!(false)),
        ("nillable", json!(f.nillable)),
        (
            "permissionable",
            json!(f.nillable && !f.calculated && f.createable),
        ),
        ("picklistValues", json!(picklist_values(f))),
        ("polymorphicForeignKey", json!(f.reference_to.len() > 1)),
        ("precision", json!(f.precision)),
        ("queryByDistance", json!(false)),
        ("referenceTargetField", json!(null)),
        ("referenceTo", json!(f.reference_to)),
        ("relationshipName", json!(f.relationship_name)),
        ("relationshipOrder", json!(null)),
        ("restrictedDelete", json!(f.restricted_delete)),
        ("restrictedPicklist", json!(f.restricted_picklist)),
        ("scale", json!(f.scale)),
        ("searchPrefilterable", json!(t == FieldType::Reference)),
        ("soapType", json!(t.soap_type())),
        ("sortable", json!(f.sortable)),
        ("type", json!(t)),
        ("unique", json!(f.unique)),
        ("updateable", json!(f.updateable)),
        ("writeRequiresMasterRead", json!(false)),
    ];
    Json::Object(
        properties
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
    )
}
