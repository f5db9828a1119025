//! One Subscribe call: opening it (auth metadata, the first `FetchRequest` with the replay
//! point and the first demand), the task that reads it (counting what arrives, watching for
//! silence and for a caller that leaves nothing requested), and the events' schemas.

use std::sync::{Arc, Mutex, PoisonError};

use futures::channel::mpsc::{UnboundedSender, unbounded};
use sfpg_pubsub_proto::pub_sub_client::PubSubClient;
use sfpg_pubsub_proto::{
    ConsumerEvent, FetchRequest, FetchResponse, ReplayPreset, SchemaRequest, replay_id_bytes,
    replay_id_position,
};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use tonic::Streaming;

use super::Session;
use crate::error::Error;
use crate::streaming::pubsub::OpenCall;
use crate::streaming::pubsub::decode;
use crate::streaming::pubsub::flow::{Demand, Watchdog};
use crate::streaming::pubsub::schema::{EventSchema, SchemaError};
use crate::streaming::pubsub::wire::{self, Trouble};
use crate::streaming::{ReplayFrom, ReplayId, StreamItem, is_platform_event_channel};

/// What the reading task hands the subscription.
pub(super) enum Delivery {
    Response(FetchResponse),
    /// The call ended; what it means.
    Failed(Trouble),
    /// The caller held a full batch long enough that nothing was requested for the starve
    /// limit: the call was let go before the server closes it.
    Released,
}

/// An open call.
pub(super) struct Call {
    requests: UnboundedSender<FetchRequest>,
    deliveries: mpsc::UnboundedReceiver<Delivery>,
}

impl Call {
    /// Sends a `FetchRequest` on the open call (a call already gone ignores it).
    pub(super) fn request(&self, request: FetchRequest) {
        let _ = self.requests.unbounded_send(request);
    }

    pub(super) async fn next(&mut self) -> Delivery {
        self.deliveries.recv().await.unwrap_or_else(|| {
            Delivery::Failed(Trouble::Reconnect("the stream's reader stopped".to_owned()))
        })
    }
}

impl Session {
    /// Opens a call from the resume point.
    pub(super) async fn open(&mut self) -> Result<(), Trouble> {
        let shared = Arc::clone(&self.shared);
        let from = self.resume_point();
        self.last_from = from;
        let metadata = wire::auth_metadata(&shared.client)
            .await
            .map_err(wire::client_trouble)?;
        let now = Instant::now();
        let first_demand = {
            let mut demand = self.demand();
            demand.restart(0, now);
            demand.request(now).unwrap_or(1)
        };
        let (preset, replay_id) = match from {
            ReplayFrom::Tip => (ReplayPreset::Latest, Vec::new()),
            ReplayFrom::Retained => (ReplayPreset::Earliest, Vec::new()),
            ReplayFrom::After(id) => (ReplayPreset::Custom, replay_id_bytes(id.0)),
        };
        let (requests, outgoing) = unbounded();
        let _ = requests.unbounded_send(FetchRequest {
            topic_name: self.topic.clone(),
            replay_preset: preset as i32,
            replay_id,
            num_requested: i32::try_from(first_demand).unwrap_or(i32::MAX),
            auth_refresh: String::new(),
        });
        let mut request = tonic::Request::new(outgoing);
        *request.metadata_mut() = metadata;
        let mut grpc = PubSubClient::new(shared.channel.clone());
        let limit = shared.options.connect_timeout;
        let answer = tokio::time::timeout(limit, grpc.subscribe(request)).await;
        crate::telemetry::pubsub_call(shared.client.config().org_label(), &answer);
        let responses = match answer {
            Err(_) => {
                return Err(Trouble::Reconnect(format!(
                    "no answer to Subscribe within {}s",
                    limit.as_secs_f64()
                )));
            }
            Ok(Err(status)) => return Err(wire::trouble(&shared.endpoint, "Subscribe", &status)),
            Ok(Ok(response)) => response.into_inner(),
        };
        // Unbounded, so the reader never waits on a caller that does not consume: it must
        // see the starve limit pass. What it holds is bounded by the demand (≤ 100 events).
        let (deliveries, receiver) = mpsc::unbounded_channel();
        let reader = tokio::spawn(read(
            responses,
            deliveries,
            Arc::clone(&self.demand),
            Watchdog::new(shared.options.watchdog, now),
            shared.endpoint.clone(),
            requests.clone(),
        ));
        self.slot.set_call(Some(OpenCall {
            reader: reader.abort_handle(),
            requests: requests.clone(),
        }));
        if self.slot.ended().is_some() {
            self.slot.set_call(None);
            return Ok(());
        }
        tracing::info!(topic = %self.topic, %from, endpoint = %shared.endpoint, "subscribed over Pub/Sub");
        self.call = Some(Call {
            requests,
            deliveries: receiver,
        });
        self.ready.push_back(StreamItem::Connected { from });
        Ok(())
    }

