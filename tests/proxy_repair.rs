//! The write journal's repair against a real org and mirror: what it writes into the mirror
//! follows the same rule as the sync's writes, a row is overwritten only by a copy of the
//! record that is not older.

// Helpers of a test crate may unwrap: a failure should stop the test where it happened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;
use sfpg_control::{MasterKey, connect::Limiters};
use sfpg_proxy::push::{Catalog, repair};
use sfpg_testkit::world::{MASTER_KEY, SCHEMA, World};

/// A transaction id that is over and did not commit, as a crashed push leaves it.
async fn aborted_txid(world: &World) -> String {
    let direct = world.direct().await;
    direct.batch_execute("BEGIN").await.unwrap();
    let txid: String = direct
        .query_one("SELECT pg_current_xact_id()::text", &[])
        .await
        .unwrap()
        .get(0);
    direct.batch_execute("ROLLBACK").await.unwrap();
    txid
}

#[tokio::test]
async fn a_repair_does_not_overwrite_a_newer_row() {
    let world = World::start(&["Account"], 10).await;
    let direct = world.direct().await;
    let row = direct
        .query_one(
            &format!("SELECT id, sfid FROM {SCHEMA}.account ORDER BY id LIMIT 1"),
            &[],
        )
        .await
        .unwrap();
    let (id, sfid): (i64, String) = (row.get(0), row.get(1));
    // A push of this record whose transaction never committed.
    let records = json!([{
        "operation": "update", "object": "Account", "schema": SCHEMA, "table": "account",
        "row_id": id, "sfid": sfid, "fields": {"Name": "Pushed"},
    }]);
    direct
        .execute(
            "INSERT INTO sfpg.write_journal
                 (org_name, session, txid, records, outcome, started_at, salesforce_ms)
             VALUES ('acme', 'test', $1::text::xid8, $2, 'pushed', now(), 1)",
            &[&aborted_txid(&world).await, &records],
        )
        .await
        .unwrap();
    // Meanwhile the mirror received a newer copy of the record (the sync, or another push).
    direct
        .batch_execute(&format!(
            "BEGIN; {};
             UPDATE {SCHEMA}.account SET name = 'Newer', systemmodstamp = now() + interval '1 day'
              WHERE id = {id};
             COMMIT",
            sfpg_control::capture::SET_SYNC_ORIGIN_SQL
        ))
        .await
        .unwrap();

    let catalog = Catalog::connect(
        world.db.config(),
        MasterKey::from_bytes(MASTER_KEY),
        Limiters::default(),
    )
    .unwrap();
    let report = repair::repair(&catalog).await.unwrap();
    assert_eq!(report.repaired, 1, "{report:?}");
    let name: String = direct
        .query_one(
            &format!("SELECT name FROM {SCHEMA}.account WHERE id = {id}"),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        name, "Newer",
        "the repair wrote an older copy over a newer row"
    );
}
