//! What can stop a sync step. Salesforce's own error (its `errorCode`, message and fields)
//! and PostgreSQL's SQLSTATE are kept whole, so that status and logs say exactly what
//! happened and the scheduler can decide between retrying, pausing and re-describing.

use sfpg_control::ControlError;
use sfpg_control::error::DbMessage;
use sfpg_salesforce::ErrorClass;
use tokio_postgres::error::SqlState;

/// A failed sync step.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Salesforce refused or did not answer, after the client's own retries.
    #[error("Salesforce: {0}")]
    Salesforce(#[from] sfpg_salesforce::Error),

    /// The mirror database failed.
    #[error("mirror database: {}", DbMessage(.0))]
    Database(#[from] tokio_postgres::Error),

    /// The object cannot be mirrored at all (not queryable, not replicateable, no
    /// `SystemModstamp`).
    #[error("{object} cannot be mirrored: {reason}")]
    NotMirrorable { object: String, reason: String },

    /// A field changed type in a way the mirror's column cannot follow in place.
    #[error(
        "{object}.{field} changed from {from} to {to}, which column {column} cannot hold; \
         {object} is paused until the change is reverted or the column is dropped"
    )]
    IncompatibleType {
        object: String,
        field: String,
        column: String,
        from: String,
        to: String,
    },

    /// A record Salesforce sent lacks what the sync relies on (an `Id`, a `SystemModstamp`).
    #[error("{object}: Salesforce sent a record {detail}")]
    MalformedRecord { object: String, detail: String },

    /// The org's control row is missing or disabled.
    #[error("org {0} is not configured or not enabled")]
    UnknownOrg(String),

    /// A request the step was waiting for was stopped before it answered (the runtime is
    /// shutting down).
    #[error("a request was interrupted: {0}")]
    Interrupted(String),

    /// The control schema holds a value the sync cannot use, or refused what the sync
    /// asked of it. Its database failures and malformed records arrive as
    /// [`SyncError::Database`] and [`SyncError::MalformedRecord`] instead, so that they get
    /// the same reactions wherever they happen.
    #[error(transparent)]
    Control(ControlError),
}

impl From<ControlError> for SyncError {
    fn from(error: ControlError) -> Self {
        match error {
            ControlError::Db(error) => SyncError::Database(error),
            ControlError::MalformedRecord { object, detail } => {
                SyncError::MalformedRecord { object, detail }
            }
            other => SyncError::Control(other),
        }
    }
}

impl SyncError {
    /// The control schema holds a value the sync cannot use: `what` says which.
    pub fn corrupt(what: impl Into<String>) -> Self {
        SyncError::Control(ControlError::Corrupt(what.into()))
    }
}

/// How the scheduler reacts to a failed step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reaction {
    /// Transient: the object tries again on a later turn.
    Retry,
    /// The org's daily API allocation is used up: pause background polling.
    OrgLimit,
    /// The org's credentials no longer work: the whole org backs off.
    OrgAuth,
    /// The object's metadata changed under the sync (a field or the object went away):
    /// describe it again before anything else.
    Redescribe,
    /// The object cannot go on until someone acts: pause it with the error as the reason.
    PauseObject,
    /// The mirror database connection is gone: the org's task restarts.
    Reconnect,
}

impl SyncError {
    /// What the scheduler should do about this error.
    pub fn reaction(&self) -> Reaction {
        match self {
            SyncError::Salesforce(error) => match error.class() {
                ErrorClass::Retryable => Reaction::Retry,
                ErrorClass::Limit => Reaction::OrgLimit,
                ErrorClass::Auth => Reaction::OrgAuth,
                ErrorClass::NotRetryable => match error.error_code() {
                    // A field or the object left describe since the plan was made.
                    Some("INVALID_FIELD" | "INVALID_TYPE" | "NOT_FOUND") => Reaction::Redescribe,
                    _ => Reaction::Retry,
                },
            },
            SyncError::Database(error) => database_reaction(error),
            SyncError::NotMirrorable { .. } | SyncError::IncompatibleType { .. } => {
                Reaction::PauseObject
            }
            SyncError::MalformedRecord { .. } | SyncError::Interrupted(_) => Reaction::Retry,
            // The org was taken over: it stops here, without another write. No connection
            // from the pool: as a lost connection, the org's task ends and starts again.
            SyncError::Control(ControlError::Fenced { .. } | ControlError::Pool(_)) => {
                Reaction::Reconnect
            }
            SyncError::UnknownOrg(_) | SyncError::Control(_) => Reaction::PauseObject,
        }
    }

