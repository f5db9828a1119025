//! A write the proxy refuses, as the PostgreSQL error the client receives: SQLSTATE,
//! message, Salesforce's code in DETAIL, and the table and column it is about.
//!
//! Salesforce's codes map to the SQLSTATEs a PostgreSQL client already handles:
//!
//! | Salesforce | SQLSTATE |
//! |---|---|
//! | REQUIRED_FIELD_MISSING | 23502 not_null_violation |
//! | DUPLICATE_VALUE | 23505 unique_violation |
//! | INVALID_CROSS_REFERENCE_KEY, FIELD_INTEGRITY_EXCEPTION | 23503 foreign_key_violation |
//! | FIELD_CUSTOM_VALIDATION_EXCEPTION | 23514 check_violation |
//! | STRING_TOO_LONG | 22001 string_data_right_truncation |
//! | INVALID_FIELD_FOR_INSERT_UPDATE, read-only field | 428C9 generated_always |
//! | INSUFFICIENT_ACCESS_* | 42501 insufficient_privilege |
//! | REQUEST_LIMIT_EXCEEDED | 53400 configuration_limit_exceeded |
//! | UNABLE_TO_LOCK_ROW (after retries) | 55P03 lock_not_available |
//! | cancel | 57014 query_canceled |
//! | Salesforce unreachable before the request left | 08006 connection_failure |
//! | the request may have reached Salesforce, no answer (cut, timeout, 500) | 08007 transaction_resolution_unknown |
//!
//! Other record errors (a bad picklist value, a number out of range) are data errors,
//! 22000; other API errors are 58000 system_error.

use sfpg_salesforce::{Error as SalesforceError, RecordError};
use tokio_postgres::error::SqlState;

use super::catalog::ObjectHandle;
use super::journal::JournalError;
use super::plan::SpoolError;

/// The error a refused transaction ends with. Boxed, so that results carrying it stay
/// small; its fields read through [`RefusalFields`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(Box<RefusalFields>);

/// What a [`Refusal`] says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusalFields {
    /// The SQLSTATE, such as `23505` unique_violation.
    pub sqlstate: SqlState,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
    pub schema: Option<String>,
    pub table: Option<String>,
    pub column: Option<String>,
    /// Salesforce may have carried out what was refused (its answer never came, or the
    /// client cancelled it under way): the transaction's outcome is unknown.
    pub outcome_unknown: bool,
}

impl std::ops::Deref for Refusal {
    type Target = RefusalFields;

    fn deref(&self) -> &RefusalFields {
        &self.0
    }
}

impl Refusal {
    pub fn new(sqlstate: SqlState, message: impl Into<String>) -> Self {
        Refusal(Box::new(RefusalFields {
            sqlstate,
            message: message.into(),
            detail: None,
            hint: None,
            schema: None,
            table: None,
            column: None,
            outcome_unknown: false,
        }))
    }

    /// Marks the refusal of a push Salesforce may have carried out.
    pub fn outcome_unknown(mut self) -> Self {
        self.0.outcome_unknown = true;
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.0.detail = Some(detail.into());
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.0.hint = Some(hint.into());
        self
    }

    pub fn table(mut self, schema: &str, table: &str) -> Self {
        self.0.schema = Some(schema.to_owned());
        self.0.table = Some(table.to_owned());
        self
    }

    pub fn column(mut self, column: impl Into<String>) -> Self {
        self.0.column = Some(column.into());
        self
    }

    /// The same fields at FATAL severity: the session ends after them.
    pub fn fatal_fields(&self) -> Vec<(u8, String)> {
        let mut fields = self.fields();
        for (code, value) in &mut fields {
            if matches!(code, b'S' | b'V') {
                "FATAL".clone_into(value);
            }
        }
        fields
    }

    /// The ErrorResponse fields, in the order PostgreSQL sends them.
    pub fn fields(&self) -> Vec<(u8, String)> {
        let mut fields = vec![
            (b'S', "ERROR".to_owned()),
            (b'V', "ERROR".to_owned()),
            (b'C', self.sqlstate.code().to_owned()),
            (b'M', self.message.clone()),
        ];
        let optional = [
            (b'D', &self.detail),
            (b'H', &self.hint),
            (b's', &self.schema),
            (b't', &self.table),
            (b'c', &self.column),
        ];
        fields.extend(
            optional
                .into_iter()
                .filter_map(|(code, value)| value.clone().map(|v| (code, v))),
        );
        fields
    }
}

