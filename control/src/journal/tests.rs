//! The journal against a real PostgreSQL: what the proxy writes is what the repair reads.

use chrono::TimeDelta;
use serde_json::json;
use sfpg_testkit::TestDatabase;

use super::*;

fn entry(outcome: Outcome) -> JournalEntry {
    let fields = match json!({"attributes": {"type": "Account"}, "Name": "Acme"}) {
        Value::Object(map) => map,
        _ => unreachable!(),
    };
    JournalEntry {
        org: "acme".to_owned(),
        session: "127.0.0.1:5000".to_owned(),
        txid: None,
        records: vec![JournalRecord {
            operation: Operation::Create,
            object: "Account".to_owned(),
            schema: "acme".to_owned(),
            table: "account".to_owned(),
            row_id: 7,
            sfid: Some("001000000000001AAA".to_owned()),
            provisional: Some("~00000000000000001".to_owned()),
            fields,
        }],
        response: json!({"compositeResponse": []}),
        outcome,
        started_at: Utc::now(),
        salesforce_ms: 12,
    }
}

#[tokio::test]
async fn entries_are_read_back_as_written_and_settled() {
    let db = TestDatabase::create().await;
    let mut client = db.connect().await;
    crate::apply_control_schema(&mut client).await.unwrap();
    let pushed = record(&client, &entry(Outcome::Pushed)).await.unwrap();
    record(&client, &entry(Outcome::Refused)).await.unwrap();
    let unknown = record(&client, &entry(Outcome::Unknown)).await.unwrap();

    // Refused pushes wrote nothing anywhere: nothing to settle.
    let due_now = due(&client).await.unwrap();
    let ids: Vec<i64> = due_now.iter().map(|e| e.id).collect();
    assert_eq!(ids, [pushed, unknown]);
    let first = &due_now[0];
    assert_eq!(first.outcome, Outcome::Pushed);
    assert_eq!(first.records, entry(Outcome::Pushed).records);
    assert_eq!(first.transaction, None);
    assert!(due_now[1].outcome.is_uncertain());
    assert!(
        next_check(&client).await.unwrap().is_some(),
        "an entry of unknown outcome is due"
    );

    resolve(&client, pushed, Resolution::Repaired)
        .await
        .unwrap();
    let later = Utc::now() + TimeDelta::seconds(60);
    schedule_check(&client, unknown, later).await.unwrap();
    assert!(due(&client).await.unwrap().is_empty());
    let next = next_check(&client).await.unwrap().unwrap();
    assert!(
        (next - later).num_milliseconds().abs() < 1,
        "{next} {later}"
    );
    let (resolution, checks): (Option<String>, i32) = {
        let row = client
            .query_one(
                "SELECT (SELECT resolution FROM sfpg.write_journal WHERE id = $1),
                        (SELECT checks FROM sfpg.write_journal WHERE id = $2)",
                &[&pushed, &unknown],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!(resolution.as_deref(), Some("repaired"));
    assert_eq!(checks, 1);
}

/// The stored form of a record: the keys the repair reads, whatever the Rust names.
#[test]
fn records_keep_their_keys() {
    let stored = serde_json::to_value(&entry(Outcome::Pushed).records[0]).unwrap();
    assert_eq!(stored["operation"], json!("create"));
    assert_eq!(stored["sfid"], json!("001000000000001AAA"));
    assert_eq!(stored["provisional"], json!("~00000000000000001"));
    assert_eq!(stored["fields"]["Name"], json!("Acme"));
    let old: JournalRecord = serde_json::from_value(json!({
        "operation": "update", "object": "Account", "schema": "acme", "table": "account",
        "row_id": 1, "sfid": "001000000000001AAA", "fields": {}
    }))
    .unwrap();
    assert_eq!(old.provisional, None);
}

#[tokio::test]
async fn entries_pending_repair_are_the_uncertain_and_the_uncommitted() {
    let db = TestDatabase::create().await;
    let mut client = db.connect().await;
    crate::apply_control_schema(&mut client).await.unwrap();
    assert_eq!(pending_repair(&client).await.unwrap(), 0);
    // A transaction that committed: its push needs nothing more.
    let committed: String = client
        .query_one("SELECT pg_current_xact_id()::text", &[])
        .await
        .unwrap()
        .get(0);
    let mut settled = entry(Outcome::Pushed);
    settled.txid = Some(committed);
    record(&client, &settled).await.unwrap();
    record(&client, &entry(Outcome::Refused)).await.unwrap();
    assert_eq!(pending_repair(&client).await.unwrap(), 0);

    let uncommitted = record(&client, &entry(Outcome::Pushed)).await.unwrap();
    let unknown = record(&client, &entry(Outcome::Unknown)).await.unwrap();
    record(&client, &entry(Outcome::Abandoned)).await.unwrap();
    assert_eq!(pending_repair(&client).await.unwrap(), 3);
    resolve(&client, uncommitted, Resolution::Repaired)
        .await
        .unwrap();
    resolve(&client, unknown, Resolution::Repaired)
        .await
        .unwrap();
    assert_eq!(pending_repair(&client).await.unwrap(), 1);
}

#[tokio::test]
async fn one_repair_at_a_time_claims_an_entry() {
    let db = TestDatabase::create().await;
    let mut first = db.connect().await;
    crate::apply_control_schema(&mut first).await.unwrap();
    let mut second = db.connect().await;
    let pushed = record(&first, &entry(Outcome::Pushed)).await.unwrap();

    let repairing = first.transaction().await.unwrap();
    assert!(claim(&repairing, pushed).await.unwrap());
    // Another proxy passes it by, without waiting.
    let other = second.transaction().await.unwrap();
    let started = std::time::Instant::now();
    assert!(!claim(&other, pushed).await.unwrap());
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    other.rollback().await.unwrap();

    resolve(&repairing, pushed, Resolution::Repaired)
        .await
        .unwrap();
    repairing.commit().await.unwrap();
    // Settled: no one claims it again.
    let later = second.transaction().await.unwrap();
    assert!(!claim(&later, pushed).await.unwrap());
    later.rollback().await.unwrap();

    // A repair that fails (its transaction rolls back, or its proxy dies) frees it.
    let unknown = record(&first, &entry(Outcome::Unknown)).await.unwrap();
    let failing = first.transaction().await.unwrap();
    assert!(claim(&failing, unknown).await.unwrap());
    failing.rollback().await.unwrap();
    let retry = second.transaction().await.unwrap();
    assert!(claim(&retry, unknown).await.unwrap());
    retry.commit().await.unwrap();
}

/// A large push's records, streamed into the entry (after an entry written without them, in
/// one transaction), are read back whole and in order; a record without fields or
/// provisional sfid (a bulk push's) is written without those keys and read back as it was;
/// setting them again replaces them, and a transaction rolled back leaves them as they were.
#[tokio::test]
async fn records_set_by_copy_are_read_back_whole_and_in_order() {
    let db = TestDatabase::create().await;
    let mut client = db.connect().await;
    crate::apply_control_schema(&mut client).await.unwrap();
    let mut first = entry(Outcome::Unknown);
    let template = first.records.remove(0);
    let records: Vec<JournalRecord> = (0..2_500)
        .map(|row_id| JournalRecord {
            operation: Operation::Update,
            row_id,
            provisional: None,
            fields: Record::new(),
            ..template.clone()
        })
        .collect();
    let transaction = client.transaction().await.unwrap();
    let id = record(&transaction, &first).await.unwrap();
    set_records(&transaction, id, records.iter().cloned())
        .await
        .unwrap();
    transaction.commit().await.unwrap();
    let records_of = async |client: &tokio_postgres::Client| {
        due(client)
            .await
            .unwrap()
            .into_iter()
            .find(|entry| entry.id == id)
            .unwrap()
            .records
    };
    assert_eq!(records_of(&client).await, records);
    let text: String = client
        .query_one(
            "SELECT (records -> 0)::text FROM sfpg.write_journal WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        !text.contains("fields") && !text.contains("provisional"),
        "{text}"
    );

    // Set again (the temporary table of the first transaction is gone): replaced.
    let transaction = client.transaction().await.unwrap();
    set_records(&transaction, id, records[..3].iter().cloned())
        .await
        .unwrap();
    transaction.commit().await.unwrap();
    assert_eq!(records_of(&client).await, records[..3]);

    // Rolled back: as it was; and no record at all is an empty list.
    let transaction = client.transaction().await.unwrap();
    set_records(&transaction, id, std::iter::empty())
        .await
        .unwrap();
    transaction.rollback().await.unwrap();
    assert_eq!(records_of(&client).await, records[..3]);
    let transaction = client.transaction().await.unwrap();
    set_records(&transaction, id, std::iter::empty())
        .await
        .unwrap();
    transaction.commit().await.unwrap();
    assert!(records_of(&client).await.is_empty());
}
