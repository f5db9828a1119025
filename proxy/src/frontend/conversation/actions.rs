//! What runs with the upstream connection to itself, and what the client is told after:
//! ending a transaction the proxy opened, and the push before a client's COMMIT. The
//! commit protocol itself is [`crate::push::commit`]; this is the conversation's side of
//! it: the held replies, where a refused push's error goes, and the ReadyForQuery.
//!
//! An action runs in two parts. [`Conversation::perform`] drives the upstream connection
//! (and Salesforce) and settles the conversation's state; [`Conversation::answer`] then
//! writes what the client sees, after whatever asynchronous messages the server sent the
//! client meanwhile.

use bytes::Bytes;
use tracing::Instrument;

use super::steps::Step;
use super::{Conversation, Out, Tx};
use crate::backend::statements::Upstream;
use crate::error::SessionError;
use crate::frontend::replies::{Owed, Request};
use crate::net::messages::backend::TransactionStatus;
use crate::net::messages::encode;
use crate::push::commit::{PushOutcome, Remote, rollback, rollback_refused};
use crate::push::{Created, Refusal};

use super::returning;

/// Something to run before the conversation goes on.
#[derive(Debug)]
pub enum Action {
    /// A managed unit's ReadyForQuery arrived with `status`. `last`: the client's own unit
    /// ends here; `query`: it is a simple Query.
    EndManaged {
        status: TransactionStatus,
        last: bool,
        query: bool,
    },
    /// The client's COMMIT, not yet sent: push first. Boxed, so that the action the relay
    /// is handed on every turn (mostly none) stays small.
    PreCommit(Box<Commit>),
}

/// A COMMIT waiting for the push.
#[derive(Debug)]
pub enum Commit {
    /// A step of a query string, holding the COMMIT.
    Query(Step),
    /// An extended-protocol Execute of a COMMIT, as the client sent it.
    Execute(Bytes),
}

/// What the client is told once an action has run.
#[derive(Debug)]
pub enum Answer {
    /// A managed unit ended: its replies, then the refusal of its push if there was one,
    /// then (`last`, or after an error) ReadyForQuery with status idle.
    Managed {
        refusal: Option<Refusal>,
        last: bool,
    },
    /// The client's COMMIT goes to the server, or (`refusal`) is answered with the error.
    Commit {
        commit: Commit,
        refusal: Option<Refusal>,
    },
}

impl Conversation {
    /// Runs `action` on the client's upstream connection (`upstream`), pushing through
    /// `remote` (none: the proxy has no control database).
    pub async fn perform<U: Upstream, R: Remote>(
        &mut self,
        action: Action,
        upstream: &mut U,
        remote: Option<&R>,
    ) -> Result<Answer, SessionError> {
        let span = self.span.clone();
        async {
            match action {
                Action::EndManaged {
                    status,
                    last,
                    query,
                } => {
                    self.end_managed(status, last, query, upstream, remote)
                        .await
                }
                Action::PreCommit(commit) => self.pre_commit(*commit, upstream, remote).await,
            }
        }
        .instrument(span)
        .await
    }

    /// Writes what the client is told after an action, and what goes on upstream.
    pub fn answer(&mut self, answer: Answer, out: &mut Out<'_>) -> Result<(), SessionError> {
        let span = self.span.clone();
        let _entered = span.enter();
        match answer {
            Answer::Managed { refusal, last } => self.answer_managed(refusal, last, out),
            Answer::Commit { commit, refusal } => self.answer_commit(commit, refusal, out),
        }
    }

    /// Ends a transaction the proxy opened: pushes and commits it, or rolls it back if
    /// the unit failed. On a refused push, the held replies end where its error goes.
    async fn end_managed<U: Upstream, R: Remote>(
        &mut self,
        status: TransactionStatus,
        last: bool,
        query: bool,
        upstream: &mut U,
        remote: Option<&R>,
    ) -> Result<Answer, SessionError> {
        let outcome = match status {
            TransactionStatus::InBlock => {
                Some(self.committer.push_and_commit(upstream, remote).await?)
            }
            // The unit failed: its error has reached the client already.
            TransactionStatus::Failed => {
                rollback(upstream).await?;
                None
            }
            // The client's own ROLLBACK ended it.
            TransactionStatus::Idle => None,
        };
        // Committed or rolled back: the server is outside any transaction.
        self.status = TransactionStatus::Idle;
        self.tx = Tx::default();
        self.barrier = false;
        let refusal = match outcome {
            Some(PushOutcome::Pushed { created }) => {
                if !created.is_empty() {
                    self.patch_returning(&created, upstream).await?;
                }
                None
            }
            Some(PushOutcome::Refused(refusal)) => {
                self.make_room_for_the_error(query, upstream).await?;
                Some(refusal)
            }
            None => None,
        };
        Ok(Answer::Managed { refusal, last })
    }

