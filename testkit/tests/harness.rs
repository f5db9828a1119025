//! The harness's promises, tested from outside: isolation between tests, databases dropped
//! with their handles, and no server or temp dir outliving a test process, even one whose
//! test panicked, whether it ran as root or as a normal user.

// Helpers of a test crate may unwrap: a failure should stop the test where it happened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use sfpg_testkit::TestDatabase;

#[tokio::test]
async fn concurrent_tests_get_different_databases() {
    let (a, b) = tokio::join!(TestDatabase::create(), TestDatabase::create());
    assert_ne!(a.name(), b.name());

    let (ca, cb) = (a.connect().await, b.connect().await);
    ca.batch_execute("CREATE TABLE only_in_a (x int)")
        .await
        .unwrap();
    let seen_from_b: i64 = cb
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(seen_from_b, 0);
}

#[tokio::test]
async fn a_database_is_dropped_with_its_handle() {
    let db = TestDatabase::create().await;
    let name = db.name().to_owned();
    let admin_url = db.server().url("postgres");
    // An open connection must not keep the database alive.
    let _still_connected = db.connect().await;
    drop(db);

    let (admin, connection) = tokio_postgres::connect(&admin_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let left: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_database WHERE datname = $1",
            &[&name],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
}

/// Set for the child process that [`panicking_test_leaks_nothing`] runs.
const CHILD_REPORT_ENV: &str = "SFPG_TESTKIT_CHILD_REPORT";

/// Run only as a child of the lifecycle tests: starts a throwaway cluster, says where it
/// lives, then panics.
#[tokio::test]
#[ignore = "run as a child process by the lifecycle tests"]
async fn child_that_panics() {
    let Ok(report) = std::env::var(CHILD_REPORT_ENV) else {
        return;
    };
    let db = TestDatabase::create().await;
    let server = db.server();
    let line = format!(
        "{} {}\n",
        server.postmaster_pid().unwrap(),
        server.cluster_dir().unwrap().display()
    );
    std::fs::write(report, line).unwrap();
    panic!("this test panics on purpose");
}

struct ChildCluster {
    postmaster_pid: u32,
    dir: PathBuf,
}

/// Runs [`child_that_panics`] in a fresh process of this test binary, optionally as another
/// user, and returns what it reported about its cluster.
fn run_panicking_child(uid_gid: Option<(u32, u32)>) -> ChildCluster {
    use std::os::unix::process::CommandExt;

    let report_dir = std::env::temp_dir().join(format!(
        "sfpg-testkit-report-{}-{}",
        std::process::id(),
        uid_gid.map_or(0, |(uid, _)| uid)
    ));
    std::fs::create_dir_all(&report_dir).unwrap();
    let report = report_dir.join("child");
    if let Some((uid, gid)) = uid_gid {
        std::os::unix::fs::chown(&report_dir, Some(uid), Some(gid)).unwrap();
    }

    let mut child = Command::new(std::env::current_exe().unwrap());
    child
        .args(["--ignored", "--exact", "child_that_panics", "--nocapture"])
        .env(CHILD_REPORT_ENV, &report)
        .env_remove(sfpg_testkit::TEST_DATABASE_URL_ENV);
    if let Some((uid, gid)) = uid_gid {
        child.uid(uid).gid(gid);
    }
    let output = child.output().unwrap();
    assert!(
        !output.status.success(),
        "the child test should have panicked"
    );
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        said.contains("this test panics on purpose"),
        "the child failed for another reason:\n{said}"
    );

    let line = std::fs::read_to_string(&report).unwrap();
    std::fs::remove_dir_all(&report_dir).unwrap();
    let (pid, dir) = line.trim().split_once(' ').unwrap();
    ChildCluster {
        postmaster_pid: pid.parse().unwrap(),
        dir: PathBuf::from(dir),
    }
}

fn assert_cleaned_up(cluster: &ChildCluster) {
    // The reaper acts once the child has exited; give it a moment, not forever.
    let deadline = Instant::now() + Duration::from_secs(20);
    let proc_dir = PathBuf::from(format!("/proc/{}", cluster.postmaster_pid));
    while (proc_dir.exists() || cluster.dir.exists()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !proc_dir.exists(),
        "postmaster {} outlived its test process",
        cluster.postmaster_pid
    );
    assert!(
        !cluster.dir.exists(),
        "{} outlived its test process",
        cluster.dir.display()
    );
}

#[test]
fn panicking_test_leaks_nothing() {
    let cluster = run_panicking_child(None);
    assert_cleaned_up(&cluster);
}

/// Under root (as in CI) the harness drops to an unprivileged user for the server; this
/// checks the other path, a harness that is itself run by a normal user.
#[test]
fn works_as_a_normal_user_too() {
    use std::os::unix::fs::MetadataExt;
    if std::fs::metadata("/proc/self").unwrap().uid() != 0 {
        // Already a normal user: every other test here covers this path.
        return;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let user = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 3 && f[0] == "postgres")
        .or_else(|| {
            passwd
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.len() > 3 && f[0] == "nobody")
        })
        .map(|f| (f[2].parse().unwrap(), f[3].parse().unwrap()))
        .expect("a non-root user to run as");
    let cluster = run_panicking_child(Some(user));
    assert_cleaned_up(&cluster);
}
