//! The SOQL the sync sends. Every REST query pages by key (`Id`, or `SystemModstamp` then
//! `Id`) with a `LIMIT`, never by `OFFSET` or by following a locator across turns, so that
//! any page can be asked for again after a crash and each turn costs exactly one request.
//! A Bulk API 2.0 query job's SOQL has neither order nor limit; its pages are followed by
//! the locators the job hands out, which stay valid as long as the job exists.

use chrono::{DateTime, SecondsFormat, Utc};
use sfpg_salesforce::SalesforceId;

use crate::plan::{ID_FIELD, SYSTEM_MODSTAMP_FIELD};

/// A position in `ORDER BY SystemModstamp, Id`: after `stamp`, or after `(stamp, id)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModstampCursor {
    pub stamp: DateTime<Utc>,
    pub id: Option<SalesforceId>,
}

/// `SELECT <fields> FROM <object>`.
fn select(object: &str, fields: &[&str]) -> String {
    format!("SELECT {} FROM {object}", fields.join(", "))
}

/// How many records the object holds: the backfill's total.
pub fn count(object: &str) -> String {
    format!("SELECT COUNT() FROM {object}")
}

/// A page of `Id` and `fields`, ordered by Id, after `after` (or from the first): the
/// backfill, the backfill of new fields, the formula refresh and the Id reconciliation.
pub fn id_page(object: &str, fields: &[&str], after: Option<&SalesforceId>, limit: u32) -> String {
    let mut list: Vec<&str> = vec![ID_FIELD];
    list.extend(
        fields
            .iter()
            .copied()
            .filter(|f| !f.eq_ignore_ascii_case(ID_FIELD)),
    );
    let mut soql = select(object, &list);
    if let Some(after) = after {
        soql.push_str(&format!(" WHERE Id > '{}'", after.as_str()));
    }
    soql.push_str(&format!(" ORDER BY Id LIMIT {limit}"));
    soql
}

/// The changes after `cursor`, oldest first, for `queryAll` (which includes soft deletes).
pub fn changes(object: &str, fields: &[&str], cursor: &ModstampCursor, limit: u32) -> String {
    let stamp = datetime_literal(cursor.stamp);
    let filter = match &cursor.id {
        Some(id) => format!(
            "{SYSTEM_MODSTAMP_FIELD} > {stamp} OR ({SYSTEM_MODSTAMP_FIELD} = {stamp} AND Id > '{}')",
            id.as_str()
        ),
        None => format!("{SYSTEM_MODSTAMP_FIELD} >= {stamp}"),
    };
    format!(
        "{} WHERE {filter} ORDER BY {SYSTEM_MODSTAMP_FIELD}, Id LIMIT {limit}",
        select(object, fields)
    )
}

