//! One org's platform event streams: a subscription per enabled event object, each read by
//! its own task ([`super::reader`]); events applied here, on the task's own database
//! connection, in batches of what has arrived for one topic, each batch one transaction
//! with the topic's checkpoint ([`sfpg_control::events::apply_delivered`]).
//!
//! - A topic starts after its saved replay id, or, without one, at the oldest event the
//!   bus retains (`-2`): enabling an event object imports what Salesforce still holds.
//!   A replay id Salesforce refuses (expired) starts it over at `-2`: events past the
//!   retention are gone, and the state says so.
//! - The enabled event objects are looked at again every few seconds: one enabled later
//!   is described, gets its table, and subscribes; one disabled is unsubscribed.
//! - Rows older than the retention are deleted every `min(retention / 4, 60 s)`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::{Map, Value};
use sfpg_control::events::{self, DeliveredEvent, EventCheckpoint, is_platform_event};
use sfpg_control::leases::Fence;

use crate::db::Database;
use sfpg_control::objects::{ObjectState, Phase};
use sfpg_control::orgs::OrgSettings;
use sfpg_control::plan::MirroredField;
use sfpg_salesforce::Client;
use sfpg_salesforce::streaming::{
    EventTransport, PlatformEvent, ReplayFrom, ReplayId, StreamItem, platform_event_channel,
};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::reader::{TopicItem, read};
use super::table::{ensure_event_table, event_table_columns};
use crate::error::Result;

/// How often the enabled event objects are looked at again.
const RECHECK: Duration = Duration::from_secs(2);
/// Events applied in one transaction, at most.
const MAX_BATCH: usize = 1_000;

/// One org's event streams.
pub struct EventStreams {
    pub org: String,
    pub db: Database,
    /// The org's lease, which every write checks.
    pub fence: Option<Fence>,
    pub client: Client,
    pub transport: Arc<dyn EventTransport>,
    /// Rows older than this are deleted.
    pub retention: Duration,
}

/// A subscribed topic.
struct Topic {
    table: String,
    fields: Vec<MirroredField>,
    columns: Vec<String>,
    applied: watch::Sender<Option<i64>>,
    stop: CancellationToken,
    reader: JoinHandle<()>,
}

