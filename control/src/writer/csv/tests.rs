//! CSV pages into the mirror against a real PostgreSQL: every column type the mirror uses
//! takes Salesforce's Bulk renderings and stores what the JSON path stores; the stream is
//! read as it comes, in any chunks; a header in another order, a failing body and a row
//! that exists stop a plain COPY; the merge keeps the version guard, deletes, and leaves
//! locked rows; the formula refresh; and the reconciliation's Id set.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use serde_json::json;
use sfpg_salesforce::Record;
use sfpg_testkit::TestDatabase;
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

use super::*;
use crate::mapping::ColumnType;
use crate::mirror;
use crate::writer::{IdSet, Rows, WriteStrategy, begin, upsert};

/// A table with a column of every type the mapping creates.
fn plan(table: &str) -> ObjectPlan {
    let field = MirroredField::new;
    ObjectPlan {
        object: "Account".to_owned(),
        schema: "acme".to_owned(),
        table: table.to_owned(),
        fields: vec![
            field("Id", ColumnType::Varchar(18)),
            field("SystemModstamp", ColumnType::TimestampTz),
            field("IsDeleted", ColumnType::Boolean),
            field("Name", ColumnType::Varchar(80)),
            field("Interests__c", ColumnType::Text),
            field("NumberOfEmployees", ColumnType::Integer),
            field("Big__c", ColumnType::BigInt),
            field(
                "AnnualRevenue",
                ColumnType::Numeric {
                    precision: 18,
                    scale: 2,
                },
            ),
            field("Score__c", ColumnType::NumericAny),
            field("Founded__c", ColumnType::Date),
            field("Opens__c", ColumnType::Time),
            field("Active__c", ColumnType::Boolean),
            field("Description", ColumnType::Text),
        ],
    }
}

const HEADER: &str = "\"Id\",\"SystemModstamp\",\"IsDeleted\",\"Name\",\"Interests__c\",\
\"NumberOfEmployees\",\"Big__c\",\"AnnualRevenue\",\"Score__c\",\"Founded__c\",\"Opens__c\",\
\"Active__c\",\"Description\"\n";

const A: &str = "001000000000001AAA";
const B: &str = "001000000000002AAA";
const C: &str = "001000000000003AAA";
const D: &str = "001000000000004AAA";

/// A line as a query job writes it: every value quoted, null as `""`.
fn line(values: &[&str]) -> String {
    let quoted: Vec<String> = values
        .iter()
        .map(|v| format!("\"{}\"", v.replace('"', "\"\"")))
        .collect();
    format!("{}\n", quoted.join(","))
}

/// A record in full, with a name, and all else null; stamped `stamp` (seconds).
fn short(id: &str, stamp: &str, deleted: bool, name: &str) -> String {
    let stamp = format!("2024-03-01T12:00:{stamp}.000Z");
    let deleted = if deleted { "true" } else { "false" };
    line(&[
        id, &stamp, deleted, name, "", "", "", "", "", "", "", "", "",
    ])
}

fn body(text: &str, chunk: usize) -> impl Stream<Item = Result<Bytes, Infallible>> + use<> {
    let pieces: Vec<Result<Bytes, Infallible>> = text
        .as_bytes()
        .chunks(chunk)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    futures::stream::iter(pieces)
}

async fn mirror_tables(db: &TestDatabase, tables: &[&str]) -> Client {
    let mut client = db.connect().await;
    crate::apply_control_schema(&mut client).await.unwrap();
    mirror::create_schema(&client, "acme").await.unwrap();
    for table in tables {
        let plan = plan(table);
        mirror::create_table(&client, "acme", table, &plan.columns())
            .await
            .unwrap();
    }
    client
}

