//! A page of captured changes reduced to what the push needs of it, before the next page is
//! taken: one change per row's net change (as [`super::collapse`] finds it), its images cut
//! to the columns that net change reads. A row's changes never straddle two pages
//! (`sfpg.take_pending_changes(ticket, rows)`, migration V21), so a net change found in a
//! page is final.
//!
//! Planning the reduced changes gives the same plan as planning the originals: a create
//! reads the non-null values of the row as it ends ([`super::create_fields`] skips nulls);
//! an update, the changed columns of the row as it ends and its sfid as it was; a delete,
//! the sfid. What a refused record is restored to (`bulk::outcome`) is the row before the
//! transaction: for an update, the values of the columns the transaction changed (a
//! restore sets those and leaves the rest, which it did not change); for a delete, the
//! whole row, which is inserted again. A row created and deleted in the transaction leaves
//! nothing.
//!
//! This is what bounds a large transaction's memory: an `UPDATE` of one column of 100,000
//! Contacts (52 columns) held two whole images a row, about 20 KB parsed; the reduced change
//! holds two values and the sfid.

use serde_json::{Map, Value};
use sfpg_control::capture::{Operation as Captured, PendingChange};

use super::{Net, SFID, collapse};

/// One change per net change of `page` (each row's changes, oldest first), in the order of
/// each net change's first change, its images cut to what planning and restoring read.
pub fn compact(page: &[PendingChange]) -> Vec<PendingChange> {
    collapse(page).iter().filter_map(reduced).collect()
}

fn reduced(net: &Net<'_>) -> Option<PendingChange> {
    let first = net.first;
    let created_here = first.operation == Captured::Insert;
    let (operation, old, new, changed) = match (created_here, net.deleted) {
        // Created and deleted here: Salesforce never sees it.
        (true, true) => return None,
        (true, false) => (Captured::Insert, None, net.new.map(non_null), None),
        (false, true) => (Captured::Delete, net.old.cloned(), None, None),
        (false, false) => {
            let keep = |image: &Map<String, Value>| only(image, &net.changed);
            (
                Captured::Update,
                net.old.map(keep),
                net.new.map(keep),
                Some(net.changed.clone()),
            )
        }
    };
    Some(PendingChange {
        seq: first.seq,
        schema: first.schema.clone(),
        table: first.table.clone(),
        table_oid: first.table_oid,
        operation,
        row_id: first.row_id,
        old,
        new,
        changed,
    })
}

/// The image without its null values.
fn non_null(image: &Map<String, Value>) -> Map<String, Value> {
    image
        .iter()
        .filter(|(_, value)| !value.is_null())
        .map(|(column, value)| (column.clone(), value.clone()))
        .collect()
}

/// The image's `sfid` and `columns`.
fn only(image: &Map<String, Value>, columns: &[String]) -> Map<String, Value> {
    image
        .iter()
        .filter(|(column, _)| column.as_str() == SFID || columns.contains(column))
        .map(|(column, value)| (column.clone(), value.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn change(seq: i64, operation: &str, row: i64, old: Value, new: Value) -> Value {
        let changed: Option<Vec<&str>> = match (&old, &new) {
            (Value::Object(o), Value::Object(n)) => Some(
                n.iter()
                    .filter(|(k, v)| o.get(*k) != Some(v))
                    .map(|(k, _)| k.as_str())
                    .collect(),
            ),
            _ => None,
        };
        json!({
            "seq": seq, "schema_name": "salesforce", "table_name": "contact", "table_oid": 7,
            "operation": operation, "row_id": row, "old_row": old, "new_row": new,
            "changed": changed,
        })
    }

    fn row(sfid: &str, last: &str, title: Value, city: &str) -> Value {
        json!({ "id": 1, "sfid": sfid, "lastname": last, "title": title, "mailingcity": city })
    }

    fn parse(changes: Vec<Value>) -> Vec<PendingChange> {
        serde_json::from_value(Value::Array(changes)).unwrap()
    }

    #[test]
    fn an_update_keeps_the_changed_columns_of_both_images_and_the_sfid() {
        let sfid = "003000000000001AAA";
        let page = parse(vec![
            change(
                4,
                "UPDATE",
                1,
                row(sfid, "Old", Value::Null, "Paris"),
                row(sfid, "New", Value::Null, "Paris"),
            ),
            change(
                9,
                "UPDATE",
                1,
                row(sfid, "New", Value::Null, "Paris"),
                row(sfid, "New", Value::Null, "Lyon"),
            ),
        ]);
        let compacted = compact(&page);
        assert_eq!(compacted.len(), 1);
        let net = &compacted[0];
        assert_eq!((net.seq, net.operation), (4, Captured::Update));
        assert_eq!(
            net.changed.as_deref(),
            Some(&["lastname".to_owned(), "mailingcity".to_owned()][..])
        );
        assert_eq!(
            Value::Object(net.old.clone().unwrap()),
            json!({ "sfid": sfid, "lastname": "Old", "mailingcity": "Paris" })
        );
        assert_eq!(
            Value::Object(net.new.clone().unwrap()),
            json!({ "sfid": sfid, "lastname": "New", "mailingcity": "Lyon" })
        );
    }

    #[test]
    fn a_create_keeps_its_last_values_but_nulls_and_a_delete_its_whole_first_image() {
        let provisional = "~00000000000000001";
        let sfid = "003000000000002AAA";
        let page = parse(vec![
            change(
                1,
                "INSERT",
                1,
                Value::Null,
                row(provisional, "A", Value::Null, "Paris"),
            ),
            change(
                2,
                "UPDATE",
                1,
                row(provisional, "A", Value::Null, "Paris"),
                row(provisional, "B", Value::Null, "Paris"),
            ),
            change(
                3,
                "UPDATE",
                2,
                row(sfid, "C", json!("CEO"), "Rome"),
                row(sfid, "D", json!("CEO"), "Rome"),
            ),
            change(
                5,
                "DELETE",
                2,
                row(sfid, "D", json!("CEO"), "Rome"),
                Value::Null,
            ),
        ]);
        let compacted = compact(&page);
        assert_eq!(compacted.len(), 2);
        let create = &compacted[0];
        assert_eq!(create.operation, Captured::Insert);
        assert_eq!(
            Value::Object(create.new.clone().unwrap()),
            json!({ "id": 1, "sfid": provisional, "lastname": "B", "mailingcity": "Paris" })
        );
        let delete = &compacted[1];
        assert_eq!((delete.seq, delete.operation), (3, Captured::Delete));
        // The row as it was before the transaction, to insert again if Salesforce refuses.
        assert_eq!(
            Value::Object(delete.old.clone().unwrap()),
            row(sfid, "C", json!("CEO"), "Rome")
        );
    }

    #[test]
    fn a_row_created_and_deleted_here_leaves_nothing() {
        let provisional = "~00000000000000001";
        let page = parse(vec![
            change(
                1,
                "INSERT",
                1,
                Value::Null,
                row(provisional, "A", Value::Null, "Paris"),
            ),
            change(
                2,
                "DELETE",
                1,
                row(provisional, "A", Value::Null, "Paris"),
                Value::Null,
            ),
        ]);
        assert!(compact(&page).is_empty());
    }
}
