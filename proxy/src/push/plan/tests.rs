//! Planning against a hand-written object: which fields go, which are refused, how
//! changes to one row collapse.

mod compacted;

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::push::catalog::{MirroredColumn, fixtures};

fn org() -> Arc<OrgHandle> {
    fixtures::acme()
}

fn column(column: &str, field: &str, createable: bool, updateable: bool) -> MirroredColumn {
    fixtures::text_column(column, field, createable, updateable)
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
            column("account__c", "Account__c", true, true),
            column("parent__c", "Parent__c", true, true),
        ],
    };
    let account = ObjectHandle {
        object: "Account".into(),
        schema: "salesforce".into(),
        table: "account".into(),
        columns: vec![
            column("sfid", "Id", false, false),
            column("name", "Name", true, true),
        ],
    };
    HashMap::from([
        (
            ("salesforce".to_owned(), "invoice__c".to_owned()),
            Arc::new(invoice),
        ),
        (
            ("salesforce".to_owned(), "account".to_owned()),
            Arc::new(account),
        ),
    ])
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
        serde_json::Value::Object(plan.record(create).unwrap()),
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
        serde_json::Value::Object(plan.record(update).unwrap()),
        json!({"attributes": {"type": "Invoice__c"}, "Id": "a01000000000001AAA", "Amount__c": 2.0})
    );
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
        assert_eq!(refusal.sqlstate.code(), "428C9", "{column}");
        assert_eq!(refusal.column.as_deref(), Some(column));
    }
    let mut new = row(9, None, "INV-9", 1.0);
    new["total__c"] = json!(3);
    let refusal = planned(&[change(1, "INSERT", 9, None, Some(new), None)]).unwrap_err();
    assert_eq!(
        (refusal.sqlstate.code(), refusal.column.as_deref()),
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
    assert_eq!(plan.record(&plan.records[0]).unwrap()["Name"], json!("B"));
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
    let creates = |n: usize| -> Vec<PendingChange> {
        (0..n as i64)
            .map(|i| change(i, "INSERT", i, None, Some(row(i, None, "X", 1.0)), None))
            .collect()
    };
    // Five calls of 200 fit in one Composite request; a sixth does not.
    let plan = planned(&creates(MAX_COLLECTIONS * MAX_RECORDS))
        .unwrap()
        .unwrap();
    assert_eq!(plan.calls().len(), MAX_COLLECTIONS);
    assert!(plan.calls().iter().all(|(_, c)| c.len() == MAX_RECORDS));
    assert!(plan.fits_one_request());
    let plan = planned(&creates(MAX_COLLECTIONS * MAX_RECORDS + 1))
        .unwrap()
        .unwrap();
    assert!(!plan.fits_one_request());
    let refusal = plan.too_large(false);
    assert_eq!(refusal.sqlstate.code(), "54000");
    let hint = refusal.hint.as_deref().unwrap();
    assert!(hint.contains("200"), "{hint}");
    assert!(hint.contains("sfpg.bulk_writes = auto"), "{hint}");
    // With platform events in it, bulk_writes cannot help: the hint says what can.
    let refusal = plan.too_large(true);
    assert_eq!(refusal.sqlstate.code(), "54000");
    assert!(
        refusal.message.contains("(1 level of creates"),
        "{}",
        refusal.message
    );
    let hint = refusal.hint.as_deref().unwrap();
    assert!(
        hint.contains("Publish the events in a transaction of their own"),
        "{hint}"
    );
    assert!(!hint.contains("SET sfpg.bulk_writes"), "{hint}");
}

const ACCOUNT_OID: u32 = 16500;

/// A row change of the `account` table.
fn account_change(
    seq: i64,
    operation: &str,
    row_id: i64,
    old: Option<serde_json::Value>,
    new: Option<serde_json::Value>,
    changed: Option<&[&str]>,
) -> PendingChange {
    let mut change = change(seq, operation, row_id, old, new, changed);
    change.table = "account".into();
    change.table_oid = ACCOUNT_OID;
    change
}

fn account_row(id: i64, sfid: &str, name: &str) -> serde_json::Value {
    json!({"id": id, "sfid": sfid, "systemmodstamp": null, "isdeleted": false, "name": name})
}

