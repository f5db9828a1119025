//! A PostgreSQL cluster that sfpg creates and runs itself, shared by the two places that do:
//! `sfpg demo`, whose cluster lives in the user's data directory and is reused by the next
//! run, and the test harness (`sfpg-testkit`), whose throwaway cluster lives in a temp dir.
//! Both find the server binaries the same way, run `initdb` with the same options (superuser
//! with a password, SCRAM over TCP, UTF-8, no locale), start and stop the server with
//! `pg_ctl` on a free port of 127.0.0.1, and, under root, run it as an unprivileged user.
//!
//! What differs stays with the caller: where the cluster lives, its password, its settings
//! (a Unix socket or none, durability), and who cleans up.

mod binaries;
mod cluster;
mod error;
mod user;

pub use binaries::find_bin_dir;
pub use cluster::{Cluster, Init, LocalAuth, free_port, postmaster_pid, write_private};
pub use error::Error;
pub use user::{ServerUser, reachable_by, server_user};
