//! A scripted CometD server for the streaming client's HTTP tests, mounted at
//! `/cometd/<version>` of the scripted Salesforce (`scripted.rs`). It speaks Bayeux
//! long-polling as reference §6.1 documents it (handshake, subscribe with the replay
//! extension, held connects, disconnect, the `BAYEUX_BROWSER` cookie, `403::Unknown client`,
//! `401::Authentication invalid`, the `400` invalid replay id text), and lets a test publish
//! events and cause faults: forget every client, stall or drop connects.
//!
//! It delivers every event to every live client subscribed to its channel and records the
//! most clients ever live at once on a channel, so a client that left an old subscription
//! running shows up as two.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use axum::body::Body;
use axum::http::Response;
use serde_json::{Value, json};
use tokio::sync::watch;

pub const CHANNEL: &str = "/data/ChangeEvents";
const INVALID_REPLAY: &str = "400::The replayId {ID} you provided was invalid.  Please provide a valid ID, -2 to replay all events, or -1 to replay only new events.";

/// A meta request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub channel: String,
    pub client_id: Option<String>,
    pub replay: Option<i64>,
    pub cookie: Option<String>,
}

#[derive(Default)]
struct ClientState {
    cookie: String,
    subscribed: bool,
    /// The replay id of the last event delivered.
    cursor: i64,
}

struct State {
    events: Vec<(i64, Value)>,
    next_replay: i64,
    /// Replay ids below this are no longer retained.
    oldest_retained: i64,
    clients: HashMap<String, ClientState>,
    issued: u32,
    hold: Duration,
    stall_connects: u32,
    drop_connects: u32,
    /// The next connect that takes events answers this much later.
    delay_answer: Option<Duration>,
    seen: Vec<Seen>,
    max_live: usize,
}

pub struct CometdServer {
    state: Mutex<State>,
    changed: watch::Sender<u64>,
}

impl Default for CometdServer {
    fn default() -> Self {
        CometdServer {
            state: Mutex::new(State {
                events: Vec::new(),
                next_replay: 100,
                oldest_retained: 0,
                clients: HashMap::new(),
                issued: 0,
                hold: Duration::from_millis(300),
                stall_connects: 0,
                drop_connects: 0,
                delay_answer: None,
                seen: Vec::new(),
                max_live: 0,
            }),
            changed: watch::Sender::new(0),
        }
    }
}

/// A change event's `data` with replay id `replay`, an update of one Account.
pub fn event_data(replay: i64, name: &str) -> Value {
    json!({
        "schema": "scripted-schema",
        "payload": {
            "ChangeEventHeader": {
                "entityName": "Account", "recordIds": ["001000000000001AAA"],
                "changeType": "UPDATE", "changedFields": ["Name", "Phone", "LastModifiedDate"],
                "changeOrigin": "com/salesforce/api/rest/62.0;client=other",
                "transactionKey": format!("tx-{replay}"), "sequenceNumber": 1,
                "commitTimestamp": 1_700_000_000_000_i64, "commitNumber": replay * 10,
                "commitUser": "005000000000001AAA",
            },
            "Name": name, "Phone": null,
            "LastModifiedDate": "2026-12-06T06:00:00.000Z",
        },
        "event": {"replayId": replay},
    })
}

impl CometdServer {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    fn wake(&self) {
        self.changed.send_modify(|n| *n += 1);
    }

    /// Publishes an event on [`CHANNEL`]; returns its replay id (ids step by 3).
    pub fn publish(&self, name: &str) -> i64 {
        let replay = {
            let mut state = self.state();
            state.next_replay += 3;
            let replay = state.next_replay;
            state.events.push((replay, event_data(replay, name)));
            replay
        };
        self.wake();
        replay
    }

    /// How long a connect without events is held.
    pub fn hold_connects_for(&self, hold: Duration) {
        self.state().hold = hold;
    }

    /// Replay ids below `replay` are no longer retained.
    pub fn expire_before(&self, replay: i64) {
        self.state().oldest_retained = replay;
    }

