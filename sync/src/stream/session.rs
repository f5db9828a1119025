//! One subscription of an org's stream: events read by their own task (a CometD connect is
//! never cancelled halfway), grouped into transactions, applied in batches with the replay
//! id, or held while a catch-up by polling runs; `GAP_*` records read again, and objects a
//! `GAP_OVERFLOW` names polled at once.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sfpg_control::streams::{self, StreamState};
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
use super::transactions::{Transaction, TransactionBuffer};
use crate::error::Result;
use crate::settings::SyncSettings;

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

/// Events held while a catch-up runs, at most; beyond, they are dropped and the catch-up
/// starts over (the polls that end it then cover them).
const MAX_HELD_EVENTS: usize = 200_000;

/// Events applied in one PostgreSQL transaction, at most (whole Salesforce transactions).
const MAX_BATCH_EVENTS: usize = 2_000;

/// One subscription.
pub struct Session<'a> {
    pub org: &'a str,
    pub db: &'a mut tokio_postgres::Client,
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
    items: mpsc::Sender<sfpg_salesforce::Result<StreamItem>>,
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
    /// Subscribes from `from` and applies events until something ends it. With `catch_up`
    /// (why, and since when), events are held until every streamed object caught up by a
    /// poll started after it.
    pub async fn run(
        mut self,
        transport: &dyn EventTransport,
        from: ReplayFrom,
        mut catch_up: Option<(String, DateTime<Utc>)>,
        cancel: &CancellationToken,
        reloads: &mut watch::Receiver<u64>,
    ) -> Result<Ended> {
        let subscription = transport.subscribe(ALL_CHANGE_EVENTS, from);
        let (sender, mut items) = mpsc::channel(4096);
        let (applied, applied_seen) = watch::channel(None);
        let stop = CancellationToken::new();
        let reader = tokio::spawn(read(subscription, sender, applied_seen, stop.clone()));
        self.health.set_streamed(&[]);
        let mut open = TransactionBuffer::default();
        let mut held: Vec<Transaction> = Vec::new();
        let mut subscribed = false;
        // An item taken from the channel behind an event, to be acted on next.
        let mut carried: Option<sfpg_salesforce::Result<StreamItem>> = None;
        if let Some((reason, _)) = &catch_up {
            self.state(StreamState::CatchingUp, Some(reason)).await?;
        } else {
            self.state(StreamState::Down, Some("connecting")).await?;
        }
        let ended = loop {
            // Only polls started after the subscription took hold count: a change between
            // an earlier poll and the subscription would reach neither.
            if subscribed
                && let Some((_, since)) = &catch_up
                && self.health.all_caught_up_since(&self.streamed, *since)
            {
                // Every streamed object was polled from its watermark after the
                // subscription began: what is held goes through the version guard now.
                held.extend(open.take());
                self.apply(&mut held, &applied).await?;
                catch_up = None;
                self.connected().await?;
            }
            let item = if let Some(item) = carried.take() {
                Some(item)
            } else {
                tokio::select! {
                () = cancel.cancelled() => break Ended::Cancelled,
                _ = reloads.changed() => break Ended::Reload,
                item = items.recv() => item,
                // While catching up, look at the polls' progress every second.
                () = tokio::time::sleep(Duration::from_secs(1)),
                    if catch_up.is_some() || !self.joining.is_empty() =>
                {
                    if subscribed && catch_up.is_none() && self.joined() {
                        self.connected().await?;
                    }
                    continue;
                }
                }
            };
            let item = match item {
                None => break Ended::Down("the subscription ended".into()),
                Some(Err(sfpg_salesforce::Error::ReplayIdInvalid { message, .. })) => {
                    break Ended::ReplayInvalid(message);
                }
                Some(Err(error)) => break Ended::Down(error.to_string()),
                Some(Ok(item)) => item,
            };
            match item {
                StreamItem::Connected { from } => {
                    if !subscribed {
                        subscribed = true;
                        let now = Utc::now();
                        for (_, since) in &mut self.joining {
                            *since = now;
                        }
                        if let Some((_, since)) = &mut catch_up {
                            *since = now;
                        }
                    }
                    // What was held past `from` is delivered again.
                    forget_after(&mut held, &mut open, from);
                    match (&mut catch_up, from) {
                        // From the tip again: what happened during the outage is for the
                        // polls, which must start after this.
                        (Some((_, since)), ReplayFrom::Tip) => *since = Utc::now(),
                        (Some(_), _) => {}
                        (None, _) => self.connected().await?,
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
                    held.extend(open.push(self.change(&event)));
                    // Take what else has arrived, without waiting; anything but an event
                    // is kept for the next turn, which acts on it.
                    while held.iter().map(|t| t.changes.len()).sum::<usize>() < MAX_BATCH_EVENTS {
                        match items.try_recv() {
                            Ok(Ok(StreamItem::Event(event))) => {
                                held.extend(open.push(self.change(&event)));
                            }
                            Ok(other) => {
                                carried = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                }
            }
            if catch_up.is_none() {
                // Nothing more is waiting: the transaction being received is complete.
                if items.is_empty() && carried.is_none() {
                    held.extend(open.take());
                }
                self.apply(&mut held, &applied).await?;
            } else if held.iter().map(|t| t.changes.len()).sum::<usize>() > MAX_HELD_EVENTS {
                tracing::warn!(org = %self.org, "too many events held while catching up; starting the catch-up over");
                held.clear();
                open.clear();
                if let Some((_, since)) = &mut catch_up {
                    *since = Utc::now();
                }
            }
        };
        stop.cancel();
        let _ = reader.await;
        self.health.set_streamed(&[]);
        Ok(ended)
    }

    async fn state(&self, state: StreamState, reason: Option<&str>) -> Result<()> {
        streams::set_state(&*self.db, self.org, state, reason).await?;
        Ok(())
    }

    async fn connected(&mut self) -> Result<()> {
        self.joined();
        let kept: Vec<String> = self
            .streamed
            .iter()
            .filter(|o| !self.joining.iter().any(|(j, _)| j == *o))
            .cloned()
            .collect();
        self.health.set_streamed(&kept);
        self.state(StreamState::Connected, None).await
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

    /// Applies the transactions held, in batches, then reads again what gaps named.
    async fn apply(
        &mut self,
        held: &mut Vec<Transaction>,
        applied: &watch::Sender<Option<i64>>,
    ) -> Result<()> {
        while !held.is_empty() {
            let mut take = 0;
            let mut events = 0;
            while take < held.len() && (take == 0 || events < MAX_BATCH_EVENTS) {
                events += held[take].changes.len();
                take += 1;
            }
            let batch: Vec<Transaction> = held.drain(..take).collect();
            let done = self.apply_with_retries(&batch).await?;
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
        Ok(())
    }

    /// A batch that times out on a lock a client holds is tried again.
    async fn apply_with_retries(&mut self, batch: &[Transaction]) -> Result<super::BatchApplied> {
        let mut attempt = 0;
        loop {
            match apply_batch(
                self.db,
                self.org,
                &self.plans,
                batch,
                self.settings.lock_timeout,
            )
            .await
            {
                Err(error) if error.is_lock_timeout() && attempt < self.settings.lock_attempts => {
                    attempt += 1;
                }
                other => return other,
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
            let transaction = writer::begin(self.db, Some(self.settings.lock_timeout)).await?;
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

/// Drops what is held after `from`: a subscription resumed there delivers it again.
fn forget_after(held: &mut Vec<Transaction>, open: &mut TransactionBuffer, from: ReplayFrom) {
    let ReplayFrom::After(ReplayId(from)) = from else {
        return;
    };
    open.clear();
    for transaction in held.iter_mut() {
        transaction.changes.retain(|c| c.replay_id <= from);
    }
    held.retain(|t| !t.changes.is_empty());
}