    /// The schema of `id`, from the cache or `GetSchema`.
    pub(super) async fn schema(&self, id: &str) -> Result<Arc<EventSchema>, Trouble> {
        if let Some(schema) = self.shared.schemas.get(id) {
            return Ok(schema);
        }
        let shared = &self.shared;
        let metadata = wire::auth_metadata(&shared.client)
            .await
            .map_err(wire::client_trouble)?;
        let mut request = tonic::Request::new(SchemaRequest {
            schema_id: id.to_owned(),
        });
        *request.metadata_mut() = metadata;
        let mut grpc = PubSubClient::new(shared.channel.clone());
        let limit = shared.options.connect_timeout;
        let answer = tokio::time::timeout(limit, grpc.get_schema(request)).await;
        crate::telemetry::pubsub_call(shared.client.config().org_label(), &answer);
        let info = match answer {
            Err(_) => {
                return Err(Trouble::Reconnect(format!(
                    "no answer to GetSchema within {}s",
                    limit.as_secs_f64()
                )));
            }
            Ok(Err(status)) => return Err(wire::trouble(&shared.endpoint, "GetSchema", &status)),
            Ok(Ok(info)) => info.into_inner(),
        };
        let schema = EventSchema::parse(id, &info.schema_json).map_err(|error: SchemaError| {
            Trouble::Fatal(Error::PubSub {
                endpoint: format!("{} GetSchema", shared.endpoint),
                status: "Ok".to_owned(),
                error_code: None,
                message: format!("schema {id}: {error}"),
            })
        })?;
        Ok(shared.schemas.insert(schema))
    }

    /// The item a consumer event carries (its schema already cached): a change event, or
    /// on an `/event/…` topic a platform event.
    pub(super) fn decode(&self, event: ConsumerEvent) -> Result<StreamItem, Trouble> {
        let replay_id = replay_id_position(&event.replay_id).ok_or_else(|| {
            Trouble::Fatal(Error::PubSub {
                endpoint: format!("{} Subscribe", self.shared.endpoint),
                status: "Ok".to_owned(),
                error_code: None,
                message: format!("a replay id of {} bytes, not 8", event.replay_id.len()),
            })
        })?;
        let payload_error = |source: Box<dyn std::error::Error + Send + Sync>| {
            Trouble::Fatal(Error::EventPayload {
                channel: self.topic.clone(),
                replay_id,
                source,
            })
        };
        let Some(event) = event.event else {
            return Err(payload_error("the consumer event carries no event".into()));
        };
        let schema =
            self.shared.schemas.get(&event.schema_id).ok_or_else(|| {
                payload_error(format!("schema {} unknown", event.schema_id).into())
            })?;
        let replay_id = ReplayId(replay_id);
        if is_platform_event_channel(&self.topic) {
            decode::platform_event(&schema, &event.payload, replay_id, &self.topic, &event.id)
                .map(|event| StreamItem::PlatformEvent(Box::new(event)))
        } else {
            decode::change_event(&schema, &event.payload, replay_id, &self.topic)
                .map(|event| StreamItem::Event(Box::new(event)))
        }
        .map_err(|error| payload_error(Box::new(error)))
    }
}

/// Reads the call until it ends, handing over each response; counts what arrives, ends a
/// call silent for the watchdog's limit, and lets go of one left with nothing requested.
async fn read(
    mut responses: Streaming<FetchResponse>,
    deliveries: mpsc::UnboundedSender<Delivery>,
    demand: Arc<Mutex<Demand>>,
    mut watchdog: Watchdog,
    endpoint: String,
    requests: UnboundedSender<FetchRequest>,
) {
    let starved = || {
        demand
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .starved()
    };
    let delivery = loop {
        let release_at = starved();
        let message = tokio::select! {
            message = responses.message() => message,
            () = sleep_until(watchdog.deadline()) => {
                let silence = watchdog.limit();
                break Delivery::Failed(Trouble::Reconnect(format!(
                    "no response (events or keepalive) within {}s",
                    silence.as_secs_f64()
                )));
            }
            () = sleep_until(release_at.unwrap_or_else(Instant::now)), if release_at.is_some() => {
                if starved().is_some_and(|at| at <= Instant::now()) {
                    break Delivery::Released;
                }
                continue;
            }
        };
        match message {
            Ok(Some(response)) => {
                let now = Instant::now();
                watchdog.answered(now);
                let events = u32::try_from(response.events.len()).unwrap_or(u32::MAX);
                demand
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .received(events, now);
                if deliveries.send(Delivery::Response(response)).is_err() {
                    requests.close_channel();
                    return;
                }
            }
            Ok(None) => {
                break Delivery::Failed(Trouble::Reconnect(
                    "the server ended the stream".to_owned(),
                ));
            }
            Err(status) => break Delivery::Failed(wire::trouble(&endpoint, "Subscribe", &status)),
        }
    };
    // Ending the requests too is what ends the call on the server (with the response
    // stream, dropped here): a call the reader gave up on must not stay open there.
    requests.close_channel();
    let _ = deliveries.send(delivery);
}
