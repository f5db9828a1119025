//! `Publish` and `PublishStream`. A platform event topic (`/event/<Name>__e`) takes events
//! whose Avro payloads its schema decodes: each is published like a REST create of the
//! event object (the same checks, its own transaction, "Publish After Commit"), so
//! CometD and Pub/Sub subscribers get it alike, and its result carries its replay id, or an
//! error (`PUBLISH`) for that event alone. `CreatedDate` and `CreatedById` are the
//! server's: the publish time and the caller. Change event topics take no publishing
//! (their `TopicInfo.can_publish` is false); a publish to one fails the call.

use std::pin::Pin;

use futures::Stream;
use sfpg_pubsub_proto::{
    Error as PublishError, ErrorCode, ProducerEvent, PublishRequest, PublishResponse,
    PublishResult, replay_id_bytes,
};
use tokio::sync::mpsc;
use tonic::{Code, Status, Streaming};

use super::encode::EventSchema;
use super::status::{
    PUBLISH_EVENT_COUNT_INVALID, PUBLISH_TOPIC_MISMATCH, SUBSCRIPTION_INTERNAL, TOPIC_PERMISSION,
    error, rpc_id,
};
use super::topics::{self, Topic};
use crate::http::state::AppState;
use crate::ids::Id;

/// The stream of responses a PublishStream call returns.
pub type PublishStream = Pin<Box<dyn Stream<Item = Result<PublishResponse, Status>> + Send>>;

/// Publishes one request's events as `user`; the response has a result per event, in
/// order.
pub fn publish(
    state: &AppState,
    user: &Id,
    request: &PublishRequest,
) -> Result<PublishResponse, Status> {
    let topic = topics::resolve(state, &request.topic_name)?;
    if request.events.is_empty() {
        return Err(error(
            Code::InvalidArgument,
            PUBLISH_EVENT_COUNT_INVALID,
            "The publish request contains no events.",
        ));
    }
    let name = match topic {
        Topic::Platform { name } => name,
        Topic::AllChanges | Topic::Changes { .. } => {
            return Err(error(
                Code::PermissionDenied,
                TOPIC_PERMISSION,
                &format!(
                    "Publishing to {} isn't allowed: change events are published by Salesforce only.",
                    request.topic_name
                ),
            ));
        }
    };
    let schema = state
        .pubsub()
        .schemas
        .platform_event(state, &name)
        .and_then(Result::ok)
        .ok_or_else(|| {
            error(
                Code::Internal,
                SUBSCRIPTION_INTERNAL,
                &format!("No schema for {name}."),
            )
        })?;
    let results = request
        .events
        .iter()
        .map(|event| result(event, publish_one(state, &schema, &name, user, event)))
        .collect();
    Ok(PublishResponse {
        results,
        schema_id: schema.id.clone(),
        rpc_id: rpc_id(),
    })
}

fn result(event: &ProducerEvent, outcome: Result<i64, String>) -> PublishResult {
    match outcome {
        Ok(replay_id) => PublishResult {
            replay_id: replay_id_bytes(replay_id),
            error: None,
            correlation_key: event.id.clone(),
        },
        Err(msg) => PublishResult {
            replay_id: Vec::new(),
            error: Some(PublishError {
                code: ErrorCode::Publish as i32,
                msg,
            }),
            correlation_key: event.id.clone(),
        },
    }
}

/// Publishes one event of topic `name` in a transaction of its own; its replay id.
fn publish_one(
    state: &AppState,
    current: &EventSchema,
    name: &str,
    user: &Id,
    event: &ProducerEvent,
) -> Result<i64, String> {
    // An event written with an older schema of the topic is read with that schema.
    let older = (!event.schema_id.is_empty() && event.schema_id != current.id)
        .then(|| state.pubsub().schemas.by_id(state, &event.schema_id))
        .flatten();
    let schema = older.as_deref().unwrap_or(current);
    let body = schema
        .decode_platform(&event.payload)
        .map_err(|e| format!("The event payload can't be read with its schema: {e}"))?;
    let store = state.platform_events().clone();
    let (uuid, before) = {
        let mut org = state.org_write(String::new());
        // Events are published under the org's lock: none can come between this and ours.
        let before = store.last_replay_id(name).map_err(|e| e.to_string())?;
        let id = org.create(name, &body, user).map_err(|e| e.to_string())?;
        let uuid = org.pending_event_uuid(&id).map(str::to_owned);
        (uuid, before)
        // The guard drops here: the transaction commits and the event is published.
    };
    let uuid = uuid.ok_or_else(|| "The event was not published.".to_owned())?;
    store
        .after(name, before, usize::MAX)
        .map_err(|e| e.to_string())?
        .iter()
        .find(|published| published.event_uuid == uuid)
        .map(|published| published.replay_id)
        .ok_or_else(|| "The event was not published.".to_owned())
}

/// Serves one PublishStream call as `user` in the background: a response per request,
/// all on the first request's topic.
pub fn start(state: AppState, user: Id, mut requests: Streaming<PublishRequest>) -> PublishStream {
    let (tx, rx) = mpsc::channel(8);
    tokio::spawn(async move {
        let mut topic_name: Option<String> = None;
        while let Ok(Some(request)) = requests.message().await {
            let first = topic_name.get_or_insert_with(|| request.topic_name.clone());
            let outcome = if !request.topic_name.is_empty() && request.topic_name != *first {
                Err(error(
                    Code::InvalidArgument,
                    PUBLISH_TOPIC_MISMATCH,
                    "The topic name can't change within a publish stream.",
                ))
            } else {
                let request = PublishRequest {
                    topic_name: first.clone(),
                    ..request
                };
                publish(&state, &user, &request)
            };
            let failed = outcome.is_err();
            if tx.send(outcome).await.is_err() || failed {
                return;
            }
        }
    });
    Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}
