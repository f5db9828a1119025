//! One CometD subscription: handshake, subscribe, the connect loop, and what it does when
//! something goes wrong (see the module docs of [`super`] for the guarantees).
//!
//! The loop is sequential: at most one request of a subscription is in flight, so one
//! subscription never has two Bayeux clients connected. Any reconnect that changes the
//! client disconnects the old one first.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::watch;

use super::backoff::Backoff;
use super::bayeux::{self, Message, Refusal};
use super::cometd::{CometDOptions, Registry, Slot};
use super::cookies::CookieJar;
use super::event::ChangeEvent;
use super::platform::{PlatformEvent, is_platform_event_channel};
use super::{ReplayFrom, ReplayId, StreamItem, Subscription};
use crate::client::Client;
use crate::error::{Error, Result};
use crate::telemetry;

mod wire;

/// What went wrong with a step, and what it takes to go on.
#[derive(Debug)]
pub(super) enum Trouble {
    /// Handshake and subscribe again, after a backoff.
    Handshake(String),
    /// Log in again (a new token), then handshake, after a backoff.
    Login(String),
    /// Connect again with the same client, after `interval` or a backoff.
    Retry(String, Option<Duration>),
    /// The subscription ends with this error.
    Fatal(Error),
}

pub(crate) struct Session {
    client: Client,
    options: CometDOptions,
    channel: String,
    slot: Arc<Slot>,
    ended: watch::Receiver<Option<String>>,
    registry: Registry,
    /// The subscription this one replaced, whose Bayeux client it disconnects first.
    predecessor: Option<Arc<Slot>>,
    start: ReplayFrom,
    applied: Option<ReplayId>,
    last_returned: Option<ReplayId>,
    /// The Bayeux client, once handshaken.
    bayeux_client: Option<String>,
    /// Whether `bayeux_client` is subscribed, so that connects may be sent.
    subscribed: bool,
    /// A connect was sent and its answer not yet read: if `next` is dropped meanwhile (a
    /// caller's `select!` or timeout), the events the server handed to it are gone, so
    /// the next call subscribes again from the resume point.
    connect_in_flight: bool,
    cookies: CookieJar,
    ready: VecDeque<StreamItem>,
    backoff: Backoff,
    wait: Option<Duration>,
    /// A 401 led to a new login and no handshake has succeeded since: another 401 is final.
    logged_in_again: bool,
    message_id: u64,
}

impl Session {
    pub(crate) fn new(
        client: Client,
        options: CometDOptions,
        channel: String,
        start: ReplayFrom,
        slot: Arc<Slot>,
        registry: Registry,
        predecessor: Option<Arc<Slot>>,
    ) -> Self {
        let backoff = options.backoff.clone();
        Session {
            client,
            options,
            channel,
            ended: slot.watch(),
            slot,
            registry,
            predecessor,
            start,
            applied: None,
            last_returned: None,
            bayeux_client: None,
            subscribed: false,
            connect_in_flight: false,
            cookies: CookieJar::default(),
            ready: VecDeque::new(),
            backoff,
            wait: None,
            logged_in_again: false,
            message_id: 0,
        }
    }

    /// Where a (re)subscription starts: after the last applied event the caller named, else
    /// after the last event returned, else where the subscription was asked to start.
    fn resume_point(&self) -> ReplayFrom {
        match self.applied.or(self.last_returned) {
            Some(id) => ReplayFrom::After(id),
            None => self.start,
        }
    }

    fn ended_error(&self) -> Option<Error> {
        self.slot.ended().map(|detail| Error::SubscriptionEnded {
            channel: self.channel.clone(),
            detail,
        })
    }

    async fn next_item(&mut self) -> Result<StreamItem> {
        if std::mem::take(&mut self.connect_in_flight) {
            tracing::info!(channel = %self.channel, "a connect was abandoned; subscribing again");
            self.subscribed = false;
        }
        loop {
            if let Some(error) = self.ended_error() {
                return Err(error);
            }
            if let Some(item) = self.ready.pop_front() {
                match &item {
                    StreamItem::Event(event) => self.last_returned = Some(event.replay_id),
                    StreamItem::PlatformEvent(event) => self.last_returned = Some(event.replay_id),
                    _ => {}
                }
                return Ok(item);
            }
            let outcome = match self.wait.take() {
                Some(wait) => {
                    self.until_ended(async {
                        tokio::time::sleep(wait).await;
                        Ok(())
                    })
                    .await
                }
                None if self.subscribed => {
                    let mut ended = self.ended.clone();
                    tokio::select! {
                        outcome = self.poll() => outcome,
                        _ = ended.wait_for(Option::is_some) => Ok(()),
                    }
                }
                None => {
                    let mut ended = self.ended.clone();
                    tokio::select! {
                        outcome = self.open() => outcome,
                        _ = ended.wait_for(Option::is_some) => Ok(()),
                    }
                }
            };
            if let Err(trouble) = outcome {
                self.recover(trouble).await?;
            }
        }
    }

