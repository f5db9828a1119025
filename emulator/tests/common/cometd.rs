//! A minimal CometD long-polling client for the Streaming API tests: it keeps the
//! `BAYEUX_BROWSER` cookie by hand, so tests can also drop or forge it.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::Harness;

pub const COMETD: &str = "/cometd/62.0";

/// One CometD client of a [`Harness`].
pub struct Bayeux<'h> {
    pub harness: &'h Harness,
    pub client_id: String,
    pub cookie: Option<String>,
    pub token: String,
}

impl<'h> Bayeux<'h> {
    /// Handshakes (announcing the replay extension) and keeps the client id and cookie.
    pub async fn handshake(harness: &'h Harness) -> Bayeux<'h> {
        let mut client = Bayeux {
            harness,
            client_id: String::new(),
            cookie: None,
            token: harness.token.clone(),
        };
        let (status, replies) = client
            .post(json!([{"channel": "/meta/handshake", "version": "1.0",
                "supportedConnectionTypes": ["long-polling"], "ext": {"replay": true}, "id": "1"}]))
            .await;
        assert_eq!(status, StatusCode::OK, "{replies}");
        assert_eq!(replies[0]["successful"], true, "{replies}");
        client.client_id = replies[0]["clientId"].as_str().unwrap().to_owned();
        client
    }

    /// Posts `body` to the CometD endpoint; returns the status and the JSON reply,
    /// keeping any cookie set.
    pub async fn post(&mut self, body: Value) -> (StatusCode, Value) {
        let mut request = self
            .harness
            .http
            .post(self.harness.url(COMETD))
            .bearer_auth(&self.token)
            .json(&body);
        if let Some(cookie) = &self.cookie {
            request = request.header("Cookie", format!("BAYEUX_BROWSER={cookie}"));
        }
        let response = request.send().await.expect("CometD POST");
        let status = response.status();
        if let Some(set) = response.headers().get("set-cookie") {
            let text = set.to_str().unwrap();
            let value = text.split(';').next().unwrap();
            if let Some(v) = value.strip_prefix("BAYEUX_BROWSER=") {
                self.cookie = Some(v.to_owned());
            }
        }
        let text = response.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Subscribes to `channel` from `replay` (-1, -2 or an id); returns the reply.
    pub async fn subscribe(&mut self, channel: &str, replay: i64) -> Value {
        let body = json!([{"channel": "/meta/subscribe", "clientId": self.client_id,
            "subscription": channel, "ext": {"replay": {channel: replay}}, "id": "2"}]);
        let (status, replies) = self.post(body).await;
        assert_eq!(status, StatusCode::OK, "{replies}");
        replies[0].clone()
    }

    /// One `/meta/connect`: the event messages it returned, and its own reply.
    pub async fn connect(&mut self) -> (Vec<Value>, Value) {
        let body = json!([{"channel": "/meta/connect", "clientId": self.client_id,
            "connectionType": "long-polling", "id": "3"}]);
        let (status, replies) = self.post(body).await;
        assert_eq!(status, StatusCode::OK, "{replies}");
        let mut all = replies.as_array().cloned().unwrap_or_default();
        let reply = all.pop().expect("a connect reply");
        assert_eq!(reply["channel"], "/meta/connect", "{replies}");
        (all, reply)
    }

    /// Connects until at least `n` events came (each connect returns what is there).
    pub async fn events(&mut self, n: usize) -> Vec<Value> {
        let mut events = Vec::new();
        while events.len() < n {
            let (more, reply) = self.connect().await;
            assert_eq!(reply["successful"], true, "{reply}");
            events.extend(more);
        }
        events
    }
}
