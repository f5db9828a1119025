//! Cancel keys. The proxy gives each client its own BackendKeyData rather than the
//! server's, so that a CancelRequest comes to the proxy: it may have to abort a push to
//! Salesforce that the server knows nothing about, and the server's real key never leaves
//! the proxy.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

use crate::net::messages::backend::BackendKey;

/// The live sessions' keys, shared by every session of one proxy.
#[derive(Debug, Default)]
pub struct CancelRegistry {
    sessions: Mutex<HashMap<i32, Entry>>,
}

#[derive(Debug)]
struct Entry {
    secret: Vec<u8>,
    upstream: BackendKey,
    signal: Arc<CancelSignal>,
}

/// Raised when the client cancels: what the session is doing on the proxy's side (a push)
/// listens for it; what the server is running gets the forwarded CancelRequest.
#[derive(Debug, Default)]
pub struct CancelSignal {
    generation: AtomicU64,
    notify: Notify,
    /// The proxy is working for the session on its own (a push to Salesforce) while the
    /// server runs nothing of the client's.
    proxy_working: AtomicBool,
}

/// What a CancelRequest with a known key comes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cancel {
    /// Forward it to the server, with the server's key.
    Forward(BackendKey),
    /// The proxy's own work for the session takes it; the server gets nothing. The server
    /// acts on a cancel some milliseconds after it arrives, so a forwarded one would land on
    /// whatever the proxy sends next, such as the ROLLBACK that ends the cancelled push.
    Taken,
}

/// While alive, cancels are the proxy's alone (see [`Cancel::Taken`]).
#[derive(Debug)]
pub struct ProxyWorking(Arc<CancelSignal>);

impl Drop for ProxyWorking {
    fn drop(&mut self) {
        self.0.proxy_working.store(false, Ordering::Release);
    }
}

impl CancelSignal {
    /// Marks the stretch in which the server runs nothing of the client's, until the
    /// returned guard is dropped.
    pub fn proxy_working(self: &Arc<Self>) -> ProxyWorking {
        self.proxy_working.store(true, Ordering::Release);
        ProxyWorking(Arc::clone(self))
    }

    /// The number of cancels so far; compare with a later value to see whether one came.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Resolves at the first cancel after `since` (a value of [`Self::generation`]).
    pub async fn cancelled_since(&self, since: u64) {
        loop {
            let notified = self.notify.notified();
            if self.generation() != since {
                return;
            }
            notified.await;
        }
    }

    fn raise(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.notify.notify_waiters();
    }
}

/// A session's place in the registry, removed when dropped.
#[derive(Debug)]
pub struct Registration {
    registry: Arc<CancelRegistry>,
    pid: i32,
    secret: Vec<u8>,
    signal: Arc<CancelSignal>,
}

impl Registration {
    /// The process id the client is told.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The secret the client is told.
    pub fn secret(&self) -> &[u8] {
        &self.secret
    }

    pub fn signal(&self) -> &Arc<CancelSignal> {
        &self.signal
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.pid);
    }
}

impl CancelRegistry {
    /// Issues a key for a session whose server process has key `upstream`. The secret has
    /// the server's length, which is what the negotiated protocol version expects.
    pub fn register(self: &Arc<Self>, upstream: BackendKey) -> Registration {
        let signal = Arc::new(CancelSignal::default());
        let secret: Vec<u8> = (0..upstream.secret.len())
            .map(|_| rand::random::<u8>())
            .collect();
        let mut sessions = self.lock();
        let pid = loop {
            // Positive, like a real process id, and unused.
            let candidate = rand::random::<i32>() & i32::MAX;
            if candidate != 0 && !sessions.contains_key(&candidate) {
                break candidate;
            }
        };
        sessions.insert(
            pid,
            Entry {
                secret: secret.clone(),
                upstream,
                signal: Arc::clone(&signal),
            },
        );
        drop(sessions);
        Registration {
            registry: Arc::clone(self),
            pid,
            secret,
            signal,
        }
    }

    /// Checks a CancelRequest's key. On a match, signals the session and says whether the
    /// server gets it too; an unknown key gets nothing, as from the server itself.
    pub fn cancel(&self, pid: i32, secret: &[u8]) -> Option<Cancel> {
        let sessions = self.lock();
        let entry = sessions.get(&pid)?;
        if !constant_time_eq(&entry.secret, secret) {
            return None;
        }
        entry.signal.raise();
        Some(if entry.signal.proxy_working.load(Ordering::Acquire) {
            Cancel::Taken
        } else {
            Cancel::Forward(entry.upstream.clone())
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i32, Entry>> {
        // The map stays consistent even if a holder panicked: every critical section is a
        // single insert, remove or lookup.
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream() -> BackendKey {
        BackendKey {
            pid: 4242,
            secret: vec![1, 2, 3, 4],
        }
    }

    #[tokio::test]
    async fn a_matching_key_signals_the_session_and_yields_the_servers_key() {
        let registry = Arc::new(CancelRegistry::default());
        let registration = registry.register(upstream());
        assert_ne!(registration.secret(), &[1, 2, 3, 4]);
        let since = registration.signal().generation();
        let signal = Arc::clone(registration.signal());
        let waiter = tokio::spawn(async move { signal.cancelled_since(since).await });
        let forwarded = registry.cancel(registration.pid(), registration.secret());
        assert_eq!(forwarded, Some(Cancel::Forward(upstream())));
        waiter.await.unwrap();
    }

    #[tokio::test]
    async fn while_the_proxy_works_a_cancel_is_its_own() {
        let registry = Arc::new(CancelRegistry::default());
        let registration = registry.register(upstream());
        let since = registration.signal().generation();
        let working = registration.signal().proxy_working();
        let cancel = registry.cancel(registration.pid(), registration.secret());
        assert_eq!(cancel, Some(Cancel::Taken));
        registration.signal().cancelled_since(since).await;
        drop(working);
        let cancel = registry.cancel(registration.pid(), registration.secret());
        assert_eq!(cancel, Some(Cancel::Forward(upstream())));
    }

    #[test]
    fn a_wrong_secret_or_a_closed_session_gets_nothing() {
        let registry = Arc::new(CancelRegistry::default());
        let registration = registry.register(upstream());
        let pid = registration.pid();
        let mut wrong = registration.secret().to_vec();
        wrong[0] ^= 1;
        assert_eq!(registry.cancel(pid, &wrong), None);
        assert_eq!(registry.cancel(pid, &[1, 2]), None);
        let secret = registration.secret().to_vec();
        drop(registration);
        assert_eq!(registry.cancel(pid, &secret), None);
    }

    #[test]
    fn long_keys_of_protocol_3_2_keep_their_length() {
        let registry = Arc::new(CancelRegistry::default());
        let registration = registry.register(BackendKey {
            pid: 1,
            secret: vec![7; 32],
        });
        assert_eq!(registration.secret().len(), 32);
    }
}
