//! `sfpg demo`, the real binary, as a newcomer runs it: with an empty data directory and no
//! DATABASE_URL it creates its own PostgreSQL cluster, and the statements it prints work
//! with the real psql: the join returns rows, the UPDATE reaches the emulated org and the
//! mirror, the INSERT fails with 23514 and the validation rule's message, the `\copy` of
//! 1,500 leads goes through Bulk and keeps all but the one Salesforce refuses. Ctrl-C ends it with
//! exit 0 and no server left; a second run reuses the cluster. Also with DATABASE_URL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use secrecy::SecretString;
use sfpg_salesforce::{ClientCredentials, Config, Rate, RateLimiter, SalesforceId};
use sfpg_testkit::TestDatabase;

#[path = "metrics/support.rs"]
mod metrics_support;

/// Time for initdb, the backfill and the proxy's first answers on a loaded machine.
const READY_WITHIN: Duration = Duration::from_secs(240);
const STOPPED_WITHIN: Duration = Duration::from_secs(60);

/// A running `sfpg demo` and what it printed so far.
struct Demo {
    child: Child,
    lines: mpsc::Receiver<String>,
    printed: Vec<String>,
}

impl Demo {
    fn start(home: &Path, port: u16, database_url: Option<&str>) -> Demo {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sfpg"));
        command
            .args(["demo", "--records", "200", "--port", &port.to_string()])
            .env("HOME", home)
            .env("XDG_DATA_HOME", home.join("data"))
            .env("XDG_CONFIG_HOME", home.join("config"))
            .env_remove("SFPG_MASTER_KEY")
            .env_remove("SFPG_MASTER_KEY_FILE")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        match database_url {
            Some(url) => command.env("DATABASE_URL", url),
            None => command.env_remove("DATABASE_URL"),
        };
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Demo {
            child,
            lines,
            printed: Vec::new(),
        }
    }

    /// Reads the output until the demo says it is ready; panics with what it printed if
    /// that takes too long or it ends first.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let ready = line.starts_with("Press Ctrl-C");
                    self.printed.push(line);
                    if ready {
                        return;
                    }
                }
                Err(error) => {
                    let _ = self.child.kill();
                    panic!(
                        "the demo was not ready ({error}); it printed:\n{}",
                        self.printed.join("\n")
                    );
                }
            }
        }
    }

    /// The one printed line that starts with `prefix` (after indentation).
    fn line(&self, prefix: &str) -> String {
        let found: Vec<&String> = self
            .printed
            .iter()
            .filter(|l| l.trim_start().starts_with(prefix))
            .collect();
        assert_eq!(
            found.len(),
            1,
            "lines starting with {prefix:?}:\n{}",
            self.printed.join("\n")
        );
        found[0].trim().to_owned()
    }

    /// The value after `label` on its line (`  instance URL:   http://…`).
    fn value(&self, label: &str) -> String {
        self.line(label)[label.len()..].trim().to_owned()
    }

    fn psql_url(&self) -> String {
        self.line("psql ")["psql ".len()..].to_owned()
    }

    /// Ctrl-C, then the exit status (bounded).
    fn interrupt(mut self) -> ExitStatus {
        let sent = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let deadline = Instant::now() + STOPPED_WITHIN;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the demo did not stop within {STOPPED_WITHIN:?} of Ctrl-C");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        // A failed test must not leave the demo running; after interrupt() it has exited.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn psql_binary() -> PathBuf {
    let mut packaged: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin/psql"))
        .filter(|p| p.is_file())
        .collect();
    packaged.sort();
    packaged.pop().unwrap_or_else(|| PathBuf::from("psql"))
}

/// Runs one statement with psql (verbose errors, so the SQLSTATE shows).
fn psql(url: &str, sql: &str, password: Option<&str>) -> Output {
    psql_commands(url, &[sql], password)
}

