//! What a client is told when the push to Salesforce fails on the way: only a request that
//! never left is "nothing was committed" (08006); once it may have reached Salesforce, the
//! outcome is unknown (08007), the journal resolves it at once, and the mirror ends equal
//! to the org.

// Helpers of a test crate may unwrap: a failure should stop the test where it happened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use sfpg_emulator::http::{DropRule, Latency, RequestMatcher};
use sfpg_testkit::world::{ORG, SCHEMA, World};
use tokio_postgres::error::SqlState;

fn composite() -> RequestMatcher {
    RequestMatcher {
        method: Some("POST".into()),
        path: Some("*/composite".into()),
    }
}

/// An update and an insert in one transaction, through the proxy.
async fn update_and_insert(
    world: &World,
    id: i64,
    city: &str,
    name: &str,
) -> tokio_postgres::Error {
    world
        .client()
        .await
        .batch_execute(&format!(
            "BEGIN;
             UPDATE {SCHEMA}.account SET billingcity = '{city}' WHERE id = {id};
             INSERT INTO {SCHEMA}.account (name) VALUES ('{name}');
             COMMIT"
        ))
        .await
        .unwrap_err()
}

async fn journal_outcomes(world: &World) -> Vec<String> {
    world
        .direct()
        .await
        .query("SELECT outcome FROM sfpg.write_journal ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// Waits until the mirror equals the org and `check` holds, for at most `limit`.
async fn settles(world: &World, limit: Duration, check: impl AsyncFn() -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if world.mirror_diff("Account").await.is_empty() && check().await {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "the mirror does not equal the org after {limit:?}:\n{}",
            world.mirror_diff("Account").await.join("\n")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Salesforce cannot be reached at all: the request never left, so nothing was committed.
#[tokio::test]
async fn salesforce_unreachable_before_sending_is_connection_failure() {
    let world = World::start(&["Account"], 20).await;
    let (id, sfid) = world.accounts(1).await.remove(0);
    let before = world.mirror_value("account", &sfid, "billingcity").await;
    let accounts = world.org_count("Account");
    // Nothing listens where the proxy logs in.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    world
        .direct()
        .await
        .execute(
            "UPDATE sfpg.orgs SET login_url = $1, instance_url = $1 WHERE name = $2",
            &[&format!("http://{closed}"), &ORG],
        )
        .await
        .unwrap();
    let error = update_and_insert(&world, id, "Unreached", "Never Co").await;
    let db = error.as_db_error().unwrap_or_else(|| panic!("{error}"));
    assert_eq!(db.code(), &SqlState::CONNECTION_FAILURE, "{db}");
    assert!(db.message().contains("nothing was sent"), "{db}");
    assert_eq!(
        world.mirror_value("account", &sfid, "billingcity").await,
        before
    );
    assert_eq!(world.org_count("Account"), accounts);
}

/// The repro: the push is slow (3 s), and the connection to Salesforce is cut 1 s
/// into it. Salesforce carries the request out all the same. The client hears 08007, not
/// "nothing was committed"; the journal's repair starts at once, and the mirror shows
/// the update and the new record within seconds, once.
#[tokio::test]
async fn a_connection_cut_after_the_push_left_is_unknown_and_resolved_by_the_journal() {
    let world = World::start(&["Account"], 20).await;
    let (id, sfid) = world.accounts(1).await.remove(0);
    let accounts = world.org_count("Account");
    world.emulator.set_latency(Some(Latency {
        fixed_ms: 3000,
        jitter_ms: 0,
        matcher: composite(),
    }));
    world.emulator.drop_next(DropRule {
        matcher: composite(),
        count: 1,
        after_ms: Some(1000),
    });
    let error = update_and_insert(&world, id, "Cut Off", "Maybe Co").await;
    let db = error.as_db_error().unwrap_or_else(|| panic!("{error}"));
    assert_eq!(db.code(), &SqlState::TRANSACTION_RESOLUTION_UNKNOWN, "{db}");
    let detail = db.detail().unwrap_or_default();
    assert!(detail.contains("may have applied"), "{db}");
    assert!(detail.contains("journal"), "{db}");
    assert!(!db.message().contains("nothing was"), "{db}");
    assert_eq!(journal_outcomes(&world).await, ["unknown"]);
    world.emulator.set_latency(None);

    // Salesforce did commit both; the mirror follows without a sync turn.
    let took = settles(&world, Duration::from_secs(20), async || {
        world
            .mirror_value("account", &sfid, "billingcity")
            .await
            .as_deref()
            == Some("Cut Off")
    })
    .await;
    eprintln!("the mirror equalled the org {took:?} after the client heard 08007");
    let created: i64 = world
        .direct()
        .await
        .query_one(
            &format!("SELECT count(*) FROM {SCHEMA}.account WHERE name = 'Maybe Co'"),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(created, 1);
    assert_eq!(world.org_count("Account"), accounts + 1);
}

/// A request dropped before Salesforce read it: the client cannot tell that from a cut
/// after, so it is unknown too; the journal finds nothing changed.
#[tokio::test]
async fn a_request_dropped_unread_is_unknown_and_the_mirror_stays_equal() {
    let world = World::start(&["Account"], 20).await;
    let (id, sfid) = world.accounts(1).await.remove(0);
    let before = world.mirror_value("account", &sfid, "billingcity").await;
    let accounts = world.org_count("Account");
    world.emulator.drop_next(DropRule {
        matcher: composite(),
        count: 1,
        after_ms: None,
    });
    let error = update_and_insert(&world, id, "Dropped", "Dropped Co").await;
    assert_eq!(
        error.code(),
        Some(&SqlState::TRANSACTION_RESOLUTION_UNKNOWN),
        "{error}"
    );
    // The repair reads the records again at once.
    settles(&world, Duration::from_secs(20), async || {
        world
            .direct()
            .await
            .query_one("SELECT checks FROM sfpg.write_journal", &[])
            .await
            .unwrap()
            .get::<_, i32>(0)
            >= 1
    })
    .await;
    assert_eq!(
        world.mirror_value("account", &sfid, "billingcity").await,
        before
    );
    assert_eq!(world.org_count("Account"), accounts);
}

/// A push whose journal entry cannot be written before its request leaves sends nothing:
/// were the proxy to die while Salesforce carried the request out, there would be nothing
/// to repair the mirror from.
#[tokio::test]
async fn a_push_that_cannot_be_journaled_sends_nothing() {
    let world = World::start(&["Account"], 20).await;
    let direct = world.direct().await;
    // The journal refuses the entry a push writes before its request (a fault standing for
    // a full disk, a revoked privilege, a broken constraint).
    direct
        .batch_execute(
            "ALTER TABLE sfpg.write_journal ADD CONSTRAINT no_unknown_entries
                 CHECK (outcome <> 'unknown')",
        )
        .await
        .unwrap();
    let sent_before = world.composite_calls();
    let client = world.client().await;
    let error = client
        .batch_execute("UPDATE salesforce.account SET billingcity = 'Unjournaled'")
        .await
        .unwrap_err();
    let db = error.as_db_error().expect("a server error");
    assert_eq!(db.code().code(), "23514", "{db:?}");
    assert!(
        db.message().contains("write journal") && db.message().contains("no_unknown_entries"),
        "{db:?}"
    );
    assert!(
        db.detail()
            .is_some_and(|d| d.starts_with("Nothing was sent")),
        "{db:?}"
    );
    assert_eq!(world.composite_calls(), sent_before, "a request left");
    let moved: i64 = direct
        .query_one(
            "SELECT count(*) FROM salesforce.account WHERE billingcity = 'Unjournaled'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(moved, 0);
    world.assert_mirror_equals_org("Account").await;
}

/// A `WITH HOLD` cursor declared in a transaction that writes: the server computes it at
/// COMMIT, after the push, where its failure (here a division by zero) could no longer
/// undo what Salesforce accepted. The push is refused before anything is sent, with the
/// cursor named; a cursor of an earlier transaction is no obstacle.
#[tokio::test]
async fn a_with_hold_cursor_of_a_writing_transaction_is_refused_before_the_push() {
    let world = World::start(&["Account"], 20).await;
    let client = world.client().await;
    let (id, sfid) = world.accounts(1).await.remove(0);
    let calls = world.composite_calls() + world.collection_calls();
    let error = client
        .batch_execute(&format!(
            "BEGIN;
             UPDATE {SCHEMA}.account SET billingcity = 'Held' WHERE id = {id};
             DECLARE c CURSOR WITH HOLD FOR SELECT 1 / (x - 5) FROM generate_series(1, 10) x;
             FETCH 1 FROM c;
             COMMIT"
        ))
        .await
        .unwrap_err();
    let db = error.as_db_error().unwrap_or_else(|| panic!("{error}"));
    assert_eq!(db.code(), &SqlState::FEATURE_NOT_SUPPORTED, "{db}");
    assert!(
        db.message().contains("cursor \"c\" is declared WITH HOLD"),
        "{db}"
    );
    assert_eq!(world.composite_calls() + world.collection_calls(), calls);
    assert_ne!(
        world.org_field("Account", &sfid, "BillingCity").as_str(),
        Some("Held")
    );
    world.assert_mirror_equals_org("Account").await;

    // Held from a transaction of its own, the cursor is computed already.
    client
        .batch_execute(
            "BEGIN; DECLARE kept CURSOR WITH HOLD FOR SELECT 1; COMMIT;
             FETCH 1 FROM kept",
        )
        .await
        .unwrap();
    client
        .batch_execute(&format!(
            "UPDATE {SCHEMA}.account SET billingcity = 'Later' WHERE id = {id}"
        ))
        .await
        .unwrap();
    assert_eq!(
        world.org_field("Account", &sfid, "BillingCity").as_str(),
        Some("Later")
    );
    world.assert_mirror_equals_org("Account").await;
}
