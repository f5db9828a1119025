//! The apply path against a real PostgreSQL: partial updates with explicit nulls and
//! compound fields, create, delete and undelete, the replay id saved with the rows (and
//! events at or below it skipped), and a poll and an event of one record in every order.

use std::time::Duration;

use serde_json::{Value, json};
use sfpg_control::mapping::ColumnType;
use sfpg_control::mirror;
use sfpg_control::streams::Checkpoint;
use sfpg_control::writer::{self, OnLocked, Rows, Write, WriteStrategy};
use sfpg_salesforce::Record;
use sfpg_testkit::TestDatabase;

use super::*;
use crate::plan::{MirroredField, ObjectPlan};

const A: &str = "001000000000001AAA";
const B: &str = "001000000000002AAA";
/// 2024-03-01T12:00:00Z in milliseconds.
const NOON: i64 = 1_709_294_400_000;

fn plan() -> ObjectPlan {
    ObjectPlan {
        object: "Account".to_owned(),
        schema: "acme".to_owned(),
        table: "account".to_owned(),
        fields: vec![
            MirroredField::new("Id", ColumnType::Varchar(18)),
            MirroredField::new("SystemModstamp", ColumnType::TimestampTz),
            MirroredField::new("IsDeleted", ColumnType::Boolean),
            MirroredField::new("Name", ColumnType::Varchar(40)),
            MirroredField::new("BillingCity", ColumnType::Varchar(40)),
            MirroredField::new("Phone", ColumnType::Varchar(40)),
        ],
    }
}

async fn mirror_with_org(db: &TestDatabase) -> tokio_postgres::Client {
    let mut client = db.connect().await;
    sfpg_control::apply_control_schema(&mut client)
        .await
        .unwrap();
    client
        .batch_execute(
            "INSERT INTO sfpg.orgs (name, schema_name, auth_flow, login_url, api_version,
                                    client_id, sealed_credentials)
             VALUES ('acme', 'acme', 'client_credentials', 'https://login.example', '62.0',
                     'id', '\\x00')",
        )
        .await
        .unwrap();
    let plan = plan();
    mirror::create_schema(&client, &plan.schema).await.unwrap();
    mirror::create_table(&client, &plan.schema, &plan.table, &plan.columns())
        .await
        .unwrap();
    client
}

fn change(
    replay_id: i64,
    key: &str,
    kind: ChangeKind,
    ids: &[&str],
    at: i64,
    fields: Value,
) -> Change {
    Change {
        replay_id,
        entity: "Account".into(),
        record_ids: ids.iter().map(|id| (*id).to_owned()).collect(),
        kind,
        transaction_key: key.into(),
        sequence_number: 1,
        commit_timestamp: at,
        echo: false,
        fields: fields.as_object().cloned().unwrap_or_default(),
        name_parts_changed: false,
    }
}

fn one(change: Change) -> Vec<Transaction> {
    vec![Transaction {
        changes: vec![change],
    }]
}

async fn apply(client: &mut tokio_postgres::Client, batch: &[Transaction]) -> BatchApplied {
    apply_batch(
        client,
        None,
        "acme",
        &Plans::new([plan()]),
        batch,
        &["Account".to_owned()],
        Duration::from_secs(2),
    )
    .await
    .unwrap()
}

/// A poll's page of one record, written as the incremental step writes it.
async fn poll(client: &mut tokio_postgres::Client, stamp: &str, name: &str) {
    let plan = plan();
    let record: Record = json!({"Id": A, "SystemModstamp": stamp, "IsDeleted": false,
        "Name": name, "BillingCity": "Lyon", "Phone": "1"})
    .as_object()
    .cloned()
    .unwrap();
    let rows = Rows::from_records("Account", plan.fields.iter().collect(), &[record]).unwrap();
    let transaction = writer::begin(client, None).await.unwrap();
    writer::apply(
        &transaction,
        &plan,
        &[Write::Upsert(rows)],
        WriteStrategy::CopyMerge,
        OnLocked::Skip,
    )
    .await
    .unwrap();
    transaction.commit().await.unwrap();
}

