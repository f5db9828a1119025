//! What can go wrong when sfpg reads or writes schema `sfpg` and the mirror: one error for
//! the whole crate, each variant keeping its source, so that callers (the CLI, the sync,
//! the proxy) can tell a name the user typed wrong from a database that went away.

use thiserror::Error;
use tokio_postgres::error::SqlState;

use crate::master_key::MasterKeyError;

#[derive(Debug, Error)]
pub enum ControlError {
    #[error(
        "invalid org name {0:?}: use lower-case letters, digits and underscores, starting with a letter (at most 63)"
    )]
    InvalidName(String),
    #[error(
        "invalid schema name {0:?}: use lower-case letters, digits and underscores, starting with a letter and not with pg_ (at most 63)"
    )]
    InvalidSchemaName(String),
    #[error("an org named {0} already exists")]
    Exists(String),
    #[error("schema {0} already exists and does not belong to sfpg; choose another with --schema")]
    SchemaTaken(String),
    #[error("schema {schema} is already used by org {org}")]
    SchemaInUse { schema: String, org: String },
    #[error("no org named {0}")]
    NotFound(String),
    #[error("batch size must be between 200 and 2000, got {0}")]
    BatchSize(u32),
    #[error("a rate limit needs at least 1 request per a period longer than 0")]
    BadRate,
    #[error("the daily budget share must be above 0% and at most 100%")]
    BadShare,
    #[error("the bulk threshold must be a number of records of at least 1, or off")]
    BadBulkThreshold,
    #[error("org {org} has no object {object}")]
    UnknownObject { org: String, object: String },
    #[error(
        "{0:?} is not an object API name: use letters, digits and underscores, starting with a letter (Account, Invoice__c)"
    )]
    InvalidObjectName(String),
    #[error("invalid {which}: {}", setting_problem(source))]
    Setting {
        /// The setting: `login URL`, `API version`, `CA certificate`…
        which: &'static str,
        #[source]
        source: sfpg_salesforce::Error,
    },
    /// A value in schema `sfpg` that sfpg cannot use.
    #[error("control schema data is damaged: {0}")]
    Corrupt(String),
    /// A JSON column of schema `sfpg` that does not parse as the type that wrote it.
    #[error("control schema data is damaged: {what} does not parse: {source}")]
    Unparsable {
        /// The column and row, e.g. `sfpg.objects.mirrored_fields of Account`.
        what: String,
        #[source]
        source: serde_json::Error,
    },
    /// A record Salesforce sent lacks what the mirror relies on (an `Id`, a value in the
    /// form of its type).
    #[error("{object}: Salesforce sent a record {detail}")]
    MalformedRecord { object: String, detail: String },
    /// A page of a Bulk API 2.0 query job whose header row does not name the fields the
    /// query asked for, in their order.
    #[error("{object}: Salesforce sent CSV with {found} where the query asked for {expected}")]
    CsvColumns {
        object: String,
        expected: String,
        found: String,
    },
    /// A caller handed the writer something it cannot write (fields not starting with
    /// `Id`, records without a value per field).
    #[error("cannot write {object}: {detail}")]
    Unwritable { object: String, detail: String },
    /// A write for an org whose lease this worker no longer holds at the epoch it took: another
    /// worker took the org over (or the lease was released). Nothing of the write is kept.
    #[error(
        "org {org}: the lease taken at epoch {epoch} is no longer held ({now}); the write was refused"
    )]
    Fenced {
        org: String,
        epoch: i64,
        /// Who holds the lease now, and at which epoch.
        now: String,
    },
    /// No connection could be had from the worker's pool (the database is unreachable).
    #[error("database connection pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error(transparent)]
    PageTooLarge(#[from] crate::writer::PageTooLarge),
    #[error(transparent)]
    Key(#[from] MasterKeyError),
    #[error("database error: {}", DbMessage(.0))]
    Db(#[from] tokio_postgres::Error),
}

impl ControlError {
    /// The database error underneath, if that is what this is.
    pub fn as_database(&self) -> Option<&tokio_postgres::Error> {
        match self {
            ControlError::Db(error) => Some(error),
            _ => None,
        }
    }

    /// The SQLSTATE PostgreSQL answered with, if it did.
    pub fn code(&self) -> Option<&SqlState> {
        self.as_database().and_then(tokio_postgres::Error::code)
    }
}

/// What is wrong with a setting, without the client's "invalid Salesforce configuration"
/// that [`ControlError::Setting`] already says.
fn setting_problem(error: &sfpg_salesforce::Error) -> String {
    match error {
        sfpg_salesforce::Error::Config(problem) => problem.clone(),
        other => other.to_string(),
    }
}

/// A database error as people need to read it: the server's severity, message, SQLSTATE
/// and detail, which `tokio_postgres::Error`'s own `Display` ("db error") leaves to its
/// source; otherwise that `Display` and its source.
#[derive(Debug, Clone, Copy)]
pub struct DbMessage<'a>(pub &'a tokio_postgres::Error);

impl std::fmt::Display for DbMessage<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Some(db) = self.0.as_db_error() else {
            write!(f, "{}", self.0)?;
            if let Some(source) = std::error::Error::source(self.0) {
                write!(f, ": {source}")?;
            }
            return Ok(());
        };
        write!(
            f,
            "{}: {} (SQLSTATE {})",
            db.severity(),
            db.message(),
            db.code().code()
        )?;
        if let Some(detail) = db.detail() {
            write!(f, "; {detail}")?;
        }
        Ok(())
    }
}
