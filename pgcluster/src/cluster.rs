//! One cluster: `initdb` into its data directory, then `pg_ctl` to start it, stop it and
//! ask whether it runs.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::Error;
use crate::user::{ServerUser, as_user, chown};

/// How long `pg_ctl` waits for the server to start or stop, in seconds.
const PG_CTL_WAIT_SECONDS: &str = "60";
/// How many of the server log's last lines a failed start reports.
const LOG_LINES_REPORTED: usize = 10;

/// How clients on the Unix socket log in; over TCP it is always SCRAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalAuth {
    Trust,
    Scram,
}

impl LocalAuth {
    fn method(self) -> &'static str {
        match self {
            LocalAuth::Trust => "trust",
            LocalAuth::Scram => "scram-sha-256",
        }
    }
}

/// What `initdb` is given.
#[derive(Debug, Clone, Copy)]
pub struct Init<'a> {
    /// The superuser's name, and its password (SCRAM).
    pub superuser: &'a str,
    pub password: &'a str,
    pub local_auth: LocalAuth,
    /// Whether `initdb` waits for its files to reach the disk; a cluster deleted at exit
    /// need not.
    pub sync: bool,
}

/// A cluster's data directory, the binaries that serve it and who runs them.
#[derive(Debug, Clone)]
pub struct Cluster {
    bin_dir: PathBuf,
    data: PathBuf,
    run_as: Option<ServerUser>,
}

impl Cluster {
    /// The cluster in `data`, initialised or not yet, served by the binaries in `bin_dir`
    /// as `run_as` (see [`crate::server_user`]).
    pub fn new(bin_dir: PathBuf, data: PathBuf, run_as: Option<ServerUser>) -> Cluster {
        Cluster {
            bin_dir,
            data,
            run_as,
        }
    }

    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    pub fn run_as(&self) -> Option<ServerUser> {
        self.run_as
    }

    /// The major version of an initialised cluster (its `PG_VERSION`).
    pub fn version(&self) -> Option<String> {
        fs::read_to_string(self.data.join("PG_VERSION"))
            .ok()
            .map(|v| v.trim().to_owned())
    }

    /// The postmaster's pid, while it runs.
    pub fn postmaster_pid(&self) -> Option<u32> {
        postmaster_pid(&self.data)
    }

    /// Runs `initdb`. The data directory is made afresh (an unfinished one, left by an
    /// attempt that failed, is cleared), 0700 and the server user's; the password reaches
    /// `initdb` through a private file beside it, removed afterwards. A failed `initdb`
    /// leaves no data directory, which a later run would take for a finished cluster.
    pub fn init(&self, init: &Init<'_>) -> Result<(), Error> {
        if self.data.exists() {
            fs::remove_dir_all(&self.data).map_err(Error::io("clear", &self.data))?;
        }
        fs::create_dir(&self.data).map_err(Error::io("create", &self.data))?;
        fs::set_permissions(&self.data, fs::Permissions::from_mode(0o700))
            .map_err(Error::io("set the permissions of", &self.data))?;
        chown(&self.data, self.run_as)?;
        let pwfile = self
            .data
            .parent()
            .unwrap_or(Path::new("/"))
            .join("initdb-password");
        write_private(&pwfile, init.password)?;
        chown(&pwfile, self.run_as)?;

        let mut initdb = Command::new(self.bin_dir.join("initdb"));
        initdb
            .arg("--pgdata")
            .arg(&self.data)
            .args(["--username", init.superuser])
            .arg(format!("--pwfile={}", pwfile.display()))
            .arg(format!("--auth-local={}", init.local_auth.method()))
            .arg("--auth-host=scram-sha-256")
            .args(["--encoding=UTF8", "--no-locale", "--no-instructions"])
            .stdin(Stdio::null());
        if !init.sync {
            initdb.arg("--no-sync");
        }
        let output = self.run(&mut initdb);
        let _ = fs::remove_file(&pwfile);
        let output = output?;
        if !output.status.success() {
            let _ = fs::remove_dir_all(&self.data);
            return Err(Error::Failed {
                what: "initdb".to_owned(),
                said: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            });
        }
        Ok(())
    }

