//! The writer against a real PostgreSQL: upserts that skip unchanged rows, column updates,
//! deletes, the reconciliation's range delete, and the lock timeout.

use serde_json::json;
use sfpg_control::mapping::ColumnType;
use sfpg_control::mirror;
use sfpg_salesforce::Record;
use sfpg_testkit::TestDatabase;
use tokio_postgres::Client;

use super::*;

fn field(name: &str, column_type: ColumnType) -> MirroredField {
    MirroredField {
        field: name.to_owned(),
        column: sfpg_control::mapping::column_name(name),
        column_type,
        calculated: false,
    }
}

pub(super) fn plan() -> ObjectPlan {
    ObjectPlan {
        object: "Account".to_owned(),
        schema: "acme".to_owned(),
        table: "account".to_owned(),
        fields: vec![
            field("Id", ColumnType::Varchar(18)),
            field("SystemModstamp", ColumnType::TimestampTz),
            field("IsDeleted", ColumnType::Boolean),
            field("Name", ColumnType::Varchar(20)),
            field(
                "AnnualRevenue",
                ColumnType::Numeric {
                    precision: 18,
                    scale: 2,
                },
            ),
            field("NumberOfEmployees", ColumnType::Integer),
            field("Founded__c", ColumnType::Date),
        ],
    }
}

pub(super) fn record(id: &str, stamp: &str, name: &str) -> Record {
    let value = json!({
        "attributes": {"type": "Account", "url": format!("/services/data/v62.0/sobjects/Account/{id}")},
        "Id": id, "SystemModstamp": stamp, "IsDeleted": false, "Name": name,
        "AnnualRevenue": 1.5e7, "NumberOfEmployees": 12, "Founded__c": "1999-12-31",
    });
    match value {
        serde_json::Value::Object(map) => map,
        _ => unreachable!(),
    }
}

pub(super) async fn mirror_table(db: &TestDatabase) -> Client {
    let mut client = db.connect().await;
    // The sync origin's key lives in the control schema.
    sfpg_control::apply_control_schema(&mut client)
        .await
        .unwrap();
    let plan = plan();
    mirror::create_schema(&client, &plan.schema).await.unwrap();
    mirror::create_table(&client, &plan.schema, &plan.table, &plan.columns())
        .await
        .unwrap();
    client
}

pub(super) async fn write(
    client: &mut Client,
    records: &[Record],
    strategy: WriteStrategy,
) -> Upserted {
    let plan = plan();
    let rows = Rows::from_records("Account", plan.fields.iter().collect(), records).unwrap();
    let transaction = begin(client, Duration::from_secs(2)).await.unwrap();
    let upserted = upsert(&transaction, &plan, &rows, strategy).await.unwrap();
    transaction.commit().await.unwrap();
    upserted
}

