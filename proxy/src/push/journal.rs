//! The write journal as a push writes it: every push, on the proxy's own connection,
//! before the client's transaction commits, so that a push Salesforce accepted is never
//! lost with a transaction that did not commit. The rows and their SQL belong to
//! [`sfpg_control::journal`].

use deadpool_postgres::Pool;
use sfpg_control::ControlError;

pub use sfpg_control::journal::{JournalEntry as Entry, JournalRecord, Outcome};
pub use sfpg_control::write_failures::WriteFailure;

/// Why an entry could not be written.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot reach the control database: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error(transparent)]
    Control(#[from] sfpg_control::ControlError),
}

/// A transaction on a pooled control connection; its errors carry the server's message.
async fn begin(
    client: &mut deadpool_postgres::Object,
) -> Result<tokio_postgres::Transaction<'_>, ControlError> {
    Ok(tokio_postgres::Client::transaction(client).await?)
}

async fn commit(transaction: tokio_postgres::Transaction<'_>) -> Result<(), ControlError> {
    Ok(transaction.commit().await?)
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
    pub async fn record(&self, entry: &Entry) -> Result<i64, JournalError> {
        let client = self.pool.get().await?;
        Ok(sfpg_control::journal::record(&**client, entry).await?)
    }

    /// Rewrites entry `id` with what `entry` holds now: an atomic push's entry, written
    /// before its request left, once the answer says what became of it.
    pub async fn update(&self, id: i64, entry: &Entry) -> Result<(), JournalError> {
        let client = self.pool.get().await?;
        Ok(sfpg_control::journal::update(&**client, id, entry).await?)
    }

    /// Records `entry` (its records left out) with the `records` of a large push, streamed
    /// ([`sfpg_control::journal::set_records`]), in one transaction; returns its id.
    pub async fn record_streamed(
        &self,
        entry: &Entry,
        records: impl Iterator<Item = JournalRecord>,
    ) -> Result<i64, JournalError> {
        let mut client = self.pool.get().await?;
        let transaction = begin(&mut client).await?;
        let id = sfpg_control::journal::record(&transaction, entry).await?;
        sfpg_control::journal::set_records(&transaction, id, records).await?;
        commit(transaction).await?;
        Ok(id)
    }

    /// Rewrites entry `id` with what `entry` holds now, its records those `records`
    /// yields, streamed, in one transaction: a crash half-way leaves the entry as it was.
    pub async fn update_streamed(
        &self,
        id: i64,
        entry: &Entry,
        records: impl Iterator<Item = JournalRecord>,
    ) -> Result<(), JournalError> {
        let mut client = self.pool.get().await?;
        let transaction = begin(&mut client).await?;
        sfpg_control::journal::update(&transaction, id, entry).await?;
        sfpg_control::journal::set_records(&transaction, id, records).await?;
        commit(transaction).await?;
        Ok(())
    }

    /// Rewrites the answer of entry `id` only (a bulk push's job ids).
    pub async fn update_response(
        &self,
        id: i64,
        response: &serde_json::Value,
    ) -> Result<(), JournalError> {
        let client = self.pool.get().await?;
        Ok(sfpg_control::journal::update_response(&**client, id, response).await?)
    }

    /// Keeps the records a bulk push's Salesforce refused in `sfpg.write_failures`.
    pub async fn record_failures(&self, failures: &[WriteFailure]) -> Result<(), JournalError> {
        let client = self.pool.get().await?;
        Ok(sfpg_control::write_failures::record(&**client, failures).await?)
    }

    /// Drops the failures older than `retention`.
    pub async fn purge_failures(
        &self,
        retention: std::time::Duration,
    ) -> Result<i64, JournalError> {
        let client = self.pool.get().await?;
        Ok(sfpg_control::write_failures::purge(&**client, retention).await?)
    }
}
