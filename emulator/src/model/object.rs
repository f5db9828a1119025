//! Object definitions: describe's object-level properties, the fields, and the validation
//! rules, loaded from JSON and completed with the system fields every object has.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{FieldDef, FieldType, Formula};

/// A validation rule, in the shape of Salesforce's `ValidationRule` metadata: when
/// `errorConditionFormula` is true for a record being saved, the save fails with
/// `FIELD_CUSTOM_VALIDATION_EXCEPTION` and `errorMessage`, on `errorDisplayField` if set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidationRule {
    pub full_name: String,
    #[serde(default = "yes")]
    pub active: bool,
    pub error_condition_formula: String,
    pub error_message: String,
    #[serde(default)]
    pub error_display_field: Option<String>,
    /// The compiled `errorConditionFormula`, set when the object definition completes.
    #[serde(skip)]
    pub condition: Option<Arc<Formula>>,
}

fn yes() -> bool {
    true
}

/// Positions of the fields the org maintains itself, found once when a definition loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SystemFields {
    pub id: usize,
    /// `IsDeleted`; absent only on objects whose records cannot be deleted (`User`).
    pub is_deleted: Option<usize>,
    pub created_date: usize,
    pub created_by_id: usize,
    pub last_modified_date: usize,
    pub last_modified_by_id: usize,
    pub system_modstamp: usize,
    /// `OwnerId`, on objects that have owners.
    pub owner_id: Option<usize>,
    /// The object's name field (`Name`, or `Subject`-like fields on some objects).
    pub name: Option<usize>,
}

/// An sObject's definition, with describe's property names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectDef {
    pub name: String,
    pub label: String,
    pub label_plural: String,
    pub key_prefix: String,
    #[serde(default)]
    pub custom: bool,
    #[serde(default = "yes")]
    pub createable: bool,
    #[serde(default = "yes")]
    pub updateable: bool,
    #[serde(default = "yes")]
    pub deletable: bool,
    #[serde(default = "yes")]
    pub queryable: bool,
    #[serde(default = "yes")]
    pub replicateable: bool,
    #[serde(default = "yes")]
    pub retrieveable: bool,
    #[serde(default = "yes")]
    pub searchable: bool,
    #[serde(default = "yes")]
    pub undeletable: bool,
    #[serde(default = "yes")]
    pub triggerable: bool,
    #[serde(default = "yes")]
    pub layoutable: bool,
    #[serde(default)]
    pub mergeable: bool,
    #[serde(default)]
    pub feed_enabled: bool,
    pub fields: Vec<FieldDef>,
    #[serde(default)]
    pub validation_rules: Vec<ValidationRule>,
    /// When the definition last changed; describe's `If-Modified-Since` compares with it.
    #[serde(skip, default = "epoch")]
    pub last_modified: DateTime<Utc>,
    #[serde(skip)]
    pub system: SystemFields,
}

fn epoch() -> DateTime<Utc> {
    DateTime::<Utc>::UNIX_EPOCH
}

/// Why a definition could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum DefinitionError {
    #[error("object definition is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("object {object}: {message}")]
    Invalid { object: String, message: String },
}

impl ObjectDef {
    /// Loads a definition from its JSON file text and completes it (see [`ObjectDef::complete`]).
    pub fn from_json(text: &str) -> Result<ObjectDef, DefinitionError> {
        let mut def: ObjectDef = serde_json::from_str(text)?;
        def.complete()?;
        Ok(def)
    }

    /// Makes a definition whole: adds the system fields it leaves out (`Id` first,
    /// `IsDeleted` second unless the object is not `deletable`, the audit fields last), applies the flags each field type
    /// implies (formulas and auto-numbers are read-only, booleans are never null, ...),
    /// checks names and references, and records where the system fields sit.
    pub fn complete(&mut self) -> Result<(), DefinitionError> {
        if self.is_platform_event() {
            self.make_platform_event();
        } else {
            self.add_missing_system_fields();
        }
        for field in &mut self.fields {
            apply_type_rules(field);
        }
        self.check()?;
        self.system = self.find_system_fields()?;
        self.compile_formulas()?;
        Ok(())
    }

    fn compile_formulas(&mut self) -> Result<(), DefinitionError> {
        let invalid = |e: super::FormulaError| DefinitionError::Invalid {
            object: self.name.clone(),
            message: e.to_string(),
        };
        let mut fields = Vec::with_capacity(self.fields.len());
        for field in &self.fields {
            fields.push(match field.read_formula() {
                Some(source) => Some(Arc::new(
                    Formula::compile(source, self, field.blanks_as_zero()).map_err(invalid)?,
                )),
                None => None,
            });
        }
        let mut rules = Vec::with_capacity(self.validation_rules.len());
        for rule in &self.validation_rules {
            rules.push(Arc::new(
                Formula::compile(&rule.error_condition_formula, self, false).map_err(invalid)?,
            ));
        }
        for (field, formula) in self.fields.iter_mut().zip(fields) {
            field.formula = formula;
        }
        for (rule, condition) in self.validation_rules.iter_mut().zip(rules) {
            rule.condition = Some(condition);
        }
        Ok(())
    }

