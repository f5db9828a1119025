//! Bayeux messages built and read as Salesforce's CometD server documents them.

use serde_json::json;

use super::*;

#[test]
fn requests_carry_the_replay_extension() {
    let handshake = handshake(1);
    assert_eq!(handshake[0]["channel"], "/meta/handshake");
    assert_eq!(handshake[0]["version"], "1.0");
    assert_eq!(
        handshake[0]["supportedConnectionTypes"],
        json!(["long-polling"])
    );
    assert_eq!(handshake[0]["ext"], json!({"replay": true}));
    assert_eq!(handshake[0]["id"], "1");

    let subscribe = subscribe(2, "abc", "/data/ChangeEvents", -2);
    assert_eq!(subscribe[0]["channel"], "/meta/subscribe");
    assert_eq!(subscribe[0]["clientId"], "abc");
    assert_eq!(subscribe[0]["subscription"], "/data/ChangeEvents");
    assert_eq!(
        subscribe[0]["ext"],
        json!({"replay": {"/data/ChangeEvents": -2}})
    );

    let connect = connect(3, "abc");
    assert_eq!(connect[0]["channel"], "/meta/connect");
    assert_eq!(connect[0]["connectionType"], "long-polling");
    assert_eq!(connect[0]["clientId"], "abc");

    let disconnect = disconnect(4, "abc");
    assert_eq!(
        disconnect,
        json!([{"channel": "/meta/disconnect", "clientId": "abc", "id": "4"}])
    );
}

#[test]
fn an_answer_with_events_and_the_connect_reply() {
    let body = br#"[
        {"channel":"/data/ChangeEvents","data":{"schema":"s","payload":{},"event":{"replayId":5}}},
        {"clientId":"abc","channel":"/meta/connect","id":"3","successful":true,
         "advice":{"reconnect":"retry","interval":0,"timeout":110000}}
    ]"#;
    let messages = parse(body).unwrap();
    assert_eq!(messages.len(), 2);
    assert!(messages[0].is_event());
    assert!(!messages[1].is_event());
    assert!(messages[1].succeeded());
    assert_eq!(
        messages[1].advice,
        Some(Advice {
            reconnect: Some("retry".to_owned()),
            interval: Some(0),
            timeout: Some(110_000),
        })
    );
}

#[test]
fn a_lone_message_is_read_too() {
    let messages =
        parse(br#"{"channel":"/meta/handshake","successful":true,"clientId":"x"}"#).unwrap();
    assert_eq!(messages[0].client_id.as_deref(), Some("x"));
    assert!(parse(b"<html>").is_err());
}

fn refused(message: serde_json::Value) -> Refusal {
    serde_json::from_value::<Message>(message)
        .unwrap()
        .refusal()
}

#[test]
fn what_each_documented_refusal_asks_for() {
    assert_eq!(
        refused(json!({"channel": "/meta/connect", "successful": false,
            "error": "403::Unknown client", "advice": {"reconnect": "handshake"}})),
        Refusal::Handshake
    );
    assert_eq!(
        refused(json!({"channel": "/meta/connect", "successful": false,
            "error": "403::Unknown client"})),
        Refusal::Handshake,
        "a 403 without advice still asks for a handshake"
    );
    assert_eq!(
        refused(json!({"channel": "/meta/connect", "successful": false,
            "error": "401::Authentication invalid", "advice": {"reconnect": "none"}})),
        Refusal::Login,
        "reconnect none with a 401 is a login, not the end"
    );
    assert_eq!(
        refused(json!({"channel": "/meta/handshake", "successful": false,
            "error": "403::Handshake denied", "advice": {"reconnect": "none"},
            "ext": {"sfdc": {"failureReason": "401::Authentication invalid"}, "replay": true}})),
        Refusal::Login
    );
    assert_eq!(
        refused(json!({"channel": "/meta/subscribe", "successful": false,
            "error": "400::The replayId {42} you provided was invalid.  Please provide a valid ID, -2 to replay all events, or -1 to replay only new events."})),
        Refusal::ReplayIdInvalid
    );
    assert_eq!(
        refused(json!({"channel": "/meta/connect", "successful": false,
            "error": "402::Unknown", "advice": {"reconnect": "retry", "interval": 500}})),
        Refusal::Retry
    );
    assert_eq!(
        refused(json!({"channel": "/meta/subscribe", "successful": false,
            "error": "400::The channel you requested to subscribe to does not exist {/data/Nope}"})),
        Refusal::Final
    );
    assert_eq!(
        refused(json!({"channel": "/meta/connect", "successful": false,
            "error": "500::internal", "advice": {"reconnect": "none"}})),
        Refusal::Final
    );
}

#[test]
fn the_reason_names_salesforce_s_failure_reason() {
    let message: Message = serde_json::from_value(json!({"channel": "/meta/handshake",
        "successful": false, "error": "403::Handshake denied",
        "ext": {"sfdc": {"failureReason": "401::Authentication invalid"}}}))
    .unwrap();
    assert_eq!(
        message.reason(),
        "403::Handshake denied (401::Authentication invalid)"
    );
}
