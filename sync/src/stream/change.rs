//! A change event as the apply path needs it, and what it becomes for the mirror writer:
//! partial records for an update, whole records for a create or an undelete, Ids for a
//! delete, records to read again for a gap.
//!
//! Events carry no `SystemModstamp`, which the writer's version guard compares, so a record
//! written from an event is stamped with the best estimate of its version's
//! `SystemModstamp` the event gives. Salesforce stamps a record when its DML runs (a user's
//! change sets `LastModifiedDate` and `SystemModstamp` alike, to the second) and commits
//! later, so the version's stamp lies between the event's `LastModifiedDate` and its
//! `commitTimestamp` truncated to the second. The stamp is:
//! - the event's `LastModifiedDate`, when it has one no more than a second before the
//!   commit second: the DML's own time, exact for every user's create and update, including
//!   a commit that straddled a second boundary;
//! - the commit time truncated to the second otherwise (no `LastModifiedDate`, or an older
//!   one: an automated change leaves `LastModifiedDate` alone, and an import may set it to
//!   any past date), never below the version's stamp.
//!
//! Either way, for one record:
//! - a later version's `SystemModstamp` is never below an earlier version's stamp: a poll or
//!   a write-back of a newer version always passes the guard (`<=`) over a row written from
//!   an older event;
//! - an event's stamp is never below the previous version's `SystemModstamp` (that version
//!   committed before this one's DML ran): an event always passes over a row polled at an
//!   older version, and rewrites the same version's row only if a value differs;
//! - only an older event arriving after a newer poll within the same second passes the
//!   guard; the newer version's own event follows it in replay order (events are delivered
//!   in commit order) and restores the newer values.
//!
//! Where the stamp is above the version's (an automated change, or an event without
//! `LastModifiedDate` whose commit straddled a second), the mirror holds it until the
//! record changes again: a poll of the same version cannot pass the guard. Taking
//! `LastModifiedDate` first keeps that to changes a user did not make.

use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;
use sfpg_salesforce::Record;

use crate::plan::{ID_FIELD, IS_DELETED_FIELD, SYSTEM_MODSTAMP_FIELD};

/// The audit field whose value is the DML's time for a user's change.
const LAST_MODIFIED_DATE_FIELD: &str = "LastModifiedDate";

/// What happened to an event's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Create,
    Update,
    Delete,
    Undelete,
    /// `GAP_CREATE`, `GAP_UPDATE`, `GAP_DELETE`, `GAP_UNDELETE`: read the records again.
    Gap,
    /// `GAP_OVERFLOW`: the rest of a huge transaction's changes to the entity are not
    /// published; catch the entity up by polling.
    Overflow,
}

/// One change event, its fields under their REST names (compound fields spread out:
/// `BillingAddress.City` is `BillingCity`), explicit nulls kept.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub replay_id: i64,
    pub entity: String,
    pub record_ids: Vec<String>,
    pub kind: ChangeKind,
    pub transaction_key: String,
    pub sequence_number: i64,
    /// `commitTimestamp`, in milliseconds since the epoch.
    pub commit_timestamp: i64,
    /// Whether sfpg's own writes caused it (`changeOrigin` carries sfpg's `client=`).
    pub echo: bool,
    pub fields: Record,
    /// A part of a compound `Name` changed (`Name.FirstName`): the full `Name`, which
    /// Salesforce derives from the parts and the event does not carry, is read again.
    pub name_parts_changed: bool,
}

/// Whether `change_origin` (`com/salesforce/api/rest/62.0;client=sfpg`) names `client` as
/// the writer.
pub fn is_echo(change_origin: &str, client: &str) -> bool {
    change_origin
        .split(';')
        .filter_map(|part| part.trim().strip_prefix("client="))
        .any(|named| named == client)
}

