//! What the mirror holds of one object: which fields, in which columns, of which types.
//!
//! A plan is made from `describe` (refusing objects that cannot be mirrored), stored in
//! `sfpg.objects.mirrored_fields` so that a restart resumes without describing again, and
//! compared with a newer describe to evolve the table.

use serde::{Deserialize, Serialize};
use sfpg_control::mapping::{self, ColumnType, Mapping, SourceField};
use sfpg_control::mirror::Column;
use sfpg_salesforce::SObjectDescribe;

use crate::error::SyncError;

/// The API names of the fields every plan reads, whatever else it mirrors.
pub const ID_FIELD: &str = "Id";
pub const SYSTEM_MODSTAMP_FIELD: &str = "SystemModstamp";
pub const IS_DELETED_FIELD: &str = "IsDeleted";

/// One field the mirror holds.
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
    /// The mirror column this field is written to.
    pub fn as_column(&self) -> Column {
        Column {
            name: self.column.clone(),
            column_type: self.column_type,
        }
    }
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
    /// The plan for a freshly described object, or why it cannot be mirrored.
    pub fn from_describe(
        describe: &SObjectDescribe,
        schema: &str,
        table: &str,
    ) -> Result<Self, SyncError> {
        let object = describe.summary.name.clone();
        let refuse = |reason: &str| SyncError::NotMirrorable {
            object: object.clone(),
            reason: reason.to_owned(),
        };
        if !describe.summary.queryable {
            return Err(refuse(
                "its describe says it is not queryable, so SOQL cannot read it",
            ));
        }
        if !describe.summary.replicateable {
            return Err(refuse(
                "its describe says it is not replicateable, so Salesforce offers no way to follow its changes and deletes",
            ));
        }
        let mut fields = Vec::with_capacity(describe.fields.len());
        for field in &describe.fields {
            let source = SourceField {
                name: &field.name,
                field_type: field.field_type.as_str(),
                length: field.length,
                precision: field.precision,
                scale: field.scale,
            };
            if let Mapping::Column(column_type) = mapping::map_field(&source) {
                fields.push(MirroredField {
                    field: field.name.clone(),
                    column: mapping::column_name(&field.name),
                    column_type,
                    calculated: field.calculated,
                });
            }
        }
        let position = |fields: &[MirroredField], name: &str| {
            fields
                .iter()
                .position(|f| f.field.eq_ignore_ascii_case(name))
        };
        let Some(id) = position(&fields, ID_FIELD) else {
            return Err(refuse("it has no Id field"));
        };
        let id = fields.remove(id);
        let Some(stamp) = position(&fields, SYSTEM_MODSTAMP_FIELD) else {
            return Err(refuse(
                "it has no SystemModstamp field, which incremental sync follows",
            ));
        };
        let stamp = fields.remove(stamp);
        if stamp.column_type != ColumnType::TimestampTz {
            return Err(refuse("its SystemModstamp is not a datetime"));
        }
        fields.splice(0..0, [id, stamp]);
        Ok(Self {
            object,
            schema: schema.to_owned(),
            table: table.to_owned(),
            fields,
        })
    }

    /// A plan stored in `sfpg.objects.mirrored_fields`.
    pub fn from_stored(
        object: &str,
        schema: &str,
        table: &str,
        stored: serde_json::Value,
    ) -> Result<Self, SyncError> {
        let fields: Vec<MirroredField> = serde_json::from_value(stored).map_err(|e| {
            SyncError::Control(format!(
                "sfpg.objects.mirrored_fields of {object} does not parse: {e}"
            ))
        })?;
        let ok = fields.first().is_some_and(|f| f.field == ID_FIELD)
            && fields
                .get(1)
                .is_some_and(|f| f.field == SYSTEM_MODSTAMP_FIELD);
        if !ok {
            return Err(SyncError::Control(format!(
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

    /// The value for `sfpg.objects.mirrored_fields`.
    pub fn to_stored(&self) -> serde_json::Value {
        serde_json::to_value(&self.fields).unwrap_or_default()
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

/// What changed between the plan the mirror follows and a newer describe.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanChange {
    /// Fields whose column does not exist yet: `ADD COLUMN`, then fill it in.
    pub added: Vec<MirroredField>,
    /// Fields whose column exists with a narrower type that widens in place.
    pub widened: Vec<MirroredField>,
    /// Fields that left describe: their columns stay and are no longer written.
    pub removed: Vec<String>,
    /// Fields that came back after being removed: their columns hold stale values.
    pub returned: Vec<MirroredField>,
}

impl PlanChange {
    /// Whether the newer describe asks for anything.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.widened.is_empty()
            && self.removed.is_empty()
            && self.returned.is_empty()
    }
}

/// Compares a newer plan with the table as it is (`existing`: column name and PostgreSQL's
/// `format_type`) and the fields the mirror currently writes. A type change that cannot
/// widen in place is an error: the caller pauses the object.
pub fn compare(
    current: &ObjectPlan,
    removed_before: &[String],
    newer: &ObjectPlan,
    existing: &[(String, String)],
) -> Result<PlanChange, SyncError> {
    let mut change = PlanChange::default();
    for field in &newer.fields {
        let existing_type = existing
            .iter()
            .find(|(name, _)| *name == field.column)
            .map(|(_, t)| t);
        match existing_type {
            None => change.added.push(field.clone()),
            Some(pg_type) => {
                let from = parse_column_type(pg_type);
                if from != Some(field.column_type) {
                    match from {
                        Some(from) if mapping::can_widen(from, field.column_type) => {
                            change.widened.push(field.clone())
                        }
                        _ => {
                            return Err(SyncError::IncompatibleType {
                                object: newer.object.clone(),
                                field: field.field.clone(),
                                column: field.column.clone(),
                                from: pg_type.clone(),
                                to: field.column_type.to_string(),
                            });
                        }
                    }
                }
                if removed_before
                    .iter()
                    .any(|r| r.eq_ignore_ascii_case(&field.field))
                {
                    change.returned.push(field.clone());
                }
            }
        }
    }
    for field in &current.fields {
        let still_there = newer.field(&field.field).is_some();
        let already_removed = removed_before
            .iter()
            .any(|r| r.eq_ignore_ascii_case(&field.field));
        if !still_there && !already_removed {
            change.removed.push(field.field.clone());
        }
    }
    Ok(change)
}

/// Reads a column type back, as sfpg renders it (`varchar(80)`) or as PostgreSQL's
/// `format_type` does (`character varying(80)`).
pub fn parse_column_type(text: &str) -> Option<ColumnType> {
    let text = text.trim().to_ascii_lowercase();
    let (name, args) = match text.split_once('(') {
        Some((name, rest)) => (name.trim(), Some(rest.strip_suffix(')')?)),
        None => (text.as_str(), None),
    };
    let numbers = match args {
        Some(args) => Some(
            args.split(',')
                .map(|n| n.trim().parse::<u32>().ok())
                .collect::<Option<Vec<u32>>>()?,
        ),
        None => None,
    };
    Some(match (name, numbers.as_deref()) {
        ("varchar" | "character varying", Some([n])) => ColumnType::Varchar(*n),
        ("text", None) => ColumnType::Text,
        ("boolean", None) => ColumnType::Boolean,
        ("integer", None) => ColumnType::Integer,
        ("bigint", None) => ColumnType::BigInt,
        ("numeric", Some([precision, scale])) => ColumnType::Numeric {
            precision: *precision,
            scale: *scale,
        },
        ("numeric", Some([precision])) => ColumnType::Numeric {
            precision: *precision,
            scale: 0,
        },
        ("numeric", None) => ColumnType::NumericAny,
        ("date", None) => ColumnType::Date,
        ("timestamptz" | "timestamp with time zone", None) => ColumnType::TimestampTz,
        ("time" | "time without time zone", None) => ColumnType::Time,
        _ => return None,
    })
}

/// Serde for a [`ColumnType`] as its SQL text.
mod column_type_text {
    use serde::{Deserialize, Deserializer, Serializer};
    use sfpg_control::mapping::ColumnType;

    pub fn serialize<S: Serializer>(value: &ColumnType, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(value)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<ColumnType, D::Error> {
        let text = String::deserialize(deserializer)?;
        super::parse_column_type(&text).ok_or_else(|| {
            serde::de::Error::custom(format!("{text:?} is not a column type sfpg creates"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn describe(queryable: bool, replicateable: bool, extra: serde_json::Value) -> SObjectDescribe {
        let mut fields = vec![
            json!({"name": "Name", "type": "string", "length": 255}),
            json!({"name": "Id", "type": "id", "length": 18}),
            json!({"name": "IsDeleted", "type": "boolean"}),
            json!({"name": "Amount__c", "type": "currency", "precision": 16, "scale": 2}),
            json!({"name": "Total__c", "type": "double", "precision": 18, "scale": 2, "calculated": true}),
            json!({"name": "BillingAddress", "type": "address"}),
            json!({"name": "Logo__c", "type": "base64"}),
            json!({"name": "SystemModstamp", "type": "datetime"}),
        ];
        if let serde_json::Value::Array(more) = extra {
            fields.extend(more);
        }
        serde_json::from_value(json!({
            "name": "Invoice__c", "queryable": queryable, "replicateable": replicateable,
            "fields": fields,
        }))
        .unwrap()
    }

    #[test]
    fn plans_put_id_and_stamp_first_and_leave_out_what_the_mirror_cannot_hold() {
        let plan =
            ObjectPlan::from_describe(&describe(true, true, json!([])), "acme", "invoice__c")
                .unwrap();
        let names: Vec<&str> = plan.fields.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(
            names,
            [
                "Id",
                "SystemModstamp",
                "Name",
                "IsDeleted",
                "Amount__c",
                "Total__c"
            ]
        );
        assert_eq!(plan.fields[0].column, "sfid");
        assert_eq!(plan.fields[0].column_type, ColumnType::Varchar(18));
        assert!(plan.field("total__c").unwrap().calculated);
        assert_eq!(plan.calculated_fields().len(), 1);
        assert!(plan.has_is_deleted());
    }

    #[test]
    fn objects_that_cannot_be_followed_are_refused_with_the_reason() {
        let error =
            ObjectPlan::from_describe(&describe(true, false, json!([])), "acme", "invoice__c")
                .unwrap_err();
        assert!(
            error.to_string().contains("Invoice__c cannot be mirrored"),
            "{error}"
        );
        assert!(error.to_string().contains("not replicateable"), "{error}");
        let error =
            ObjectPlan::from_describe(&describe(false, true, json!([])), "acme", "invoice__c")
                .unwrap_err();
        assert!(error.to_string().contains("not queryable"), "{error}");
        let no_stamp: SObjectDescribe = serde_json::from_value(json!({
            "name": "Thing__c", "queryable": true, "replicateable": true,
            "fields": [{"name": "Id", "type": "id"}],
        }))
        .unwrap();
        let error = ObjectPlan::from_describe(&no_stamp, "acme", "thing__c").unwrap_err();
        assert!(error.to_string().contains("no SystemModstamp"), "{error}");
    }

    #[test]
    fn stored_plans_round_trip() {
        let plan =
            ObjectPlan::from_describe(&describe(true, true, json!([])), "acme", "invoice__c")
                .unwrap();
        let stored = plan.to_stored();
        assert_eq!(
            stored[2],
            json!({"field": "Name", "column": "name", "type": "varchar(255)"})
        );
        assert_eq!(stored[5]["calculated"], json!(true));
        let back = ObjectPlan::from_stored("Invoice__c", "acme", "invoice__c", stored).unwrap();
        assert_eq!(back, plan);
        assert!(ObjectPlan::from_stored("Invoice__c", "acme", "invoice__c", json!([])).is_err());
        assert!(
            ObjectPlan::from_stored("Invoice__c", "acme", "invoice__c", json!([{"field": "Id"}]))
                .is_err()
        );
    }

    #[test]
    fn column_types_read_back_in_both_spellings() {
        for (text, expected) in [
            ("varchar(18)", ColumnType::Varchar(18)),
            ("character varying(80)", ColumnType::Varchar(80)),
            ("text", ColumnType::Text),
            ("boolean", ColumnType::Boolean),
            ("integer", ColumnType::Integer),
            ("bigint", ColumnType::BigInt),
            (
                "numeric(16,2)",
                ColumnType::Numeric {
                    precision: 16,
                    scale: 2,
                },
            ),
            ("numeric", ColumnType::NumericAny),
            ("date", ColumnType::Date),
            ("timestamp with time zone", ColumnType::TimestampTz),
            ("timestamptz", ColumnType::TimestampTz),
            ("time without time zone", ColumnType::Time),
        ] {
            assert_eq!(parse_column_type(text), Some(expected), "{text}");
        }
        for bad in ["jsonb", "varchar(x)", "numeric(1,2,3)", "varchar(18"] {
            assert_eq!(parse_column_type(bad), None, "{bad}");
        }
    }

    #[test]
    fn comparing_plans_finds_added_widened_removed_and_incompatible_fields() {
        let current =
            ObjectPlan::from_describe(&describe(true, true, json!([])), "acme", "invoice__c")
                .unwrap();
        let existing: Vec<(String, String)> = [
            ("id", "bigint"),
            ("sfid", "character varying(18)"),
            ("systemmodstamp", "timestamp with time zone"),
            ("isdeleted", "boolean"),
            ("name", "character varying(80)"),
            ("amount__c", "numeric(16,2)"),
            ("total__c", "numeric(18,2)"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        let mut newer_describe = describe(true, true, json!([{"name": "Due__c", "type": "date"}]));
        newer_describe.fields.retain(|f| f.name != "Total__c");
        let newer = ObjectPlan::from_describe(&newer_describe, "acme", "invoice__c").unwrap();
        let change = compare(&current, &[], &newer, &existing).unwrap();
        assert_eq!(
            change
                .added
                .iter()
                .map(|f| f.field.as_str())
                .collect::<Vec<_>>(),
            ["Due__c"]
        );
        // The table has varchar(80); describe says 255: widen in place.
        assert_eq!(
            change
                .widened
                .iter()
                .map(|f| f.field.as_str())
                .collect::<Vec<_>>(),
            ["Name"]
        );
        assert_eq!(change.removed, ["Total__c"]);
        assert!(change.returned.is_empty());

        // Removed once, it is not reported again; back in describe, it is returned.
        let again = compare(&newer, &["Total__c".to_owned()], &current, &existing).unwrap();
        assert_eq!(again.removed, ["Due__c"]);
        assert_eq!(
            again
                .returned
                .iter()
                .map(|f| f.field.as_str())
                .collect::<Vec<_>>(),
            ["Total__c"]
        );

        let mut retyped = describe(true, true, json!([]));
        for field in &mut retyped.fields {
            if field.name == "Amount__c" {
                field.field_type = "boolean".to_owned().into();
            }
        }
        let retyped = ObjectPlan::from_describe(&retyped, "acme", "invoice__c").unwrap();
        let error = compare(&current, &[], &retyped, &existing).unwrap_err();
        assert!(matches!(error, SyncError::IncompatibleType { .. }));
        assert!(
            error
                .to_string()
                .contains("Invoice__c.Amount__c changed from numeric(16,2) to boolean"),
            "{error}"
        );
    }
}
