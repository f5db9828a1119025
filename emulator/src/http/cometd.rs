//! The Streaming API: CometD/Bayeux over long-polling at `POST /cometd/<version>`,
//! serving the org's change events from the event bus.
//!
//! - `/meta/handshake` makes a client (announcing the `replay` extension) and sets the
//!   `BAYEUX_BROWSER` cookie every later message must carry;
//! - `/meta/subscribe` takes `/data/ChangeEvents` or `/data/<Object>ChangeEvent`
//!   (`/data/<Name>__ChangeEvent` for custom objects) and the replay extension's `-1`
//!   (new events), `-2` (every retained event) or a replay id to resume after; an id out
//!   of the retained window gets Salesforce's `400::The replayId {X} you provided was
//!   invalid…`;
//! - `/meta/connect` returns at once the first time, then is held until events come or
//!   the connect timeout (110 s) passes; `/meta/disconnect` ends the client.
//!
//! A client that does not connect again within 40 s is forgotten (`403::Unknown
//! client`, advice `handshake`), as is one whose cookie does not match. A revoked or
//! expired session gets `401::Authentication invalid` with advice `reconnect: none` (a
//! handshake: `403::Handshake denied` with `ext.sfdc.failureReason`).
//! Every POST needs `Authorization: Bearer`; bodies over 32,768 bytes get 413.

mod clients;
mod connect;

pub use clients::{
    Client, Clients, CometdTimeouts, DEFAULT_CLIENT_TIMEOUT, DEFAULT_CONNECT_TIMEOUT,
};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value as Json, json};

use super::state::AppState;
use super::versions::{self, VersionCheck};
use crate::events::{ReplayStart, all_channel, channel_for, platform_topic};

/// The largest request body the Streaming API takes.
pub const MAX_REQUEST_BYTES: usize = 32_768;

/// Set on a response whose connection must be closed instead (the admin API's drop).
#[derive(Debug, Clone, Copy)]
pub struct DropConnection;

/// `POST /cometd/{version}`.
pub async fn cometd(
    State(state): State<AppState>,
    Path(version): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !matches!(versions::check(&format!("v{version}")), VersionCheck::Served(v) if v.0 >= 37) {
        return (StatusCode::NOT_FOUND, "Unknown version").into_response();
    }
    if body.len() > MAX_REQUEST_BYTES {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    }
    let Some(token) = bearer(&headers) else {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(
                json!([{"successful": false, "error": "401::Request requires authentication"}]),
            ),
        )
            .into_response();
    };
    let messages: Vec<Map<String, Json>> = match serde_json::from_slice::<Json>(&body) {
        Ok(Json::Array(items)) => items
            .into_iter()
            .filter_map(|m| match m {
                Json::Object(o) => Some(o),
                _ => None,
            })
            .collect(),
        Ok(Json::Object(o)) => vec![o],
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!([{"successful": false, "error": "400::Invalid message"}])),
            )
                .into_response();
        }
    };
    let cookie = bayeux_cookie(&headers);
    let mut replies = Vec::new();
    let mut set_cookie = None;
    let mut drop = false;
    for message in &messages {
        let channel = message.get("channel").and_then(Json::as_str).unwrap_or("");
        if state.sessions().session(&token).is_none() {
            replies.push(auth_invalid(message));
            continue;
        }
        match channel {
            "/meta/handshake" => {
                let (reply, cookie) = handshake(&state, &token, message);
                set_cookie = Some(cookie);
                replies.push(reply);
            }
            "/meta/subscribe" => replies.push(subscribe(&state, cookie.as_deref(), message)),
            "/meta/unsubscribe" => replies.push(unsubscribe(&state, cookie.as_deref(), message)),
            "/meta/connect" => {
                let outcome = connect::connect(&state, cookie.as_deref(), message).await;
                drop |= outcome.drop;
                replies.extend(outcome.messages);
            }
            "/meta/disconnect" => replies.push(disconnect(&state, cookie.as_deref(), message)),
            other => replies.push(reply_to(
                message,
                false,
                Some(&format!("400::Unknown channel {other}")),
            )),
        }
    }
    let mut response = axum::Json(Json::Array(replies)).into_response();
    if let Some(cookie) = set_cookie
        && let Ok(value) = format!("BAYEUX_BROWSER={cookie}; Path=/; HttpOnly").parse()
    {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    if drop {
        response.extensions_mut().insert(DropConnection);
    }
    response
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let known = scheme.eq_ignore_ascii_case("Bearer") || scheme.eq_ignore_ascii_case("OAuth");
    (known && !token.trim().is_empty()).then(|| token.trim().to_owned())
}

/// The `BAYEUX_BROWSER` value of the request's cookies.
fn bayeux_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == "BAYEUX_BROWSER").then(|| value.to_owned())
        })
}

/// A reply to `message` on its channel, echoing its `id` and `clientId`.
fn reply_to(message: &Map<String, Json>, successful: bool, error: Option<&str>) -> Json {
    let mut reply = Map::new();
    for key in ["clientId", "channel", "id", "subscription"] {
        if let Some(v) = message.get(key) {
            reply.insert(key.to_owned(), v.clone());
        }
    }
    reply.insert("successful".to_owned(), Json::Bool(successful));
    if let Some(error) = error {
        reply.insert("error".to_owned(), Json::String(error.to_owned()));
    }
    Json::Object(reply)
}

