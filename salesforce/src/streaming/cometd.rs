//! The CometD/Bayeux long-polling transport (reference §6.1): [`CometD`] hands out
//! subscriptions and makes sure one channel never has two at once.
//!
//! Requests take the client's one request path (token, 401 re-login, usage header, errors),
//! to `{instance}/cometd/XX.X`. Handshakes and subscribes wait for the org's rate limiter
//! like any call, so a reconnect storm cannot exceed the org's rate; connects and
//! disconnects do not: a connect is held by the server up to 110 s and must be re-sent
//! within 40 s of the last answer, so queueing it behind the sync's polls (one request every
//! 3 s by default, shared) would cost `403::Unknown client`s, and a teardown must not wait.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

use super::backoff::Backoff;
use super::cookies::CookieJar;
use super::session::Session;
use super::{EventTransport, ReplayFrom, Subscription};
use crate::client::Client;

/// How a CometD subscription paces itself.
#[derive(Debug, Clone)]
pub struct CometDOptions {
    /// No answer this long after a connect was sent: the connection is taken for stalled,
    /// torn down, and a new client handshakes. Salesforce holds a connect up to 110 s, so the
    /// default is 150 s.
    pub stall_timeout: Duration,
    /// The wait before reconnecting after an outage.
    pub backoff: Backoff,
    /// How long a best-effort `/meta/disconnect` may take.
    pub disconnect_timeout: Duration,
}

impl Default for CometDOptions {
    fn default() -> Self {
        CometDOptions {
            stall_timeout: Duration::from_secs(150),
            backoff: Backoff::default(),
            disconnect_timeout: Duration::from_secs(5),
        }
    }
}

/// The CometD transport of one client (one org, one set of credentials).
#[derive(Clone)]
pub struct CometD {
    client: Client,
    options: CometDOptions,
    live: Registry,
}

impl std::fmt::Debug for CometD {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CometD")
            .field("client", &self.client)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl CometD {
    /// The transport of `client`, with the default options.
    pub fn new(client: Client) -> Self {
        CometD::with_options(client, CometDOptions::default())
    }

    /// The transport of `client`, with `options`.
    pub fn with_options(client: Client, options: CometDOptions) -> Self {
        CometD {
            client,
            options,
            live: Registry::default(),
        }
    }
}

impl EventTransport for CometD {
    fn subscribe(&self, channel: &str, from: ReplayFrom) -> Box<dyn Subscription> {
        let slot = Arc::new(Slot::new());
        let previous = self.live.replace(channel, Arc::clone(&slot));
        if let Some(previous) = &previous {
            previous.end("a newer subscription of the channel replaced it");
        }
        Box::new(Session::new(
            self.client.clone(),
            self.options.clone(),
            channel.to_owned(),
            from,
            slot,
            self.live.clone(),
            previous,
        ))
    }
}

/// The live subscription of each channel (of a transport's slot type `S`).
pub(crate) struct Registry<S = Slot>(Arc<Mutex<HashMap<String, Arc<S>>>>);

impl<S> Clone for Registry<S> {
    fn clone(&self) -> Self {
        Registry(Arc::clone(&self.0))
    }
}

impl<S> Default for Registry<S> {
    fn default() -> Self {
        Registry(Arc::default())
    }
}

impl<S> Registry<S> {
    /// Makes `slot` the channel's live subscription; returns the one it replaces.
    pub(crate) fn replace(&self, channel: &str, slot: Arc<S>) -> Option<Arc<S>> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(channel.to_owned(), slot)
    }

    /// Forgets `slot` as the channel's live subscription, unless a newer one took its place.
    pub(crate) fn remove(&self, channel: &str, slot: &Arc<S>) {
        let mut live = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if live
            .get(channel)
            .is_some_and(|kept| Arc::ptr_eq(kept, slot))
        {
            live.remove(channel);
        }
    }
}

/// What a subscription shares with the registry and with a successor: whether it has
/// ended, and its Bayeux client, which a successor disconnects before handshaking.
pub(crate) struct Slot {
    ended: watch::Sender<Option<String>>,
    bayeux_client: Mutex<Option<(String, CookieJar)>>,
}

impl Slot {
    fn new() -> Self {
        Slot {
            ended: watch::Sender::new(None),
            bayeux_client: Mutex::new(None),
        }
    }

    /// Ends the subscription: it sends nothing more and returns no more events.
    pub(crate) fn end(&self, reason: &str) {
        self.ended.send_if_modified(|ended| {
            let first = ended.is_none();
            if first {
                *ended = Some(reason.to_owned());
            }
            first
        });
    }

    /// Why the subscription ended, if it has.
    pub(crate) fn ended(&self) -> Option<String> {
        self.ended.borrow().clone()
    }

    /// Resolves once the subscription has ended.
    pub(crate) fn watch(&self) -> watch::Receiver<Option<String>> {
        self.ended.subscribe()
    }

    /// Records the Bayeux client now in use (or none).
    pub(crate) fn set_bayeux_client(&self, client: Option<(String, CookieJar)>) {
        *self
            .bayeux_client
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = client;
    }

    /// Takes the Bayeux client, to disconnect it.
    pub(crate) fn take_bayeux_client(&self) -> Option<(String, CookieJar)> {
        self.bayeux_client
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}
