//! The captured changes as a push keeps them: the plan made of them is the plan of the
//! changes whole, and the images a bulk push may restore are the rows' first old images.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Value, json};

use super::*;
use crate::push::catalog::{ObjectHandle, OrgHandle, fixtures};
use crate::push::plan;

fn change(seq: i64, operation: &str, row_id: i64, old: Value, new: Value, changed: Value) -> Value {
    json!({
        "seq": seq, "schema_name": "salesforce", "table_name": "account", "table_oid": 7,
        "operation": operation, "row_id": row_id, "old_row": old, "new_row": new,
        "changed": changed,
    })
}

fn row(id: i64, sfid: &str, name: &str, city: &str) -> Value {
    json!({"id": id, "sfid": sfid, "name": name, "billingcity": city, "description": "long text"})
}

/// Updates, inserts and deletes of rows, some changed several times, one deleted and
/// inserted again under its id.
fn transaction() -> Value {
    json!([
        change(
            1,
            "UPDATE",
            1,
            row(1, "001A", "Old", "Paris"),
            row(1, "001A", "Mid", "Paris"),
            json!(["name"])
        ),
        change(
            2,
            "INSERT",
            2,
            Value::Null,
            row(2, "~00000000000000002", "New", "Lyon"),
            Value::Null
        ),
        change(
            3,
            "UPDATE",
            1,
            row(1, "001A", "Mid", "Paris"),
            row(1, "001A", "Mid", "Nantes"),
            json!(["billingcity"])
        ),
        change(
            4,
            "UPDATE",
            2,
            row(2, "~00000000000000002", "New", "Lyon"),
            row(2, "~00000000000000002", "Newer", "Lyon"),
            json!(["name"])
        ),
        change(
            5,
            "UPDATE",
            3,
            row(3, "001C", "C", "Brest"),
            row(3, "001C", "C2", "Brest"),
            json!(["name"])
        ),
        change(
            6,
            "DELETE",
            3,
            row(3, "001C", "C2", "Brest"),
            Value::Null,
            Value::Null
        ),
        change(
            7,
            "DELETE",
            4,
            row(4, "001D", "D", "Lille"),
            Value::Null,
            Value::Null
        ),
        change(
            8,
            "INSERT",
            4,
            Value::Null,
            row(4, "~00000000000000004", "D again", "Lille"),
            Value::Null
        ),
        change(
            9,
            "UPDATE",
            4,
            row(4, "~00000000000000004", "D again", "Lille"),
            row(4, "~00000000000000004", "D again", "Metz"),
            json!(["billingcity"])
        ),
    ])
}

/// Mirrored objects by schema and table, as the plan takes them.
type Objects = HashMap<(String, String), Arc<ObjectHandle>>;

fn org_and_objects() -> (Arc<OrgHandle>, Objects) {
    let org = fixtures::acme();
    let column = |column: &str, field: &str, writable: bool| {
        fixtures::text_column(column, field, writable, writable)
    };
    let account = ObjectHandle {
        object: "Account".into(),
        schema: "salesforce".into(),
        table: "account".into(),
        columns: vec![
            column("sfid", "Id", false),
            column("name", "Name", true),
            column("billingcity", "BillingCity", true),
            column("description", "Description", true),
        ],
    };
    let objects = HashMap::from([(
        ("salesforce".to_owned(), "account".to_owned()),
        Arc::new(account),
    )]);
    (org, objects)
}

/// A page of changes as `take` reduces it, from `json`, and the images it keeps.
fn taken(json: &str) -> (Vec<PendingChange>, RowsBefore) {
    kept(json, SPOOL_AFTER)
}

/// The same, the images spooled beyond `spool_after` of them.
fn kept(json: &str, spool_after: usize) -> (Vec<PendingChange>, RowsBefore) {
    let mut keeping = Keeping::spooling_after(spool_after);
    let reduced = keeping
        .keep_page(&sfpg_control::capture::parse_pending(json).unwrap())
        .unwrap();
    (reduced, keeping.finish().unwrap())
}

#[test]
fn the_plan_of_the_changes_as_kept_is_the_plan_of_the_changes_whole() {
    let json = transaction().to_string();
    let whole = sfpg_control::capture::parse_pending(&json).unwrap();
    let (reduced, _) = taken(&json);
    // One change per net change: rows 1, 2 and 3, and row 4 deleted then inserted again.
    assert_eq!(reduced.len(), 5);
    let (org, objects) = org_and_objects();
    let planned = |changes: &[PendingChange]| {
        let plan = plan::plan(changes, &org, &objects).unwrap().unwrap();
        format!("{:?}", plan.records)
    };
    assert_eq!(planned(&reduced), planned(&whole));
}

#[test]
fn the_images_kept_are_each_rows_image_before_the_transaction_held_or_spooled() {
    // Held (none spooled), spooled from the second (the first moved to the spool), and all
    // spooled.
    for spool_after in [SPOOL_AFTER, 1, 0] {
        images_before_the_transaction(spool_after);
    }
}

fn images_before_the_transaction(spool_after: usize) {
    let (_, kept) = kept(&transaction().to_string(), spool_after);
    assert_eq!(
        kept.spool.is_some(),
        spool_after < 3,
        "spooled after {spool_after}"
    );
    let before = |row: i64| {
        kept.get(7, row)
            .unwrap()
            .map(|text| serde_json::from_str::<Value>(&text).unwrap())
    };
    // Updated twice: the columns it changed, as they were, and its sfid.
    assert_eq!(
        before(1),
        Some(json!({"sfid": "001A", "name": "Old", "billingcity": "Paris"}))
    );
    // Updated, then deleted: the whole row as it was before the update.
    assert_eq!(before(3), Some(row(3, "001C", "C", "Brest")));
    // Deleted, then inserted again: the row that was deleted.
    assert_eq!(before(4), Some(row(4, "001D", "D", "Lille")));
    // A row the transaction created has nothing to go back to.
    assert_eq!(before(2), None);
}
