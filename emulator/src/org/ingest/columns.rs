//! A Bulk ingest job's header row against its object, and each data row turned into
//! the same decoded record a REST body becomes, so it is saved by the same code.
//!
//! The header names fields by API name (case ignored, as REST does), `Id`, or a parent
//! by one of its external-id or id-lookup fields, `RelationshipName.FieldName` ("Relationship
//! Fields in a Header Row"): `Account__r.External_Id__c`. A name the object does not have
//! fails the whole job with `InvalidBatch : Field name not found : X`, as Salesforce words
//! it (observed in a captured job info). Delete jobs read only the `Id` column.
//!
//! Cells follow "Valid CSV Record Rows": an empty cell leaves the field as it is (on an
//! insert, unset: defaults apply), `#N/A` sets it to null. Any other text is read as the
//! field's type, as REST reads a JSON string; text that is not of the type fails the row
//! with `INVALID_FIELD:Failed to deserialize field at col N. Due to, 'x' is not a valid
//! value for the type xsd:date` (N counting from 0, as a captured failed result shows).

use csv::StringRecord;
use serde_json::Value as Json;

use super::super::SaveError;
use super::super::input::{Assignment, Input, decode_value};
use crate::model::ObjectDef;

/// The cell that sets a field to null.
pub const NULL_CELL: &str = "#N/A";

/// What one header column names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Column {
    /// The record's `Id`.
    Id,
    /// A field, by position.
    Field(usize),
    /// A lookup set through one of the parent's external-id fields.
    Lookup { field: usize, ext_field: String },
    /// Not read (every column but `Id` of a delete job).
    Ignored,
}

/// A header row resolved against a job's object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Columns {
    columns: Vec<Column>,
}

