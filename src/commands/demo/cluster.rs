//! The demo's own PostgreSQL cluster, for a newcomer who has no database at hand: created
//! with `initdb` in the demo's directory on the first run, started with `pg_ctl` on a free
//! port of 127.0.0.1 (no Unix socket), reused by later runs, and stopped when the demo ends.
//!
//! PostgreSQL refuses to run as root, so under root the cluster belongs to, and runs as,
//! the `postgres` user (or `nobody`), as a packaged server does.

use std::fs;
use std::io::{Read as _, Write as _};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use anyhow::{Context, anyhow, bail};

/// The cluster's superuser, whom the demo connects as (and psql, through the proxy).
pub const SUPERUSER: &str = "sfpg";
/// The database the demo mirrors into.
pub const DATABASE: &str = "demo";
/// How often a start is tried on a new port, should another process take the port first.
const START_ATTEMPTS: usize = 3;

/// An account PostgreSQL runs as when sfpg runs as root.
#[derive(Debug, Clone, Copy)]
pub struct ServerUser {
    pub name: &'static str,
    pub uid: u32,
    pub gid: u32,
}

/// Who the server must run as: nobody else when sfpg is not root.
pub fn server_user() -> anyhow::Result<Option<ServerUser>> {
    let root = fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    if !root {
        return Ok(None);
    }
    let passwd = fs::read_to_string("/etc/passwd").context("cannot read /etc/passwd")?;
    let account = |name: &'static str| {
        passwd.lines().find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            match fields.as_slice() {
                [user, _, uid, gid, ..] if *user == name => Some(ServerUser {
                    name,
                    uid: uid.parse().ok()?,
                    gid: gid.parse().ok()?,
                }),
                _ => None,
            }
        })
    };
    account("postgres")
        .or_else(|| account("nobody"))
        .map(Some)
        .ok_or_else(|| {
            anyhow!(
                "PostgreSQL refuses to run as root, and there is no `postgres` or `nobody` user \
                 to run the demo cluster as; create one (`useradd postgres`) or set DATABASE_URL"
            )
        })
}

/// Whether `user` can reach a directory at `path`: it may search every directory above.
pub fn reachable_by(path: &Path, user: ServerUser) -> bool {
    path.ancestors().skip(1).all(|dir| match fs::metadata(dir) {
        Ok(meta) => {
            let mode = meta.permissions().mode();
            mode & 0o001 != 0
                || (meta.uid() == user.uid && mode & 0o100 != 0)
                || (meta.gid() == user.gid && mode & 0o010 != 0)
        }
        // Not there yet: it will be created by root, searchable by all (0755).
        Err(_) => true,
    })
}

/// A started cluster. Stopped by [`Cluster::stop`], or when dropped.
#[derive(Debug)]
pub struct Cluster {
    bin_dir: PathBuf,
    data: PathBuf,
    run_as: Option<ServerUser>,
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
        let password_file = dir.join("password");
        let created = existing_version.is_none();
        let password = if created {
            create_cluster(&bin_dir, dir, &data, run_as, &password_file)?
        } else {
            fs::read_to_string(&password_file)
                .map(|p| p.trim().to_owned())
                .with_context(|| {
                    format!(
                        "the demo cluster in {} has lost its password file {}; delete {} to \
                         start afresh",
                        data.display(),
                        password_file.display(),
                        dir.display()
                    )
                })?
        };
        let version = fs::read_to_string(data.join("PG_VERSION"))
            .map(|v| v.trim().to_owned())
            .unwrap_or_default();
        let mut cluster = Cluster {
            bin_dir,
            data,
            run_as,
            port: 0,
            password,
            created,
            version,
            running: false,
        };
        cluster.stop_leftover()?;
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            cluster.port = free_port()?;
            match cluster.pg_ctl_start() {
                Ok(()) => {
                    cluster.running = true;
                    return Ok(cluster);
                }
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow!("the demo cluster did not start")))
    }

    /// Where the cluster's data lives.
    pub fn data_dir(&self) -> &Path {
        &self.data
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
        let output = self.pg_ctl(&["stop", "-m", "fast", "-w", "-t", "60", "-s"])?;
        if !output.status.success() {
            bail!(
                "cannot stop the demo cluster in {}: {}",
                self.data.display(),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(())
    }

    /// A server left running by an earlier demo that was killed: stopped, so that this run
    /// starts it on a port of its own.
    fn stop_leftover(&mut self) -> anyhow::Result<()> {
        let status = self.pg_ctl(&["status"])?;
        // pg_ctl status: 0 running, 3 not running, 4 no data dir.
        if status.status.code() == Some(0) {
            eprintln!(
                "stopping the demo cluster an earlier demo left running in {}",
                self.data.display()
            );
            self.running = true;
            self.stop()?;
        }
        Ok(())
    }

    fn pg_ctl_start(&self) -> anyhow::Result<()> {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''",
            self.port
        );
        let log = self.data.join("demo-server.log");
        let log_arg = log.display().to_string();
        let output = self.pg_ctl(&[
            "start", "-w", "-t", "60", "-s", "-l", &log_arg, "-o", &options,
        ])?;
        if output.status.success() {
            return Ok(());
        }
        let log_text = fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = log_text.lines().rev().take(5).collect();
        bail!(
            "the demo cluster did not start on port {}: {} {}",
            self.port,
            String::from_utf8_lossy(&output.stderr).trim(),
            tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
        )
    }

    fn pg_ctl(&self, args: &[&str]) -> anyhow::Result<Output> {
        let mut command = Command::new(self.bin_dir.join("pg_ctl"));
        command
            .arg("-D")
            .arg(&self.data)
            .args(args)
            .stdin(Stdio::null())
            // Its own process group: a Ctrl-C on the terminal reaches sfpg, which stops the
            // server last, after the proxy and the sync.
            .process_group(0);
        as_server_user(&mut command, self.run_as);
        command
            .output()
            .with_context(|| format!("cannot run {}", self.bin_dir.join("pg_ctl").display()))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Err(error) = self.stop() {
            eprintln!("{error:#}");
        }
    }
}

