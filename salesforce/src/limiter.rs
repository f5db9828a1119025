//! The per-org request rate limiter that sync and proxy share.
//!
//! A token bucket of N requests per period with a small burst (1 by default), kept as a
//! "theoretical arrival time" (GCRA), which is the same bucket without floating point.
//! Waiters are served in order within two priorities, and every interactive waiter (a proxy
//! push a user is waiting on) goes before every background waiter (sync polling), so polling
//! never delays a write by more than one token interval. The rate can be changed at any time,
//! and requests already waiting pick the new rate up at once.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::error::{Error, Result};

/// Who is waiting for a request slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Priority {
    /// A user is waiting (proxy writes): served before any background request.
    Interactive,
    /// Work nobody is waiting on (sync polling, backfill).
    Background,
}

/// N requests per period, with a burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    requests: u32,
    period: Duration,
    burst: u32,
}

impl Rate {
    /// `requests` per `period`, burst 1: requests are spaced evenly, `period / requests` apart.
    pub fn new(requests: u32, period: Duration) -> Result<Self> {
        if requests == 0 || period.is_zero() {
            return Err(Error::Config(format!(
                "a rate needs at least one request per non-zero period, got {requests} per {period:?}"
            )));
        }
        Ok(Self {
            requests,
            period,
            burst: 1,
        })
    }

    /// `requests` per second.
    pub fn per_second(requests: u32) -> Result<Self> {
        Self::new(requests, Duration::from_secs(1))
    }

    /// Allows up to `burst` requests back to back after a quiet spell (at least 1).
    pub fn with_burst(self, burst: u32) -> Self {
        Self {
            burst: burst.max(1),
            ..self
        }
    }

    /// Requests per period.
    pub fn requests(&self) -> u32 {
        self.requests
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// The burst.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// The time one token takes to refill.
    pub fn interval(&self) -> Duration {
        self.period / self.requests
    }

    /// How far ahead of schedule a request may run: the burst minus the request itself.
    fn tolerance(&self) -> Duration {
        self.interval().saturating_mul(self.burst - 1)
    }
}

impl Default for Rate {
    /// sfpg's default per org: one request every 3 seconds, about 29,000 a day.
    fn default() -> Self {
        Self {
            requests: 1,
            period: Duration::from_secs(3),
            burst: 1,
        }
    }
}

/// A per-org rate limiter. Clones share the same bucket.
#[derive(Clone)]
pub struct RateLimiter {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes waiters when a slot is taken, a waiter leaves or the rate changes.
    changed: Notify,
}

struct State {
    rate: Rate,
    /// When the bucket will be full again if no request comes: a request may go at
    /// `theoretical_arrival - tolerance` and moves this one interval later.
    theoretical_arrival: Instant,
    next_ticket: u64,
    interactive: BTreeSet<u64>,
    background: BTreeSet<u64>,
}

impl State {
    fn queue(&mut self, priority: Priority) -> &mut BTreeSet<u64> {
        match priority {
            Priority::Interactive => &mut self.interactive,
            Priority::Background => &mut self.background,
        }
    }

    /// The waiter to serve next: the oldest interactive one, else the oldest background one.
    fn head(&self) -> Option<(Priority, u64)> {
        self.interactive
            .first()
            .map(|&t| (Priority::Interactive, t))
            .or_else(|| self.background.first().map(|&t| (Priority::Background, t)))
    }

    /// How long until a request may go, zero if it may go now.
    fn wait(&self, now: Instant) -> Duration {
        (self.theoretical_arrival.checked_sub(self.rate.tolerance()))
            .map_or(Duration::ZERO, |allowed_at| {
                allowed_at.saturating_duration_since(now)
            })
    }

    fn take(&mut self, now: Instant) {
        self.theoretical_arrival = self.theoretical_arrival.max(now) + self.rate.interval();
    }
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("RateLimiter")
            .field("rate", &state.rate)
            .field("interactive_waiting", &state.interactive.len())
            .field("background_waiting", &state.background.len())
            .finish()
    }
}