/// An invoice row created in the transaction, with its provisional sfid and lookups.
fn new_invoice(
    id: i64,
    sfid: &str,
    account: Option<&str>,
    parent: Option<&str>,
) -> serde_json::Value {
    let mut row = row(id, Some(sfid), "INV", 1.0);
    row["account__c"] = json!(account);
    row["parent__c"] = json!(parent);
    row
}

const PARENT: &str = "~00000000000000001";
const CHILD: &str = "~00000000000000002";

#[test]
fn a_child_created_before_its_parent_is_sent_after_it() {
    let plan = planned(&[
        change(
            1,
            "INSERT",
            10,
            None,
            Some(new_invoice(10, CHILD, Some(PARENT), None)),
            None,
        ),
        account_change(
            2,
            "INSERT",
            20,
            None,
            Some(account_row(20, PARENT, "Parent")),
            None,
        ),
    ])
    .unwrap()
    .unwrap();
    let tables: Vec<&str> = plan
        .records
        .iter()
        .map(|p| p.object.table.as_str())
        .collect();
    assert_eq!(tables, ["account", "invoice__c"]);
    assert_eq!(plan.records[0].level, 0);
    assert_eq!(plan.records[0].provisional.as_deref(), Some(PARENT));
    assert_eq!(plan.records[1].level, 1);
    assert_eq!(
        plan.records[1].references,
        vec![Reference {
            field: "Account__c".into(),
            create: 0
        }]
    );
    // The provisional sfid of a new row is not a write to sfid, and is not sent.
    assert!(!plan.record(&plan.records[0]).unwrap().contains_key("Id"));
    // One call per level.
    let calls: Vec<(Operation, Vec<usize>)> = plan.calls();
    assert_eq!(
        calls,
        vec![(Operation::Create, vec![0]), (Operation::Create, vec![1])]
    );
}

#[test]
fn an_update_that_points_at_a_new_row_refers_to_its_create() {
    let old = row(3, Some("a01000000000003AAA"), "INV-3", 1.0);
    let mut new = old.clone();
    new["account__c"] = json!(PARENT);
    let plan = planned(&[
        account_change(
            1,
            "INSERT",
            20,
            None,
            Some(account_row(20, PARENT, "Parent")),
            None,
        ),
        change(2, "UPDATE", 3, Some(old), Some(new), Some(&["account__c"])),
    ])
    .unwrap()
    .unwrap();
    assert_eq!(plan.records[1].operation, Operation::Update);
    assert_eq!(plan.records[1].references[0].create, 0);
    assert_eq!(plan.records[1].references[0].field, "Account__c");
}

#[test]
fn a_provisional_sfid_no_create_produces_is_refused() {
    // The parent was created and deleted again, so it is never sent.
    let refusal = planned(&[
        account_change(
            1,
            "INSERT",
            20,
            None,
            Some(account_row(20, PARENT, "Parent")),
            None,
        ),
        change(
            2,
            "INSERT",
            10,
            None,
            Some(new_invoice(10, CHILD, Some(PARENT), None)),
            None,
        ),
        account_change(
            3,
            "DELETE",
            20,
            Some(account_row(20, PARENT, "Parent")),
            None,
            None,
        ),
    ])
    .unwrap_err();
    assert_eq!(refusal.sqlstate.code(), "23503");
    assert_eq!(refusal.column.as_deref(), Some("account__c"));
    assert_eq!(refusal.table.as_deref(), Some("invoice__c"));
    assert!(refusal.message.contains(PARENT), "{}", refusal.message);
    // A stale one, from another transaction.
    let old = row(3, Some("a01000000000003AAA"), "INV-3", 1.0);
    let mut new = old.clone();
    new["account__c"] = json!("~00000000000000777");
    let refusal = planned(&[change(
        2,
        "UPDATE",
        3,
        Some(old),
        Some(new),
        Some(&["account__c"]),
    )])
    .unwrap_err();
    assert_eq!(refusal.sqlstate.code(), "23503");
    assert_eq!(refusal.column.as_deref(), Some("account__c"));
}

#[test]
fn a_cycle_of_new_rows_is_refused_naming_the_tables() {
    let refusal = planned(&[
        change(
            1,
            "INSERT",
            10,
            None,
            Some(new_invoice(10, PARENT, None, Some(CHILD))),
            None,
        ),
        change(
            2,
            "INSERT",
            11,
            None,
            Some(new_invoice(11, CHILD, None, Some(PARENT))),
            None,
        ),
    ])
    .unwrap_err();
    assert_eq!(refusal.sqlstate.code(), "23503");
    assert!(
        refusal
            .message
            .contains("salesforce.invoice__c -> salesforce.invoice__c -> salesforce.invoice__c"),
        "{}",
        refusal.message
    );
    // A row that points at itself is a cycle too.
    let refusal = planned(&[change(
        1,
        "INSERT",
        10,
        None,
        Some(new_invoice(10, PARENT, None, Some(PARENT))),
        None,
    )])
    .unwrap_err();
    assert_eq!(refusal.sqlstate.code(), "23503");
}