impl Refusal {
    /// The server's own error (an ErrorResponse's fields), to pass on as it was.
    pub fn from_server(fields: &crate::net::messages::backend::Fields) -> Self {
        let get = |code: u8| fields.get(code).map(str::to_owned);
        Refusal(Box::new(RefusalFields {
            sqlstate: SqlState::from_code(fields.code()),
            message: fields.message().to_owned(),
            detail: get(b'D'),
            hint: get(b'H'),
            schema: get(b's'),
            table: get(b't'),
            column: get(b'c'),
            outcome_unknown: false,
        }))
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.sqlstate.code())
    }
}

/// The SQLSTATE for a Salesforce `errorCode` or `statusCode`.
pub fn sqlstate_for(code: &str) -> SqlState {
    match code {
        "REQUIRED_FIELD_MISSING" => SqlState::NOT_NULL_VIOLATION,
        "DUPLICATE_VALUE" => SqlState::UNIQUE_VIOLATION,
        "INVALID_CROSS_REFERENCE_KEY" | "FIELD_INTEGRITY_EXCEPTION" => {
            SqlState::FOREIGN_KEY_VIOLATION
        }
        "FIELD_CUSTOM_VALIDATION_EXCEPTION" => SqlState::CHECK_VIOLATION,
        "STRING_TOO_LONG" => SqlState::STRING_DATA_RIGHT_TRUNCATION,
        "INVALID_FIELD_FOR_INSERT_UPDATE" => SqlState::GENERATED_ALWAYS,
        code if code.starts_with("INSUFFICIENT_ACCESS") => SqlState::INSUFFICIENT_PRIVILEGE,
        "REQUEST_LIMIT_EXCEEDED" => SqlState::CONFIGURATION_LIMIT_EXCEEDED,
        "UNABLE_TO_LOCK_ROW" => SqlState::LOCK_NOT_AVAILABLE,
        _ => SqlState::DATA_EXCEPTION,
    }
}

/// A record Salesforce refused: its error as the client sees it. `operation` is what was
/// asked (`create`), `row_id` the row's local id.
pub fn from_record_error(
    error: &RecordError,
    object: &ObjectHandle,
    operation: &str,
    row_id: i64,
) -> Refusal {
    let mut refusal = Refusal::new(
        sqlstate_for(&error.status_code),
        format!(
            "Salesforce refused to {operation} {} (row {row_id} of {}.{}): {}",
            object.object, object.schema, object.table, error.message
        ),
    )
    .detail(error.status_code.clone())
    .table(&object.schema, &object.table);
    if let Some(field) = error.fields.first() {
        let column = object
            .columns
            .iter()
            .find(|c| c.field.eq_ignore_ascii_case(field))
            .map_or_else(|| field.to_ascii_lowercase(), |c| c.column.clone());
        refusal = refusal.column(column);
    }
    refusal
}

/// Where a bulk push keeps what it does not hold in memory.
const SPOOL_HINT: &str = "A push of more records than one atomic request carries keeps their values, the rows' images from before the transaction, and each ingest job's CSV, in temporary files (TMPDIR); check that it has room.";

/// The refusal of a plan whose spool file failed while it was planned: nothing has been
/// sent.
pub fn unspooled(error: SpoolError) -> Refusal {
    Refusal::new(SqlState::IO_ERROR, format!("sfpg proxy: {error}"))
        .detail("Nothing was sent to Salesforce; the transaction was rolled back.")
        .hint(SPOOL_HINT)
}

