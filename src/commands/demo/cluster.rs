//! The demo's own PostgreSQL cluster, for a newcomer who has no database at hand: created
//! with `initdb` in the demo's directory on the first run, started with `pg_ctl` on a free
//! port of 127.0.0.1 (no Unix socket), reused by later runs, and stopped when the demo ends.
//!
//! PostgreSQL refuses to run as root, so under root the cluster belongs to, and runs as,
//! the `postgres` user (or `nobody`), as a packaged server does. How a cluster is found,
//! created, started and stopped is `sfpg-pgcluster`'s, shared with the test harness; what
//! is the demo's own is here: where it lives, its password, and reuse across runs.

use std::fs;
use std::io::Read as _;
use std::path::Path;

use anyhow::{Context, anyhow};
use sfpg_pgcluster::{Init, LocalAuth};
pub use sfpg_pgcluster::{ServerUser, reachable_by};

/// The cluster's superuser, whom the demo connects as (and psql, through the proxy).
pub const SUPERUSER: &str = "sfpg";
/// The database the demo mirrors into.
pub const DATABASE: &str = "demo";
/// How often a start is tried on a new port, should another process take the port first.
const START_ATTEMPTS: usize = 3;
/// TCP on 127.0.0.1 only: no Unix socket, whose directory might not be the server user's.
const SETTINGS: [(&str, &str); 2] = [
    ("listen_addresses", "127.0.0.1"),
    ("unix_socket_directories", ""),
];

/// Who the server must run as: nobody else when sfpg is not root.
pub fn server_user() -> anyhow::Result<Option<ServerUser>> {
    sfpg_pgcluster::server_user().map_err(|error| match error {
        sfpg_pgcluster::Error::NoServerUser => anyhow!(
            "PostgreSQL refuses to run as root, and there is no `postgres` or `nobody` user \
             to run the demo cluster as; create one (`useradd postgres`) or set DATABASE_URL"
        ),
        other => other.into(),
    })
}

/// A started cluster. Stopped by [`Cluster::stop`], or when dropped.
#[derive(Debug)]
pub struct Cluster {
    cluster: sfpg_pgcluster::Cluster,
    port: u16,
    password: String,
    /// This run created it (`initdb`); otherwise an earlier run's was reused.
    pub created: bool,
    /// The server's major version.
    pub version: String,
    running: bool,
}

impl Cluster {
    /// Starts the cluster in `dir/cluster`, creating it first if there is none. Blocks.
    pub fn start(dir: &Path, run_as: Option<ServerUser>) -> anyhow::Result<Cluster> {
        let data = dir.join("cluster");
        let existing_version = fs::read_to_string(data.join("PG_VERSION"))
            .ok()
            .map(|v| v.trim().to_owned());
        let bin_dir = find_bin_dir(existing_version.as_deref())?;
        let cluster = sfpg_pgcluster::Cluster::new(bin_dir, data, run_as);
        let password_file = dir.join("password");
        let created = existing_version.is_none();
        let password = if created {
            create(&cluster, &password_file)?
        } else {
            fs::read_to_string(&password_file)
                .map(|p| p.trim().to_owned())
                .with_context(|| {
                    format!(
                        "the demo cluster in {} has lost its password file {}; delete {} to \
                         start afresh",
                        cluster.data_dir().display(),
                        password_file.display(),
                        dir.display()
                    )
                })?
        };
        let mut started = Cluster {
            version: cluster.version().unwrap_or_default(),
            cluster,
            port: 0,
            password,
            created,
            running: false,
        };
        started.stop_leftover()?;
        let log = started.cluster.data_dir().join("demo-server.log");
        started.port = started
            .cluster
            .start_on_free_port(START_ATTEMPTS, &SETTINGS, &log)
            .context("the demo cluster did not start")?;
        started.running = true;
        Ok(started)
    }

    /// Where the cluster's data lives.
    pub fn data_dir(&self) -> &Path {
        self.cluster.data_dir()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The demo database's URL, as the superuser.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://{SUPERUSER}:{}@127.0.0.1:{}/{database}",
            self.password, self.port
        )
    }

    /// Creates the demo database unless it exists.
    pub async fn ensure_database(&self) -> anyhow::Result<()> {
        let client = crate::database::connect(&self.url("postgres")).await?;
        let exists = client
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&DATABASE])
            .await?
            .is_some();
        if !exists {
            client
                .batch_execute(&format!("CREATE DATABASE {DATABASE}"))
                .await
                .context("cannot create the demo database")?;
        }
        Ok(())
    }

    /// Stops the server (fast: sessions are ended, and it shuts down cleanly). Blocks.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        if !self.running {
            return Ok(());
        }
        self.running = false;
        self.cluster.stop().context("cannot stop the demo cluster")
    }

    /// A server left running by an earlier demo that was killed: stopped, so that this run
    /// starts it on a port of its own.
    fn stop_leftover(&mut self) -> anyhow::Result<()> {
        if self.cluster.is_running()? {
            eprintln!(
                "stopping the demo cluster an earlier demo left running in {}",
                self.data_dir().display()
            );
            self.running = true;
            self.stop()?;
        }
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Err(error) = self.stop() {
            eprintln!("{error:#}");
        }
    }
}

/// Runs `initdb` and returns the superuser's new password (kept in `password_file`, 0600).
fn create(cluster: &sfpg_pgcluster::Cluster, password_file: &Path) -> anyhow::Result<String> {
    let password = random_hex(16)?;
    sfpg_pgcluster::write_private(password_file, &password)?;
    cluster.init(&Init {
        superuser: SUPERUSER,
        password: &password,
        local_auth: LocalAuth::Scram,
        sync: true,
    })?;
    Ok(password)
}

/// The server binaries; for an existing cluster, its own version's first.
fn find_bin_dir(version: Option<&str>) -> anyhow::Result<std::path::PathBuf> {
    sfpg_pgcluster::find_bin_dir(version).map_err(|error| match error {
        sfpg_pgcluster::Error::NoBinaries => anyhow!(
            "the demo needs PostgreSQL's server programs (initdb, pg_ctl, postgres) and \
             found none on PATH, in `pg_config --bindir` or under /usr/lib/postgresql; \
             install them (Debian, Ubuntu: `apt-get install postgresql`), or set \
             DATABASE_URL to a database the demo may use"
        ),
        other => other.into(),
    })
}

pub(super) fn random_hex(bytes: usize) -> anyhow::Result<String> {
    let mut buffer = vec![0u8; bytes];
    fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut buffer))
        .context("cannot read /dev/urandom")?;
    Ok(buffer.iter().map(|b| format!("{b:02x}")).collect())
}
