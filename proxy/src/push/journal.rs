//! The write journal (`sfpg.write_journal`): every push, written on the proxy's own
//! connection before the client's transaction commits, so that a push Salesforce accepted
//! is never lost with a transaction that did not commit.

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde_json::Value;

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
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Pushed => "pushed",
            Outcome::Refused => "refused",
            Outcome::Failed => "failed",
            Outcome::Abandoned => "abandoned",
        }
    }
}

/// One journal entry.
#[derive(Debug, Clone)]
pub struct Entry {
    pub org: String,
    pub session: String,
    /// The client's transaction id (`pg_current_xact_id()` as text).
    pub txid: Option<String>,
    pub records: Value,
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
                    &entry.records,
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
