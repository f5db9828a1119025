//! Planning a transaction's changes taken in pages of rows and reduced page by page
//! ([`compact`]) gives the plan the whole list gives (or the same refusal), lookups between
//! new rows included, and what a refused record is restored to is the row before the
//! transaction: checked over many generated transactions.

use serde_json::{Map, Value};

use super::*;

/// A small deterministic generator (xorshift), so that a failure can be replayed.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, sides: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % sides
    }
}

/// An invoice's image, its lookup `parent__c` empty, as a capture has every column.
fn invoice(id: i64, sfid: &str, name: &str, amount: f64) -> Value {
    let mut image = row(id, Some(sfid), name, amount);
    image["parent__c"] = Value::Null;
    image
}

/// What an update sets `parent__c` to: the provisional sfid of a row created in the
/// transaction when there is one (the update then depends on its create), else a mirrored
/// row's sfid.
fn parent(dice: &mut Dice, rows: &HashMap<i64, Value>, ids: &[i64]) -> Value {
    let created: Vec<i64> = ids.iter().copied().filter(|id| *id >= 10).collect();
    let pick = if created.is_empty() { ids } else { &created };
    let id = pick[dice.roll(pick.len() as u64) as usize];
    rows[&id]["sfid"].clone()
}

/// One generated transaction over invoices 1-4 (mirrored) and new ones from 10: its
/// changes in capture order, and each existing row's image before it. Updates set a name,
/// an amount, a local column or the lookup to another invoice, new ones included, so that
/// creates depend on creates and a row a lookup points at may be deleted (a refusal).
fn transaction(dice: &mut Dice) -> (Vec<PendingChange>, HashMap<i64, Value>) {
    let mut rows: HashMap<i64, Value> = (1..=4)
        .map(|id| {
            let sfid = format!("a0100000000000{id}AAA");
            (id, invoice(id, &sfid, &format!("n{id}"), id as f64))
        })
        .collect();
    let before = rows.clone();
    let mut changes = Vec::new();
    let mut next_id = 10;
    for seq in 1..=(4 + dice.roll(12) as i64) {
        let mut ids: Vec<i64> = rows.keys().copied().collect();
        ids.sort_unstable();
        match dice.roll(5) {
            0 => {
                let id = next_id;
                next_id += 1;
                let image = invoice(id, &format!("~{id:017}"), "new", 0.5);
                changes.push(change(seq, "INSERT", id, None, Some(image.clone()), None));
                rows.insert(id, image);
            }
            1 if !ids.is_empty() => {
                let id = ids[dice.roll(ids.len() as u64) as usize];
                let old = rows.remove(&id);
                changes.push(change(seq, "DELETE", id, old, None, None));
            }
            _ if !ids.is_empty() => {
                let id = ids[dice.roll(ids.len() as u64) as usize];
                let old = rows[&id].clone();
                let mut new = old.clone();
                let column = ["name", "amount__c", "my_note", "parent__c"][dice.roll(4) as usize];
                new[column] = match column {
                    "parent__c" => parent(dice, &rows, &ids),
                    _ => json!(format!("v{seq}")),
                };
                changes.push(change(
                    seq,
                    "UPDATE",
                    id,
                    Some(old),
                    Some(new.clone()),
                    Some(&[column]),
                ));
                rows.insert(id, new);
            }
            _ => {}
        }
    }
    (changes, before)
}

