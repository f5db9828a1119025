//! A cluster's whole life through the crate's API, as the demo lives it: created in a
//! directory whose path has a space (settings reach the server through pg_ctl's shell),
//! started on a free port with its socket in that directory, found running, stopped, found
//! stopped, and started again with its data.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use sfpg_pgcluster::{Cluster, Init, LocalAuth};

/// A fresh directory the server's user can reach, removed when dropped.
struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn accepts_connections(bin_dir: &Path, port: u16, socket_dir: &Path) -> bool {
    let ready = |host: &str| {
        Command::new(bin_dir.join("pg_isready"))
            .args(["-q", "-h", host, "-p", &port.to_string()])
            .status()
            .unwrap()
            .success()
    };
    ready("127.0.0.1") && ready(&socket_dir.display().to_string())
}

#[test]
fn a_cluster_is_created_started_stopped_and_started_again() {
    let dir = Dir(std::env::temp_dir().join(format!("sfpg pgcluster {}", std::process::id())));
    std::fs::create_dir(&dir.0).unwrap();
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    let run_as = sfpg_pgcluster::server_user().unwrap();
    // The server writes its log and socket here.
    if let Some(user) = run_as {
        user.chown(&dir.0).unwrap();
    }
    let cluster = Cluster::new(
        sfpg_pgcluster::find_bin_dir(None).unwrap(),
        dir.0.join("data"),
        run_as,
    );
    assert_eq!(cluster.version(), None);
    cluster
        .init(&Init {
            superuser: "sfpg",
            password: "a password",
            local_auth: LocalAuth::Scram,
            sync: false,
        })
        .unwrap();
    assert!(cluster.version().is_some());
    assert!(
        !dir.0.join("initdb-password").exists(),
        "initdb's password file outlived initdb"
    );
    assert!(!cluster.is_running().unwrap());

    let socket_dir = dir.0.display().to_string();
    let settings = [
        ("listen_addresses", "127.0.0.1"),
        ("unix_socket_directories", socket_dir.as_str()),
    ];
    let log = dir.0.join("server.log");
    let port = cluster.start_on_free_port(3, &settings, &log).unwrap();
    assert!(cluster.is_running().unwrap());
    assert!(cluster.postmaster_pid().is_some());
    assert!(accepts_connections(cluster.bin_dir(), port, &dir.0));

    cluster.stop().unwrap();
    assert!(!cluster.is_running().unwrap());
    assert_eq!(cluster.postmaster_pid(), None);
    assert!(!accepts_connections(cluster.bin_dir(), port, &dir.0));

    cluster.start(port, &settings, &log).unwrap();
    assert!(accepts_connections(cluster.bin_dir(), port, &dir.0));
    cluster.stop().unwrap();
}
