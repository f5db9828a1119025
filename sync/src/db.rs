//! The mirror database as an org's scheduler, stream and event streams reach it: a
//! connection taken from the worker's pool for one turn or one batch (what the supervisor
//! gives them), or one connection of their own (a test or a benchmark driving a scheduler
//! directly). Either way, what they get is a `tokio_postgres::Client`.

use std::ops::{Deref, DerefMut};

use sfpg_control::ControlError;
use sfpg_control::connect::{Pool, Pooled};
use sfpg_control::leases::{self, Fence};

use crate::error::Result;

/// Where an org's connections come from.
pub enum Database {
    /// The worker's pool: connections are not held between turns.
    Pool(Pool),
    /// One connection, held for the org's lifetime.
    Own(tokio_postgres::Client),
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::Pool(pool) => f.debug_tuple("Pool").field(&pool.status()).finish(),
            Database::Own(_) => f.write_str("Own"),
        }
    }
}

impl From<tokio_postgres::Client> for Database {
    fn from(client: tokio_postgres::Client) -> Self {
        Database::Own(client)
    }
}

impl From<Pool> for Database {
    fn from(pool: Pool) -> Self {
        Database::Pool(pool)
    }
}

impl Database {
    /// A connection, for as long as the returned value lives.
    pub async fn get(&mut self) -> Result<Connection<'_>> {
        Ok(match self {
            Database::Pool(pool) => {
                Connection::Pooled(Box::new(pool.get().await.map_err(ControlError::from)?))
            }
            Database::Own(client) => Connection::Own(client),
        })
    }
}

/// A connection from [`Database::get`].
pub enum Connection<'a> {
    Pooled(Box<Pooled>),
    Own(&'a mut tokio_postgres::Client),
}

impl Deref for Connection<'_> {
    type Target = tokio_postgres::Client;

    fn deref(&self) -> &Self::Target {
        match self {
            Connection::Pooled(pooled) => pooled,
            Connection::Own(client) => client,
        }
    }
}

impl DerefMut for Connection<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        match self {
            Connection::Pooled(pooled) => pooled,
            Connection::Own(client) => client,
        }
    }
}

impl Database {
    /// Runs `write` in one transaction for the org, checked by its lease (`fence`), and
    /// commits it: how an org's control rows are written outside the mirror writer.
    pub async fn write<T>(
        &mut self,
        fence: Option<&Fence>,
        write: impl AsyncFnOnce(&tokio_postgres::Transaction<'_>) -> Result<T, ControlError>,
    ) -> Result<T> {
        let mut connection = self.get().await?;
        let transaction = leases::begin(&mut *connection, fence, None).await?;
        let value = write(&transaction).await?;
        transaction.commit().await?;
        Ok(value)
    }
}
