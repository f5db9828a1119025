//! The admin API's Change Data Capture and Streaming API controls, under `/__emulator/`:
//! read and change the entity selection, retention and overflow threshold, inject
//! `GAP_*` events, expire every retained event, and stall or drop CometD clients'
//! connects. [`RunningEmulator`] offers the same to Rust tests.

use std::time::Duration;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value as JsonValue, json};

use super::error::{RestError, parse_json};
use super::server::RunningEmulator;
use super::state::{AppState, Shared};
use crate::events::{ChangeType, EventBus, Selection};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/cdc", get(settings).put(change_settings))
        .route("/cdc/gaps", post(inject_gap))
        .route("/cdc/expire", post(expire))
        .route("/cometd/clients", get(clients))
        .route("/cometd/stall", post(stall))
        .route("/cometd/drop", post(drop_connects))
}

/// `PUT /__emulator/cdc`: any of the settings.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SettingsChange {
    /// `"all"`, `"none"`, `"Account,Contact"` or a list of names.
    entities: Option<JsonValue>,
    retention_seconds: Option<u64>,
    overflow_threshold: Option<usize>,
}

/// `POST /__emulator/cdc/gaps`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct GapRequest {
    entity: String,
    change_type: String,
    #[serde(default)]
    record_ids: Vec<String>,
}

/// `POST /__emulator/cometd/stall` and `/drop`: one client, or every client.
#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ClientFault {
    client_id: Option<String>,
    /// Stall: on or off (default on).
    stalled: Option<bool>,
    /// Drop: how many connects to close (default 1).
    count: Option<usize>,
}

fn admin_error(message: &str) -> RestError {
    RestError::bad_request("INVALID_ADMIN_REQUEST", message)
}

fn settings_json(bus: &EventBus) -> JsonValue {
    json!({
        "entities": bus.selection().to_string(),
        "retentionSeconds": bus.retention().as_secs(),
        "overflowThreshold": bus.overflow_threshold(),
        "lastReplayId": bus.last_replay_id(),
        "retained": bus.retained(),
    })
}

impl Shared {
    /// Publishes a gap event for `record_ids` of `entity`; its replay id.
    fn inject_gap(
        &self,
        entity: &str,
        change_type: &str,
        record_ids: Vec<String>,
    ) -> Result<i64, RestError> {
        let change_type = ChangeType::parse(change_type)
            .filter(|t| t.as_str().starts_with("GAP_"))
            .ok_or_else(|| admin_error("changeType must be one of GAP_CREATE, GAP_UPDATE, GAP_DELETE, GAP_UNDELETE, GAP_OVERFLOW"))?;
        let user = self
            .users()
            .first()
            .map(|u| u.user_id)
            .ok_or_else(|| admin_error("no users are configured"))?;
        let ids = if change_type == ChangeType::GapOverflow {
            Vec::new()
        } else {
            record_ids
        };
        self.org_mut()
            .publish_gap(entity, change_type, ids, &user)
            .ok_or_else(|| admin_error(&format!("no object {entity}")))
    }

    /// Applies `fault` to one client or all; how many it reached.
    fn client_fault(
        &self,
        fault: &ClientFault,
        apply: impl Fn(&mut super::cometd::Client),
    ) -> usize {
        let mut clients = self.cometd();
        let ids = match &fault.client_id {
            Some(id) => vec![id.clone()],
            None => clients.ids(),
        };
        let mut reached = 0;
        for id in ids {
            if let Some(client) = clients.get_mut(&id) {
                apply(client);
                client.wake.notify_waiters();
                reached += 1;
            }
        }
        reached
    }
}

async fn settings(State(state): State<AppState>) -> Json<JsonValue> {
    Json(settings_json(state.bus()))
}

