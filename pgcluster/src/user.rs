//! Who runs the server. `initdb`, `pg_ctl` and `postgres` refuse to run as root, so under
//! root the cluster belongs to, and runs as, an unprivileged system user, the way a packaged
//! server does: `postgres` if there is one, else `nobody`.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use crate::Error;

/// The account the server runs as when sfpg runs as root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerUser {
    pub name: &'static str,
    pub uid: u32,
    pub gid: u32,
}

/// Who the server must run as: `None` when this process is not root (the server runs as
/// this process's user).
pub fn server_user() -> Result<Option<ServerUser>, Error> {
    // /proc/self is owned by the process's effective uid; this avoids unsafe libc calls.
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    if !root {
        return Ok(None);
    }
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(Error::Passwd)?;
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
        .ok_or(Error::NoServerUser)
}

impl ServerUser {
    /// Hands `path` to this user.
    pub fn chown(&self, path: &Path) -> Result<(), Error> {
        std::os::unix::fs::chown(path, Some(self.uid), Some(self.gid))
            .map_err(Error::io("hand to the server's user", path))
    }
}

/// Whether `user` can reach a directory at `path`: it may search every directory above.
pub fn reachable_by(path: &Path, user: ServerUser) -> bool {
    path.ancestors()
        .skip(1)
        .all(|dir| match std::fs::metadata(dir) {
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

/// `command`, run as `run_as` when there is one.
pub(crate) fn as_user(command: &mut Command, run_as: Option<ServerUser>) -> &mut Command {
    if let Some(user) = run_as {
        command.uid(user.uid).gid(user.gid);
    }
    command
}

/// Hands `path` to `run_as` when there is one.
pub(crate) fn chown(path: &Path, run_as: Option<ServerUser>) -> Result<(), Error> {
    run_as.map_or(Ok(()), |user| user.chown(path))
}
