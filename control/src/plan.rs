//! What the mirror holds of one object: which fields, in which columns, of which types.
//! Stored in `sfpg.objects.mirrored_fields` as a JSON array of [`MirroredField`], which the
//! sync writes when it describes an object and the proxy reads to know what a column
//! mirrors: both through this one serde type, so that renaming a key is a compile error
//! rather than a proxy that silently finds no fields.

use serde::{Deserialize, Serialize};

use crate::error::ControlError;
use crate::mapping::{ColumnType, column_type_text};
use crate::mirror::Column;

/// The API names of the fields every plan reads, whatever else it mirrors.
pub const ID_FIELD: &str = "Id";
pub const SYSTEM_MODSTAMP_FIELD: &str = "SystemModstamp";
pub const IS_DELETED_FIELD: &str = "IsDeleted";

/// One field the mirror holds: an element of `sfpg.objects.mirrored_fields`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirroredField {
    /// The field's API name, as describe spells it (`BillingCity`).
    pub field: String,
    /// Its column (`billingcity`).
    pub column: String,
    /// The column's type, as sfpg renders it (`varchar(40)`).
    #[serde(rename = "type", with = "column_type_text")]
    pub column_type: ColumnType,
    /// A formula or roll-up: computed by Salesforce at read time.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub calculated: bool,
}

impl MirroredField {
    /// A field that is not calculated, in the column the mapping gives it
    /// ([`crate::mapping::column_name`]).
    pub fn new(field: &str, column_type: ColumnType) -> Self {
        Self {
            field: field.to_owned(),
            column: crate::mapping::column_name(field),
            column_type,
            calculated: false,
        }
    }

    /// The mirror column this field is written to.
    pub fn as_column(&self) -> Column {
        Column {
            name: self.column.clone(),
            column_type: self.column_type,
        }
    }
}

/// Parses the JSON of `sfpg.objects.mirrored_fields` of `object`.
pub fn parse_mirrored_fields(
    object: &str,
    json: serde_json::Value,
) -> Result<Vec<MirroredField>, ControlError> {
    serde_json::from_value(json).map_err(|source| ControlError::Unparsable {
        what: format!("sfpg.objects.mirrored_fields of {object}"),
        source,
    })
}

/// An object's mirror: its table and the fields written to it, `Id` first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectPlan {
    /// The object's API name (`Account`).
    pub object: String,
    /// The org's schema.
    pub schema: String,
    /// The object's table.
    pub table: String,
    /// The mirrored fields, `Id` first, then `SystemModstamp`, then the rest in describe's
    /// order.
    pub fields: Vec<MirroredField>,
}

impl ObjectPlan {
    /// The plan of the fields stored in `sfpg.objects.mirrored_fields`, which must start
    /// with `Id` and `SystemModstamp`, as every plan the sync stores does.
    pub fn from_stored(
        object: &str,
        schema: &str,
        table: &str,
        fields: Vec<MirroredField>,
    ) -> Result<Self, ControlError> {
        let ok = fields.first().is_some_and(|f| f.field == ID_FIELD)
            && fields
                .get(1)
                .is_some_and(|f| f.field == SYSTEM_MODSTAMP_FIELD);
        if !ok {
            return Err(ControlError::Corrupt(format!(
                "sfpg.objects.mirrored_fields of {object} does not start with Id and SystemModstamp"
            )));
        }
        Ok(Self {
            object: object.to_owned(),
            schema: schema.to_owned(),
            table: table.to_owned(),
            fields,
        })
    }

    /// The mirror's columns, for `CREATE TABLE`.
    pub fn columns(&self) -> Vec<Column> {
        self.fields.iter().map(MirroredField::as_column).collect()
    }

    /// The field named `name` (any case).
    pub fn field(&self, name: &str) -> Option<&MirroredField> {
        self.fields
            .iter()
            .find(|f| f.field.eq_ignore_ascii_case(name))
    }

    /// Whether the object has `IsDeleted` (`User`, for one, has not).
    pub fn has_is_deleted(&self) -> bool {
        self.field(IS_DELETED_FIELD).is_some()
    }

    /// The formula and roll-up fields.
    pub fn calculated_fields(&self) -> Vec<&MirroredField> {
        self.fields.iter().filter(|f| f.calculated).collect()
    }

    /// The plan without the named fields (removed from describe, so no longer read).
    pub fn without(&self, fields: &[String]) -> Self {
        let mut plan = self.clone();
        plan.fields.retain(|f| {
            f.field == ID_FIELD || !fields.iter().any(|r| r.eq_ignore_ascii_case(&f.field))
        });
        plan
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn field(name: &str, column_type: ColumnType, calculated: bool) -> MirroredField {
        MirroredField {
            calculated,
            ..MirroredField::new(name, column_type)
        }
    }

    /// The stored form is the one the proxy and the sync both read: its keys, and a
    /// round trip.
    #[test]
    fn mirrored_fields_are_stored_as_a_json_array() {
        let fields = vec![
            field("Id", ColumnType::Varchar(18), false),
            field("SystemModstamp", ColumnType::TimestampTz, false),
            field("Name", ColumnType::Varchar(255), false),
            field(
                "Total__c",
                ColumnType::Numeric {
                    precision: 18,
                    scale: 2,
                },
                true,
            ),
        ];
        let stored = serde_json::to_value(&fields).unwrap();
        assert_eq!(
            stored[0],
            json!({"field": "Id", "column": "sfid", "type": "varchar(18)"})
        );
        assert_eq!(
            stored[3],
            json!({"field": "Total__c", "column": "total__c", "type": "numeric(18,2)", "calculated": true})
        );
        let back = parse_mirrored_fields("Invoice__c", stored).unwrap();
        assert_eq!(back, fields);
        let plan = ObjectPlan::from_stored("Invoice__c", "acme", "invoice__c", back).unwrap();
        assert_eq!(plan.calculated_fields().len(), 1);
        assert!(!plan.has_is_deleted());
        assert_eq!(plan.field("name").map(|f| f.column.as_str()), Some("name"));
        assert_eq!(plan.without(&["NAME".to_owned()]).fields.len(), 3);
    }

    #[test]
    fn a_stored_plan_must_start_with_id_and_stamp_and_parse() {
        assert!(ObjectPlan::from_stored("A", "s", "a", Vec::new()).is_err());
        let only_id = vec![field("Id", ColumnType::Varchar(18), false)];
        assert!(ObjectPlan::from_stored("A", "s", "a", only_id).is_err());
        let error = parse_mirrored_fields("A", json!([{"field": "Id"}])).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("mirrored_fields of A does not parse"),
            "{error}"
        );
        let error = parse_mirrored_fields(
            "A",
            json!([{"field": "Id", "column": "sfid", "type": "jsonb"}]),
        )
        .unwrap_err();
        assert!(error.to_string().contains("\"jsonb\""), "{error}");
    }
}