    /// The field with this API name, ignoring case, and its position.
    pub fn field(&self, name: &str) -> Option<(usize, &FieldDef)> {
        self.fields
            .iter()
            .enumerate()
            .find(|(_, f)| f.name.eq_ignore_ascii_case(name))
    }

    /// The lookup field whose relationship has this name, ignoring case (`Account` for
    /// `AccountId`, `Account__r` for `Account__c`), and its position.
    pub fn relationship(&self, relationship_name: &str) -> Option<(usize, &FieldDef)> {
        self.fields.iter().enumerate().find(|(_, f)| {
            f.relationship_name
                .as_deref()
                .is_some_and(|r| r.eq_ignore_ascii_case(relationship_name))
        })
    }

    /// Whether this is a platform event object (`Order_Event__e`): published, never
    /// stored, queried, changed or deleted.
    pub fn is_platform_event(&self) -> bool {
        self.name.ends_with("__e")
    }

    /// The shape Salesforce gives a platform event object: only `create` (publish) and
    /// describe are supported, and its standard fields are `Id`, `ReplayId`,
    /// `CreatedDate`, `CreatedById` and `EventUuid` (Platform Events Developer Guide,
    /// the field reference of event objects); no `IsDeleted`, `LastModified…` or
    /// `SystemModstamp`.
    fn make_platform_event(&mut self) {
        self.custom = true;
        self.createable = true;
        for flag in [
            &mut self.updateable,
            &mut self.deletable,
            &mut self.queryable,
            &mut self.replicateable,
            &mut self.retrieveable,
            &mut self.searchable,
            &mut self.undeletable,
            &mut self.layoutable,
            &mut self.mergeable,
            &mut self.feed_enabled,
        ] {
            *flag = false;
        }
        self.triggerable = true;
        let has = |fields: &[FieldDef], name: &str| {
            fields.iter().any(|f| f.name.eq_ignore_ascii_case(name))
        };
        if !has(&self.fields, "Id") {
            self.fields
                .insert(0, system_field("Id", "Event ID", FieldType::Id));
        }
        let mut replay_id = system_field("ReplayId", "Replay ID", FieldType::String);
        replay_id.length = 1000;
        replay_id.nillable = true;
        let mut uuid = system_field("EventUuid", "Event UUID", FieldType::String);
        uuid.length = 36;
        uuid.nillable = true;
        for field in [
            replay_id,
            system_field("CreatedDate", "Created Date", FieldType::Datetime),
            system_field("CreatedById", "Created By ID", FieldType::Reference),
            uuid,
        ] {
            if !has(&self.fields, &field.name) {
                self.fields.push(field);
            }
        }
        for field in &mut self.fields {
            // Event messages cannot be changed once published.
            field.updateable = false;
        }
    }

    /// The object's name field, if it has one.
    pub fn name_field(&self) -> Option<&FieldDef> {
        self.system.name.map(|i| &self.fields[i])
    }

    fn add_missing_system_fields(&mut self) {
        let has = |fields: &[FieldDef], name: &str| {
            fields.iter().any(|f| f.name.eq_ignore_ascii_case(name))
        };
        if !has(&self.fields, "Id") {
            self.fields
                .insert(0, system_field("Id", "Record ID", FieldType::Id));
        }
        if self.deletable && !has(&self.fields, "IsDeleted") {
            let at = usize::from(!self.fields.is_empty());
            self.fields
                .insert(at, system_field("IsDeleted", "Deleted", FieldType::Boolean));
        }
        for (name, label, field_type) in [
            ("CreatedDate", "Created Date", FieldType::Datetime),
            ("CreatedById", "Created By ID", FieldType::Reference),
            (
                "LastModifiedDate",
                "Last Modified Date",
                FieldType::Datetime,
            ),
            (
                "LastModifiedById",
                "Last Modified By ID",
                FieldType::Reference,
            ),
            ("SystemModstamp", "System Modstamp", FieldType::Datetime),
        ] {
            if !has(&self.fields, name) {
                self.fields.push(system_field(name, label, field_type));
            }
        }
    }

