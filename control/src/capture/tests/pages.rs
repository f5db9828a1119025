//! Taking the captured changes a page of rows at a time (migration V21): each page holds
//! every change of its rows, no row straddles two pages, and nothing is left behind; and
//! what an UPDATE records (V22).

use std::collections::BTreeSet;

use super::*;

/// The local ids of the rows a page's changes are of, and the changes' sequence numbers.
fn rows_and_seqs(changes: &[PendingChange]) -> (BTreeSet<i64>, Vec<i64>) {
    let rows = changes.iter().filter_map(|c| c.row_id).collect();
    let seqs = changes.iter().map(|c| c.seq).collect();
    (rows, seqs)
}

/// The next page of `rows` rows after `after` (the last row of the page before).
async fn take_page(
    tx: &tokio_postgres::Transaction<'_>,
    ticket: &str,
    rows: i32,
    after: Option<&PendingChange>,
) -> String {
    let after_table = after.map(|c| c.table_oid.to_string());
    let after_row = after.and_then(|c| c.row_id).map(|id| id.to_string());
    tx.query_one(
        TAKE_PENDING_PAGE_SQL,
        &[&ticket, &rows.to_string(), &after_table, &after_row],
    )
    .await
    .unwrap()
    .get(0)
}

/// The change of the page's last row (by table and local id).
fn last_row(page: &[PendingChange]) -> Option<&PendingChange> {
    page.iter().max_by_key(|c| (c.table_oid, c.row_id))
}

#[tokio::test]
async fn pages_hold_whole_rows_in_capture_order_until_none_is_left() {
    let db = TestDatabase::create().await;
    let mut client = mirrored(&db).await;
    as_sync(
        &client,
        "INSERT INTO salesforce.account (id, sfid, name) VALUES
           (1, '001000000000001AAA', 'a'), (2, '001000000000002AAA', 'b'),
           (3, '001000000000003AAA', 'c'), (4, '001000000000004AAA', 'd')",
    )
    .await;
    client
        .batch_execute("SET sfpg.origin = 'proxy'")
        .await
        .unwrap();
    let tx = client.transaction().await.unwrap();
    // Rows 3 and 1 change first, a new row (id 5) comes between two changes of row 3.
    tx.batch_execute(
        "UPDATE salesforce.account SET name = 'c1' WHERE id = 3;
         UPDATE salesforce.account SET name = 'a1' WHERE id = 1;
         INSERT INTO salesforce.account (id, name) VALUES (5, 'e');
         UPDATE salesforce.account SET billingcity = 'Lyon' WHERE id = 3;
         DELETE FROM salesforce.account WHERE id = 2;
         UPDATE salesforce.account SET name = 'e1' WHERE id = 5",
    )
    .await
    .unwrap();
    let ticket = ticket_of(&db, &tx).await;

    let first = parse_pending(&take_page(&tx, &ticket, 2, None).await).unwrap();
    let (rows, seqs) = rows_and_seqs(&first);
    assert_eq!(rows, BTreeSet::from([1, 2]));
    assert!(seqs.is_sorted(), "{seqs:?}");
    let operations: Vec<Operation> = first.iter().map(|c| c.operation).collect();
    assert_eq!(operations, vec![Operation::Update, Operation::Delete]);
    // A row only updated comes with the columns it changed, its id and sfid; a deleted row
    // whole.
    let columns = |image: &Option<serde_json::Map<String, serde_json::Value>>| {
        let mut columns: Vec<String> = image.iter().flat_map(|i| i.keys().cloned()).collect();
        columns.sort();
        columns
    };
    assert_eq!(columns(&first[0].old), ["id", "name", "sfid"]);
    assert_eq!(columns(&first[0].new), ["id", "name", "sfid"]);
    assert_eq!(first[0].new.as_ref().unwrap()["name"], "a1");
    assert!(columns(&first[1].old).contains(&"billingcity".to_owned()));

    // Row 4 did not change: the next two rows are 3 and 5, each with both its changes.
    let second = parse_pending(&take_page(&tx, &ticket, 2, last_row(&first)).await).unwrap();
    let (rows, seqs) = rows_and_seqs(&second);
    assert_eq!(rows, BTreeSet::from([3, 5]));
    assert_eq!(second.len(), 4);
    assert!(seqs.is_sorted(), "{seqs:?}");
    assert_eq!(second[0].row_id, Some(3));
    assert_eq!(second[3].row_id, Some(5));
    // Row 3's two updates: each whole (the push cuts the images of a row changed more
    // than once itself), with the values of each change.
    assert!(columns(&second[0].old).contains(&"isdeleted".to_owned()));
    assert_eq!(second[0].new.as_ref().unwrap()["name"], "c1");
    assert_eq!(
        second[0].new.as_ref().unwrap()["billingcity"],
        serde_json::Value::Null
    );
    assert_eq!(second[2].new.as_ref().unwrap()["billingcity"], "Lyon");
    // Row 5, created here: its whole row.
    assert!(columns(&second[1].new).contains(&"billingcity".to_owned()));

    assert_eq!(take_page(&tx, &ticket, 2, last_row(&second)).await, "[]");
    // Everything was taken: the transaction may commit.
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn a_page_needs_the_ticket_and_at_least_one_row() {
    let db = TestDatabase::create().await;
    let mut client = mirrored(&db).await;
    client
        .batch_execute("SET sfpg.origin = 'proxy'")
        .await
        .unwrap();
    let tx = client.transaction().await.unwrap();
    tx.batch_execute("INSERT INTO salesforce.account (name) VALUES ('x')")
        .await
        .unwrap();
    tx.batch_execute("SAVEPOINT s").await.unwrap();
    let error = tx
        .query_one(
            TAKE_PENDING_PAGE_SQL,
            &[&"guess", &"10", &None::<String>, &None::<String>],
        )
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE));
    tx.batch_execute("ROLLBACK TO SAVEPOINT s").await.unwrap();
    let ticket = ticket_of(&db, &tx).await;
    let error = tx
        .query_one(
            TAKE_PENDING_PAGE_SQL,
            &[&ticket, &"0", &None::<String>, &None::<String>],
        )
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(&SqlState::INVALID_PARAMETER_VALUE));
}

