//! Writes through the proxy reach the emulated org with the right values, and afterwards
//! the mirror equals the org; refusals come back as the design's SQLSTATEs and change
//! nothing on either side; transactions are atomic.

// Helpers of a test crate may unwrap: a failure should stop the test where it happened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;
use sfpg_testkit::world::World;
use tokio_postgres::error::SqlState;

#[tokio::test]
async fn autocommit_writes_reach_salesforce_and_the_mirror_follows() {
    let world = World::start(&["Account"], 40).await;
    let client = world.client().await;

    // INSERT … RETURNING sfid: the new Salesforce Id, at once; the local id too.
    let row = client
        .query_one(
            "INSERT INTO salesforce.account (name, billingcity) VALUES ($1, $2) RETURNING id, sfid",
            &[&"Proxy Co", &"Lyon"],
        )
        .await
        .unwrap();
    let id: i64 = row.get(0);
    let sfid: String = row.get(1);
    assert_eq!(sfid.len(), 18);
    assert!(sfid.starts_with("001"), "{sfid}");
    let record = world
        .org_record("Account", &sfid, &["Name", "BillingCity"])
        .unwrap();
    assert_eq!(record["Name"], json!("Proxy Co"));
    assert_eq!(record["BillingCity"], json!("Lyon"));
    // What Salesforce set is in the mirror row, committed.
    let stamp = world.mirror_value("account", &sfid, "systemmodstamp").await;
    assert!(stamp.is_some());

    // UPDATE in the simple protocol: only the changed field goes.
    client
        .batch_execute(&format!(
            "UPDATE salesforce.account SET billingcity = 'Paris' WHERE id = {id}"
        ))
        .await
        .unwrap();
    let record = world
        .org_record("Account", &sfid, &["BillingCity"])
        .unwrap();
    assert_eq!(record["BillingCity"], json!("Paris"));

    // A simple-protocol RETURNING sfid gets patched too.
    let rows = client
        .simple_query(
            "INSERT INTO salesforce.account (name) VALUES ('Second'), ('Third') RETURNING sfid",
        )
        .await
        .unwrap();
    let returned: Vec<String> = rows
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
            _ => None,
        })
        .collect();
    assert_eq!(returned.len(), 2);
    for sfid in &returned {
        assert!(
            world.org_record("Account", sfid, &["Name"]).is_some(),
            "{sfid}"
        );
    }

    client
        .execute("DELETE FROM salesforce.account WHERE sfid = $1", &[&sfid])
        .await
        .unwrap();
    assert!(world.org_record("Account", &sfid, &["Name"]).is_none());
    world.assert_mirror_equals_org("Account").await;
}

