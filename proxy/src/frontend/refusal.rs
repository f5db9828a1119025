//! The proxy closing a client's connection on its own: a message too long, authentication
//! not done in time, too many connections. The client is told as PostgreSQL tells it, with
//! a FATAL ErrorResponse and PostgreSQL's SQLSTATE and primary message (the detail names
//! the proxy's limit and its flag); the log gets at most one line per kind every
//! [`LOG_EVERY`], however many clients are refused.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_postgres::error::SqlState;
use tracing::warn;

use crate::error::SessionError;
use crate::net::frame::{FrameError, MAX_AUTH_MESSAGE_BODY, MAX_FRAME_LEN, MAX_STARTUP_PACKET_LEN};
use crate::net::messages::encode;

/// How long telling a refused client may take: the ErrorResponse fits any socket buffer,
/// so only a client that has stopped reading makes this wait.
const TELL_WITHIN: Duration = Duration::from_secs(2);

/// How long the proxy goes on reading (and discarding) what a refused client still sends,
/// after telling it. Closing a socket with unread input resets the connection, and a client
/// still writing its message (tokio-postgres and libpq write a whole query before they read)
/// then sees the reset instead of the error. Bounded in time; the bytes go through one small
/// buffer, so memory is bounded too.
const LINGER_AT_MOST: Duration = Duration::from_secs(2);

/// The longest gap between two log lines about refusals of one kind.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// Why the proxy closed a client's connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A startup-phase packet whose length word is outside 8..=10000.
    StartupPacketLength { length: i64 },
    /// A StartupMessage within the limit, but not with the `options` the proxy adds.
    StartupPacketTooLong { length: usize },
    /// A message whose length word is below 4 or past PostgreSQL's 1 GiB limit.
    MessageLength { tag: char, length: i64 },
    /// An authentication message (before AuthenticationOk) past PostgreSQL's limit.
    AuthMessageTooLong { tag: char, length: usize },
    /// A message after authentication past `--max-message-size`, that the proxy would
    /// have to hold whole.
    MessageTooLong {
        tag: char,
        length: usize,
        limit: usize,
    },
    /// Authentication not done within `--auth-timeout`.
    AuthTimeout { timeout: Duration },
    /// `--max-client-connections` connections are open already.
    TooManyClients { limit: usize },
}

impl Refusal {
    /// PostgreSQL's SQLSTATE for the same refusal: 08P01 protocol_violation for lengths
    /// (`pq_getmessage`, `ProcessStartupPacket`); 57014 query_canceled for the timeout, as
    /// its backend raises "canceling authentication due to timeout"; 53300
    /// too_many_connections.
    pub fn sqlstate(&self) -> SqlState {
        match self {
            Refusal::StartupPacketLength { .. }
            | Refusal::StartupPacketTooLong { .. }
            | Refusal::MessageLength { .. }
            | Refusal::AuthMessageTooLong { .. }
            | Refusal::MessageTooLong { .. } => SqlState::PROTOCOL_VIOLATION,
            Refusal::AuthTimeout { .. } => SqlState::QUERY_CANCELED,
            Refusal::TooManyClients { .. } => SqlState::TOO_MANY_CONNECTIONS,
        }
    }

    /// The primary message: PostgreSQL's words where it has them.
    pub fn message(&self) -> String {
        match self {
            Refusal::StartupPacketLength { .. } => "invalid length of startup packet".into(),
            Refusal::StartupPacketTooLong { .. } => "startup packet too long".into(),
            Refusal::MessageLength { .. } | Refusal::AuthMessageTooLong { .. } => {
                "invalid message length".into()
            }
            Refusal::MessageTooLong { length, limit, .. } => format!(
                "message of {length} bytes exceeds the proxy's maximum message size of \
                 {limit} bytes"
            ),
            Refusal::AuthTimeout { .. } => "canceling authentication due to timeout".into(),
            Refusal::TooManyClients { .. } => "sorry, too many clients already".into(),
        }
    }

