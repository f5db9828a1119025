//! The org's data model: object and field definitions in describe's own vocabulary, and
//! the compact values records are made of.
//!
//! Definitions are data (`emulator/objects/*.json`, one file per object, in the shape of
//! an sObject describe plus validation rules); records are rows of [`Value`]s indexed by
//! the field's position in [`ObjectDef::fields`].

mod bundled;
mod field;
mod formula;
mod object;
mod value;

pub use bundled::bundled_objects;
pub use field::{FieldDef, FieldType, PicklistValue};
pub use formula::{Formula, FormulaError, FormulaInputs};
pub use object::{DefinitionError, ObjectDef, SystemFields, ValidationRule};
pub use value::{
    JsonField, Record, Value, format_date, format_datetime, format_time, parse_date,
    parse_datetime, parse_time, value_to_json, write_csv_text,
};
