//! Field definitions: the properties a describe call reports for each field, plus the few
//! metadata settings (auto-number display format, derived name formulas) the org needs to
//! behave like Salesforce.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::Formula;

/// A field's describe `type`, spelled as Salesforce spells it (Partner WSDL `fieldType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    Id,
    Reference,
    String,
    Textarea,
    Picklist,
    Multipicklist,
    Combobox,
    Email,
    Phone,
    Url,
    Encryptedstring,
    Boolean,
    Int,
    Double,
    Currency,
    Percent,
    Date,
    Datetime,
    Time,
    Base64,
    Address,
    Location,
    #[serde(rename = "anyType")]
    AnyType,
}

impl FieldType {
    /// The describe `soapType` for this type.
    pub fn soap_type(self) -> &'static str {
        match self {
            FieldType::Id | FieldType::Reference => "tns:ID",
            FieldType::Boolean => "xsd:boolean",
            FieldType::Int => "xsd:int",
            FieldType::Double | FieldType::Currency | FieldType::Percent => "xsd:double",
            FieldType::Date => "xsd:date",
            FieldType::Datetime => "xsd:dateTime",
            FieldType::Time => "xsd:time",
            FieldType::Base64 => "xsd:base64Binary",
            FieldType::Address => "urn:address",
            FieldType::Location => "urn:location",
            FieldType::AnyType => "xsd:anyType",
            FieldType::String
            | FieldType::Textarea
            | FieldType::Picklist
            | FieldType::Multipicklist
            | FieldType::Combobox
            | FieldType::Email
            | FieldType::Phone
            | FieldType::Url
            | FieldType::Encryptedstring => "xsd:string",
        }
    }

    /// Whether values of this type are text (held as [`Value::Text`](super::Value::Text)).
    pub fn is_text(self) -> bool {
        matches!(
            self,
            FieldType::Id
                | FieldType::Reference
                | FieldType::String
                | FieldType::Textarea
                | FieldType::Picklist
                | FieldType::Multipicklist
                | FieldType::Combobox
                | FieldType::Email
                | FieldType::Phone
                | FieldType::Url
                | FieldType::Encryptedstring
                | FieldType::Base64
                | FieldType::AnyType
        )
    }

    /// Whether values of this type are numbers held as [`Value::Double`](super::Value::Double).
    pub fn is_fractional(self) -> bool {
        matches!(
            self,
            FieldType::Double | FieldType::Currency | FieldType::Percent
        )
    }

    /// Compound types are read-only views over their component fields.
    pub fn is_compound(self) -> bool {
        matches!(self, FieldType::Address | FieldType::Location)
    }
}

/// One entry of a picklist field's `picklistValues`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PicklistValue {
    pub value: String,
    /// Defaults to `value` when the definition file leaves it out.
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default = "yes")]
    pub active: bool,
    #[serde(default)]
    pub default_value: bool,
}

impl PicklistValue {
    pub fn label(&self) -> &str {
        self.label.as_deref().unwrap_or(&self.value)
    }
}

fn yes() -> bool {
    true
}