    /// What limit was passed, and where it is set.
    pub fn detail(&self) -> String {
        match self {
            Refusal::StartupPacketLength { length } => format!(
                "The packet's length word says {length} bytes; PostgreSQL accepts 8 to \
                 {MAX_STARTUP_PACKET_LEN}."
            ),
            Refusal::StartupPacketTooLong { length } => format!(
                "With the options the proxy adds it is {length} bytes; PostgreSQL accepts at \
                 most {MAX_STARTUP_PACKET_LEN}."
            ),
            Refusal::MessageLength { tag, length } => format!(
                "A message of type {tag:?} whose length word says {length}; PostgreSQL \
                 accepts 4 to {MAX_FRAME_LEN}."
            ),
            Refusal::AuthMessageTooLong { tag, length } => format!(
                "A message of type {tag:?} of {length} bytes during authentication; \
                 PostgreSQL accepts at most {MAX_AUTH_MESSAGE_BODY} there."
            ),
            Refusal::MessageTooLong { tag, .. } => format!(
                "The message is of type {tag:?}; the limit is set by --max-message-size \
                 (COPY data is not held whole and not limited by it)."
            ),
            Refusal::AuthTimeout { timeout } => {
                format!("The connection did not authenticate within {timeout:?} (--auth-timeout).")
            }
            Refusal::TooManyClients { limit } => format!(
                "The proxy takes at most {limit} client connections \
                 (--max-client-connections)."
            ),
        }
    }

    /// The FATAL ErrorResponse that tells the client.
    pub fn error_response(&self, out: &mut BytesMut) -> Result<(), encode::EncodeError> {
        encode::error_response(
            out,
            vec![
                (b'S', "FATAL".into()),
                (b'V', "FATAL".into()),
                (b'C', self.sqlstate().code().into()),
                (b'M', self.message()),
                (b'D', self.detail()),
            ],
        )
    }

    /// Writes the ErrorResponse after `pending` (what the client was owed already), within
    /// a bounded time; a client that does not take it loses it. Then closes
    /// ([`tell_and_close`]).
    pub async fn tell<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: &mut S,
        pending: &mut BytesMut,
    ) {
        if self.error_response(pending).is_err() {
            return;
        }
        tell_and_close(stream, pending).await;
    }

    fn kind(&self) -> usize {
        match self {
            Refusal::StartupPacketLength { .. }
            | Refusal::StartupPacketTooLong { .. }
            | Refusal::MessageLength { .. }
            | Refusal::AuthMessageTooLong { .. } => 0,
            Refusal::MessageTooLong { .. } => 1,
            Refusal::AuthTimeout { .. } => 2,
            Refusal::TooManyClients { .. } => 3,
        }
    }
}

/// Writes `pending` (ending in the FATAL ErrorResponse) within [`TELL_WITHIN`], ends the
/// proxy's side, and lingers: reads and drops what the client still sends until it closes,
/// for at most [`LINGER_AT_MOST`], so that the close does not reset the connection under a
/// client that is still writing.
async fn tell_and_close<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, pending: &mut BytesMut) {
    let told = tokio::time::timeout(TELL_WITHIN, async {
        stream.write_all_buf(pending).await?;
        stream.flush().await?;
        stream.shutdown().await
    })
    .await;
    if matches!(told, Ok(Ok(()))) {
        let mut discard = [0u8; 4 * 1024];
        let _ = tokio::time::timeout(LINGER_AT_MOST, async {
            while matches!(stream.read(&mut discard).await, Ok(read) if read > 0) {}
        })
        .await;
    }
}

/// Tells the client why, when `error` is the proxy refusing it or a push's server
/// connection ending (after `pending`, what it was owed already). Returns `error`.
pub async fn tell_client<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    pending: &mut BytesMut,
    error: SessionError,
) -> SessionError {
    match &error {
        SessionError::Refused(refusal) => refusal.tell(stream, pending).await,
        SessionError::PushServerLost(refusal)
            if encode::error_response(pending, refusal.fatal_fields()).is_ok() =>
        {
            tell_and_close(stream, pending).await;
        }
        SessionError::Protocol(violation)
            if violation.is_clients()
                && encode::error_response(pending, protocol_violation(violation)).is_ok() =>
        {
            tell_and_close(stream, pending).await;
        }
        _ => {}
    }
    error
}

/// A client's protocol violation as PostgreSQL reports one: FATAL 08P01, saying what.
fn protocol_violation(violation: &crate::net::ProtocolError) -> Vec<(u8, String)> {
    vec![
        (b'S', "FATAL".to_owned()),
        (b'V', "FATAL".to_owned()),
        (b'C', SqlState::PROTOCOL_VIOLATION.code().to_owned()),
        (b'M', violation.to_string()),
    ]
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message(), self.detail())
    }
}

