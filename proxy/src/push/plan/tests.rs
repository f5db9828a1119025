//! Planning against a hand-written object: which fields go, which are refused, how
//! changes to one row collapse.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::json;
use sfpg_salesforce::{ClientCredentials, Config, FieldType, Rate, RateLimiter};

use super::*;
use crate::push::catalog::MirroredColumn;

fn org() -> Arc<OrgHandle> {
    let client = sfpg_salesforce::Client::new(
        Config::new("https://login.example.com").unwrap(),
        ClientCredentials::new("id", "secret"),
        RateLimiter::new(Rate::per_second(10).unwrap()),
    )
    .unwrap();
    Arc::new(OrgHandle {
        name: "acme".into(),
        schema: "salesforce".into(),
        client,
    })
}

fn column(column: &str, field: &str, createable: bool, updateable: bool) -> MirroredColumn {
    MirroredColumn {
        column: column.into(),
        field: field.into(),
        field_type: FieldType::default(),
        createable,
        updateable,
    }
}

fn objects() -> HashMap<(String, String), Arc<ObjectHandle>> {
    let invoice = ObjectHandle {
        object: "Invoice__c".into(),
        schema: "salesforce".into(),
        table: "invoice__c".into(),
        columns: vec![
            column("sfid", "Id", false, false),
            column("systemmodstamp", "SystemModstamp", false, false),
            column("name", "Name", true, true),
            column("amount__c", "Amount__c", true, true),
            column("total__c", "Total__c", false, false),
            column("external_id__c", "External_Id__c", true, false),
        ],
    };
    HashMap::from([(
        ("salesforce".to_owned(), "invoice__c".to_owned()),
        Arc::new(invoice),
    )])
}

fn change(
    seq: i64,
    operation: &str,
    row_id: i64,
    old: Option<serde_json::Value>,
    new: Option<serde_json::Value>,
    changed: Option<&[&str]>,
) -> PendingChange {
    serde_json::from_value(json!({
        "seq": seq,
        "schema_name": "salesforce",
        "table_name": "invoice__c",
        "table_oid": 16400,
        "operation": operation,
        "row_id": row_id,
        "old_row": old,
        "new_row": new,
        "changed": changed,
    }))
    .unwrap()
}

fn row(id: i64, sfid: Option<&str>, name: &str, amount: f64) -> serde_json::Value {
    json!({"id": id, "sfid": sfid, "systemmodstamp": null, "isdeleted": false,
           "name": name, "amount__c": amount, "total__c": null, "external_id__c": null,
           "my_note": "local"})
}

fn planned(changes: &[PendingChange]) -> Result<Option<Plan>, Refusal> {
    plan(changes, &org(), &objects())
}

#[test]
fn a_create_sends_createable_fields_with_values_and_nothing_local() {
    let plan = planned(&[change(
        1,
        "INSERT",
        7,
        None,
        Some(row(7, None, "INV-1", 10.5)),
        None,
    )])
    .unwrap()
    .unwrap();
    let create = &plan.records[0];
    assert_eq!(create.operation, Operation::Create);
    assert_eq!(create.row_id, 7);
    assert_eq!(
        serde_json::Value::Object(create.record.clone()),
        json!({"attributes": {"type": "Invoice__c"}, "Name": "INV-1", "Amount__c": 10.5})
    );
}

#[test]
fn an_update_sends_only_what_changed() {
    let old = row(3, Some("a01000000000001AAA"), "INV-3", 1.0);
    let mut new = old.clone();
    new["amount__c"] = json!(2.0);
    new["my_note"] = json!("changed locally");
    let plan = planned(&[change(
        1,
        "UPDATE",
        3,
        Some(old),
        Some(new),
        Some(&["amount__c", "my_note"]),
    )])
    .unwrap()
    .unwrap();
    let update = &plan.records[0];
    assert_eq!(update.sfid.as_deref(), Some("a01000000000001AAA"));
    assert_eq!(
        serde_json::Value::Object(update.record.clone()),
        json!({"attributes": {"type": "Invoice__c"}, "Id": "a01000000000001AAA", "Amount__c": 2.0})
    );
    assert_eq!(update.previous["Amount__c"], json!(1.0));
}

