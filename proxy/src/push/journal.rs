//! The write journal (`sfpg.write_journal`): every push, written on the proxy's own
//! connection before the client's transaction commits, so that a push Salesforce accepted
//! is never lost with a transaction that did not commit.

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sfpg_salesforce::Record;

use super::plan::Operation;

/// How a push ended.
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
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Pushed => "pushed",
            Outcome::Refused => "refused",
            Outcome::Failed => "failed",
            Outcome::Abandoned => "abandoned",
            Outcome::Unknown => "unknown",
        }
    }
}

/// One record of a push, as the journal keeps it: the push writes a JSON array of these
/// into `records`, and the repair reads them back.
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
    #[serde(default)]
    pub provisional: Option<String>,
    /// The fields as sent.
    pub fields: Record,
}

/// One journal entry.
#[derive(Debug, Clone)]
pub struct Entry {
    pub org: String,
    pub session: String,
    /// The client's transaction id (`pg_current_xact_id()` as text).
    pub txid: Option<String>,
    pub records: Vec<JournalRecord>,
    pub response: Value,
    pub outcome: Outcome,
    pub started_at: DateTime<Utc>,
    pub salesforce_ms: i32,
}

#[derive(Debug, Clone)]
pub struct Journal {
    pool: Pool,
}

impl Journal {
    pub fn new(pool: Pool) -> Self {
        Journal { pool }
    }

    /// Records `entry` and returns its id.
    pub async fn record(&self, entry: &Entry) -> Result<i64, String> {
        let client = self.pool.get().await.map_err(|e| e.to_string())?;
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
                    &tokio_postgres::types::Json(&entry.records),
                    &entry.response,
                    &entry.outcome.as_str(),
                    &entry.started_at,
                    &entry.salesforce_ms,
                ],
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok(row.get(0))
    }
}