impl Change {
    /// When it committed.
    pub fn commit_at(&self) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(self.commit_timestamp)
            .single()
            .unwrap_or_default()
    }

    /// The version the guard compares, in Salesforce's layout: `LastModifiedDate` when it is
    /// at most a second before the commit second, else the commit time truncated to the
    /// second (see the module's documentation).
    pub fn stamp(&self) -> String {
        let commit_second = self.commit_timestamp.div_euclid(1000);
        let seconds = match self.last_modified_second() {
            Some(modified) if (commit_second - 1..=commit_second).contains(&modified) => modified,
            _ => commit_second,
        };
        Utc.timestamp_opt(seconds, 0)
            .single()
            .unwrap_or_default()
            .format("%Y-%m-%dT%H:%M:%S%.3f+0000")
            .to_string()
    }

    /// The event's `LastModifiedDate`, in whole seconds since the epoch, when it carries one
    /// (`2024-03-01T12:00:00.000Z` from either transport; Salesforce's REST layout
    /// `+0000` too).
    fn last_modified_second(&self) -> Option<i64> {
        let text = self.fields.get(LAST_MODIFIED_DATE_FIELD)?.as_str()?;
        sfpg_salesforce::datetime::parse(text).map(|at| at.timestamp())
    }

    /// The records it writes, one per record id: its fields, the Id and the stamp. A create
    /// or an undelete says the record is not deleted.
    pub fn records(&self) -> Vec<Record> {
        let stamp = self.stamp();
        self.record_ids
            .iter()
            .map(|id| {
                let mut record = self.fields.clone();
                record.insert(ID_FIELD.to_owned(), Value::String(id.clone()));
                record.insert(
                    SYSTEM_MODSTAMP_FIELD.to_owned(),
                    Value::String(stamp.clone()),
                );
                if matches!(self.kind, ChangeKind::Create | ChangeKind::Undelete) {
                    record.insert(IS_DELETED_FIELD.to_owned(), Value::Bool(false));
                }
                record
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn change(kind: ChangeKind, commit_timestamp: i64, fields: Value) -> Change {
        Change {
            replay_id: 7,
            entity: "Account".into(),
            record_ids: vec!["001000000000001AAA".into(), "001000000000002AAA".into()],
            kind,
            transaction_key: "t1".into(),
            sequence_number: 1,
            commit_timestamp,
            echo: false,
            fields: fields.as_object().cloned().unwrap_or_default(),
            name_parts_changed: false,
        }
    }

    #[test]
    fn the_stamp_is_the_commit_time_to_the_second_without_last_modified_date() {
        // 2024-03-01T12:00:00.999Z
        let update = change(ChangeKind::Update, 1_709_294_400_999, json!({}));
        assert_eq!(update.stamp(), "2024-03-01T12:00:00.000+0000");
        assert_eq!(update.commit_at().timestamp_subsec_millis(), 999);
    }

    #[test]
    fn the_stamp_is_last_modified_date_when_the_commit_straddled_a_second() {
        // DML at 12:00:00, commit at 12:00:01.200: Salesforce's SystemModstamp is 12:00:00.
        let straddled = change(
            ChangeKind::Update,
            1_709_294_401_200,
            json!({"LastModifiedDate": "2024-03-01T12:00:00.000Z"}),
        );
        assert_eq!(straddled.stamp(), "2024-03-01T12:00:00.000+0000");
        // The same second, in Salesforce's REST layout.
        let same = change(
            ChangeKind::Create,
            1_709_294_400_400,
            json!({"LastModifiedDate": "2024-03-01T12:00:00.000+0000"}),
        );
        assert_eq!(same.stamp(), "2024-03-01T12:00:00.000+0000");
    }

    #[test]
    fn an_older_or_unreadable_last_modified_date_leaves_the_commit_second() {
        // An automated change keeps the user's older LastModifiedDate; an import can set any
        // date; the stamp must not fall below the previous version's, so neither is used.
        for fields in [
            json!({"LastModifiedDate": "2024-03-01T11:59:58.000Z"}),
            json!({"LastModifiedDate": "2019-01-01T00:00:00.000Z"}),
            json!({"LastModifiedDate": "2024-03-01T12:00:05.000Z"}),
            json!({"LastModifiedDate": "yesterday"}),
            json!({"LastModifiedDate": null}),
        ] {
            let update = change(ChangeKind::Update, 1_709_294_400_500, fields.clone());
            assert_eq!(update.stamp(), "2024-03-01T12:00:00.000+0000", "{fields}");
        }
    }

    #[test]
    fn each_record_id_gets_the_fields_with_explicit_nulls() {
        let update = change(
            ChangeKind::Update,
            1_709_294_400_000,
            json!({"BillingCity": "Paris", "Phone": null, "LastModifiedDate": "2024-03-01T12:00:00.000Z"}),
        );
        let records = update.records();
        assert_eq!(records.len(), 2);
        assert_eq!(records[1]["Id"], "001000000000002AAA");
        assert_eq!(records[0]["Phone"], Value::Null);
        assert_eq!(records[0]["BillingCity"], "Paris");
        assert!(!records[0].contains_key("IsDeleted"));
        assert_eq!(
            change(ChangeKind::Undelete, 0, json!({})).records()[0]["IsDeleted"],
            false
        );
    }

    #[test]
    fn echoes_are_told_by_the_client_in_change_origin() {
        assert!(is_echo("com/salesforce/api/rest/62.0;client=sfpg", "sfpg"));
        assert!(!is_echo(
            "com/salesforce/api/rest/62.0;client=sfpgx",
            "sfpg"
        ));
        assert!(!is_echo("com/salesforce/api/soap/62.0", "sfpg"));
        assert!(!is_echo("", "sfpg"));
    }
}
