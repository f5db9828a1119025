//! Partial records: how they are made, how a patch writes them, and the write-back's rows
//! with the guard `sfpg.write_back` applies.

use std::time::Duration;

use serde_json::json;
use sfpg_salesforce::Record;
use sfpg_testkit::TestDatabase;
use tokio_postgres::Client;

use super::*;
use crate::capture::write_back_tests::copy_into;
use crate::capture::{
    CURRENT_TXID_SQL, PUSH_TICKET_SQL, TAKE_PENDING_SQL, WRITE_BACK_SQL, WRITE_BACK_STAGED_SQL,
    WRITE_BACK_STAGING_SQL, install_capture_trigger, text_array,
};
use crate::mapping::ColumnType;
use crate::mirror::{self, Column};
use crate::writer::tests::{A, B, mirror_table, plan, record, write};
use crate::writer::{OnLocked, Write, WriteStrategy, apply, begin};

/// The JSON array `sfpg.write_back` takes for `rows`.
fn write_back_rows(rows: impl IntoIterator<Item = WriteBackRow>) -> String {
    let mut text = WriteBackText::default();
    for row in rows {
        text.push(row);
    }
    text.finish()
}

fn map(value: serde_json::Value) -> Record {
    match value {
        Value::Object(map) => map,
        _ => unreachable!(),
    }
}

