//! What the platform event scenarios share: an emulated org with `Order_Event__e`
//! enabled, the real `sfpg sync` streaming it, the proxy in process, a session that
//! `LISTEN`s, and the event table read back.

// Each test crate that includes this module uses part of it.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Map, Value};
use sfpg_emulator::http::RunningEmulator;
use sfpg_testkit::TestDatabase;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, NoTls};

pub const TABLE: &str = "acme.order_event__e";

/// A session that `LISTEN`s on `channel`, and the notifications' payloads as they arrive,
/// each with the instant it was received.
pub async fn listen(
    db: &TestDatabase,
    channel: &str,
) -> (
    tokio_postgres::Client,
    mpsc::UnboundedReceiver<(String, Instant)>,
) {
    let (client, mut connection) = db.config().connect(NoTls).await.unwrap();
    let (sender, receiver) = mpsc::unbounded_channel();
    let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
    tokio::spawn(async move {
        while let Some(Ok(message)) = messages.next().await {
            if let AsyncMessage::Notification(n) = message {
                let _ = sender.send((n.payload().to_owned(), Instant::now()));
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN {channel}"))
        .await
        .unwrap();
    (client, receiver)
}

/// The next notification's payload, as JSON.
pub async fn next_notification(
    notifications: &mut mpsc::UnboundedReceiver<(String, Instant)>,
    within: Duration,
) -> Value {
    let (payload, _) = tokio::time::timeout(within, notifications.recv())
        .await
        .expect("no NOTIFY in time")
        .unwrap();
    serde_json::from_str(&payload).unwrap()
}

/// Waits until the sync has subscribed to `Order_Event__e`.
pub async fn wait_event_stream(client: &tokio_postgres::Client, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let state: Option<String> = client
            .query_opt(
                "SELECT state FROM sfpg.event_streams
                  WHERE org_name = 'acme' AND event_name = 'Order_Event__e'",
                &[],
            )
            .await
            .ok()
            .flatten()
            .map(|r| r.get(0));
        if state.as_deref() == Some("connected") {
            return;
        }
        assert!(Instant::now() < deadline, "no event stream: {state:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The event table's rows, by replay id: (replayid, eventuuid, sfid, order_number__c,
/// createdbyid, createddate is set).
pub async fn rows(
    client: &tokio_postgres::Client,
) -> Vec<(
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    bool,
)> {
    client
        .query(
            &format!(
                "SELECT replayid, eventuuid, sfid, order_number__c, createdbyid,
                        createddate IS NOT NULL
                   FROM {TABLE} ORDER BY replayid NULLS LAST, id"
            ),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
        .collect()
}

/// Publishes an `Order_Event__e` as another user of the org; its order number.
pub fn publish(emulator: &RunningEmulator, number: &str) {
    let mut fields = Map::new();
    fields.insert("Order_Number__c".into(), Value::from(number));
    fields.insert("Quantity__c".into(), Value::from(2));
    emulator.create_as("Order_Event__e", &fields, None).unwrap();
}

/// The events the org published on `Order_Event__e`: (replay id, uuid, order number).
pub fn published(emulator: &RunningEmulator) -> Vec<(i64, String, Value)> {
    emulator
        .platform_events()
        .after("Order_Event__e", 0, usize::MAX)
        .unwrap()
        .iter()
        .map(|e| {
            (
                e.replay_id,
                e.event_uuid.clone(),
                e.fields["Order_Number__c"].clone(),
            )
        })
        .collect()
}