    /// Answers the client as PostgreSQL would have answered its autocommit unit: with the
    /// unit's replies, then (on a refused push) the error, then ReadyForQuery with status
    /// idle.
    fn answer_managed(
        &mut self,
        refusal: Option<Refusal>,
        last: bool,
        out: &mut Out<'_>,
    ) -> Result<(), SessionError> {
        self.release_held(out.client);
        let failed = refusal.is_some() || self.unit_error;
        if let Some(refusal) = refusal {
            tracing::info!(%refusal, "write refused");
            encode::error_response(out.client, refusal.fields())?;
        }
        if last || failed {
            self.steps.clear();
            encode::ready_for_query(out.client, TransactionStatus::Idle)?;
            self.unit_error = false;
        }
        Ok(())
    }

    /// Makes the held replies of a refused unit end where its error goes (see
    /// `Held::make_room_for_error`), and closes the statements prepared in what was
    /// dropped. Replies the client has been sent already (after a Flush) stay sent, and
    /// the error follows them.
    async fn make_room_for_the_error<U: Upstream>(
        &mut self,
        query: bool,
        upstream: &mut U,
    ) -> Result<(), SessionError> {
        let Some(held) = &mut self.held else {
            return Ok(());
        };
        let skipped = held.make_room_for_error(query);
        if !skipped.is_empty() {
            upstream.close_statements(&skipped).await?;
            for name in &skipped {
                self.statements.remove(name);
            }
        }
        Ok(())
    }

    /// Gives the held-back `RETURNING sfid` rows the Ids of the records just created.
    async fn patch_returning<U: Upstream>(
        &mut self,
        created: &[Created],
        upstream: &mut U,
    ) -> Result<(), SessionError> {
        let mut tables: Vec<u32> = created.iter().map(|c| c.table_oid).collect();
        tables.sort_unstable();
        tables.dedup();
        let Some(mut held) = self
            .held
            .take_if(|held| returning::mentions(&held.replies, &held.executes, &tables))
        else {
            return Ok(());
        };
        let attnums = upstream.attnums(&tables).await?;
        held.replies = returning::patch(&held.replies, created, &attnums, &held.executes);
        self.held = Some(held);
        Ok(())
    }

    /// Pushes before the client's COMMIT goes to the server; a refused push rolls back.
    async fn pre_commit<U: Upstream, R: Remote>(
        &mut self,
        commit: Commit,
        upstream: &mut U,
        remote: Option<&R>,
    ) -> Result<Answer, SessionError> {
        let refusal = match self.committer.push(upstream, remote).await? {
            // The records are the client's already: its transaction returned their rows.
            PushOutcome::Pushed { .. } => None,
            PushOutcome::Refused(refusal) => {
                let refusal = rollback_refused(upstream, refusal).await?;
                self.status = TransactionStatus::Idle;
                Some(refusal)
            }
        };
        Ok(Answer::Commit { commit, refusal })
    }

    /// Sends the client's COMMIT on, or answers it with the refusal, as the server answers
    /// a COMMIT that fails.
    fn answer_commit(
        &mut self,
        commit: Commit,
        refusal: Option<Refusal>,
        out: &mut Out<'_>,
    ) -> Result<(), SessionError> {
        let Some(refusal) = refusal else {
            // The COMMIT ends whatever transaction this is, the proxy's included.
            self.tx.managed = false;
            self.commit_after_push = self.committer.reached_org();
            self.release_held(out.client);
            match commit {
                Commit::Query(step) => self.send_step(step, out)?,
                Commit::Execute(frame) => {
                    out.server.extend_from_slice(&frame);
                    self.replies.push(Owed::client(Request::Execute));
                    self.unit_block = Some(false);
                }
            }
            return Ok(());
        };
        tracing::info!(%refusal, "commit refused");
        self.tx = Tx::default();
        self.release_held(out.client);
        encode::error_response(out.client, refusal.fields())?;
        match commit {
            Commit::Query(_) => {
                self.steps.clear();
                encode::ready_for_query(out.client, TransactionStatus::Idle)?;
                self.unit_error = false;
            }
            Commit::Execute(_) => {
                // As after any error, the server would skip to Sync.
                self.skip_to_sync = true;
                self.unit_block = Some(false);
            }
        }
        Ok(())
    }
}
