//! What runs with the upstream connection to itself: ending a transaction the proxy
//! opened, and the push before a client's COMMIT.

use std::collections::HashMap;
use std::sync::Arc;
use tokio_postgres::error::SqlState;

use bytes::{BufMut, Bytes, BytesMut};
use secrecy::ExposeSecret;

use super::steps::Step;
use super::{Session, Tx};
use crate::error::SessionError;
use crate::frontend::replies::{Owed, Request};
use crate::net::messages::backend::{self as be, TransactionStatus};
use crate::net::messages::encode;
use crate::net::messages::frontend as fe;
use crate::push::Refusal;
use crate::settings::{CURRENT_TXID_SQL, FIRST_PENDING_SQL, TAKE_PENDING_SQL, WRITE_BACK_SQL};

use super::returning::{self, Attnums};

/// Something to run before the session goes on.
#[derive(Debug)]
pub(super) enum Action {
    /// A managed unit's ReadyForQuery arrived with `status`.
    EndManaged {
        status: TransactionStatus,
        last: bool,
        query: bool,
    },
    /// The client's COMMIT, not yet sent: push first.
    PreCommit(Commit),
}

/// A COMMIT waiting for the push.
#[derive(Debug)]
pub(super) enum Commit {
    /// A step of a query string, holding the COMMIT.
    Query(Step),
    /// An extended-protocol Execute of a COMMIT, as the client sent it.
    Execute(Bytes),
}

impl Session {
    pub(super) async fn perform(&mut self, action: Action) -> Result<(), SessionError> {
        match action {
            Action::EndManaged {
                status,
                last,
                query,
            } => self.end_managed(status, last, query).await,
            Action::PreCommit(commit) => self.pre_commit(commit).await,
        }
    }

    /// Ends a transaction the proxy opened, and answers the client as PostgreSQL would
    /// have answered its autocommit unit: with the unit's replies, then (on a refused
    /// push) the error, then ReadyForQuery with status idle.
    async fn end_managed(
        &mut self,
        status: TransactionStatus,
        last: bool,
        query: bool,
    ) -> Result<(), SessionError> {
        let outcome = match status {
            TransactionStatus::InBlock => self.push_and_commit().await?,
            // The unit failed: its error has reached the client already.
            TransactionStatus::Failed => {
                self.rollback().await?;
                Ok(())
            }
            // The client's own ROLLBACK ended it.
            TransactionStatus::Idle => Ok(()),
        };
        self.tx = Tx::default();
        self.barrier = false;
        if outcome.is_ok() && !self.created.is_empty() {
            self.patch_returning().await?;
        }
        self.created.clear();
        if outcome.is_err() {
            self.make_room_for_the_error(query).await?;
        }
        self.release_held();
        let failed = outcome.is_err() || self.unit_error;
        if let Err(refusal) = outcome {
            tracing::info!(%refusal, "write refused");
            encode::error_response(&mut self.client_out, refusal.fields())?;
        }
        if last || failed {
            self.steps.clear();
            encode::ready_for_query(&mut self.client_out, TransactionStatus::Idle)?;
            self.unit_error = false;
        }
        Ok(())
    }

    /// Makes the held replies of a refused unit end where its error goes (see
    /// `Held::make_room_for_error`), and closes the statements prepared in what was
    /// dropped. Replies the client has been sent already (after a Flush) stay sent, and
    /// the error follows them.
    async fn make_room_for_the_error(&mut self, query: bool) -> Result<(), SessionError> {
        let Some(held) = &mut self.held else {
            return Ok(());
        };
        let skipped = held.make_room_for_error(query);
        if !skipped.is_empty() {
            self.close_statements(&skipped).await?;
        }
        Ok(())
    }

    /// Closes prepared statements on the server, and forgets them.
    async fn close_statements(&mut self, names: &[Box<[u8]>]) -> Result<(), SessionError> {
        for name in names {
            close_statement(&mut self.server_out, name);
            self.statements.remove(name);
        }
        encode::sync(&mut self.server_out)?;
        self.flush_server().await?;
        loop {
            let (tag, frame) = self.read_server_frame().await?;
            match tag {
                be::READY_FOR_QUERY => return Ok(()),
                // Asynchronous messages are the client's, whoever's statement is running.
                be::NOTIFICATION_RESPONSE | be::PARAMETER_STATUS => {
                    self.client_out.extend_from_slice(&frame);
                }
                _ => {}
            }
        }
    }

