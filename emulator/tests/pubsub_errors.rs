//! The Pub/Sub API's errors over a real socket: replay ids out of the window, bad
//! requests, auth on every call, the admin API ending streams with an error code, refused
//! publishing, and the TLS port.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use apache_avro::types::Value as Avro;
use reqwest::Method;
use serde_json::{Value, json};
use sfpg_emulator::http::{EmulatorConfig, Transport};
use sfpg_pubsub_proto::{ProducerEvent, PublishRequest, ReplayPreset, TopicRequest};
use tonic::Code;

use common::Harness;
use common::pubsub::{PubSub, error_code, fetch, more};

const ACCOUNTS: &str = "/data/AccountChangeEvent";
const ALL: &str = "/data/ChangeEvents";

#[tokio::test]
async fn replay_ids_out_of_the_window_end_the_stream_with_the_documented_codes() {
    let h = Harness::new().await;
    common::seed_accounts(&h.emulator, "Expired", 2);
    let first = h.emulator.event_bus().last_replay_id() - 1;
    let expired: Value = h
        .admin(Method::POST, "/cdc/expire")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(expired["expired"], 2);
    let mut ps = PubSub::connect(&h).await;

    let mut sub = ps
        .subscribe(fetch(ACCOUNTS, ReplayPreset::Custom, Some(first), 10))
        .await
        .unwrap();
    let status = sub.error().await;
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        error_code(&status),
        "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted"
    );
    assert!(status.metadata().get("rpc-id").is_some());

    let mut short = fetch(ACCOUNTS, ReplayPreset::Custom, None, 10);
    short.replay_id = vec![1, 2, 3];
    let status = ps.subscribe(short).await.unwrap().error().await;
    assert_eq!(
        error_code(&status),
        "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted"
    );

    let status = ps
        .subscribe(fetch(ACCOUNTS, ReplayPreset::Custom, None, 10))
        .await
        .unwrap()
        .error()
        .await;
    assert_eq!(
        error_code(&status),
        "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.validation.failed"
    );
}

#[tokio::test]
async fn bad_requests_end_the_stream() {
    let h = Harness::new().await;
    let mut ps = PubSub::connect(&h).await;
    let status = ps
        .subscribe(fetch(ACCOUNTS, ReplayPreset::Latest, None, 0))
        .await
        .unwrap()
        .error()
        .await;
    assert_eq!(
        error_code(&status),
        "sfdc.platform.eventbus.grpc.subscription.fetch.requested.events.invalid"
    );

    let mut sub = ps
        .subscribe(fetch(ACCOUNTS, ReplayPreset::Latest, None, 1))
        .await
        .unwrap();
    let mut other = more(1);
    other.topic_name = "/data/ContactChangeEvent".to_owned();
    sub.requests.send(other).await.unwrap();
    let status = sub.error().await;
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        error_code(&status),
        "sfdc.platform.eventbus.grpc.subscription.fetch.topic.mismatch"
    );
}

#[tokio::test]
async fn every_call_checks_the_auth_metadata() {
    let h = Harness::new().await;
    let mut ps = PubSub::connect(&h).await;
    let topic = || TopicRequest {
        topic_name: ACCOUNTS.to_owned(),
    };

    ps.token = "00Dnot!a-session".to_owned();
    let denied = ps.client.get_topic(ps.request(topic())).await.unwrap_err();
    assert_eq!(denied.code(), Code::Unauthenticated);
    assert_eq!(
        error_code(&denied),
        "sfdc.platform.eventbus.grpc.service.auth.error"
    );
    let denied = ps
        .subscribe(fetch(ACCOUNTS, ReplayPreset::Latest, None, 1))
        .await
        .err()
        .unwrap();
    assert_eq!(denied.code(), Code::Unauthenticated);

    ps.token = h.token.clone();
    ps.tenant = "00D000000000001AAA".to_owned();
    let denied = ps.client.get_topic(ps.request(topic())).await.unwrap_err();
    assert_eq!(
        error_code(&denied),
        "sfdc.platform.eventbus.grpc.service.auth.error"
    );

    let bare = tonic::Request::new(topic());
    let denied = ps.client.get_topic(bare).await.unwrap_err();
    assert_eq!(denied.code(), Code::Unauthenticated);
    assert_eq!(
        error_code(&denied),
        "sfdc.platform.eventbus.grpc.service.auth.headers.invalid"
    );

    ps.tenant = h.emulator.org_id()[..15].to_owned();
    assert!(ps.client.get_topic(ps.request(topic())).await.is_ok());
}

#[tokio::test]
async fn the_admin_api_ends_open_streams_with_an_error_code() {
    let h = Harness::new().await;
    let mut ps = PubSub::connect(&h).await;
    let mut sub = ps
        .subscribe(fetch(ACCOUNTS, ReplayPreset::Latest, None, 1))
        .await
        .unwrap();
    // The stream registers once its first request is read.
    for _ in 0..50 {
        if !h.emulator.pubsub_streams().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ended: Value = h
        .admin(Method::POST, "/pubsub/end")
        .json(&json!({"status": "UNAUTHENTICATED",
            "errorCode": "sfdc.platform.eventbus.grpc.service.auth.error"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ended["ended"], 1);
    let status = sub.error().await;
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(
        error_code(&status),
        "sfdc.platform.eventbus.grpc.service.auth.error"
    );
}

#[tokio::test]
async fn change_event_topics_cannot_be_published_to() {
    let h = Harness::new().await;
    let mut ps = PubSub::connect(&h).await;
    let request = PublishRequest {
        topic_name: ACCOUNTS.to_owned(),
        events: vec![ProducerEvent {
            id: "1".to_owned(),
            schema_id: String::new(),
            payload: vec![0],
            headers: Vec::new(),
        }],
        auth_refresh: String::new(),
    };
    let refused = ps.client.publish(ps.request(request)).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn over_tls_with_the_rest_ports_certificate() {
    let emulator = sfpg_emulator::http::start(EmulatorConfig {
        transport: Transport::Https { cert_path: None },
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let pem = emulator.cert_pem().unwrap().to_owned();
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let token = common::password_login(&emulator, &http).await;
    let h = Harness {
        emulator,
        http,
        token,
    };
    let endpoint = h.emulator.pubsub_endpoint().to_owned();
    assert!(endpoint.starts_with("https://127.0.0.1:"), "{endpoint}");
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(&pem));
    let channel = tonic::transport::Channel::from_shared(endpoint)
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut ps = PubSub::with_client(
        &h,
        sfpg_pubsub_proto::pub_sub_client::PubSubClient::new(channel),
    );
    let info = ps
        .client
        .get_topic(ps.request(TopicRequest {
            topic_name: ALL.to_owned(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(info.can_subscribe);
    let mut sub = ps
        .subscribe(fetch(ACCOUNTS, ReplayPreset::Latest, None, 1))
        .await
        .unwrap();
    h.create("Account", json!({"Name": "Over TLS"})).await;
    let (events, _) = sub.events(1).await;
    assert_eq!(
        ps.decode(&events[0]).await["Name"],
        Avro::String("Over TLS".into())
    );
}
