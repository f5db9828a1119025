//! One subscription of an org's stream: events read by their own task (a CometD connect is
//! never cancelled halfway), grouped into transactions, applied in batches with the replay
//! id, or held while a catch-up by polling runs; `GAP_*` records read again, and objects a
//! `GAP_OVERFLOW` names polled at once.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sfpg_control::leases::{self, Fence};
use sfpg_control::streams::{self, StreamState};

use crate::db::Database;
use sfpg_control::writer::{self, OnLocked, Rows, Write, WriteStrategy};
use sfpg_salesforce::streaming::{
    ALL_CHANGE_EVENTS, ChangeEvent, ChangeType, EventTransport, ReplayFrom, ReplayId, StreamItem,
    Subscription,
};
use sfpg_salesforce::{Client, SalesforceId};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::apply::{Plans, apply_batch};
use super::change::{Change, ChangeKind, is_echo};
use super::health::StreamHealth;
use super::received::{AfterTurn, CatchUp, Received};
use super::transactions::Transaction;
use crate::error::Result;
use crate::settings::SyncSettings;

/// The pause after a batch's attempt timed out on a lock, times the attempts so far.
const LOCK_PAUSE: Duration = Duration::from_millis(100);
/// The longest of those pauses.
const LOCK_PAUSE_CAP: Duration = Duration::from_secs(1);

/// Why a subscription ended.
#[derive(Debug)]
pub enum Ended {
    Cancelled,
    /// The org's settings or objects changed: decide again what to stream.
    Reload,
    /// Down, with the reason; tried again later.
    Down(String),
    /// Salesforce refused the replay id (expired or invalid): catch up by polling.
    ReplayInvalid(String),
}

/// The parts of a person's compound `Name` (Contact, Lead), from which Salesforce derives
/// the full `Name`.
const NAME_PARTS: [&str; 5] = [
    "FirstName",
    "LastName",
    "MiddleName",
    "Salutation",
    "Suffix",
];

/// Events applied in one PostgreSQL transaction, at most (whole Salesforce transactions).
const MAX_BATCH_EVENTS: usize = 2_000;

/// An item from the subscription's reader.
type Item = sfpg_salesforce::Result<StreamItem>;

/// What waiting for the next item gave.
enum Next {
    Item(Item),
    Ended(Ended),
    /// A second passed while catching up or joining: look at the polls again.
    Tick,
}

/// One subscription.
pub struct Session<'a> {
    pub org: &'a str,
    pub db: &'a mut Database,
    /// The org's lease, which every write checks.
    pub fence: Option<&'a Fence>,
    pub client: &'a Client,
    pub health: &'a StreamHealth,
    pub settings: &'a SyncSettings,
    pub plans: Plans,
    pub streamed: Vec<String>,
    /// Objects new to the stream, with when they joined: they poll at their normal rate
    /// until a poll started after that caught up (the events before were not applied).
    pub joining: Vec<(String, DateTime<Utc>)>,
    /// sfpg's own `client=` in `changeOrigin`: events of its writes are echoes.
    pub echo_client: String,
}

/// The subscription's reader: forwards items, and tells the subscription what was applied.
async fn read(
    mut subscription: Box<dyn Subscription>,
    items: mpsc::Sender<Item>,
    mut applied: watch::Receiver<Option<i64>>,
    stop: CancellationToken,
) {
    loop {
        if let Some(id) = *applied.borrow_and_update() {
            subscription.resume_after(ReplayId(id));
        }
        let item = tokio::select! {
            () = stop.cancelled() => break,
            item = subscription.next() => item,
        };
        let last = item.is_err();
        if items.send(item).await.is_err() || last {
            break;
        }
    }
    subscription.close().await;
}