/// The changes as the proxy takes them: pages of `rows` rows in row order (not capture
/// order), every change of a row in one page, each page reduced; with the plan the
/// [`Planner`] makes of the reduced pages, one at a time, its values spooled from the
/// second record on (as a plan beyond one atomic push's is).
fn taken_in_pages(
    changes: &[PendingChange],
    rows: usize,
    org: &Arc<OrgHandle>,
    objects: &HashMap<(String, String), Arc<ObjectHandle>>,
) -> (Vec<PendingChange>, Result<Option<Plan>, Refusal>) {
    let mut ids: Vec<i64> = changes.iter().filter_map(|c| c.row_id).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut taken = Vec::new();
    let mut planner = Planner::spooling_after(1);
    let mut refused = None;
    for page_ids in ids.chunks(rows) {
        let page: Vec<PendingChange> = changes
            .iter()
            .filter(|c| c.row_id.is_some_and(|id| page_ids.contains(&id)))
            .cloned()
            .collect();
        let reduced = compact(&page);
        if let Err(refusal) = planner.add(&reduced, org, objects) {
            refused.get_or_insert(refusal);
        }
        taken.extend(reduced);
    }
    let planned = match refused {
        Some(refusal) => Err(refusal),
        None => planner.finish(),
    };
    (taken, planned)
}

/// What planning sends, record by record, or why it refuses, comparable.
fn sent(planned: Result<Option<Plan>, Refusal>) -> Vec<String> {
    let plan = match planned {
        Ok(plan) => plan,
        Err(refusal) => return vec![format!("refused: {refusal:?}")],
    };
    let Some(plan) = plan else {
        return Vec::new();
    };
    plan.records
        .iter()
        .map(|p| {
            let references: Vec<(String, usize)> = p
                .references
                .iter()
                .map(|r| (r.field.clone(), r.create))
                .collect();
            format!(
                "{:?} {} {:?} {} {:?} {} {references:?}",
                p.operation,
                p.row_id,
                p.sfid,
                Value::Object(plan.record(p).unwrap()),
                p.provisional,
                p.level
            )
        })
        .collect()
}

/// The row `restored` gives back when laid over `current` (a restore sets the columns its
/// image holds, as `sfpg.restore_refused` does).
fn laid_over(current: &Value, restored: &Map<String, Value>) -> Value {
    let mut row = current.clone();
    for (column, value) in restored {
        row[column] = value.clone();
    }
    row
}

#[test]
fn pages_reduced_row_by_row_plan_and_restore_as_the_whole_transaction() {
    let (org, objects) = (org(), objects());
    let mut dice = Dice(0x5eed_1234_abcd);
    // How many transactions planned with references between creates, and how many were
    // refused: the generator must reach both.
    let (mut linked, mut refused) = (0, 0);
    for round in 0..500 {
        let (changes, before) = transaction(&mut dice);
        match plan(&changes, &org, &objects) {
            Ok(Some(plan)) if plan.records.iter().any(|p| !p.references.is_empty()) => {
                linked += 1;
            }
            Err(_) => refused += 1,
            _ => {}
        }
        for rows in [1, 2, 3] {
            let (taken, planned) = taken_in_pages(&changes, rows, &org, &objects);
            assert_eq!(
                sent(planned),
                sent(plan(&changes, &org, &objects)),
                "round {round}, pages of {rows} rows: {changes:#?}"
            );
            // Each existing row the transaction changed and kept, restored from the reduced
            // old image over the row as the transaction left it, is the row before it.
            for change in taken.iter().filter(|c| c.operation == Captured::Update) {
                let id = change.row_id.unwrap_or_default();
                let after = changes
                    .iter()
                    .rev()
                    .find(|c| c.row_id == Some(id))
                    .and_then(|c| c.new.clone())
                    .map(Value::Object)
                    .unwrap_or_default();
                let old = change.old.as_ref().unwrap_or_else(|| panic!("{change:?}"));
                assert_eq!(
                    laid_over(&after, old),
                    before[&id],
                    "round {round}, row {id}"
                );
            }
            // A deleted row comes back whole.
            for change in taken.iter().filter(|c| c.operation == Captured::Delete) {
                let id = change.row_id.unwrap_or_default();
                let old = change.old.clone().map(Value::Object);
                assert_eq!(old.as_ref(), before.get(&id), "round {round}, row {id}");
            }
        }
    }
    assert!(
        linked > 50 && refused > 10,
        "linked {linked}, refused {refused}"
    );
}