    /// Forgets every client, as after a server restart: their connects get
    /// `403::Unknown client`.
    pub fn forget_clients(&self) {
        self.state().clients.clear();
        self.wake();
    }

    /// The next `n` connects are held without an answer until their client disconnects.
    pub fn stall_connects(&self, n: u32) {
        self.state().stall_connects = n;
    }

    /// The next `n` connects lose their connection after the server took their events.
    pub fn drop_connects(&self, n: u32) {
        self.state().drop_connects = n;
    }

    /// The next connect that takes events answers `delay` later (the events count as
    /// delivered as soon as it took them).
    pub fn delay_next_answer(&self, delay: Duration) {
        self.state().delay_answer = Some(delay);
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state().seen.clone()
    }

    /// The most clients ever subscribed at once.
    pub fn max_live(&self) -> usize {
        self.state().max_live
    }

    /// Answers one POST to `/cometd/<version>`; `authorised` says whether its token is valid.
    pub async fn handle(
        &self,
        body: &[u8],
        cookie: Option<String>,
        authorised: bool,
    ) -> Response<Body> {
        let messages: Vec<Value> = serde_json::from_slice(body).unwrap();
        let message = &messages[0];
        let channel = message["channel"].as_str().unwrap().to_owned();
        let client_id = message["clientId"].as_str().map(str::to_owned);
        let replay = message["ext"]["replay"][CHANNEL].as_i64();
        self.state().seen.push(Seen {
            channel: channel.clone(),
            client_id: client_id.clone(),
            replay,
            cookie: cookie.clone(),
        });
        let id = message["id"].clone();
        if !authorised {
            let refusal = match channel.as_str() {
                "/meta/handshake" => json!({"channel": channel, "id": id, "successful": false,
                    "error": "403::Handshake denied", "advice": {"reconnect": "none"},
                    "ext": {"sfdc": {"failureReason": "401::Authentication invalid"}, "replay": true}}),
                _ => {
                    json!({"channel": channel, "id": id, "clientId": client_id, "successful": false,
                    "error": "401::Authentication invalid", "advice": {"reconnect": "none"}})
                }
            };
            return json_response(json!([refusal]), None);
        }
        if channel == "/meta/handshake" {
            return self.handshake(id);
        }
        let client_id = client_id.unwrap_or_default();
        let known = self
            .state()
            .clients
            .get(&client_id)
            .is_some_and(|client| cookie.as_deref() == Some(client.cookie.as_str()));
        if !known {
            let reply = json!([{"channel": channel, "id": id, "clientId": client_id, "successful": false,
                "error": "403::Unknown client", "advice": {"reconnect": "handshake", "interval": 0}}]);
            return json_response(reply, None);
        }
        match channel.as_str() {
            "/meta/subscribe" => self.subscribe(id, &client_id, message),
            "/meta/connect" => self.connect(id, &client_id).await,
            "/meta/disconnect" => {
                self.state().clients.remove(&client_id);
                self.wake();
                json_response(
                    json!([{"channel": channel, "id": id, "successful": true}]),
                    None,
                )
            }
            other => panic!("unexpected channel {other}"),
        }
    }

    fn handshake(&self, id: Value) -> Response<Body> {
        let mut state = self.state();
        state.issued += 1;
        let client_id = format!("scripted-client-{}", state.issued);
        let browser = format!("BAYEUX_BROWSER=browser-{}", state.issued);
        state.clients.insert(
            client_id.clone(),
            ClientState {
                cookie: browser.clone(),
                ..ClientState::default()
            },
        );
        let reply = json!([{"channel": "/meta/handshake", "id": id, "successful": true,
            "clientId": client_id, "version": "1.0", "supportedConnectionTypes": ["long-polling"],
            "ext": {"replay": true, "payload.format": true},
            "advice": {"reconnect": "retry", "interval": 0, "timeout": 110000}}]);
        json_response(reply, Some(format!("{browser}; Path=/; Secure; HttpOnly")))
    }

