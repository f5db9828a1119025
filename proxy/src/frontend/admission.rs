//! Which connections the proxy takes on, and for how long one may take to authenticate:
//! `--max-client-connections` and `--auth-timeout`.
//!
//! As PostgreSQL's postmaster does, a connection past the limit is not dropped unanswered:
//! its StartupMessage is read (under the same timeout), so that a CancelRequest still gets
//! through when every place is taken and the refusal goes over TLS if the client asked for
//! it. As many connections again may be in that state; past that, the refusal is written
//! as soon as the connection is accepted.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::refusal::Refusal;
use crate::error::SessionError;

/// The count of open client connections, against the limit.
#[derive(Debug)]
pub struct Admission {
    limit: usize,
    /// Connections that may become sessions.
    sessions: Arc<AtomicUsize>,
    /// Connections past the limit, read only to be refused (or to cancel).
    refused: Arc<AtomicUsize>,
}

/// A newly accepted connection's place.
#[derive(Debug)]
pub struct Admitted {
    /// Held for as long as the connection is.
    pub ticket: Ticket,
    /// Past the limit: it may send a CancelRequest, and a StartupMessage is refused with
    /// [`Refusal::TooManyClients`].
    pub over_limit: bool,
}

/// A connection's place in its count, given back when dropped.
#[derive(Debug)]
pub struct Ticket(Arc<AtomicUsize>);

impl Drop for Ticket {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
        crate::telemetry::client_disconnected();
    }
}

impl Admission {
    pub fn new(limit: usize) -> Admission {
        // Shown from the start, at 0, rather than from the first connection.
        crate::telemetry::client_connected_by(0.0);
        Admission {
            limit,
            sessions: Arc::default(),
            refused: Arc::default(),
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// A place for a new connection; `None` when it must be refused at once.
    pub fn admit(&self) -> Option<Admitted> {
        if let Some(ticket) = take_place(&self.sessions, self.limit) {
            return Some(Admitted {
                ticket,
                over_limit: false,
            });
        }
        take_place(&self.refused, self.limit).map(|ticket| Admitted {
            ticket,
            over_limit: true,
        })
    }
}

/// A place in `count` if it is below `limit`.
fn take_place(count: &Arc<AtomicUsize>, limit: usize) -> Option<Ticket> {
    count
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
            (open < limit).then_some(open + 1)
        })
        .ok()
        .map(|_| {
            crate::telemetry::client_connected();
            Ticket(Arc::clone(count))
        })
}

/// When a connection must have authenticated by: `--auth-timeout` after it was accepted.
#[derive(Debug, Clone, Copy)]
pub struct AuthDeadline {
    at: Instant,
    timeout: Duration,
}

impl AuthDeadline {
    pub fn after(timeout: Duration) -> AuthDeadline {
        AuthDeadline {
            at: Instant::now() + timeout,
            timeout,
        }
    }

    /// Runs `step` of the opening of a connection, until the deadline.
    pub async fn within<T>(
        &self,
        step: impl Future<Output = Result<T, SessionError>>,
    ) -> Result<T, SessionError> {
        tokio::time::timeout_at(self.at, step)
            .await
            .unwrap_or(Err(SessionError::Refused(Refusal::AuthTimeout {
                timeout: self.timeout,
            })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_limit_as_many_again_wait_to_be_refused_then_none() {
        let admission = Admission::new(2);
        let over_limit = |admitted: &Option<Admitted>| admitted.as_ref().map(|a| a.over_limit);
        let first = admission.admit();
        let second = admission.admit();
        assert_eq!(over_limit(&first), Some(false));
        assert_eq!(over_limit(&second), Some(false));
        let over: Vec<Option<Admitted>> = (0..3).map(|_| admission.admit()).collect();
        let over_flags: Vec<Option<bool>> = over.iter().map(over_limit).collect();
        assert_eq!(over_flags, [Some(true), Some(true), None]);
        // A place given back is taken by the next connection; one over the limit does not
        // hold a session's place.
        drop(first);
        let third = admission.admit();
        assert_eq!(over_limit(&third), Some(false));
        drop(over);
        assert_eq!(over_limit(&admission.admit()), Some(true));
    }

    #[tokio::test]
    async fn a_step_past_the_deadline_is_refused_naming_the_timeout() {
        let deadline = AuthDeadline::after(Duration::from_millis(20));
        let done = deadline.within(async { Ok(1) }).await;
        assert_eq!(done.ok(), Some(1));
        let stalled = deadline
            .within(std::future::pending::<Result<(), SessionError>>())
            .await;
        assert!(matches!(
            stalled,
            Err(SessionError::Refused(Refusal::AuthTimeout { timeout }))
                if timeout == Duration::from_millis(20)
        ));
    }
}