#[test]
fn too_many_levels_are_refused() {
    // A chain of six invoices, each the parent of the next: six calls.
    let sfid = |i: i64| format!("~{i:017}");
    let changes: Vec<PendingChange> = (1..=6)
        .map(|i| {
            let parent = (i > 1).then(|| sfid(i - 1));
            change(
                i,
                "INSERT",
                i,
                None,
                Some(new_invoice(i, &sfid(i), None, parent.as_deref())),
                None,
            )
        })
        .collect();
    let refusal = planned(&changes).unwrap().unwrap().too_large(false);
    assert_eq!(refusal.sqlstate.code(), "54000");
    let plan = planned(&changes[..5]).unwrap().unwrap();
    let levels: Vec<usize> = plan.records.iter().map(|p| p.level).collect();
    assert_eq!(levels, [0, 1, 2, 3, 4]);
}

#[test]
fn a_written_sfid_is_still_refused() {
    let refusal = planned(&[change(
        1,
        "INSERT",
        7,
        None,
        Some(row(7, Some("a01000000000001AAA"), "INV-1", 10.5)),
        None,
    )])
    .unwrap_err();
    assert_eq!(refusal.sqlstate.code(), "428C9");
    assert_eq!(refusal.column.as_deref(), Some("sfid"));
    let old = row(3, Some("a01000000000003AAA"), "INV-3", 1.0);
    let mut new = old.clone();
    new["sfid"] = json!(PARENT);
    let refusal = planned(&[change(
        2,
        "UPDATE",
        3,
        Some(old),
        Some(new),
        Some(&["sfid"]),
    )])
    .unwrap_err();
    assert_eq!(refusal.sqlstate.code(), "428C9");
}

#[test]
fn a_plan_beyond_one_atomic_push_keeps_its_values_in_a_spool_and_shares_its_names() {
    // Creates whose names differ only by a null (left out), updates of one field.
    let mut changes: Vec<PendingChange> = (1..=i64::try_from(SPOOL_AFTER).unwrap())
        .map(|id| {
            let mut new = row(id, None, &format!("INV-{id}, \"quoted\""), 1.5);
            if id % 2 == 0 {
                new["amount__c"] = json!(null);
            }
            change(id, "INSERT", id, None, Some(new), None)
        })
        .collect();
    let old = row(5000, Some("a01000000000001AAA"), "Old", 1.0);
    let mut new = old.clone();
    new["name"] = json!("New");
    changes.push(change(
        5000,
        "UPDATE",
        5000,
        Some(old),
        Some(new),
        Some(&["name"]),
    ));
    let spooled = planned(&changes).unwrap().unwrap();
    let held = {
        let mut planner = Planner::spooling_after(usize::MAX);
        planner.add(&changes, &org(), &objects()).unwrap();
        planner.finish().unwrap().unwrap()
    };
    assert_eq!(spooled.records.len(), SPOOL_AFTER + 1);
    assert!(spooled.spool.is_some() && held.spool.is_none());
    for (s, h) in spooled.records.iter().zip(&held.records) {
        assert!(matches!(s.values, Values::Spooled(_)), "{s:?}");
        assert!(matches!(h.values, Values::Held(_)));
        assert_eq!(spooled.record(s).unwrap(), held.record(h).unwrap());
    }
    // Two lists of names in all: a create's with an amount, and `Name` alone, which the
    // creates without an amount and the update share.
    let lists: std::collections::HashSet<*const [String]> = spooled
        .records
        .iter()
        .map(|p| Arc::as_ptr(&p.names))
        .collect();
    assert_eq!(lists.len(), 2);
    assert_eq!(
        spooled.record(&spooled.records[SPOOL_AFTER]).unwrap(),
        json!({"attributes": {"type": "Invoice__c"}, "Id": "a01000000000001AAA", "Name": "New"})
            .as_object()
            .unwrap()
            .clone()
    );
}
