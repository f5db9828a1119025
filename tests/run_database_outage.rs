//! `sfpg run` while its mirror database is stopped: it waits with backoff instead of
//! calling `connect()` in a loop, logs the outage once rather than once per attempt, and
//! once the database is back it reconnects and the sync carries on.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod proxy_support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proxy_support::{MASTER_KEY_BASE64, register_org_in};
use serde_json::json;
use sfpg_emulator::http::{EmulatorConfig, OrgSource};
use sfpg_testkit::StoppableServer;

/// A running `sfpg run` whose log lines are collected, killed when dropped.
struct RunProcess {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Drop for RunProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl RunProcess {
    fn start(database_url: &str) -> RunProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sfpg"))
            .args(["run", "--listen", "127.0.0.1:0", "--no-progress"])
            .env("DATABASE_URL", database_url)
            .env("SFPG_MASTER_KEY", MASTER_KEY_BASE64)
            .env("RUST_LOG", "sfpg=info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let collected = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("sfpg run: {line}");
                collected.lock().unwrap().push(line);
            }
        });
        RunProcess { child, lines }
    }

    fn log_len(&self) -> usize {
        self.lines.lock().unwrap().len()
    }

    fn log_since(&self, start: usize) -> Vec<String> {
        self.lines.lock().unwrap()[start..].to_vec()
    }

    /// CPU time (user and system) the process has used so far.
    fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        // The fields after the command name, which is in parentheses and may hold spaces:
        // the 14th and 15th fields of the line (utime, stime) are the 12th and 13th here.
        let rest = &stat[stat.rfind(')').unwrap() + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        Duration::from_millis(ticks * 1000 / clock_ticks_per_second())
    }
}

fn clock_ticks_per_second() -> u64 {
    let output = Command::new("getconf").arg("CLK_TCK").output().unwrap();
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap()
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

/// Waits until `probe` answers `true`, or fails after `within`.
async fn wait_for<F, Fut>(what: &str, within: Duration, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !probe().await {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn mirror_city(url: &str, sfid: &str) -> Option<String> {
    let Ok((client, connection)) = tokio_postgres::connect(url, tokio_postgres::NoTls).await else {
        return None;
    };
    tokio::spawn(connection);
    client
        .query_opt(
            "SELECT billingcity FROM salesforce.account WHERE sfid = $1",
            &[&sfid],
        )
        .await
        .ok()
        .flatten()
        .and_then(|row| row.get(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_waits_out_a_stopped_database_quietly_and_resumes_when_it_is_back() {
    let emulator = sfpg_emulator::http::start(EmulatorConfig {
        org: OrgSource::Generated {
            records: 60,
            seed: 3,
        },
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let database = StoppableServer::start();
    let url = database.server().url("postgres");
    register_org_in(&mut connect(&url).await, &emulator, &["Account"]).await;
    let run = RunProcess::start(&url);
    let control = connect(&url).await;
    wait_for("the backfill", Duration::from_secs(60), || async {
        control
            .query_one("SELECT bool_and(phase = 'live') FROM sfpg.objects", &[])
            .await
            .unwrap()
            .get::<_, Option<bool>>(0)
            .unwrap_or(false)
    })
    .await;
    let sfid: String = control
        .query_one(
            "SELECT sfid FROM salesforce.account ORDER BY sfid LIMIT 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    drop(control);

    // The database goes away, and stays away for a while.
    let outage_starts = run.log_len();
    database.stop();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cpu_before = run.cpu_time();
    let measured_from = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let cpu = run.cpu_time() - cpu_before;
    let wall = measured_from.elapsed();
    let outage_log = run.log_since(outage_starts);
    eprintln!(
        "while the database was stopped: {cpu:?} of CPU in {wall:?}, {} log lines",
        outage_log.len()
    );
    assert!(
        cpu < wall / 10,
        "sfpg run used {cpu:?} of CPU in {wall:?} while its database was stopped"
    );
    // A line per connection that closed and per state change, not one per attempt.
    assert!(
        outage_log.len() <= 12,
        "{} log lines while the database was stopped:\n{}",
        outage_log.len(),
        outage_log.join("\n")
    );

    // Back again: a change made in Salesforce meanwhile reaches the mirror.
    emulator
        .update_as(
            "Account",
            &sfid,
            json!({"BillingCity": "Tromsø"}).as_object().unwrap(),
            None,
        )
        .unwrap();
    database.restart();
    wait_for(
        "the change after the outage",
        Duration::from_secs(60),
        || async { mirror_city(&url, &sfid).await.as_deref() == Some("Tromsø") },
    )
    .await;
    // The outage is two state changes of the listening connection: lost, then back.
    let log = run.log_since(outage_starts);
    let lines_with = |text: &str| log.iter().filter(|line| line.contains(text)).count();
    assert_eq!(
        (
            lines_with("cannot reach the mirror database (listening for changes)"),
            lines_with("reached the mirror database (listening for changes) again")
        ),
        (1, 1),
        "{}",
        log.join("\n")
    );
}