    fn check(&self) -> Result<(), DefinitionError> {
        let invalid = |message: String| DefinitionError::Invalid {
            object: self.name.clone(),
            message,
        };
        if self.key_prefix.len() != 3 || !self.key_prefix.chars().all(|c| c.is_ascii_alphanumeric())
        {
            return Err(invalid(format!(
                "keyPrefix {:?} is not three letters or digits",
                self.key_prefix
            )));
        }
        for (i, field) in self.fields.iter().enumerate() {
            if self.fields[..i]
                .iter()
                .any(|f| f.name.eq_ignore_ascii_case(&field.name))
            {
                return Err(invalid(format!("field {} is defined twice", field.name)));
            }
            if field.field_type == FieldType::Reference && field.reference_to.is_empty() {
                return Err(invalid(format!("lookup {} has no referenceTo", field.name)));
            }
            if field.calculated && field.calculated_formula.is_none() {
                return Err(invalid(format!(
                    "formula field {} has no calculatedFormula",
                    field.name
                )));
            }
            if let Some(compound) = &field.compound_field_name
                && self.field(compound).is_none()
            {
                return Err(invalid(format!(
                    "{} names a missing compound field {compound}",
                    field.name
                )));
            }
        }
        for rule in &self.validation_rules {
            if let Some(display) = &rule.error_display_field
                && self.field(display).is_none()
            {
                return Err(invalid(format!(
                    "validation rule {} shows its error on a missing field {display}",
                    rule.full_name
                )));
            }
        }
        Ok(())
    }

    fn find_system_fields(&self) -> Result<SystemFields, DefinitionError> {
        let find = |name: &str| {
            self.field(name)
                .map(|(i, _)| i)
                .ok_or_else(|| DefinitionError::Invalid {
                    object: self.name.clone(),
                    message: format!("system field {name} is missing"),
                })
        };
        let created_date = find("CreatedDate")?;
        let created_by_id = find("CreatedById")?;
        // A platform event has no last-modified fields; it is never stored, so the
        // positions only need to be valid ones: its creation's.
        let or_created = |name: &str, created: usize| {
            if self.is_platform_event() {
                Ok(self.field(name).map_or(created, |(i, _)| i))
            } else {
                find(name)
            }
        };
        Ok(SystemFields {
            id: find("Id")?,
            is_deleted: self.field("IsDeleted").map(|(i, _)| i),
            created_date,
            created_by_id,
            last_modified_date: or_created("LastModifiedDate", created_date)?,
            last_modified_by_id: or_created("LastModifiedById", created_by_id)?,
            system_modstamp: or_created("SystemModstamp", created_date)?,
            owner_id: self.field("OwnerId").map(|(i, _)| i),
            name: self.fields.iter().position(|f| f.name_field),
        })
    }
}

/// A system field as Salesforce describes it: read-only, never null, set by the server.
fn system_field(name: &str, label: &str, field_type: FieldType) -> FieldDef {
    let is_user = field_type == FieldType::Reference;
    FieldDef {
        name: name.to_owned(),
        label: label.to_owned(),
        field_type,
        length: if field_type == FieldType::Id || is_user {
            18
        } else {
            0
        },
        precision: 0,
        scale: 0,
        digits: 0,
        nillable: false,
        createable: false,
        updateable: false,
        calculated: false,
        calculated_formula: None,
        defaulted_on_create: true,
        default_value: None,
        external_id: false,
        id_lookup: field_type == FieldType::Id,
        unique: false,
        case_sensitive: false,
        custom: false,
        auto_number: false,
        name_field: false,
        reference_to: if is_user {
            vec!["User".to_owned()]
        } else {
            Vec::new()
        },
        relationship_name: if is_user {
            Some(name.trim_end_matches("Id").to_owned())
        } else {
            None
        },
        picklist_values: Vec::new(),
        restricted_picklist: false,
        compound_field_name: None,
        extra_type_info: None,
        html_formatted: false,
        filterable: true,
        sortable: true,
        groupable: true,
        cascade_delete: false,
        restricted_delete: false,
        inline_help_text: None,
        display_format: None,
        derived_formula: None,
        formula_treat_blanks_as: None,
        formula: None,
    }
}

