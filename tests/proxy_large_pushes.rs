//! A push of more records of one object than one sObject Collections call carries: right
//! after COMMIT, every row holds what Salesforce holds, field for field, the fields it
//! computes (the auto-number `Name`, the formula `Total__c`, `SystemModstamp`) included.
//! The read-back of such a push takes more than one Collections retrieve.

// Helpers of a test crate may unwrap: a failure should stop the test where it happened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sfpg_testkit::world::World;

/// Inserts `count` invoices in one transaction through the proxy and checks the mirror
/// against the org at once, without a sync turn in between.
async fn insert_invoices_in_one_transaction(world: &World, count: usize) {
    let client = world.client().await;
    let account = world.account_sfids(1).await.remove(0);
    let before = world.org_count("Invoice__c");
    client.batch_execute("BEGIN").await.unwrap();
    client
        .execute(
            "INSERT INTO salesforce.invoice__c (account__c, amount__c, tax__c, status__c)
             SELECT $1, n, 20, 'Draft' FROM generate_series(1, $2::int) AS n",
            &[&account, &i32::try_from(count).unwrap()],
        )
        .await
        .unwrap();
    client.batch_execute("COMMIT").await.unwrap();
    assert_eq!(world.org_count("Invoice__c"), before + count);
    // Nothing computed by Salesforce is missing or stale in the rows just committed.
    let unread: i64 = world
        .direct()
        .await
        .query_one(
            "SELECT count(*) FROM salesforce.invoice__c
              WHERE name IS NULL OR total__c IS NULL OR systemmodstamp IS NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(unread, 0, "rows without what Salesforce computed");
    world.assert_mirror_equals_org("Invoice__c").await;
}

#[tokio::test]
async fn a_push_of_201_records_of_one_object_leaves_the_mirror_equal_to_the_org() {
    let world = World::start(&["Account", "Invoice__c"], 20).await;
    insert_invoices_in_one_transaction(&world, 201).await;
}

#[tokio::test]
async fn a_push_of_1000_records_of_one_object_leaves_the_mirror_equal_to_the_org() {
    let world = World::start(&["Account", "Invoice__c"], 20).await;
    insert_invoices_in_one_transaction(&world, 1000).await;
}