/// A field, with describe's property names (reference §2.3).
///
/// Definition files may leave out any property that has its usual value: `createable`,
/// `updateable`, `nillable`, `filterable`, `sortable` and `groupable` default to true (then
/// [`ObjectDef::from_json`](super::ObjectDef::from_json) turns off what the type forbids,
/// e.g. `groupable` on a currency field, or `createable` on a formula); every other flag
/// defaults to false.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldDef {
    pub name: String,
    pub label: String,
    #[serde(rename = "type")]
    pub field_type: FieldType,
    /// Maximum characters of a text field; 0 for other types.
    #[serde(default)]
    pub length: u32,
    /// Total digits of a double, currency or percent field.
    #[serde(default)]
    pub precision: u32,
    /// Fractional digits of a double, currency or percent field.
    #[serde(default)]
    pub scale: u32,
    /// Digits of an int field.
    #[serde(default)]
    pub digits: u32,
    #[serde(default = "yes")]
    pub nillable: bool,
    #[serde(default = "yes")]
    pub createable: bool,
    #[serde(default = "yes")]
    pub updateable: bool,
    /// A formula field: computed on read from `calculatedFormula`, never stored.
    #[serde(default)]
    pub calculated: bool,
    #[serde(default)]
    pub calculated_formula: Option<String>,
    #[serde(default)]
    pub defaulted_on_create: bool,
    /// A literal default applied on create when the field is not given.
    #[serde(default)]
    pub default_value: Option<serde_json::Value>,
    #[serde(default)]
    pub external_id: bool,
    #[serde(default)]
    pub id_lookup: bool,
    #[serde(default)]
    pub unique: bool,
    #[serde(default)]
    pub case_sensitive: bool,
    #[serde(default)]
    pub custom: bool,
    #[serde(default)]
    pub auto_number: bool,
    #[serde(default)]
    pub name_field: bool,
    #[serde(default)]
    pub reference_to: Vec<String>,
    /// `Account` for `AccountId`, `Account__r` for `Account__c`.
    #[serde(default)]
    pub relationship_name: Option<String>,
    #[serde(default)]
    pub picklist_values: Vec<PicklistValue>,
    #[serde(default)]
    pub restricted_picklist: bool,
    /// Set on the components of a compound field (`BillingCity` → `BillingAddress`).
    #[serde(default)]
    pub compound_field_name: Option<String>,
    #[serde(default)]
    pub extra_type_info: Option<String>,
    #[serde(default)]
    pub html_formatted: bool,
    #[serde(default = "yes")]
    pub filterable: bool,
    #[serde(default = "yes")]
    pub sortable: bool,
    #[serde(default = "yes")]
    pub groupable: bool,
    #[serde(default)]
    pub cascade_delete: bool,
    #[serde(default)]
    pub restricted_delete: bool,
    #[serde(default)]
    pub inline_help_text: Option<String>,
    /// Metadata, not describe: an auto-number's display format, e.g. `INV-{0000}`.
    #[serde(default)]
    pub display_format: Option<String>,
    /// Metadata, not describe: how a read-only compound name (`Contact.Name`) is composed
    /// from its components, in formula syntax. Describe shows such a field as an ordinary
    /// non-calculated string, as Salesforce does.
    #[serde(default)]
    pub derived_formula: Option<String>,
    /// Metadata, not describe: `BlankAsZero` (the default) or `BlankAsBlank`, how blank
    /// number fields read inside this field's formula.
    #[serde(default)]
    pub formula_treat_blanks_as: Option<String>,
    /// The compiled [`FieldDef::read_formula`], set when the object definition completes.
    #[serde(skip)]
    pub formula: Option<Arc<Formula>>,
}

impl FieldDef {
    /// Salesforce's rule for "required on create": not nillable, createable, and not
    /// filled in by the server.
    pub fn is_required_on_create(&self) -> bool {
        !self.nillable && self.createable && !self.defaulted_on_create
    }

    /// The formula this field is computed from on read, if any (calculated or derived).
    pub fn read_formula(&self) -> Option<&str> {
        if self.calculated {
            self.calculated_formula.as_deref()
        } else {
            self.derived_formula.as_deref()
        }
    }

    /// Whether values are computed on read rather than stored in the record.
    pub fn is_computed(&self) -> bool {
        self.read_formula().is_some() || self.field_type.is_compound()
    }

    /// Whether blank numbers read as zero in this field's formula.
    pub fn blanks_as_zero(&self) -> bool {
        self.formula_treat_blanks_as.as_deref() != Some("BlankAsBlank")
    }

    /// The `byteLength` describe reports: three bytes per character of text.
    pub fn byte_length(&self) -> u32 {
        if self.field_type.is_text() {
            self.length.saturating_mul(3)
        } else {
            0
        }
    }

    /// The picklist entry with this exact value, if any.
    pub fn picklist_value(&self, value: &str) -> Option<&PicklistValue> {
        self.picklist_values.iter().find(|p| p.value == value)
    }
}
