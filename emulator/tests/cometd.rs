//! The Streaming API over real HTTP: CometD handshake, subscribe with replay, long-poll
//! connects carrying change events made through the REST API, and the documented errors.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use sfpg_emulator::http::EmulatorConfig;

use common::cometd::{Bayeux, COMETD};
use common::{API, Harness};

fn quick() -> EmulatorConfig {
    EmulatorConfig {
        cometd_connect_timeout: Duration::from_millis(300),
        ..EmulatorConfig::default()
    }
}

#[tokio::test]
async fn a_rest_create_reaches_a_subscriber_as_a_change_event() {
    let h = Harness::with(quick()).await;
    let mut client = Bayeux::handshake(&h).await;
    assert!(client.cookie.is_some(), "the handshake sets BAYEUX_BROWSER");
    let reply = client.subscribe("/data/AccountChangeEvent", -1).await;
    assert_eq!(reply["successful"], true, "{reply}");
    let reply = client.subscribe("/data/ChangeEvents", -1).await;
    assert_eq!(reply["successful"], true, "{reply}");
    // The first connect answers at once.
    let (events, reply) = client.connect().await;
    assert!(events.is_empty());
    assert_eq!(reply["advice"]["timeout"], 300);

    let response = h
        .request(Method::POST, &format!("{API}/sobjects/Account"))
        .header("Sforce-Call-Options", "client=sfpg-test")
        .json(&json!({"Name": "Streamed", "BillingCity": "Paris", "Industry": null}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let id = response.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let events = client.events(2).await;
    let channels: Vec<&str> = events
        .iter()
        .map(|e| e["channel"].as_str().unwrap())
        .collect();
    assert!(
        channels.contains(&"/data/AccountChangeEvent") && channels.contains(&"/data/ChangeEvents")
    );
    let event = &events[0];
    let payload = &event["data"]["payload"];
    let header = &payload["ChangeEventHeader"];
    assert_eq!(header["entityName"], "Account");
    assert_eq!(header["changeType"], "CREATE");
    assert_eq!(header["recordIds"], json!([id]));
    assert_eq!(
        header["changeOrigin"],
        "com/salesforce/api/rest/62.0;client=sfpg-test"
    );
    assert_eq!(header["sequenceNumber"], 1);
    assert!(header["commitTimestamp"].as_i64().unwrap() > 1_600_000_000_000);
    assert!(header["transactionKey"].as_str().unwrap().len() == 36);
    assert!(header["commitUser"].as_str().unwrap().starts_with("005"));
    assert_eq!(payload["Name"], "Streamed");
    assert_eq!(payload["BillingAddress"]["City"], "Paris");
    assert!(
        payload.get("Industry").is_none(),
        "CREATE carries non-null fields only"
    );
    assert!(payload.get("SystemModstamp").is_none() && payload.get("IsDeleted").is_none());
    assert!(payload.get("Id").is_none());
    assert!(event["data"]["event"]["replayId"].as_i64().is_some());
    assert!(event["data"]["schema"].as_str().is_some());
}

fn short_lived() -> EmulatorConfig {
    EmulatorConfig {
        cometd_connect_timeout: Duration::from_millis(300),
        cometd_client_timeout: Duration::from_millis(400),
        ..EmulatorConfig::default()
    }
}

fn replay_of(event: &serde_json::Value) -> i64 {
    event["data"]["event"]["replayId"].as_i64().unwrap()
}

#[tokio::test]
async fn replay_minus_two_an_id_and_an_invalid_id() {
    let h = Harness::with(quick()).await;
    let first = h.create("Account", json!({"Name": "One"})).await;
    h.create("Account", json!({"Name": "Two"})).await;
    h.create("Contact", json!({"LastName": "Three"})).await;

    // -2: every retained event, in order.
    let mut all = Bayeux::handshake(&h).await;
    assert_eq!(
        all.subscribe("/data/ChangeEvents", -2).await["successful"],
        true
    );
    let events = all.events(3).await;
    assert_eq!(events.len(), 3);
    assert_eq!(
        events[0]["data"]["payload"]["ChangeEventHeader"]["recordIds"][0],
        first
    );
    let ids: Vec<i64> = events.iter().map(replay_of).collect();
    assert!(ids.windows(2).all(|w| w[1] > w[0]));

    // An id: what follows it; a per-entity channel filters.
    let mut after = Bayeux::handshake(&h).await;
    after.subscribe("/data/AccountChangeEvent", ids[0]).await;
    let (events, _) = after.connect().await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(replay_of(&events[0]), ids[1]);
    assert_eq!(events[0]["channel"], "/data/AccountChangeEvent");

    // An id never issued: the documented 400.
    let mut bad = Bayeux::handshake(&h).await;
    let future = ids[2] + 1_000;
    let reply = bad.subscribe("/data/ChangeEvents", future).await;
    assert_eq!(reply["successful"], false);
    assert_eq!(
        reply["error"],
        format!(
            "400::The replayId {{{future}}} you provided was invalid.  Please provide a valid ID, -2 to replay all events, or -1 to replay only new events."
        )
    );
    // Expired events: their ids become invalid too.
    h.emulator.event_bus().expire_all();
    let reply = bad.subscribe("/data/ChangeEvents", ids[0]).await;
    assert_eq!(reply["successful"], false, "{reply}");
    assert!(
        reply["error"]
            .as_str()
            .unwrap()
            .starts_with("400::The replayId")
    );
    // The newest id stays valid: nothing after it was lost.
    let reply = bad.subscribe("/data/ChangeEvents", ids[2]).await;
    assert_eq!(reply["successful"], true, "{reply}");

    // Unknown channels are refused; custom objects use Name__ChangeEvent.
    let reply = bad.subscribe("/data/NopeChangeEvent", -1).await;
    assert_eq!(reply["successful"], false);
    let reply = bad.subscribe("/data/Invoice__ChangeEvent", -1).await;
    assert_eq!(reply["successful"], true, "{reply}");
}

#[tokio::test]
async fn a_held_connect_returns_as_soon_as_an_event_is_published() {
    let h = Harness::with(EmulatorConfig {
        cometd_connect_timeout: Duration::from_secs(20),
        ..EmulatorConfig::default()
    })
    .await;
    let mut client = Bayeux::handshake(&h).await;
    client.subscribe("/data/ChangeEvents", -1).await;
    client.connect().await;
    let writer = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        h.create("Account", json!({"Name": "While waiting"})).await;
    };
    let started = std::time::Instant::now();
    let ((events, reply), ()) = tokio::join!(client.connect(), writer);
    let waited = started.elapsed();
    assert_eq!(reply["successful"], true);
    assert_eq!(events.len(), 1);
    assert!(
        waited >= Duration::from_millis(300),
        "held until the event: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(2),
        "returned with the event: {waited:?}"
    );
}

#[tokio::test]
async fn a_connect_with_nothing_to_say_returns_empty_at_the_timeout() {
    let h = Harness::with(quick()).await;
    let mut client = Bayeux::handshake(&h).await;
    client.subscribe("/data/ChangeEvents", -1).await;
    client.connect().await;
    let started = std::time::Instant::now();
    let (events, reply) = client.connect().await;
    assert!(events.is_empty());
    assert_eq!(reply["successful"], true);
    assert_eq!(reply["advice"]["reconnect"], "retry");
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn unknown_client_after_the_client_timeout_a_wrong_cookie_or_a_disconnect() {
    let h = Harness::with(short_lived()).await;
    let mut client = Bayeux::handshake(&h).await;
    client.subscribe("/data/ChangeEvents", -1).await;
    client.connect().await;
    // Connects within the timeout keep it alive.
    client.connect().await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (_, reply) = client.connect().await;
    assert_eq!(reply["successful"], false);
    assert_eq!(reply["error"], "403::Unknown client");
    assert_eq!(reply["advice"]["reconnect"], "handshake");

    let mut client = Bayeux::handshake(&h).await;
    client.cookie = Some("forged".to_owned());
    let (_, reply) = client.connect().await;
    assert_eq!(
        reply["error"], "403::Unknown client",
        "the cookie binds the client"
    );

    let mut client = Bayeux::handshake(&h).await;
    let (_, replies) = client
        .post(json!([{"channel": "/meta/disconnect", "clientId": client.client_id, "id": "9"}]))
        .await;
    assert_eq!(replies[0]["successful"], true);
    let (_, reply) = client.connect().await;
    assert_eq!(reply["error"], "403::Unknown client");
}

#[tokio::test]
async fn a_revoked_session_ends_a_held_connect_with_401_and_no_reconnect() {
    let h = Harness::with(EmulatorConfig {
        cometd_connect_timeout: Duration::from_secs(20),
        ..EmulatorConfig::default()
    })
    .await;
    let mut client = Bayeux::handshake(&h).await;
    client.subscribe("/data/ChangeEvents", -1).await;
    client.connect().await;
    let revoke = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        h.emulator.revoke_sessions(None, false);
    };
    let started = std::time::Instant::now();
    let ((_, reply), ()) = tokio::join!(client.connect(), revoke);
    assert_eq!(reply["successful"], false);
    assert_eq!(reply["error"], "401::Authentication invalid");
    assert_eq!(reply["advice"]["reconnect"], "none");
    assert!(started.elapsed() < Duration::from_secs(5));

    // Without any token at all: HTTP 401.
    let response = h
        .http
        .post(h.url(COMETD))
        .json(&json!([{"channel": "/meta/handshake", "version": "1.0"}]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body[0]["error"], "401::Request requires authentication");
}

#[tokio::test]
async fn bodies_over_32768_bytes_are_refused_with_413() {
    let h = Harness::with(quick()).await;
    let mut client = Bayeux::handshake(&h).await;
    let padding = "x".repeat(33_000);
    let (status, _) = client
        .post(json!([{"channel": "/meta/connect", "clientId": client.client_id, "ext": {"pad": padding}}]))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn the_admin_api_stalls_and_drops_connects() {
    let h = Harness::with(quick()).await;
    let mut client = Bayeux::handshake(&h).await;
    client.subscribe("/data/ChangeEvents", -1).await;
    client.connect().await;

    // Stalled: the connect outlives its 300 ms timeout and delivers nothing.
    let response = h
        .admin(Method::POST, "/cometd/stall")
        .json(&json!({"clientId": client.client_id}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap()["clients"],
        1
    );
    h.create("Account", json!({"Name": "Held back"})).await;
    let id = client.client_id.clone();
    let release = async {
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        h.emulator.stall_cometd(Some(&id), false);
    };
    let started = std::time::Instant::now();
    let ((events, reply), ()) = tokio::join!(client.connect(), release);
    assert!(
        started.elapsed() >= Duration::from_millis(1_500),
        "held while stalled"
    );
    assert_eq!(reply["successful"], true);
    assert_eq!(events.len(), 1, "delivered once released");

    // Dropped: the connection closes without an answer; the client lives on.
    assert_eq!(
        h.emulator.drop_cometd_connects(Some(&client.client_id), 1),
        1
    );
    let body = json!([{"channel": "/meta/connect", "clientId": client.client_id,
        "connectionType": "long-polling"}]);
    let dropped = h
        .http
        .post(h.url(COMETD))
        .bearer_auth(&h.token)
        .header(
            "Cookie",
            format!("BAYEUX_BROWSER={}", client.cookie.clone().unwrap()),
        )
        .json(&body)
        .send()
        .await;
    assert!(dropped.is_err(), "the connection is closed: {dropped:?}");
    let (_, reply) = client.connect().await;
    assert_eq!(reply["successful"], true);
}

#[tokio::test]
async fn the_admin_api_forgets_clients_and_a_held_connect_meets_403_at_once() {
    let h = Harness::with(EmulatorConfig {
        cometd_connect_timeout: Duration::from_secs(20),
        ..EmulatorConfig::default()
    })
    .await;
    let mut held = Bayeux::handshake(&h).await;
    held.subscribe("/data/ChangeEvents", -1).await;
    held.connect().await;
    let mut other = Bayeux::handshake(&h).await;
    other.subscribe("/data/ChangeEvents", -1).await;
    other.connect().await;

    let id = held.client_id.clone();
    let forget = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let response = h
            .admin(Method::POST, "/cometd/forget")
            .json(&json!({"clientId": id}))
            .send()
            .await
            .unwrap();
        response.json::<serde_json::Value>().await.unwrap()["clients"].clone()
    };
    let started = std::time::Instant::now();
    let ((_, reply), forgotten) = tokio::join!(held.connect(), forget);
    assert_eq!(forgotten, 1);
    assert_eq!(reply["successful"], false);
    assert_eq!(reply["error"], "403::Unknown client");
    assert_eq!(reply["advice"]["reconnect"], "handshake");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered at once"
    );
    // The other client lives on, until every client is forgotten.
    assert_eq!(h.emulator.cometd_clients(), [other.client_id.clone()]);
    assert_eq!(h.emulator.forget_cometd_clients(None), 1);
    let (_, reply) = other.connect().await;
    assert_eq!(reply["error"], "403::Unknown client");
}

#[tokio::test]
async fn events_older_than_the_retention_expire_and_their_ids_become_invalid() {
    let h = Harness::with(EmulatorConfig {
        event_retention: Duration::from_secs(1),
        ..quick()
    })
    .await;
    let before = h.emulator.event_bus().last_replay_id();
    h.create("Account", json!({"Name": "Short-lived"})).await;
    let mut client = Bayeux::handshake(&h).await;
    assert_eq!(
        client.subscribe("/data/ChangeEvents", before).await["successful"],
        true
    );
    assert_eq!(client.events(1).await.len(), 1);

    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let mut late = Bayeux::handshake(&h).await;
    let reply = late.subscribe("/data/ChangeEvents", before).await;
    assert_eq!(reply["successful"], false, "{reply}");
    assert!(
        reply["error"]
            .as_str()
            .unwrap()
            .starts_with("400::The replayId {")
    );
    // -2 now replays nothing.
    assert_eq!(
        late.subscribe("/data/ChangeEvents", -2).await["successful"],
        true
    );
    let (events, _) = late.connect().await;
    assert!(events.is_empty());
}

/// Salesforce's answer to a handshake with an invalid session, as jsforce's
/// `AuthFailureExtension` documents it from a real org (Spring '18 "CometD auth
/// validation"): `403::Handshake denied`, `ext.sfdc.failureReason`, `reconnect: none`.
#[tokio::test]
async fn a_handshake_with_an_invalid_session_is_denied_with_the_failure_reason() {
    let h = Harness::with(quick()).await;
    let mut client = Bayeux::handshake(&h).await;
    h.emulator.revoke_sessions(None, false);
    let (status, replies) = client
        .post(json!([{"channel": "/meta/handshake", "version": "1.0",
            "supportedConnectionTypes": ["long-polling"], "ext": {"replay": true}, "id": "7"}]))
        .await;
    assert_eq!(status, StatusCode::OK, "{replies}");
    let reply = &replies[0];
    assert_eq!(reply["channel"], "/meta/handshake");
    assert_eq!(reply["successful"], false);
    assert_eq!(reply["error"], "403::Handshake denied");
    assert_eq!(
        reply["ext"]["sfdc"]["failureReason"],
        "401::Authentication invalid"
    );
    assert_eq!(reply["advice"]["reconnect"], "none");
    assert_eq!(reply["id"], "7");
}

/// A change reaches a waiting subscriber in well under a second: 200 REST updates, each
/// timed from just before its PATCH to its event's arrival through a held connect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_a_held_connect_within_milliseconds() {
    let h = Harness::with(EmulatorConfig {
        cometd_connect_timeout: Duration::from_secs(20),
        ..EmulatorConfig::default()
    })
    .await;
    let id = h.create("Account", json!({"Name": "Timed"})).await;
    let mut client = Bayeux::handshake(&h).await;
    client.subscribe("/data/AccountChangeEvent", -1).await;
    client.connect().await;
    let mut lags = Vec::new();
    for i in 0..200 {
        let path = format!("{API}/sobjects/Account/{id}");
        let body = json!({"Phone": format!("{i}")});
        let started = std::time::Instant::now();
        let writer = h.send_json(Method::PATCH, &path, &body);
        let (response, events) = tokio::join!(writer, client.events(1));
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0]["data"]["payload"]["Phone"], format!("{i}"));
        lags.push(started.elapsed());
    }
    lags.sort();
    let (p50, p99) = (lags[100], lags[197]);
    println!("write-to-delivery over HTTP: p50 {p50:?}, p99 {p99:?}");
    assert!(p99 < Duration::from_millis(500), "p50 {p50:?}, p99 {p99:?}");
}

/// Two connects of one client waiting at once (a client that reconnects without waiting
/// for its previous connect) share the client's position: each event is delivered once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_connects_of_one_client_deliver_each_event_once() {
    let h = Harness::with(quick()).await;
    let mut first = Bayeux::handshake(&h).await;
    first.subscribe("/data/ChangeEvents", -1).await;
    first.connect().await;
    let mut second = Bayeux {
        harness: &h,
        client_id: first.client_id.clone(),
        cookie: first.cookie.clone(),
        token: first.token.clone(),
    };
    let writes = async {
        for i in 0..20 {
            h.create("Account", json!({"Name": format!("Once {i}")}))
                .await;
        }
    };
    let mut seen = Vec::new();
    let collect = async {
        let mut got = Vec::new();
        while got.len() < 20 {
            let ((a, _), (b, _)) = tokio::join!(first.connect(), second.connect());
            got.extend(a);
            got.extend(b);
        }
        got
    };
    let ((), got) = tokio::join!(writes, collect);
    seen.extend(got.iter().map(replay_of));
    let count = seen.len();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), count, "an event was delivered twice");
    assert_eq!(count, 20);
}
