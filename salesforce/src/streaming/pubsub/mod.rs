//! The gRPC Pub/Sub API transport (`eventbus.v1.PubSub`, reference streaming §2): [`PubSub`]
//! hands out subscriptions that yield exactly the [`StreamItem`](super::StreamItem)s the
//! CometD transport yields for the same changes (same replay ids, same `fields`: see
//! `decode`), with every guarantee of [`super`]'s module docs, and:
//!
//! - flow control: at most [`PubSubOptions::batch`] (≤ 100) events outstanding, asked for
//!   again as the caller consumes, and never 0 pending for long (see `flow`);
//! - a watchdog: no response at all (events or a keepalive) within
//!   [`PubSubOptions::watchdog`] and the stream is taken for dead and subscribed again;
//! - every error ends a Pub/Sub stream; the subscription subscribes again after the last
//!   applied replay id, with [`Backoff`], after a new login for an auth error; an invalid or
//!   expired replay id is [`crate::Error::ReplayIdInvalid`];
//! - one stream per topic: a newer subscription of a topic ends the older one and cancels
//!   its gRPC call before opening its own.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::AbortHandle;
use tonic::transport::Channel;

use super::backoff::Backoff;
use super::cometd::Registry;
use super::{EventTransport, ReplayFrom, Subscription};
use crate::client::Client;
use crate::error::Result;

mod bitmap;
mod decode;
mod flow;
mod schema;
mod session;
mod wire;

pub use flow::MAX_BATCH;
pub use wire::{DEFAULT_ENDPOINT, endpoint_url, probe};

/// How a Pub/Sub subscription paces itself.
#[derive(Debug, Clone)]
pub struct PubSubOptions {
    /// Events outstanding (asked for and not yet consumed) at most; Salesforce allows 100.
    pub batch: u32,
    /// A caller that holds a full batch unconsumed this long leaves nothing requested; the
    /// server closes such a stream after 60 s, so the subscription lets it go first and
    /// subscribes again once the batch is consumed.
    pub starve_limit: Duration,
    /// No response at all (events or a keepalive, which Salesforce sends within 270 s) this
    /// long: the stream is dead.
    pub watchdog: Duration,
    /// The wait before subscribing again after an outage.
    pub backoff: Backoff,
    /// The limit on opening a connection, and on a call's first answer.
    pub connect_timeout: Duration,
}

impl Default for PubSubOptions {
    fn default() -> Self {
        PubSubOptions {
            batch: MAX_BATCH,
            starve_limit: Duration::from_secs(50),
            watchdog: Duration::from_secs(300),
            backoff: Backoff::default(),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// The Pub/Sub transport of one client (one org, one set of credentials) and one endpoint.
#[derive(Clone)]
pub struct PubSub {
    shared: Arc<Shared>,
    live: Registry<Slot>,
}

/// What a transport's subscriptions share.
pub(crate) struct Shared {
    pub(crate) client: Client,
    pub(crate) endpoint: String,
    pub(crate) options: PubSubOptions,
    pub(crate) channel: Channel,
    pub(crate) schemas: schema::SchemaCache,
}

impl std::fmt::Debug for PubSub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PubSub")
            .field("endpoint", &self.shared.endpoint)
            .field("options", &self.shared.options)
            .finish_non_exhaustive()
    }
}

impl PubSub {
    /// The transport of `client` through `endpoint` (`host:port`, which is TLS, or an
    /// `https://` or `http://` URL), with the default options. Connects on first use.
    pub fn new(client: Client, endpoint: &str) -> Result<Self> {
        PubSub::with_options(client, endpoint, PubSubOptions::default())
    }

    /// The transport of `client` through `endpoint`, with `options`.
    pub fn with_options(client: Client, endpoint: &str, options: PubSubOptions) -> Result<Self> {
        let channel = wire::channel(&client, endpoint, options.connect_timeout)?;
        Ok(PubSub {
            shared: Arc::new(Shared {
                client,
                endpoint: endpoint_url(endpoint),
                options,
                channel,
                schemas: schema::SchemaCache::default(),
            }),
            live: Registry::default(),
        })
    }

    /// The endpoint, as a URL.
    pub fn endpoint(&self) -> &str {
        &self.shared.endpoint
    }
}

impl EventTransport for PubSub {
    fn subscribe(&self, channel: &str, from: ReplayFrom) -> Box<dyn Subscription> {
        let slot = Arc::new(Slot::new());
        if let Some(previous) = self.live.replace(channel, Arc::clone(&slot)) {
            previous.end("a newer subscription of the channel replaced it");
        }
        Box::new(session::Session::new(
            Arc::clone(&self.shared),
            channel.to_owned(),
            from,
            slot,
            self.live.clone(),
        ))
    }
}

/// What a subscription shares with the registry and with a successor: whether it has
/// ended, and the task reading its gRPC call, which ending it cancels.
pub(crate) struct Slot {
    ended: watch::Sender<Option<String>>,
    call: Mutex<Option<AbortHandle>>,
}

impl Slot {
    fn new() -> Self {
        Slot {
            ended: watch::Sender::new(None),
            call: Mutex::new(None),
        }
    }

    /// Ends the subscription: its call is cancelled, and it returns no more events.
    pub(crate) fn end(&self, reason: &str) {
        self.ended.send_if_modified(|ended| {
            let first = ended.is_none();
            if first {
                *ended = Some(reason.to_owned());
            }
            first
        });
        self.set_call(None);
    }

    /// Why the subscription ended, if it has.
    pub(crate) fn ended(&self) -> Option<String> {
        self.ended.borrow().clone()
    }

    /// Resolves once the subscription has ended.
    pub(crate) fn watch(&self) -> watch::Receiver<Option<String>> {
        self.ended.subscribe()
    }

    /// Records the task reading the call now open (or none), cancelling the one before.
    pub(crate) fn set_call(&self, call: Option<AbortHandle>) {
        let before = std::mem::replace(
            &mut *self.call.lock().unwrap_or_else(PoisonError::into_inner),
            call,
        );
        if let Some(before) = before {
            before.abort();
        }
    }
}