impl Shared {
    /// The state is plain data that every critical section leaves consistent, so a panic
    /// elsewhere while it was held does not make it unusable.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl RateLimiter {
    /// A limiter whose bucket starts full.
    pub fn new(rate: Rate) -> Self {
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    rate,
                    theoretical_arrival: Instant::now(),
                    next_ticket: 0,
                    interactive: BTreeSet::new(),
                    background: BTreeSet::new(),
                }),
                changed: Notify::new(),
            }),
        }
    }

    /// The current rate.
    pub fn rate(&self) -> Rate {
        self.shared.lock().rate
    }

    /// Changes the rate. Requests already waiting are rescheduled at once: the part of a
    /// token still owed is carried over in proportion, so a faster rate shortens the wait.
    pub fn set_rate(&self, rate: Rate) {
        {
            let mut state = self.shared.lock();
            let now = Instant::now();
            let owed = state.theoretical_arrival.saturating_duration_since(now);
            let old = state.rate.interval().as_nanos().max(1);
            let scaled = owed.as_nanos() * rate.interval().as_nanos() / old;
            state.theoretical_arrival =
                now + Duration::from_nanos(u64::try_from(scaled).unwrap_or(u64::MAX));
            state.rate = rate;
        }
        self.shared.changed.notify_waiters();
    }

    /// Waiters currently queued, by priority: (interactive, background).
    pub fn waiting(&self) -> (usize, usize) {
        let state = self.shared.lock();
        (state.interactive.len(), state.background.len())
    }

    /// Whether a request would go at once: nobody is waiting and the bucket has a slot.
    /// Work that is worth doing only when it delays nobody (reading ahead) asks this first.
    pub fn is_ready(&self) -> bool {
        let state = self.shared.lock();
        state.head().is_none() && state.wait(Instant::now()).is_zero()
    }

    /// Waits for a slot. Cancel-safe: a waiter dropped while queued leaves the queue.
    pub async fn acquire(&self, priority: Priority) {
        let ticket = {
            let mut state = self.shared.lock();
            let ticket = state.next_ticket;
            state.next_ticket += 1;
            state.queue(priority).insert(ticket);
            ticket
        };
        let mut place = Place {
            shared: &self.shared,
            priority,
            ticket,
            queued: true,
        };
        loop {
            // Registered before looking at the state, so a change made right after we look
            // still wakes us.
            let notified = self.shared.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();

            let wait = {
                let mut state = self.shared.lock();
                if state.head() == Some((priority, ticket)) {
                    let now = Instant::now();
                    let wait = state.wait(now);
                    if wait.is_zero() {
                        state.take(now);
                        state.queue(priority).remove(&ticket);
                        place.queued = false;
                        drop(state);
                        self.shared.changed.notify_waiters();
                        return;
                    }
                    Some(wait)
                } else {
                    None
                }
            };
            match wait {
                Some(wait) => {
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = &mut notified => {}
                    }
                }
                None => notified.await,
            }
        }
    }
}

