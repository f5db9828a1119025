//! Bayeux messages as Salesforce's CometD server speaks them (reference §6.1): the four meta
//! requests with the replay extension, the parsing of an answer, its `advice`, and what a
//! refusal means for the client.

use serde::Deserialize;
use serde_json::{Value, json};

pub(crate) const HANDSHAKE: &str = "/meta/handshake";
pub(crate) const SUBSCRIBE: &str = "/meta/subscribe";
pub(crate) const CONNECT: &str = "/meta/connect";
pub(crate) const DISCONNECT: &str = "/meta/disconnect";

/// `/meta/handshake`, announcing the replay extension.
pub(crate) fn handshake(id: u64) -> Value {
    json!([{
        "channel": HANDSHAKE,
        "version": "1.0",
        "minimumVersion": "1.0",
        "supportedConnectionTypes": ["long-polling"],
        "ext": {"replay": true},
        "id": id.to_string(),
    }])
}

/// `/meta/subscribe` to `channel` from `replay` (`-1`, `-2` or an id).
pub(crate) fn subscribe(id: u64, client_id: &str, channel: &str, replay: i64) -> Value {
    json!([{
        "channel": SUBSCRIBE,
        "clientId": client_id,
        "subscription": channel,
        "ext": {"replay": {channel: replay}},
        "id": id.to_string(),
    }])
}

/// `/meta/connect`, the long poll.
pub(crate) fn connect(id: u64, client_id: &str) -> Value {
    json!([{
        "channel": CONNECT,
        "clientId": client_id,
        "connectionType": "long-polling",
        "id": id.to_string(),
    }])
}

/// `/meta/disconnect`.
pub(crate) fn disconnect(id: u64, client_id: &str) -> Value {
    json!([{"channel": DISCONNECT, "clientId": client_id, "id": id.to_string()}])
}

/// One message of an answer: a meta reply or an event.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Message {
    #[serde(default)]
    pub(crate) channel: String,
    #[serde(default)]
    pub(crate) successful: Option<bool>,
    #[serde(rename = "clientId", default)]
    pub(crate) client_id: Option<String>,
    #[serde(default)]
    pub(crate) error: Option<String>,
    #[serde(default)]
    pub(crate) advice: Option<Advice>,
    #[serde(default)]
    pub(crate) ext: Option<Value>,
    #[serde(default)]
    pub(crate) data: Option<Value>,
}

/// What the server advises the client to do next.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub(crate) struct Advice {
    /// `retry`, `handshake` or `none`.
    #[serde(default)]
    pub(crate) reconnect: Option<String>,
    /// Milliseconds to wait before the next connect.
    #[serde(default)]
    pub(crate) interval: Option<u64>,
    /// Milliseconds the server holds a connect.
    #[serde(default)]
    pub(crate) timeout: Option<u64>,
}

/// The messages of an answer: a JSON array, or a lone message.
pub(crate) fn parse(body: &[u8]) -> Result<Vec<Message>, serde_json::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Body {
        Many(Vec<Message>),
        One(Box<Message>),
    }
    Ok(match serde_json::from_slice(body)? {
        Body::Many(messages) => messages,
        Body::One(message) => vec![*message],
    })
}

impl Message {
    /// Whether this is a meta reply that says `successful: true`.
    pub(crate) fn succeeded(&self) -> bool {
        self.successful == Some(true)
    }

    /// Whether this is an event (a message on a non-meta channel with `data`).
    pub(crate) fn is_event(&self) -> bool {
        !self.channel.starts_with("/meta/") && self.data.is_some()
    }

    /// What went wrong, in words: the `error`, and Salesforce's `ext.sfdc.failureReason`
    /// when it says more.
    pub(crate) fn reason(&self) -> String {
        let error = self.error.as_deref().unwrap_or("refused without an error");
        match self.failure_reason() {
            Some(reason) if reason != error => format!("{error} ({reason})"),
            _ => error.to_owned(),
        }
    }

    /// `ext.sfdc.failureReason`: Salesforce says `401::Authentication invalid` there when it
    /// denies a handshake for a bad token.
    fn failure_reason(&self) -> Option<&str> {
        self.ext
            .as_ref()?
            .get("sfdc")?
            .get("failureReason")?
            .as_str()
    }

    /// What a refusal asks of the client.
    pub(crate) fn refusal(&self) -> Refusal {
        let error = self.error.as_deref().unwrap_or_default();
        let reconnect = self.advice.as_ref().and_then(|a| a.reconnect.as_deref());
        let code = |text: &str, code: &str| text.starts_with(&format!("{code}:"));
        if code(error, "401") || self.failure_reason().is_some_and(|r| code(r, "401")) {
            return Refusal::Login;
        }
        if code(error, "400") && error.to_ascii_lowercase().contains("replayid") {
            return Refusal::ReplayIdInvalid;
        }
        match reconnect {
            Some("none") => Refusal::Final,
            Some("retry") => Refusal::Retry,
            Some("handshake") => Refusal::Handshake,
            _ if code(error, "403") => Refusal::Handshake,
            _ if self.channel == CONNECT => Refusal::Handshake,
            _ => Refusal::Final,
        }
    }
}

/// What a refused meta request asks of the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Log in again, then handshake (`401::Authentication invalid`).
    Login,
    /// Handshake and subscribe again (`403::Unknown client`, `advice.reconnect: handshake`).
    Handshake,
    /// Connect again with the same client (`advice.reconnect: retry`).
    Retry,
    /// The replay id asked for is invalid or no longer retained (the documented `400`).
    ReplayIdInvalid,
    /// Nothing will help (`advice.reconnect: none` without a 401, an unknown channel).
    Final,
}

#[cfg(test)]
mod tests;
