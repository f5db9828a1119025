//! Flow control of one Subscribe stream (reference streaming §2.2), as plain arithmetic.
//!
//! The server sends only what was asked for with `num_requested`, at most 100 across the
//! requests of a call. The client here keeps *outstanding* events (asked for and not yet
//! handed to the caller: still owed by the server, or received and buffered) at most
//! [`Demand::batch`], and asks again as the caller consumes: `batch − pending − buffered`,
//! which is Salesforce's "re-request `batch − pending_num_requested`" once the buffer is
//! empty. It asks when that reaches half a batch, or at once when nothing is owed, so a
//! quick consumer is never left without demand and a slow one does not send a request per
//! event.
//!
//! The one way pending stays at 0 is a caller that sits on a full buffer. The server closes
//! a stream with nothing requested for 60 s, so [`Demand::starved`] tells the session when
//! the caller has held a full buffer for the limit: it lets the stream go and subscribes
//! again once the buffer is consumed, rather than ask for more than the batch.
//!
//! The count of what is owed is kept here, not read from the server's
//! `pending_num_requested`: a response may be written before the server read a request
//! in flight, and trusting its count then would ask twice for the same events.

use std::time::Duration;

use tokio::time::Instant;

/// The most events Salesforce hands out per Subscribe call at once.
pub const MAX_BATCH: u32 = 100;

/// The demand accounting of one stream.
#[derive(Debug, Clone)]
pub(crate) struct Demand {
    batch: u32,
    /// Asked for and not yet received.
    pending: u32,
    /// Received and not yet handed to the caller.
    buffered: u32,
    /// Since when nothing has been owed (with a full buffer).
    starved_since: Option<Instant>,
    starve_limit: Duration,
}

impl Demand {
    /// A stream that keeps at most `batch` (1–100) events outstanding, and gives up a
    /// stream left with nothing owed for `starve_limit`.
    pub(crate) fn new(batch: u32, starve_limit: Duration) -> Self {
        Demand {
            batch: batch.clamp(1, MAX_BATCH),
            pending: 0,
            buffered: 0,
            starved_since: None,
            starve_limit,
        }
    }

    /// A new stream: nothing owed yet; what is still buffered from the last one counts.
    pub(crate) fn restart(&mut self, buffered: u32, now: Instant) {
        self.pending = 0;
        self.buffered = buffered;
        self.note_starvation(now);
    }

    /// How many to ask for now, if any; counted as owed from here on.
    pub(crate) fn request(&mut self, now: Instant) -> Option<u32> {
        let want = self.batch.saturating_sub(self.pending + self.buffered);
        let worth_it = want > 0 && (self.pending == 0 || want >= self.batch.div_ceil(2));
        if !worth_it {
            return None;
        }
        self.pending += want;
        self.note_starvation(now);
        Some(want)
    }

    /// A response brought `events` events.
    pub(crate) fn received(&mut self, events: u32, now: Instant) {
        self.pending = self.pending.saturating_sub(events);
        self.buffered += events;
        self.note_starvation(now);
    }

    /// The caller took one event.
    pub(crate) fn consumed(&mut self, now: Instant) {
        self.buffered = self.buffered.saturating_sub(1);
        self.note_starvation(now);
    }

    /// Asked for and not yet handed to the caller.
    #[cfg(test)]
    pub(crate) fn outstanding(&self) -> u32 {
        self.pending + self.buffered
    }

    /// Asked for and not yet received.
    #[cfg(test)]
    pub(crate) fn pending(&self) -> u32 {
        self.pending
    }

    /// When the stream must be let go unless the caller consumes first: nothing has been
    /// owed since the returned instant less the limit.
    pub(crate) fn starved(&self) -> Option<Instant> {
        self.starved_since.map(|since| since + self.starve_limit)
    }

    fn note_starvation(&mut self, now: Instant) {
        if self.pending > 0 {
            self.starved_since = None;
        } else if self.starved_since.is_none() {
            self.starved_since = Some(now);
        }
    }
}

/// When a stream with no response at all (no events, no keepalive) is taken for dead.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Watchdog {
    last_response: Instant,
    limit: Duration,
}

impl Watchdog {
    pub(crate) fn new(limit: Duration, now: Instant) -> Self {
        Watchdog {
            last_response: now,
            limit,
        }
    }