/// The describe flags a field's type and kind imply, whatever the definition file says.
fn apply_type_rules(field: &mut FieldDef) {
    let t = field.field_type;
    if t == FieldType::Id {
        field.createable = false;
        field.updateable = false;
        field.nillable = false;
        field.defaulted_on_create = true;
        field.id_lookup = true;
        field.length = 18;
    }
    if t == FieldType::Reference {
        field.length = 18;
    }
    if field.calculated || field.derived_formula.is_some() || field.auto_number || t.is_compound() {
        field.createable = false;
        field.updateable = false;
    }
    if field.auto_number {
        field.nillable = false;
        field.defaulted_on_create = true;
    }
    if field.calculated {
        // A formula can always evaluate to blank.
        field.nillable = true;
    }
    if t == FieldType::Boolean {
        field.nillable = false;
        field.defaulted_on_create = true;
    }
    if field.picklist_values.iter().any(|p| p.default_value) || field.default_value.is_some() {
        field.defaulted_on_create = true;
    }
    let long_text = t == FieldType::Textarea && field.length > 255;
    if t.is_compound() || long_text || t == FieldType::Base64 {
        field.filterable = false;
        field.sortable = false;
        field.groupable = false;
    }
    if t == FieldType::Multipicklist {
        field.sortable = false;
        field.groupable = false;
    }
    if t.is_fractional() || t == FieldType::Datetime || t == FieldType::Time || field.calculated {
        field.groupable = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WIDGET: &str = r#"{
        "name": "Widget__c", "label": "Widget", "labelPlural": "Widgets",
        "keyPrefix": "a09", "custom": true,
        "fields": [
            {"name": "Name", "label": "Widget Name", "type": "string", "length": 80,
             "nillable": false, "nameField": true},
            {"name": "Price__c", "label": "Price", "type": "currency", "precision": 16,
             "scale": 2, "custom": true},
            {"name": "Active__c", "label": "Active", "type": "boolean", "custom": true},
            {"name": "Parent__c", "label": "Parent", "type": "reference", "custom": true,
             "referenceTo": ["Widget__c"], "relationshipName": "Parent__r"}
        ]
    }"#;

    #[test]
    fn completes_system_fields_in_describe_order() {
        let def = ObjectDef::from_json(WIDGET).unwrap();
        let names: Vec<&str> = def.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "Id",
                "IsDeleted",
                "Name",
                "Price__c",
                "Active__c",
                "Parent__c",
                "CreatedDate",
                "CreatedById",
                "LastModifiedDate",
                "LastModifiedById",
                "SystemModstamp"
            ]
        );
        assert_eq!(def.system.id, 0);
        assert_eq!(def.system.system_modstamp, 10);
        assert_eq!(def.system.name, Some(2));
        assert_eq!(def.system.owner_id, None);
        let (_, created_by) = def.field("CreatedById").unwrap();
        assert_eq!(created_by.reference_to, ["User"]);
        assert_eq!(created_by.relationship_name.as_deref(), Some("CreatedBy"));
        assert!(!created_by.createable && !created_by.updateable);
    }

    #[test]
    fn finds_fields_and_relationships_ignoring_case() {
        let def = ObjectDef::from_json(WIDGET).unwrap();
        assert_eq!(def.field("price__C").map(|(i, _)| i), Some(3));
        assert_eq!(def.relationship("PARENT__R").map(|(i, _)| i), Some(5));
        assert!(def.relationship("Parent__c").is_none());
        assert!(def.field("Nope").is_none());
    }

    #[test]
    fn type_rules_override_the_file() {
        let def = ObjectDef::from_json(WIDGET).unwrap();
        let (_, active) = def.field("Active__c").unwrap();
        assert!(!active.nillable && active.defaulted_on_create);
        assert!(!active.is_required_on_create());
        let (_, price) = def.field("Price__c").unwrap();
        assert!(!price.groupable && price.sortable);
        let (_, name) = def.field("Name").unwrap();
        assert!(name.is_required_on_create());
    }

    #[test]
    fn compiles_formulas_and_rules() {
        let text = WIDGET.replace(
            r#""fields": ["#,
            r#""validationRules": [{"fullName": "Cheap", "errorConditionFormula":
                "Price__c > 100", "errorMessage": "Too dear", "errorDisplayField": "Price__c"}],
               "fields": [
                {"name": "Double__c", "label": "Double", "type": "currency", "precision": 18,
                 "scale": 2, "calculated": true, "calculatedFormula": "Price__c * 2",
                 "createable": true},"#,
        );
        let def = ObjectDef::from_json(&text).unwrap();
        let (_, double) = def.field("Double__c").unwrap();
        assert!(double.formula.is_some() && !double.createable && double.nillable);
        assert!(def.validation_rules[0].condition.is_some());
        let broken = text.replace("Price__c * 2", "Cost__c * 2");
        assert!(ObjectDef::from_json(&broken).is_err());
    }

    #[test]
    fn rejects_broken_definitions() {
        let twice = WIDGET.replace("\"Price__c\"", "\"Name\"");
        assert!(matches!(
            ObjectDef::from_json(&twice),
            Err(DefinitionError::Invalid { .. })
        ));
        let bad_prefix = WIDGET.replace("a09", "a0");
        assert!(ObjectDef::from_json(&bad_prefix).is_err());
        assert!(matches!(
            ObjectDef::from_json("{"),
            Err(DefinitionError::Json(_))
        ));
    }
}