/// The refusal of a push (`what`: "push", "bulk push") whose write journal entry could not
/// be written before anything was sent: without it, a crash while Salesforce carries the
/// push out would leave nothing to repair the mirror from, so nothing is sent. Its
/// SQLSTATE is the server's when the server refused the entry (a privilege, a constraint),
/// 08006 when it could not be reached.
pub fn unjournaled(error: &(dyn std::error::Error + 'static), what: &str) -> Refusal {
    let sqlstate = match error.downcast_ref::<JournalError>() {
        Some(JournalError::Control(error)) => error.code().cloned(),
        Some(JournalError::Pool(_)) | None => None,
    }
    .unwrap_or(SqlState::CONNECTION_FAILURE);
    Refusal::new(
        sqlstate,
        format!("sfpg proxy: cannot write the {what}'s entry in the write journal: {error}"),
    )
    .detail("Nothing was sent to Salesforce; the transaction was rolled back.")
    .hint("The journal keeps each push before it leaves (a bulk push, each ingest job's id before its upload), so that a crash cannot lose what Salesforce saved; a push does not run without it.")
}

/// The refusal of a COMMIT whose server connection ended (`cause`) during its push: the
/// transaction is gone with the connection. Before anything could have been sent (`sent`
/// false), nothing reached Salesforce: 08006 connection_failure. After, Salesforce may hold
/// the transaction's changes: 08007, and the write journal's repair brings the mirror in
/// line with what it holds.
pub fn server_lost(sent: bool, cause: &str) -> Refusal {
    if sent {
        Refusal::new(
            SqlState::from_code("08007"),
            format!("sfpg proxy: the connection to the database ended during the push to Salesforce ({cause}); Salesforce may hold the transaction's changes"),
        )
        .detail("The local transaction is gone with the connection. The write journal reads the pushed records from Salesforce again; the mirror then shows what Salesforce holds.")
    } else {
        Refusal::new(
            SqlState::CONNECTION_FAILURE,
            format!("sfpg proxy: the connection to the database ended during COMMIT ({cause})"),
        )
        .detail("Nothing was sent to Salesforce; the transaction is gone with the connection.")
    }
}

/// The refusal of a push whose transaction declared `WITH HOLD` cursor `cursor`: the
/// server computes it at COMMIT, which comes after Salesforce has accepted the changes,
/// and a failure there could no longer undo them. Nothing is sent.
pub fn held_cursor(cursor: &str) -> Refusal {
    Refusal::new(
        SqlState::FEATURE_NOT_SUPPORTED,
        format!(
            "cursor \"{cursor}\" is declared WITH HOLD in a transaction that writes to Salesforce"
        ),
    )
    .detail("The database computes a WITH HOLD cursor at COMMIT, after the push to Salesforce, where its failure could no longer undo the push. Nothing was sent to Salesforce; the transaction was rolled back.")
    .hint("CLOSE the cursor before COMMIT, or declare it in a transaction of its own.")
}

/// The error of a COMMIT the database refused after Salesforce had accepted the push: the
/// local transaction is rolled back while Salesforce holds its changes, an outcome the
/// client must not take for "nothing was written" (and retry).
pub fn commit_failed_after_push(fields: &crate::net::messages::backend::Fields) -> Refusal {
    Refusal::new(
        SqlState::from_code("08007"),
        format!(
            "sfpg proxy: Salesforce accepted this transaction's changes, then the database refused its COMMIT: {} ({})",
            fields.message(),
            fields.code()
        ),
    )
    .detail("Salesforce holds the changes to mirrored tables; the rest of the local transaction was rolled back. The write journal reads the pushed records from Salesforce again; the mirror then shows what Salesforce holds.")
    .hint("Do not run the transaction again as it was: its changes to mirrored tables are in Salesforce.")
}

/// The refusal of a bulk push whose refused rows cannot be put back, because their images
/// from before the transaction cannot be read from the spool: Salesforce holds the
/// accepted records, so the transaction is rolled back with 08007 and journal entry
/// `journal_id` is left to the repair, as for a push of unknown outcome.
pub fn unrestored(error: &SpoolError, journal_id: Option<i64>) -> Refusal {
    Refusal::new(
        SqlState::from_code("08007"),
        format!("sfpg proxy: Salesforce saved some of the records of this bulk push, and the refused ones cannot be put back: {error}"),
    )
    .detail(left_to_the_journal(journal_id, ""))
    .hint(SPOOL_HINT)
}

/// The refusal of a bulk push one of whose ingest jobs could not be followed to its end:
/// Salesforce may have saved some of its records, so the transaction is rolled back with
/// 08007 and journal entry `journal_id` reads them once the jobs have ended.
pub fn unfollowed(journal_id: Option<i64>) -> Refusal {
    Refusal::new(
        SqlState::from_code("08007"),
        "Salesforce may have saved some of the records of this bulk push: following one of its ingest jobs failed",
    )
    .detail(left_to_the_journal(journal_id, " once the jobs have ended"))
}

/// The DETAIL of a bulk push rolled back while Salesforce may hold some of its records:
/// which journal entry reads them again (`when`: from when on).
fn left_to_the_journal(journal_id: Option<i64>, when: &str) -> String {
    let entry = journal_id.map_or_else(|| "?".to_owned(), |id| id.to_string());
    format!(
        "The local transaction was rolled back. The write journal's entry {entry} reads the records from Salesforce again{when}; the mirror then shows what Salesforce holds."
    )
}

/// A request that failed as a whole (`what` says which): unreachable, timed out, over the
/// limit, not allowed, or an error Salesforce returned for the request.
pub fn from_salesforce_error(error: &SalesforceError, what: &str) -> Refusal {
    if let Some(api) = error.api_errors().first() {
        // A request-level error that names no constraint is the system's, not the data's.
        let sqlstate = match sqlstate_for(&api.error_code) {
            SqlState::DATA_EXCEPTION => SqlState::SYSTEM_ERROR,
            known => known,
        };
        let mut refusal = Refusal::new(
            sqlstate,
            format!("Salesforce refused to {what}: {}", api.message),
        )
        .detail(api.error_code.clone());
        if let Some(field) = api.fields.first() {
            refusal = refusal.column(field.to_ascii_lowercase());
        }
        return refusal;
    }
    if error.is_timeout() {
        return Refusal::new(
            SqlState::QUERY_CANCELED,
            format!("Salesforce did not answer in time ({what})"),
        )
        .detail(error.to_string());
    }
    match error {
        SalesforceError::Transport { .. } if error.is_connect() => Refusal::new(
            SqlState::CONNECTION_FAILURE,
            format!("cannot reach Salesforce to {what}: nothing was sent"),
        )
        .detail(error.to_string()),
        SalesforceError::Transport { .. } => Refusal::new(
            SqlState::CONNECTION_FAILURE,
            format!("lost the connection to Salesforce ({what})"),
        )
        .detail(error.to_string()),
        SalesforceError::Auth { error: code, .. } => Refusal::new(
            SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
            format!("Salesforce refused the proxy's login ({what})"),
        )
        .detail(code.clone()),
        SalesforceError::UploadSpool { .. } => Refusal::new(
            SqlState::IO_ERROR,
            format!("sfpg proxy: cannot {what}: {error}"),
        )
        .hint(SPOOL_HINT),
        _ => Refusal::new(SqlState::SYSTEM_ERROR, format!("cannot {what}: {error}")),
    }
}

/// The refusal of a push that may have reached Salesforce without an answer coming back:
/// PostgreSQL's 08007 transaction_resolution_unknown, never "nothing was committed". The
/// caller adds to the DETAIL what the journal will do.
pub fn unknown_outcome(error: &SalesforceError) -> Refusal {
    let how = if error.is_timeout() {
        "Salesforce did not answer in time"
    } else if error.status().is_some() {
        "Salesforce answered with an error that does not say whether it applied the request"
    } else {
        "the connection to Salesforce broke after the request was sent"
    };
    Refusal::new(
        SqlState::TRANSACTION_RESOLUTION_UNKNOWN,
        format!("the outcome of the push to Salesforce is unknown: {how}"),
    )
    .detail(format!("{error}."))
    .hint("Do not simply retry: read the rows again once the mirror shows the outcome; a retried insert could create the records twice.")
    .outcome_unknown()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn salesforce_codes_map_to_the_designs_sqlstates() {
        for (code, sqlstate) in [
            ("REQUIRED_FIELD_MISSING", "23502"),
            ("DUPLICATE_VALUE", "23505"),
            ("INVALID_CROSS_REFERENCE_KEY", "23503"),
            ("FIELD_INTEGRITY_EXCEPTION", "23503"),
            ("FIELD_CUSTOM_VALIDATION_EXCEPTION", "23514"),
            ("STRING_TOO_LONG", "22001"),
            ("INVALID_FIELD_FOR_INSERT_UPDATE", "428C9"),
            ("INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY", "42501"),
            ("INSUFFICIENT_ACCESS_OR_READONLY", "42501"),
            ("REQUEST_LIMIT_EXCEEDED", "53400"),
            ("UNABLE_TO_LOCK_ROW", "55P03"),
            ("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "22000"),
        ] {
            // The design's table, in its own words: the codes as PostgreSQL documents them.
            assert_eq!(sqlstate_for(code).code(), sqlstate, "{code}");
        }
    }

    /// The value of the error field `code` (b'C', b'M', …) of `fields`.
    fn field_of(fields: &[(u8, String)], code: u8) -> Option<&str> {
        fields
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn an_upload_that_cannot_be_spooled_is_an_io_error_naming_tmpdir() {
        let error = SalesforceError::UploadSpool {
            source: std::io::Error::from(std::io::ErrorKind::StorageFull),
        };
        let refusal = from_salesforce_error(&error, "push the transaction");
        let fields = refusal.fields();
        let field = |code: u8| field_of(&fields, code);
        assert_eq!(field(b'C'), Some("58030"));
        assert!(field(b'M').is_some_and(|m| m.contains("ingest upload's CSV")));
        assert!(field(b'H').is_some_and(|h| h.contains("TMPDIR")));
    }

    #[test]
    fn a_server_connection_lost_in_a_push_says_whether_salesforce_may_hold_it() {
        let sent = server_lost(true, "the server closed the connection");
        let fields = sent.fatal_fields();
        let field = |code: u8| field_of(&fields, code);
        assert_eq!(field(b'S'), Some("FATAL"));
        assert_eq!(field(b'V'), Some("FATAL"));
        assert_eq!(field(b'C'), Some("08007"));
        assert!(
            field(b'M').is_some_and(|m| m.contains("Salesforce may hold")
                && m.contains("the server closed the connection"))
        );
        assert!(field(b'D').is_some_and(|d| d.contains("write journal")));
        // As an ERROR it is the same but for its severity.
        assert_eq!(sent.fields()[0], (b'S', "ERROR".to_owned()));

        let unsent = server_lost(false, "the server closed the connection");
        let fields = unsent.fatal_fields();
        let field = |code: u8| field_of(&fields, code);
        assert_eq!(field(b'C'), Some("08006"));
        assert!(field(b'D').is_some_and(|d| d.contains("Nothing was sent")));
    }

    #[test]
    fn refused_rows_that_cannot_be_put_back_are_an_unknown_outcome_left_to_the_journal() {
        let error = SpoolError::Read(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
        let refusal = unrestored(&error, Some(42));
        let fields = refusal.fields();
        let field = |code: u8| field_of(&fields, code);
        // Salesforce holds the accepted records: not "nothing was sent" (58030), unknown.
        assert_eq!(field(b'C'), Some("08007"));
        assert!(
            field(b'M').is_some_and(|m| m.contains("cannot be put back")
                && m.contains("cannot read the push's spool file"))
        );
        assert!(field(b'D').is_some_and(|d| d.contains("entry 42")));
        assert!(field(b'H').is_some_and(|h| h.contains("TMPDIR")));
    }

    #[test]
    fn fields_follow_postgres_order_and_skip_what_is_unknown() {
        let refusal = Refusal::new(SqlState::UNIQUE_VIOLATION, "duplicate value")
            .detail("DUPLICATE_VALUE")
            .table("salesforce", "account")
            .column("external_id__c");
        let codes: Vec<u8> = refusal.fields().iter().map(|(c, _)| *c).collect();
        assert_eq!(codes, b"SVCMDstc".to_vec());
        assert_eq!(refusal.fields()[2].1, "23505");
    }
}
