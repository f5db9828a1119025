//! One Pub/Sub subscription: the loop that opens a Subscribe call, hands out its events in
//! order, asks for more as they are consumed, and recovers from whatever ends the call
//! (see the module docs of [`super`] for the guarantees).
//!
//! At most one call of a subscription is open at a time: a new one is opened only after
//! the last was let go, and its reading task cancelled.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::future::BoxFuture;
use sfpg_pubsub_proto::{FetchRequest, FetchResponse};
use tokio::sync::watch;
use tokio::time::Instant;

use super::flow::Demand;
use super::wire::Trouble;
use super::{Shared, Slot};
use crate::error::{Error, Result};
use crate::streaming::backoff::Backoff;
use crate::streaming::cometd::Registry;
use crate::streaming::{ReplayFrom, ReplayId, StreamItem, Subscription};
use crate::telemetry;

mod call;

use call::{Call, Delivery};

pub(crate) struct Session {
    shared: Arc<Shared>,
    topic: String,
    slot: Arc<Slot>,
    ended: watch::Receiver<Option<String>>,
    registry: Registry<Slot>,
    start: ReplayFrom,
    applied: Option<ReplayId>,
    last_returned: Option<ReplayId>,
    /// The open call, if any.
    call: Option<Call>,
    /// Where the last call was asked to start (a refused replay id names it).
    last_from: ReplayFrom,
    /// A response read from the call and not yet turned into items: kept here while its
    /// schemas are fetched, so a caller's dropped `next` loses none of its events.
    unread: Option<FetchResponse>,
    ready: VecDeque<StreamItem>,
    /// Shared with the call's reading task, which counts what arrives.
    demand: Arc<Mutex<Demand>>,
    backoff: Backoff,
    wait: Option<Duration>,
    /// An auth error led to a new login and no response has come since: another is final.
    logged_in_again: bool,
}

