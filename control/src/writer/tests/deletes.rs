//! Deletes by Id, and the reconciliation's delete by absence within a range of Ids.

use super::*;

const IDS: [&str; 5] = [
    "001000000000001AAA",
    "001000000000002AAA",
    "001000000000003AAA",
    "001000000000004AAA",
    "001000000000005AAA",
];

#[tokio::test]
async fn deletes_by_id_and_by_absence_within_a_range() {
    let db = TestDatabase::create().await;
    let mut client = mirror_table(&db).await;
    let stamp = "2024-03-01T12:00:00.000+0000";
    let ids = IDS;
    let records: Vec<Record> = ids.iter().map(|id| record(id, stamp, "x")).collect();
    write(&mut client, &records, WriteStrategy::Unnest).await;
    // A row the proxy created and has not pushed yet has a provisional sfid (the column's
    // default); nothing may touch it.
    client
        .batch_execute("INSERT INTO acme.account (name) VALUES ('pending')")
        .await
        .unwrap();
    let plan = plan();

    let transaction = begin(&mut client, Some(Duration::from_secs(2)))
        .await
        .unwrap();
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
    assert_eq!(ids_left(&client).await, [ids[2], ids[4]]);
}

/// The last page of a reconciliation has no upper bound; a row stamped after the page was
/// asked for is spared (the proxy may have just created it), as is a provisional sfid.
#[tokio::test]
async fn an_open_ended_range_spares_rows_newer_than_the_page() {
    let db = TestDatabase::create().await;
    let mut client = mirror_table(&db).await;
    let mut records: Vec<Record> = IDS
        .iter()
        .map(|id| record(id, "2024-03-01T12:00:00.000+0000", "x"))
        .collect();
    records.push(record(
        "001000000000006AAA",
        "2024-03-01T12:00:10.000+0000",
        "new",
    ));
    write(&mut client, &records, WriteStrategy::Unnest).await;
    client
        .batch_execute("INSERT INTO acme.account (name) VALUES ('pending')")
        .await
        .unwrap();
    let asked_at = "2024-03-01T12:00:05Z".parse().unwrap();
    let transaction = begin(&mut client, Some(Duration::from_secs(2)))
        .await
        .unwrap();
    let open_ended = IdRange {
        after: Some(IDS[2]),
        upto: None,
    };
    assert_eq!(
        delete_absent(&transaction, &plan(), open_ended, &[], asked_at)
            .await
            .unwrap(),
        (2, vec![])
    );
    transaction.commit().await.unwrap();
    assert_eq!(
        ids_left(&client).await,
        [IDS[0], IDS[1], IDS[2], "001000000000006AAA"]
    );
}

/// The table's Salesforce Ids, in order, once it is checked that the row with a
/// provisional sfid (the proxy's, not pushed yet) is still there.
async fn ids_left(client: &Client) -> Vec<String> {
    let mut left: Vec<Option<String>> = client
        .query(
            "SELECT sfid FROM acme.account ORDER BY sfid NULLS LAST",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let provisional = left.pop().flatten();
    assert!(
        provisional
            .as_deref()
            .is_some_and(crate::mirror::is_provisional_sfid),
        "{provisional:?} after {left:?}"
    );
    left.into_iter().flatten().collect()
}
