//! The write journal (`sfpg.write_journal`, migrations V3, V6, V9): every push the proxy
//! makes, written on a connection of its own as soon as Salesforce answers, and read back
//! by the repair, which settles the pushes whose transaction never committed and those
//! whose outcome is unknown. Both sides use [`JournalRecord`], so that a key renamed on
//! one side is a compile error on the other, not a repair that reads nothing.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sfpg_salesforce::Record;
use tokio_postgres::GenericClient;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{Json, Type};

use crate::error::ControlError;

/// What a push does to one record in Salesforce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    Create,
    Update,
    Delete,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Update => "update",
            Operation::Delete => "delete",
        }
    }
}

/// How a push ended: `sfpg.write_journal.outcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Salesforce accepted every record.
    Pushed,
    /// Salesforce refused the records; nothing was written.
    Refused,
    /// Salesforce could not be reached or did not answer.
    Failed,
    /// The session cancelled the push while its request was under way: Salesforce may or
    /// may not carry it out.
    Abandoned,
    /// The request may have reached Salesforce, but no answer came back (a cut connection,
    /// a timeout, an answer that could not be read): Salesforce may or may not have
    /// carried it out. The repair reads Salesforce again until it cannot be running.
    Unknown,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pushed => "pushed",
            Outcome::Refused => "refused",
            Outcome::Failed => "failed",
            Outcome::Abandoned => "abandoned",
            Outcome::Unknown => "unknown",
        }
    }

    fn parse(text: &str) -> Result<Self, ControlError> {
        Ok(match text {
            "pushed" => Outcome::Pushed,
            "refused" => Outcome::Refused,
            "failed" => Outcome::Failed,
            "abandoned" => Outcome::Abandoned,
            "unknown" => Outcome::Unknown,
            other => {
                return Err(ControlError::Corrupt(format!(
                    "unknown outcome {other:?} in sfpg.write_journal"
                )));
            }
        })
    }

    /// Whether Salesforce may or may not have carried the push out.
    pub fn is_uncertain(self) -> bool {
        matches!(self, Outcome::Unknown | Outcome::Abandoned)
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One record of a push, as the journal keeps it: a push's `records` are a JSON array of
/// these.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalRecord {
    pub operation: Operation,
    /// The object's API name.
    pub object: String,
    pub schema: String,
    pub table: String,
    /// The row's local `id`.
    pub row_id: i64,
    /// The record's Id: an update's or delete's, or the Id Salesforce gave a create (none
    /// when its answer never came).
    pub sfid: Option<String>,
    /// A create's provisional sfid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisional: Option<String>,
    /// The fields as sent (none in a bulk push's entry). Left out when empty: an entry of
    /// 100,000 records is a large JSON value.
    #[serde(default, skip_serializing_if = "Record::is_empty")]
    pub fields: Record,
}

/// One push, as the proxy journals it.
#[derive(Debug, Clone)]
pub struct JournalEntry {
    pub org: String,
    pub session: String,
    /// The client's transaction id (`pg_current_xact_id()` as text).
    pub txid: Option<String>,
    pub records: Vec<JournalRecord>,
    /// Salesforce's answer (the Composite response), or what stood for it.
    pub response: Value,
    pub outcome: Outcome,
    pub started_at: DateTime<Utc>,
    pub salesforce_ms: i32,
}

/// Records `entry` and returns its id.
pub async fn record(
    client: &impl GenericClient,
    entry: &JournalEntry,
) -> Result<i64, ControlError> {
    let row = client
        .query_one(
            "INSERT INTO sfpg.write_journal
                 (org_name, session, txid, records, response, outcome, started_at, salesforce_ms)
             VALUES ($1, $2, $3::text::xid8, $4, $5, $6, $7, $8)
             RETURNING id",
            &[
                &entry.org,
                &entry.session,
                &entry.txid,
                &Json(&entry.records),
                &entry.response,
                &entry.outcome.as_str(),
                &entry.started_at,
                &entry.salesforce_ms,
            ],
        )
        .await?;
    Ok(row.try_get(0)?)
}