    /// Runs `step` unless the subscription ends first.
    async fn until_ended(
        &self,
        step: impl Future<Output = Result<(), Trouble>>,
    ) -> Result<(), Trouble> {
        let mut ended = self.ended.clone();
        tokio::select! {
            outcome = step => outcome,
            _ = ended.wait_for(Option::is_some) => Ok(()),
        }
    }

    /// Tears down whatever Bayeux client came before, then handshakes and subscribes from
    /// the resume point.
    async fn open(&mut self) -> Result<(), Trouble> {
        if let Some(predecessor) = self.predecessor.take()
            && let Some((client_id, cookies)) = predecessor.take_bayeux_client()
        {
            self.disconnect(&client_id, &cookies).await;
        }
        if let Some(client_id) = self.bayeux_client.take() {
            let cookies = std::mem::take(&mut self.cookies);
            self.slot.set_bayeux_client(None);
            self.disconnect(&client_id, &cookies).await;
        }
        self.cookies.clear();
        let client_id = self.handshake().await?;
        self.logged_in_again = false;
        self.bayeux_client = Some(client_id.clone());
        self.slot
            .set_bayeux_client(Some((client_id.clone(), self.cookies.clone())));
        let from = self.resume_point();
        let id = self.next_message_id();
        let body = bayeux::subscribe(id, &client_id, &self.channel, from.cometd_value());
        let answer = self.send(body, wire::Kind::Counted).await?;
        let reply = self.take_reply(answer, bayeux::SUBSCRIBE)?;
        if !reply.succeeded() {
            return Err(self.refused(&reply, from));
        }
        tracing::info!(channel = %self.channel, %from, "subscribed");
        self.subscribed = true;
        self.ready.push_back(StreamItem::Connected { from });
        Ok(())
    }

    async fn handshake(&mut self) -> Result<String, Trouble> {
        let id = self.next_message_id();
        let answer = self
            .send(bayeux::handshake(id), wire::Kind::Counted)
            .await?;
        let reply = self.take_reply(answer, bayeux::HANDSHAKE)?;
        match reply.client_id.as_deref() {
            Some(client_id) if reply.succeeded() => Ok(client_id.to_owned()),
            _ if !reply.succeeded() => Err(self.refused(&reply, self.resume_point())),
            _ => Err(Trouble::Handshake(
                "a successful handshake without a clientId".to_owned(),
            )),
        }
    }

    /// One long poll: its events, or `Idle`.
    async fn poll(&mut self) -> Result<(), Trouble> {
        let Some(client_id) = self.bayeux_client.clone() else {
            self.subscribed = false;
            return Ok(());
        };
        let id = self.next_message_id();
        let stall = self.options.stall_timeout;
        self.connect_in_flight = true;
        let sent = tokio::time::timeout(
            stall,
            self.send(bayeux::connect(id, &client_id), wire::Kind::LongPoll),
        )
        .await;
        self.connect_in_flight = false;
        let answer = match sent {
            Ok(answer) => answer?,
            Err(_) => {
                return Err(Trouble::Handshake(format!(
                    "no answer to a connect within {}s",
                    stall.as_secs_f64()
                )));
            }
        };
        let before = self.ready.len();
        let reply = self.take_reply(answer, bayeux::CONNECT)?;
        if !reply.succeeded() {
            return Err(self.refused(&reply, self.resume_point()));
        }
        self.backoff.reset();
        let interval = reply.advice.as_ref().and_then(|advice| advice.interval);
        if let Some(interval) = interval.filter(|&ms| ms > 0) {
            self.wait = Some(Duration::from_millis(interval));
        }
        if self.ready.len() == before {
            self.ready.push_back(StreamItem::Idle);
        }
        Ok(())
    }

    /// Queues the events of an answer, in order, and returns its reply on `meta_channel`.
    fn take_reply(&mut self, answer: Vec<Message>, meta_channel: &str) -> Result<Message, Trouble> {
        let mut reply = None;
        for message in answer {
            if message.is_event() {
                if message.channel != self.channel {
                    tracing::debug!(channel = %message.channel, "ignoring an event of another channel");
                    continue;
                }
                let data = message.data.unwrap_or_default();
                let item = self.decode_event(data)?;
                self.ready.push_back(item);
            } else if message.channel == meta_channel && reply.is_none() {
                reply = Some(message);
            }
        }
        reply.ok_or_else(|| Trouble::Handshake(format!("the answer held no {meta_channel} reply")))
    }

