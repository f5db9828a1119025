//! The Avro schemas of the Pub/Sub API's events, generated from the object's describe as
//! Salesforce shapes them: a record named after the event (`AccountChangeEvent`,
//! `Order_Event__e`) in namespace `com.sforce.eventbus`; for change events the
//! `ChangeEventHeader` record first, then every field the change event carries (the
//! fields CometD would send: stored fields, not `Id`, `IsDeleted` or `SystemModstamp`),
//! each `["null", T]` with `"default": null` and a `doc` naming its Salesforce type;
//! compound fields (addresses, a contact's name) as nested records at the position of
//! their first component.
//!
//! Types: text-like fields are `string`, booleans `boolean`, integers `int`, doubles,
//! currencies and percents `double`; datetimes are `long` epoch milliseconds and dates
//! `long` epoch milliseconds at midnight UTC ("Date fields are in Epoch time", Salesforce's
//! comparison of the two streaming APIs), times `long` milliseconds after midnight. The
//! `doc` (`Data:DateTime`, `Data:DateOnly`, `Data:TimeOnly`, `CreatedDate:DateTime`, …)
//! tells a client which is which.
//!
//! The schema id is a fingerprint of the schema JSON: stable while the describe is, new
//! when it changes.

use std::collections::HashMap;

use serde_json::{Value as Json, json};

use crate::model::{FieldType, ObjectDef};
use crate::org::{component_key, published};

/// The namespace of every Salesforce event schema.
pub const NAMESPACE: &str = "com.sforce.eventbus";

/// `ChangeEventHeader.changeType`'s symbols.
const CHANGE_TYPES: [&str; 9] = [
    "CREATE",
    "UPDATE",
    "DELETE",
    "UNDELETE",
    "GAP_CREATE",
    "GAP_UPDATE",
    "GAP_DELETE",
    "GAP_UNDELETE",
    "GAP_OVERFLOW",
];

/// The index of a `changeType` symbol in the schema's enum.
pub fn change_type_index(change_type: &str) -> u32 {
    CHANGE_TYPES
        .iter()
        .position(|t| *t == change_type)
        .map_or(0, |i| i as u32)
}

/// The standard fields of a platform event object.
const PLATFORM_STANDARD: [&str; 5] = ["Id", "ReplayId", "CreatedDate", "CreatedById", "EventUuid"];

/// One top-level field of an event schema.
#[derive(Debug, Clone, PartialEq)]
pub enum Slot {
    /// `ChangeEventHeader` (position 0 of a change event).
    Header,
    /// A platform event's `CreatedDate` (`long`, not nullable).
    CreatedDate,
    /// A platform event's `CreatedById` (`string`, not nullable).
    CreatedById,
    /// A plain field: its name and type.
    Field { name: String, field_type: FieldType },
    /// A compound field: its name and its components (the key inside the compound, and
    /// the type).
    Compound {
        name: String,
        components: Vec<(String, FieldType)>,
    },
}

impl Slot {
    /// The field's name in the schema.
    pub fn name(&self) -> &str {
        match self {
            Slot::Header => "ChangeEventHeader",
            Slot::CreatedDate => "CreatedDate",
            Slot::CreatedById => "CreatedById",
            Slot::Field { name, .. } | Slot::Compound { name, .. } => name,
        }
    }
}

/// The top-level fields of an event schema, in schema order: what the bitmaps' bit
/// positions count.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Layout {
    pub slots: Vec<Slot>,
}

impl Layout {
    /// The position of the top-level field `name`.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.slots.iter().position(|s| s.name() == name)
    }

    /// A change event's layout: the header, then the fields its body may carry.
    pub fn change_event(def: &ObjectDef) -> Layout {
        let mut slots = vec![Slot::Header];
        slots.extend(body_slots(def));
        Layout { slots }
    }

    /// A platform event's layout: `CreatedDate`, `CreatedById`, then the event's own
    /// fields (not its `Id`, `ReplayId` or `EventUuid`, which travel beside the payload).
    pub fn platform_event(def: &ObjectDef) -> Layout {
        let mut slots = vec![Slot::CreatedDate, Slot::CreatedById];
        slots.extend(
            def.fields
                .iter()
                .filter(|f| !f.is_computed() && !PLATFORM_STANDARD.contains(&f.name.as_str()))
                .map(|f| Slot::Field {
                    name: f.name.clone(),
                    field_type: f.field_type,
                }),
        );
        Layout { slots }
    }
}

/// The fields an event body carries, compounds folded into one slot at their first
/// component.
fn body_slots(def: &ObjectDef) -> Vec<Slot> {
    let mut slots: Vec<Slot> = Vec::new();
    for (i, field) in def.fields.iter().enumerate() {
        if !published(def, i) {
            continue;
        }
        match &field.compound_field_name {
            Some(compound) => {
                if slots.iter().any(|s| s.name() == compound) {
                    continue;
                }
                let components = def
                    .fields
                    .iter()
                    .enumerate()
                    .filter(|(j, f)| {
                        published(def, *j) && f.compound_field_name.as_ref() == Some(compound)
                    })
                    .map(|(_, f)| (component_key(&f.name, compound), f.field_type))
                    .collect();
                slots.push(Slot::Compound {
                    name: compound.clone(),
                    components,
                });
            }
            None => slots.push(Slot::Field {
                name: field.name.clone(),
                field_type: field.field_type,
            }),
        }
    }
    slots
}

