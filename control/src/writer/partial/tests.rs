//! Partial records: how they are made, how a patch writes them, and the write-back's rows
//! with the guard `sfpg.write_back` applies.

use std::time::Duration;

use serde_json::json;
use sfpg_salesforce::Record;
use sfpg_testkit::TestDatabase;
use tokio_postgres::Client;

use super::*;
use crate::writer::tests::{A, B, mirror_table, plan, record, write};
use crate::writer::{OnLocked, Write, WriteStrategy, apply, begin};

fn map(value: serde_json::Value) -> Record {
    match value {
        Value::Object(map) => map,
        _ => unreachable!(),
    }
}

#[test]
fn write_back_rows_carry_what_the_record_carries_as_column_text() {
    let plan = plan();
    let mut row = WriteBackRow::new(7);
    row.set("sfid", A);
    let read = map(json!({
        "attributes": {"type": "Account"}, "Id": A,
        "SystemModstamp": "2024-03-01T12:00:00.000+0000",
        "NumberOfEmployees": 1.2e3, "AnnualRevenue": 15000000.5, "Name": "",
        "Founded__c": null,
    }));
    row.copy("Account", &plan.fields, &read).unwrap();
    let rows: Value = serde_json::from_str(&write_back_rows(&[row])).unwrap();
    assert_eq!(
        rows,
        json!([{
            "id": 7, "sfid": A, "systemmodstamp": "2024-03-01T12:00:00.000+0000",
            // As the sync writes them: an integral number for an integer column, Salesforce's
            // empty string as NULL, an explicit null as NULL; IsDeleted was not read, so it
            // is not set.
            "numberofemployees": "1200", "annualrevenue": "15000000.5",
            "name": null, "founded__c": null,
        }])
    );
}

#[test]
fn patches_group_records_by_the_fields_they_carry() {
    let plan = plan();
    let stamp = "2024-03-01T12:00:00.000+0000";
    let records = [
        map(json!({"Id": A, "SystemModstamp": stamp, "Name": "a"})),
        map(json!({"Id": B, "SystemModstamp": stamp, "Name": null, "NumberOfEmployees": 3})),
        map(json!({"Id": "001000000000003AAA", "SystemModstamp": stamp, "Name": "c"})),
    ];
    let patches = Patches::from_records("Account", &plan.fields, &records).unwrap();
    let shapes: Vec<Vec<&str>> = patches
        .groups()
        .iter()
        .map(|rows| rows.fields.iter().map(|f| f.column.as_str()).collect())
        .collect();
    assert_eq!(
        shapes,
        [
            vec!["sfid", "systemmodstamp", "name"],
            vec!["sfid", "systemmodstamp", "name", "numberofemployees"],
        ]
    );
    assert_eq!(patches.ids().count(), 3);
    let without_stamp = [map(json!({"Id": A, "Name": "a"}))];
    let error = Patches::from_records("Account", &plan.fields, &without_stamp).unwrap_err();
    assert!(error.to_string().contains("SystemModstamp"), "{error}");
    let twice = [records[0].clone(), records[0].clone()];
    assert!(Patches::from_records("Account", &plan.fields, &twice).is_err());
    let without_id = [map(json!({"SystemModstamp": stamp}))];
    assert!(Patches::from_records("Account", &plan.fields, &without_id).is_err());
}

async fn row_of(client: &Client, id: &str) -> (String, Option<i32>, String) {
    let row = client
        .query_one(
            "SELECT name, numberofemployees, systemmodstamp::text FROM acme.account
              WHERE sfid = $1",
            &[&id],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

/// A patch sets only the fields its record carries (an explicit null to NULL), under the
/// version guard, and leaves out the rows another session holds.
#[tokio::test]
async fn a_patch_touches_only_its_columns_and_keeps_the_guard() {
    let db = TestDatabase::create().await;
    let mut client = mirror_table(&db).await;
    let t1 = "2024-03-01T12:00:00.000+0000";
    write(
        &mut client,
        &[record(A, t1, "Acme"), record(B, t1, "Globex")],
        WriteStrategy::CopyMerge,
    )
    .await;
    let plan = plan();
    let patch = async |client: &mut Client, records: &[Record], on_locked: OnLocked| {
        let patches = Patches::from_records("Account", &plan.fields, records).unwrap();
        let transaction = begin(client, Some(Duration::from_secs(2))).await.unwrap();
        let applied = apply(
            &transaction,
            &plan,
            &[Write::Patch(patches)],
            WriteStrategy::CopyMerge,
            on_locked,
        )
        .await
        .unwrap();
        transaction.commit().await.unwrap();
        applied
    };
    let t2 = "2024-03-01T12:00:05.000+0000";
    let newer = [map(
        json!({"Id": A, "SystemModstamp": t2, "NumberOfEmployees": null}),
    )];
    assert_eq!(patch(&mut client, &newer, OnLocked::Skip).await.written, 1);
    assert_eq!(
        row_of(&client, A).await,
        ("Acme".to_owned(), None, "2024-03-01 12:00:05+00".to_owned())
    );
    // An older event changes nothing; the same one again neither.
    let older = [map(
        json!({"Id": A, "SystemModstamp": t1, "Name": "Acme (old)"}),
    )];
    assert_eq!(patch(&mut client, &older, OnLocked::Skip).await.written, 0);
    assert_eq!(patch(&mut client, &newer, OnLocked::Skip).await.written, 0);
    assert_eq!(row_of(&client, A).await.0, "Acme");

    // A row a client holds is left out and reported.
    let mut other = db.connect().await;
    let held = other.transaction().await.unwrap();
    held.execute(
        "SELECT 1 FROM acme.account WHERE sfid = $1 FOR UPDATE",
        &[&B],
    )
    .await
    .unwrap();
    let renamed = [map(
        json!({"Id": B, "SystemModstamp": t2, "Name": "Globex 2"}),
    )];
    let applied = patch(&mut client, &renamed, OnLocked::Skip).await;
    assert_eq!((applied.written, applied.locked), (0, vec![B.to_owned()]));
    held.rollback().await.unwrap();
    assert_eq!(
        patch(&mut client, &renamed, OnLocked::Skip).await.written,
        1
    );
    assert_eq!(row_of(&client, B).await.0, "Globex 2");
}
