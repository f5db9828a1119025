//! What can go wrong in creating, starting or stopping a cluster.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "PostgreSQL's server programs (initdb, pg_ctl, postgres) were not found on PATH, in \
         `pg_config --bindir` or under /usr/lib/postgresql/*/bin; install them (Debian, \
         Ubuntu: `apt-get install postgresql`)"
    )]
    NoBinaries,
    #[error(
        "PostgreSQL refuses to run as root, and there is no `postgres` or `nobody` user to run \
         it as; create one (`useradd postgres`)"
    )]
    NoServerUser,
    #[error("cannot read /etc/passwd to find a user to run PostgreSQL as")]
    Passwd(#[source] std::io::Error),
    #[error("cannot {action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot run {}", program.display())]
    Spawn {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A program ran and failed: what it said, and the end of the server's log if any.
    #[error("{what} failed: {said}")]
    Failed { what: String, said: String },
    #[error("cannot find a free port on 127.0.0.1")]
    NoFreePort(#[source] std::io::Error),
}

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    }
}