    /// Gives the held-back `RETURNING sfid` rows the Ids of the records just created.
    async fn patch_returning(&mut self) -> Result<(), SessionError> {
        let mut tables: Vec<u32> = self.created.iter().map(|c| c.table_oid).collect();
        tables.sort_unstable();
        tables.dedup();
        let Some(mut held) = self
            .held
            .take_if(|held| returning::mentions(&held.replies, &held.executes, &tables))
        else {
            return Ok(());
        };
        let list = tables
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let found = self
            .internal(
                "SELECT attrelid::pg_catalog.oid::pg_catalog.int8, \
                        pg_catalog.max(attnum) FILTER (WHERE attname OPERATOR(pg_catalog.=) 'id'), \
                        pg_catalog.max(attnum) FILTER (WHERE attname OPERATOR(pg_catalog.=) 'sfid') \
                   FROM pg_catalog.pg_attribute \
                  WHERE attrelid OPERATOR(pg_catalog.=) ANY($1::pg_catalog.oid[]) \
                    AND attname OPERATOR(pg_catalog.=) ANY('{id,sfid}'::pg_catalog.name[]) \
                  GROUP BY attrelid",
                &[Some(&format!("{{{list}}}"))],
            )
            .await?;
        let attnums: HashMap<u32, Attnums> = found
            .rows
            .iter()
            .filter_map(|row| {
                let number = |i: usize| row.get(i)?.as_deref()?.parse::<i64>().ok();
                Some((
                    u32::try_from(number(0)?).ok()?,
                    Attnums {
                        id: i16::try_from(number(1)?).ok()?,
                        sfid: i16::try_from(number(2)?).ok()?,
                    },
                ))
            })
            .collect();
        held.replies = returning::patch(&held.replies, &self.created, &attnums, &held.executes);
        self.held = Some(held);
        Ok(())
    }

    /// Pushes the transaction's captured changes, then commits; a refused push rolls
    /// back instead.
    async fn push_and_commit(&mut self) -> Result<Result<(), Refusal>, SessionError> {
        if let Err(refusal) = self.push_pending().await? {
            self.rollback().await?;
            return Ok(Err(refusal));
        }
        let commit = self.internal("COMMIT", &[]).await?;
        Ok(match commit.error {
            Some(error) => Err(Refusal::from_server(&error)),
            None => Ok(()),
        })
    }

    /// Pushes before the client's COMMIT goes to the server; a refused push rolls back
    /// and answers the COMMIT with the error.
    async fn pre_commit(&mut self, commit: Commit) -> Result<(), SessionError> {
        match self.push_pending().await? {
            Ok(()) => {
                // The COMMIT ends whatever transaction this is, the proxy's included.
                self.tx.managed = false;
                self.release_held();
                match commit {
                    Commit::Query(step) => self.send_step(step)?,
                    Commit::Execute(frame) => {
                        self.server_out.extend_from_slice(&frame);
                        self.replies.push(Owed::client(Request::Execute));
                        self.unit_block = Some(false);
                    }
                }
            }
            Err(refusal) => {
                tracing::info!(%refusal, "commit refused");
                self.rollback().await?;
                self.tx = Tx::default();
                self.release_held();
                encode::error_response(&mut self.client_out, refusal.fields())?;
                match commit {
                    Commit::Query(_) => {
                        self.steps.clear();
                        encode::ready_for_query(&mut self.client_out, TransactionStatus::Idle)?;
                        self.unit_error = false;
                    }
                    Commit::Execute(_) => {
                        // As after any error, the server would skip to Sync.
                        self.skip_to_sync = true;
                        self.unit_block = Some(false);
                    }
                }
            }
        }
        Ok(())
    }