impl Columns {
    /// Resolves `header` for `def`; with `id_only` (delete jobs) every column but `Id` is
    /// left unread. `Err` is the job's `errorMessage`.
    pub fn resolve(def: &ObjectDef, header: &StringRecord, id_only: bool) -> Result<Self, String> {
        let columns = header
            .iter()
            .map(|name| {
                if name.eq_ignore_ascii_case("Id") {
                    return Ok(Column::Id);
                }
                if id_only {
                    return Ok(Column::Ignored);
                }
                if let Some((index, _)) = def.field(name) {
                    return Ok(Column::Field(index));
                }
                name.split_once('.')
                    .and_then(|(relationship, ext_field)| {
                        let (field, _) = def.relationship(relationship)?;
                        Some(Column::Lookup {
                            field,
                            ext_field: ext_field.to_owned(),
                        })
                    })
                    .ok_or_else(|| format!("InvalidBatch : Field name not found : {name}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Columns { columns })
    }

    /// The record a data row describes: its `Id` (if the row gives one) and the fields it
    /// sets. Empty cells set nothing.
    pub fn input(&self, def: &ObjectDef, row: &StringRecord) -> Result<Input, SaveError> {
        let mut input = Input::default();
        for (col, (column, cell)) in self.columns.iter().zip(row.iter()).enumerate() {
            if cell.is_empty() {
                continue;
            }
            let null = cell == NULL_CELL;
            match column {
                Column::Ignored => {}
                Column::Id if null => {}
                Column::Id => input.id = Some(cell.to_owned()),
                Column::Field(field) => {
                    let value = if null {
                        crate::model::Value::Null
                    } else {
                        let f = &def.fields[*field];
                        decode_value(f, &Json::String(cell.to_owned()))
                            .map_err(|_| not_deserializable(def, *field, col, cell))?
                    };
                    input.assignments.push(Assignment::Set {
                        field: *field,
                        value,
                    });
                }
                Column::Lookup { field, .. } if null => input.assignments.push(Assignment::Set {
                    field: *field,
                    value: crate::model::Value::Null,
                }),
                Column::Lookup { field, ext_field } => {
                    input.assignments.push(Assignment::ByExternalId {
                        field: *field,
                        ext_field: ext_field.clone(),
                        value: cell.to_owned(),
                    });
                }
            }
        }
        Ok(input)
    }
}

fn not_deserializable(def: &ObjectDef, field: usize, col: usize, cell: &str) -> SaveError {
    let f = &def.fields[field];
    SaveError::new(
        "INVALID_FIELD",
        format!(
            "Failed to deserialize field at col {col}. Due to, '{cell}' is not a valid value \
             for the type {}",
            f.field_type.soap_type()
        ),
        vec![f.name.clone()],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Value, bundled_objects};

    fn def(name: &str) -> ObjectDef {
        let mut def = bundled_objects()
            .unwrap()
            .into_iter()
            .find(|o| o.name == name)
            .unwrap();
        def.complete().unwrap();
        def
    }

    fn header(names: &[&str]) -> StringRecord {
        StringRecord::from(names.to_vec())
    }

    fn set(def: &ObjectDef, name: &str, value: Value) -> Assignment {
        Assignment::Set {
            field: def.field(name).unwrap().0,
            value,
        }
    }

    #[test]
    fn cells_set_leave_or_null_fields() {
        let def = def("Invoice__c");
        let columns = Columns::resolve(
            &def,
            &header(&[
                "id",
                "Amount__c",
                "Notes__c",
                "Account__r.Id",
                "Due_Date__c",
            ]),
            false,
        )
        .unwrap();
        let row = StringRecord::from(vec!["a00000000000001", "12.5", "", "#N/A", "2024-03-01"]);
        let input = columns.input(&def, &row).unwrap();
        assert_eq!(input.id.as_deref(), Some("a00000000000001"));
        assert_eq!(
            input.assignments,
            vec![
                set(&def, "Amount__c", Value::Double(12.5)),
                set(&def, "Account__c", Value::Null),
                set(
                    &def,
                    "Due_Date__c",
                    Value::Date(chrono::NaiveDate::from_ymd_opt(2024, 3, 1).unwrap())
                ),
            ]
        );
        let row = StringRecord::from(vec!["", "#N/A", "#N/A", "001000000000001", ""]);
        let input = columns.input(&def, &row).unwrap();
        assert_eq!(input.id, None);
        assert_eq!(
            input.assignments,
            vec![
                set(&def, "Amount__c", Value::Null),
                set(&def, "Notes__c", Value::Null),
                Assignment::ByExternalId {
                    field: def.field("Account__c").unwrap().0,
                    ext_field: "Id".into(),
                    value: "001000000000001".into(),
                },
            ]
        );
    }

    #[test]
    fn unknown_columns_fail_the_job_but_not_a_delete() {
        let def = def("Invoice__c");
        assert_eq!(
            Columns::resolve(&def, &header(&["Amount__c", "Bogus__c"]), false).unwrap_err(),
            "InvalidBatch : Field name not found : Bogus__c"
        );
        assert_eq!(
            Columns::resolve(&def, &header(&["Nope__r.Name"]), false).unwrap_err(),
            "InvalidBatch : Field name not found : Nope__r.Name"
        );
        let columns = Columns::resolve(&def, &header(&["Id", "Bogus__c"]), true).unwrap();
        let input = columns
            .input(&def, &StringRecord::from(vec!["a00000000000001", "x"]))
            .unwrap();
        assert_eq!(input.id.as_deref(), Some("a00000000000001"));
        assert!(input.assignments.is_empty());
    }

    #[test]
    fn text_not_of_the_type_fails_the_row_with_its_column() {
        let def = def("Invoice__c");
        let columns = Columns::resolve(&def, &header(&["Notes__c", "Due_Date__c"]), false).unwrap();
        let error = columns
            .input(&def, &StringRecord::from(vec!["x", "2003-04-98"]))
            .unwrap_err();
        assert_eq!(error.status_code, "INVALID_FIELD");
        assert_eq!(
            error.message,
            "Failed to deserialize field at col 1. Due to, '2003-04-98' is not a valid value for \
             the type xsd:date"
        );
        assert_eq!(error.fields, vec!["Due_Date__c".to_owned()]);
    }
}
