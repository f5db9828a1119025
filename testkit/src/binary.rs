//! The `sfpg` binary as the end-to-end tests run it: against a test database
//! (`DATABASE_URL`), with the world's master key (so what [`crate::world`] registers, the
//! binary opens), and the log level each test asks for rather than the one the test itself
//! runs with.
//!
//! Only the binary's own integration tests know where it is (`env!("CARGO_BIN_EXE_sfpg")`),
//! so each names it once: `const SFPG: Sfpg = Sfpg::new(env!("CARGO_BIN_EXE_sfpg"));`.

use std::net::SocketAddr;
use std::process::{Command, Output};
use std::time::Duration;

use sfpg_emulator::http::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_USERNAME};

use crate::TestDatabase;
use crate::process::{self, Crashing, TestProcess};
use crate::world::MASTER_KEY_BASE64;

/// How long a server may take to say where it listens.
const LISTENING_WITHIN: Duration = Duration::from_secs(60);

/// The `sfpg` binary, by its path, and what it logs.
#[derive(Debug, Clone, Copy)]
pub struct Sfpg {
    path: &'static str,
    log: Option<&'static str>,
}

impl Sfpg {
    /// The binary at `path`, logging as it does by default.
    pub const fn new(path: &'static str) -> Sfpg {
        Sfpg { path, log: None }
    }

    /// The same binary, logging what `filter` (a `RUST_LOG` value) lets through.
    pub const fn logging(self, filter: &'static str) -> Sfpg {
        Sfpg {
            log: Some(filter),
            ..self
        }
    }

    /// `sfpg ARGS` against the database of `database_url`.
    pub fn at(self, database_url: &str, args: &[&str]) -> Command {
        let mut command = Command::new(self.path);
        command
            .args(args)
            .env("DATABASE_URL", database_url)
            .env("SFPG_MASTER_KEY", MASTER_KEY_BASE64)
            .env_remove("SFPG_MASTER_KEY_FILE")
            .env("NO_COLOR", "1");
        match self.log {
            Some(filter) => command.env("RUST_LOG", filter),
            None => command.env_remove("RUST_LOG"),
        };
        command
    }

    /// `sfpg ARGS` against `db`.
    pub fn command(self, db: &TestDatabase, args: &[&str]) -> Command {
        self.at(db.url(), args)
    }

    /// Runs `sfpg ARGS` against `db` to its end, off the runtime's threads (the test's
    /// emulator serves from them).
    pub async fn output(self, db: &TestDatabase, args: &[&str]) -> Output {
        process::output(self.command(db, args)).await
    }

    /// [`Sfpg::output`], which must succeed; returns what it printed, out and err.
    pub async fn run(self, db: &TestDatabase, args: &[&str]) -> String {
        let output = self.output(db, args).await;
        let printed = text(&output);
        assert!(output.status.success(), "sfpg {args:?}: {printed}");
        printed
    }

    /// Starts a long-running `sfpg ARGS` (`sync`, `proxy`, `run`) against the database of
    /// `database_url`; it is killed when the returned process drops.
    pub fn start(self, database_url: &str, args: &[&str]) -> TestProcess {
        spawn(self.at(database_url, args))
    }

    /// [`Sfpg::start`] as a process a crash test kills and starts again the same way.
    pub fn crashing(self, database_url: &str, args: &[&str]) -> Crashing {
        let url = database_url.to_owned();
        let args: Vec<String> = args.iter().map(|&arg| arg.to_owned()).collect();
        Crashing::start(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            self.start(&url, &args)
        })
    }

    /// [`Sfpg::start`] for a command that serves clients (`proxy`, `run`): returns it once
    /// it listens, with its address.
    pub fn start_listening(self, database_url: &str, args: &[&str]) -> (TestProcess, SocketAddr) {
        spawn_listening(self.at(database_url, args))
    }
}