/// A waiter's place in the queue, given up if the waiting future is dropped.
struct Place<'a> {
    shared: &'a Shared,
    priority: Priority,
    ticket: u64,
    queued: bool,
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        if self.queued {
            self.shared.lock().queue(self.priority).remove(&self.ticket);
            self.shared.changed.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex as StdMutex;

    use super::*;

    fn ten_per_second() -> Rate {
        Rate::per_second(10).unwrap()
    }

    #[test]
    fn rates_reject_zero() {
        assert!(Rate::new(0, Duration::from_secs(1)).is_err());
        assert!(Rate::new(1, Duration::ZERO).is_err());
        assert_eq!(Rate::default().interval(), Duration::from_secs(3));
        assert_eq!(ten_per_second().with_burst(0).burst(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn spaces_requests_one_interval_apart() {
        let limiter = RateLimiter::new(ten_per_second());
        let start = Instant::now();
        for _ in 0..20 {
            limiter.acquire(Priority::Background).await;
        }
        // The first goes at once, the other 19 one interval apart.
        assert_eq!(start.elapsed(), Duration::from_millis(1900));
    }

    #[tokio::test(start_paused = true)]
    async fn ready_only_when_a_request_would_go_at_once() {
        let limiter = RateLimiter::new(ten_per_second());
        assert!(limiter.is_ready());
        limiter.acquire(Priority::Background).await;
        assert!(!limiter.is_ready(), "the slot was just taken");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(limiter.is_ready());
    }

    #[tokio::test(start_paused = true)]
    async fn burst_lets_requests_through_back_to_back_after_a_pause() {
        let limiter = RateLimiter::new(ten_per_second().with_burst(3));
        let start = Instant::now();
        for _ in 0..3 {
            limiter.acquire(Priority::Background).await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
        limiter.acquire(Priority::Background).await;
        assert_eq!(start.elapsed(), Duration::from_millis(100));
        tokio::time::sleep(Duration::from_secs(5)).await;
        // Idle time refills at most `burst` tokens.
        let resumed = Instant::now();
        for _ in 0..4 {
            limiter.acquire(Priority::Background).await;
        }
        assert_eq!(resumed.elapsed(), Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    async fn interactive_goes_ahead_of_queued_background() {
        let limiter = RateLimiter::new(ten_per_second());
        let served = Arc::new(StdMutex::new(Vec::new()));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for i in 0..10 {
            let (limiter, served) = (limiter.clone(), served.clone());
            tasks.push(tokio::spawn(async move {
                limiter.acquire(Priority::Background).await;
                served
                    .lock()
                    .unwrap()
                    .push((format!("background {i}"), start.elapsed()));
            }));
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(Duration::from_millis(350)).await;
        let asked = start.elapsed();
        limiter.acquire(Priority::Interactive).await;
        let waited = start.elapsed() - asked;
        assert!(
            waited <= ten_per_second().interval(),
            "interactive waited {waited:?}"
        );
        served
            .lock()
            .unwrap()
            .push(("interactive".into(), start.elapsed()));
        for task in tasks {
            task.await.unwrap();
        }
        let served = served.lock().unwrap();
        let order: Vec<&str> = served.iter().map(|(who, _)| who.as_str()).collect();
        assert_eq!(
            order[..5],
            [
                "background 0",
                "background 1",
                "background 2",
                "background 3",
                "interactive"
            ]
        );
        // Background requests stay in the order they asked.
        assert_eq!(order[5], "background 4");
        assert_eq!(order[10], "background 9");
        // The interactive request took a slot; it did not add one.
        assert_eq!(served[10].1, Duration::from_millis(1000));
    }

    #[tokio::test(start_paused = true)]
    async fn a_faster_rate_applies_to_requests_already_waiting() {
        let limiter = RateLimiter::new(Rate::new(1, Duration::from_secs(10)).unwrap());
        limiter.acquire(Priority::Background).await;
        let start = Instant::now();
        let waiter = {
            let limiter = limiter.clone();
            tokio::spawn(async move {
                limiter.acquire(Priority::Background).await;
                start.elapsed()
            })
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        // 9 s of 10 were still owed: at 10 per second that is 90 ms.
        limiter.set_rate(ten_per_second());
        let waited = waiter.await.unwrap();
        assert_eq!(waited, Duration::from_millis(1090));
        assert_eq!(limiter.rate(), ten_per_second());
    }

    #[tokio::test(start_paused = true)]
    async fn a_slower_rate_applies_to_requests_already_waiting() {
        let limiter = RateLimiter::new(ten_per_second());
        limiter.acquire(Priority::Background).await;
        let start = Instant::now();
        limiter.set_rate(Rate::new(1, Duration::from_secs(1)).unwrap());
        limiter.acquire(Priority::Background).await;
        assert_eq!(start.elapsed(), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_waiter_leaves_the_queue() {
        let limiter = RateLimiter::new(ten_per_second());
        limiter.acquire(Priority::Background).await;
        let first = {
            let limiter = limiter.clone();
            tokio::spawn(async move { limiter.acquire(Priority::Interactive).await })
        };
        tokio::task::yield_now().await;
        assert_eq!(limiter.waiting(), (1, 0));
        first.abort();
        assert!(first.await.unwrap_err().is_cancelled());
        assert_eq!(limiter.waiting(), (0, 0));
        let start = Instant::now();
        limiter.acquire(Priority::Background).await;
        assert!(start.elapsed() <= Duration::from_millis(100));
    }
}
