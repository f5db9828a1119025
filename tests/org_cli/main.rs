//! `sfpg org`, `sfpg objects` and `sfpg status` end to end: the real binary against a
//! throwaway PostgreSQL. Registering and changing orgs offline (`registry`), logging in to
//! an emulated org with every auth flow (`logins`), and what `status` reports while a sync
//! runs (`status`).

// Helpers of a test crate may unwrap: a failure should stop the test where it happened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod logins;
mod registry;
mod status;

use std::process::Output;

use sfpg_testkit::TestDatabase;
use sfpg_testkit::binary::Sfpg;
pub use sfpg_testkit::binary::text;

const SFPG: Sfpg = Sfpg::new(env!("CARGO_BIN_EXE_sfpg"));

/// Runs `sfpg ARGS` against `db` on this thread.
fn sfpg(db: &TestDatabase, args: &[&str]) -> Output {
    SFPG.command(db, args).output().unwrap()
}

/// Runs `sfpg ARGS` against `db` off the runtime's threads, which serve the emulator.
async fn sfpg_off_runtime(db: &TestDatabase, args: &[&str]) -> Output {
    SFPG.output(db, args).await
}

/// The words of `line`: a command line written on one line.
fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

fn add_args<'a>(login_url: &'a str, password: &'a str) -> Vec<&'a str> {
    let mut args = sfpg_testkit::binary::add_with_password("emu", password);
    args.extend(["--login-url", login_url, "--objects", "Account,Invoice__c"]);
    args
}
