//! The pure half of a subscription ([`super::session::Session::run`]): what it has
//! received and not applied yet, and where it stands. It is told what arrived (an event, a
//! subscription that took hold, whether more is waiting) and says what to apply or to
//! report; the session does the reading, the writing and the waiting. Kept apart so that
//! its rules are tested without a server or a database:
//!
//! - events are grouped into transactions, and a transaction is complete when an event of
//!   another arrives or nothing more is waiting;
//! - while a catch-up by polling runs, everything is held, at most [`MAX_HELD_EVENTS`]
//!   (beyond, the catch-up starts over and its polls cover what was dropped);
//! - only polls started after the subscription took hold end a catch-up (a change between
//!   an earlier poll and the subscription would reach neither), and from the tip again
//!   they must start after that;
//! - a subscription resumed after an id delivers again what was held past it.

use chrono::{DateTime, Utc};
use sfpg_salesforce::streaming::{ReplayFrom, ReplayId};

use super::change::Change;
use super::transactions::{Transaction, TransactionBuffer};

/// Events held while a catch-up runs, at most; beyond, they are dropped and the catch-up
/// starts over (the polls that end it then cover them).
pub const MAX_HELD_EVENTS: usize = 200_000;

/// A catch-up by polling: why, and the time after which polls count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatchUp {
    pub reason: String,
    pub since: DateTime<Utc>,
}

/// What a `Connected` asks of the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscribed {
    /// The first of this subscription: objects joining the stream count polls from now.
    pub first: bool,
    /// Not catching up: the stream is connected (report it).
    pub connected: bool,
}

/// What the end of a turn asks of the session.
#[derive(Debug, PartialEq)]
pub enum AfterTurn {
    /// Apply these transactions (and empty or not, the turn is over).
    Apply(Vec<Transaction>),
    /// Catching up: hold on.
    Hold,
    /// Catching up, and too much was held: it was dropped and the catch-up starts over.
    StartedOver,
}

/// Received and not applied yet, and where the subscription stands.
#[derive(Debug, Default)]
pub struct Received {
    open: TransactionBuffer,
    held: Vec<Transaction>,
    subscribed: bool,
    catch_up: Option<CatchUp>,
}

impl Received {
    /// A subscription about to start, catching up by polling first when `catch_up` says.
    pub fn new(catch_up: Option<CatchUp>) -> Self {
        Self {
            catch_up,
            ..Self::default()
        }
    }

    pub fn catching_up(&self) -> Option<&CatchUp> {
        self.catch_up.as_ref()
    }

    pub fn subscribed(&self) -> bool {
        self.subscribed
    }

    /// Ends the catch-up when the subscription has taken hold and `caught_up(since)` says
    /// every object was polled from its watermark since: what is held is returned, to go
    /// through the version guard now. `None` while it goes on (or there is none).
    pub fn end_catch_up(
        &mut self,
        caught_up: impl FnOnce(DateTime<Utc>) -> bool,
    ) -> Option<Vec<Transaction>> {
        let since = self.catch_up.as_ref()?.since;
        if !self.subscribed || !caught_up(since) {
            return None;
        }
        self.catch_up = None;
        self.held.extend(self.open.take());
        Some(std::mem::take(&mut self.held))
    }

    /// The subscription took hold from `from`, at `now`.
    pub fn connected(&mut self, from: ReplayFrom, now: DateTime<Utc>) -> Subscribed {
        let first = !self.subscribed;
        self.subscribed = true;
        if let Some(catch_up) = &mut self.catch_up
            && (first || from == ReplayFrom::Tip)
        {
            // From the tip again: what happened during the outage is for the polls, which
            // must start after this.
            catch_up.since = now;
        }
        self.forget_after(from);
        Subscribed {
            first,
            connected: self.catch_up.is_none(),
        }
    }

    /// Takes an event.
    pub fn event(&mut self, change: Change) {
        self.held.extend(self.open.push(change));
    }

    /// Whether nothing received waits to be applied.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty() && self.open.is_empty()
    }

    /// The events of the complete transactions held.
    pub fn held_events(&self) -> usize {
        self.held.iter().map(|t| t.changes.len()).sum()
    }

    /// The turn is over; `nothing_waiting` when no item waits behind it, which completes
    /// the transaction being received.
    pub fn after_turn(&mut self, nothing_waiting: bool, now: DateTime<Utc>) -> AfterTurn {
        match &mut self.catch_up {
            None => {
                if nothing_waiting {
                    self.held.extend(self.open.take());
                }
                AfterTurn::Apply(std::mem::take(&mut self.held))
            }
            Some(catch_up)
                if self.held.iter().map(|t| t.changes.len()).sum::<usize>() > MAX_HELD_EVENTS =>
            {
                self.held.clear();
                self.open.clear();
                catch_up.since = now;
                AfterTurn::StartedOver
            }
            Some(_) => AfterTurn::Hold,
        }
    }

    /// Drops what is held after `from`: a subscription resumed there delivers it again.
    fn forget_after(&mut self, from: ReplayFrom) {
        let ReplayFrom::After(ReplayId(from)) = from else {
            return;
        };
        self.open.clear();
        for transaction in &mut self.held {
            transaction.changes.retain(|c| c.replay_id <= from);
        }
        self.held.retain(|t| !t.changes.is_empty());
    }
}

#[cfg(test)]
mod tests;