#[test]
fn a_csv_rows_cells_are_written_back_as_the_same_values_as_strings_would_be() {
    let plan = plan();
    let cells = [
        "",
        "plain",
        "with \"quotes\", commas",
        "back\\slash",
        "nul\0inside",
        "line\nbreak\ttab",
        "2024-03-01T12:00:00.000+0000",
        "1200",
    ];
    for cell in cells {
        // Every field but the last carries the cell; the last is not in the results.
        let carried = &plan.fields[..plan.fields.len() - 1];
        let record: Record = carried
            .iter()
            .map(|f| {
                let value = if cell.is_empty() {
                    Value::Null
                } else {
                    json!(cell)
                };
                (f.field.clone(), value)
            })
            .collect();
        let mut by_record = WriteBackRow::new(7);
        let mut by_cells = WriteBackText::default();
        let mut ids = WriteBackRow::new(7);
        // Set by the push, and read again: the read value wins, as a record's would.
        ids.set("name", "set by the push");
        by_cells.push_read(
            ids,
            &plan.fields,
            plan.fields
                .iter()
                .map(|f| (f.field != plan.fields[plan.fields.len() - 1].field).then_some(cell)),
        );
        by_record.set("name", "set by the push");
        by_record.copy("Account", &plan.fields, &record).unwrap();
        let by_cells: Value = serde_json::from_str(&by_cells.finish()).unwrap();
        let by_record: Value = serde_json::from_str(&write_back_rows([by_record])).unwrap();
        assert_eq!(by_cells, by_record, "{cell:?}");
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
    let rows: Value = serde_json::from_str(&write_back_rows([row])).unwrap();
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

/// A mirrored table with a lookup, its capture triggers, and rows written as the sync does.
async fn mirrored_contacts(db: &TestDatabase) -> Client {
    let mut client = db.connect().await;
    crate::apply_control_schema(&mut client).await.unwrap();
    mirror::create_schema(&client, "acme").await.unwrap();
    let columns = [
        Column {
            name: "lastname".into(),
            column_type: ColumnType::Text,
        },
        Column {
            name: "accountid".into(),
            column_type: ColumnType::Varchar(18),
        },
    ];
    mirror::create_table(&client, "acme", "contact", &columns)
        .await
        .unwrap();
    install_capture_trigger(&client, "acme", "contact")
        .await
        .unwrap();
    client
        .batch_execute(&format!(
            "BEGIN; {};
             INSERT INTO acme.contact (id, sfid, systemmodstamp, lastname, accountid) VALUES
                 (1, '003000000000001AAA', '2024-03-01 12:00:10+00', 'Newer', '~00000000000000001'),
                 (2, '003000000000002AAA', '2024-03-01 12:00:00+00', 'Older', NULL),
                 (3, '~00000000000000003', NULL, 'New', NULL),
                 (4, '~00000000000000004', NULL, 'Unread', NULL);
             COMMIT",
            crate::capture::SET_SYNC_ORIGIN_SQL
        ))
        .await
        .unwrap();
    client
}

/// `sfpg.write_back` (V11) keeps the writer's guard: an element carrying an older
/// `SystemModstamp` than its row leaves the row as it is, but for the columns holding a
/// provisional sfid, which take the Ids the push resolved.
#[tokio::test]
async fn the_write_back_keeps_the_version_guard() {
    let db = TestDatabase::create().await;
    let client = mirrored_contacts(&db).await;
    let fields = [
        MirroredField::new("Id", ColumnType::Varchar(18)),
        MirroredField::new("SystemModstamp", ColumnType::TimestampTz),
        MirroredField::new("LastName", ColumnType::Text),
        MirroredField::new("AccountId", ColumnType::Varchar(18)),
    ];
    let read = |id: &str, name: &str| {
        map(json!({
            "Id": id, "SystemModstamp": "2024-03-01T12:00:05.000+0000", "LastName": name,
            "AccountId": ACCOUNT,
        }))
    };
    let mut rows = Vec::new();
    for (row_id, sfid, read_back) in [
        // Salesforce's copy is older than the row: only the resolved lookup is written.
        (
            1,
            "003000000000001AAA",
            Some(read("003000000000001AAA", "Stale")),
        ),
        // Newer: written.
        (
            2,
            "003000000000002AAA",
            Some(read("003000000000002AAA", "Fresh")),
        ),
        // A create: the row has no stamp yet.
        (
            3,
            "003000000000003AAA",
            Some(read("003000000000003AAA", "Created")),
        ),
        // The read-back failed: the Id alone.
        (4, "003000000000004AAA", None),
    ] {
        let mut row = WriteBackRow::new(row_id);
        row.set("sfid", sfid);
        row.set("accountid", ACCOUNT);
        if let Some(record) = read_back {
            row.copy("Contact", &fields[1..], &record).unwrap();
        }
        rows.push(row);
    }
    assert_eq!(write_back_in_a_push(&db, &client, &rows).await, 4);
    let got: Vec<String> = client
        .query(
            "SELECT concat_ws(' ', id, sfid, lastname, coalesce(accountid, '-'),
                              coalesce(systemmodstamp::text, '-'))
               FROM acme.contact ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        got,
        [
            "1 003000000000001AAA Newer 001000000000009AAA 2024-03-01 12:00:10+00",
            "2 003000000000002AAA Fresh 001000000000009AAA 2024-03-01 12:00:05+00",
            "3 003000000000003AAA Created 001000000000009AAA 2024-03-01 12:00:05+00",
            "4 003000000000004AAA Touched 001000000000009AAA -",
        ]
    );
}

/// The Id of the account the contacts' lookups resolve to.
const ACCOUNT: &str = "001000000000009AAA";

/// Writes `rows` back into `acme.contact` in a push's transaction, as the proxy does: a
/// change captured (row 4 touched), its ticket minted on another connection of the owner,
/// the changes taken, the write-back, COMMIT. Returns the rows written.
async fn write_back_in_a_push(db: &TestDatabase, client: &Client, rows: &[WriteBackRow]) -> i64 {
    let ticket = begin_push(db, client).await;
    let written: i64 = client
        .query_one(
            WRITE_BACK_SQL,
            &[
                &ticket,
                &"acme",
                &"contact",
                &write_back_rows(rows.iter().cloned()),
            ],
        )
        .await
        .unwrap()
        .get(0);
    client.batch_execute("COMMIT").await.unwrap();
    written
}

/// As [`write_back_in_a_push`], the rows staged by `COPY` (V25), as the proxy writes a
/// bulk push's read-back.
async fn write_back_staged_in_a_push(
    db: &TestDatabase,
    client: &Client,
    rows: WriteBackCopy,
) -> i64 {
    let ticket = begin_push(db, client).await;
    let written = write_back_staged(client, &ticket, rows).await;
    client.batch_execute("COMMIT").await.unwrap();
    written
}

/// The staging table made, `rows` copied into it, and written back: the rows written.
async fn write_back_staged(client: &Client, ticket: &str, rows: WriteBackCopy) -> i64 {
    let (columns, data) = rows.finish();
    let staging: String = client
        .query_one(
            WRITE_BACK_STAGING_SQL,
            &[&ticket, &"acme", &"contact", &text_array(&columns)],
        )
        .await
        .unwrap()
        .get(0);
    copy_into(client, &staging, data).await;
    client
        .query_one(
            WRITE_BACK_STAGED_SQL,
            &[&ticket, &"acme", &"contact", &staging],
        )
        .await
        .unwrap()
        .get(0)
}

/// Opens a push's transaction on `client`: a change captured (row 4 touched), its ticket
/// minted on another connection of the owner, the changes taken. Returns the ticket.
async fn begin_push(db: &TestDatabase, client: &Client) -> String {
    client
        .batch_execute(
            "BEGIN; SET LOCAL sfpg.origin = 'proxy';
             UPDATE acme.contact SET lastname = 'Touched' WHERE id = 4",
        )
        .await
        .unwrap();
    let txid: String = client
        .query_one(CURRENT_TXID_SQL, &[])
        .await
        .unwrap()
        .get(0);
    let ticket: String = db
        .connect()
        .await
        .query_one(PUSH_TICKET_SQL, &[&txid])
        .await
        .unwrap()
        .get(0);
    client
        .query_one(TAKE_PENDING_SQL, &[&ticket])
        .await
        .unwrap();
    ticket
}

/// The contacts as `id sfid lastname accountid systemmodstamp`, in id order.
async fn contacts(client: &Client) -> Vec<String> {
    client
        .query(
            "SELECT concat_ws(' ', id, sfid, lastname, coalesce(accountid, '-'),
                              coalesce(systemmodstamp::text, '-'))
               FROM acme.contact ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// `sfpg.write_back_staged` (V25) keeps the guard `sfpg.write_back` keeps, for rows staged
/// by `COPY` with every column set: an older read-back leaves the row but for its
/// provisional sfids; a newer one, or one of a row without a stamp yet, is written whole.
#[tokio::test]
async fn the_staged_write_back_keeps_the_version_guard() {
    let db = TestDatabase::create().await;
    let client = mirrored_contacts(&db).await;
    let fields = [
        MirroredField::new("SystemModstamp", ColumnType::TimestampTz),
        MirroredField::new("LastName", ColumnType::Text),
        MirroredField::new("AccountId", ColumnType::Varchar(18)),
    ];
    let stamp = "2024-03-01T12:00:05.000Z";
    let mut rows = WriteBackCopy::new(&fields);
    rows.push_read(1, "003000000000001AAA", [stamp, "Stale", ACCOUNT]);
    rows.push_read(2, "003000000000002AAA", [stamp, "Fresh", ACCOUNT]);
    rows.push_read(3, "003000000000003AAA", [stamp, "Created", ACCOUNT]);
    assert_eq!(
        rows.columns(),
        ["id", "sfid", "systemmodstamp", "lastname", "accountid"]
    );
    assert_eq!(write_back_staged_in_a_push(&db, &client, rows).await, 3);
    assert_eq!(
        contacts(&client).await,
        [
            "1 003000000000001AAA Newer 001000000000009AAA 2024-03-01 12:00:10+00",
            "2 003000000000002AAA Fresh 001000000000009AAA 2024-03-01 12:00:05+00",
            "3 003000000000003AAA Created 001000000000009AAA 2024-03-01 12:00:05+00",
            "4 ~00000000000000004 Touched - -",
        ]
    );
}

/// The same read-back cells make the same rows by `COPY` as by JSON: quotes, backslashes,
/// tabs and line breaks, NULs, and an empty cell, which is NULL.
#[tokio::test]
async fn a_staged_write_back_writes_what_the_json_one_writes() {
    let cells = [
        "plain",
        "with \"quotes\", commas",
        "back\\slash \\N \\.",
        "nul\0inside",
        "line\nbreak\ttab\rreturn",
        "",
    ];
    let fields = [MirroredField::new("LastName", ColumnType::Text)];
    let mut by_json = Vec::new();
    let mut by_copy = Vec::new();
    for staged in [false, true] {
        let db = TestDatabase::create().await;
        let client = mirrored_contacts(&db).await;
        let ids = 1..=i64::try_from(cells.len()).unwrap();
        client
            .batch_execute(&format!(
                "BEGIN; {}; INSERT INTO acme.contact (id, sfid, lastname)
                 SELECT g, '~' || lpad(g::text, 17, '0'), 'before'
                   FROM generate_series(5, {}) g;
                 COMMIT",
                crate::capture::SET_SYNC_ORIGIN_SQL,
                cells.len() + 4
            ))
            .await
            .unwrap();
        if staged {
            let mut rows = WriteBackCopy::new(&fields);
            for (id, cell) in ids.zip(cells) {
                rows.push_read(id + 4, &format!("0030000000001{id:02}AAA"), [cell]);
            }
            write_back_staged_in_a_push(&db, &client, rows).await;
        } else {
            let mut rows = Vec::new();
            for (id, cell) in ids.zip(cells) {
                let mut text = WriteBackText::default();
                let mut row = WriteBackRow::new(id + 4);
                row.set("sfid", &format!("0030000000001{id:02}AAA"));
                text.push_read(row, &fields, [Some(cell)]);
                rows.push(text.finish());
            }
            let ticket = begin_push(&db, &client).await;
            for text in rows {
                client
                    .query_one(WRITE_BACK_SQL, &[&ticket, &"acme", &"contact", &text])
                    .await
                    .unwrap();
            }
            client.batch_execute("COMMIT").await.unwrap();
        }
        let got: Vec<(i64, Option<String>, Option<String>)> = client
            .query(
                "SELECT id, sfid::text, lastname FROM acme.contact WHERE id > 4 ORDER BY id",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        if staged { by_copy = got } else { by_json = got }
    }
    assert_eq!(by_copy, by_json);
    assert_eq!(by_copy.len(), cells.len());
    assert_eq!(by_copy[1].2.as_deref(), Some("with \"quotes\", commas"));
    assert_eq!(by_copy[2].2.as_deref(), Some("back\\slash \\N \\."));
    assert_eq!(by_copy[3].2.as_deref(), Some("nulinside"));
    assert_eq!(by_copy[4].2.as_deref(), Some("line\nbreak\ttab\rreturn"));
    assert_eq!(by_copy[5].2, None);
}

#[test]
fn staged_rows_are_copy_text_with_every_column() {
    let fields = [
        MirroredField::new("LastName", ColumnType::Text),
        MirroredField::new("Title", ColumnType::Text),
    ];
    let mut rows = WriteBackCopy::new(&fields);
    rows.push_read(7, "003000000000007AAA", ["a\tb\\c\nd\re\0f", ""]);
    // A row short of cells stays short, for COPY to refuse: never a NULL in its place.
    rows.push_read(8, "003000000000008AAA", ["x"]);
    assert_eq!(rows.rows(), 2);
    let (columns, data) = rows.finish();
    assert_eq!(columns, ["id", "sfid", "lastname", "title"]);
    assert_eq!(
        data,
        "7\t003000000000007AAA\ta\\tb\\\\c\\nd\\ref\t\\N\n\
         8\t003000000000008AAA\tx\n"
    );
}

#[test]
fn write_back_text_is_a_json_array_of_the_rows_in_order() {
    assert_eq!(WriteBackText::default().finish(), "[]");
    let mut text = WriteBackText::default();
    for id in [3, 1, 2] {
        let mut row = WriteBackRow::new(id);
        row.set("sfid", &format!("003{id}"));
        text.push(row);
    }
    assert_eq!(text.rows(), 3);
    let rows: Value = serde_json::from_str(&text.finish()).unwrap();
    assert_eq!(
        rows,
        json!([
            {"id": 3, "sfid": "0033"},
            {"id": 1, "sfid": "0031"},
            {"id": 2, "sfid": "0032"},
        ])
    );
}