/// Starts `command` (from [`Sfpg::at`]), named after its subcommand.
pub fn spawn(mut command: Command) -> TestProcess {
    let subcommand = command
        .get_args()
        .next()
        .map(|arg| arg.to_string_lossy().into_owned())
        .unwrap_or_default();
    TestProcess::spawn(&format!("sfpg {subcommand}"), &mut command)
}

/// [`spawn`] for a command that serves clients: returns it once it listens, with its
/// address.
pub fn spawn_listening(command: Command) -> (TestProcess, SocketAddr) {
    let mut process = spawn(command);
    let addr = process.listening_addr(LISTENING_WITHIN);
    (process, addr)
}

/// `sfpg run`'s flags for the proxy and the metrics listener on free ports of 127.0.0.1.
pub const RUN_WITH_METRICS: [&str; 6] = [
    "run",
    "--listen",
    "127.0.0.1:0",
    "--no-progress",
    "--metrics-listen",
    "127.0.0.1:0",
];

/// [`spawn_listening`] for a command that also serves `/metrics` (`--metrics-listen`):
/// returns it with the address its clients connect to and its metrics listener's, as it
/// printed them.
pub fn spawn_with_metrics(command: Command) -> (TestProcess, SocketAddr, SocketAddr) {
    let (mut process, addr) = spawn_listening(command);
    let line = process.wait_for_line(LISTENING_WITHIN, |line| {
        line.starts_with("sfpg metrics on ")
    });
    let metrics = line
        .trim()
        .trim_start_matches("sfpg metrics on http://")
        .trim_end_matches("/metrics")
        .parse()
        .unwrap_or_else(|e| panic!("the metrics line {line:?}: {e}"));
    (process, addr, metrics)
}

/// `org add NAME` with the emulator's connected app and user (the password flow), the
/// user's password being `password`; the URL and any other flags follow.
pub fn add_with_password<'a>(name: &'a str, password: &'a str) -> Vec<&'a str> {
    vec![
        "org",
        "add",
        name,
        "--client-id",
        DEFAULT_CLIENT_ID,
        "--client-secret",
        DEFAULT_CLIENT_SECRET,
        "--username",
        DEFAULT_USERNAME,
        "--password",
        password,
    ]
}

impl Sfpg {
    /// `sfpg org add NAME` of the emulator at `instance_url` with its default connected app
    /// (client credentials), mirroring `objects`; `extra` flags follow.
    pub async fn add_org(
        self,
        db: &TestDatabase,
        name: &str,
        instance_url: &str,
        objects: &[&str],
        extra: &[&str],
    ) {
        let objects = objects.join(",");
        let mut args = vec![
            "org",
            "add",
            name,
            "--instance-url",
            instance_url,
            "--client-id",
            DEFAULT_CLIENT_ID,
            "--client-secret",
            DEFAULT_CLIENT_SECRET,
            "--objects",
            &objects,
        ];
        args.extend_from_slice(extra);
        self.run(db, &args).await;
    }

    /// `sfpg org set-rate-limit NAME --requests N --per 1s`.
    pub async fn set_rate_per_second(self, db: &TestDatabase, name: &str, requests: u32) {
        let requests = requests.to_string();
        let args = [
            "org",
            "set-rate-limit",
            name,
            "--requests",
            &requests,
            "--per",
            "1s",
        ];
        self.run(db, &args).await;
    }
}

/// What a finished command printed: its standard output, then its standard error.
pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Asserts that a command was refused as the CLI refuses bad input: exit status 2 and one
/// line on standard error, which holds each of `expected`. `case` names it in a failure.
pub fn assert_refused(output: &Output, case: &str, expected: &[&str]) {
    let err = String::from_utf8_lossy(&output.stderr);
    let out = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(2),
        "{case}: exit {:?}\nstderr: {err}stdout: {out}",
        output.status.code()
    );
    assert_eq!(err.trim().lines().count(), 1, "{case}: {err}");
    for part in expected {
        assert!(err.contains(part), "{case}: no {part:?} in: {err}");
    }
}