impl Session<'_> {
    /// Subscribes from `from` and applies events until something ends it. With `catch_up`,
    /// events are held until every streamed object caught up by a poll started after the
    /// subscription took hold ([`Received`] keeps those rules).
    pub async fn run(
        mut self,
        transport: &dyn EventTransport,
        from: ReplayFrom,
        catch_up: Option<CatchUp>,
        cancel: &CancellationToken,
        reloads: &mut watch::Receiver<u64>,
    ) -> Result<Ended> {
        let subscription = transport.subscribe(ALL_CHANGE_EVENTS, from);
        let (sender, mut items) = mpsc::channel(4096);
        let (applied, applied_seen) = watch::channel(None);
        let stop = CancellationToken::new();
        let reader = tokio::spawn(read(subscription, sender, applied_seen, stop.clone()));
        self.health.set_streamed(&[]);
        let mut received = Received::new(catch_up);
        // An item taken from the channel behind an event, to be acted on next.
        let mut carried: Option<Item> = None;
        match received.catching_up() {
            Some(catch_up) => {
                let reason = catch_up.reason.clone();
                self.state(StreamState::CatchingUp, Some(&reason)).await?;
            }
            None => self.state(StreamState::Down, Some("connecting")).await?,
        }
        let ended = loop {
            let health = self.health;
            let streamed = &self.streamed;
            if let Some(mut held) =
                received.end_catch_up(|since| health.all_caught_up_since(streamed, since))
            {
                if !self.apply(&mut held, &applied, cancel).await? {
                    break Ended::Cancelled;
                }
                self.connected().await?;
            }
            let item = match carried.take() {
                Some(item) => item,
                None => match self
                    .next_item(&mut items, &received, cancel, reloads)
                    .await?
                {
                    Next::Item(item) => item,
                    Next::Ended(ended) => break ended,
                    Next::Tick => continue,
                },
            };
            let keepalive = matches!(item, Ok(StreamItem::Idle)).then(Utc::now);
            if let Some(ended) = self
                .take(item, &mut received, &mut items, &mut carried)
                .await?
            {
                break ended;
            }
            let nothing_waiting = items.is_empty() && carried.is_none();
            match received.after_turn(nothing_waiting, Utc::now()) {
                AfterTurn::Apply(mut batch) => {
                    if !self.apply(&mut batch, &applied, cancel).await? {
                        break Ended::Cancelled;
                    }
                    if let Some(at) = keepalive {
                        self.keepalive(&received, at).await?;
                    }
                }
                AfterTurn::Hold => {}
                AfterTurn::StartedOver => {
                    tracing::warn!(org = %self.org, "too many events held while catching up; starting the catch-up over");
                }
            }
        };
        stop.cancel();
        let _ = reader.await;
        self.health.set_streamed(&[]);
        Ok(ended)
    }

    /// The next item from the reader; or the end (cancelled, reloaded); or, every second
    /// while catching up or objects are joining, a tick to look at the polls' progress.
    async fn next_item(
        &mut self,
        items: &mut mpsc::Receiver<Item>,
        received: &Received,
        cancel: &CancellationToken,
        reloads: &mut watch::Receiver<u64>,
    ) -> Result<Next> {
        let watching = received.catching_up().is_some() || !self.joining.is_empty();
        tokio::select! {
            () = cancel.cancelled() => Ok(Next::Ended(Ended::Cancelled)),
            _ = reloads.changed() => Ok(Next::Ended(Ended::Reload)),
            item = items.recv() => Ok(match item {
                Some(item) => Next::Item(item),
                None => Next::Ended(Ended::Down("the subscription ended".into())),
            }),
            () = tokio::time::sleep(Duration::from_secs(1)), if watching => {
                if received.subscribed() && received.catching_up().is_none() && self.joined() {
                    self.connected().await?;
                }
                Ok(Next::Tick)
            }
        }
    }

    /// Acts on one item; an event takes with it what else has arrived (anything but an
    /// event is `carried` to the next turn). `Some` when the item ends the subscription.
    async fn take(
        &mut self,
        item: Item,
        received: &mut Received,
        items: &mut mpsc::Receiver<Item>,
        carried: &mut Option<Item>,
    ) -> Result<Option<Ended>> {
        let item = match item {
            Err(sfpg_salesforce::Error::ReplayIdInvalid { message, .. }) => {
                return Ok(Some(Ended::ReplayInvalid(message)));
            }
            Err(error) => return Ok(Some(Ended::Down(error.to_string()))),
            Ok(item) => item,
        };
        match item {
            StreamItem::Connected { from } => {
                let now = Utc::now();
                let subscribed = received.connected(from, now);
                if subscribed.first {
                    for (_, since) in &mut self.joining {
                        *since = now;
                    }
                }
                if subscribed.connected {
                    self.connected().await?;
                }
            }
            StreamItem::Reconnecting { reason, .. } => {
                self.health.set_streamed(&[]);
                self.state(StreamState::Down, Some(&reason)).await?;
            }
            StreamItem::Idle => {}
            // The change event channel carries none; platform events have their own
            // subscriptions.
            StreamItem::PlatformEvent(_) => {}
            StreamItem::Event(event) => {
                received.event(self.change(&event));
                while received.held_events() < MAX_BATCH_EVENTS {
                    match items.try_recv() {
                        Ok(Ok(StreamItem::Event(event))) => received.event(self.change(&event)),
                        Ok(other) => {
                            *carried = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
            }
        }
        Ok(None)
    }

    async fn state(&mut self, state: StreamState, reason: Option<&str>) -> Result<()> {
        let org = self.org;
        self.db
            .write(self.fence, async |t| {
                streams::set_state(t, org, state, reason).await
            })
            .await
    }

    async fn connected(&mut self) -> Result<()> {
        self.joined();
        let kept = self.kept();
        self.health.set_streamed(&kept);
        self.state(StreamState::Connected, None).await
    }

    /// The objects the stream keeps current: those streamed, less those still joining
    /// (the events before they joined were not applied).
    fn kept(&self) -> Vec<String> {
        self.streamed
            .iter()
            .filter(|o| !self.joining.iter().any(|(j, _)| j == *o))
            .cloned()
            .collect()
    }

    /// A keepalive arrived at `at` (a long poll or a fetch came back without an event):
    /// once nothing received is held back, the objects kept current are fresh as of it.
    async fn keepalive(&mut self, received: &Received, at: DateTime<Utc>) -> Result<()> {
        if received.catching_up().is_some() || !received.is_empty() {
            return Ok(());
        }
        let (org, kept) = (self.org, self.kept());
        self.db
            .write(self.fence, async |t| {
                streams::mark_current(t, org, &kept, at).await
            })
            .await
    }

    /// Drops the joining objects that have caught up; whether any did.
    fn joined(&mut self) -> bool {
        let before = self.joining.len();
        let health = self.health;
        self.joining.retain(|(object, since)| {
            !health.all_caught_up_since(std::slice::from_ref(object), *since)
        });
        self.joining.len() != before
    }

    fn change(&self, event: &ChangeEvent) -> Change {
        let header = &event.header;
        let kind = match header.change_type {
            ChangeType::Create => ChangeKind::Create,
            ChangeType::Update => ChangeKind::Update,
            ChangeType::Delete => ChangeKind::Delete,
            ChangeType::Undelete => ChangeKind::Undelete,
            ChangeType::GapOverflow => ChangeKind::Overflow,
            _ => ChangeKind::Gap,
        };
        let fields = event.flattened_fields();
        let name_parts_changed = event
            .fields
            .get("Name")
            .is_some_and(serde_json::Value::is_object)
            || NAME_PARTS.iter().any(|part| fields.contains_key(*part));
        Change {
            replay_id: event.replay_id.0,
            entity: header.entity_name.clone(),
            record_ids: header.record_ids.clone(),
            kind,
            transaction_key: header.transaction_key.clone(),
            sequence_number: header.sequence_number,
            commit_timestamp: header.commit_timestamp,
            echo: is_echo(&header.change_origin, &self.echo_client),
            fields,
            name_parts_changed,
        }
    }

    /// Applies the transactions held, in batches, then reads again what gaps named. False
    /// when `cancel` came while a batch waited on a client's lock: the rest is not applied
    /// (nor its replay id saved), and comes again at the next subscription.
    async fn apply(
        &mut self,
        held: &mut Vec<Transaction>,
        applied: &watch::Sender<Option<i64>>,
        cancel: &CancellationToken,
    ) -> Result<bool> {
        while !held.is_empty() {
            let mut take = 0;
            let mut events = 0;
            while take < held.len() && (take == 0 || events < MAX_BATCH_EVENTS) {
                events += held[take].changes.len();
                take += 1;
            }
            let batch: Vec<Transaction> = held.drain(..take).collect();
            let Some(done) = self.apply_with_retries(&batch, cancel).await? else {
                return Ok(false);
            };
            if let Some(saved) = done.saved {
                let _ = applied.send(Some(saved));
            }
            for object in &done.overflowed {
                tracing::info!(org = %self.org, %object, "GAP_OVERFLOW: catching the object up by polling");
                self.health.poll_now(object);
            }
            if !done.read_again.is_empty() {
                self.read_again(&done.read_again).await?;
            }
        }
        Ok(true)
    }

    /// A batch that times out on a lock a client holds is tried again until the lock is
    /// released: the stream has nowhere to keep its events for later, and giving up would
    /// start the org's sync over, subscribing and catching every object up again, as often
    /// as its backoff allows, for as long as the client holds the row (a bulk push holds
    /// its rows while Salesforce runs its jobs, whose change events come back meanwhile).
    /// Each attempt waits out the lock timeout, then a pause that grows to a second.
    /// None when `cancel` comes meanwhile.
    async fn apply_with_retries(
        &mut self,
        batch: &[Transaction],
        cancel: &CancellationToken,
    ) -> Result<Option<super::BatchApplied>> {
        let mut attempt: u32 = 0;
        let kept = self.kept();
        loop {
            match apply_batch(
                &mut *self.db.get().await?,
                self.fence,
                self.org,
                &self.plans,
                batch,
                &kept,
                self.settings.lock_timeout,
            )
            .await
            {
                Err(error) if error.is_lock_timeout() => {
                    attempt += 1;
                    if attempt == self.settings.lock_attempts {
                        tracing::warn!(org = %self.org, attempt, "a mirror row a client holds locked keeps the stream waiting; it goes on once the lock is released");
                    }
                    let pause = LOCK_PAUSE.saturating_mul(attempt).min(LOCK_PAUSE_CAP);
                    tokio::select! {
                        () = cancel.cancelled() => return Ok(None),
                        () = tokio::time::sleep(pause) => {}
                    }
                }
                other => return other.map(Some),
            }
        }
    }

    /// Reads the records `GAP_*` events named (and those whose full `Name` changed) through
    /// Collections and writes them as
    /// Salesforce has them (one gone is deleted), retrying with backoff while they cannot
    /// be read; after the last attempt their objects are polled at once instead.
    async fn read_again(&mut self, records: &[(String, String)]) -> Result<()> {
        let mut by_object: BTreeMap<String, Vec<SalesforceId>> = BTreeMap::new();
        for (object, id) in records {
            if let Ok(id) = SalesforceId::parse(id) {
                by_object.entry(object.clone()).or_default().push(id);
            }
        }
        for (object, ids) in by_object {
            let Some(plan) = self.plans.get(&object).cloned() else {
                continue;
            };
            let fields: Vec<&str> = plan.fields.iter().map(|f| f.field.as_str()).collect();
            tracing::info!(org = %self.org, %object, records = ids.len(), "reading records again (a gap, or a derived Name)");
            let mut wait = Duration::from_millis(500);
            let mut read = None;
            for _ in 0..5 {
                match self
                    .client
                    .collections()
                    .retrieve(&plan.object, &ids, &fields)
                    .await
                {
                    Ok(records) => {
                        read = Some(records);
                        break;
                    }
                    Err(error) => {
                        tracing::warn!(org = %self.org, %object, %error, ?wait, "GAP: cannot read the records yet");
                        tokio::time::sleep(wait).await;
                        wait *= 2;
                    }
                }
            }
            let Some(read) = read else {
                self.health.poll_now(&plan.object);
                continue;
            };
            let mut found = Vec::new();
            let mut gone = Vec::new();
            for (id, record) in ids.iter().zip(read) {
                match record {
                    Some(record) => found.push(record),
                    None => gone.push(id.as_str().to_owned()),
                }
            }
            let rows = Rows::from_records(&plan.object, plan.fields.iter().collect(), &found)?;
            let mut connection = self.db.get().await?;
            let transaction = leases::begin(
                &mut *connection,
                self.fence,
                Some(self.settings.lock_timeout),
            )
            .await?;
            writer::apply(
                &transaction,
                &plan,
                &[Write::Upsert(rows), Write::Delete(gone)],
                WriteStrategy::Unnest,
                OnLocked::Wait,
            )
            .await?;
            transaction.commit().await?;
        }
        Ok(())
    }
}
