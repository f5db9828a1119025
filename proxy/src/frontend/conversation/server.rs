//! Server messages: each is routed by the reply it answers (see [`Replies`]). The client's
//! go to the client, the proxy's own are consumed, and a ReadyForQuery may hand the
//! relay an action to run before anything else happens.
//!
//! [`Replies`]: crate::frontend::replies::Replies

use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};

use super::actions::Action;
use super::client::unknown;
use super::held::Held;
use super::prepared::Statement;
use super::{Conversation, Out, Tx};
use crate::error::SessionError;
use crate::frontend::replies::{OnReady, Owed, Routed};
use crate::net::frame::{Frame, frame_at, reserve_partial};
use crate::net::messages::backend::{self as be, TransactionStatus};
use crate::net::messages::encode;
use crate::push::refusal;

/// The most of a managed unit's replies held back for its push (see [`Held`]): a unit
/// that returns more has them sent on, as after a Flush, so that no client can make the
/// proxy hold an answer of any size.
pub(super) const HELD_AT_MOST: usize = 4 * 1024 * 1024;

impl Conversation {
    /// Routes the server's complete frames from the head of `input`, until they run out or
    /// one calls for an action: that action is returned.
    pub fn on_server_input(
        &mut self,
        input: &mut BytesMut,
        out: &mut Out<'_>,
    ) -> Result<Option<Action>, SessionError> {
        let mut pos = 0;
        while self.action.is_none() {
            let Frame::Complete { len, .. } = frame_at(&input[pos..])? else {
                break;
            };
            self.on_server_frame(&input[pos..pos + len], out)?;
            pos += len;
        }
        input.advance(pos);
        reserve_partial(input);
        Ok(self.action.take())
    }

    /// One whole server message (tag, length and body): to the client, held back, or the
    /// proxy's own.
    pub fn on_server_frame(&mut self, frame: &[u8], out: &mut Out<'_>) -> Result<(), SessionError> {
        let tag = frame.first().copied().unwrap_or_default();
        if tag == be::ROW_DESCRIPTION
            && let Some(name) = self.replies.describing_statement()
        {
            let description = Some(Bytes::copy_from_slice(frame));
            match self.statements.get_mut(name) {
                Some(statement) => statement.description = description,
                // Prepared with SQL PREPARE rather than Parse: unknown to the proxy,
                // but its columns are known now.
                None => self.statements.insert(
                    name,
                    Statement {
                        classified: Arc::new(unknown()),
                        description,
                    },
                ),
            }
        }
        // A named statement prepared in a held unit: if a refusal drops its
        // ParseComplete, the statement must go on the server too.
        let parsing = match (tag, &self.held) {
            (be::PARSE_COMPLETE, Some(_)) => self.replies.parsing_statement().map(Box::from),
            _ => None,
        };
        let routed = self.replies.route(tag, frame)?;
        if self.commit_after_push
            && matches!(routed, Routed::Client { .. })
            && matches!(tag, be::COMMAND_COMPLETE | be::ERROR_RESPONSE)
        {
            // The COMMIT's own answer: its CommandComplete, or an error to tell truly.
            self.commit_after_push = false;
            if tag == be::ERROR_RESPONSE {
                let fields = be::Fields::decode(&frame[5..], "ErrorResponse")?;
                let refusal = refusal::commit_failed_after_push(&fields);
                self.span
                    .in_scope(|| tracing::warn!(%refusal, "a COMMIT failed after its push reached Salesforce"));
                encode::error_response(out.client, refusal.fields())?;
                self.unit_error = true;
                return Ok(());
            }
        }
        match routed {
            Routed::Client { error, write } => {
                if matches!(tag, be::COPY_OUT_RESPONSE | be::COPY_BOTH_RESPONSE)
                    && let Some(held) = self.held.take()
                {
                    // The data follows, as much as the server has: it goes to the
                    // client as it comes, not into the held replies.
                    out.client.extend_from_slice(&held.replies);
                }
                let too_many = match &mut self.held {
                    Some(held) => {
                        held.push(frame, write, parsing);
                        held.replies.len() > HELD_AT_MOST
                    }
                    None => {
                        out.client.extend_from_slice(frame);
                        false
                    }
                };
                if too_many {
                    // The proxy holds no more than this for a client, whatever the unit
                    // returns: what is held goes out, as after a Flush, and a refusal
                    // then follows the replies the client has.
                    self.release_held(out.client);
                }
                self.unit_error |= error;
            }
            Routed::CopyIn { released, extended } => {
                // The client must send its data now.
                Held::copy_starts(&mut self.held, out.client, frame, extended);
                if released {
                    // The Sync the session waited on came during the COPY: the
                    // server ignores it, and the client will send another.
                    self.barrier = false;
                }
            }
            Routed::Proxy { error } => {
                if error {
                    self.span
                        .in_scope(|| tracing::warn!("a statement the proxy injected failed"));
                }
            }
            Routed::Ready { owed, status } => self.on_ready(&owed, status, out),
        }
        Ok(())
    }

    /// A ReadyForQuery with `status` answered `owed`: it goes to the client, or is the
    /// proxy's own, or the session has something to do first.
    fn on_ready(&mut self, owed: &Owed, status: TransactionStatus, out: &mut Out<'_>) {
        self.status = status;
        match owed.on_ready {
            OnReady::Forward => self.forward_ready(status, out),
            OnReady::Consume => {}
            OnReady::EndManaged { last, query } => {
                if !owed.statements_accounted_for()
                    && let Some(held) = &mut self.held
                {
                    held.forget_writes();
                }
                self.action = Some(Action::EndManaged {
                    status,
                    last,
                    query,
                });
            }
            OnReady::Step => {
                self.barrier = false;
                if self.unit_error {
                    // A failed statement ends the whole query string.
                    self.steps.clear();
                    self.forward_ready(status, out);
                } else if status == TransactionStatus::Idle {
                    self.tx = Tx::default();
                }
            }
        }
    }

    /// Passes the server's ReadyForQuery on: the same six bytes, written from its status
    /// (the frame itself is still borrowed from the input buffer).
    fn forward_ready(&mut self, status: TransactionStatus, out: &mut Out<'_>) {
        out.client
            .extend_from_slice(&[be::READY_FOR_QUERY, 0, 0, 0, 5, status.as_byte()]);
        self.after_ready(status);
    }

    /// The client has been told the server is ready.
    pub(super) fn after_ready(&mut self, status: TransactionStatus) {
        self.unit_error = false;
        if status == TransactionStatus::Idle {
            self.tx = Tx::default();
        }
    }
}