    fn subscribe(&self, id: Value, client_id: &str, message: &Value) -> Response<Body> {
        let subscription = message["subscription"].as_str().unwrap();
        let replay = message["ext"]["replay"][subscription].as_i64().unwrap();
        let mut state = self.state();
        let latest = state.next_replay;
        let cursor = match replay {
            -1 => latest,
            -2 => state.oldest_retained - 1,
            after if after < state.oldest_retained - 1 || after > latest => {
                let error = INVALID_REPLAY.replace("ID", &after.to_string());
                let reply = json!([{"channel": "/meta/subscribe", "id": id, "clientId": client_id,
                    "subscription": subscription, "successful": false, "error": error}]);
                return json_response(reply, None);
            }
            after => after,
        };
        let client = state.clients.get_mut(client_id).unwrap();
        client.subscribed = true;
        client.cursor = cursor;
        let live = state.clients.values().filter(|c| c.subscribed).count();
        state.max_live = state.max_live.max(live);
        let reply = json!([{"channel": "/meta/subscribe", "id": id, "clientId": client_id,
            "subscription": subscription, "successful": true}]);
        json_response(reply, None)
    }

    /// Events after the client's cursor, taken (the cursor moves), or `None` if the client
    /// is gone.
    fn take_events(&self, client_id: &str) -> Option<Vec<Value>> {
        let mut state = self.state();
        let state = &mut *state;
        let client = state.clients.get_mut(client_id)?;
        let events: Vec<Value> = state
            .events
            .iter()
            .filter(|(replay, _)| *replay > client.cursor)
            .map(|(_, data)| json!({"channel": CHANNEL, "data": data}))
            .collect();
        if let Some(last) = events.last() {
            client.cursor = last["data"]["event"]["replayId"].as_i64().unwrap();
        }
        Some(events)
    }

    async fn connect(&self, id: Value, client_id: &str) -> Response<Body> {
        let mut changed = self.changed.subscribe();
        let (stall, drop, hold) = {
            let mut state = self.state();
            let stall = state.stall_connects > 0;
            state.stall_connects = state.stall_connects.saturating_sub(1);
            (stall, state.drop_connects > 0, state.hold)
        };
        if stall {
            // Held until the client is disconnected; then the answer goes nowhere.
            while self.state().clients.contains_key(client_id) {
                changed.changed().await.unwrap();
            }
            return json_response(json!([]), None);
        }
        let deadline = tokio::time::Instant::now() + hold;
        let mut events = Vec::new();
        loop {
            match self.take_events(client_id) {
                None => break,
                Some(taken) if !taken.is_empty() => {
                    events = taken;
                    break;
                }
                Some(_) => {}
            }
            if tokio::time::timeout_at(deadline, changed.changed())
                .await
                .is_err()
            {
                break;
            }
        }
        if drop && !events.is_empty() {
            self.state().drop_connects -= 1;
            // The events count as delivered, and the connection breaks mid-body.
            let broken = futures::stream::once(async {
                Err::<axum::body::Bytes, _>(std::io::Error::other("connection dropped"))
            });
            return Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .body(Body::from_stream(broken))
                .unwrap();
        }
        let delay = match events.is_empty() {
            true => None,
            false => self.state().delay_answer.take(),
        };
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        let mut reply = events;
        reply.push(json!({"channel": "/meta/connect", "id": id, "clientId": client_id,
            "successful": true, "advice": {"reconnect": "retry", "interval": 0, "timeout": 110000}}));
        json_response(Value::Array(reply), None)
    }
}

fn json_response(body: Value, set_cookie: Option<String>) -> Response<Body> {
    let mut response = Response::builder()
        .status(200)
        .header("content-type", "application/json;charset=UTF-8");
    if let Some(cookie) = set_cookie {
        response = response.header("set-cookie", cookie);
    }
    response.body(Body::from(body.to_string())).unwrap()
}