#[tokio::test]
async fn refusals_carry_the_designs_sqlstate_and_change_nothing() {
    let world = World::start(&["Account", "Invoice__c"], 40).await;
    let client = world.client().await;
    let account = world.account_sfids(1).await.remove(0);
    let invoices_before = world.org_count("Invoice__c");
    let calls_before = world.collection_calls();

    // A validation rule.
    let negative = format!(
        "INSERT INTO salesforce.invoice__c (account__c, amount__c) VALUES ('{account}', -5)"
    );
    let rule = (
        SqlState::CHECK_VIOLATION,
        "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        Some("amount__c"),
    );
    assert_refused_as(&client, &negative, rule).await;

    // A required field (Account.Name).
    assert_refused_as(
        &client,
        "INSERT INTO salesforce.account (billingcity) VALUES ('Nowhere')",
        (
            SqlState::NOT_NULL_VIOLATION,
            "REQUIRED_FIELD_MISSING",
            Some("name"),
        ),
    )
    .await;

    // A duplicate external id: the first goes, the second is refused.
    client
        .batch_execute(&format!(
            "INSERT INTO salesforce.invoice__c (account__c, amount__c, external_id__c) VALUES ('{account}', 1, 'EXT-1')"
        ))
        .await
        .unwrap();
    let duplicate = format!(
        "INSERT INTO salesforce.invoice__c (account__c, amount__c, external_id__c) VALUES ('{account}', 2, 'EXT-1')"
    );
    let unique = (
        SqlState::UNIQUE_VIOLATION,
        "DUPLICATE_VALUE",
        Some("external_id__c"),
    );
    assert_refused_as(&client, &duplicate, unique).await;

    // A lookup to a record that does not exist.
    let dangling = "INSERT INTO salesforce.invoice__c (account__c, amount__c) VALUES ('001000000000000AAA', 1)";
    let foreign_key = (SqlState::FOREIGN_KEY_VIOLATION, "", Some("account__c"));
    assert_refused_as(&client, dangling, foreign_key).await;

    // A read-only field: refused by the proxy before anything is sent.
    let calls = world.collection_calls();
    assert_refused_as(
        &client,
        "UPDATE salesforce.invoice__c SET total__c = 10",
        (SqlState::GENERATED_ALWAYS, "", Some("total__c")),
    )
    .await;
    assert_refused_as(
        &client,
        "UPDATE salesforce.account SET systemmodstamp = now()",
        (SqlState::GENERATED_ALWAYS, "", Some("systemmodstamp")),
    )
    .await;
    assert_eq!(world.collection_calls(), calls);

    // Only the one good invoice reached the org, and the mirror agrees.
    assert_eq!(world.org_count("Invoice__c"), invoices_before + 1);
    assert!(world.collection_calls() > calls_before);
    world.assert_mirror_equals_org("Invoice__c").await;
    world.assert_mirror_equals_org("Account").await;
}

/// Runs `sql` through `client` and asserts it was refused with `state`, Salesforce's
/// `code` as the detail (when there is one), and the `column` at fault.
async fn assert_refused_as(
    client: &tokio_postgres::Client,
    sql: &str,
    (state, code, column): (SqlState, &str, Option<&str>),
) {
    let error = client.batch_execute(sql).await.unwrap_err();
    let db = error.as_db_error().unwrap_or_else(|| panic!("{error}"));
    assert_eq!(db.code(), &state, "{db}");
    if !code.is_empty() {
        assert_eq!(db.detail(), Some(code), "{db}");
    }
    assert_eq!(db.column(), column, "{db}");
}

/// Sets an Account's billing city through the proxy, in autocommit.
async fn set_city(
    client: &tokio_postgres::Client,
    id: i64,
    city: &str,
) -> Result<u64, tokio_postgres::Error> {
    client
        .execute(
            "UPDATE salesforce.account SET billingcity = $2 WHERE id = $1",
            &[&id, &city],
        )
        .await
}

