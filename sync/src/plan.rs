//! Plans from describe: which of an object's fields the mirror holds (refusing objects
//! that cannot be mirrored), and what changed between the plan the mirror follows and a
//! newer describe, to evolve the table. The plan itself, and its stored form in
//! `sfpg.objects.mirrored_fields`, belong to the control schema ([`sfpg_control::plan`]).

use sfpg_control::mapping::{self, ColumnType, Mapping, SourceField, parse_column_type};
use sfpg_salesforce::SObjectDescribe;

pub use sfpg_control::plan::{
    ID_FIELD, IS_DELETED_FIELD, MirroredField, ObjectPlan, SYSTEM_MODSTAMP_FIELD,
};

use crate::error::SyncError;

/// The plan for a freshly described object, or why it cannot be mirrored.
pub fn from_describe(
    describe: &SObjectDescribe,
    schema: &str,
    table: &str,
) -> Result<ObjectPlan, SyncError> {
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
    Ok(ObjectPlan {
        object,
        schema: schema.to_owned(),
        table: table.to_owned(),
        fields,
    })
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

#[cfg(test)]
mod tests {
    use serde_json::json;
    use sfpg_control::plan::parse_mirrored_fields;

    use super::*;

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
        let plan = from_describe(&describe(true, true, json!([])), "acme", "invoice__c").unwrap();
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
            from_describe(&describe(true, false, json!([])), "acme", "invoice__c").unwrap_err();
        assert!(
            error.to_string().contains("Invoice__c cannot be mirrored"),
            "{error}"
        );
        assert!(error.to_string().contains("not replicateable"), "{error}");
        let error =
            from_describe(&describe(false, true, json!([])), "acme", "invoice__c").unwrap_err();
        assert!(error.to_string().contains("not queryable"), "{error}");
        let no_stamp: SObjectDescribe = serde_json::from_value(json!({
            "name": "Thing__c", "queryable": true, "replicateable": true,
            "fields": [{"name": "Id", "type": "id"}],
        }))
        .unwrap();
        let error = from_describe(&no_stamp, "acme", "thing__c").unwrap_err();
        assert!(error.to_string().contains("no SystemModstamp"), "{error}");
    }

    /// A plan made from describe survives its stored form (`sfpg.objects.mirrored_fields`).
    #[test]
    fn stored_plans_round_trip() {
        let plan = from_describe(&describe(true, true, json!([])), "acme", "invoice__c").unwrap();
        let stored = serde_json::to_value(&plan.fields).unwrap();
        assert_eq!(
            stored[2],
            json!({"field": "Name", "column": "name", "type": "varchar(255)"})
        );
        assert_eq!(stored[5]["calculated"], json!(true));
        let fields = parse_mirrored_fields("Invoice__c", stored).unwrap();
        let back = ObjectPlan::from_stored("Invoice__c", "acme", "invoice__c", fields).unwrap();
        assert_eq!(back, plan);
        assert!(ObjectPlan::from_stored("Invoice__c", "acme", "invoice__c", Vec::new()).is_err());
        assert!(parse_mirrored_fields("Invoice__c", json!([{"field": "Id"}])).is_err());
    }

    #[test]
    fn comparing_plans_finds_added_widened_removed_and_incompatible_fields() {
        let current =
            from_describe(&describe(true, true, json!([])), "acme", "invoice__c").unwrap();
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
        let newer = from_describe(&newer_describe, "acme", "invoice__c").unwrap();
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
        let retyped = from_describe(&retyped, "acme", "invoice__c").unwrap();
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
