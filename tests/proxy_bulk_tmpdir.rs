//! `sfpg proxy`, the real binary, started with a `TMPDIR` it cannot write: a bulk push keeps
//! a large transaction's values and its jobs' CSV in temporary files there, so one beyond
//! what an atomic push carries is refused with 58030 naming the file, before anything
//! reaches Salesforce; a small one, held in memory, still goes through.

// Helpers of a test crate may unwrap: a failure should stop the test where it happened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sfpg_testkit::binary::Sfpg;
use sfpg_testkit::world::{World, generated};

const SFPG: Sfpg = Sfpg::new(env!("CARGO_BIN_EXE_sfpg")).logging("sfpg=info,sfpg_proxy=info");

/// One transaction inserting `rows` Accounts named `name` and a number.
async fn insert_accounts(
    client: &tokio_postgres::Client,
    name: &str,
    rows: u32,
) -> Result<(), tokio_postgres::Error> {
    client
        .batch_execute(&format!(
            "BEGIN;
             INSERT INTO salesforce.account (name)
             SELECT '{name} ' || g FROM generate_series(1, {rows}) g;
             COMMIT"
        ))
        .await
}

#[tokio::test]
async fn a_bulk_push_without_room_for_its_files_is_refused_before_anything_is_sent() {
    let world = World::mirrored(generated(5, 1), &["Account"]).await;
    let before = world.org_count("Account");
    let mut command = SFPG.at(world.db.url(), &["proxy", "--listen", "127.0.0.1:0"]);
    command.env("TMPDIR", "/nonexistent/sfpg-tmp");
    let (_proxy, addr) = sfpg_testkit::binary::spawn_listening(command);
    let mut config = world.db.config_via(addr);
    config.options("-c sfpg.bulk_writes=auto");
    let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);

    let error = insert_accounts(&client, "No room", 1001).await.unwrap_err();
    let error = error.as_db_error().expect("a server error");
    assert_eq!(error.code().code(), "58030", "{error:?}");
    assert!(
        error.message().contains("spool file"),
        "{}",
        error.message()
    );
    assert_eq!(
        error.detail(),
        Some("Nothing was sent to Salesforce; the transaction was rolled back.")
    );
    assert!(error.hint().is_some_and(|hint| hint.contains("TMPDIR")));
    assert_eq!(
        world.org_count("Account"),
        before,
        "nothing reached the org"
    );
    assert!(
        !world
            .emulator
            .requests(0)
            .iter()
            .any(|r| r.path.contains("/jobs/ingest")),
        "an ingest job was created"
    );

    // Within one atomic push nothing is spooled: it goes through as before.
    client.batch_execute("ROLLBACK").await.ok();
    insert_accounts(&client, "Held", 10).await.unwrap();
    assert_eq!(world.org_count("Account"), before + 10);
    let diff = world.mirror_diff("Account").await;
    assert!(diff.is_empty(), "{}", diff.join("\n"));
}
