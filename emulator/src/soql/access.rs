//! What the engine needs from the org: object definitions by name when a query is
//! bound, and records as a reader sees them when it runs.
//!
//! The org implements both traits. Keeping them here, not in the org, lets the engine be
//! tested over a small in-memory catalog and keeps the store free to lay records out as
//! it likes.

use std::borrow::Cow;

use crate::model::{ObjectDef, Record, Value, value_to_json};

/// Object definitions, looked up while a query is bound.
pub trait Catalog {
    /// The object with this API name, ignoring case, if it exists.
    fn object(&self, name: &str) -> Option<&ObjectDef>;
}

/// Records as the API shows them, looked up while a query runs.
pub trait RecordAccess {
    /// Field `field` of `record` (an `object` record) as a reader sees it: the stored
    /// value, or the computed one for formula fields.
    fn value<'a>(
        &'a self,
        object: &'a ObjectDef,
        record: &'a Record,
        field: usize,
    ) -> Cow<'a, Value>;

    /// The record that reference field `reference` of `record` points to, with its
    /// object (for polymorphic lookups, the object the Id belongs to). `None` when the
    /// lookup is empty or its target is gone.
    fn parent<'a>(
        &'a self,
        object: &'a ObjectDef,
        record: &'a Record,
        reference: usize,
    ) -> Option<(&'a ObjectDef, &'a Record)>;

    /// Field `field` as it appears in a JSON record. The default renders
    /// [`RecordAccess::value`]; the org overrides it for compound fields (addresses,
    /// locations), which are JSON objects assembled from their components.
    fn field_json(&self, object: &ObjectDef, record: &Record, field: usize) -> serde_json::Value {
        match object.fields.get(field) {
            Some(def) => value_to_json(&self.value(object, record, field), def),
            None => serde_json::Value::Null,
        }
    }
}
