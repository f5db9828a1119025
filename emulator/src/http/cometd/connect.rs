//! `/meta/connect`: the long poll. It answers at once the first time after a handshake,
//! then waits until one of the client's subscriptions has events, the connect timeout
//! passes, the session ends, or the admin API stalls or drops it. It never holds a lock
//! across an `.await`.

use std::time::{Duration, Instant};

use serde_json::{Map, Value as Json, json};

use super::{auth_invalid, client_id, reply_to, unknown_client};
use crate::events::{all_channel, platform_topic};
use crate::http::state::AppState;

/// How many events one connect returns at most.
const MAX_EVENTS_PER_CONNECT: usize = 1_000;
/// How often a waiting connect checks on its session even when nothing wakes it.
const RECHECK: Duration = Duration::from_secs(1);

/// What a connect answers, and whether its connection is to be closed instead.
pub struct ConnectOutcome {
    pub messages: Vec<Json>,
    pub drop: bool,
}

enum Step {
    Answer(Vec<Json>),
    Drop,
    /// Wait for a wake-up; `true` when stalled (no deadline).
    Wait(bool),
}

pub async fn connect(
    state: &AppState,
    cookie: Option<&str>,
    message: &Map<String, Json>,
) -> ConnectOutcome {
    let id = client_id(message).to_owned();
    let (wake, immediate, timeout) = {
        let mut clients = state.cometd();
        let timeout = clients.timeouts.connect;
        let Some(client) = clients.get(&id, cookie) else {
            return answer(vec![unknown_client(message)]);
        };
        client.connecting += 1;
        let immediate = !client.connected_once;
        client.connected_once = true;
        (client.wake.clone(), immediate, timeout)
    };
    let outcome = hold(state, &id, message, wake, immediate, timeout).await;
    let mut clients = state.cometd();
    if let Some(client) = clients.get_mut(&id) {
        client.connecting = client.connecting.saturating_sub(1);
        client.last_seen = Instant::now();
    }
    outcome
}

async fn hold(
    state: &AppState,
    id: &str,
    message: &Map<String, Json>,
    wake: std::sync::Arc<tokio::sync::Notify>,
    immediate: bool,
    timeout: Duration,
) -> ConnectOutcome {
    let deadline = Instant::now() + timeout;
    let mut published = state.bus().watch();
    let mut platform_published = state.platform_events().watch_all();
    loop {
        // Armed before looking, so a wake between the look and the wait is not lost.
        let woken = wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        published.borrow_and_update();
        platform_published.borrow_and_update();
        let expired = Instant::now() >= deadline;
        match step(state, id, message, immediate || expired) {
            Step::Answer(messages) => return answer(messages),
            Step::Drop => {
                return ConnectOutcome {
                    messages: Vec::new(),
                    drop: true,
                };
            }
            Step::Wait(stalled) => {
                let left = if stalled {
                    RECHECK
                } else {
                    deadline
                        .saturating_duration_since(Instant::now())
                        .min(RECHECK)
                };
                tokio::select! {
                    _ = published.changed() => {}
                    _ = platform_published.changed() => {}
                    _ = &mut woken => {}
                    _ = tokio::time::sleep(left) => {}
                }
            }
        }
    }
}

fn answer(messages: Vec<Json>) -> ConnectOutcome {
    ConnectOutcome {
        messages,
        drop: false,
    }
}

/// One look at the client: answer now (events, timeout, an error), drop, or wait.
fn step(state: &AppState, id: &str, message: &Map<String, Json>, answer_empty: bool) -> Step {
    let token = {
        let mut clients = state.cometd();
        let Some(client) = clients.get_mut(id) else {
            return Step::Answer(vec![unknown_client(message)]);
        };
        if client.drop_connects > 0 {
            client.drop_connects -= 1;
            return Step::Drop;
        }
        if client.stalled {
            return Step::Wait(true);
        }
        client.token.clone()
    };
    if state.sessions().session(&token).is_none() {
        return Step::Answer(vec![auth_invalid(message)]);
    }
    let mut messages = events_for(state, id);
    if messages.is_empty() && !answer_empty {
        return Step::Wait(false);
    }
    let timeout = state.cometd().timeouts.connect.as_millis() as u64;
    let mut reply = reply_to(message, true, None);
    reply["advice"] = json!({"reconnect": "retry", "interval": 0, "timeout": timeout});
    messages.push(reply);
    Step::Answer(messages)
}

/// The events waiting for the client's subscriptions, each as a CometD message,
/// advancing the subscriptions past them (platform event channels read their topic's log).
/// The client stays locked while its positions are read and moved (the bus's and the
/// topics' locks are taken inside, never the other way round), so two
/// connects of one client never deliver the same event twice.
fn events_for(state: &AppState, id: &str) -> Vec<Json> {
    let bus = state.bus();
    let platform = state.platform_events();
    let mut clients = state.cometd();
    let Some(client) = clients.get_mut(id) else {
        return Vec::new();
    };
    let mut messages = Vec::new();
    for sub in &mut client.subscriptions {
        let budget = MAX_EVENTS_PER_CONNECT.saturating_sub(messages.len());
        if let Some(topic) = platform_topic(&sub.channel) {
            let events = platform
                .after(topic, sub.position, budget)
                .unwrap_or_default();
            for event in events {
                sub.position = event.replay_id;
                messages.push(event.cometd_message());
            }
            continue;
        }
        for event in bus.after(sub.position, budget) {
            sub.position = event.replay_id;
            let own = crate::events::channel_for(&event.header.entity_name);
            if sub.channel == all_channel() || sub.channel == own {
                messages.push(event.cometd_message(&sub.channel));
            }
        }
    }
    messages
}