/// Runs `commands` (statements or backslash commands) in order in one psql session.
fn psql_commands(url: &str, commands: &[&str], password: Option<&str>) -> Output {
    let mut command = Command::new(psql_binary());
    command
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "VERBOSITY=verbose",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
        ])
        .stdin(Stdio::null());
    for sql in commands {
        command.args(["-c", sql]);
    }
    if let Some(password) = password {
        command.env("PGPASSWORD", password);
    }
    command.output().unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A home directory the demo's PostgreSQL (run as another user under root) can reach.
fn open_home() -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    home
}

/// The account Id the printed UPDATE changes.
fn updated_id(update: &str) -> String {
    let start = update.find("sfid = '").unwrap() + "sfid = '".len();
    update[start..start + 18].to_owned()
}

/// Runs the printed statements through the proxy and checks what each does.
async fn check_examples(demo: &Demo, password: Option<&str>) {
    let url = demo.psql_url();
    let select = demo.line("SELECT ");
    let update = demo.line("UPDATE ");
    let insert = demo.line("INSERT INTO salesforce.invoice__c");
    let event = demo.line("INSERT INTO salesforce.order_event__e");
    let printed_error = demo.line("ERROR:  ");
    let blocking = {
        let url = url.clone();
        let password = password.map(str::to_owned);
        move |sql: String| {
            let url = url.clone();
            let password = password.clone();
            tokio::task::spawn_blocking(move || psql(&url, &sql, password.as_deref()))
        }
    };

    let joined = blocking(select.clone()).await.unwrap();
    assert!(joined.status.success(), "{select}: {}", text(&joined));
    let rows = String::from_utf8_lossy(&joined.stdout).lines().count();
    assert!(rows > 0, "the join returned no rows");

    let updated = blocking(update.clone()).await.unwrap();
    assert!(updated.status.success(), "{update}: {}", text(&updated));
    let account = updated_id(&update);
    let mirrored = blocking(format!(
        "SELECT billingcity FROM salesforce.account WHERE sfid = '{account}'"
    ))
    .await
    .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&mirrored.stdout).trim(),
        "Lisbon",
        "{}",
        text(&mirrored)
    );
    // The org itself, read with a Salesforce client and the credentials the demo printed.
    let salesforce = sfpg_salesforce::Client::new(
        Config::new(&demo.value("instance URL:")).unwrap(),
        ClientCredentials::new(
            demo.value("client id:"),
            SecretString::from(demo.value("client secret:")),
        ),
        RateLimiter::new(Rate::per_second(10).unwrap()),
    )
    .unwrap();
    let record = salesforce
        .sobject("Account")
        .get(&SalesforceId::parse(&account).unwrap(), &["BillingCity"])
        .await
        .unwrap();
    assert_eq!(record["BillingCity"], "Lisbon");

    let refused = blocking(insert.clone()).await.unwrap();
    assert!(!refused.status.success(), "{insert} was accepted");
    let error = text(&refused);
    assert!(error.contains("ERROR:  23514:"), "{error}");
    let message = "Amount cannot be negative unless the invoice is void.";
    assert!(error.contains(message), "{error}");
    assert!(
        error.contains("FIELD_CUSTOM_VALIDATION_EXCEPTION"),
        "{error}"
    );
    assert!(
        printed_error.starts_with("ERROR:  23514:") && printed_error.contains(message),
        "the demo printed {printed_error:?}"
    );

    // The platform event: published at COMMIT, delivered back into its table.
    let published = blocking(event.clone()).await.unwrap();
    assert!(published.status.success(), "{event}: {}", text(&published));
    let mut delivered = String::new();
    for _ in 0..100 {
        let read = blocking(
            "SELECT count(*) FROM salesforce.order_event__e \
             WHERE order_number__c = '42' AND replayid IS NOT NULL"
                .to_owned(),
        )
        .await
        .unwrap();
        delivered = String::from_utf8_lossy(&read.stdout).trim().to_owned();
        if delivered == "1" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(delivered, "1", "the event came back from the org's bus");

    // The large write: the printed setting and `\copy`, in one psql session, load the
    // demo's CSV of leads through a Bulk ingest job; the one lead Salesforce refuses is
    // named in the COMMIT's WARNING and is not kept; the others are, in the org and mirror.
    let setting = demo.line("SET sfpg.bulk_writes");
    let copy = demo.line("\\copy salesforce.lead");
    let loaded = {
        let (url, password) = (url.clone(), password.map(str::to_owned));
        tokio::task::spawn_blocking(move || {
            psql_commands(&url, &[&setting, &copy], password.as_deref())
        })
        .await
        .unwrap()
    };
    let said = text(&loaded);
    assert!(loaded.status.success(), "{said}");
    assert!(
        said.contains("WARNING:  01000: 1 of 1500 records were refused by Salesforce"),
        "{said}"
    );
    assert!(said.contains("INVALID_EMAIL_ADDRESS"), "{said}");
    let mirrored = blocking(
        "SELECT count(*) FROM salesforce.lead WHERE lastname LIKE 'Bulk lead %'".to_owned(),
    )
    .await
    .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&mirrored.stdout).trim(),
        "1499",
        "{}",
        text(&mirrored)
    );
    let in_org = salesforce
        .query("SELECT Id FROM Lead WHERE LastName LIKE 'Bulk lead %'")
        .collect_records()
        .await
        .unwrap();
    assert_eq!(in_org.len(), 1499);

    // The metrics the demo printed the address of: what it did, as Prometheus reads it.
    let metrics = demo.line("metrics: ");
    let addr = metrics["metrics: http://".len()..]
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let scraped = metrics_support::scrape(addr).await;
    let demo_org = ("org", "demo");
    for source in ["backfill", "bulk"] {
        assert!(
            scraped.count(
                "sfpg_records_written_total",
                &[demo_org, ("source", source)]
            ) > 0.0,
            "{source}: {}",
            scraped.body
        );
    }
    // The demo's own INSERT at start and the test's: each refused with 23514.
    let refused = [("outcome", "refused"), ("sqlstate_class", "23")];
    assert!(scraped.count("sfpg_proxy_transactions_total", &refused) >= 2.0);
    // The UPDATE and the event.
    let committed = [("outcome", "committed")];
    assert!(scraped.count("sfpg_proxy_transactions_total", &committed) >= 2.0);
}

