//! Whole records and columns into the mirror: upserts that skip unchanged rows and keep
//! the latest copy, values that survive both strategies or are refused, column updates.

use super::*;

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
        let transaction = begin(&mut client, Some(Duration::from_secs(2)))
            .await
            .unwrap();
        let error = upsert(&transaction, &plan, &rows, strategy)
            .await
            .unwrap_err();
        assert_eq!(
            error.code(),
            Some(&SqlState::STRING_DATA_RIGHT_TRUNCATION),
            "{error}"
        );
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
    let transaction = begin(&mut client, Some(Duration::from_secs(2)))
        .await
        .unwrap();
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
