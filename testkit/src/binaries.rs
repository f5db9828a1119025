//! Finds the PostgreSQL server binaries: `initdb` on PATH, then `pg_config --bindir`, then
//! Debian's `/usr/lib/postgresql/<version>/bin` (newest first).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The directory holding `initdb`, `postgres` and `pg_isready`, or a message saying what is
/// missing and how to install it.
pub fn find_bin_dir() -> Result<PathBuf, String> {
    let has_server = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();

    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let initdb = dir.join("initdb");
            if initdb.is_file() {
                // Follow symlinks such as /usr/local/bin/initdb so that the server's sibling
                // tools (pg_isready, psql, pgbench) are found next to it.
                if let Some(real_dir) = initdb
                    .canonicalize()
                    .ok()
                    .and_then(|p| p.parent().map(Path::to_path_buf))
                    .filter(|d| has_server(d))
                {
                    return Ok(real_dir);
                }
            }
        }
    }

    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if has_server(&dir) {
            return Ok(dir);
        }
    }

    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, dir)| has_server(dir))
        .collect();
    versions.sort();
    if let Some((_, dir)) = versions.pop() {
        return Ok(dir);
    }

    Err(format!(
        "PostgreSQL server binaries not found: no `initdb` and `postgres` on PATH, in \
         `pg_config --bindir`, or under /usr/lib/postgresql/*/bin. Install them (Debian or \
         Ubuntu: `apt-get install postgresql`), or set {} to a server where the tests may \
         create databases.",
        crate::TEST_DATABASE_URL_ENV
    ))
}