    /// Whether a write was refused because the org's lease was taken over: the org is no
    /// longer this worker's.
    pub fn is_fenced(&self) -> bool {
        matches!(self, SyncError::Control(ControlError::Fenced { .. }))
    }

    /// The SQLSTATE of a database error, if PostgreSQL sent one.
    pub fn code(&self) -> Option<&SqlState> {
        match self {
            SyncError::Database(error) => error.code(),
            _ => None,
        }
    }

    /// Whether PostgreSQL refused a value (22…) or a constraint refused a row (23…): the
    /// data does not fit the table as it is.
    pub fn is_data_error(&self) -> bool {
        self.code().is_some_and(is_data_class)
    }

    /// Whether a mirror write gave up waiting for a row lock someone else (the proxy) held.
    pub fn is_lock_timeout(&self) -> bool {
        // 55P03 lock_not_available: what `lock_timeout` raises.
        self.code() == Some(&SqlState::LOCK_NOT_AVAILABLE)
    }
}

fn database_reaction(error: &tokio_postgres::Error) -> Reaction {
    if error.is_closed() {
        return Reaction::Reconnect;
    }
    let Some(code) = error.code() else {
        return Reaction::Reconnect;
    };
    // Someone altered or dropped the mirror table under us.
    let altered = [
        SqlState::UNDEFINED_TABLE,
        SqlState::UNDEFINED_COLUMN,
        SqlState::DATATYPE_MISMATCH,
    ];
    if is_data_class(code) {
        // A value the column cannot hold, or a constraint it breaks: retrying the same
        // page will fail the same way.
        Reaction::PauseObject
    } else if altered.contains(code) {
        Reaction::Redescribe
    } else if code.code().starts_with("08") || code.code().starts_with("57P") {
        // Connection-level failures and the server shutting down.
        Reaction::Reconnect
    } else {
        // Lock timeouts, serialization failures, deadlocks: try again later.
        Reaction::Retry
    }
}

/// Classes 22 (data exception: a value the column cannot hold) and 23 (integrity
/// constraint violation: a row a constraint refuses).
fn is_data_class(code: &SqlState) -> bool {
    code.code().starts_with("22") || code.code().starts_with("23")
}

/// The sync's `Result`.
pub type Result<T, E = SyncError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use sfpg_testkit::TestDatabase;

    use super::*;

    /// What the mirror writer (in sfpg-control) fails with gets the reaction it had when
    /// the writer was the sync's: a value the column cannot hold pauses the object, a
    /// record without an Id is tried again, a damaged control row pauses the object.
    #[tokio::test]
    async fn control_errors_keep_their_reactions() {
        let db = TestDatabase::create().await;
        let client = db.connect().await;
        let too_long = client
            .batch_execute("CREATE TEMP TABLE t (v varchar(2)); INSERT INTO t VALUES ('abc')")
            .await
            .unwrap_err();
        let error = SyncError::from(ControlError::from(too_long));
        assert_eq!(error.code(), Some(&SqlState::STRING_DATA_RIGHT_TRUNCATION));
        assert!(error.is_data_error());
        assert_eq!(error.reaction(), Reaction::PauseObject);
        let missing = client
            .batch_execute("SELECT * FROM no_such_table")
            .await
            .unwrap_err();
        assert_eq!(
            SyncError::from(ControlError::from(missing)).reaction(),
            Reaction::Redescribe
        );
        let malformed = SyncError::from(ControlError::MalformedRecord {
            object: "Account".into(),
            detail: "without an Id".into(),
        });
        assert!(matches!(malformed, SyncError::MalformedRecord { .. }));
        assert_eq!(malformed.reaction(), Reaction::Retry);
        let corrupt = SyncError::corrupt("unknown phase");
        assert_eq!(corrupt.reaction(), Reaction::PauseObject);
        assert!(corrupt.to_string().contains("unknown phase"), "{corrupt}");
    }
}