/// Writes `csv` in `chunk`-byte pieces into `table` as `mode` says, in one transaction.
async fn write_page(
    client: &mut Client,
    table: &str,
    csv: &str,
    chunk: usize,
    mode: CsvMode,
) -> Result<CsvApplied, CsvError<Infallible>> {
    let plan = plan(table);
    let fields: Vec<&MirroredField> = plan.fields.iter().collect();
    let transaction = begin(client, Some(Duration::from_secs(2))).await.unwrap();
    let written = write_csv(
        &transaction,
        &plan,
        &fields,
        body(csv, chunk),
        mode,
        OnLocked::Skip,
    )
    .await?;
    transaction.commit().await.unwrap();
    Ok(written)
}

/// The table's rows as text, column by column, by sfid (the local `id` left out).
async fn contents(client: &Client, table: &str) -> Vec<Vec<Option<String>>> {
    let plan = plan(table);
    let columns: Vec<String> = plan
        .fields
        .iter()
        .map(|f| format!("{}::text", quote_ident(&f.column)))
        .collect();
    let sql = format!(
        "SELECT {} FROM acme.{table} ORDER BY sfid",
        columns.join(", ")
    );
    client
        .query(&sql, &[])
        .await
        .unwrap()
        .iter()
        .map(|row| (0..columns.len()).map(|i| row.get(i)).collect())
        .collect()
}