/// The answer to a message whose session is no longer valid: `401::Authentication
/// invalid`, and for a handshake `403::Handshake denied` with that reason in
/// `ext.sfdc.failureReason` (the shape jsforce's `AuthFailureExtension` quotes from a real
/// org); `reconnect: none` either way, as the client must log in again.
fn auth_invalid(message: &Map<String, Json>) -> Json {
    let handshake = message.get("channel").and_then(Json::as_str) == Some("/meta/handshake");
    let mut reply = if handshake {
        let mut reply = reply_to(message, false, Some("403::Handshake denied"));
        reply["ext"] = json!({"sfdc": {"failureReason": "401::Authentication invalid"},
            "replay": true, "payload.format": true});
        reply
    } else {
        reply_to(message, false, Some("401::Authentication invalid"))
    };
    reply["advice"] = json!({"reconnect": "none"});
    reply
}

pub(super) fn unknown_client(message: &Map<String, Json>) -> Json {
    let mut reply = reply_to(message, false, Some("403::Unknown client"));
    reply["advice"] = json!({"reconnect": "handshake", "interval": 0});
    reply
}

fn handshake(state: &AppState, token: &str, message: &Map<String, Json>) -> (Json, String) {
    let (id, cookie) = state.cometd().handshake(token);
    let mut reply = reply_to(message, true, None);
    reply["clientId"] = Json::String(id);
    reply["version"] = json!("1.0");
    reply["minimumVersion"] = json!("1.0");
    reply["supportedConnectionTypes"] = json!(["long-polling"]);
    reply["ext"] = json!({"replay": true, "payload.format": true});
    (reply, cookie)
}

fn client_id(message: &Map<String, Json>) -> &str {
    message.get("clientId").and_then(Json::as_str).unwrap_or("")
}

/// Whether `channel` names a change event channel of an object the org has, or the
/// channel of one of its platform events (`/event/<Name>__e`).
fn channel_exists(state: &AppState, channel: &str) -> bool {
    if channel == all_channel() {
        return true;
    }
    if let Some(topic) = platform_topic(channel) {
        return state.platform_events().has_topic(topic);
    }
    state
        .org()
        .objects()
        .any(|def| !def.is_platform_event() && channel_for(&def.name) == channel)
}

/// Where a subscription of `channel` from `replay` starts: on its platform event topic,
/// or on the change event bus.
fn start_position(state: &AppState, channel: &str, replay: i64) -> Option<i64> {
    let from = ReplayStart::from_wire(replay);
    match platform_topic(channel) {
        Some(topic) => state.platform_events().start(topic, from).ok(),
        None => state.bus().start(from).ok(),
    }
}

fn subscribe(state: &AppState, cookie: Option<&str>, message: &Map<String, Json>) -> Json {
    let channel = message
        .get("subscription")
        .and_then(Json::as_str)
        .unwrap_or("")
        .to_owned();
    if state.cometd().get(client_id(message), cookie).is_none() {
        return unknown_client(message);
    }
    if !channel_exists(state, &channel) {
        return reply_to(
            message,
            false,
            Some(&format!(
                "400::The channel you requested to subscribe to does not exist {{{channel}}}"
            )),
        );
    }
    let replay = message
        .get("ext")
        .and_then(|e| e.get("replay"))
        .and_then(|r| r.get(&channel))
        .and_then(Json::as_i64)
        .unwrap_or(-1);
    let position = match start_position(state, &channel, replay) {
        Some(position) => position,
        None => {
            return reply_to(
                message,
                false,
                Some(&format!(
                    "400::The replayId {{{replay}}} you provided was invalid.  Please provide a valid ID, -2 to replay all events, or -1 to replay only new events."
                )),
            );
        }
    };
    let mut clients = state.cometd();
    let Some(client) = clients.get(client_id(message), cookie) else {
        return unknown_client(message);
    };
    client.subscriptions.retain(|s| s.channel != channel);
    client.subscriptions.push(clients::Subscription {
        channel: channel.clone(),
        position,
    });
    reply_to(message, true, None)
}

fn unsubscribe(state: &AppState, cookie: Option<&str>, message: &Map<String, Json>) -> Json {
    let channel = message
        .get("subscription")
        .and_then(Json::as_str)
        .unwrap_or("");
    let mut clients = state.cometd();
    let Some(client) = clients.get(client_id(message), cookie) else {
        return unknown_client(message);
    };
    client.subscriptions.retain(|s| s.channel != channel);
    reply_to(message, true, None)
}

fn disconnect(state: &AppState, cookie: Option<&str>, message: &Map<String, Json>) -> Json {
    let mut clients = state.cometd();
    if clients.get(client_id(message), cookie).is_none() {
        return unknown_client(message);
    }
    if let Some(client) = clients.remove(client_id(message)) {
        client.wake.notify_waiters();
    }
    reply_to(message, true, None)
}