/// The records with `ids`, for `queryAll` (which includes soft deletes): the records whose
/// mirror rows were locked when their page was written.
pub fn by_ids(object: &str, fields: &[&str], ids: &[SalesforceId]) -> String {
    let list = ids
        .iter()
        .map(|id| format!("'{}'", id.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    format!("{} WHERE Id IN ({list})", select(object, fields))
}

/// Every record of `object` with `fields`, for a Bulk API 2.0 query job: no `ORDER BY` and
/// no `LIMIT`, which would turn off Salesforce's PK chunking and make a large job slow.
pub fn bulk_all(object: &str, fields: &[&str]) -> String {
    select(object, fields)
}

/// The records changed from `since` on, for a Bulk API 2.0 `queryAll` job (soft deletes
/// included): an incremental backlog, read in one job. No `ORDER BY`, no `LIMIT`.
pub fn bulk_changed_since(object: &str, fields: &[&str], since: DateTime<Utc>) -> String {
    format!(
        "{} WHERE {SYSTEM_MODSTAMP_FIELD} >= {}",
        select(object, fields),
        datetime_literal(since)
    )
}

/// How many records changed from `since` on: the size of an incremental backlog.
pub fn count_changed_since(object: &str, since: DateTime<Utc>) -> String {
    format!(
        "SELECT COUNT() FROM {object} WHERE {SYSTEM_MODSTAMP_FIELD} >= {}",
        datetime_literal(since)
    )
}

/// A SOQL datetime literal, in whole seconds rounded down: SOQL takes no fractions, and
/// rounding down only widens a `>` or `>=` window.
pub fn datetime_literal(value: DateTime<Utc>) -> String {
    let seconds = DateTime::from_timestamp(value.timestamp(), 0).unwrap_or(value);
    seconds.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const FIELDS: [&str; 3] = ["Id", "SystemModstamp", "Name"];

    fn id() -> SalesforceId {
        SalesforceId::parse("001D000000IqhSLIAZ").unwrap()
    }

    #[test]
    fn pages_by_id() {
        assert_eq!(
            id_page("Account", &FIELDS, None, 200),
            "SELECT Id, SystemModstamp, Name FROM Account ORDER BY Id LIMIT 200"
        );
        assert_eq!(
            id_page("Account", &FIELDS, Some(&id()), 2000),
            "SELECT Id, SystemModstamp, Name FROM Account WHERE Id > '001D000000IqhSLIAZ' ORDER BY Id LIMIT 2000"
        );
        assert_eq!(count("Account"), "SELECT COUNT() FROM Account");
        assert_eq!(
            id_page("Account", &["Name"], Some(&id()), 2000),
            "SELECT Id, Name FROM Account WHERE Id > '001D000000IqhSLIAZ' ORDER BY Id LIMIT 2000"
        );
        assert_eq!(
            id_page("Account", &[], None, 2000),
            "SELECT Id FROM Account ORDER BY Id LIMIT 2000"
        );
    }

    #[test]
    fn changes_page_by_stamp_then_id() {
        let stamp = Utc.with_ymd_and_hms(2024, 3, 1, 12, 30, 5).unwrap();
        let from_stamp = ModstampCursor { stamp, id: None };
        assert_eq!(
            changes("Account", &FIELDS, &from_stamp, 200),
            "SELECT Id, SystemModstamp, Name FROM Account WHERE SystemModstamp >= 2024-03-01T12:30:05Z \
             ORDER BY SystemModstamp, Id LIMIT 200"
        );
        let after_record = ModstampCursor {
            stamp,
            id: Some(id()),
        };
        assert_eq!(
            changes("Account", &FIELDS, &after_record, 200),
            "SELECT Id, SystemModstamp, Name FROM Account WHERE SystemModstamp > 2024-03-01T12:30:05Z \
             OR (SystemModstamp = 2024-03-01T12:30:05Z AND Id > '001D000000IqhSLIAZ') \
             ORDER BY SystemModstamp, Id LIMIT 200"
        );
    }

    #[test]
    fn reads_records_by_id() {
        let other = SalesforceId::parse("001D000000IqhSMIAZ").unwrap();
        assert_eq!(
            by_ids("Account", &FIELDS, &[id(), other]),
            "SELECT Id, SystemModstamp, Name FROM Account \
             WHERE Id IN ('001D000000IqhSLIAZ', '001D000000IqhSMIAZ')"
        );
    }

    #[test]
    fn bulk_jobs_read_without_order_or_limit() {
        let stamp = Utc.with_ymd_and_hms(2024, 3, 1, 12, 30, 5).unwrap();
        assert_eq!(
            bulk_all("Account", &FIELDS),
            "SELECT Id, SystemModstamp, Name FROM Account"
        );
        assert_eq!(
            bulk_changed_since("Account", &FIELDS, stamp),
            "SELECT Id, SystemModstamp, Name FROM Account WHERE SystemModstamp >= 2024-03-01T12:30:05Z"
        );
        assert_eq!(
            count_changed_since("Account", stamp),
            "SELECT COUNT() FROM Account WHERE SystemModstamp >= 2024-03-01T12:30:05Z"
        );
    }

    #[test]
    fn datetimes_round_down_to_seconds() {
        let t = Utc.timestamp_millis_opt(1_700_000_000_999).unwrap();
        assert_eq!(datetime_literal(t), "2023-11-14T22:13:20Z");
    }
}
