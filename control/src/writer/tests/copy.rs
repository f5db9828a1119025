//! `COPY` of new rows: straight in for a backfill page, racing another insert of the same
//! Id, and binary values that store what text stores.

use bytes::Bytes;
use futures::SinkExt;

use super::*;
use crate::writer::binary;
use crate::writer::value::push_copy_text;

#[tokio::test]
async fn a_merge_racing_another_insert_of_the_same_id_falls_back_to_on_conflict() {
    let db = TestDatabase::create().await;
    let mut client = mirror_table(&db).await;
    // The proxy writes back a record it just created, and has not committed yet.
    let mut proxy = db.connect().await;
    let racing = proxy.transaction().await.unwrap();
    racing
        .execute(
            "INSERT INTO acme.account (sfid, systemmodstamp, name) VALUES ($1, '2024-03-01T11:00:00Z', 'from the proxy')",
            &[&A],
        )
        .await
        .unwrap();

    let sync = tokio::spawn(async move {
        let plan = plan();
        let records = [
            record(A, "2024-03-01T12:00:00.000+0000", "from the sync"),
            record(B, "2024-03-01T12:00:00.000+0000", "other"),
        ];
        let rows = Rows::from_records("Account", plan.fields.iter().collect(), &records).unwrap();
        let transaction = begin(&mut client, Some(Duration::from_secs(5)))
            .await
            .unwrap();
        let upserted = upsert(&transaction, &plan, &rows, WriteStrategy::CopyMerge)
            .await
            .unwrap();
        transaction.commit().await.unwrap();
        (client, upserted)
    });
    // The sync's insert now waits on the proxy's uncommitted Id; commit it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    racing.commit().await.unwrap();
    let (client, upserted) = sync.await.unwrap();
    assert_eq!(
        upserted,
        Upserted {
            inserted: 1,
            written: 2
        }
    );
    assert_eq!(
        names(&client)
            .await
            .iter()
            .map(|(_, name, _)| name.as_str())
            .collect::<Vec<_>>(),
        ["from the sync", "other"]
    );
}

#[tokio::test]
async fn a_backfill_page_is_copied_straight_in_and_falls_back_when_a_row_exists() {
    let db = TestDatabase::create().await;
    let mut client = mirror_table(&db).await;
    let plan = plan();
    let t1 = "2024-03-01T12:00:00.000+0000";
    let t2 = "2024-03-01T12:00:05.000+0000";
    let insert_new_page = async |client: &mut Client, records: &[Record]| {
        let rows = Rows::from_records("Account", plan.fields.iter().collect(), records).unwrap();
        let transaction = begin(client, Some(Duration::from_secs(2))).await.unwrap();
        let written = insert_new(&transaction, &plan, &rows, WriteStrategy::CopyMerge)
            .await
            .unwrap();
        transaction.commit().await.unwrap();
        written
    };

    let first = insert_new_page(&mut client, &[record(A, t1, "Acme")]).await;
    assert_eq!(
        first,
        Upserted {
            inserted: 1,
            written: 1
        }
    );

    // A is mirrored already (as the proxy's write-back leaves a record it created): the
    // COPY meets it, and the page is merged instead, A updated and B inserted.
    let second = insert_new_page(
        &mut client,
        &[record(A, t2, "Acme Corp"), record(B, t2, "Globex")],
    )
    .await;
    assert_eq!(
        second,
        Upserted {
            inserted: 1,
            written: 2
        }
    );
    assert_eq!(
        names(&client).await,
        vec![
            (
                A.to_owned(),
                "Acme Corp".to_owned(),
                "2024-03-01 12:00:05+00".to_owned()
            ),
            (
                B.to_owned(),
                "Globex".to_owned(),
                "2024-03-01 12:00:05+00".to_owned()
            ),
        ]
    );
}

/// Each value in the binary format reads back as PostgreSQL's own text input makes it.
#[tokio::test]
async fn binary_copies_store_what_text_copies_store() {
    let db = TestDatabase::create().await;
    let client = db.connect().await;
    for (column_type, values) in CASES {
        binary_and_text_agree(&client, *column_type, values).await;
    }
}