#[tokio::test]
async fn an_explicit_transaction_pushes_several_objects_at_commit() {
    let world = World::start(&["Account", "Invoice__c"], 40).await;
    let client = world.client().await;
    let existing = world.accounts(2).await;
    let calls = world.collection_calls();
    client
        .batch_execute(&format!(
            "BEGIN;
             INSERT INTO salesforce.account (name, billingcity) VALUES ('Tx Co', 'Nantes');
             UPDATE salesforce.account SET billingcity = 'Lille' WHERE id = {};
             INSERT INTO salesforce.invoice__c (account__c, amount__c, tax__c) VALUES ('{}', 100, 20);",
            existing[0].0, existing[1].1
        ))
        .await
        .unwrap();
    // Nothing reaches Salesforce before COMMIT.
    assert_eq!(world.collection_calls(), calls);
    client.batch_execute("COMMIT").await.unwrap();
    let record = world
        .org_record("Account", &existing[0].1, &["BillingCity"])
        .unwrap();
    assert_eq!(record["BillingCity"], json!("Lille"));
    // The formula Salesforce computed is in the mirror.
    let total: String = world
        .direct()
        .await
        .query_one(
            "SELECT total__c::text FROM salesforce.invoice__c WHERE amount__c = 100",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(total.parse::<f64>().unwrap(), 120.0);
    world.assert_mirror_equals_org("Account").await;
    world.assert_mirror_equals_org("Invoice__c").await;
}

#[tokio::test]
async fn one_refused_record_leaves_all_three_unchanged_on_both_sides() {
    let world = World::start(&["Account"], 40).await;
    let client = world.client().await;
    let three = world.accounts(3).await;
    let before: Vec<String> = {
        let mut names = Vec::new();
        for (_, sfid) in &three {
            names.push(world.mirror_value("account", sfid, "name").await.unwrap());
        }
        names
    };
    client.batch_execute("BEGIN").await.unwrap();
    client
        .execute(
            "UPDATE salesforce.account SET name = 'Renamed 1' WHERE id = $1",
            &[&three[0].0],
        )
        .await
        .unwrap();
    // Name is required: Salesforce refuses this one.
    client
        .execute(
            "UPDATE salesforce.account SET name = NULL WHERE id = $1",
            &[&three[1].0],
        )
        .await
        .unwrap();
    client
        .execute(
            "UPDATE salesforce.account SET name = 'Renamed 3' WHERE id = $1",
            &[&three[2].0],
        )
        .await
        .unwrap();
    let error = client.batch_execute("COMMIT").await.unwrap_err();
    assert_eq!(error.code(), Some(&SqlState::NOT_NULL_VIOLATION), "{error}");
    for ((_, sfid), name) in three.iter().zip(&before) {
        assert_eq!(
            world.mirror_value("account", sfid, "name").await.as_ref(),
            Some(name)
        );
        let record = world.org_record("Account", sfid, &["Name"]).unwrap();
        assert_eq!(record["Name"], json!(name));
    }
    world.assert_mirror_equals_org("Account").await;
}

#[tokio::test]
async fn rolled_back_work_pushes_nothing() {
    let world = World::start(&["Account"], 40).await;
    let client = world.client().await;
    let calls = world.collection_calls();
    client
        .batch_execute("BEGIN; UPDATE salesforce.account SET name = 'Never'; ROLLBACK")
        .await
        .unwrap();
    client
        .batch_execute(
            "BEGIN; SAVEPOINT s; DELETE FROM salesforce.account; ROLLBACK TO SAVEPOINT s;
             SELECT count(*) FROM salesforce.account; COMMIT",
        )
        .await
        .unwrap();
    // A savepoint rolled back leaves only what came before it.
    let (id, sfid) = world.accounts(1).await.remove(0);
    client
        .batch_execute(&format!(
            "BEGIN; UPDATE salesforce.account SET billingcity = 'Kept' WHERE id = {id};
             SAVEPOINT s; UPDATE salesforce.account SET name = 'Dropped' WHERE id = {id};
             ROLLBACK TO SAVEPOINT s; COMMIT"
        ))
        .await
        .unwrap();
    let record = world
        .org_record("Account", &sfid, &["Name", "BillingCity"])
        .unwrap();
    assert_eq!(record["BillingCity"], json!("Kept"));
    assert_ne!(record["Name"], json!("Dropped"));
    // Only the last transaction called Salesforce: one Composite push, one read-back.
    assert_eq!(world.collection_calls(), calls + 2);
    world.assert_mirror_equals_org("Account").await;
}

#[tokio::test]
async fn an_expired_session_and_lock_contention_end_in_success() {
    let world = World::start(&["Account"], 40).await;
    let client = world.client().await;
    let (id, sfid) = world.accounts(1).await.remove(0);
    set_city(&client, id, "First").await.unwrap();
    // The session expires mid-way: the proxy's client logs in again and goes on.
    world.emulator.revoke_sessions(None, false);
    set_city(&client, id, "Second").await.unwrap();
    assert_eq!(
        world.org_field("Account", &sfid, "BillingCity"),
        json!("Second")
    );
    // UNABLE_TO_LOCK_ROW twice, then success.
    world.emulator.fail_next(
        sfpg_emulator::http::FailureRule::new(400, "UNABLE_TO_LOCK_ROW")
            .times(2)
            .matching(Some("POST"), "*/composite"),
    );
    set_city(&client, id, "Third").await.unwrap();
    assert_eq!(
        world.org_field("Account", &sfid, "BillingCity"),
        json!("Third")
    );
    // Contention that does not go away is 55P03.
    world.emulator.fail_next(
        sfpg_emulator::http::FailureRule::new(400, "UNABLE_TO_LOCK_ROW")
            .times(100)
            .matching(Some("POST"), "*/composite"),
    );
    let error = set_city(&client, id, "Fourth").await.unwrap_err();
    assert_eq!(error.code(), Some(&SqlState::LOCK_NOT_AVAILABLE), "{error}");
    world.emulator.clear_faults();
    world.assert_mirror_equals_org("Account").await;
}

#[tokio::test]
async fn a_write_that_bypasses_the_proxy_is_refused() {
    let world = World::start(&["Account"], 40).await;
    let direct = world.direct().await;
    let error = direct
        .batch_execute("UPDATE salesforce.account SET name = 'Sneaky'")
        .await
        .unwrap_err();
    let db = error.as_db_error().unwrap();
    assert_eq!(db.code(), &SqlState::READ_ONLY_SQL_TRANSACTION);
    assert!(db.message().contains("salesforce.account"), "{db}");
    assert!(db.hint().unwrap().contains("proxy"));
    let error = direct
        .batch_execute("TRUNCATE salesforce.account")
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(&SqlState::FEATURE_NOT_SUPPORTED));
    // Through the proxy, TRUNCATE is refused too.
    let error = world
        .client()
        .await
        .batch_execute("TRUNCATE salesforce.account")
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(&SqlState::FEATURE_NOT_SUPPORTED));
    // Claiming the sync origin, which the sync and the proxy's write-back use, does not get
    // a write past the triggers: the origin needs a key no client can read.
    let through = world.client().await;
    for origin in ["sync", "sync:guess"] {
        let sql = format!(
            "BEGIN; SELECT set_config('sfpg.origin', '{origin}', true);
             UPDATE salesforce.account SET name = 'Forged'; COMMIT"
        );
        let error = through.batch_execute(&sql).await.unwrap_err();
        assert_eq!(
            error.code(),
            Some(&SqlState::READ_ONLY_SQL_TRANSACTION),
            "{origin}: {error}"
        );
        through.batch_execute("ROLLBACK").await.unwrap();
    }
    world.assert_mirror_equals_org("Account").await;
}