impl std::error::Error for Refusal {}

impl From<FrameError> for Refusal {
    fn from(error: FrameError) -> Refusal {
        match error {
            FrameError::InvalidLength { tag, length } => Refusal::MessageLength { tag, length },
            FrameError::InvalidStartupLength(length) => Refusal::StartupPacketLength { length },
        }
    }
}

/// Logs refusals at a bounded rate: the first of each kind at once, then at most one line
/// per kind every [`LOG_EVERY`], saying how many were refused since the last line. A flood
/// of refused connections costs a counter each, not a log line each.
#[derive(Debug)]
pub struct RefusalLog {
    started: Instant,
    kinds: [KindLog; 4],
    /// Clients' protocol violations (FATAL 08P01), as many as a client can send.
    violations: KindLog,
}

#[derive(Debug, Default)]
struct KindLog {
    /// Milliseconds since `started` before which no line is logged.
    quiet_until: AtomicU64,
    /// Refusals not logged since the last line.
    unlogged: AtomicU64,
}

impl Default for RefusalLog {
    fn default() -> RefusalLog {
        RefusalLog {
            started: Instant::now(),
            kinds: Default::default(),
            violations: KindLog::default(),
        }
    }
}

impl RefusalLog {
    pub fn record(&self, refusal: &Refusal) {
        let Some(kind) = self.kinds.get(refusal.kind()) else {
            return;
        };
        let Some(unlogged) = self.turn(kind) else {
            return;
        };
        if unlogged == 0 {
            warn!(error = %refusal, "client connection refused");
        } else {
            warn!(
                error = %refusal,
                "client connection refused, and {unlogged} more like it since the last such line"
            );
        }
    }

    /// A session a client's protocol violation ended (`error`).
    pub fn record_violation(&self, error: &SessionError) {
        let Some(unlogged) = self.turn(&self.violations) else {
            return;
        };
        if unlogged == 0 {
            warn!(%error, "session failed");
        } else {
            warn!(%error, "session failed, and {unlogged} more like it since the last such line");
        }
    }

    /// Whether `kind` may log a line now; if so, how many went unlogged since its last.
    fn turn(&self, kind: &KindLog) -> Option<u64> {
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let quiet_until = kind.quiet_until.load(Ordering::Relaxed);
        let every = u64::try_from(LOG_EVERY.as_millis()).unwrap_or(u64::MAX);
        let turn = now >= quiet_until
            && kind
                .quiet_until
                .compare_exchange(
                    quiet_until,
                    now.saturating_add(every),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok();
        if !turn {
            kind.unlogged.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(kind.unlogged.swap(0, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::frame::body;

    #[test]
    fn the_client_is_told_with_a_fatal_error() {
        let mut out = BytesMut::new();
        Refusal::TooManyClients { limit: 3 }
            .error_response(&mut out)
            .unwrap();
        assert_eq!(out[0], b'E');
        let text = String::from_utf8_lossy(body(&out)).into_owned();
        for field in [
            "SFATAL",
            "C53300",
            "Msorry, too many clients already",
            "at most 3 client connections (--max-client-connections)",
        ] {
            assert!(text.contains(field), "{field} not in {text:?}");
        }
    }

    #[test]
    fn a_flood_of_refusals_logs_one_line_per_kind() {
        let log = RefusalLog::default();
        for _ in 0..100 {
            log.record(&Refusal::TooManyClients { limit: 3 });
        }
        log.record(&Refusal::AuthTimeout {
            timeout: Duration::from_secs(1),
        });
        let too_many = &log.kinds[3];
        assert_eq!(too_many.unlogged.load(Ordering::Relaxed), 99);
        assert_eq!(log.kinds[2].unlogged.load(Ordering::Relaxed), 0);
        // A client's protocol violations, as many as it can send, are a kind of their own.
        for _ in 0..50 {
            log.record_violation(&SessionError::Protocol(
                crate::net::ProtocolError::QueryBeforeSync,
            ));
        }
        assert_eq!(log.violations.unlogged.load(Ordering::Relaxed), 49);
        assert_eq!(too_many.unlogged.load(Ordering::Relaxed), 99);
    }
}
