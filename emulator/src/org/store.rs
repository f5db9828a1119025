//! One object's records: ordered by Id (so `WHERE Id > x ORDER BY Id LIMIT n` is a range
//! scan), with the indexes that enforce unique fields, the Id and auto-number counters,
//! and the delete log that `deleted/` reads.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::ids::{Id, IdError, IdGenerator};
use crate::model::{ObjectDef, Record, Value};

/// An entry of the delete log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeletedRecord {
    pub id: Id,
    pub deleted_date: DateTime<Utc>,
}

/// The live records holding each value of one unique field.
#[derive(Debug, Clone)]
struct UniqueIndex {
    field: usize,
    case_sensitive: bool,
    values: HashMap<Box<str>, Id>,
}

impl UniqueIndex {
    fn key(&self, value: &Value) -> Option<Box<str>> {
        let text = value.as_str()?;
        Some(if self.case_sensitive {
            text.into()
        } else {
            text.to_lowercase().into()
        })
    }
}

/// The records of one object and everything kept alongside them.
///
/// Records are shared (`Arc`): a change stores a new record in place of the old one, so
/// a Bulk query job can hold the records it read, as they were, without copying them.
#[derive(Debug, Clone)]
pub struct ObjectStore {
    pub def: ObjectDef,
    pub records: BTreeMap<Id, Arc<Record>>,
    ids: IdGenerator,
    unique: Vec<UniqueIndex>,
    auto_number: u64,
    pub delete_log: Vec<DeletedRecord>,
    /// When the delete log was last trimmed: `earliestDateAvailable`.
    pub delete_log_purged: DateTime<Utc>,
}

impl ObjectStore {
    pub fn new(def: ObjectDef, pod: &str, now: DateTime<Utc>) -> Result<ObjectStore, IdError> {
        let ids = IdGenerator::new(&def.key_prefix, pod)?;
        let unique = def
            .fields
            .iter()
            .enumerate()
            .filter(|(_, f)| f.unique)
            .map(|(i, f)| UniqueIndex {
                field: i,
                case_sensitive: f.case_sensitive,
                values: HashMap::new(),
            })
            .collect();
        Ok(ObjectStore {
            def,
            records: BTreeMap::new(),
            ids,
            unique,
            auto_number: 0,
            delete_log: Vec::new(),
            delete_log_purged: super::clock::whole_minutes(now),
        })
    }

    pub fn mint_id(&mut self) -> Id {
        self.ids.next_id()
    }

    /// The next auto-number, formatted by the field's display format (`INV-{0000}`).
    pub fn next_auto_number(&mut self, display_format: Option<&str>) -> String {
        self.auto_number += 1;
        format_auto_number(display_format.unwrap_or("{0}"), self.auto_number)
    }

    pub fn get(&self, id: &Id) -> Option<&Record> {
        self.records.get(id).map(|r| &**r)
    }

    /// The record stored under `id`, shared: it stays as it is now whatever happens to
    /// the record later.
    pub fn shared(&self, id: &Id) -> Option<Arc<Record>> {
        self.records.get(id).cloned()
    }

    /// Whether the record sits in the recycle bin.
    pub fn is_deleted(&self, record: &Record) -> bool {
        self.def
            .system
            .is_deleted
            .is_some_and(|i| *record.get(i) == Value::Bool(true))
    }

    /// The first unique field whose value `record` shares with another live record, and
    /// that record's Id.
    pub fn unique_conflict(&self, record: &Record, own: Option<Id>) -> Option<(usize, Id)> {
        self.unique.iter().find_map(|index| {
            let key = index.key(record.get(index.field))?;
            let other = *index.values.get(&key)?;
            (Some(other) != own).then_some((index.field, other))
        })
    }

    /// The live records whose `field` equals `value` (unique fields by index, others by
    /// scan), for upsert by external id.
    pub fn find_by_value(&self, field: usize, value: &str, case_sensitive: bool) -> Vec<Id> {
        if let Some(index) = self.unique.iter().find(|u| u.field == field) {
            let key = index.key(&Value::text(value));
            return key
                .and_then(|k| index.values.get(&k).copied())
                .into_iter()
                .collect();
        }
        let wanted = if case_sensitive {
            value.to_owned()
        } else {
            value.to_lowercase()
        };
        self.records
            .iter()
            .filter(|(_, r)| !self.is_deleted(r))
            .filter(|(_, r)| {
                r.get(field).as_str().is_some_and(|v| {
                    if case_sensitive {
                        v == wanted
                    } else {
                        v.to_lowercase() == wanted
                    }
                })
            })
            .map(|(id, _)| *id)
            .collect()
    }