    /// A response (events or a keepalive) arrived.
    pub(crate) fn answered(&mut self, now: Instant) {
        self.last_response = now;
    }

    /// How long a silence may last.
    pub(crate) fn limit(&self) -> Duration {
        self.limit
    }

    /// The instant the stream is dead unless something arrives before.
    pub(crate) fn deadline(&self) -> Instant {
        self.last_response + self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn the_first_request_asks_for_a_batch_and_no_more_is_asked_while_all_is_owed() {
        let now = Instant::now();
        let mut demand = Demand::new(100, MINUTE);
        assert_eq!(demand.request(now), Some(100));
        assert_eq!(demand.request(now), None);
        assert_eq!(demand.outstanding(), 100);
    }

    #[test]
    fn a_batch_is_clamped_to_what_salesforce_allows() {
        let now = Instant::now();
        assert_eq!(Demand::new(500, MINUTE).request(now), Some(100));
        assert_eq!(Demand::new(0, MINUTE).request(now), Some(1));
    }

    #[test]
    fn a_slow_consumer_never_has_more_than_a_batch_outstanding() {
        let now = Instant::now();
        let mut demand = Demand::new(100, MINUTE);
        demand.request(now);
        let mut asked = 100u32;
        let mut taken = 0u32;
        // The server delivers in uneven batches; the caller takes one event in three.
        for round in 0..500u32 {
            let deliver = (round % 7 + 1).min(demand.pending());
            demand.received(deliver, now);
            if round % 3 == 0 && demand.outstanding() > demand.pending() {
                demand.consumed(now);
                taken += 1;
            }
            if let Some(more) = demand.request(now) {
                asked += more;
            }
            assert!(demand.outstanding() <= 100, "round {round}: {demand:?}");
            assert_eq!(asked - taken, demand.outstanding(), "round {round}");
        }
        assert!(taken > 100, "the stream kept flowing: {taken} taken");
    }

    #[test]
    fn it_re_requests_the_batch_less_what_is_pending_once_half_is_free() {
        let now = Instant::now();
        let mut demand = Demand::new(100, MINUTE);
        demand.request(now);
        demand.received(60, now);
        for _ in 0..49 {
            demand.consumed(now);
        }
        assert_eq!(
            demand.request(now),
            None,
            "49 free: not yet worth a request"
        );
        demand.consumed(now);
        // 40 pending, 10 buffered: 100 − 40 − 10.
        assert_eq!(demand.request(now), Some(50));
        assert_eq!(demand.outstanding(), 100);
    }

    #[test]
    fn nothing_pending_asks_at_once_for_whatever_is_free() {
        let now = Instant::now();
        let mut demand = Demand::new(100, MINUTE);
        demand.request(now);
        demand.received(100, now);
        assert_eq!(demand.request(now), None);
        demand.consumed(now);
        assert_eq!(demand.request(now), Some(1), "never left at 0 pending");
    }

    #[test]
    fn a_full_buffer_held_for_the_limit_starves_the_stream() {
        let start = Instant::now();
        let mut demand = Demand::new(100, MINUTE);
        demand.request(start);
        assert_eq!(demand.starved(), None);
        demand.received(100, start);
        assert_eq!(demand.starved(), Some(start + MINUTE));
        // Consuming makes room, a request follows, and the stream is fed again.
        demand.consumed(start + Duration::from_secs(30));
        demand.request(start + Duration::from_secs(30));
        assert_eq!(demand.starved(), None);
    }

    #[test]
    fn a_new_stream_counts_what_is_still_buffered() {
        let now = Instant::now();
        let mut demand = Demand::new(100, MINUTE);
        demand.request(now);
        demand.received(100, now);
        demand.restart(30, now);
        assert_eq!(demand.request(now), Some(70));
        assert_eq!(demand.outstanding(), 100);
    }

    #[test]
    fn the_watchdog_moves_with_every_response() {
        let start = Instant::now();
        let mut watchdog = Watchdog::new(Duration::from_secs(300), start);
        assert_eq!(watchdog.deadline(), start + Duration::from_secs(300));
        watchdog.answered(start + Duration::from_secs(100));
        assert_eq!(watchdog.deadline(), start + Duration::from_secs(400));
    }
}
