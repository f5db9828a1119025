//! `sfpg migrate` end to end: the real binary against a throwaway PostgreSQL.

// Helpers of a test crate may unwrap: a failure should stop the test where it happened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

use sfpg_testkit::TestDatabase;

fn sfpg(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sfpg"))
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A failed command says why on one line, exits with `code` (2 for bad input, 1 for other
/// failures), and neither panics nor prints a backtrace.
fn assert_clean_failure(output: &Output, code: i32) -> String {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(code), "stderr: {err}");
    assert_eq!(err.trim().lines().count(), 1, "one line expected: {err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
    err
}

#[tokio::test]
async fn migrate_applies_then_reports_up_to_date() {
    let db = TestDatabase::create().await;

    let first = sfpg(&["migrate", "--database-url", db.url()]);
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(
        stdout(&first).contains("applied migration V1 control_schema"),
        "{}",
        stdout(&first)
    );

    let second = sfpg(&["migrate", "--database-url", db.url()]);
    assert!(second.status.success(), "{}", stderr(&second));
    assert!(
        stdout(&second).contains("control schema is up to date"),
        "{}",
        stdout(&second)
    );

    let client = db.connect().await;
    let schema: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'sfpg'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(schema, 1);
}

/// `sfpg rotate-origin-key` replaces the key; the sync origin made from the old one no
/// longer gets a write past the capture triggers.
#[tokio::test]
async fn rotate_origin_key_replaces_the_key() {
    let db = TestDatabase::create().await;
    let migrated = sfpg(&["migrate", "--database-url", db.url()]);
    assert!(migrated.status.success(), "{}", stderr(&migrated));
    let client = db.connect().await;
    let key = async || -> String {
        client
            .query_one("SELECT key FROM sfpg.origin_key", &[])
            .await
            .unwrap()
            .get(0)
    };
    let old = key().await;
    let rotated = sfpg(&["rotate-origin-key", "--database-url", db.url()]);
    assert!(rotated.status.success(), "{}", stderr(&rotated));
    assert_eq!(stdout(&rotated).trim(), "origin key rotated");
    assert!(!stdout(&rotated).contains(&old));
    let new = key().await;
    assert_ne!(old, new);
    // The trigger checks the new key: the old sync origin is refused on a mirrored table.
    client
        .batch_execute(
            "CREATE TABLE public.mirrored (id bigserial PRIMARY KEY, sfid text UNIQUE);
             CREATE TRIGGER sfpg_capture AFTER INSERT ON public.mirrored
               FOR EACH ROW EXECUTE FUNCTION sfpg.capture_change();",
        )
        .await
        .unwrap();
    let write = |origin: String| {
        let client = &client;
        async move {
            let outcome = client
                .batch_execute(&format!(
                    "BEGIN; SELECT set_config('sfpg.origin', 'sync:{origin}', true);
                     INSERT INTO public.mirrored (sfid) VALUES (md5(random()::text)); COMMIT"
                ))
                .await;
            client.batch_execute("ROLLBACK").await.unwrap();
            outcome
        }
    };
    assert!(write(old).await.is_err());
    write(new).await.unwrap();
}

#[tokio::test]
async fn migrate_reads_database_url_from_the_environment() {
    let db = TestDatabase::create().await;
    let output = Command::new(env!("CARGO_BIN_EXE_sfpg"))
        .arg("migrate")
        .env("DATABASE_URL", db.url())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("applied migration V1"));
}

#[tokio::test]
async fn two_processes_migrating_at_once_both_succeed() {
    let db = TestDatabase::create().await;
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_sfpg"))
            .args(["migrate", "--database-url", db.url()])
            .output()
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(spawn);
        let b = s.spawn(spawn);
        (a.join().unwrap().unwrap(), b.join().unwrap().unwrap())
    });
    assert!(a.status.success(), "{}", stderr(&a));
    assert!(b.status.success(), "{}", stderr(&b));
    let applied = [&a, &b]
        .iter()
        .filter(|o| stdout(o).contains("applied migration V1"))
        .count();
    assert_eq!(applied, 1, "exactly one process applies V1");
}

#[test]
fn a_malformed_url_is_refused() {
    let output = sfpg(&[
        "migrate",
        "--database-url",
        "postgres://u:secret@host:notaport/db",
    ]);
    let err = assert_clean_failure(&output, 2);
    assert!(err.contains("invalid database URL"), "{err}");
    assert!(!err.contains("secret"), "the password leaked: {err}");
}

#[test]
fn an_unreachable_server_is_named() {
    // Bind then drop: nothing listens on this port afterwards.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://sfpg:secret@127.0.0.1:{port}/mirror");
    let err = assert_clean_failure(&sfpg(&["migrate", "--database-url", &url]), 1);
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(err.to_lowercase().contains("connection refused"), "{err}");
    assert!(!err.contains("secret"), "the password leaked: {err}");
}

#[tokio::test]
async fn a_wrong_password_is_named() {
    let db = TestDatabase::create().await;
    let server = db.server();
    let url = format!(
        "postgres://{}:wrong-password@{}:{}/{}",
        server.user(),
        server.host(),
        server.port(),
        db.name()
    );
    let err = assert_clean_failure(&sfpg(&["migrate", "--database-url", &url]), 1);
    assert!(
        err.contains(&format!("{}:{}", server.host(), server.port())),
        "{err}"
    );
    assert!(err.contains("password authentication failed"), "{err}");
    assert!(
        !err.contains("wrong-password"),
        "the password leaked: {err}"
    );
}

#[test]
fn every_subcommand_has_help_and_the_binary_a_version() {
    let version = sfpg(&["--version"]);
    assert!(version.status.success());
    assert!(stdout(&version).starts_with("sfpg "));
    for args in [&["--help"][..], &["migrate", "--help"]] {
        let help = sfpg(args);
        assert!(help.status.success(), "{args:?}");
        assert!(stdout(&help).contains("Usage:"), "{args:?}");
    }
}
