//! `Subscribe`: a pull-based stream of change events off the org's event bus, or of a
//! platform event topic's events off the org's platform event store: the same events in
//! the same order CometD delivers.
//!
//! - The first FetchRequest names the topic and where to start: `LATEST` (the tip),
//!   `EARLIEST` (every retained event) or `CUSTOM` (after an 8-byte big-endian replay id,
//!   which must lie in the retained window, else `replayid.corrupted`). Replay options of
//!   later requests are ignored; a later request naming another topic ends the stream.
//! - Demand: each request adds its `num_requested` (which must be > 0) to what is
//!   outstanding, at most 100 in all; events are sent while any is outstanding, and each
//!   response says how much still is (`pending_num_requested`).
//! - With nothing outstanding for the idle-close interval (Salesforce: 60 s) the server
//!   closes the stream; with no events for the keepalive interval (Salesforce: within
//!   270 s) it sends an empty batch carrying the latest replay id.
//! - The admin API can end the stream with any status and `error-code`.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use sfpg_pubsub_proto::{
    ConsumerEvent, FetchRequest, FetchResponse, ProducerEvent, ReplayPreset, replay_id_bytes,
    replay_id_position,
};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use tonic::{Code, Status, Streaming};

use super::status::{
    FETCH_TOPIC_MISMATCH, REPLAY_ID_CORRUPTED, REPLAY_ID_VALIDATION_FAILED,
    REQUESTED_EVENTS_INVALID, SUBSCRIPTION_INTERNAL, error, rpc_id,
};
use super::streams::StreamGuard;
use super::topics::{self, Topic};
use crate::events::{ChangeEvent, ReplayStart};
use crate::http::state::AppState;

/// The most events a subscription may have outstanding.
pub const MAX_REQUESTED: i32 = 100;
/// How many bus events one look scans for the topic's events.
const SCAN_CHUNK: usize = 1_000;

/// The stream of responses a Subscribe call returns.
pub type FetchStream = Pin<Box<dyn Stream<Item = Result<FetchResponse, Status>> + Send>>;

/// How long the server waits before a keepalive, and before closing an idle stream.
#[derive(Debug, Clone, Copy)]
pub struct Timings {
    pub keepalive: Duration,
    pub idle_close: Duration,
}

