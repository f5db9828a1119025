//! The wire: client streams (plain or TLS), frame boundaries, and the messages the proxy
//! decodes or writes.

pub mod frame;
pub mod messages;
pub mod stream;

use self::frame::FrameError;
use self::messages::{backend, frontend, startup};

/// A peer that breaks the protocol: a frame or message that cannot be what it claims, or
/// one that has no place where it came. Each keeps what the decoder found.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error(transparent)]
    ClientMessage(#[from] frontend::Malformed),
    #[error(transparent)]
    ServerMessage(#[from] backend::Malformed),
    #[error(transparent)]
    StartupPacket(#[from] startup::Malformed),
    #[error("not a StartupMessage")]
    NotAStartupMessage,
    #[error("expected a password message, got message type {0:?}")]
    ExpectedPassword(char),
    #[error("unexpected message type {0:?} from the server during startup")]
    UnexpectedAtStartup(char),
    #[error("direct TLS connection without the \"postgresql\" ALPN protocol")]
    DirectTlsWithoutAlpn,
    #[error("received unencrypted data after SSL request")]
    DataAfterSslRequest,
    #[error("SSLRequest on a connection that is already encrypted")]
    SslRequestOverTls,
    #[error(
        "a simple Query before the Sync of an extended-protocol unit that may write: the sfpg proxy pushes that unit at its Sync, so send the Sync first"
    )]
    QueryBeforeSync,
}

impl ProtocolError {
    /// Whether the client broke the protocol (not the server): the client is then told,
    /// as PostgreSQL tells it, with FATAL 08P01 before the connection closes.
    pub fn is_clients(&self) -> bool {
        !matches!(
            self,
            ProtocolError::ServerMessage(_) | ProtocolError::UnexpectedAtStartup(_)
        )
    }
}
