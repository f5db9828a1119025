//! Change Data Capture streaming: typed change events, replay ids, and the transport-neutral
//! [`EventTransport`] / [`Subscription`] pair the sync consumes.
//!
//! Two transports implement the same two traits, so nothing above this module knows which
//! one is in use: CometD/Bayeux long-polling ([`CometD`], reference §6.1) and the gRPC
//! Pub/Sub API ([`PubSub`], reference streaming §2), whose Avro events are turned into the
//! very items CometD yields.
//!
//! # Guarantees
//!
//! - Events come out in replay order, typed ([`ChangeEvent`]): the header, the changed values
//!   as sent (compound fields nested, explicit `null`s kept), and the `GAP_*` and
//!   `GAP_OVERFLOW` change types.
//! - Reconnects, re-handshakes (`403::Unknown client`), logins (`401`) and the stall watchdog
//!   happen inside [`Subscription::next`]. Every (re)subscription is announced by
//!   [`StreamItem::Connected`] with the point it resumed from; every outage by
//!   [`StreamItem::Reconnecting`] with its reason, so a caller can show the stream as down.
//! - A reconnect resumes after the id the caller last gave to [`Subscription::resume_after`]
//!   (the last *applied* event), or, until the caller gives one, after the last event
//!   returned. Events after that point may therefore come twice; callers skip ids at or
//!   below their checkpoint.
//! - An invalid or expired replay id is [`crate::Error::ReplayIdInvalid`]
//!   ([`crate::Error::is_replay_id_invalid`]), never a silent jump to the tip.
//! - One transport never runs two subscriptions of one channel at once: a second
//!   [`EventTransport::subscribe`] of a channel ends the first (its `next` fails, and it never
//!   returns another event) and disconnects its Bayeux client before subscribing anew.

use std::fmt;
use std::time::Duration;

use futures::future::BoxFuture;

use crate::error::Result;

mod backoff;
mod bayeux;
mod cometd;
mod cookies;
mod event;
mod platform;
mod pubsub;
mod session;

pub use backoff::Backoff;
pub use cometd::{CometD, CometDOptions};
pub use event::{ChangeEvent, ChangeEventHeader, ChangeType};
pub use platform::{
    PlatformEvent, is_platform_event_channel, platform_event_channel, platform_event_name,
};
pub use pubsub::{
    DEFAULT_ENDPOINT as DEFAULT_PUBSUB_ENDPOINT, MAX_BATCH, PubSub, PubSubOptions,
    endpoint_url as pubsub_endpoint_url, probe as probe_pubsub,
};

/// The channel of every change event of every entity selected for Change Data Capture.
pub const ALL_CHANGE_EVENTS: &str = "/data/ChangeEvents";

/// The change event channel of one object: `/data/AccountChangeEvent`, and for a custom
/// object `Employee__c`, `/data/Employee__ChangeEvent` (reference §6.2).
pub fn change_event_channel(sobject: &str) -> String {
    match sobject.strip_suffix("__c") {
        Some(base) => format!("/data/{base}__ChangeEvent"),
        None => format!("/data/{sobject}ChangeEvent"),
    }
}

/// A replay id: the position of an event on the event bus. Opaque and increasing, but not
/// contiguous; never compute one, only store and compare them. (The Pub/Sub API carries the
/// same value as 8 bytes, big-endian.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReplayId(pub i64);

impl fmt::Display for ReplayId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Where a subscription starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayFrom {
    /// Only events published from now on (`-1`).
    Tip,
    /// Every event still retained (`-2`, up to 72 hours back).
    Retained,
    /// The events after this one.
    After(ReplayId),
}

impl ReplayFrom {
    /// The value the CometD replay extension sends: `-1`, `-2` or the id.
    pub fn cometd_value(self) -> i64 {
        match self {
            ReplayFrom::Tip => -1,
            ReplayFrom::Retained => -2,
            ReplayFrom::After(id) => id.0,
        }
    }
}

impl fmt::Display for ReplayFrom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplayFrom::Tip => f.write_str("the tip (-1)"),
            ReplayFrom::Retained => f.write_str("all retained events (-2)"),
            ReplayFrom::After(id) => write!(f, "after replay id {id}"),
        }
    }
}

/// What [`Subscription::next`] yields.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamItem {
    /// A change event, in replay order.
    Event(Box<ChangeEvent>),
    /// A platform event (`/event/…` channels), in replay order.
    PlatformEvent(Box<PlatformEvent>),
    /// The subscription is live (first time, or again after a reconnect); the events that
    /// follow are those after `from`. Anything the caller holds past `from` and has not
    /// applied will be delivered again.
    Connected {
        /// The point the subscription resumed from.
        from: ReplayFrom,
    },
    /// A long poll came back without an event: the stream is healthy and quiet.
    Idle,
    /// The stream is down; the next attempt comes after `retry_in`.
    Reconnecting {
        /// Why, in words (`403::Unknown client`, `no answer to a connect within 150s`, …).
        reason: String,
        /// The wait before the next attempt (backoff with jitter).
        retry_in: Duration,
    },
}

/// A source of change events: CometD or the Pub/Sub API.
pub trait EventTransport: Send + Sync {
    /// A subscription to `channel` starting at `from`. Nothing is sent until the first
    /// [`Subscription::next`]. A subscription of the same channel already made through this
    /// transport is ended first, so the two never both deliver.
    fn subscribe(&self, channel: &str, from: ReplayFrom) -> Box<dyn Subscription>;
}

/// One live subscription to one channel.
pub trait Subscription: Send {
    /// The channel, as subscribed.
    fn channel(&self) -> &str;

    /// The next item: an event in replay order, a (re)connection, a quiet poll, or an
    /// outage being retried. Errors are final: the subscription has ended, and the caller
    /// subscribes again (from -1 and a catch-up for [`crate::Error::ReplayIdInvalid`]).
    ///
    /// Cancel-safe: a future dropped before it finished (in a `select!`, under a timeout)
    /// loses no event; if it dropped a connect the server had answered, the next call
    /// subscribes again from the resume point (announced by [`StreamItem::Connected`]).
    fn next(&mut self) -> BoxFuture<'_, Result<StreamItem>>;

    /// The caller has durably applied everything up to `replay_id`: a reconnect resumes
    /// after it.
    fn resume_after(&mut self, replay_id: ReplayId);

    /// Ends the subscription and tells the server (`/meta/disconnect`), best effort.
    fn close(&mut self) -> BoxFuture<'_, ()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_of_standard_and_custom_objects() {
        assert_eq!(change_event_channel("Account"), "/data/AccountChangeEvent");
        assert_eq!(
            change_event_channel("Employee__c"),
            "/data/Employee__ChangeEvent"
        );
    }

    #[test]
    fn replay_values_as_cometd_sends_them() {
        assert_eq!(ReplayFrom::Tip.cometd_value(), -1);
        assert_eq!(ReplayFrom::Retained.cometd_value(), -2);
        assert_eq!(ReplayFrom::After(ReplayId(4711)).cometd_value(), 4711);
        assert!(ReplayId(3) < ReplayId(10));
    }
}