/// Rewrites entry `id` with what `entry` now holds (its records, answer, outcome and
/// timing): a bulk push journals itself before its first upload, then again as each of its
/// jobs is created and once they have ended.
pub async fn update(
    client: &impl GenericClient,
    id: i64,
    entry: &JournalEntry,
) -> Result<(), ControlError> {
    client
        .execute(
            "UPDATE sfpg.write_journal
                SET records = $2, response = $3, outcome = $4, salesforce_ms = $5
              WHERE id = $1",
            &[
                &id,
                &Json(&entry.records),
                &entry.response,
                &entry.outcome.as_str(),
                &entry.salesforce_ms,
            ],
        )
        .await?;
    Ok(())
}

/// Sets entry `id`'s records to those `records` yields, streamed by `COPY` into a temporary
/// table and made into one `jsonb` value by the server, inside `transaction` (the table is
/// dropped at its end). For a large push (100,000 records): the caller never holds the
/// records or their JSON whole (20 and 15 MB, the JSON held twice more in tokio-postgres's
/// buffers, which keep the size of the largest message they carried), and the entry's value
/// is written once (appending chunks with `records || $2` made PostgreSQL read, rewrite and
/// compress the growing value again for each chunk: 2.3 s a write).
pub async fn set_records(
    transaction: &tokio_postgres::Transaction<'_>,
    id: i64,
    records: impl Iterator<Item = JournalRecord>,
) -> Result<(), ControlError> {
    transaction
        .batch_execute(
            "CREATE TEMPORARY TABLE sfpg_journal_records
                 (n bigint GENERATED ALWAYS AS IDENTITY, record jsonb NOT NULL)
                 ON COMMIT DROP",
        )
        .await?;
    let sink = transaction
        .copy_in("COPY sfpg_journal_records (record) FROM STDIN (FORMAT binary)")
        .await?;
    let writer = BinaryCopyInWriter::new(sink, &[Type::JSONB]);
    futures::pin_mut!(writer);
    for record in records {
        writer.as_mut().write(&[&Json(&record)]).await?;
    }
    writer.finish().await?;
    transaction
        .execute(
            "UPDATE sfpg.write_journal
                SET records = COALESCE(
                        (SELECT jsonb_agg(record ORDER BY n) FROM sfpg_journal_records),
                        '[]')
              WHERE id = $1",
            &[&id],
        )
        .await?;
    Ok(())
}

/// Rewrites only the answer of entry `id`: a bulk push's job ids as each job is created,
/// without writing its records (100,000 of them for a large push) again each time.
pub async fn update_response(
    client: &impl GenericClient,
    id: i64,
    response: &serde_json::Value,
) -> Result<(), ControlError> {
    client
        .execute(
            "UPDATE sfpg.write_journal SET response = $2 WHERE id = $1",
            &[&id, response],
        )
        .await?;
    Ok(())
}

/// What PostgreSQL says of a journaled push's transaction (`pg_xact_status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionStatus {
    Committed,
    InProgress,
    Aborted,
}

/// A push the repair has yet to settle.
#[derive(Debug, Clone)]
pub struct Unresolved {
    pub id: i64,
    pub org: String,
    pub outcome: Outcome,
    pub records: Vec<JournalRecord>,
    pub started_at: DateTime<Utc>,
    /// `None` when the push had no transaction id, or PostgreSQL no longer remembers it.
    pub transaction: Option<TransactionStatus>,
    /// How many times an entry of unknown outcome was read again.
    pub checks: i32,
    /// A bulk push's ingest jobs (`response.bulk_jobs`), each journaled before its upload;
    /// `None` for an atomic push. The entry is written before the first job, so `Some` of
    /// none is a bulk push that sent nothing.
    pub bulk_jobs: Option<Vec<String>>,
}

impl Unresolved {
    /// The ingest jobs of a bulk push; none for an atomic push.
    pub fn jobs(&self) -> &[String] {
        self.bulk_jobs.as_deref().unwrap_or_default()
    }
}

