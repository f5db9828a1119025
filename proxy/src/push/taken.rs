//! A transaction's captured changes as a push keeps them (`sfpg.take_pending_changes`'
//! JSON array): parsed with their images cut to what the plan reads, and, of the rows a
//! bulk push may have to put back, the images from before the transaction kept as the
//! JSON text they came in. Parsed whole, a Contact's change holds about 20 KB (two maps of
//! 52 columns), which a large push would otherwise hold until its end.

use std::collections::{HashMap, HashSet};

use serde_json::value::RawValue;
use serde_json::{Map, Value};
use sfpg_control::capture::{Operation as Captured, PendingChange};

/// A row: its table's OID and its local id.
type RowKey = (u32, i64);

/// The images from before the transaction of the rows a bulk push may have to restore
/// (those it updated or deleted and did not create), as JSON text.
#[derive(Debug, Default)]
pub struct RowsBefore(HashMap<RowKey, Box<str>>);

impl RowsBefore {
    /// The image of row `row_id` of table `table_oid` before the transaction.
    pub fn get(&self, table_oid: u32, row_id: i64) -> Option<&str> {
        self.0.get(&(table_oid, row_id)).map(|row| &**row)
    }
}

/// The captured changes of a transaction, ready to plan.
#[derive(Debug, Default)]
pub struct TakenChanges {
    /// The changes in capture order. An old image holds only its `sfid` (all the plan
    /// reads of it); the new image of an update of a row the transaction did not create,
    /// only the columns the transaction changed in that row (all the plan sends).
    pub changes: Vec<PendingChange>,
    /// Of each row the transaction did not create, the old image of its first change.
    pub before: RowsBefore,
}

impl TakenChanges {
    /// Parses `sfpg.take_pending_changes`' JSON array, one change at a time.
    pub fn parse(json: &str) -> Result<Self, serde_json::Error> {
        let elements: Vec<&RawValue> = serde_json::from_str(json)?;
        let kept = columns_sent(&elements)?;
        let mut changes = Vec::with_capacity(elements.len());
        let mut before = HashMap::new();
        let mut seen = HashSet::new();
        for (element, kept) in elements.iter().zip(kept) {
            let mut change: PendingChange = serde_json::from_str(element.get())?;
            let key = (change.table_oid, change.row_id.unwrap_or_default());
            if seen.insert(key) && change.operation != Captured::Insert && change.old.is_some() {
                let fields: HashMap<String, &RawValue> = serde_json::from_str(element.get())?;
                if let Some(old) = fields.get("old_row") {
                    before.insert(key, Box::from(old.get()));
                }
            }
            change.old = change.old.take().map(|old| only(old, |c| c == "sfid"));
            if let Some(kept) = kept {
                change.new = change.new.take().map(|new| only(new, |c| kept.contains(c)));
            }
            changes.push(change);
        }
        Ok(TakenChanges {
            changes,
            before: RowsBefore(before),
        })
    }
}

fn only(image: Map<String, Value>, keep: impl Fn(&str) -> bool) -> Map<String, Value> {
    image
        .into_iter()
        .filter(|(column, _)| keep(column))
        .collect()
}

/// What each change's parts say of its row, read without its images.
struct Header {
    key: RowKey,
    operation: Captured,
    changed: Vec<String>,
}

fn header(element: &RawValue) -> Result<Header, serde_json::Error> {
    let fields: HashMap<String, &RawValue> = serde_json::from_str(element.get())?;
    let field = |name: &str| fields.get(name).map_or("null", |raw| raw.get());
    let table_oid: u32 = serde_json::from_str(field("table_oid"))?;
    let row_id: Option<i64> = serde_json::from_str(field("row_id"))?;
    let operation: Captured = serde_json::from_str(field("operation"))?;
    let changed: Option<Vec<String>> = serde_json::from_str(field("changed"))?;
    Ok(Header {
        key: (table_oid, row_id.unwrap_or_default()),
        operation,
        changed: changed.unwrap_or_default(),
    })
}

/// For each change, the columns of its new image the plan reads, when not all: an update
/// of a row the transaction did not create (or created again) sends only the columns the
/// transaction changed in it, valued as its last change left them. The changes of a row
/// are grouped as the plan groups them: from its first change to a DELETE.
fn columns_sent(elements: &[&RawValue]) -> Result<Vec<Option<HashSet<String>>>, serde_json::Error> {
    // Per group: whether it began with an update, and the columns changed in it.
    let mut groups: Vec<(bool, HashSet<String>)> = Vec::new();
    let mut group_of = Vec::with_capacity(elements.len());
    let mut live: HashMap<RowKey, usize> = HashMap::new();
    for element in elements {
        let Header {
            key,
            operation,
            changed,
        } = header(element)?;
        let group = match live.get(&key).copied() {
            Some(group) => group,
            None => {
                groups.push((operation == Captured::Update, HashSet::new()));
                groups.len() - 1
            }
        };
        if operation == Captured::Delete {
            live.remove(&key);
        } else {
            live.insert(key, group);
        }
        groups[group].1.extend(changed);
        group_of.push((group, operation));
    }
    let mut kept: Vec<Option<HashSet<String>>> = groups
        .into_iter()
        .map(|(update, columns)| update.then_some(columns))
        .collect();
    // Each change of a group shares its group's set; the last takes it, the others copy.
    let mut uses = vec![0usize; kept.len()];
    for (group, _) in &group_of {
        uses[*group] += 1;
    }
    Ok(group_of
        .into_iter()
        .map(|(group, operation)| {
            uses[group] -= 1;
            let columns = if uses[group] == 0 {
                kept[group].take()
            } else {
                kept[group].clone()
            };
            columns.filter(|_| operation == Captured::Update)
        })
        .collect())
}

#[cfg(test)]
mod tests;