async fn rows(client: &tokio_postgres::Client) -> Vec<Vec<Option<String>>> {
    client
        .query(
            "SELECT sfid, name, billingcity, phone, systemmodstamp::text, isdeleted::text
               FROM acme.account ORDER BY sfid",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (0..6).map(|i| r.get(i)).collect())
        .collect()
}

fn s(text: &str) -> Option<String> {
    Some(text.to_owned())
}

#[tokio::test]
async fn creates_updates_deletes_and_undeletes_reach_the_mirror_with_the_replay_id() {
    let db = TestDatabase::create().await;
    let mut client = mirror_with_org(&db).await;
    let create = change(
        10,
        "t1",
        ChangeKind::Create,
        &[A],
        NOON + 400,
        json!({"Name": "Acme", "BillingCity": "Paris", "Phone": "555"}),
    );
    let applied = apply(&mut client, &one(create.clone())).await;
    assert_eq!((applied.events, applied.saved), (1, Some(10)));
    // Only the fields the update names; an explicit null sets NULL.
    let update = change(
        14,
        "t2",
        ChangeKind::Update,
        &[A],
        NOON + 1_200,
        json!({"BillingCity": "Nice", "Phone": null}),
    );
    apply(&mut client, &one(update.clone())).await;
    assert_eq!(
        rows(&client).await,
        [vec![
            s(A),
            s("Acme"),
            s("Nice"),
            None,
            s("2024-03-01 12:00:01+00"),
            s("false")
        ]]
    );
    // Delivered again (a reconnect, a restart after the commit): skipped, not doubled.
    let again = apply(&mut client, &[one(create).remove(0), one(update).remove(0)]).await;
    assert_eq!((again.events, again.skipped, again.saved), (0, 2, None));
    assert_eq!(
        Checkpoint::load(&client, "acme").await.unwrap().replay_id,
        Some(14)
    );
    apply(
        &mut client,
        &one(change(
            20,
            "t3",
            ChangeKind::Delete,
            &[A],
            NOON + 2_000,
            json!({}),
        )),
    )
    .await;
    assert!(rows(&client).await.is_empty());
    // UNDELETE carries every non-null field and restores the row.
    apply(
        &mut client,
        &one(change(
            25,
            "t4",
            ChangeKind::Undelete,
            &[A],
            NOON + 3_000,
            json!({"Name": "Acme", "BillingCity": "Nice"}),
        )),
    )
    .await;
    assert_eq!(
        rows(&client).await,
        [vec![
            s(A),
            s("Acme"),
            s("Nice"),
            None,
            s("2024-03-01 12:00:03+00"),
            s("false")
        ]]
    );
    assert_eq!(
        Checkpoint::load(&client, "acme").await.unwrap().replay_id,
        Some(25)
    );
}

#[tokio::test]
async fn one_salesforce_transaction_is_one_postgres_transaction() {
    let db = TestDatabase::create().await;
    let mut client = mirror_with_org(&db).await;
    // The second event names a field the table cannot hold: the first must not stay.
    let mut first = change(
        10,
        "t1",
        ChangeKind::Create,
        &[A],
        NOON,
        json!({"Name": "ok"}),
    );
    first.sequence_number = 1;
    let mut second = change(
        11,
        "t1",
        ChangeKind::Create,
        &[B],
        NOON,
        json!({"Name": "x".repeat(41)}),
    );
    second.sequence_number = 2;
    let batch = [Transaction {
        changes: vec![first, second],
    }];
    let failed = apply_batch(
        &mut client,
        None,
        "acme",
        &Plans::new([plan()]),
        &batch,
        &["Account".to_owned()],
        Duration::from_secs(2),
    )
    .await;
    assert!(failed.is_err());
    assert!(rows(&client).await.is_empty());
    assert_eq!(
        Checkpoint::load(&client, "acme").await.unwrap().replay_id,
        None
    );
}

#[tokio::test]
async fn gaps_and_overflows_are_handed_back_and_counted() {
    let db = TestDatabase::create().await;
    let mut client = mirror_with_org(&db).await;
    let batch = [
        Transaction {
            changes: vec![change(3, "g", ChangeKind::Gap, &[A, B], NOON, json!({}))],
        },
        Transaction {
            changes: vec![change(4, "o", ChangeKind::Overflow, &[], NOON, json!({}))],
        },
    ];
    let applied = apply(&mut client, &batch).await;
    assert_eq!(applied.read_again.len(), 2);
    assert!(applied.overflowed.contains("Account"));
    assert_eq!(applied.saved, Some(4));
}

/// A poll of version 1 (stamped 12:00:00), an event of version 2 committed at 12:00:00.700,
/// a poll of version 2 (stamped 12:00:00, Salesforce's second resolution) and the event of
/// version 1 (committed at 12:00:00.300) in every order: version 2 stays once version 2's
/// event has been applied, and a poll of version 2 is never refused over version 1.
#[tokio::test]
async fn the_newest_version_wins_whatever_the_order_of_polls_and_events() {
    let db = TestDatabase::create().await;
    let mut client = mirror_with_org(&db).await;
    // Steps: 0 = poll v1, 1 = poll v2, 2 = event v1, 3 = event v2. Events arrive in replay
    // order (2 before 3); polls in any order around them.
    let orders: [[usize; 4]; 6] = [
        [0, 1, 2, 3],
        [0, 2, 1, 3],
        [0, 2, 3, 1],
        [2, 0, 3, 1],
        [2, 3, 0, 1],
        [1, 2, 0, 3],
    ];
    for order in orders {
        client
            .batch_execute("TRUNCATE acme.account; DELETE FROM sfpg.streams")
            .await
            .unwrap();
        for step in order {
            match step {
                0 => poll(&mut client, "2024-03-01T12:00:00.000+0000", "v1").await,
                1 => poll(&mut client, "2024-03-01T12:00:00.000+0000", "v2").await,
                2 => {
                    apply(
                        &mut client,
                        &one(change(
                            5,
                            "e1",
                            ChangeKind::Update,
                            &[A],
                            NOON + 300,
                            json!({"Name": "v1"}),
                        )),
                    )
                    .await;
                }
                _ => {
                    apply(
                        &mut client,
                        &one(change(
                            9,
                            "e2",
                            ChangeKind::Update,
                            &[A],
                            NOON + 700,
                            json!({"Name": "v2"}),
                        )),
                    )
                    .await;
                }
            }
        }
        let name = rows(&client).await.first().and_then(|r| r[1].clone());
        assert_eq!(name.as_deref(), Some("v2"), "order {order:?}");
    }
}

#[tokio::test]
async fn an_event_whose_commit_straddled_a_second_keeps_the_orgs_stamp() {
    let db = TestDatabase::create().await;
    let mut client = mirror_with_org(&db).await;
    // The org: DML at 12:00:00 (SystemModstamp and LastModifiedDate), commit at 12:00:01.400.
    let event = || {
        one(change(
            5,
            "e1",
            ChangeKind::Update,
            &[A],
            NOON + 1_400,
            json!({"Name": "v2", "LastModifiedDate": "2024-03-01T12:00:00.000Z"}),
        ))
    };
    for event_first in [true, false] {
        client
            .batch_execute("TRUNCATE acme.account; DELETE FROM sfpg.streams")
            .await
            .unwrap();
        poll(&mut client, "2024-03-01T11:59:00.000+0000", "v1").await;
        if event_first {
            apply(&mut client, &event()).await;
            poll(&mut client, "2024-03-01T12:00:00.000+0000", "v2").await;
        } else {
            poll(&mut client, "2024-03-01T12:00:00.000+0000", "v2").await;
            apply(&mut client, &event()).await;
        }
        let row = rows(&client).await.remove(0);
        assert_eq!(row[1].as_deref(), Some("v2"), "event first: {event_first}");
        assert_eq!(
            row[4].as_deref(),
            Some("2024-03-01 12:00:00+00"),
            "event first: {event_first}"
        );
    }
}

use super::session;
use crate::settings::SyncSettings;
use sfpg_salesforce::streaming::{
    ALL_CHANGE_EVENTS, ChangeEvent, ChangeEventHeader, ChangeType, EventTransport, ReplayFrom,
    ReplayId, StreamItem, Subscription,
};

/// A subscription that hands out a fixed list of items at once, then ends.
struct Scripted(std::collections::VecDeque<sfpg_salesforce::Result<StreamItem>>);

impl Subscription for Scripted {
    fn channel(&self) -> &str {
        ALL_CHANGE_EVENTS
    }

    fn next(&mut self) -> futures::future::BoxFuture<'_, sfpg_salesforce::Result<StreamItem>> {
        let item = self.0.pop_front().unwrap_or_else(|| {
            Err(sfpg_salesforce::Error::SubscriptionEnded {
                channel: ALL_CHANGE_EVENTS.into(),
                detail: "scripted".into(),
            })
        });
        Box::pin(async move { item })
    }

    fn resume_after(&mut self, _replay_id: ReplayId) {}

    fn close(&mut self) -> futures::future::BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

struct ScriptedTransport(std::sync::Mutex<Option<Scripted>>);

impl EventTransport for ScriptedTransport {
    fn subscribe(&self, _channel: &str, _from: ReplayFrom) -> Box<dyn Subscription> {
        let script = self.0.lock().unwrap().take().unwrap();
        Box::new(script)
    }
}

fn event(replay_id: i64, key: &str) -> ChangeEvent {
    ChangeEvent {
        replay_id: ReplayId(replay_id),
        channel: ALL_CHANGE_EVENTS.into(),
        schema: None,
        header: ChangeEventHeader {
            entity_name: "Account".into(),
            record_ids: vec!["001000000000001AAA".into()],
            change_type: ChangeType::Create,
            changed_fields: Vec::new(),
            nulled_fields: Vec::new(),
            diff_fields: Vec::new(),
            change_origin: String::new(),
            transaction_key: key.into(),
            sequence_number: 1,
            commit_timestamp: NOON,
            commit_number: 1,
            commit_user: "005000000000001AAA".into(),
        },
        fields: json!({"Name": "Acme"}).as_object().cloned().unwrap(),
    }
}

/// An item that arrives right behind an event (here the refusal of the replay id) is not
/// lost while the session takes the events already waiting: it ends the session as what
/// it is, so the invalid-replay recovery runs.
#[tokio::test(flavor = "current_thread")]
async fn an_item_behind_an_event_is_not_dropped_while_events_are_batched() {
    let db = TestDatabase::create().await;
    let client = mirror_with_org(&db).await;
    let script = Scripted(
        [
            Ok(StreamItem::Event(Box::new(event(10, "t1")))),
            Err(sfpg_salesforce::Error::ReplayIdInvalid {
                channel: ALL_CHANGE_EVENTS.into(),
                replay_id: 5,
                message: "400::The replayId {5} you provided was invalid.".into(),
            }),
        ]
        .into(),
    );
    let transport = ScriptedTransport(std::sync::Mutex::new(Some(script)));
    let salesforce = sfpg_salesforce::Client::new(
        sfpg_salesforce::Config::new("https://login.example.com").unwrap(),
        sfpg_salesforce::ClientCredentials::new("id", "secret"),
        sfpg_salesforce::RateLimiter::new(sfpg_salesforce::Rate::per_second(10).unwrap()),
    )
    .unwrap();
    let health = StreamHealth::default();
    let settings = SyncSettings::default();
    let mut database = crate::db::Database::from(client);
    let session = session::Session {
        org: "acme",
        db: &mut database,
        fence: None,
        client: &salesforce,
        health: &health,
        settings: &settings,
        plans: Plans::new([plan()]),
        streamed: vec!["Account".into()],
        joining: Vec::new(),
        echo_client: "sfpg".into(),
    };
    let cancel = tokio_util::sync::CancellationToken::new();
    let (_reload, mut reloads) = tokio::sync::watch::channel(0);
    let ended = tokio::time::timeout(
        Duration::from_secs(20),
        session.run(
            &transport,
            ReplayFrom::After(ReplayId(5)),
            None,
            &cancel,
            &mut reloads,
        ),
    )
    .await
    .expect("the session ended")
    .unwrap();
    assert!(matches!(ended, Ended::ReplayInvalid(_)), "{ended:?}");
}

mod batching;
