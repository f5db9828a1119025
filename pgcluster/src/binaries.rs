//! Finds the PostgreSQL server binaries.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Error;

/// The programs a cluster needs, all in one directory.
const SERVER_PROGRAMS: [&str; 3] = ["initdb", "pg_ctl", "postgres"];

/// The directory of `initdb`, `pg_ctl` and `postgres` (and of their siblings: `psql`,
/// `pgbench`, `pg_isready`). For an existing cluster of `version`, that version's Debian
/// directory first; then the directory `initdb` on PATH really lives in (symlinks
/// followed: Debian links the tools into /usr/bin through a wrapper), `pg_config --bindir`,
/// and the newest `/usr/lib/postgresql/*/bin`.
pub fn find_bin_dir(version: Option<&str>) -> Result<PathBuf, Error> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(version) = version {
        candidates.push(PathBuf::from(format!("/usr/lib/postgresql/{version}/bin")));
    }
    for dir in std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default()
    {
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
    let mut packaged: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
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
        .find(|dir| has_server(dir))
        .ok_or(Error::NoBinaries)
}

fn has_server(dir: &Path) -> bool {
    SERVER_PROGRAMS.iter().all(|tool| dir.join(tool).is_file())
}