/// Serves one Subscribe call in the background; returns its responses.
pub fn start(state: AppState, timings: Timings, requests: Streaming<FetchRequest>) -> FetchStream {
    let (tx, rx) = mpsc::channel(8);
    tokio::spawn(async move {
        if let Err(status) = run(state, timings, requests, &tx).await {
            // The client may be gone already; then nobody is left to tell.
            let _ = tx.send(Err(status)).await;
        }
    });
    Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

/// A subscription's place in the bus, and its demand.
struct Subscription {
    state: AppState,
    topic: Topic,
    topic_name: String,
    position: i64,
    pending: i32,
    delivered: u64,
    guard: StreamGuard,
}

type Responses = mpsc::Sender<Result<FetchResponse, Status>>;

async fn run(
    state: AppState,
    timings: Timings,
    mut requests: Streaming<FetchRequest>,
    tx: &Responses,
) -> Result<(), Status> {
    let Ok(Some(first)) = requests.message().await else {
        return Ok(());
    };
    let topic = topics::resolve(&state, &first.topic_name)?;
    let position = start_position(&state, &topic, &first)?;
    let requested = requested(first.num_requested)?;
    let mut published = match &topic {
        Topic::Platform { name } => state
            .platform_events()
            .watch(name)
            .map_err(|e| error(Code::Internal, SUBSCRIPTION_INTERNAL, &e.to_string()))?,
        _ => state.bus().watch(),
    };
    let (guard, mut end) = state.pubsub().streams.open(&first.topic_name);
    let mut sub = Subscription {
        state,
        topic,
        topic_name: first.topic_name,
        position,
        pending: requested,
        delivered: 0,
        guard,
    };
    sub.report();
    let mut keepalive_at = Instant::now() + timings.keepalive;
    let mut idle_since: Option<Instant> = None;
    loop {
        published.borrow_and_update();
        if sub.pending > 0 {
            let events = sub.next_batch()?;
            if !events.is_empty() {
                if tx.send(Ok(sub.response(events))).await.is_err() {
                    return Ok(());
                }
                keepalive_at = Instant::now() + timings.keepalive;
                continue;
            }
            idle_since = None;
        } else {
            idle_since.get_or_insert_with(Instant::now);
        }
        let idle_deadline = idle_since.map(|since| since + timings.idle_close);
        tokio::select! {
            biased;
            _ = end.changed() => {
                if let Some(status) = end.borrow().clone() {
                    return Err(status);
                }
            }
            message = requests.message() => match message {
                Ok(Some(request)) => sub.request(&request)?,
                // The client half-closed or went away: the call is over.
                _ => return Ok(()),
            },
            _ = published.changed(), if sub.pending > 0 => {}
            _ = sleep_until(keepalive_at) => {
                if tx.send(Ok(sub.response(Vec::new()))).await.is_err() {
                    return Ok(());
                }
                keepalive_at = Instant::now() + timings.keepalive;
            }
            _ = sleep_until(idle_deadline.unwrap_or(keepalive_at)), if idle_deadline.is_some() => {
                // Nothing was requested in time: Salesforce closes the stream.
                return Ok(());
            }
            _ = tx.closed() => return Ok(()),
        }
    }
}

/// Where the first request starts the subscription.
fn start_position(state: &AppState, topic: &Topic, first: &FetchRequest) -> Result<i64, Status> {
    let from = match ReplayPreset::try_from(first.replay_preset) {
        Ok(ReplayPreset::Earliest) => ReplayStart::Retained,
        Ok(ReplayPreset::Custom) => {
            if first.replay_id.is_empty() {
                return Err(error(
                    Code::InvalidArgument,
                    REPLAY_ID_VALIDATION_FAILED,
                    "The replay ID is required when the replay preset is CUSTOM.",
                ));
            }
            let id = replay_id_position(&first.replay_id).ok_or_else(corrupted)?;
            ReplayStart::After(id)
        }
        // LATEST, and what the proto does not know, start at the tip.
        _ => ReplayStart::Tip,
    };
    match topic {
        Topic::Platform { name } => state.platform_events().start(name, from).ok(),
        _ => state.bus().start(from).ok(),
    }
    .ok_or_else(corrupted)
}

fn corrupted() -> Status {
    error(
        Code::InvalidArgument,
        REPLAY_ID_CORRUPTED,
        "The Replay ID validation failed.",
    )
}

/// A request's `num_requested`, which must be positive (more than 100 counts as 100).
fn requested(num_requested: i32) -> Result<i32, Status> {
    if num_requested <= 0 {
        return Err(error(
            Code::InvalidArgument,
            REQUESTED_EVENTS_INVALID,
            "The number of requested events must be greater than zero.",
        ));
    }
    Ok(num_requested.min(MAX_REQUESTED))
}

impl Subscription {
    fn report(&self) {
        self.guard.report(self.pending, self.delivered);
    }

    /// A later request: more demand, on the same topic.
    fn request(&mut self, request: &FetchRequest) -> Result<(), Status> {
        if !request.topic_name.is_empty() && request.topic_name != self.topic_name {
            return Err(error(
                Code::InvalidArgument,
                FETCH_TOPIC_MISMATCH,
                "The topic name can't change within a subscription.",
            ));
        }
        let more = requested(request.num_requested)?;
        self.pending = (self.pending + more).min(MAX_REQUESTED);
        self.report();
        Ok(())
    }

    /// The topic's next events, at most what is outstanding, encoded.
    fn next_batch(&mut self) -> Result<Vec<ConsumerEvent>, Status> {
        let out = match &self.topic {
            Topic::Platform { name } => self.next_platform_events(&name.clone())?,
            _ => self.next_change_events()?,
        };
        self.pending -= out.len() as i32;
        self.delivered += out.len() as u64;
        self.report();
        Ok(out)
    }

    /// The platform event topic's next events after the position.
    fn next_platform_events(&mut self, name: &str) -> Result<Vec<ConsumerEvent>, Status> {
        let internal = |message: String| error(Code::Internal, SUBSCRIPTION_INTERNAL, &message);
        let events = self
            .state
            .platform_events()
            .after(name, self.position, self.pending as usize)
            .map_err(|e| internal(e.to_string()))?;
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let schema = self
            .state
            .pubsub()
            .schemas
            .platform_event(&self.state, name)
            .ok_or_else(|| internal(format!("The platform event {name} no longer exists.")))?
            .map_err(|e| internal(e.to_string()))?;
        let mut out = Vec::with_capacity(events.len());
        for event in events {
            self.position = event.replay_id;
            let payload = schema
                .encode_platform(&event)
                .map_err(|e| internal(e.to_string()))?;
            out.push(ConsumerEvent {
                event: Some(ProducerEvent {
                    id: event.event_uuid.clone(),
                    schema_id: schema.id.clone(),
                    payload,
                    headers: Vec::new(),
                }),
                replay_id: replay_id_bytes(event.replay_id),
            });
        }
        Ok(out)
    }

    /// The change event topic's next events; the position moves past every bus event
    /// looked at.
    fn next_change_events(&mut self) -> Result<Vec<ConsumerEvent>, Status> {
        let bus = self.state.bus().clone();
        let mut out = Vec::new();
        'scan: loop {
            let chunk = bus.after(self.position, SCAN_CHUNK);
            if chunk.is_empty() {
                break;
            }
            for event in chunk {
                self.position = event.replay_id;
                if self.topic.carries(&event) {
                    out.push(self.consumer_event(&event)?);
                    if out.len() >= self.pending as usize {
                        break 'scan;
                    }
                }
            }
        }
        Ok(out)
    }

    fn consumer_event(&self, event: &Arc<ChangeEvent>) -> Result<ConsumerEvent, Status> {
        let internal = |message: String| error(Code::Internal, SUBSCRIPTION_INTERNAL, &message);
        let entity = &event.header.entity_name;
        let schema = self
            .state
            .pubsub()
            .schemas
            .change_event(&self.state, entity)
            .ok_or_else(|| internal(format!("The object {entity} no longer exists.")))?
            .map_err(|e| internal(e.to_string()))?;
        let payload = schema
            .encode_change(event)
            .map_err(|e| internal(e.to_string()))?;
        Ok(ConsumerEvent {
            event: Some(ProducerEvent {
                id: event_uuid(event),
                schema_id: schema.id.clone(),
                payload,
                headers: Vec::new(),
            }),
            replay_id: replay_id_bytes(event.replay_id),
        })
    }

    fn response(&self, events: Vec<ConsumerEvent>) -> FetchResponse {
        FetchResponse {
            events,
            latest_replay_id: replay_id_bytes(self.position),
            rpc_id: rpc_id(),
            pending_num_requested: self.pending,
        }
    }
}

/// A change event's id: a UUID derived from its transaction and place in it, so the same
/// event has the same id on every delivery.
fn event_uuid(event: &ChangeEvent) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(
        format!(
            "{}/{}/{}",
            event.header.transaction_key, event.header.sequence_number, event.replay_id
        )
        .as_bytes(),
    );
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}
