//! Real clients through the proxy, each run as it would be in life: psql, psycopg 3 with
//! the SQLAlchemy ORM, node-postgres and pgjdbc. Each change must reach the emulated org
//! with the right values, and afterwards the mirror must equal the org. A write Salesforce
//! refuses in a batch, a pipeline or a COPY must reach each client as the error of the
//! statement that made it, with the connection still usable.
//!
//! The clients come from `tests/clients/`; their dependencies (pip, npm, Debian's
//! libpostgresql-jdbc-java) are installed by `.ci/run`.

// Helpers of a test crate may unwrap: a failure should stop the test where it happened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};
use sfpg_testkit::world::World;

fn clients() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

/// Runs a client program to its end, whatever its exit status.
async fn output(mut command: Command, what: &str) -> Output {
    tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("cannot run {what} (see .ci/run for how it is installed): {e}"))
}

/// Runs a client program; its stdout, or a failure that says how to get the program.
async fn run(command: Command, what: &str) -> String {
    let output = output(command, what).await;
    assert!(
        output.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn city(world: &World, sfid: &str) -> Value {
    world.org_record("Account", sfid, &["BillingCity"]).unwrap()["BillingCity"].clone()
}

/// psql from the test server's binaries, or the one on PATH.
fn psql(world: &World) -> PathBuf {
    world
        .db
        .server()
        .bin_dir()
        .map(|d| d.join("psql"))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| "psql".into())
}

/// A libpq URL through the proxy (psycopg, node-postgres).
fn proxy_url(world: &World) -> String {
    let server = world.db.server();
    format!(
        "postgresql://{}:{}@127.0.0.1:{}/{}",
        server.user(),
        server.password().unwrap_or(""),
        world.proxy().port(),
        world.db.name()
    )
}

#[tokio::test]
async fn psql_autocommit_explicit_and_autocommit_off() {
    let world = World::start(&["Account"], 40).await;
    let mut command = Command::new(psql(&world));
    command
        .arg(world.proxy_conninfo())
        .args(["-X", "-q", "-f"])
        .arg(clients().join("psql/writes.sql"));
    let stdout = run(command, "psql").await;
    let value = |key: &str| {
        stdout
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{key} ")))
            .unwrap_or_else(|| panic!("no {key} in {stdout}"))
            .to_owned()
    };
    let inserted = value("inserted");
    assert_eq!(inserted.len(), 18, "{stdout}");
    assert_eq!(city(&world, &value("autocommit_updated")), json!("Brest"));
    assert_eq!(
        city(&world, &value("transaction_updated")),
        json!("Quimper")
    );
    assert_eq!(
        city(&world, &value("autocommit_off_updated")),
        json!("Vannes")
    );
    assert!(world.org_record("Account", &inserted, &["Name"]).is_none());
    world.assert_mirror_equals_org("Account").await;
}

#[tokio::test]
async fn psycopg_with_the_sqlalchemy_orm() {
    let world = World::start(&["Account"], 40).await;
    let server = world.db.server();
    let url = format!(
        "postgresql+psycopg://{}:{}@127.0.0.1:{}/{}",
        server.user(),
        server.password().unwrap_or(""),
        world.proxy().port(),
        world.db.name()
    );
    let mut command = Command::new("python3");
    command
        .arg(clients().join("python/sqlalchemy_writes.py"))
        .env("SFPG_PROXY_URL", url);
    let done: Value =
        serde_json::from_str(&run(command, "python3 with psycopg and SQLAlchemy").await).unwrap();
    let inserted = done["inserted"].as_str().unwrap();
    assert_eq!(
        world
            .org_record("Account", inserted, &["Name", "BillingCity"])
            .unwrap(),
        json!({"attributes": {"type": "Account", "url": format!("/services/data/v62.0/sobjects/Account/{inserted}")}, "Name": "ORM Co", "BillingCity": "Bordeaux"})
    );
    assert_eq!(
        city(&world, done["updated"].as_str().unwrap()),
        json!("Toulouse")
    );
    assert!(
        world
            .org_record("Account", done["deleted"].as_str().unwrap(), &["Name"])
            .is_none()
    );
    world.assert_mirror_equals_org("Account").await;
}

#[tokio::test]
async fn node_postgres_with_parameters() {
    let world = World::start(&["Account"], 40).await;
    let mut command = Command::new("node");
    command
        .arg(clients().join("node/writes.js"))
        .env("SFPG_PROXY_URL", proxy_url(&world));
    let done: Value = serde_json::from_str(&run(command, "node with pg").await).unwrap();
    assert_eq!(
        city(&world, done["updated"].as_str().unwrap()),
        json!("Dijon")
    );
    let renamed = world
        .org_record("Account", done["renamed"].as_str().unwrap(), &["Name"])
        .unwrap();
    assert_eq!(renamed["Name"], json!("Node Renamed"));
    assert!(
        world
            .org_record("Account", done["deleted"].as_str().unwrap(), &["Name"])
            .is_none()
    );
    world.assert_mirror_equals_org("Account").await;
}

#[tokio::test]
async fn pgjdbc_batches_without_autocommit() {
    let world = World::start(&["Account"], 40).await;
    let server = world.db.server();
    let before = world.org_count("Account");
    let mut command = Command::new("java");
    command
        .args(["-cp", "/usr/share/java/postgresql.jar"])
        .arg(clients().join("java/BatchWrites.java"))
        .env(
            "SFPG_PROXY_JDBC_URL",
            format!(
                "jdbc:postgresql://127.0.0.1:{}/{}",
                world.proxy().port(),
                world.db.name()
            ),
        )
        .env("SFPG_PROXY_USER", server.user())
        .env("SFPG_PROXY_PASSWORD", server.password().unwrap_or(""));
    let done: Value = serde_json::from_str(&run(command, "java with pgjdbc").await).unwrap();
    let updated = done["updated"].as_array().unwrap();
    assert_eq!(updated.len(), 3);
    for (i, sfid) in updated.iter().enumerate() {
        assert_eq!(
            city(&world, sfid.as_str().unwrap()),
            json!(format!("Batch {i}"))
        );
    }
    assert_eq!(world.org_count("Account"), before + 1);
    world.assert_mirror_equals_org("Account").await;
}

#[tokio::test]
async fn psql_reports_a_refused_copy_as_the_error_alone() {
    let world = World::start(&["Account", "Invoice__c"], 40).await;
    let before = world.org_count("Invoice__c");
    let mut command = Command::new(psql(&world));
    command
        .arg(world.proxy_conninfo())
        .args(["-X", "-f"])
        .arg(clients().join("psql/refused_copy.sql"));
    let output = output(command, "psql").await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // ON_ERROR_STOP: psql stops at the failed COPY with status 3, and printed no `COPY 2`.
    assert_eq!(output.status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(stdout.trim().is_empty(), "psql printed: {stdout}");
    assert!(
        stderr.contains("ERROR:  23514: Salesforce refused to create Invoice__c"),
        "{stderr}"
    );
    assert_eq!(world.org_count("Invoice__c"), before);
    world.assert_mirror_equals_org("Invoice__c").await;
}

#[tokio::test]
async fn psycopg_pipelines_executemany_and_copy_raise_the_refusal() {
    let world = World::start(&["Account", "Invoice__c"], 40).await;
    let before = world.org_count("Invoice__c");
    let mut command = Command::new("python3");
    command
        .arg(clients().join("python/refused_batches.py"))
        .env("SFPG_PROXY_URL", proxy_url(&world));
    let done: Value = serde_json::from_str(&run(command, "python3 with psycopg").await).unwrap();
    let refused = json!({
        "error": "psycopg.errors.CheckViolation",
        "sqlstate": "23514",
        "after": 42,
    });
    let accepted = json!({"error": null, "after": 42});
    assert_eq!(
        done,
        json!({
            "executemany": refused,
            "pipeline": refused,
            "executemany_in_pipeline": refused,
            "copy": refused,
            "executemany_accepted": accepted,
            "pipeline_accepted": accepted,
            "executemany_in_pipeline_accepted": accepted,
            "copy_accepted": accepted,
        })
    );
    // Each refused batch was one transaction: none of its 299 other rows was kept. The
    // four good batches of three rows were.
    assert_eq!(world.org_count("Invoice__c"), before + 12);
    world.assert_mirror_equals_org("Invoice__c").await;
}

#[tokio::test]
async fn node_postgres_batches_reject_the_refused_query() {
    let world = World::start(&["Account", "Invoice__c"], 40).await;
    let before = world.org_count("Invoice__c");
    let mut command = Command::new("node");
    command
        .arg(clients().join("node/refused_batch.js"))
        .env("SFPG_PROXY_URL", proxy_url(&world));
    let done: Value = serde_json::from_str(&run(command, "node with pg").await).unwrap();
    assert_eq!(
        done,
        json!({
            "string": {"error": "23514"},
            "together": [{"ok": 1}, {"error": "23514"}, {"ok": 1}],
            "after": 42,
        })
    );
    assert_eq!(world.org_count("Invoice__c"), before + 2);
    world.assert_mirror_equals_org("Invoice__c").await;
}