impl EventStreams {
    /// Streams until `cancel`. Fails only when the mirror database fails.
    pub async fn run(mut self, cancel: CancellationToken) -> Result<()> {
        let (sender, mut items) = mpsc::channel::<TopicItem>(4096);
        let mut topics: HashMap<String, Topic> = HashMap::new();
        let mut from_retained: Vec<String> = Vec::new();
        let sweep_every =
            (self.retention / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
        let mut sweep = tokio::time::interval(sweep_every);
        let mut recheck = tokio::time::interval(RECHECK);
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                _ = recheck.tick() => {
                    self.follow_enabled(&mut topics, &mut from_retained, &sender, &cancel).await?;
                }
                _ = sweep.tick() => self.sweep(&topics).await?,
                Some((topic, item)) = items.recv() => {
                    self.handle(&mut topics, &mut from_retained, topic, item, &mut items).await?;
                }
            }
        }
        for (object, topic) in topics {
            topic.stop.cancel();
            let _ = topic.reader.await;
            self.set_state(&object, false, Some("the sync is stopped"))
                .await?;
        }
        Ok(())
    }

    /// Subscribes the event objects newly enabled, and ends those no longer enabled.
    async fn follow_enabled(
        &mut self,
        topics: &mut HashMap<String, Topic>,
        from_retained: &mut Vec<String>,
        sender: &mpsc::Sender<TopicItem>,
        cancel: &CancellationToken,
    ) -> Result<()> {
        let Some(org) = OrgSettings::load(&*self.db.get().await?, &self.org).await? else {
            return Ok(());
        };
        let enabled: Vec<ObjectState> = ObjectState::load_all(&*self.db.get().await?, &self.org)
            .await?
            .into_iter()
            .filter(|s| s.enabled && is_platform_event(&s.object))
            .collect();
        let gone: Vec<String> = topics
            .keys()
            .filter(|name| !enabled.iter().any(|s| &s.object == *name))
            .cloned()
            .collect();
        for name in gone {
            if let Some(topic) = topics.remove(&name) {
                topic.stop.cancel();
                self.set_state(&name, false, Some("disabled")).await?;
            }
        }
        let new: Vec<&ObjectState> = enabled
            .iter()
            .filter(|s| !topics.contains_key(&s.object))
            .collect();
        for state in new {
            if let Some(topic) = self
                .subscribe(state, &org.schema, from_retained, sender, cancel)
                .await?
            {
                topics.insert(state.object.clone(), topic);
            }
        }
        Ok(())
    }

    /// Gets the event object's table ready and subscribes to its channel, after its saved
    /// replay id (or from `-2`); `None` when it cannot be described or its table made (the
    /// next recheck tries again).
    async fn subscribe(
        &mut self,
        state: &ObjectState,
        schema: &str,
        from_retained: &mut Vec<String>,
        sender: &mpsc::Sender<TopicItem>,
        cancel: &CancellationToken,
    ) -> Result<Option<Topic>> {
        let fields = match ensure_event_table(
            &mut self.db,
            self.fence.as_ref(),
            &self.client,
            state,
            schema,
        )
        .await
        {
            Ok(fields) => fields,
            Err(error @ crate::SyncError::Database(_)) => return Err(error),
            Err(error) => {
                let reason = format!("cannot describe or create its table: {error}");
                tracing::warn!(org = %self.org, object = %state.object, %reason);
                let mut failed = state.clone();
                failed.last_error = Some(reason.clone());
                failed.last_error_at = Some(Utc::now());
                let org = &self.org;
                self.db
                    .write(self.fence.as_ref(), async |t| {
                        if failed.phase != Phase::Live {
                            failed.save(t).await?;
                        }
                        EventCheckpoint::set_state(t, org, &state.object, false, Some(&reason))
                            .await
                    })
                    .await?;
                return Ok(None);
            }
        };
        let saved = EventCheckpoint::load_all(&*self.db.get().await?, &self.org)
            .await?
            .into_iter()
            .find(|c| c.event_name == state.object)
            .and_then(|c| c.replay_id);
        let from = match saved {
            Some(id) if !from_retained.contains(&state.object) => ReplayFrom::After(ReplayId(id)),
            _ => ReplayFrom::Retained,
        };
        from_retained.retain(|o| o != &state.object);
        let subscription = self
            .transport
            .subscribe(&platform_event_channel(&state.object), from);
        let (applied, applied_seen) = watch::channel(saved);
        let stop = cancel.child_token();
        let reader = tokio::spawn(read(
            state.object.clone(),
            subscription,
            sender.clone(),
            applied_seen,
            stop.clone(),
        ));
        tracing::info!(org = %self.org, object = %state.object, %from, "subscribing to platform events");
        Ok(Some(Topic {
            table: state.table.clone(),
            columns: event_table_columns(&fields),
            fields,
            applied,
            stop,
            reader,
        }))
    }

    /// Acts on one item of `name`'s subscription (and, for an event, on every event of
    /// that topic already waiting).
    async fn handle(
        &mut self,
        topics: &mut HashMap<String, Topic>,
        from_retained: &mut Vec<String>,
        name: String,
        item: sfpg_salesforce::Result<StreamItem>,
        items: &mut mpsc::Receiver<TopicItem>,
    ) -> Result<()> {
        if !topics.contains_key(&name) {
            return Ok(());
        }
        let item = match item {
            Ok(item) => item,
            Err(error) => {
                // The subscription has ended; the next recheck subscribes again.
                let reason = error.to_string();
                if error.is_replay_id_invalid() {
                    tracing::warn!(org = %self.org, object = %name, %reason, "replay id refused: starting over at the oldest retained event; events older than the bus's retention are lost");
                    from_retained.push(name.clone());
                }
                if let Some(topic) = topics.remove(&name) {
                    topic.stop.cancel();
                }
                self.set_state(&name, false, Some(&reason)).await?;
                return Ok(());
            }
        };
        match item {
            StreamItem::Connected { .. } => {
                self.set_state(&name, true, None).await?;
            }
            StreamItem::Reconnecting { reason, .. } => {
                self.set_state(&name, false, Some(&reason)).await?;
            }
            StreamItem::Idle | StreamItem::Event(_) => {}
            StreamItem::PlatformEvent(event) => {
                let mut batch = vec![*event];
                let mut carried = None;
                while batch.len() < MAX_BATCH {
                    match items.try_recv() {
                        Ok((other, Ok(StreamItem::PlatformEvent(event)))) if other == name => {
                            batch.push(*event);
                        }
                        Ok(other) => {
                            carried = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                if let Some(topic) = topics.get(&name) {
                    self.apply(&name, topic, &batch).await?;
                }
                if let Some((other, item)) = carried {
                    Box::pin(self.handle(topics, from_retained, other, item, items)).await?;
                }
            }
        }
        Ok(())
    }

    /// Inserts a batch of one topic's events and moves its checkpoint, in one transaction.
    async fn apply(&mut self, name: &str, topic: &Topic, batch: &[PlatformEvent]) -> Result<()> {
        let Some(org) = OrgSettings::load(&*self.db.get().await?, &self.org).await? else {
            return Ok(());
        };
        let delivered: Vec<DeliveredEvent> =
            batch.iter().map(|e| delivered(e, &topic.fields)).collect();
        let this = &self.org;
        let applied = self
            .db
            .write(self.fence.as_ref(), async |t| {
                events::apply_delivered(
                    t,
                    this,
                    name,
                    (&org.schema, &topic.table),
                    &topic.columns,
                    &delivered,
                )
                .await
            })
            .await?;
        tracing::debug!(org = %self.org, object = %name, inserted = applied.inserted, skipped = applied.skipped, "platform events applied");
        if let Some(id) = applied.replay_id {
            let _ = topic.applied.send(Some(id));
        }
        Ok(())
    }

    /// Records whether `object`'s subscription is connected, and why not.
    async fn set_state(
        &mut self,
        object: &str,
        connected: bool,
        reason: Option<&str>,
    ) -> Result<()> {
        let org = &self.org;
        self.db
            .write(self.fence.as_ref(), async |t| {
                EventCheckpoint::set_state(t, org, object, connected, reason).await
            })
            .await
    }

    /// Deletes the rows past the retention of every subscribed topic.
    async fn sweep(&mut self, topics: &HashMap<String, Topic>) -> Result<()> {
        if topics.is_empty() {
            return Ok(());
        }
        let Some(org) = OrgSettings::load(&*self.db.get().await?, &self.org).await? else {
            return Ok(());
        };
        let retention = chrono::Duration::from_std(self.retention).unwrap_or(chrono::Duration::MAX);
        let Some(cutoff) = Utc::now().checked_sub_signed(retention) else {
            return Ok(());
        };
        for (name, topic) in topics {
            let deleted = self
                .db
                .write(self.fence.as_ref(), async |t| {
                    events::delete_older_than(t, &org.schema, &topic.table, cutoff).await
                })
                .await?;
            if deleted > 0 {
                tracing::info!(org = %self.org, object = %name, deleted, "platform events past the retention deleted");
            }
        }
        Ok(())
    }
}

/// An event's row: its fields under their columns (fields the table lacks are left out).
fn delivered(event: &PlatformEvent, fields: &[MirroredField]) -> DeliveredEvent {
    let mut values = Map::new();
    for (name, value) in &event.fields {
        if let Some(field) = fields.iter().find(|f| f.field.eq_ignore_ascii_case(name)) {
            values.insert(field.column.clone(), value.clone());
        }
    }
    DeliveredEvent {
        replay_id: event.replay_id.0,
        event_uuid: event.event_uuid.clone(),
        created_date: event.created_date.clone(),
        created_by_id: event.created_by_id.clone(),
        values: values.into_iter().collect::<Map<String, Value>>(),
    }
}
