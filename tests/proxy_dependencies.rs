//! Several objects in one transaction through the proxy: a new row's provisional sfid in
//! another new row's lookup, pushed parents first in one atomic Composite request, every
//! provisional value replaced by the real Id before COMMIT; and a refusal anywhere in the
//! request leaves both Salesforce and the mirror as they were.

// Helpers of a test crate may unwrap: a failure should stop the test where it happened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;
use sfpg_testkit::world::World;
use tokio_postgres::error::SqlState;

/// Rows of the mirror whose sfid (or a lookup) still holds a provisional value.
async fn provisional_rows(world: &World) -> i64 {
    world
        .direct()
        .await
        .query_one(
            "SELECT (SELECT count(*) FROM salesforce.account WHERE sfid LIKE '~%')
                  + (SELECT count(*) FROM salesforce.contact
                      WHERE sfid LIKE '~%' OR accountid LIKE '~%')",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

async fn mirror_count(world: &World, table: &str) -> i64 {
    world
        .direct()
        .await
        .query_one(&format!("SELECT count(*) FROM salesforce.{table}"), &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn a_parent_and_its_child_created_in_one_transaction_reach_salesforce_linked() {
    let world = World::start(&["Account", "Contact"], 20).await;
    let client = world.client().await;
    let pushes = world.composite_calls();

    client.batch_execute("BEGIN").await.unwrap();
    let provisional: String = client
        .query_one(
            "INSERT INTO salesforce.account (name) VALUES ('Parent Co') RETURNING sfid",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        provisional.starts_with('~') && provisional.len() == 18,
        "{provisional}"
    );
    client
        .execute(
            "INSERT INTO salesforce.contact (lastname, accountid) VALUES ('Child', $1)",
            &[&provisional],
        )
        .await
        .unwrap();
    client.batch_execute("COMMIT").await.unwrap();

    // One Composite request carried both.
    assert_eq!(world.composite_calls(), pushes + 1);
    let row = world
        .direct()
        .await
        .query_one(
            "SELECT a.sfid, c.sfid, c.accountid
               FROM salesforce.contact c JOIN salesforce.account a ON a.name = 'Parent Co'
              WHERE c.lastname = 'Child'",
            &[],
        )
        .await
        .unwrap();
    let (account, contact, lookup): (String, String, String) = (row.get(0), row.get(1), row.get(2));
    assert!(account.starts_with("001"), "{account}");
    assert!(contact.starts_with("003"), "{contact}");
    assert_eq!(lookup, account);
    let record = world
        .org_record("Contact", &contact, &["LastName", "AccountId"])
        .unwrap();
    assert_eq!(record["AccountId"], json!(account));
    assert_eq!(provisional_rows(&world).await, 0);
    world.assert_mirror_equals_org("Account").await;
    world.assert_mirror_equals_org("Contact").await;
}

#[tokio::test]
async fn an_autocommit_statement_returns_real_ids_for_a_parent_and_child() {
    let world = World::start(&["Account", "Contact"], 20).await;
    let client = world.client().await;
    // Autocommit: RETURNING sfid of a lone insert is the real Id.
    let sfid: String = client
        .query_one(
            "INSERT INTO salesforce.account (name) VALUES ('Alone Co') RETURNING sfid",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(sfid.starts_with("001"), "{sfid}");
    // A parent and child in one statement: the child's lookup comes back as the real Id.
    let row = client
        .query_one(
            "WITH parent AS (INSERT INTO salesforce.account (name) VALUES ('CTE Co') RETURNING sfid)
             INSERT INTO salesforce.contact (lastname, accountid)
             SELECT 'CTE child', sfid FROM parent RETURNING sfid, accountid",
            &[],
        )
        .await
        .unwrap();
    let (contact, lookup): (String, String) = (row.get(0), row.get(1));
    assert!(contact.starts_with("003"), "{contact}");
    assert!(lookup.starts_with("001"), "{lookup}");
    let record = world
        .org_record("Contact", &contact, &["AccountId"])
        .unwrap();
    assert_eq!(record["AccountId"], json!(lookup));
    let parent = world.org_record("Account", &lookup, &["Name"]).unwrap();
    assert_eq!(parent["Name"], json!("CTE Co"));
    assert_eq!(provisional_rows(&world).await, 0);
    world.assert_mirror_equals_org("Account").await;
    world.assert_mirror_equals_org("Contact").await;
}

#[tokio::test]
async fn a_refused_child_leaves_neither_record_anywhere() {
    let world = World::start(&["Account", "Contact"], 20).await;
    let client = world.client().await;
    let accounts = (
        world.org_count("Account"),
        mirror_count(&world, "account").await,
    );
    let contacts = (
        world.org_count("Contact"),
        mirror_count(&world, "contact").await,
    );

    client.batch_execute("BEGIN").await.unwrap();
    let provisional: String = client
        .query_one(
            "INSERT INTO salesforce.account (name) VALUES ('Doomed Parent') RETURNING sfid",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    // LastName is required: Salesforce refuses the child.
    client
        .execute(
            "INSERT INTO salesforce.contact (firstname, accountid) VALUES ('No last name', $1)",
            &[&provisional],
        )
        .await
        .unwrap();
    let error = client.batch_execute("COMMIT").await.unwrap_err();
    let db = error.as_db_error().unwrap_or_else(|| panic!("{error}"));
    assert_eq!(db.code(), &SqlState::NOT_NULL_VIOLATION, "{db}");
    assert_eq!(db.detail(), Some("REQUIRED_FIELD_MISSING"), "{db}");
    assert_eq!(db.table(), Some("contact"), "{db}");
    assert_eq!(db.column(), Some("lastname"), "{db}");

    assert_eq!(
        (
            world.org_count("Account"),
            mirror_count(&world, "account").await
        ),
        accounts
    );
    assert_eq!(
        (
            world.org_count("Contact"),
            mirror_count(&world, "contact").await
        ),
        contacts
    );
    let parent: i64 = world
        .direct()
        .await
        .query_one(
            "SELECT count(*) FROM salesforce.account WHERE name = 'Doomed Parent'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(parent, 0);
    world.assert_mirror_equals_org("Account").await;
    world.assert_mirror_equals_org("Contact").await;
}

#[tokio::test]
async fn a_refused_delete_rolls_back_the_update_before_it() {
    let world = World::start(&["Account", "Contact"], 20).await;
    let client = world.client().await;
    let direct = world.direct().await;
    let (account_id, account): (i64, String) = {
        let row = direct
            .query_one(
                "SELECT id, sfid FROM salesforce.account ORDER BY id LIMIT 1",
                &[],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };
    let contact: String = direct
        .query_one(
            "SELECT sfid FROM salesforce.contact ORDER BY id LIMIT 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let name_before = world.mirror_value("account", &account, "name").await;

    client.batch_execute("BEGIN").await.unwrap();
    client
        .execute(
            "UPDATE salesforce.account SET name = 'Renamed in vain' WHERE id = $1",
            &[&account_id],
        )
        .await
        .unwrap();
    client
        .execute(
            "DELETE FROM salesforce.contact WHERE sfid = $1",
            &[&contact],
        )
        .await
        .unwrap();
    // Someone deletes the contact in Salesforce meanwhile: the push's delete is refused
    // (ENTITY_IS_DELETED), after the update in the same request has run.
    world.delete_in_org("Contact", &contact);
    let error = client.batch_execute("COMMIT").await.unwrap_err();
    let db = error.as_db_error().unwrap_or_else(|| panic!("{error}"));
    assert_eq!(db.detail(), Some("ENTITY_IS_DELETED"), "{db}");
    assert_eq!(db.table(), Some("contact"), "{db}");

    // The update was rolled back with the delete: true atomicity, nothing to undo.
    let record = world.org_record("Account", &account, &["Name"]).unwrap();
    assert_eq!(
        Some(record["Name"].as_str().unwrap().to_owned()),
        name_before
    );
    assert_eq!(
        world.mirror_value("account", &account, "name").await,
        name_before
    );
    // The mirror still has the contact the transaction meant to delete.
    assert!(
        world
            .mirror_value("contact", &contact, "sfid")
            .await
            .is_some()
    );
    world.assert_mirror_equals_org("Account").await;
}
