//! A PostgreSQL server of one test's own, which the test may stop and start again on the
//! same port: how a test shows what a process does while its database is gone, and that
//! it resumes once the database is back. The shared server cannot be stopped, since every
//! other test of the process uses it.

use std::sync::{Mutex, PoisonError};

use sfpg_pgcluster::Cluster;

use crate::cluster::{self, Server};

/// A throwaway cluster of its own: initialised and started by [`StoppableServer::start`],
/// stopped and removed when dropped (and by the reaper, however the process ends).
pub struct StoppableServer {
    cluster: Cluster,
    server: Server,
    running: Mutex<bool>,
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
        let started = cluster::init().and_then(|cluster| {
            let port = cluster.start_on_free_port(
                1,
                &cluster::settings(&cluster),
                &cluster::log(&cluster),
            )?;
            Ok((cluster, port))
        });
        match started {
            Ok((cluster, port)) => StoppableServer {
                server: cluster::server_of(&cluster, port),
                cluster,
                running: Mutex::new(true),
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
        *self.running()
    }

    /// Stops the server with `pg_ctl stop -m fast` (SIGINT): sessions are ended with
    /// 57P01, and connecting is refused until [`StoppableServer::restart`]. Waits until the
    /// postmaster has exited.
    pub fn stop(&self) {
        let mut running = self.running();
        if !*running {
            return;
        }
        if let Err(error) = self.cluster.stop() {
            panic!("sfpg-testkit: {error}");
        }
        *running = false;
    }

    /// Starts the stopped server again, on the same port and with the same data.
    pub fn restart(&self) {
        let mut running = self.running();
        if *running {
            return;
        }
        let started = self.cluster.start(
            self.server.port(),
            &cluster::settings(&self.cluster),
            &cluster::log(&self.cluster),
        );
        match started {
            Ok(()) => *running = true,
            Err(message) => panic!("sfpg-testkit: cannot restart the server: {message}"),
        }
    }

    fn running(&self) -> std::sync::MutexGuard<'_, bool> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for StoppableServer {
    fn drop(&mut self) {
        if *self.running() {
            let _ = self.cluster.stop();
        }
        let _ = std::fs::remove_dir_all(cluster::cluster_dir(&self.cluster));
    }
}
