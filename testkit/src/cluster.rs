//! The PostgreSQL server the tests of one process share: either the one named by
//! `SFPG_TEST_DATABASE_URL`, or a throwaway cluster started on first use.
//!
//! A throwaway cluster lives in its own temp dir (data, Unix socket, log). Because a test
//! process can end in ways no destructor sees (a `process::exit`, `kill -9`), cleanup is not
//! left to this process: a small reaper shell process waits for it to exit, then stops the
//! server and deletes the dir.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use sfpg_pgcluster::{Cluster, Init, LocalAuth, ServerUser};

const SUPERUSER: &str = "sfpg";
// Host connections use SCRAM, so tests can exercise wrong-password paths; the password is
// only ever valid for this throwaway cluster.
const SUPERUSER_PASSWORD: &str = "sfpg-test-password";
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
        sfpg_pgcluster::postmaster_pid(&self.cluster_dir.as_ref()?.join("data"))
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
        bin_dir: sfpg_pgcluster::find_bin_dir(None).ok(),
        cluster_dir: None,
    })
}

fn throwaway() -> Result<Server, String> {
    let cluster = init().map_err(|e| e.to_string())?;
    let port = cluster
        .start_on_free_port(START_ATTEMPTS, &settings(&cluster), &log(&cluster))
        .map_err(|e| {
            format!(
                "the throwaway PostgreSQL server did not start after {START_ATTEMPTS} attempts: {e}"
            )
        })?;
    // The server lives until the reaper stops it, after this process.
    Ok(server_of(&cluster, port))
}

/// A cluster initialised in a temp dir of its own (removed by a reaper once this process
/// exits), not started yet. Its data is in `data/`, its socket and log beside it.
pub(crate) fn init() -> Result<Cluster, sfpg_pgcluster::Error> {
    let bin_dir = sfpg_pgcluster::find_bin_dir(None)?;
    let run_as = sfpg_pgcluster::server_user()?;
    let dir = make_cluster_dir(run_as)?;
    spawn_reaper(&dir)?;
    let cluster = Cluster::new(bin_dir, dir.join("data"), run_as);
    cluster.init(&Init {
        superuser: SUPERUSER,
        password: SUPERUSER_PASSWORD,
        local_auth: LocalAuth::Trust,
        // Durability buys nothing in a cluster that is deleted at exit.
        sync: false,
    })?;
    Ok(cluster)
}

/// The directory of a throwaway cluster: its data, socket and log.
pub(crate) fn cluster_dir(cluster: &Cluster) -> &Path {
    cluster.data_dir().parent().unwrap_or(cluster.data_dir())
}

/// The throwaway server's settings: TCP on 127.0.0.1, the Unix socket in the cluster's
/// directory, and no durability, which buys nothing in a cluster deleted at exit.
pub(crate) fn settings(cluster: &Cluster) -> Vec<(&'static str, String)> {
    vec![
        ("listen_addresses", "127.0.0.1".to_owned()),
        (
            "unix_socket_directories",
            cluster_dir(cluster).display().to_string(),
        ),
        ("fsync", "off".to_owned()),
        ("synchronous_commit", "off".to_owned()),
        ("full_page_writes", "off".to_owned()),
        ("max_connections", "300".to_owned()),
    ]
}

pub(crate) fn log(cluster: &Cluster) -> PathBuf {
    cluster_dir(cluster).join("postgres.log")
}

/// The server `cluster` is once started on `port`.
pub(crate) fn server_of(cluster: &Cluster, port: u16) -> Server {
    Server {
        host: "127.0.0.1".to_owned(),
        port,
        user: SUPERUSER.to_owned(),
        password: Some(SUPERUSER_PASSWORD.to_owned()),
        bin_dir: Some(cluster.bin_dir().to_owned()),
        cluster_dir: Some(cluster_dir(cluster).to_owned()),
    }
}

fn make_cluster_dir(run_as: Option<ServerUser>) -> Result<PathBuf, sfpg_pgcluster::Error> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("sfpg-testkit-{}-{nanos:09}", std::process::id()));
    let io = |action: &'static str| {
        let path = dir.clone();
        move |source| sfpg_pgcluster::Error::Io {
            action,
            path,
            source,
        }
    };
    fs::create_dir(&dir).map_err(io("create"))?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
        .map_err(io("set the permissions of"))?;
    if let Some(user) = run_as {
        user.chown(&dir)?;
    }
    Ok(dir)
}

fn spawn_reaper(dir: &Path) -> Result<(), sfpg_pgcluster::Error> {
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
        .map_err(|source| sfpg_pgcluster::Error::Spawn {
            program: PathBuf::from("sh"),
            source,
        })
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
