//! The PostgreSQL server the tests of one process share: either the one named by
//! `SFPG_TEST_DATABASE_URL`, or a throwaway cluster started on first use.
//!
//! A throwaway cluster lives in its own temp dir (data, Unix socket, log). Because a test
//! process can end in ways no destructor sees (a `process::exit`, `kill -9`), cleanup is not
//! left to this process: a small reaper shell process waits for it to exit, then stops the
//! server and deletes the dir.

use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::binaries::find_bin_dir;
use crate::users::{ServerUser, running_as_root, unprivileged_user};

const SUPERUSER: &str = "sfpg";
// Host connections use SCRAM, so tests can exercise wrong-password paths; the password is
// only ever valid for this throwaway cluster.
const SUPERUSER_PASSWORD: &str = "sfpg-test-password";
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
const START_ATTEMPTS: usize = 5;

/// Waits for the test process ($1) to exit, then stops the server whose data dir is under $2
/// and deletes $2. It ignores the signals a terminal sends, so Ctrl-C on `cargo test` still
/// ends with a clean machine.
const REAPER_SCRIPT: &str = r#"
trap '' INT TERM HUP
while kill -0 "$1" 2>/dev/null; do sleep 0.05; done
pid=$(head -n 1 "$2/data/postmaster.pid" 2>/dev/null)
if [ -n "$pid" ]; then
  kill -INT "$pid" 2>/dev/null
  i=0
  while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
  kill -KILL "$pid" 2>/dev/null
fi
rm -rf "$2"
"#;

/// Where the tests' databases are created.
#[derive(Debug)]
pub struct Server {
    host: String,
    port: u16,
    user: String,
    password: Option<String>,
    bin_dir: Option<PathBuf>,
    cluster_dir: Option<PathBuf>,
}

impl Server {
    /// A connection URL for `dbname` on this server, as the superuser.
    pub fn url(&self, dbname: &str) -> String {
        let auth = match &self.password {
            Some(password) => format!("{}:{}", encode(&self.user), encode(password)),
            None => encode(&self.user),
        };
        if self.host.starts_with('/') {
            format!(
                "postgresql://{auth}@/{dbname}?host={}&port={}",
                encode(&self.host),
                self.port
            )
        } else {
            format!("postgresql://{auth}@{}:{}/{dbname}", self.host, self.port)
        }
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// The server's binary directory (psql, pgbench, pg_isready), when the harness started
    /// the server itself.
    pub fn bin_dir(&self) -> Option<&Path> {
        self.bin_dir.as_deref()
    }

    /// The throwaway cluster's directory (data, socket, log); `None` for an external server.
    pub fn cluster_dir(&self) -> Option<&Path> {
        self.cluster_dir.as_deref()
    }

    /// The pid of the throwaway cluster's postmaster.
    pub fn postmaster_pid(&self) -> Option<u32> {
        let pid_file = self.cluster_dir.as_ref()?.join("data/postmaster.pid");
        fs::read_to_string(pid_file)
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }
}

static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();

/// The shared server, started on first call. Panics with a message naming what is missing
/// when no server can be had: a test without its database cannot run.
pub fn server() -> &'static Server {
    match SERVER.get_or_init(start) {
        Ok(server) => server,
        Err(message) => panic!("sfpg-testkit: {message}"),
    }
}

fn start() -> Result<Server, String> {
    match std::env::var(crate::TEST_DATABASE_URL_ENV) {
        Ok(url) if !url.trim().is_empty() => external(&url),
        _ => throwaway(),
    }
}

fn external(url: &str) -> Result<Server, String> {
    let name = crate::TEST_DATABASE_URL_ENV;
    let config = tokio_postgres::Config::from_str(url)
        .map_err(|e| format!("{name} is not a valid connection string: {e}"))?;
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        Some(tokio_postgres::config::Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_owned(),
    };
    Ok(Server {
        host,
        port: config.get_ports().first().copied().unwrap_or(5432),
        user: config.get_user().unwrap_or("postgres").to_owned(),
        password: config
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned()),
        bin_dir: find_bin_dir().ok(),
        cluster_dir: None,
    })
}

fn throwaway() -> Result<Server, String> {
    let cluster = Cluster::init()?;
    let mut last_error = String::new();
    for _ in 0..START_ATTEMPTS {
        let port = free_port()?;
        match start_postmaster(&cluster.bin_dir, &cluster.dir, port, cluster.run_as) {
            // The postmaster lives until the reaper stops it, after this process.
            Ok(_postmaster) => return Ok(cluster.server(port)),
            // Another process may have taken the port between our probe and the bind.
            Err(error) => last_error = error,
        }
    }
    Err(format!(
        "the throwaway PostgreSQL server did not start after {START_ATTEMPTS} attempts: {last_error}"
    ))
}

/// A cluster initialised in a temp dir of its own (removed by a reaper once this process
/// exits), not started yet.
pub(crate) struct Cluster {
    pub(crate) bin_dir: PathBuf,
    pub(crate) dir: PathBuf,
    pub(crate) run_as: Option<ServerUser>,
}

