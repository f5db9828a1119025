//! A PostgreSQL server of one test's own, which the test may stop and start again on the
//! same port: how a test shows what a process does while its database is gone, and that
//! it resumes once the database is back. The shared server cannot be stopped, since every
//! other test of the process uses it.

use std::process::Child;
use std::sync::{Mutex, PoisonError};

use crate::cluster::{Cluster, Server, free_port, start_postmaster};

/// A throwaway cluster of its own: initialised and started by [`StoppableServer::start`],
/// stopped and removed when dropped (and by the reaper, however the process ends).
pub struct StoppableServer {
    cluster: Cluster,
    server: Server,
    postmaster: Mutex<Option<Child>>,
}

impl std::fmt::Debug for StoppableServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoppableServer")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl StoppableServer {
    /// Initialises a cluster and starts it on a free port. Panics with what is missing when
    /// no server can be had.
    pub fn start() -> StoppableServer {
        let started = Cluster::init().and_then(|cluster| {
            let port = free_port()?;
            let postmaster =
                start_postmaster(&cluster.bin_dir, &cluster.dir, port, cluster.run_as)?;
            Ok((cluster, port, postmaster))
        });
        match started {
            Ok((cluster, port, postmaster)) => StoppableServer {
                server: cluster.server(port),
                cluster,
                postmaster: Mutex::new(Some(postmaster)),
            },
            Err(message) => panic!("sfpg-testkit: {message}"),
        }
    }

    /// Where it listens, and as whom to connect.
    pub fn server(&self) -> &Server {
        &self.server
    }

    /// Whether the server is running.
    pub fn is_running(&self) -> bool {
        self.postmaster().is_some()
    }

    /// Stops the server as `pg_ctl stop -m fast` does (SIGINT): sessions are ended with
    /// 57P01, and connecting is refused until [`StoppableServer::restart`]. Waits until the
    /// postmaster has exited.
    pub fn stop(&self) {
        let Some(mut postmaster) = self.postmaster().take() else {
            return;
        };
        let pid = postmaster.id().to_string();
        // SIGINT is PostgreSQL's fast shutdown; std only sends SIGKILL.
        let signalled = std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .is_ok_and(|s| s.success());
        if !signalled {
            let _ = postmaster.kill();
        }
        let _ = postmaster.wait();
    }

    /// Starts the stopped server again, on the same port and with the same data.
    pub fn restart(&self) {
        let mut postmaster = self.postmaster();
        if postmaster.is_some() {
            return;
        }
        match start_postmaster(
            &self.cluster.bin_dir,
            &self.cluster.dir,
            self.server.port(),
            self.cluster.run_as,
        ) {
            Ok(child) => *postmaster = Some(child),
            Err(message) => panic!("sfpg-testkit: cannot restart the server: {message}"),
        }
    }

    fn postmaster(&self) -> std::sync::MutexGuard<'_, Option<Child>> {
        self.postmaster
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for StoppableServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.cluster.dir);
    }
}
