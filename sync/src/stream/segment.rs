//! The writes of a batch of events gathered into as few statements as their order allows.
//!
//! Applying events one statement each costs a round trip (and a plan) per event, which at
//! 1,000 changes a second is most of the time the apply has. Events that touch different
//! records commute: whatever order their writes run in, the rows end the same. So
//! consecutive events whose records are all distinct form a segment, whose records are
//! written per object and kind of write with one statement each; an event that touches a
//! record already in the segment closes it (the segment is written first), so each
//! record's versions still reach the mirror in replay order, through the version guard.

use std::collections::{BTreeMap, HashSet};

use sfpg_salesforce::Record;

use super::change::{Change, ChangeKind};

/// How an event's records reach the mirror.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum WriteKind {
    /// Whole records, every field the event lacks NULL: a create or an undelete.
    Upsert,
    /// The fields the event carries, on existing rows: an update, and the echo of a
    /// create through the proxy (whose write-back brings the row).
    Patch,
    /// Rows deleted by Id.
    Delete,
}

impl WriteKind {
    /// The write `change` makes; `None` for a gap, which writes nothing.
    pub fn of(change: &Change) -> Option<Self> {
        match change.kind {
            ChangeKind::Delete => Some(Self::Delete),
            ChangeKind::Create if change.echo => Some(Self::Patch),
            ChangeKind::Create | ChangeKind::Undelete => Some(Self::Upsert),
            ChangeKind::Update => Some(Self::Patch),
            ChangeKind::Gap | ChangeKind::Overflow => None,
        }
    }
}

/// The records of one object and kind of write in a segment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Group {
    /// The records as the writer takes them (Id and stamp included); empty for deletes.
    pub records: Vec<Record>,
    /// Their Ids, in the order they came.
    pub ids: Vec<String>,
}

/// Consecutive events touching distinct records, by object (as the plans name it) and
/// kind of write.
#[derive(Debug, Default)]
pub struct Segment {
    groups: BTreeMap<(String, WriteKind), Group>,
    /// (object in lower case, record Id) of every record in the segment.
    records: HashSet<(String, String)>,
}

impl Segment {
    /// Whether `change` touches a record already in the segment: the segment must be
    /// written before it.
    pub fn touches(&self, object: &str, change: &Change) -> bool {
        let object = object.to_ascii_lowercase();
        change
            .record_ids
            .iter()
            .any(|id| self.records.contains(&(object.clone(), id.clone())))
    }

    /// Adds `change`'s records to the group of `object` and its kind of write. The caller
    /// asks [`Segment::touches`] first.
    pub fn push(&mut self, object: &str, change: &Change) {
        let Some(kind) = WriteKind::of(change) else {
            return;
        };
        let lower = object.to_ascii_lowercase();
        for id in &change.record_ids {
            self.records.insert((lower.clone(), id.clone()));
        }
        let group = self.groups.entry((object.to_owned(), kind)).or_default();
        group.ids.extend(change.record_ids.iter().cloned());
        if kind != WriteKind::Delete {
            group.records.extend(change.records());
        }
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// The groups to write (in any order: their records are distinct), leaving the
    /// segment empty.
    pub fn take(&mut self) -> Vec<((String, WriteKind), Group)> {
        self.records.clear();
        std::mem::take(&mut self.groups).into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn change(kind: ChangeKind, ids: &[&str]) -> Change {
        Change {
            replay_id: 1,
            entity: "Account".into(),
            record_ids: ids.iter().map(|s| (*s).to_owned()).collect(),
            kind,
            transaction_key: "t".into(),
            sequence_number: 1,
            commit_timestamp: 1_700_000_000_123,
            echo: false,
            fields: json!({"Phone": "1"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            name_parts_changed: false,
        }
    }

    #[test]
    fn distinct_records_share_a_statement_per_object_and_kind() {
        let mut segment = Segment::default();
        for ids in [["a1"], ["a2"]] {
            let update = change(ChangeKind::Update, &ids);
            assert!(!segment.touches("Account", &update));
            segment.push("Account", &update);
        }
        let delete = change(ChangeKind::Delete, &["a3"]);
        segment.push("Account", &delete);
        let groups = segment.take();
        assert_eq!(groups.len(), 2);
        let ((object, kind), patch) = &groups[0];
        assert_eq!((object.as_str(), *kind), ("Account", WriteKind::Patch));
        assert_eq!(patch.ids, ["a1", "a2"]);
        assert_eq!(patch.records.len(), 2);
        assert_eq!(groups[1].0.1, WriteKind::Delete);
        assert!(groups[1].1.records.is_empty());
        assert!(segment.is_empty());
    }

    #[test]
    fn a_record_seen_again_closes_the_segment() {
        let mut segment = Segment::default();
        segment.push("Account", &change(ChangeKind::Update, &["a1", "a2"]));
        // Whatever the kind or the case of the object's name: the same record.
        assert!(segment.touches("account", &change(ChangeKind::Delete, &["a2"])));
        assert!(!segment.touches("Contact", &change(ChangeKind::Update, &["a2"])));
        segment.take();
        assert!(!segment.touches("Account", &change(ChangeKind::Update, &["a2"])));
    }

    #[test]
    fn an_echoed_create_patches_and_a_gap_writes_nothing() {
        let mut echo = change(ChangeKind::Create, &["a1"]);
        echo.echo = true;
        assert_eq!(WriteKind::of(&echo), Some(WriteKind::Patch));
        assert_eq!(
            WriteKind::of(&change(ChangeKind::Undelete, &["a1"])),
            Some(WriteKind::Upsert)
        );
        let mut segment = Segment::default();
        segment.push("Account", &change(ChangeKind::Gap, &["a1"]));
        assert!(segment.is_empty());
    }
}