/// Values of each column type, in the layouts Salesforce sends.
const CASES: &[(ColumnType, &[&str])] = &[
    (
        ColumnType::Varchar(40),
        &["001000000000001AAA", "tab\there, back\\slash, é"],
    ),
    (ColumnType::Text, &["line\nbreak", "\u{1F600}"]),
    (ColumnType::Boolean, &["true", "false"]),
    (ColumnType::Integer, &["0", "-2147483648", "2147483647"]),
    (ColumnType::BigInt, &["-9007199254740993", "42"]),
    (
        ColumnType::Numeric {
            precision: 18,
            scale: 2,
        },
        &[
            "1.5E7",
            "-12345.678",
            "0.005",
            "0",
            "-0.00",
            "9999999999999999.99",
        ],
    ),
    (
        ColumnType::NumericAny,
        &[
            "1.0E7",
            "2.5e-3",
            "123456789012345678.123456789",
            "-0.0001",
            "100000000",
            "1E+3",
        ],
    ),
    (
        ColumnType::Date,
        &[
            "2000-01-01",
            "1999-12-31",
            "2024-02-29",
            "0001-01-01",
            "9999-12-31",
        ],
    ),
    (
        ColumnType::TimestampTz,
        &[
            "2024-05-01T12:34:56.000+0000",
            "1970-01-01T00:00:00.000+0000",
            "2024-05-01T12:34:56.123-0530",
            "2024-05-01T12:34:56Z",
            "1899-12-31T23:59:59.999+0100",
        ],
    ),
    (
        ColumnType::Time,
        &["00:00:00.000Z", "13:05:07.250Z", "23:59:59.999Z"],
    ),
];

/// Copies `values` into a column of `column_type` once in binary, once as text, and checks
/// that both tables hold the same.
async fn binary_and_text_agree(client: &Client, column_type: ColumnType, values: &[&str]) {
    client
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS by_text, by_binary;
             CREATE TABLE by_text (n int, v {column_type});
             CREATE TABLE by_binary (n int, v {column_type});
             SET TIME ZONE 'UTC'"
        ))
        .await
        .unwrap();
    let numbers: Vec<String> = (0..values.len()).map(|n| n.to_string()).collect();
    let rows = numbers
        .iter()
        .zip(values.iter())
        .map(|(number, value)| [Some(number.as_str()), Some(*value)]);
    let columns = Columns::from_rows(2, rows).unwrap();
    let data = binary::encode(&[ColumnType::Integer, column_type], &columns)
        .unwrap_or_else(|| panic!("{column_type} values in Salesforce's layout encode"));
    let sink = client
        .copy_in("COPY by_binary (n, v) FROM STDIN (FORMAT binary)")
        .await
        .unwrap();
    futures::pin_mut!(sink);
    sink.send(Bytes::from(data)).await.unwrap();
    sink.finish().await.unwrap();
    let mut text = Vec::new();
    for (number, value) in columns.column(0).zip(columns.column(1)) {
        push_copy_text(&mut text, number);
        text.push(b'\t');
        push_copy_text(&mut text, value);
        text.push(b'\n');
    }
    let sink = client
        .copy_in("COPY by_text (n, v) FROM STDIN")
        .await
        .unwrap();
    futures::pin_mut!(sink);
    sink.send(Bytes::from(text)).await.unwrap();
    sink.finish().await.unwrap();
    let differing = client
        .query(
            "SELECT t.n, t.v::text, b.v::text FROM by_text t JOIN by_binary b USING (n)
             WHERE t.v IS DISTINCT FROM b.v OR t.v::text <> b.v::text",
            &[],
        )
        .await
        .unwrap();
    let differing: Vec<(i32, String, String)> = differing
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert!(differing.is_empty(), "{column_type}: {differing:?}");
    let count: i64 = client
        .query_one("SELECT count(*) FROM by_binary", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, values.len() as i64);
}