/// Runs `initdb` into `data` and returns the superuser's new password (kept in
/// `password_file`, 0600).
fn create_cluster(
    bin_dir: &Path,
    dir: &Path,
    data: &Path,
    run_as: Option<ServerUser>,
    password_file: &Path,
) -> anyhow::Result<String> {
    let password = random_hex(16)?;
    write_private(password_file, &password)?;
    // An empty data dir of the server's user; initdb fills it.
    if data.exists() {
        fs::remove_dir_all(data)
            .with_context(|| format!("cannot clear the unfinished cluster {}", data.display()))?;
    }
    fs::create_dir(data).with_context(|| format!("cannot create {}", data.display()))?;
    fs::set_permissions(data, fs::Permissions::from_mode(0o700))?;
    // initdb reads the password from a file the server's user can read.
    let pwfile = dir.join("initdb-password");
    write_private(&pwfile, &password)?;
    if let Some(user) = run_as {
        for path in [data, pwfile.as_path()] {
            std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid))
                .with_context(|| format!("cannot hand {} to {}", path.display(), user.name))?;
        }
    }
    let mut initdb = Command::new(bin_dir.join("initdb"));
    initdb
        .arg("--pgdata")
        .arg(data)
        .args(["--username", SUPERUSER])
        .arg(format!("--pwfile={}", pwfile.display()))
        .args(["--auth-local=scram-sha-256", "--auth-host=scram-sha-256"])
        .args(["--encoding=UTF8", "--no-locale", "--no-instructions"])
        .stdin(Stdio::null());
    as_server_user(&mut initdb, run_as);
    let output = initdb.output();
    let _ = fs::remove_file(&pwfile);
    let output =
        output.with_context(|| format!("cannot run {}", bin_dir.join("initdb").display()))?;
    if !output.status.success() {
        // Leave no half-made cluster that the next run would take for a finished one.
        let _ = fs::remove_dir_all(data);
        bail!(
            "initdb failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(password)
}

fn as_server_user(command: &mut Command, run_as: Option<ServerUser>) {
    if let Some(user) = run_as {
        command.uid(user.uid).gid(user.gid);
    }
}

/// Writes `text` to a new file only its owner can read.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    let _ = fs::remove_file(path);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

fn random_hex(bytes: usize) -> anyhow::Result<String> {
    let mut buffer = vec![0u8; bytes];
    fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut buffer))
        .context("cannot read /dev/urandom")?;
    Ok(buffer.iter().map(|b| format!("{b:02x}")).collect())
}

fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .context("cannot find a free port on 127.0.0.1")?;
    Ok(listener.local_addr()?.port())
}

/// The directory of `initdb`, `pg_ctl` and `postgres`: for an existing cluster, its
/// version's under /usr/lib/postgresql first; then PATH, `pg_config --bindir`, and the
/// newest /usr/lib/postgresql/*/bin.
fn find_bin_dir(version: Option<&str>) -> anyhow::Result<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(version) = version {
        candidates.push(PathBuf::from(format!("/usr/lib/postgresql/{version}/bin")));
    }
    for dir in std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default()
    {
        // Debian links the tools into /usr/bin through a wrapper; the real directory is
        // where the server binary is.
        if let Ok(real) = dir.join("initdb").canonicalize()
            && let Some(parent) = real.parent()
        {
            candidates.push(parent.to_path_buf());
        }
    }
    if let Ok(output) = Command::new("pg_config").arg("--bindir").output()
        && output.status.success()
    {
        candidates.push(PathBuf::from(
            String::from_utf8_lossy(&output.stdout).trim(),
        ));
    }
    let mut packaged: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let major = entry.file_name().to_str()?.parse().ok()?;
            Some((major, entry.path().join("bin")))
        })
        .collect();
    packaged.sort_by_key(|(major, _)| std::cmp::Reverse(*major));
    candidates.extend(packaged.into_iter().map(|(_, dir)| dir));
    candidates
        .into_iter()
        .find(|dir| {
            ["initdb", "pg_ctl", "postgres"]
                .iter()
                .all(|tool| dir.join(tool).is_file())
        })
        .ok_or_else(|| {
            anyhow!(
                "the demo needs PostgreSQL's server programs (initdb, pg_ctl, postgres) and \
                 found none on PATH, in `pg_config --bindir` or under /usr/lib/postgresql; \
                 install them (Debian, Ubuntu: `apt-get install postgresql`), or set \
                 DATABASE_URL to a database the demo may use"
            )
        })
}
