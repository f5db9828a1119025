//! Who runs the throwaway server. `initdb` and `postgres` refuse to run as root, so under root
//! (as in CI) the server runs as an unprivileged system user, the way a packaged server does.

use std::os::unix::fs::MetadataExt;

/// An unprivileged account to run the server as.
#[derive(Debug, Clone, Copy)]
pub struct ServerUser {
    pub uid: u32,
    pub gid: u32,
}

pub fn running_as_root() -> bool {
    // /proc/self is owned by the process's effective uid; this avoids unsafe libc calls.
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// The account to drop to when running as root: `postgres` if it exists, else `nobody`.
pub fn unprivileged_user() -> Result<ServerUser, String> {
    let passwd = std::fs::read_to_string("/etc/passwd")
        .map_err(|e| format!("cannot read /etc/passwd to find a non-root user: {e}"))?;
    for wanted in ["postgres", "nobody"] {
        for line in passwd.lines() {
            let fields: Vec<&str> = line.split(':').collect();
            if fields.len() >= 4
                && fields[0] == wanted
                && let (Ok(uid), Ok(gid)) = (fields[2].parse(), fields[3].parse())
            {
                return Ok(ServerUser { uid, gid });
            }
        }
    }
    Err(
        "running as root, and neither a `postgres` nor a `nobody` user exists to run the \
         test server as (PostgreSQL refuses to run as root); create one with `useradd postgres`"
            .to_owned(),
    )
}