/// Whether process `pid` has ended (or only waits for its parent to reap it), given a
/// few seconds: the postmaster removes its pid file just before it exits.
fn ended(pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ended = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
            Err(_) => true,
        };
        if ended || Instant::now() > deadline {
            return ended;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn postmaster_pid(cluster: &Path) -> Option<u32> {
    let pid_file = std::fs::read_to_string(cluster.join("postmaster.pid")).ok()?;
    pid_file.split_whitespace().next()?.parse().ok()
}

/// Starts the demo and waits, off the runtime's threads, until it is ready.
async fn ready_demo(home: &Path, database_url: Option<&str>) -> (Demo, u16) {
    let port = free_port();
    let mut demo = Demo::start(home, port, database_url);
    let demo = tokio::task::spawn_blocking(move || {
        demo.wait_ready();
        demo
    })
    .await
    .unwrap();
    (demo, port)
}

/// Ctrl-C; the demo must exit 0, its cluster's postmaster (if it has one) with it.
async fn interrupt(demo: Demo, cluster: Option<&Path>) {
    let postmaster = cluster.map(|dir| postmaster_pid(dir).expect("the demo cluster runs"));
    let status = tokio::task::spawn_blocking(move || demo.interrupt())
        .await
        .unwrap();
    assert!(status.success(), "the demo exited with {status}");
    if let Some(pid) = postmaster {
        assert!(ended(pid), "the demo's postmaster {pid} still runs");
    }
}

/// The modification time of the cluster's `PG_VERSION`, which only `initdb` writes.
fn created_at(cluster: &Path) -> std::time::SystemTime {
    let meta = std::fs::metadata(cluster.join("PG_VERSION")).unwrap();
    meta.modified().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newcomer_runs_the_demo_twice_on_its_own_cluster() {
    let home = open_home();
    let cluster = home.path().join("data/sfpg/demo/cluster");
    let shown = cluster.display().to_string();

    let (demo, _) = ready_demo(home.path(), None).await;
    let said = demo.line("created the PostgreSQL");
    assert!(said.contains(&shown), "{said}");
    check_examples(&demo, None).await;
    // The user it prints is a client of the mirror, not the cluster's superuser: it cannot
    // switch the capture triggers off to make the mirror differ from the org.
    let url = demo.psql_url();
    assert!(url.starts_with("postgres://sfpg_demo_app:"), "{url}");
    let bypass = tokio::task::spawn_blocking(move || {
        psql(
            &url,
            "SET session_replication_role = replica; \
             UPDATE salesforce.account SET billingcity = 'Bypass' WHERE id = 1",
            None,
        )
    })
    .await
    .unwrap();
    assert!(!bypass.status.success(), "{}", text(&bypass));
    assert!(text(&bypass).contains("42501"), "{}", text(&bypass));
    // The tour's `sfpg status` with the printed URL: through the proxy, as that role.
    let status = Command::new(env!("CARGO_BIN_EXE_sfpg"))
        .args(["status", "--database-url", &demo.psql_url()])
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", text(&status));
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("org demo"),
        "{}",
        text(&status)
    );
    let created = created_at(&cluster);
    interrupt(demo, Some(&cluster)).await;
    assert!(!cluster.join("postmaster.pid").exists());

    // Again: the same cluster, the org registered afresh against a new emulator.
    let (demo, _) = ready_demo(home.path(), None).await;
    let said = demo.line("reusing the PostgreSQL");
    assert!(said.contains(&shown), "{said}");
    assert_eq!(
        created_at(&cluster),
        created,
        "the cluster was created again"
    );
    check_examples(&demo, None).await;
    interrupt(demo, Some(&cluster)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_mirrors_into_the_database_of_database_url() {
    let db = TestDatabase::create().await;
    let home = open_home();
    let (demo, port) = ready_demo(home.path(), Some(db.url())).await;
    // The largest object came through a Bulk API 2.0 query job, and the demo said so.
    let said = demo.printed.join("\n");
    assert!(
        said.contains("backfills through a Bulk API 2.0 query job"),
        "{said}"
    );
    assert!(said.contains("came through 1 query job(s)"), "{said}");
    assert!(
        !home.path().join("data/sfpg/demo/cluster").exists(),
        "a cluster was made although DATABASE_URL was given"
    );
    let url = demo.psql_url();
    assert!(
        url.ends_with(&format!("@127.0.0.1:{port}/{}", db.name())),
        "{url}"
    );
    check_examples(&demo, db.server().password()).await;
    interrupt(demo, None).await;
    let client = db.connect().await;
    let orgs: i64 = client
        .query_one("SELECT count(*) FROM sfpg.orgs WHERE name = 'demo'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(orgs, 1);

    // An org named demo that is not an emulated one is someone's mirror: the demo leaves it
    // and its tables alone, and says why.
    client
        .execute(
            "UPDATE sfpg.orgs SET login_url = 'https://acme.my.salesforce.com' WHERE name = 'demo'",
            &[],
        )
        .await
        .unwrap();
    let before: i64 = client
        .query_one("SELECT count(*) FROM salesforce.account", &[])
        .await
        .unwrap()
        .get(0);
    let mut child = Command::new(env!("CARGO_BIN_EXE_sfpg"))
        .args(["demo", "--records", "200", "--port", "0"])
        .env("HOME", home.path())
        .env("XDG_DATA_HOME", home.path().join("data"))
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env("DATABASE_URL", db.url())
        .env_remove("SFPG_MASTER_KEY")
        .env_remove("SFPG_MASTER_KEY_FILE")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Refused at once; a demo that went ahead would run until interrupted.
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the demo went ahead over an org that is not an emulated one");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let refused = child.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert_eq!(refused.status.code(), Some(2), "{said}");
    assert!(
        said.contains(
            "already has an org named demo that logs in at https://acme.my.salesforce.com"
        ),
        "{said}"
    );
    let after: i64 = client
        .query_one("SELECT count(*) FROM salesforce.account", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(after, before);
}