    /// The event in a message's `data`: a platform event on `/event/…` channels, a change
    /// event on the others.
    fn decode_event(&self, data: serde_json::Value) -> Result<StreamItem, Trouble> {
        let decoded = if is_platform_event_channel(&self.channel) {
            PlatformEvent::from_cometd(&self.channel, data)
                .map(|event| StreamItem::PlatformEvent(Box::new(event)))
                .map_err(|source| (source, "platform event"))
        } else {
            ChangeEvent::from_cometd(&self.channel, data)
                .map(|event| StreamItem::Event(Box::new(event)))
                .map_err(|source| (source, "change event"))
        };
        decoded.map_err(|(source, what)| {
            Trouble::Fatal(Error::Decode {
                endpoint: self.endpoint(),
                what,
                source,
            })
        })
    }

    /// What a refused meta request means.
    fn refused(&self, reply: &Message, from: ReplayFrom) -> Trouble {
        let reason = reply.reason();
        match reply.refusal() {
            Refusal::Login => Trouble::Login(reason),
            Refusal::Handshake => Trouble::Handshake(reason),
            Refusal::Retry => Trouble::Retry(
                reason,
                reply
                    .advice
                    .as_ref()
                    .and_then(|advice| advice.interval)
                    .map(Duration::from_millis),
            ),
            Refusal::ReplayIdInvalid => Trouble::Fatal(Error::ReplayIdInvalid {
                channel: self.channel.clone(),
                replay_id: from.cometd_value(),
                message: reply.error.clone().unwrap_or_default(),
            }),
            Refusal::Final => Trouble::Fatal(Error::Bayeux {
                endpoint: self.endpoint(),
                channel: reply.channel.clone(),
                error: reason,
            }),
        }
    }

    /// Decides what follows `trouble`: a wait and a reconnect (announced as
    /// [`StreamItem::Reconnecting`]), or the end of the subscription.
    async fn recover(&mut self, trouble: Trouble) -> Result<()> {
        let (why, reason) = match trouble {
            Trouble::Fatal(error) => return Err(self.finish(error).await),
            Trouble::Login(reason) if self.logged_in_again => {
                let error = Error::Bayeux {
                    endpoint: self.endpoint(),
                    channel: "/meta/handshake".to_owned(),
                    error: format!("{reason}, right after logging in again"),
                };
                return Err(self.finish(error).await);
            }
            Trouble::Login(reason) => {
                tracing::info!(channel = %self.channel, %reason, "logging in again");
                self.logged_in_again = true;
                if let Some(token) = self.client.cached_token() {
                    self.client.forget_token(&token);
                }
                self.subscribed = false;
                ("auth", reason)
            }
            Trouble::Retry(reason, Some(interval)) => {
                telemetry::resubscribe(self.client.config().org_label(), "unavailable");
                self.wait = Some(interval);
                self.ready.push_back(StreamItem::Reconnecting {
                    reason,
                    retry_in: interval,
                });
                return Ok(());
            }
            Trouble::Retry(reason, None) => ("unavailable", reason),
            Trouble::Handshake(reason) => {
                self.subscribed = false;
                ("handshake", reason)
            }
        };
        telemetry::resubscribe(self.client.config().org_label(), why);
        let wait = self.backoff.next_wait();
        tracing::warn!(channel = %self.channel, %reason, ?wait, "stream down; reconnecting");
        self.wait = Some(wait);
        self.ready.push_back(StreamItem::Reconnecting {
            reason,
            retry_in: wait,
        });
        Ok(())
    }

    /// Ends the subscription with `error`, disconnecting its client.
    async fn finish(&mut self, error: Error) -> Error {
        self.slot.end(&error.to_string());
        self.registry.remove(&self.channel, &self.slot);
        self.ready.clear();
        self.subscribed = false;
        if let Some(client_id) = self.bayeux_client.take() {
            let cookies = std::mem::take(&mut self.cookies);
            self.slot.set_bayeux_client(None);
            self.disconnect(&client_id, &cookies).await;
        }
        error
    }

    fn next_message_id(&mut self) -> u64 {
        self.message_id += 1;
        self.message_id
    }
}

impl Subscription for Session {
    fn channel(&self) -> &str {
        &self.channel
    }

    fn next(&mut self) -> BoxFuture<'_, Result<StreamItem>> {
        Box::pin(self.next_item())
    }

    fn resume_after(&mut self, replay_id: ReplayId) {
        self.applied = Some(replay_id);
    }

    fn close(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async {
            if self.slot.ended().is_none() {
                let error = Error::SubscriptionEnded {
                    channel: self.channel.clone(),
                    detail: "closed".to_owned(),
                };
                self.finish(error).await;
            }
        })
    }
}

impl Drop for Session {
    /// Ends the subscription and disconnects its client in the background, if a runtime is
    /// there to do it.
    fn drop(&mut self) {
        self.slot.end("dropped");
        self.registry.remove(&self.channel, &self.slot);
        let Some(client_id) = self.bayeux_client.take() else {
            return;
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let client = self.client.clone();
            let cookies = std::mem::take(&mut self.cookies);
            let timeout = self.options.disconnect_timeout;
            runtime.spawn(async move {
                wire::disconnect(&client, &client_id, &cookies, timeout).await;
            });
        }
    }
}