impl Cluster {
    pub(crate) fn init() -> Result<Cluster, String> {
        let bin_dir = find_bin_dir()?;
        let run_as = if running_as_root() {
            Some(unprivileged_user()?)
        } else {
            None
        };
        let dir = make_cluster_dir(run_as)?;
        spawn_reaper(&dir)?;
        initdb(&bin_dir, &dir, run_as)?;
        Ok(Cluster {
            bin_dir,
            dir,
            run_as,
        })
    }

    /// The server this cluster is once started on `port`.
    pub(crate) fn server(&self, port: u16) -> Server {
        Server {
            host: "127.0.0.1".to_owned(),
            port,
            user: SUPERUSER.to_owned(),
            password: Some(SUPERUSER_PASSWORD.to_owned()),
            bin_dir: Some(self.bin_dir.clone()),
            cluster_dir: Some(self.dir.clone()),
        }
    }
}

fn initdb(bin_dir: &Path, dir: &Path, run_as: Option<ServerUser>) -> Result<(), String> {
    let pwfile = dir.join("pwfile");
    fs::write(&pwfile, SUPERUSER_PASSWORD).map_err(|e| format!("cannot write {pwfile:?}: {e}"))?;
    chown(&pwfile, run_as)?;

    let mut initdb = Command::new(bin_dir.join("initdb"));
    initdb
        .arg("--pgdata")
        .arg(dir.join("data"))
        .args(["--username", SUPERUSER, "--auth-local=trust"])
        .args([
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--no-locale",
        ])
        .args(["--no-sync", "--no-instructions"])
        .arg(format!("--pwfile={}", pwfile.display()));
    let output = as_user(&mut initdb, run_as)
        .output()
        .map_err(|e| format!("cannot run initdb in {}: {e}", bin_dir.display()))?;
    if !output.status.success() {
        return Err(format!(
            "initdb failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(())
}

fn make_cluster_dir(run_as: Option<ServerUser>) -> Result<PathBuf, String> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("sfpg-testkit-{}-{nanos:09}", std::process::id()));
    fs::create_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("cannot set permissions on {}: {e}", dir.display()))?;
    chown(&dir, run_as)?;
    Ok(dir)
}

fn chown(path: &Path, run_as: Option<ServerUser>) -> Result<(), String> {
    match run_as {
        Some(user) => std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid))
            .map_err(|e| format!("cannot hand {} to the server's user: {e}", path.display())),
        None => Ok(()),
    }
}

fn as_user(command: &mut Command, run_as: Option<ServerUser>) -> &mut Command {
    if let Some(user) = run_as {
        command.uid(user.uid).gid(user.gid);
    }
    command
}

fn spawn_reaper(dir: &Path) -> Result<(), String> {
    Command::new("sh")
        .arg("-c")
        .arg(REAPER_SCRIPT)
        .arg("sfpg-testkit-reaper")
        .arg(std::process::id().to_string())
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group: a terminal's Ctrl-C must not take the reaper down with us.
        .process_group(0)
        .spawn()
        .map(drop)
        .map_err(|e| format!("cannot start the cleanup process (sh): {e}"))
}

pub(crate) fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| format!("cannot find a free port on 127.0.0.1: {e}"))
}

pub(crate) fn start_postmaster(
    bin_dir: &Path,
    dir: &Path,
    port: u16,
    run_as: Option<ServerUser>,
) -> Result<Child, String> {
    let log_path = dir.join("postgres.log");
    let log = File::options()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| format!("cannot create {log_path:?}: {e}"))?;
    let log_err = log
        .try_clone()
        .map_err(|e| format!("cannot share {log_path:?}: {e}"))?;
    let mut postgres = Command::new(bin_dir.join("postgres"));
    postgres
        .arg("-D")
        .arg(dir.join("data"))
        .arg("-p")
        .arg(port.to_string())
        .arg("-k")
        .arg(dir)
        .args(["-c", "listen_addresses=127.0.0.1"])
        // Durability buys nothing in a cluster that is deleted at exit.
        .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
        .args(["-c", "full_page_writes=off", "-c", "max_connections=300"])
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log_err))
        .process_group(0);
    let mut child = as_user(&mut postgres, run_as)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin_dir.join("postgres").display()))?;
    wait_until_ready(bin_dir, port, &mut child, &log_path)?;
    Ok(child)
}

fn wait_until_ready(
    bin_dir: &Path,
    port: u16,
    postmaster: &mut Child,
    log_path: &Path,
) -> Result<(), String> {
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    loop {
        if let Ok(Some(status)) = postmaster.try_wait() {
            let log = fs::read_to_string(log_path).unwrap_or_default();
            return Err(format!(
                "postgres exited ({status}) on port {port}: {}",
                log.trim()
            ));
        }
        let ready = Command::new(bin_dir.join("pg_isready"))
            .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        if ready {
            return Ok(());
        }
        if Instant::now() > deadline {
            let _ = postmaster.kill();
            return Err(format!(
                "postgres on port {port} was not ready within {STARTUP_TIMEOUT:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Percent-encodes everything but unreserved characters, enough for user names and
/// passwords in a connection URL.
fn encode(raw: &str) -> String {
    raw.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
