//! What the CLI input tests share: running the binary against a throwaway database, and
//! asserting a refusal (exit code 2, one line on stderr, no secret anywhere).

// Test helpers: a failure should stop the test at the line that broke, like the tests
// themselves (clippy.toml allows unwrap in test functions but not in their helpers).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Output;

use sfpg_emulator::http::{DEFAULT_CLIENT_SECRET, DEFAULT_PASSWORD};
use sfpg_testkit::TestDatabase;
use sfpg_testkit::binary::Sfpg;

/// The password put into URLs below; it must never be printed.
pub const URL_PASSWORD: &str = "hunter2-in-url";

const SFPG: Sfpg = Sfpg::new(env!("CARGO_BIN_EXE_sfpg"));

/// Runs the binary off the runtime's threads (the emulator serves from this runtime).
pub async fn sfpg(db: &TestDatabase, args: &[&str]) -> Output {
    SFPG.output(db, args).await
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts exit code 2, one line on stderr containing each of `expected`, and no secret.
pub fn assert_refused(output: &Output, case: &str, expected: &[&str]) {
    sfpg_testkit::binary::assert_refused(output, case, expected);
    let said = sfpg_testkit::binary::text(output);
    for secret in [URL_PASSWORD, DEFAULT_PASSWORD, DEFAULT_CLIENT_SECRET] {
        assert!(!said.contains(secret), "{case}: a secret in: {said}");
    }
}

pub async fn org_count(db: &TestDatabase) -> i64 {
    // Refused commands may not even have created the control schema.
    let mut client = db.connect().await;
    sfpg_control::apply_control_schema(&mut client)
        .await
        .unwrap();
    client
        .query_one("SELECT count(*) FROM sfpg.orgs", &[])
        .await
        .unwrap()
        .get(0)
}

/// `org add NAME` with the emulator's password-flow credentials and `extra` flags.
pub fn add<'a>(name: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = sfpg_testkit::binary::add_with_password(name, DEFAULT_PASSWORD);
    args.extend_from_slice(extra);
    args
}

/// A file in the temporary directory holding `contents`, removed by the test at the end.
pub fn temp_file(name: &str, contents: &[u8]) -> PathBuf {
    let path = std::env::temp_dir().join(format!("sfpg-cli-input-{}-{name}", std::process::id()));
    std::fs::write(&path, contents).unwrap();
    path
}