async fn change_settings(
    State(state): State<AppState>,
    body: String,
) -> Result<Json<JsonValue>, RestError> {
    let change: SettingsChange = parse_json(body.as_bytes())?;
    let bus = state.bus();
    if let Some(entities) = change.entities {
        let selection = match entities {
            JsonValue::String(text) => text.parse().unwrap_or_else(|e| match e {}),
            JsonValue::Array(names) => Selection::of(names.iter().filter_map(JsonValue::as_str)),
            _ => return Err(admin_error("entities is a string or a list of names")),
        };
        bus.set_selection(selection);
    }
    if let Some(seconds) = change.retention_seconds {
        // Platform events keep as long as change events (both 72 h on Salesforce).
        bus.set_retention(Duration::from_secs(seconds));
        state
            .platform_events()
            .set_retention(Duration::from_secs(seconds));
    }
    if let Some(threshold) = change.overflow_threshold {
        bus.set_overflow_threshold(threshold);
    }
    Ok(Json(settings_json(bus)))
}

async fn inject_gap(
    State(state): State<AppState>,
    body: String,
) -> Result<Json<JsonValue>, RestError> {
    let gap: GapRequest = parse_json(body.as_bytes())?;
    let replay_id = state.inject_gap(&gap.entity, &gap.change_type, gap.record_ids)?;
    Ok(Json(json!({"replayId": replay_id})))
}

async fn expire(State(state): State<AppState>) -> Json<JsonValue> {
    let expired = state.bus().expire_all() + state.platform_events().expire_all();
    Json(json!({"expired": expired}))
}

async fn clients(State(state): State<AppState>) -> Json<JsonValue> {
    Json(json!({"clients": state.cometd().ids()}))
}

async fn stall(State(state): State<AppState>, body: String) -> Result<Json<JsonValue>, RestError> {
    let fault: ClientFault = if body.trim().is_empty() {
        ClientFault::default()
    } else {
        parse_json(body.as_bytes())?
    };
    let stalled = fault.stalled.unwrap_or(true);
    let reached = state.client_fault(&fault, |c| c.stalled = stalled);
    Ok(Json(json!({"clients": reached})))
}

async fn drop_connects(
    State(state): State<AppState>,
    body: String,
) -> Result<Json<JsonValue>, RestError> {
    let fault: ClientFault = if body.trim().is_empty() {
        ClientFault::default()
    } else {
        parse_json(body.as_bytes())?
    };
    let count = fault.count.unwrap_or(1);
    let reached = state.client_fault(&fault, |c| c.drop_connects += count);
    Ok(Json(json!({"clients": reached})))
}

impl RunningEmulator {
    /// The org's change event bus (selection, retention, threshold, replay ids).
    pub fn event_bus(&self) -> &EventBus {
        self.state.bus()
    }

    /// The org's platform event topics (what was published, replay ids, retention).
    pub fn platform_events(&self) -> &std::sync::Arc<crate::events::PlatformEventStore> {
        self.state.platform_events()
    }

    /// Publishes a `GAP_*` event for `record_ids` of `entity`; its replay id.
    pub fn inject_gap(
        &self,
        entity: &str,
        change_type: &str,
        record_ids: Vec<String>,
    ) -> Result<i64, RestError> {
        self.state.inject_gap(entity, change_type, record_ids)
    }

    /// Stalls (or releases) the connects of one CometD client, or of all.
    pub fn stall_cometd(&self, client_id: Option<&str>, stalled: bool) -> usize {
        let fault = ClientFault {
            client_id: client_id.map(str::to_owned),
            stalled: Some(stalled),
            count: None,
        };
        self.state.client_fault(&fault, |c| c.stalled = stalled)
    }

    /// Closes the next `count` connects of one CometD client, or of all, unanswered.
    pub fn drop_cometd_connects(&self, client_id: Option<&str>, count: usize) -> usize {
        let fault = ClientFault {
            client_id: client_id.map(str::to_owned),
            stalled: None,
            count: Some(count),
        };
        self.state
            .client_fault(&fault, |c| c.drop_connects += count)
    }

    /// The ids of the CometD clients the server knows.
    pub fn cometd_clients(&self) -> Vec<String> {
        self.state.cometd().ids()
    }
}
