//! The admin API's Pub/Sub controls, under `/__emulator/pubsub/`: list the open Subscribe
//! streams with their outstanding demand (`pending_num_requested` now, and the most it
//! ever was), and end them with a chosen gRPC status and `error-code`, as Salesforce ends
//! a stream on an error. [`RunningEmulator`] offers the same to Rust tests.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value as JsonValue, json};

use super::error::{RestError, parse_json};
use super::pubsub::{StreamView, code_by_name, status_error};
use super::server::RunningEmulator;
use super::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/pubsub/streams", get(streams))
        .route("/pubsub/end", post(end))
}

/// `POST /__emulator/pubsub/end`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct EndRequest {
    /// The gRPC status by name (`UNAVAILABLE`) or number; default `UNAVAILABLE`.
    status: Option<String>,
    /// The `error-code` trailer, e.g. `sfdc.platform.eventbus.grpc.service.auth.error`.
    error_code: String,
    message: Option<String>,
    /// Only the streams on this topic; default every stream.
    topic: Option<String>,
}

async fn streams(State(state): State<AppState>) -> Json<JsonValue> {
    Json(json!({"streams": state.pubsub().streams.list()}))
}

async fn end(State(state): State<AppState>, body: String) -> Result<Json<JsonValue>, RestError> {
    let request: EndRequest = parse_json(body.as_bytes())?;
    let status = request.status.as_deref().unwrap_or("UNAVAILABLE");
    let code = code_by_name(status).ok_or_else(|| {
        RestError::bad_request(
            "INVALID_ADMIN_REQUEST",
            format!("{status} is not a gRPC status"),
        )
    })?;
    let message = request
        .message
        .as_deref()
        .unwrap_or("The stream was ended.");
    let status = status_error(code, &request.error_code, message);
    let ended = state
        .pubsub()
        .streams
        .end_all(request.topic.as_deref(), &status);
    Ok(Json(json!({"ended": ended})))
}

impl RunningEmulator {
    /// The open Pub/Sub Subscribe streams, with their outstanding demand.
    pub fn pubsub_streams(&self) -> Vec<StreamView> {
        self.state.pubsub().streams.list()
    }

    /// Ends every open Subscribe stream (or those on `topic`) with `code` and the
    /// `error-code` trailer `error_code`; how many it ended.
    pub fn end_pubsub_streams(
        &self,
        topic: Option<&str>,
        code: tonic::Code,
        error_code: &str,
        message: &str,
    ) -> usize {
        let status = status_error(code, error_code, message);
        self.state.pubsub().streams.end_all(topic, &status)
    }
}