/// The pushes to settle now, oldest first: accepted ones (their transaction may not have
/// committed) and those of unknown outcome whose next reading is due.
pub async fn due(client: &impl GenericClient) -> Result<Vec<Unresolved>, ControlError> {
    let rows = client
        .query(
            "SELECT id, org_name, outcome, records, started_at, pg_xact_status(txid), checks,
                    CASE WHEN jsonb_typeof(response -> 'bulk_jobs') = 'array'
                         THEN ARRAY(SELECT jsonb_array_elements_text(response -> 'bulk_jobs'))
                    END
               FROM sfpg.write_journal
              WHERE outcome IN ('pushed', 'unknown', 'abandoned') AND resolution IS NULL
                AND (next_check_at IS NULL OR next_check_at <= now())
              ORDER BY id",
            &[],
        )
        .await?;
    rows.iter()
        .map(|row| {
            let id: i64 = row.try_get(0)?;
            let records: Value = row.try_get(3)?;
            let transaction = match row.try_get::<_, Option<&str>>(5)? {
                Some("committed") => Some(TransactionStatus::Committed),
                Some("in progress") => Some(TransactionStatus::InProgress),
                Some("aborted") => Some(TransactionStatus::Aborted),
                _ => None,
            };
            Ok(Unresolved {
                id,
                org: row.try_get(1)?,
                outcome: Outcome::parse(row.try_get(2)?)?,
                records: serde_json::from_value(records).map_err(|source| {
                    ControlError::Unparsable {
                        what: format!("sfpg.write_journal.records of entry {id}"),
                        source,
                    }
                })?,
                started_at: row.try_get(4)?,
                transaction,
                checks: row.try_get(6)?,
                bulk_jobs: row.try_get(7)?,
            })
        })
        .collect()
}

/// Takes entry `id` for repair, whichever proxy made the push: locks its row in
/// `transaction` unless another proxy's repair holds it (then `false`, without waiting),
/// and checks that it is still due. Until the transaction ends, no other proxy repairs it;
/// a proxy that dies mid-repair frees it with its connection. Settle it
/// ([`resolve`], [`schedule_check`]) in the same transaction.
pub async fn claim(transaction: &impl GenericClient, id: i64) -> Result<bool, ControlError> {
    let claimed = transaction
        .query_opt(
            "SELECT id FROM sfpg.write_journal
              WHERE id = $1 AND resolution IS NULL
                AND (next_check_at IS NULL OR next_check_at <= now())
                FOR UPDATE SKIP LOCKED",
            &[&id],
        )
        .await?;
    Ok(claimed.is_some())
}

/// How the repair settled a push: `sfpg.write_journal.resolution`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// Its transaction committed: the mirror has what Salesforce accepted.
    Committed,
    /// Its records were read again from Salesforce into the mirror.
    Repaired,
}

impl Resolution {
    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::Committed => "committed",
            Resolution::Repaired => "repaired",
        }
    }
}

/// Marks entry `id` settled.
pub async fn resolve(
    client: &impl GenericClient,
    id: i64,
    resolution: Resolution,
) -> Result<(), ControlError> {
    client
        .execute(
            "UPDATE sfpg.write_journal SET resolution = $2, resolved_at = now() WHERE id = $1",
            &[&id, &resolution.as_str()],
        )
        .await?;
    Ok(())
}

/// Counts one more reading of entry `id` (of unknown outcome) and sets the next at `at`.
pub async fn schedule_check(
    client: &impl GenericClient,
    id: i64,
    at: DateTime<Utc>,
) -> Result<(), ControlError> {
    client
        .execute(
            "UPDATE sfpg.write_journal SET checks = checks + 1, next_check_at = $2 WHERE id = $1",
            &[&id, &at],
        )
        .await?;
    Ok(())
}

/// When the next unsettled entry of unknown outcome is due to be read again.
pub async fn next_check(
    client: &impl GenericClient,
) -> Result<Option<DateTime<Utc>>, ControlError> {
    let row = client
        .query_one(
            "SELECT min(coalesce(next_check_at, now())) FROM sfpg.write_journal
              WHERE outcome IN ('unknown', 'abandoned') AND resolution IS NULL",
            &[],
        )
        .await?;
    Ok(row.try_get(0)?)
}

/// Entries the repair still has to settle: of unknown outcome (or abandoned), or accepted
/// by Salesforce in a transaction that has not committed (yet).
pub async fn pending_repair(client: &impl GenericClient) -> Result<i64, ControlError> {
    let row = client
        .query_one(
            "SELECT count(*) FROM sfpg.write_journal
              WHERE resolution IS NULL
                AND (outcome IN ('unknown', 'abandoned')
                     OR (outcome = 'pushed'
                         AND pg_xact_status(txid) IS DISTINCT FROM 'committed'))",
            &[],
        )
        .await?;
    Ok(row.try_get(0)?)
}

#[cfg(test)]
mod tests;