/// The changed columns of an UPDATE are those whose values differ, in the images' key
/// order (jsonb's: shorter names first) whatever order the statement set them in (V23
/// reads them off the two images); an UPDATE that sets a column to the value it has
/// records nothing.
#[tokio::test]
async fn an_update_records_its_changed_columns_in_the_images_key_order() {
    let db = TestDatabase::create().await;
    let mut client = mirrored(&db).await;
    as_sync(
        &client,
        "INSERT INTO salesforce.account (id, sfid, name, billingcity) VALUES
           (1, '001000000000001AAA', 'a', 'Paris')",
    )
    .await;
    client
        .batch_execute("SET sfpg.origin = 'proxy'")
        .await
        .unwrap();
    let tx = client.transaction().await.unwrap();
    tx.batch_execute(
        "UPDATE salesforce.account SET billingcity = 'Lyon', name = 'b' WHERE id = 1;
         UPDATE salesforce.account SET name = 'b', billingcity = 'Lyon' WHERE id = 1;
         UPDATE salesforce.account SET billingcity = 'Nice', name = 'b' WHERE id = 1",
    )
    .await
    .unwrap();
    let ticket = ticket_of(&db, &tx).await;
    let changes = parse_pending(&take_page(&tx, &ticket, 10, None).await).unwrap();
    let changed: Vec<Vec<String>> = changes
        .iter()
        .map(|c| c.changed.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        changed,
        vec![
            vec!["name".to_owned(), "billingcity".to_owned()],
            vec!["billingcity".to_owned()],
        ]
    );
    let last = &changes[1];
    assert_eq!(last.old.as_ref().unwrap()["billingcity"], "Lyon");
    assert_eq!(last.new.as_ref().unwrap()["billingcity"], "Nice");
    assert_eq!(last.row_id, Some(1));
    tx.commit().await.unwrap();
}
