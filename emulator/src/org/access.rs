//! Records as readers see them: formula fields computed (through lookups too), compound
//! addresses assembled from their components, and records rendered as the REST record
//! endpoints return them. The SOQL engine reads the org through the same traits.

use std::borrow::Cow;
use std::cell::Cell;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value as Json, json};

use super::Org;
use crate::ids::Id;
use crate::model::{FieldType, FormulaInputs, ObjectDef, Record, Value, value_to_json};
use crate::soql::{Catalog, RecordAccess, attributes};

/// How deep formulas may reference other formulas before the chain is cut (a definition
/// with a cycle reads as null instead of overflowing the stack).
const MAX_FORMULA_DEPTH: u8 = 8;

impl Catalog for Org {
    fn object(&self, name: &str) -> Option<&ObjectDef> {
        self.store(name).map(|s| &s.def)
    }
}

impl RecordAccess for Org {
    fn value<'a>(
        &'a self,
        object: &'a ObjectDef,
        record: &'a Record,
        field: usize,
    ) -> Cow<'a, Value> {
        self.read_value(object, record, field, 0)
    }

    fn parent<'a>(
        &'a self,
        object: &'a ObjectDef,
        record: &'a Record,
        reference: usize,
    ) -> Option<(&'a ObjectDef, &'a Record)> {
        let _ = object;
        let text = record.get(reference).as_str()?;
        let id = Id::from_canonical(text).or_else(|| Id::parse(text).ok())?;
        let store = self.store_for_id(&id)?;
        let parent = store.get(&id)?;
        (!store.is_deleted(parent)).then_some((&store.def, parent))
    }

    fn field_json(&self, object: &ObjectDef, record: &Record, field: usize) -> Json {
        let Some(def) = object.fields.get(field) else {
            return Json::Null;
        };
        if def.field_type.is_compound() {
            return compound_json(self, object, record, field);
        }
        value_to_json(&self.read_value(object, record, field, 0), def)
    }
}

impl Org {
    fn read_value<'a>(
        &'a self,
        object: &'a ObjectDef,
        record: &'a Record,
        field: usize,
        depth: u8,
    ) -> Cow<'a, Value> {
        let Some(def) = object.fields.get(field) else {
            return Cow::Owned(Value::Null);
        };
        match &def.formula {
            Some(formula) if depth < MAX_FORMULA_DEPTH => {
                let view = RecordView {
                    org: self,
                    object,
                    record,
                    depth: Cell::new(depth + 1),
                };
                Cow::Owned(formula.evaluate(&view, def))
            }
            Some(_) => Cow::Owned(Value::Null),
            None => Cow::Borrowed(record.get(field)),
        }
    }

    /// One record as `GET /sobjects/X/id` returns it: `attributes`, then `fields` (every
    /// field, in definition order, when `None`).
    pub(crate) fn record_json(
        &self,
        object: &ObjectDef,
        record: &Record,
        fields: Option<&[usize]>,
        api_version: &str,
    ) -> Json {
        let mut out = Map::new();
        out.insert(
            "attributes".to_owned(),
            attributes(object, record, api_version),
        );
        let all: Vec<usize>;
        let fields = match fields {
            Some(f) => f,
            None => {
                all = (0..object.fields.len()).collect();
                &all
            }
        };
        for &i in fields {
            out.insert(
                object.fields[i].name.clone(),
                self.field_json(object, record, i),
            );
        }
        Json::Object(out)
    }

    /// Evaluates `object`'s validation rules against `record` (as it would be saved) and
    /// returns the first that fires.
    pub(crate) fn failing_rule<'a>(
        &self,
        object: &'a ObjectDef,
        record: &Record,
    ) -> Option<&'a crate::model::ValidationRule> {
        let view = RecordView {
            org: self,
            object,
            record,
            depth: Cell::new(0),
        };
        object
            .validation_rules
            .iter()
            .filter(|r| r.active)
            .find(|r| r.condition.as_ref().is_some_and(|c| c.is_true(&view)))
    }
}

/// One record seen by a formula.
struct RecordView<'a> {
    org: &'a Org,
    object: &'a ObjectDef,
    record: &'a Record,
    depth: Cell<u8>,
}

impl FormulaInputs for RecordView<'_> {
    fn field(&self, index: usize) -> Value {
        self.org
            .read_value(self.object, self.record, index, self.depth.get())
            .into_owned()
    }

    fn parent_field(&self, reference: usize, field: &str) -> Value {
        let Some((parent_def, parent)) = self.org.parent(self.object, self.record, reference)
        else {
            return Value::Null;
        };
        match parent_def.field(field) {
            Some((i, _)) => self
                .org
                .read_value(parent_def, parent, i, self.depth.get())
                .into_owned(),
            None => Value::Null,
        }
    }

    fn now(&self) -> DateTime<Utc> {
        self.org.now()
    }
}

/// An address or location as the API shows it: an object keyed by component
/// (`street`, `city`, ...), or `null` when every component is empty.
fn compound_json(org: &Org, object: &ObjectDef, record: &Record, field: usize) -> Json {
    let def = &object.fields[field];
    let prefix = def
        .name
        .strip_suffix("Address")
        .or_else(|| def.name.strip_suffix("__c"))
        .unwrap_or(&def.name);
    let mut out = Map::new();
    let mut any = false;
    let keys: &[&str] = match def.field_type {
        FieldType::Location => &["latitude", "longitude"],
        _ => &[
            "city",
            "country",
            "geocodeAccuracy",
            "latitude",
            "longitude",
            "postalCode",
            "state",
            "street",
        ],
    };
    for key in keys {
        let component = object.fields.iter().position(|f| {
            f.compound_field_name.as_deref() == Some(def.name.as_str())
                && component_key(&f.name, prefix).eq_ignore_ascii_case(key)
        });
        let value = match component {
            Some(i) => {
                let v = org.field_json(object, record, i);
                any |= !v.is_null();
                v
            }
            None => Json::Null,
        };
        out.insert((*key).to_owned(), value);
    }
    if any { Json::Object(out) } else { json!(null) }
}

/// `BillingPostalCode` with prefix `Billing` → `PostalCode`; location components end in
/// `__Latitude__s`.
fn component_key<'n>(name: &'n str, prefix: &str) -> &'n str {
    let rest = name.strip_prefix(prefix).unwrap_or(name);
    rest.trim_start_matches("__").trim_end_matches("__s")
}