/// The Avro type of a field's values.
pub fn avro_type(field_type: FieldType) -> &'static str {
    match field_type {
        FieldType::Boolean => "boolean",
        FieldType::Int => "int",
        FieldType::Double | FieldType::Currency | FieldType::Percent => "double",
        FieldType::Date | FieldType::Datetime | FieldType::Time => "long",
        _ => "string",
    }
}

/// The `doc` of a field: `Data:<Salesforce type>`, with the system fields' own forms.
fn doc(name: &str, field_type: FieldType) -> String {
    match name {
        "CreatedDate" => return "CreatedDate:DateTime".to_owned(),
        "LastModifiedDate" => return "LastModifiedDate:DateTime".to_owned(),
        "CreatedById" => return "CreatedBy:EntityId".to_owned(),
        "LastModifiedById" => return "LastModifiedBy:EntityId".to_owned(),
        _ => {}
    }
    let kind = match field_type {
        FieldType::Id | FieldType::Reference => "EntityId",
        FieldType::String | FieldType::Combobox | FieldType::Encryptedstring => "Text",
        FieldType::Textarea => "TextArea",
        FieldType::Picklist => "Picklist",
        FieldType::Multipicklist => "MultiPicklist",
        FieldType::Email => "Email",
        FieldType::Phone => "Phone",
        FieldType::Url => "Url",
        FieldType::Boolean => "Switch",
        FieldType::Int => "Integer",
        FieldType::Double => "Double",
        FieldType::Currency => "Currency",
        FieldType::Percent => "Percent",
        FieldType::Date => "DateOnly",
        FieldType::Datetime => "DateTime",
        FieldType::Time => "TimeOnly",
        FieldType::Base64 => "Base64",
        FieldType::Address => "Address",
        FieldType::Location => "Location",
        FieldType::AnyType => "AnyType",
    };
    format!("Data:{kind}")
}

fn nullable(name: &str, avro: Json, doc: &str) -> Json {
    json!({"name": name, "type": ["null", avro], "doc": doc, "default": null})
}

fn header_record() -> Json {
    let strings = json!({"type": "array", "items": "string"});
    json!({
        "type": "record",
        "name": "ChangeEventHeader",
        "fields": [
            {"name": "entityName", "type": "string"},
            {"name": "recordIds", "type": strings},
            {"name": "changeType", "type": {"type": "enum", "name": "ChangeType", "symbols": CHANGE_TYPES}},
            {"name": "changeOrigin", "type": "string"},
            {"name": "transactionKey", "type": "string"},
            {"name": "sequenceNumber", "type": "int"},
            {"name": "commitTimestamp", "type": "long"},
            {"name": "commitNumber", "type": "long"},
            {"name": "commitUser", "type": "string"},
            {"name": "nulledFields", "type": strings},
            {"name": "diffFields", "type": strings},
            {"name": "changedFields", "type": strings},
        ],
    })
}

/// The record type of a compound: `Address` for every address (defined once, then named),
/// otherwise the compound's own kind; a second compound of the same name but another
/// shape gets its field's name.
fn compound_type(
    name: &str,
    components: &[(String, FieldType)],
    def: &ObjectDef,
    defined: &mut HashMap<String, Vec<(String, FieldType)>>,
) -> Json {
    let kind = def
        .field(name)
        .map(|(_, f)| f.field_type)
        .filter(|t| t.is_compound());
    let mut record_name = match kind {
        Some(FieldType::Address) => "Address".to_owned(),
        Some(FieldType::Location) => "Location".to_owned(),
        _ => name.to_owned(),
    };
    match defined.get(&record_name) {
        Some(shape) if shape == components => return Json::String(record_name),
        Some(_) => record_name = format!("{name}Compound"),
        None => {}
    }
    defined.insert(record_name.clone(), components.to_vec());
    let fields: Vec<Json> = components
        .iter()
        .map(|(key, t)| nullable(key, json!(avro_type(*t)), &doc(key, *t)))
        .collect();
    json!({"type": "record", "name": record_name, "fields": fields})
}

/// The schema JSON of an event named `event_name` with `layout`, from `def`.
pub fn schema_json(event_name: &str, layout: &Layout, def: &ObjectDef) -> Json {
    let mut defined = HashMap::new();
    let fields: Vec<Json> = layout
        .slots
        .iter()
        .map(|slot| match slot {
            Slot::Header => json!({
                "name": "ChangeEventHeader",
                "type": header_record(),
                "doc": "Data:ComplexValueType",
            }),
            Slot::CreatedDate => {
                json!({"name": "CreatedDate", "type": "long", "doc": "CreatedDate:DateTime"})
            }
            Slot::CreatedById => {
                json!({"name": "CreatedById", "type": "string", "doc": "CreatedBy:EntityId"})
            }
            Slot::Field { name, field_type } => {
                nullable(name, json!(avro_type(*field_type)), &doc(name, *field_type))
            }
            Slot::Compound { name, components } => {
                let record = compound_type(name, components, def, &mut defined);
                let kind = def
                    .field(name)
                    .map_or(FieldType::AnyType, |(_, f)| f.field_type);
                let doc = if kind.is_compound() {
                    doc(name, kind)
                } else {
                    "Data:PersonName".to_owned()
                };
                nullable(name, record, &doc)
            }
        })
        .collect();
    json!({
        "type": "record",
        "name": event_name,
        "namespace": NAMESPACE,
        "fields": fields,
    })
}

/// The schema id of a schema JSON: 22 URL-safe characters, as Salesforce's look.
pub fn schema_id(schema_json: &str) -> String {
    use base64::Engine;
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(schema_json.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..16])
}