    /// Takes the transaction's captured changes, pushes them to Salesforce and writes
    /// back what Salesforce set. With nothing captured there is nothing to do.
    ///
    /// Every statement run here on the client's connection names only `sfpg` functions
    /// and qualified catalog objects, and neither the origin key nor the sync origin ever
    /// reaches this connection: the push ticket, good for this transaction only, is minted
    /// on the proxy's own connection, and `sfpg.write_back` sets the origin for its own
    /// statement only (migration V8; docs/architecture.md, "The trust boundary").
    async fn push_pending(&mut self) -> Result<Result<(), Refusal>, SessionError> {
        self.created.clear();
        if !self.capture_installed().await? {
            return Ok(Ok(()));
        }
        let Some(pusher) = self.shared.pusher.clone() else {
            return self.refuse_unpushable().await;
        };
        // A transaction without an id wrote nothing, so it captured nothing.
        let txid = self.internal(CURRENT_TXID_SQL, &[]).await?;
        if let Some(error) = txid.error {
            return Ok(Err(Refusal::from_server(&error)));
        }
        let Some(txid) = txid.scalar().map(str::to_owned) else {
            return Ok(Ok(()));
        };
        let ticket = match pusher.catalog().push_ticket(&txid).await {
            Ok(ticket) => ticket,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let ticket = ticket.expose_secret();
        let taken = self.internal(TAKE_PENDING_SQL, &[Some(ticket)]).await?;
        if let Some(error) = taken.error {
            return Ok(Err(Refusal::from_server(&error)));
        }
        let changes = match sfpg_control::capture::parse_pending(taken.scalar().unwrap_or("[]")) {
            Ok(changes) => changes,
            Err(error) => {
                return Ok(Err(Refusal::new(
                    SqlState::INTERNAL_ERROR,
                    format!("sfpg proxy: cannot read the captured changes: {error}"),
                )));
            }
        };
        if changes.is_empty() {
            return Ok(Ok(()));
        }
        // Constraints deferred to COMMIT are checked now, so that no commit-time failure
        // can come after Salesforce has accepted the changes.
        let immediate = self.internal("SET CONSTRAINTS ALL IMMEDIATE", &[]).await?;
        if let Some(error) = immediate.error {
            return Ok(Err(Refusal::from_server(&error)));
        }
        let session = format!(
            "{} pid {}",
            self.peer,
            self.registration.as_ref().map_or(0, |r| r.pid())
        );
        let signal = self.registration.as_ref().map(|r| Arc::clone(r.signal()));
        // Only a cancel sent from now on is for this push.
        let since = signal.as_ref().map(|signal| signal.generation());
        // The server runs nothing of the client's until the push is over.
        let working = signal.as_ref().map(|signal| signal.proxy_working());
        let cancelled = async move {
            match (signal, since) {
                (Some(signal), Some(since)) => signal.cancelled_since(since).await,
                _ => std::future::pending().await,
            }
        };
        let pushed = pusher.push(&session, Some(txid), &changes, cancelled).await;
        drop(working);
        let pushed = match pushed {
            Ok(Some(pushed)) => pushed,
            Ok(None) => return Ok(Ok(())),
            Err(refusal) => return Ok(Err(refusal)),
        };
        // What Salesforce set goes into the mirror as the sync would write it: not
        // captured again.
        for write_back in &pushed.write_backs {
            let written = self
                .internal(
                    WRITE_BACK_SQL,
                    &[
                        Some(ticket),
                        Some(&write_back.schema),
                        Some(&write_back.table),
                        Some(&write_back.rows),
                    ],
                )
                .await?;
            if let Some(error) = written.error {
                // Salesforce holds the change; the journal's repair brings the mirror in
                // line once this transaction is over.
                return Ok(Err(Refusal::from_server(&error).detail(
                    "Salesforce accepted the change, but writing it into the mirror failed; the proxy will read it back from Salesforce.",
                )));
            }
        }
        self.created = pushed.created;
        Ok(Ok(()))
    }

    /// Without the control database the proxy has no org to push to, and no key to take
    /// captured changes with: a transaction that captured any cannot commit, and is
    /// refused naming the first table it wrote.
    async fn refuse_unpushable(&mut self) -> Result<Result<(), Refusal>, SessionError> {
        let first = self.internal(FIRST_PENDING_SQL, &[]).await?;
        if let Some(error) = first.error {
            return Ok(Err(Refusal::from_server(&error)));
        }
        let Some(first) = first.scalar() else {
            return Ok(Ok(()));
        };
        let first: serde_json::Value = serde_json::from_str(first).unwrap_or_default();
        let name = |key: &str| first[key].as_str().unwrap_or_default().to_owned();
        let (schema, table) = (name("schema"), name("table"));
        Ok(Err(Refusal::new(
            SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("sfpg proxy: no Salesforce org is configured for schema \"{schema}\""),
        )
        .table(&schema, &table)
        .hint(
            "Start the proxy with the mirror's control database so it can reach the org.",
        )))
    }

    /// Whether the capture functions exist in this database. Once they do, they stay.
    async fn capture_installed(&mut self) -> Result<bool, SessionError> {
        if !self.capture_installed {
            let found = self
                .internal(
                    "SELECT pg_catalog.to_regproc('sfpg.take_pending_changes') IS NOT NULL",
                    &[],
                )
                .await?;
            self.capture_installed = found.scalar() == Some("t");
        }
        Ok(self.capture_installed)
    }
}

/// A Close of prepared statement `name`, whose bytes (a client's name, not necessarily
/// UTF-8) go as they came.
fn close_statement(buf: &mut BytesMut, name: &[u8]) {
    buf.put_u8(fe::CLOSE);
    // Length, kind, name and its terminating NUL; a client's name came in a frame whose
    // length fit, so this does too.
    buf.put_u32(u32::try_from(4 + 1 + name.len() + 1).unwrap_or(u32::MAX));
    buf.put_u8(b'S');
    buf.put_slice(name);
    buf.put_u8(0);
}
