//! Test harness for every sfpg test that needs PostgreSQL.
//!
//! With `SFPG_TEST_DATABASE_URL` set, tests create their databases on that server. Otherwise
//! the first test of a process starts ONE throwaway cluster (initdb into a temp dir, a free
//! port, fsync off) that all tests of the process share, and a reaper process removes it when
//! the test process exits, however it exits. Each test gets a fresh database, dropped when its
//! [`TestDatabase`] is.
//!
//! ```no_run
//! # async fn example() {
//! let db = sfpg_testkit::TestDatabase::create().await;
//! let client = db.connect().await;
//! client.batch_execute("CREATE TABLE t (x int)").await.unwrap();
//! # }
//! ```
//!
//! The rest of what tests share is here too, so that it is written once:
//! - [`process`]: processes a test starts (their output, their log, `/proc`), the crash
//!   tests' process killed with SIGKILL and started again ([`process::Crashing`]), and waiting
//!   for something with a deadline;
//! - with the `world` feature, [`world`]: an emulated org registered in a test database and
//!   mirrored by the real sync, and the comparison of the mirror with the org; and
//!   [`binary`]: the `sfpg` binary as the end-to-end tests run it;
//! - with the `proxy` feature, [`proxy`]: the proxy in process, in front of a test database
//!   (and of a world's mirror, with both).

#[cfg(feature = "world")]
pub mod binary;
mod cluster;
mod database;
pub mod process;
#[cfg(feature = "proxy")]
pub mod proxy;
pub mod stats;
mod stoppable;
#[cfg(feature = "world")]
pub mod world;

pub use cluster::{Server, server};
pub use database::TestDatabase;
pub use stoppable::StoppableServer;

/// The environment variable naming an existing server to use instead of a throwaway cluster.
/// Its user must be allowed to create and drop databases.
pub const TEST_DATABASE_URL_ENV: &str = "SFPG_TEST_DATABASE_URL";