    /// Stores `record` under `id` (or removes it for `None`), keeping the unique indexes
    /// in step; returns what was there before. Records in the recycle bin hold no unique
    /// values.
    pub fn put(&mut self, id: Id, record: Option<Arc<Record>>) -> Option<Arc<Record>> {
        let previous = match record {
            Some(r) => self.records.insert(id, r),
            None => self.records.remove(&id),
        };
        let deleted_field = self.def.system.is_deleted;
        let live = |r: &Record| deleted_field.is_none_or(|i| *r.get(i) != Value::Bool(true));
        let current = self.records.get(&id).map(|r| &**r);
        for index in &mut self.unique {
            if let Some(old) = previous.as_deref().filter(|r| live(r))
                && let Some(key) = index.key(old.get(index.field))
                && index.values.get(&key) == Some(&id)
            {
                index.values.remove(&key);
            }
            if let Some(new) = current.filter(|r| live(r))
                && let Some(key) = index.key(new.get(index.field))
            {
                index.values.insert(key, id);
            }
        }
        previous
    }
}

/// Replaces the first `{0…}` of `format` with `n`, zero-padded to the braces' width.
fn format_auto_number(format: &str, n: u64) -> String {
    match (format.find('{'), format.find('}')) {
        (Some(open), Some(close)) if close > open => {
            let width = close - open - 1;
            format!("{}{n:0width$}{}", &format[..open], &format[close + 1..])
        }
        _ => format!("{format}{n}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::DEFAULT_POD;

    fn store() -> ObjectStore {
        let def = ObjectDef::from_json(
            r#"{"name": "Tag__c", "label": "Tag", "labelPlural": "Tags", "keyPrefix": "a05",
            "fields": [{"name": "Code__c", "label": "Code", "type": "string", "length": 10,
                        "unique": true, "externalId": true}]}"#,
        )
        .unwrap();
        ObjectStore::new(def, DEFAULT_POD, Utc::now()).unwrap()
    }

    fn record(store: &ObjectStore, code: &str, deleted: bool) -> Record {
        let mut r = Record::empty(store.def.fields.len());
        r.values[store.def.field("Code__c").unwrap().0] = Value::text(code);
        r.values[store.def.system.is_deleted.unwrap()] = Value::Bool(deleted);
        r
    }

    #[test]
    fn auto_numbers_follow_the_display_format() {
        assert_eq!(format_auto_number("INV-{0000}", 7), "INV-0007");
        assert_eq!(format_auto_number("INV-{0000}", 12345), "INV-12345");
        assert_eq!(format_auto_number("{0}-X", 3), "3-X");
        let mut s = store();
        assert_eq!(s.next_auto_number(Some("T{00}")), "T01");
        assert_eq!(s.next_auto_number(Some("T{00}")), "T02");
    }

    #[test]
    fn unique_index_follows_puts_and_ignores_the_recycle_bin() {
        let mut s = store();
        let a = s.mint_id();
        let first = record(&s, "ABC", false);
        s.put(a, Some(Arc::new(first)));
        let b = s.mint_id();
        let same = record(&s, "abc", false);
        assert_eq!(s.unique_conflict(&same, Some(b)), Some((2, a)));
        assert_eq!(s.unique_conflict(&same, Some(a)), None);
        assert_eq!(s.find_by_value(2, "Abc", false), vec![a]);
        let deleted = record(&s, "ABC", true);
        s.put(a, Some(Arc::new(deleted)));
        assert_eq!(s.unique_conflict(&same, Some(b)), None);
        s.put(b, Some(Arc::new(same)));
        assert_eq!(s.find_by_value(2, "ABC", false), vec![b]);
        s.put(b, None);
        assert!(s.find_by_value(2, "ABC", false).is_empty());
    }
}