fn json_record(value: serde_json::Value) -> Record {
    match value {
        serde_json::Value::Object(map) => map,
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn every_column_type_takes_the_bulk_renderings_and_stores_what_json_stores() {
    let db = TestDatabase::create().await;
    let mut client = mirror_tables(&db, &["from_csv", "from_json"]).await;
    let name = "Acme \"Quoted\", Inc.\nSecond line, with a ; too";
    let csv = format!(
        "{HEADER}{}{}",
        line(&[
            A,
            "2021-11-06T17:38:40.000Z",
            "false",
            name,
            "Golf;Sailing",
            "500",
            "9007199254740993",
            "1.5E7",
            "0.1",
            "1999-12-31",
            "17:38:40.000Z",
            "true",
            "",
        ]),
        short(B, "05", false, "Beta"),
    );
    let written = write_page(&mut client, "from_csv", &csv, 64 * 1024, CsvMode::Copy)
        .await
        .unwrap();
    assert_eq!(written.received, 2);
    assert_eq!(written.applied.inserted, 2);

    // The same records as the REST API sends them, through the JSON path.
    let records = [
        json_record(json!({
            "Id": A, "SystemModstamp": "2021-11-06T17:38:40.000+0000", "IsDeleted": false,
            "Name": name, "Interests__c": "Golf;Sailing", "NumberOfEmployees": 500,
            "Big__c": 9_007_199_254_740_993_u64, "AnnualRevenue": 1.5e7, "Score__c": 0.1,
            "Founded__c": "1999-12-31", "Opens__c": "17:38:40.000Z", "Active__c": true,
            "Description": null,
        })),
        json_record(json!({
            "Id": B, "SystemModstamp": "2024-03-01T12:00:05.000+0000", "IsDeleted": false,
            "Name": "Beta",
        })),
    ];
    let json_plan = plan("from_json");
    let rows = Rows::from_records("Account", json_plan.fields.iter().collect(), &records).unwrap();
    let transaction = begin(&mut client, None).await.unwrap();
    upsert(&transaction, &json_plan, &rows, WriteStrategy::Unnest)
        .await
        .unwrap();
    transaction.commit().await.unwrap();

    let from_csv = contents(&client, "from_csv").await;
    assert_eq!(from_csv, contents(&client, "from_json").await);
    let first = &from_csv[0];
    assert_eq!(first[3].as_deref(), Some(name));
    assert_eq!(first[1].as_deref(), Some("2021-11-06 17:38:40+00"));
    assert_eq!(first[7].as_deref(), Some("15000000.00"));
    assert_eq!(first[10].as_deref(), Some("17:38:40"));
    assert_eq!(first[12], None, "\"\" is NULL");
    assert!(from_csv[1][4..].iter().skip(1).all(Option::is_none));
}

#[tokio::test]
async fn a_page_is_read_as_it_comes_in_any_chunks() {
    let db = TestDatabase::create().await;
    let mut client = mirror_tables(&db, &["one_byte", "whole"]).await;
    let csv = format!(
        "{HEADER}{}{}{}",
        short(A, "01", false, "Alpha, \"the first\""),
        short(B, "02", false, "Beta\r\nwith a line break"),
        short(C, "03", false, "Gamma")
    );
    // One byte at a time: the header is whole only after many chunks.
    let written = write_page(&mut client, "one_byte", &csv, 1, CsvMode::Copy)
        .await
        .unwrap();
    assert_eq!(written.received, 3);
    write_page(&mut client, "whole", &csv, csv.len(), CsvMode::Copy)
        .await
        .unwrap();
    assert_eq!(
        contents(&client, "one_byte").await,
        contents(&client, "whole").await
    );
    // A header alone, without a line break: a page of no records.
    let header_only = HEADER.trim_end();
    let written = write_page(&mut client, "whole", header_only, 5, CsvMode::Copy)
        .await
        .unwrap();
    assert_eq!(written.received, 0);
}

#[tokio::test]
async fn columns_in_another_order_are_refused_before_any_row() {
    let db = TestDatabase::create().await;
    let mut client = mirror_tables(&db, &["account"]).await;
    let swapped = HEADER.replacen("\"Id\",\"SystemModstamp\"", "\"SystemModstamp\",\"Id\"", 1);
    let csv = format!("{swapped}{}", short(A, "01", false, "Alpha"));
    let error = write_page(&mut client, "account", &csv, 7, CsvMode::Copy)
        .await
        .unwrap_err();
    let CsvError::Write(ControlError::CsvColumns { found, .. }) = &error else {
        panic!("{error:?}");
    };
    assert!(
        found.starts_with("the columns SystemModstamp, Id"),
        "{found}"
    );
    assert!(contents(&client, "account").await.is_empty());
}

#[tokio::test]
async fn a_body_that_fails_aborts_the_copy_and_keeps_its_error() {
    let db = TestDatabase::create().await;
    let mut client = mirror_tables(&db, &["account"]).await;
    let plan = plan("account");
    let fields: Vec<&MirroredField> = plan.fields.iter().collect();
    let first = format!("{HEADER}{}", short(A, "01", false, "Alpha"));
    let failing = futures::stream::iter(vec![
        Ok(Bytes::from(first)),
        Err(std::io::Error::other("connection reset mid-page")),
    ]);
    let transaction = begin(&mut client, None).await.unwrap();
    let error = write_csv(
        &transaction,
        &plan,
        &fields,
        failing,
        CsvMode::Copy,
        OnLocked::Skip,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&error, CsvError::Body(e) if e.to_string() == "connection reset mid-page"),
        "{error:?}"
    );
    transaction.rollback().await.unwrap();
    assert!(contents(&client, "account").await.is_empty());
    // The connection goes on.
    write_page(
        &mut client,
        "account",
        &format!("{HEADER}{}", short(A, "01", false, "Alpha")),
        100,
        CsvMode::Copy,
    )
    .await
    .unwrap();
    assert_eq!(contents(&client, "account").await.len(), 1);
}

#[tokio::test]
async fn a_plain_copy_of_an_id_already_mirrored_fails_on_the_unique_index() {
    let db = TestDatabase::create().await;
    let mut client = mirror_tables(&db, &["account"]).await;
    let page = format!("{HEADER}{}", short(A, "01", false, "Alpha"));
    write_page(&mut client, "account", &page, 100, CsvMode::Copy)
        .await
        .unwrap();
    let again = format!(
        "{HEADER}{}{}",
        short(B, "02", false, "Beta"),
        short(A, "03", false, "Alpha again")
    );
    let error = write_page(&mut client, "account", &again, 100, CsvMode::Copy)
        .await
        .unwrap_err();
    let CsvError::Write(error) = error;
    assert_eq!(error.code(), Some(&SqlState::UNIQUE_VIOLATION));
    // The merge takes the same page.
    let merged = write_page(&mut client, "account", &again, 100, CsvMode::Merge)
        .await
        .unwrap();
    assert_eq!((merged.applied.inserted, merged.applied.written), (1, 2));
}

#[tokio::test]
async fn the_merge_keeps_the_version_guard_deletes_and_leaves_locked_rows() {
    let db = TestDatabase::create().await;
    let mut client = mirror_tables(&db, &["account"]).await;
    let before = format!(
        "{HEADER}{}{}{}{}",
        short(A, "10", false, "A old"),
        short(B, "30", false, "B newer than the page"),
        short(C, "10", false, "C locked"),
        short(D, "10", false, "D to delete"),
    );
    write_page(&mut client, "account", &before, 1000, CsvMode::Copy)
        .await
        .unwrap();
    // A client holds C's row.
    let mut holder = db.connect().await;
    let held = holder.transaction().await.unwrap();
    held.execute(
        "SELECT 1 FROM acme.account WHERE sfid = $1 FOR UPDATE",
        &[&C],
    )
    .await
    .unwrap();

    let e = "001000000000005AAA";
    let page = format!(
        "{HEADER}{}{}{}{}{}",
        short(A, "20", false, "A new"),
        short(B, "20", false, "B older copy"),
        short(C, "20", false, "C new"),
        short(D, "20", true, "D to delete"),
        short(e, "20", false, "E new"),
    );
    let merged = write_page(&mut client, "account", &page, 333, CsvMode::Merge)
        .await
        .unwrap();
    held.rollback().await.unwrap();
    assert_eq!(merged.received, 5);
    assert_eq!(
        merged.applied,
        Applied {
            inserted: 1,
            written: 2,
            deleted: 1,
            locked: vec![C.to_owned()],
        }
    );
    let names: Vec<Option<String>> = contents(&client, "account")
        .await
        .into_iter()
        .map(|row| row[3].clone())
        .collect();
    assert_eq!(
        names,
        [
            Some("A new".to_owned()),
            Some("B newer than the page".to_owned()),
            Some("C locked".to_owned()),
            Some("E new".to_owned()),
        ]
    );
}

#[tokio::test]
async fn the_formula_refresh_sets_columns_without_the_guard() {
    let db = TestDatabase::create().await;
    let mut client = mirror_tables(&db, &["account"]).await;
    let page = format!(
        "{HEADER}{}{}",
        short(A, "30", false, "Alpha"),
        short(B, "30", false, "Beta")
    );
    write_page(&mut client, "account", &page, 1000, CsvMode::Copy)
        .await
        .unwrap();
    let plan = plan("account");
    let fields = [&plan.fields[0], &plan.fields[8]];
    let formulas = "\"Id\",\"Score__c\"\n\"001000000000001AAA\",\"7.5\"\n\
                    \"001000000000002AAA\",\"\"\n\"001000000000009AAA\",\"1\"\n";
    let transaction = begin(&mut client, None).await.unwrap();
    let written = write_csv(
        &transaction,
        &plan,
        &fields,
        body(formulas, 10),
        CsvMode::UpdateColumns,
        OnLocked::Skip,
    )
    .await
    .unwrap();
    transaction.commit().await.unwrap();
    assert_eq!((written.received, written.applied.written), (3, 1));
    let rows = contents(&client, "account").await;
    assert_eq!(rows[0][8].as_deref(), Some("7.5"));
    assert_eq!(rows[1][8], None);
    assert_eq!(rows.len(), 2, "an Id the mirror lacks is not inserted");
}

#[tokio::test]
async fn the_id_set_of_a_reconciliation_deletes_only_what_is_gone() {
    let db = TestDatabase::create().await;
    let mut client = mirror_tables(&db, &["account"]).await;
    let page = format!(
        "{HEADER}{}{}{}{}",
        short(A, "10", false, "kept"),
        short(B, "10", false, "gone"),
        short(C, "10", false, "gone, but locked"),
        short(D, "10", false, "kept"),
    );
    write_page(&mut client, "account", &page, 1000, CsvMode::Copy)
        .await
        .unwrap();
    client
        .batch_execute(
            "\
             ALTER TABLE acme.account ALTER COLUMN sfid SET DEFAULT '~00000000000000001'; \
             INSERT INTO acme.account (systemmodstamp, name) VALUES ('2024-03-01T12:00:00Z', 'provisional'); \
             INSERT INTO acme.account (sfid, systemmodstamp, name) VALUES ('001000000000007AAA', now(), 'just written')",
        )
        .await
        .unwrap();
    let plan = plan("account");
    let set = IdSet::start(&client, &plan).await.unwrap();
    for ids in [format!("\"Id\"\n\"{A}\"\n"), format!("\"Id\"\n\"{D}\"\n")] {
        let transaction = begin(&mut client, None).await.unwrap();
        assert_eq!(
            set.add(&transaction, &plan, body(&ids, 3)).await.unwrap(),
            1
        );
        transaction.commit().await.unwrap();
    }
    let mut holder = db.connect().await;
    let held = holder.transaction().await.unwrap();
    held.execute(
        "SELECT 1 FROM acme.account WHERE sfid = $1 FOR UPDATE",
        &[&C],
    )
    .await
    .unwrap();
    let transaction = begin(&mut client, None).await.unwrap();
    let modified_before = chrono::Utc::now() - chrono::Duration::minutes(5);
    let (deleted, locked) = set
        .delete_absent(&transaction, &plan, modified_before)
        .await
        .unwrap();
    transaction.commit().await.unwrap();
    held.rollback().await.unwrap();
    assert_eq!((deleted, locked), (1, vec![C.to_owned()]));
    let left: Vec<String> = client
        .query("SELECT sfid FROM acme.account ORDER BY sfid", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(left, [A, C, D, "001000000000007AAA", "~00000000000000001"]);
}

#[tokio::test]
async fn a_value_out_of_salesforces_layout_turns_the_rest_of_the_page_to_text_and_loses_nothing() {
    let db = TestDatabase::create().await;
    let mut client = mirror_tables(&db, &["mixed", "text_only"]).await;
    let record = |id: &str, founded: &str, name: &str| {
        line(&[
            id,
            "2024-03-01T12:00:01.000Z",
            "false",
            name,
            "",
            "7",
            "",
            "",
            "",
            founded,
            "",
            "",
            "",
        ])
    };
    // Enough rows that the first batches go as binary before the odd date, which
    // PostgreSQL reads but the encoder, knowing only Salesforce's layout, does not.
    let many: String = (0..5_000)
        .map(|i| record(&format!("00Q{i:012}AAA"), "2000-01-02", &"n".repeat(60)))
        .collect();
    let odd = record(D, "2021-1-6", "Odd");
    let csv = format!("{HEADER}{many}{odd}{}", record(C, "1999-12-31", "After"));
    let written = write_page(&mut client, "mixed", &csv, 8 * 1024, CsvMode::Copy)
        .await
        .unwrap();
    assert_eq!(written.received, 5_002);

    // The same page where nothing can go as binary (the first row is odd).
    let text_csv = format!("{HEADER}{odd}{many}{}", record(C, "1999-12-31", "After"));
    write_page(&mut client, "text_only", &text_csv, 8 * 1024, CsvMode::Copy)
        .await
        .unwrap();
    let mixed = contents(&client, "mixed").await;
    assert_eq!(mixed.len(), 5_002);
    assert_eq!(mixed, contents(&client, "text_only").await);
    let odd_row = mixed.iter().find(|r| r[0].as_deref() == Some(D)).unwrap();
    assert_eq!(odd_row[9].as_deref(), Some("2021-01-06"));
    // A value PostgreSQL refuses too is still refused, with its own message.
    let bad = format!("{HEADER}{}", record(A, "not a date", "Bad"));
    let error = write_page(&mut client, "mixed", &bad, 64, CsvMode::Copy)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("not a date"), "{error}");
}
