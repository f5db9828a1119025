//! Event tables: names, payloads, and what the sync and the proxy's write-back do to a
//! table, in every order the bus and the proxy's commit can come in.

use super::*;

#[test]
fn platform_events_are_named_by_their_suffix() {
    assert!(is_platform_event("Order_Event__e"));
    assert!(is_platform_event("order_event__E"));
    assert!(!is_platform_event("Invoice__c"));
    assert!(!is_platform_event("__e"));
}

#[test]
fn the_payload_names_the_row() {
    let event = DeliveredEvent {
        replay_id: 42,
        event_uuid: Some("u".into()),
        created_date: "2024-01-01T00:00:00.000Z".into(),
        created_by_id: "005".into(),
        values: Map::new(),
    };
    let payload: Value = serde_json::from_str(&event.notify_payload()).unwrap();
    assert_eq!(payload, json!({"replayid": 42, "eventuuid": "u"}));
}

use std::time::Duration;

use sfpg_testkit::TestDatabase;
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

use crate::capture::{CURRENT_TXID_SQL, PUSH_TICKET_SQL, TAKE_PENDING_SQL};
use crate::mapping::ColumnType;

const UUID: &str = "2ec0e371-1395-457f-9275-be1b527a72f7";
const EVENT_ID: &str = "e018d0000000001AAA";

/// A migrated control schema with org `acme` and its event table `acme.order_event__e`,
/// created before anything else made the schema `acme`.
async fn event_table() -> (TestDatabase, Client) {
    let db = TestDatabase::create().await;
    let mut client = db.connect().await;
    crate::apply_control_schema(&mut client).await.unwrap();
    client
        .batch_execute(
            "INSERT INTO sfpg.orgs (name, schema_name, auth_flow, login_url, api_version, client_id,
                                     sealed_credentials)
             VALUES ('acme', 'acme', 'client_credentials', 'https://login.example', '62.0', 'id',
                     '\\x00');",
        )
        .await
        .unwrap();
    let columns = [Column {
        name: "order_number__c".into(),
        column_type: ColumnType::Varchar(10),
    }];
    create_event_table(&client, "acme", "order_event__e", &columns)
        .await
        .unwrap();
    (db, client)
}

fn delivered(replay_id: i64) -> DeliveredEvent {
    let mut values = Map::new();
    values.insert("order_number__c".into(), json!("OUT"));
    DeliveredEvent {
        replay_id,
        event_uuid: Some(UUID.into()),
        created_date: "2026-01-02T03:04:05.678Z".into(),
        created_by_id: "0058d0000000001AAA".into(),
        values,
    }
}

const COLUMNS: [&str; 5] = [
    "replayid",
    "eventuuid",
    "createddate",
    "createdbyid",
    "order_number__c",
];

/// The sync's insert of `event`, committed.
async fn deliver(db: &TestDatabase, event: &DeliveredEvent) -> Applied {
    let mut sync = db.connect().await;
    let transaction = sync.transaction().await.unwrap();
    let columns: Vec<String> = COLUMNS.iter().map(|c| (*c).to_owned()).collect();
    let applied = apply_delivered(
        &transaction,
        "acme",
        "Order_Event__e",
        ("acme", "order_event__e"),
        &columns,
        std::slice::from_ref(event),
    )
    .await
    .unwrap();
    transaction.commit().await.unwrap();
    applied
}

