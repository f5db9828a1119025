//! `Publish` and `PublishStream`. Change event topics take no publishing (their
//! `TopicInfo.can_publish` is false); a publish to one fails the call.

use std::pin::Pin;

use futures::Stream;
use sfpg_pubsub_proto::{PublishRequest, PublishResponse};
use tokio::sync::mpsc;
use tonic::{Code, Status, Streaming};

use super::status::{
    PUBLISH_EVENT_COUNT_INVALID, PUBLISH_TOPIC_MISMATCH, TOPIC_PERMISSION, error, rpc_id,
};
use super::topics::{self, Topic};
use crate::http::state::AppState;

/// The stream of responses a PublishStream call returns.
pub type PublishStream = Pin<Box<dyn Stream<Item = Result<PublishResponse, Status>> + Send>>;

/// Publishes one request's events; the response has a result per event, in order.
pub fn publish(state: &AppState, request: &PublishRequest) -> Result<PublishResponse, Status> {
    let topic = topics::resolve(state, &request.topic_name)?;
    if request.events.is_empty() {
        return Err(error(
            Code::InvalidArgument,
            PUBLISH_EVENT_COUNT_INVALID,
            "The publish request contains no events.",
        ));
    }
    match topic {
        Topic::AllChanges | Topic::Changes { .. } => Err(error(
            Code::PermissionDenied,
            TOPIC_PERMISSION,
            &format!(
                "Publishing to {} isn't allowed: change events are published by Salesforce only.",
                request.topic_name
            ),
        )),
    }
    .map(|results| PublishResponse {
        results,
        schema_id: String::new(),
        rpc_id: rpc_id(),
    })
}

/// Serves one PublishStream call in the background: a response per request, all on the
/// first request's topic.
pub fn start(state: AppState, mut requests: Streaming<PublishRequest>) -> PublishStream {
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
                publish(&state, &request)
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
