//! How much of the client's input a session holds. Before authentication, an answer to an
//! authentication request may be PostgreSQL's 65,535 bytes. After it, a message the proxy
//! handles whole (Query, Parse, Bind, ...) may be `--max-message-size`, checked on its
//! length word before the rest is read; a long CopyData message is passed on in pieces as
//! its bytes arrive, so that a COPY of any size holds no more than the relay's read-ahead;
//! and reading stops once [`HIGH_WATER`] bytes wait to be handled, unless the message at
//! the head needs more to be whole.

use bytes::BytesMut;
use tokio::io::AsyncReadExt;

use super::{HIGH_WATER, Relay};
use crate::error::SessionError;
use crate::frontend::conversation::{Action, Out};
use crate::frontend::refusal::{Refusal, tell_client};
use crate::net::frame::{Frame, HEADER_LEN, MAX_AUTH_MESSAGE_BODY, frame_at, split_copy_data};
use crate::net::messages::frontend as fe;

/// A CopyData message longer than this is passed on in pieces rather than held whole.
/// Client libraries send far shorter ones (libpq one per `PQputCopyData` call,
/// tokio-postgres batches of 4 KiB), which pass as they are.
const COPY_DATA_HELD: usize = 64 << 10;

/// The least data a piece of a long CopyData message carries, so that a client sending a
/// few bytes at a time does not make as many messages.
const MIN_PIECE: usize = 8 << 10;

impl Relay {
    /// The client's answer to an authentication request, of at most PostgreSQL's limit
    /// before authentication, checked on its length word before the rest is read.
    pub(super) async fn read_client_frame(&mut self) -> Result<(u8, BytesMut), SessionError> {
        loop {
            match frame_at(&self.client_in).map_err(Refusal::from)? {
                Frame::Complete { tag, len } | Frame::Partial { tag, len }
                    if len - HEADER_LEN > MAX_AUTH_MESSAGE_BODY =>
                {
                    return Err(Refusal::AuthMessageTooLong {
                        tag: char::from(tag),
                        length: len - HEADER_LEN,
                    }
                    .into());
                }
                Frame::Complete { tag, len } => return Ok((tag, self.client_in.split_to(len))),
                Frame::Partial { len, .. } => self.client_in.reserve(len - self.client_in.len()),
                Frame::Header => {}
            }
            if self.client.read_buf(&mut self.client_in).await? == 0 {
                return Err(SessionError::ClientClosed);
            }
        }
    }

    /// Tells the client why, when the proxy refused it. Returns `error`.
    pub(super) async fn tell_client(&mut self, error: SessionError) -> SessionError {
        tell_client(&mut self.client, &mut self.client_out, error).await
    }

    /// Hands the client's complete messages to the conversation, once those that arrived
    /// since the last turn are within the limits. Returns the action it asks for.
    pub(super) fn on_client_input(&mut self) -> Result<Option<Action>, SessionError> {
        self.check_client_in()?;
        let held = self.client_in.len();
        let mut out = Out {
            server: &mut self.server_out,
            client: &mut self.client_out,
        };
        let action = self
            .conversation
            .on_client_input(&mut self.client_in, &mut out)?;
        // Only whole messages, all checked, are taken from the front.
        let handled = held.saturating_sub(self.client_in.len());
        self.client_checked = self.client_checked.saturating_sub(handled);
        Ok(action)
    }

    /// Checks each message past `client_checked` whose length word has arrived: a message
    /// the proxy would hold whole must fit `--max-message-size`.
    fn check_client_in(&mut self) -> Result<(), SessionError> {
        let limit = self.shared.limits.max_message_size;
        let mut pos = self.client_checked;
        while let Some(rest) = self.client_in.get(pos..) {
            let (tag, len, whole) = match frame_at(rest).map_err(Refusal::from)? {
                Frame::Header => break,
                Frame::Complete { tag, len } => (tag, len, true),
                Frame::Partial { tag, len } => (tag, len, false),
            };
            // The length word counts itself, not the tag.
            let length = len - 1;
            if tag != fe::COPY_DATA && length > limit {
                return Err(Refusal::MessageTooLong {
                    tag: char::from(tag),
                    length,
                    limit,
                }
                .into());
            }
            if !whole {
                break;
            }
            pos += len;
        }
        self.client_checked = pos;
        Ok(())
    }

    /// Before the relay waits for input. A long CopyData message at the head of the
    /// client's buffer is cut after the data that has arrived; returns true when it was,
    /// since that piece can be passed on now. Otherwise sets how far the relay reads
    /// ahead: to the end of a message it must hold whole, else [`HIGH_WATER`].
    pub(super) fn settle_client_in(&mut self) -> bool {
        if self.client_checked == 0
            && let Ok(Frame::Partial {
                tag: fe::COPY_DATA,
                len,
            }) = frame_at(&self.client_in)
            && len > COPY_DATA_HELD
            && let Some(piece) = split_copy_data(&mut self.client_in, MIN_PIECE)
        {
            self.client_checked = piece;
            return true;
        }
        let next = self.client_in.get(self.client_checked..).map(frame_at);
        self.client_in_limit = match next {
            Some(Ok(Frame::Partial { tag, len })) if tag != fe::COPY_DATA => {
                HIGH_WATER.max(self.client_checked + len)
            }
            _ => HIGH_WATER,
        };
        // Buffers emptied of a long message give its room back.
        for buf in [&mut self.client_in, &mut self.server_out] {
            if buf.is_empty() && buf.capacity() > 2 * HIGH_WATER {
                *buf = BytesMut::with_capacity(8192);
            }
        }
        false
    }
}