/// A proxy session's transaction that inserted the event's row: its local id and ticket,
/// its captured change taken (as the push takes it).
async fn proxy_insert(db: &TestDatabase) -> (Client, i64, String) {
    let proxy = db.connect().await;
    proxy
        .batch_execute("SET sfpg.origin = 'proxy'; BEGIN")
        .await
        .unwrap();
    let id: i64 = proxy
        .query_one(
            "INSERT INTO acme.order_event__e (order_number__c) VALUES ('OUT') RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let txid: String = proxy.query_one(CURRENT_TXID_SQL, &[]).await.unwrap().get(0);
    let owner = db.connect().await;
    let ticket: String = owner
        .query_one(PUSH_TICKET_SQL, &[&txid])
        .await
        .unwrap()
        .get(0);
    proxy.query_one(TAKE_PENDING_SQL, &[&ticket]).await.unwrap();
    (proxy, id, ticket)
}

fn write_back_rows(id: i64) -> String {
    json!([{"id": id, "sfid": EVENT_ID, "eventuuid": UUID}]).to_string()
}

/// The table's rows: (id, sfid, replayid, eventuuid, order number).
async fn table(
    client: &Client,
) -> Vec<(
    i64,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<String>,
)> {
    client
        .query(
            "SELECT id, sfid, replayid, eventuuid, order_number__c FROM acme.order_event__e ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect()
}

/// The usual order: the proxy commits its row with the publish's Id and UUID, then the bus
/// delivers the event, which fills that row in.
#[tokio::test]
async fn the_delivered_event_fills_the_row_the_proxy_committed() {
    let (db, client) = event_table().await;
    let (proxy, id, ticket) = proxy_insert(&db).await;
    proxy
        .query_one(
            EVENT_WRITE_BACK_SQL,
            &[&ticket, &"acme", &"order_event__e", &write_back_rows(id)],
        )
        .await
        .unwrap();
    proxy.batch_execute("COMMIT").await.unwrap();
    let applied = deliver(&db, &delivered(7)).await;
    assert_eq!(applied.inserted, 1);
    assert_eq!(
        table(&client).await,
        [(
            id,
            Some(EVENT_ID.into()),
            Some(7),
            Some(UUID.into()),
            Some("OUT".into())
        )]
    );
    // Delivered again (a reconnect): at or below the checkpoint, skipped.
    assert_eq!(deliver(&db, &delivered(7)).await.skipped, 1);
    assert_eq!(table(&client).await.len(), 1);
}

/// The bus first: the sync committed the delivered event before the proxy's write-back;
/// the proxy's row takes it over, and one row is left, the proxy's.
#[tokio::test]
async fn the_proxy_row_takes_over_an_event_the_bus_delivered_first() {
    let (db, client) = event_table().await;
    let (proxy, id, ticket) = proxy_insert(&db).await;
    deliver(&db, &delivered(9)).await;
    proxy
        .query_one(
            EVENT_WRITE_BACK_SQL,
            &[&ticket, &"acme", &"order_event__e", &write_back_rows(id)],
        )
        .await
        .unwrap();
    proxy.batch_execute("COMMIT").await.unwrap();
    assert_eq!(
        table(&client).await,
        [(
            id,
            Some(EVENT_ID.into()),
            Some(9),
            Some(UUID.into()),
            Some("OUT".into())
        )]
    );
}

/// The bus and the proxy at once: the sync's insert is not yet committed when the
/// write-back runs; the write-back waits for it, then takes it over.
#[tokio::test]
async fn a_write_back_waits_for_a_delivery_in_flight_and_takes_it_over() {
    let (db, client) = event_table().await;
    let (proxy, id, ticket) = proxy_insert(&db).await;
    let mut sync = db.connect().await;
    let transaction = sync.transaction().await.unwrap();
    let columns: Vec<String> = COLUMNS.iter().map(|c| (*c).to_owned()).collect();
    apply_delivered(
        &transaction,
        "acme",
        "Order_Event__e",
        ("acme", "order_event__e"),
        &columns,
        &[delivered(11)],
    )
    .await
    .unwrap();
    let rows = write_back_rows(id);
    let write_back = tokio::spawn(async move {
        proxy
            .query_one(
                EVENT_WRITE_BACK_SQL,
                &[&ticket, &"acme", &"order_event__e", &rows],
            )
            .await
            .map(|_| proxy)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !write_back.is_finished(),
        "the write-back waits for the delivery"
    );
    transaction.commit().await.unwrap();
    let proxy = write_back.await.unwrap().unwrap();
    proxy.batch_execute("COMMIT").await.unwrap();
    assert_eq!(
        table(&client).await,
        [(
            id,
            Some(EVENT_ID.into()),
            Some(11),
            Some(UUID.into()),
            Some("OUT".into())
        )]
    );
}

/// Rows cannot be changed or deleted but by the sync (retention), which deletes by date.
#[tokio::test]
async fn rows_are_immutable_and_the_retention_deletes_by_date() {
    let (db, client) = event_table().await;
    deliver(&db, &delivered(3)).await;
    for sql in [
        "UPDATE acme.order_event__e SET order_number__c = 'X'",
        "DELETE FROM acme.order_event__e",
    ] {
        let error = client.batch_execute(sql).await.unwrap_err();
        assert_eq!(
            error.code(),
            Some(&SqlState::FEATURE_NOT_SUPPORTED),
            "{sql}"
        );
    }
    // A forged sync origin passes the first trigger, never the capture trigger.
    let forged = client
        .batch_execute(
            "BEGIN; SET LOCAL sfpg.origin = 'sync:guess'; DELETE FROM acme.order_event__e",
        )
        .await
        .unwrap_err();
    assert_eq!(forged.code(), Some(&SqlState::READ_ONLY_SQL_TRANSACTION));
    client.batch_execute("ROLLBACK").await.unwrap();
    let cutoff = chrono::DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
        .unwrap()
        .with_timezone(&Utc);
    let mut owner = db.connect().await;
    let transaction = owner.transaction().await.unwrap();
    assert_eq!(
        delete_older_than(&transaction, "acme", "order_event__e", cutoff)
            .await
            .unwrap(),
        0
    );
    let later = cutoff + chrono::Duration::seconds(1);
    assert_eq!(
        delete_older_than(&transaction, "acme", "order_event__e", later)
            .await
            .unwrap(),
        1
    );
    transaction.commit().await.unwrap();
    assert!(table(&client).await.is_empty());
}