async fn names(client: &Client) -> Vec<(String, String, String)> {
    client
        .query(
            "SELECT sfid, name, systemmodstamp::text FROM acme.account ORDER BY sfid",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

const A: &str = "001000000000001AAA";
const B: &str = "001000000000002AAA";

async fn upserts_skip_unchanged_rows_with(strategy: WriteStrategy) {
    let db = TestDatabase::create().await;
    let mut client = mirror_table(&db).await;
    let t1 = "2024-03-01T12:00:00.000+0000";
    let t2 = "2024-03-01T12:00:05.000+0000";

    let first = write(
        &mut client,
        &[record(A, t1, "Acme"), record(B, t1, "Globex")],
        strategy,
    )
    .await;
    assert_eq!(
        first,
        Upserted {
            inserted: 2,
            written: 2
        }
    );

    // The overlap window reads the same records again: nothing is rewritten.
    let again = write(
        &mut client,
        &[record(A, t1, "Acme"), record(B, t1, "Globex")],
        strategy,
    )
    .await;
    assert_eq!(
        again,
        Upserted {
            inserted: 0,
            written: 0
        }
    );

    // Changed twice within one second: same stamp, new value, and the later value wins.
    let same_second = write(&mut client, &[record(A, t1, "Acme Corp")], strategy).await;
    assert_eq!(
        same_second,
        Upserted {
            inserted: 0,
            written: 1
        }
    );

    // An older copy never overwrites a newer one (the proxy may have written it).
    write(&mut client, &[record(B, t2, "Globex Inc")], strategy).await;
    let stale = write(&mut client, &[record(B, t1, "Globex (old)")], strategy).await;
    assert_eq!(stale.written, 0);

    assert_eq!(
        names(&client).await,
        [
            (
                A.to_owned(),
                "Acme Corp".to_owned(),
                "2024-03-01 12:00:00+00".to_owned()
            ),
            (
                B.to_owned(),
                "Globex Inc".to_owned(),
                "2024-03-01 12:00:05+00".to_owned()
            ),
        ]
    );
    let row = client
        .query_one("SELECT annualrevenue::text, numberofemployees, founded__c::text FROM acme.account WHERE sfid = $1", &[&A])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "15000000.00");
    assert_eq!(row.get::<_, i32>(1), 12);
    assert_eq!(row.get::<_, String>(2), "1999-12-31");
}

#[tokio::test]
async fn unnest_upserts_skip_unchanged_rows_and_keep_the_latest() {
    upserts_skip_unchanged_rows_with(WriteStrategy::Unnest).await;
}

#[tokio::test]
async fn copy_merge_upserts_skip_unchanged_rows_and_keep_the_latest() {
    upserts_skip_unchanged_rows_with(WriteStrategy::CopyMerge).await;
}

#[tokio::test]
async fn awkward_text_survives_both_strategies() {
    let db = TestDatabase::create().await;
    let mut client = mirror_table(&db).await;
    let awkward = "tab\there\\ \"q\" é\nline";
    let mut a = record(A, "2024-03-01T12:00:00.000+0000", "x");
    a.insert(
        "Name".into(),
        json!(awkward.chars().take(20).collect::<String>()),
    );
    write(&mut client, &[a.clone()], WriteStrategy::CopyMerge).await;
    let copied: String = client
        .query_one("SELECT name FROM acme.account", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(copied, awkward.chars().take(20).collect::<String>());
    client
        .batch_execute("DELETE FROM acme.account")
        .await
        .unwrap();
    write(&mut client, &[a], WriteStrategy::Unnest).await;
    let unnested: String = client
        .query_one("SELECT name FROM acme.account", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(unnested, copied);
}

#[tokio::test]
async fn a_value_too_long_is_refused_not_truncated() {
    let db = TestDatabase::create().await;
    let mut client = mirror_table(&db).await;
    let plan = plan();
    let long = record(
        A,
        "2024-03-01T12:00:00.000+0000",
        "a name far longer than twenty characters",
    );
    let rows = Rows::from_records("Account", plan.fields.iter().collect(), &[long]).unwrap();
    for strategy in [WriteStrategy::Unnest, WriteStrategy::CopyMerge] {
        let transaction = begin(&mut client, Duration::from_secs(2)).await.unwrap();
        let error = upsert(&transaction, &plan, &rows, strategy)
            .await
            .unwrap_err();
        assert_eq!(error.sqlstate(), Some("22001"), "{error}");
        assert_eq!(error.reaction(), crate::Reaction::PauseObject);
    }
}

#[tokio::test]
async fn records_without_an_id_are_refused() {
    let plan = plan();
    let mut bad = record(A, "2024-03-01T12:00:00.000+0000", "x");
    bad.remove("Id");
    let error = Rows::from_records("Account", plan.fields.iter().collect(), &[bad]).unwrap_err();
    assert!(error.to_string().contains("without an Id"), "{error}");
}

#[tokio::test]
async fn column_updates_touch_only_their_columns_and_existing_rows() {
    let db = TestDatabase::create().await;
    let mut client = mirror_table(&db).await;
    write(
        &mut client,
        &[record(A, "2024-03-01T12:00:00.000+0000", "Acme")],
        WriteStrategy::Unnest,
    )
    .await;
    let plan = plan();
    let fields = vec![
        plan.field("Id").unwrap(),
        plan.field("NumberOfEmployees").unwrap(),
    ];
    let page: Vec<Record> = [(A, 99), (B, 5)]
        .iter()
        .map(|(id, n)| match json!({"Id": id, "NumberOfEmployees": n}) {
            serde_json::Value::Object(map) => map,
            _ => unreachable!(),
        })
        .collect();
    let rows = Rows::from_records("Account", fields, &page).unwrap();
    let transaction = begin(&mut client, Duration::from_secs(2)).await.unwrap();
    assert_eq!(update_columns(&transaction, &plan, &rows).await.unwrap(), 1);
    // The same values again change nothing.
    assert_eq!(update_columns(&transaction, &plan, &rows).await.unwrap(), 0);
    transaction.commit().await.unwrap();
    let row = client
        .query_one(
            "SELECT numberofemployees, name, (SELECT count(*) FROM acme.account) FROM acme.account",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (
            row.get::<_, i32>(0),
            row.get::<_, String>(1),
            row.get::<_, i64>(2)
        ),
        (99, "Acme".to_owned(), 1)
    );
}

#[tokio::test]
async fn deletes_by_id_and_by_absence_within_a_range() {
    let db = TestDatabase::create().await;
    let mut client = mirror_table(&db).await;
    let stamp = "2024-03-01T12:00:00.000+0000";
    let ids = [
        "001000000000001AAA",
        "001000000000002AAA",
        "001000000000003AAA",
        "001000000000004AAA",
        "001000000000005AAA",
    ];
    let records: Vec<Record> = ids.iter().map(|id| record(id, stamp, "x")).collect();
    write(&mut client, &records, WriteStrategy::Unnest).await;
    // A row the proxy created and has not pushed yet has a provisional sfid (the column's
    // default); nothing may touch it.
    client
        .batch_execute("INSERT INTO acme.account (name) VALUES ('pending')")
        .await
        .unwrap();
    let plan = plan();

    let transaction = begin(&mut client, Duration::from_secs(2)).await.unwrap();
    assert_eq!(
        delete(&transaction, &plan, &[ids[0].to_owned()])
            .await
            .unwrap(),
        1
    );
    // A reconciliation page that saw ids[2] in (ids[0], ids[3]]: ids[1] is gone.
    let present = vec![ids[2].to_owned()];
    let range = IdRange {
        after: Some(ids[0]),
        upto: Some(ids[3]),
    };
    let now = chrono::Utc::now();
    assert_eq!(
        delete_absent(&transaction, &plan, range, &present, now)
            .await
            .unwrap(),
        (2, vec![])
    );
    transaction.commit().await.unwrap();
    let left: Vec<Option<String>> = client
        .query(
            "SELECT sfid FROM acme.account ORDER BY sfid NULLS LAST",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        left[..2],
        [Some(ids[2].to_owned()), Some(ids[4].to_owned())]
    );
    assert!(
        left[2]
            .as_deref()
            .is_some_and(sfpg_control::mirror::is_provisional_sfid),
        "{left:?}"
    );

    // The last page has no upper bound; a row stamped after the page was asked for is
    // spared (the proxy may have just created it).
    write(
        &mut client,
        &[record(
            "001000000000006AAA",
            "2024-03-01T12:00:10.000+0000",
            "new",
        )],
        WriteStrategy::Unnest,
    )
    .await;
    let asked_at = "2024-03-01T12:00:05Z".parse().unwrap();
    let transaction = begin(&mut client, Duration::from_secs(2)).await.unwrap();
    let open_ended = IdRange {
        after: Some(ids[2]),
        upto: None,
    };
    assert_eq!(
        delete_absent(&transaction, &plan, open_ended, &[], asked_at)
            .await
            .unwrap(),
        (1, vec![])
    );
    transaction.commit().await.unwrap();
    let left: i64 = client
        .query_one(
            "SELECT count(*) FROM acme.account WHERE sfid NOT LIKE '~%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 2);
}

#[tokio::test]
async fn a_row_locked_by_another_session_times_out_quickly() {
    let db = TestDatabase::create().await;
    let mut client = mirror_table(&db).await;
    write(
        &mut client,
        &[record(A, "2024-03-01T12:00:00.000+0000", "Acme")],
        WriteStrategy::Unnest,
    )
    .await;
    let mut proxy = db.connect().await;
    let held = proxy.transaction().await.unwrap();
    held.batch_execute("SELECT * FROM acme.account FOR UPDATE")
        .await
        .unwrap();

    let plan = plan();
    let newer = record(A, "2024-03-01T12:00:09.000+0000", "Acme 2");
    let rows = Rows::from_records("Account", plan.fields.iter().collect(), &[newer]).unwrap();
    let started = std::time::Instant::now();
    let transaction = begin(&mut client, Duration::from_millis(200))
        .await
        .unwrap();
    let error = upsert(&transaction, &plan, &rows, WriteStrategy::Unnest)
        .await
        .unwrap_err();
    assert!(error.is_lock_timeout(), "{error}");
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(transaction);
    held.rollback().await.unwrap();
}

#[tokio::test]
async fn writes_carry_the_sync_origin() {
    let db = TestDatabase::create().await;
    let mut client = mirror_table(&db).await;
    let transaction = begin(&mut client, Duration::from_secs(2)).await.unwrap();
    let origin: String = transaction
        .query_one("SELECT current_setting('sfpg.origin')", &[])
        .await
        .unwrap()
        .get(0);
    let key: String = transaction
        .query_one("SELECT key FROM sfpg.origin_key", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(origin, format!("sync:{key}"));
    transaction.commit().await.unwrap();
    // Transaction-local: gone after commit.
    let after: Option<String> = client
        .query_one("SELECT current_setting('sfpg.origin', true)", &[])
        .await
        .unwrap()
        .get(0);
    assert!(after.is_none_or(|v| v.is_empty()));
}

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
        let transaction = begin(&mut client, Duration::from_secs(5)).await.unwrap();
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
async fn the_capture_triggers_let_the_sync_through_without_capturing_it() {
    let db = TestDatabase::create().await;
    let mut client = db.connect().await;
    sfpg_control::apply_control_schema(&mut client)
        .await
        .unwrap();
    let plan = plan();
    mirror::create_schema(&client, &plan.schema).await.unwrap();
    mirror::create_table(&client, &plan.schema, &plan.table, &plan.columns())
        .await
        .unwrap();
    sfpg_control::capture::install_capture_trigger(&client, &plan.schema, &plan.table)
        .await
        .unwrap();

    for strategy in [WriteStrategy::CopyMerge, WriteStrategy::Unnest] {
        let stamp = "2024-03-01T12:00:00.000+0000";
        write(
            &mut client,
            &[record(A, stamp, "Acme"), record(B, stamp, "Globex")],
            strategy,
        )
        .await;
        let transaction = begin(&mut client, Duration::from_secs(2)).await.unwrap();
        delete(&transaction, &plan, &[A.to_owned(), B.to_owned()])
            .await
            .unwrap();
        let pending: i64 = transaction
            .query_one("SELECT count(*) FROM sfpg.pending_changes", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(pending, 0, "the sync's writes were captured");
        transaction.commit().await.unwrap();
    }
    // Anyone else is refused.
    let error = client
        .batch_execute("INSERT INTO acme.account (sfid) VALUES ('001000000000009AAA')")
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("sfpg proxy")
            || error
                .as_db_error()
                .is_some_and(|e| e.message().contains("mirrors Salesforce")),
        "{error}"
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
        let transaction = begin(client, Duration::from_secs(2)).await.unwrap();
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
    let cases: &[(ColumnType, &[&str])] = &[
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
    for (column_type, values) in cases {
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
        let data = binary::encode(&[ColumnType::Integer, *column_type], &columns)
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
}
