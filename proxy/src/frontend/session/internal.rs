//! The proxy's own statements on a client's upstream connection, run while the session
//! waits: reading the captured changes, writing back what Salesforce set, COMMIT and
//! ROLLBACK.
//!
//! They use a named statement and a named portal, each closed before and after: a client
//! may keep using its unnamed prepared statement across transactions (which a simple Query
//! would discard), and a COMMIT waiting for the push may already have its unnamed portal
//! bound. Closing first as well makes a statement left over by an earlier failure
//! harmless.

use tokio_postgres::error::SqlState;

use super::Session;
use crate::error::SessionError;
use crate::net::frame::body;
use crate::net::messages::backend::{self as be, Fields, TransactionStatus};
use crate::net::messages::encode;

/// The name of the proxy's statement and of its portal.
const STATEMENT: &str = "__sfpg_internal";

/// What one of the proxy's statements returned.
#[derive(Debug, Default)]
pub(super) struct Outcome {
    /// Rows, each value as text (NULL as `None`).
    pub rows: Vec<Vec<Option<String>>>,
    pub error: Option<Fields>,
}

impl Outcome {
    /// The first column of the first row.
    pub fn scalar(&self) -> Option<&str> {
        self.rows.first()?.first()?.as_deref()
    }
}

impl Session {
    /// Runs `sql` with text `params` and waits for its ReadyForQuery. Only call when the
    /// server owes the client nothing, so that every reply is this statement's.
    pub(super) async fn internal(
        &mut self,
        sql: &str,
        params: &[Option<&str>],
    ) -> Result<Outcome, SessionError> {
        encode::close_statement(&mut self.server_out, STATEMENT)?;
        encode::close_portal(&mut self.server_out, STATEMENT)?;
        encode::parse(&mut self.server_out, STATEMENT, sql)?;
        encode::bind(&mut self.server_out, STATEMENT, STATEMENT, params)?;
        encode::execute(&mut self.server_out, STATEMENT)?;
        encode::close_portal(&mut self.server_out, STATEMENT)?;
        encode::close_statement(&mut self.server_out, STATEMENT)?;
        encode::sync(&mut self.server_out)?;
        self.flush_server().await?;
        let mut outcome = Outcome::default();
        loop {
            let (tag, frame) = self.read_server_frame().await?;
            match tag {
                be::DATA_ROW => {
                    let values = be::decode_data_row(body(&frame))
                        .map_err(|e| SessionError::Protocol(e.to_string()))?;
                    outcome.rows.push(
                        values
                            .into_iter()
                            .map(|v| v.map(|v| String::from_utf8_lossy(v).into_owned()))
                            .collect(),
                    );
                }
                be::ERROR_RESPONSE => {
                    let fields = Fields::decode(body(&frame), "ErrorResponse")
                        .map_err(|e| SessionError::Protocol(e.to_string()))?;
                    tracing::debug!(sql, error = fields.message(), "proxy statement failed");
                    outcome.error = Some(fields);
                }
                be::READY_FOR_QUERY => {
                    self.status = TransactionStatus::decode_ready_for_query(body(&frame))
                        .map_err(|e| SessionError::Protocol(e.to_string()))?;
                    return Ok(outcome);
                }
                // Asynchronous messages are the client's, whoever's statement is running.
                be::NOTIFICATION_RESPONSE | be::PARAMETER_STATUS => {
                    self.client_out.extend_from_slice(&frame);
                }
                _ => {}
            }
        }
    }

    /// Ends the transaction on the server. A client's cancel forwarded just before a push
    /// (a cancel during one is the proxy's alone) reaches the server milliseconds later and
    /// can land on this very ROLLBACK: the server then answers 57014 and leaves the
    /// transaction aborted. It acts on a cancel once, so the ROLLBACK is sent again.
    pub(super) async fn rollback(&mut self) -> Result<(), SessionError> {
        /// Each cancel the client sent can fail one ROLLBACK.
        const ATTEMPTS: usize = 4;
        let mut error = self.internal("ROLLBACK", &[]).await?.error;
        let mut attempts = 1;
        while attempts < ATTEMPTS
            && error
                .as_ref()
                .is_some_and(|e| e.code() == SqlState::QUERY_CANCELED.code())
        {
            error = self.internal("ROLLBACK", &[]).await?.error;
            attempts += 1;
        }
        match error {
            None => Ok(()),
            Some(error) => Err(SessionError::Protocol(format!(
                "the proxy's ROLLBACK failed: {} ({})",
                error.message(),
                error.code()
            ))),
        }
    }
}