#[tokio::test]
async fn more_than_one_atomic_push_is_refused() {
    let world = World::start(&["Account"], 40).await;
    let client = world.client().await;
    let calls = world.collection_calls();
    let error = client
        .batch_execute(
            "INSERT INTO salesforce.account (name) SELECT 'Bulk ' || g FROM generate_series(1, 1001) g",
        )
        .await
        .unwrap_err();
    let db = error.as_db_error().unwrap();
    assert_eq!(db.code(), &SqlState::PROGRAM_LIMIT_EXCEEDED);
    assert!(db.hint().unwrap().contains("200"));
    assert_eq!(world.collection_calls(), calls);
    world.assert_mirror_equals_org("Account").await;
}

/// A cancel while the push is under way stops the wait at once and rolls back, but the
/// request may already be with Salesforce, which carries out a request it received even
/// when the client stops waiting. The client is told so, the journal keeps the push as
/// abandoned, and its repair, started at once, brings the mirror in line with what
/// Salesforce holds, with no sync turn.
#[tokio::test]
async fn a_cancel_during_the_push_abandons_it() {
    let world = World::start(&["Account"], 40).await;
    let client = world.client().await;
    let (id, sfid) = world.accounts(1).await.remove(0);
    let before = world.mirror_value("account", &sfid, "billingcity").await;
    world.answer_late(Some("POST"), "*/composite", 2000);
    let token = client.cancel_token();
    let started = std::time::Instant::now();
    let update = tokio::spawn(async move { set_city(&client, id, "Slow").await });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    token.cancel_query(tokio_postgres::NoTls).await.unwrap();
    let error = update.await.unwrap().unwrap_err();
    assert!(started.elapsed() < std::time::Duration::from_millis(1800));
    let db = error.as_db_error().unwrap();
    assert_eq!(db.code(), &SqlState::QUERY_CANCELED, "{error}");
    assert!(
        db.detail()
            .is_some_and(|d| d.contains("Salesforce may still carry it out")),
        "{db:?}"
    );
    assert_eq!(
        world.mirror_value("account", &sfid, "billingcity").await,
        before
    );
    let direct = world.direct().await;
    let journaled: serde_json::Value = direct
        .query_one(
            "SELECT records FROM sfpg.write_journal WHERE outcome = 'abandoned'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(journaled[0]["sfid"].as_str(), Some(sfid.as_str()));
    assert_eq!(journaled[0]["fields"]["BillingCity"].as_str(), Some("Slow"));

    // Salesforce carries the request out once its delay is over; the journal's repair,
    // reading the record again at growing intervals, follows.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while world.org_field("Account", &sfid, "BillingCity") != "Slow"
        || world
            .mirror_value("account", &sfid, "billingcity")
            .await
            .as_deref()
            != Some("Slow")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the org or the mirror never showed it"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    world.emulator.set_latency(None);
    world.assert_mirror_equals_org("Account").await;
}

/// A cancel while the push is still being planned (before anything leaves for Salesforce)
/// rolls back and says that nothing was sent: no request, no journal entry, and the session
/// goes on. The plan reads the control schema, so a lock held on `sfpg.orgs` keeps the push
/// in that window for as long as the test needs.
#[tokio::test]
async fn a_cancel_before_anything_is_sent_rolls_back_cleanly() {
    let world = World::start(&["Account"], 40).await;
    let client = world.client().await;
    let (id, sfid) = world.accounts(1).await.remove(0);
    let before = world.mirror_value("account", &sfid, "billingcity").await;
    let calls = world.collection_calls();
    let mut locker = world.direct().await;
    let lock = locker.transaction().await.unwrap();
    lock.batch_execute("LOCK TABLE sfpg.orgs IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();

    let token = client.cancel_token();
    let update = tokio::spawn(async move {
        let result = set_city(&client, id, "Never").await;
        (client, result)
    });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(!update.is_finished(), "the push did not wait for the lock");
    token.cancel_query(tokio_postgres::NoTls).await.unwrap();
    let (client, result) = tokio::time::timeout(std::time::Duration::from_secs(5), update)
        .await
        .expect("the cancel did not end the push")
        .unwrap();
    let error = result.unwrap_err();
    let db = error
        .as_db_error()
        .unwrap_or_else(|| panic!("not an error from the server: {error:?}"));
    assert_eq!(db.code(), &SqlState::QUERY_CANCELED, "{error}");
    assert!(
        db.detail()
            .is_some_and(|d| d.starts_with("Nothing was sent to Salesforce")),
        "{db:?}"
    );
    lock.rollback().await.unwrap();

    assert_eq!(world.collection_calls(), calls);
    assert_eq!(
        world.mirror_value("account", &sfid, "billingcity").await,
        before
    );
    let journaled: i64 = world
        .direct()
        .await
        .query_one("SELECT count(*) FROM sfpg.write_journal", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(journaled, 0);
    world.assert_mirror_equals_org("Account").await;

    // The session is whole: an UPDATE of the same record goes through once the plan can
    // be read.
    set_city(&client, id, "After").await.unwrap();
    assert_eq!(world.org_field("Account", &sfid, "BillingCity"), "After");
    world.assert_mirror_equals_org("Account").await;
}