    /// Starts the server on 127.0.0.1:`port` with `settings` (each a `-c name=value`),
    /// logging to `log`, and returns once it accepts connections.
    pub fn start<V: AsRef<str>>(
        &self,
        port: u16,
        settings: &[(&str, V)],
        log: &Path,
    ) -> Result<(), Error> {
        let mut options = format!("-p {port}");
        for (name, value) in settings {
            // pg_ctl hands the options to a shell.
            options.push_str(&format!(" -c {name}={}", shell_quote(value.as_ref())));
        }
        let log_arg = log.display().to_string();
        let output = self.pg_ctl(&[
            "start",
            "-w",
            "-t",
            PG_CTL_WAIT_SECONDS,
            "-s",
            "-l",
            &log_arg,
            "-o",
            &options,
        ])?;
        if output.status.success() {
            return Ok(());
        }
        let log_text = fs::read_to_string(log).unwrap_or_default();
        let mut tail: Vec<&str> = log_text.lines().rev().take(LOG_LINES_REPORTED).collect();
        tail.reverse();
        Err(Error::Failed {
            what: format!("starting PostgreSQL on port {port}"),
            said: format!(
                "{} {}",
                String::from_utf8_lossy(&output.stderr).trim(),
                tail.join(" / ")
            ),
        })
    }

    /// [`Cluster::start`] on a free port, tried up to `attempts` times: another process may
    /// take the port between the probe and the server's bind. Returns the port.
    pub fn start_on_free_port<V: AsRef<str>>(
        &self,
        attempts: usize,
        settings: &[(&str, V)],
        log: &Path,
    ) -> Result<u16, Error> {
        let mut last_error = None;
        for _ in 0..attempts.max(1) {
            let port = free_port()?;
            match self.start(port, settings, log) {
                Ok(()) => return Ok(port),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or(Error::Failed {
            what: "starting PostgreSQL".to_owned(),
            said: "no attempt".to_owned(),
        }))
    }

    /// Stops the server with a fast shutdown (sessions are ended with 57P01, and it shuts
    /// down cleanly), and waits until it has.
    pub fn stop(&self) -> Result<(), Error> {
        let output = self.pg_ctl(&["stop", "-m", "fast", "-w", "-t", PG_CTL_WAIT_SECONDS, "-s"])?;
        if output.status.success() {
            return Ok(());
        }
        Err(Error::Failed {
            what: format!("stopping the PostgreSQL cluster in {}", self.data.display()),
            said: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }

    /// Whether a server runs on this data directory, for instance one left by a process
    /// that was killed.
    pub fn is_running(&self) -> Result<bool, Error> {
        // pg_ctl status: 0 running, 3 not running, 4 no data directory.
        Ok(self.pg_ctl(&["status"])?.status.code() == Some(0))
    }

    fn pg_ctl(&self, args: &[&str]) -> Result<Output, Error> {
        let mut command = Command::new(self.bin_dir.join("pg_ctl"));
        command
            .arg("-D")
            .arg(&self.data)
            .args(args)
            .stdin(Stdio::null())
            // Its own process group: a Ctrl-C on the terminal reaches only the process that
            // owns the cluster, which stops it in its own time.
            .process_group(0);
        self.run(&mut command)
    }

    fn run(&self, command: &mut Command) -> Result<Output, Error> {
        as_user(command, self.run_as)
            .output()
            .map_err(|source| Error::Spawn {
                program: PathBuf::from(command.get_program()),
                source,
            })
    }
}

/// A free TCP port of 127.0.0.1, as the system picks one.
/// The pid of the postmaster running on the data directory `data`, from its
/// `postmaster.pid`; `None` when no server runs there.
pub fn postmaster_pid(data: &Path) -> Option<u32> {
    fs::read_to_string(data.join("postmaster.pid"))
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

pub fn free_port() -> Result<u16, Error> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(Error::NoFreePort)
}

/// Writes `text` to a new file only its owner can read.
pub fn write_private(path: &Path, text: &str) -> Result<(), Error> {
    let _ = fs::remove_file(path);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(Error::io("create", path))?;
    file.write_all(text.as_bytes())
        .map_err(Error::io("write", path))
}

/// `value` as one word of a POSIX shell command line.
fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quoting_keeps_a_value_one_word() {
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("127.0.0.1"), "'127.0.0.1'");
        assert_eq!(shell_quote("/tmp/a b"), "'/tmp/a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