impl Session {
    pub(crate) fn new(
        shared: Arc<Shared>,
        topic: String,
        start: ReplayFrom,
        slot: Arc<Slot>,
        registry: Registry<Slot>,
    ) -> Self {
        let options = &shared.options;
        let demand = Demand::new(options.batch, options.starve_limit);
        let backoff = options.backoff.clone();
        Session {
            topic,
            ended: slot.watch(),
            slot,
            registry,
            start,
            applied: None,
            last_returned: None,
            call: None,
            last_from: start,
            unread: None,
            ready: VecDeque::new(),
            demand: Arc::new(Mutex::new(demand)),
            backoff,
            wait: None,
            logged_in_again: false,
            shared,
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

    fn demand(&self) -> std::sync::MutexGuard<'_, Demand> {
        self.demand.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn next_item(&mut self) -> Result<StreamItem> {
        loop {
            if let Some(detail) = self.slot.ended() {
                return Err(Error::SubscriptionEnded {
                    channel: self.topic.clone(),
                    detail,
                });
            }
            if let Some(item) = self.ready.pop_front() {
                let returned = match &item {
                    StreamItem::Event(event) => Some(event.replay_id),
                    StreamItem::PlatformEvent(event) => Some(event.replay_id),
                    _ => None,
                };
                if returned.is_some() {
                    self.last_returned = returned;
                    self.consumed();
                }
                return Ok(item);
            }
            let mut ended = self.ended.clone();
            // A wait first: a response whose schema could not be fetched is tried again
            // after the backoff too.
            let outcome = if let Some(wait) = self.wait.take() {
                tokio::select! {
                    () = tokio::time::sleep(wait) => Ok(()),
                    _ = ended.wait_for(Option::is_some) => Ok(()),
                }
            } else if self.unread.is_some() {
                self.read_unread().await
            } else if self.call.is_some() {
                self.receive().await
            } else {
                tokio::select! {
                    outcome = self.open() => outcome,
                    _ = ended.wait_for(Option::is_some) => Ok(()),
                }
            };
            if let Err(trouble) = outcome {
                self.recover(trouble)?;
            }
        }
    }

    /// The caller took an event: ask for more once enough room is free.
    fn consumed(&mut self) {
        let now = Instant::now();
        let more = {
            let mut demand = self.demand();
            demand.consumed(now);
            demand.request(now)
        };
        if let (Some(more), Some(call)) = (more, &self.call) {
            call.request(FetchRequest {
                topic_name: self.topic.clone(),
                num_requested: i32::try_from(more).unwrap_or(i32::MAX),
                ..FetchRequest::default()
            });
        }
    }

    /// Waits for what the call delivers next.
    async fn receive(&mut self) -> Result<(), Trouble> {
        let Some(call) = &mut self.call else {
            return Ok(());
        };
        let mut ended = self.ended.clone();
        let delivery = tokio::select! {
            delivery = call.next() => delivery,
            _ = ended.wait_for(Option::is_some) => return Ok(()),
        };
        match delivery {
            Delivery::Response(response) => {
                self.unread = Some(response);
                self.read_unread().await
            }
            Delivery::Failed(trouble) => {
                self.let_go();
                Err(trouble)
            }
            Delivery::Released => {
                tracing::info!(topic = %self.topic, "a full batch stayed unconsumed; subscribing again once it is");
                self.let_go();
                Ok(())
            }
        }
    }

    /// Turns the response kept in `unread` into items, fetching the schemas it needs.
    async fn read_unread(&mut self) -> Result<(), Trouble> {
        let Some(response) = &self.unread else {
            return Ok(());
        };
        for event in &response.events {
            if let Some(event) = &event.event {
                self.schema(&event.schema_id).await?;
            }
        }
        let Some(response) = self.unread.take() else {
            return Ok(());
        };
        self.backoff.reset();
        self.logged_in_again = false;
        if response.events.is_empty() {
            self.ready.push_back(StreamItem::Idle);
        }
        for event in response.events {
            let item = self.decode(event)?;
            self.ready.push_back(item);
        }
        Ok(())
    }

    /// Ends the open call, if any, without ending the subscription.
    fn let_go(&mut self) {
        self.call = None;
        self.slot.set_call(None);
    }

    /// Decides what follows `trouble`: a wait and a new call (announced as
    /// [`StreamItem::Reconnecting`]), or the end of the subscription.
    fn recover(&mut self, trouble: Trouble) -> Result<()> {
        self.let_go();
        let (why, reason) = match trouble {
            Trouble::Fatal(error) => return Err(self.finish(error)),
            Trouble::ReplayIdInvalid(message) => {
                let error = Error::ReplayIdInvalid {
                    channel: self.topic.clone(),
                    replay_id: self.last_from.cometd_value(),
                    message,
                };
                return Err(self.finish(error));
            }
            Trouble::Login(reason) if self.logged_in_again => {
                let error = Error::SubscriptionEnded {
                    channel: self.topic.clone(),
                    detail: format!("{reason}, right after logging in again"),
                };
                return Err(self.finish(error));
            }
            Trouble::Login(reason) => {
                tracing::info!(topic = %self.topic, %reason, "logging in again");
                self.logged_in_again = true;
                if let Some(token) = self.shared.client.cached_token() {
                    self.shared.client.forget_token(&token);
                }
                ("auth", reason)
            }
            Trouble::Reconnect(reason) => ("unavailable", reason),
        };
        telemetry::resubscribe(self.shared.client.config().org_label(), why);
        let wait = self.backoff.next_wait();
        tracing::warn!(topic = %self.topic, %reason, ?wait, "stream down; subscribing again");
        self.wait = Some(wait);
        self.ready.push_back(StreamItem::Reconnecting {
            reason,
            retry_in: wait,
        });
        Ok(())
    }

    /// Ends the subscription with `error`.
    fn finish(&mut self, error: Error) -> Error {
        self.slot.end(&error.to_string());
        self.registry.remove(&self.topic, &self.slot);
        self.ready.clear();
        self.unread = None;
        self.call = None;
        error
    }
}

impl Subscription for Session {
    fn channel(&self) -> &str {
        &self.topic
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
                self.finish(Error::SubscriptionEnded {
                    channel: self.topic.clone(),
                    detail: "closed".to_owned(),
                });
            }
        })
    }
}

impl Drop for Session {
    /// Ends the subscription, which cancels its call.
    fn drop(&mut self) {
        self.slot.end("dropped");
        self.registry.remove(&self.topic, &self.slot);
    }
}