#[test]
fn only_local_changes_send_nothing() {
    let old = row(3, Some("a01000000000001AAA"), "INV-3", 1.0);
    let mut new = old.clone();
    new["my_note"] = json!("x");
    assert!(
        planned(&[change(
            1,
            "UPDATE",
            3,
            Some(old),
            Some(new),
            Some(&["my_note"])
        )])
        .unwrap()
        .is_none()
    );
}

#[test]
fn read_only_columns_are_refused_by_name() {
    let old = row(3, Some("a01000000000001AAA"), "INV-3", 1.0);
    for (column, value) in [
        ("total__c", json!(5)),
        ("sfid", json!("a01000000000002AAA")),
        ("systemmodstamp", json!("2024-01-01T00:00:00+00:00")),
        ("external_id__c", json!("E-1")),
    ] {
        let mut new = old.clone();
        new[column] = value;
        let refusal = planned(&[change(
            1,
            "UPDATE",
            3,
            Some(old.clone()),
            Some(new),
            Some(&[column]),
        )])
        .unwrap_err();
        assert_eq!(refusal.sqlstate, "428C9", "{column}");
        assert_eq!(refusal.column.as_deref(), Some(column));
    }
    let mut new = row(9, None, "INV-9", 1.0);
    new["total__c"] = json!(3);
    let refusal = planned(&[change(1, "INSERT", 9, None, Some(new), None)]).unwrap_err();
    assert_eq!(
        (refusal.sqlstate.as_str(), refusal.column.as_deref()),
        ("428C9", Some("total__c"))
    );
}

#[test]
fn changes_to_one_row_collapse() {
    let inserted = row(5, None, "A", 1.0);
    let mut updated = inserted.clone();
    updated["name"] = json!("B");
    let plan = planned(&[
        change(1, "INSERT", 5, None, Some(inserted.clone()), None),
        change(
            2,
            "UPDATE",
            5,
            Some(inserted.clone()),
            Some(updated.clone()),
            Some(&["name"]),
        ),
    ])
    .unwrap()
    .unwrap();
    assert_eq!(plan.records.len(), 1);
    assert_eq!(plan.records[0].record["Name"], json!("B"));
    // Created and deleted in one transaction: nothing.
    assert!(
        planned(&[
            change(1, "INSERT", 5, None, Some(inserted.clone()), None),
            change(2, "DELETE", 5, Some(updated), None, None),
        ])
        .unwrap()
        .is_none()
    );
    // Updated then deleted: a delete.
    let existing = row(6, Some("a01000000000006AAA"), "C", 1.0);
    let mut renamed = existing.clone();
    renamed["name"] = json!("D");
    let plan = planned(&[
        change(
            1,
            "UPDATE",
            6,
            Some(existing),
            Some(renamed.clone()),
            Some(&["name"]),
        ),
        change(2, "DELETE", 6, Some(renamed), None, None),
    ])
    .unwrap()
    .unwrap();
    assert_eq!(plan.records.len(), 1);
    assert_eq!(plan.records[0].operation, Operation::Delete);
    assert_eq!(plan.records[0].sfid.as_deref(), Some("a01000000000006AAA"));
}

#[test]
fn creates_go_before_updates_before_deletes() {
    let a = row(1, Some("a01000000000001AAA"), "A", 1.0);
    let mut a2 = a.clone();
    a2["name"] = json!("A2");
    let plan = planned(&[
        change(
            1,
            "DELETE",
            2,
            Some(row(2, Some("a01000000000002AAA"), "B", 1.0)),
            None,
            None,
        ),
        change(2, "UPDATE", 1, Some(a), Some(a2), Some(&["name"])),
        change(3, "INSERT", 3, None, Some(row(3, None, "C", 1.0)), None),
    ])
    .unwrap()
    .unwrap();
    let operations: Vec<Operation> = plan.records.iter().map(|r| r.operation).collect();
    assert_eq!(
        operations,
        vec![Operation::Create, Operation::Update, Operation::Delete]
    );
}

#[test]
fn more_than_one_atomic_push_is_refused_with_a_hint() {
    let changes: Vec<PendingChange> = (0..=MAX_ATOMIC as i64)
        .map(|i| change(i, "INSERT", i, None, Some(row(i, None, "X", 1.0)), None))
        .collect();
    let refusal = planned(&changes).unwrap_err();
    assert_eq!(refusal.sqlstate, "54000");
    assert!(refusal.hint.as_deref().unwrap().contains("200"));
}
