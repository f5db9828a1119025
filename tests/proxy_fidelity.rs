//! The same SQL direct and through the proxy gives the same answers: psql's meta-commands
//! (which run catalog queries of their own), `\copy` out, cursors, prepared statements and
//! LISTEN/NOTIFY, on a real mirror; and pgbench's select-only load in its simple, extended
//! and prepared modes.

// Helpers of a test crate may unwrap: a failure should stop the test where it happened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;

use sfpg_testkit::world::World;

fn tool(world: &World, name: &str) -> PathBuf {
    world
        .db
        .server()
        .bin_dir()
        .map(|d| d.join(name))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| name.into())
}

fn conninfo(world: &World, port: u16) -> String {
    let server = world.db.server();
    format!(
        "host=127.0.0.1 port={port} user={} dbname={}",
        server.user(),
        world.db.name()
    )
}

async fn output(mut command: Command) -> String {
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

const PSQL_SCRIPT: &str = r#"
\d salesforce.account
\dt salesforce.*
\dn
\copy (SELECT sfid, name, systemmodstamp FROM salesforce.account ORDER BY sfid) TO STDOUT
SELECT count(*), min(sfid), max(systemmodstamp) FROM salesforce.account;
BEGIN;
DECLARE c CURSOR FOR SELECT sfid, name FROM salesforce.account ORDER BY sfid;
FETCH 2 FROM c;
FETCH NEXT FROM c;
CLOSE c;
COMMIT;
PREPARE p(int) AS SELECT $1 + 1 AS answer;
EXECUTE p(41);
DEALLOCATE p;
SELECT 1/0;
\x on
SELECT * FROM salesforce.account ORDER BY sfid LIMIT 1;
\x off
LISTEN news;
NOTIFY news, 'hello';
"#;

#[tokio::test]
async fn psql_sees_the_same_through_the_proxy() {
    let world = World::start(&["Account"], 40).await;
    let password = world.db.server().password().unwrap_or("").to_owned();
    let mut outputs = Vec::new();
    for port in [world.db.server().port(), world.proxy().port()] {
        // On stdin, psql runs the script line by line as a user would type it.
        let mut command = Command::new(tool(&world, "psql"));
        command
            .arg(conninfo(&world, port))
            .args(["-X", "-f", "-"])
            .env("PGPASSWORD", &password)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let script = PSQL_SCRIPT.to_owned();
        let out = tokio::task::spawn_blocking(move || {
            use std::io::Write;
            let mut child = command.spawn().unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(script.as_bytes())
                .unwrap();
            child.wait_with_output().unwrap()
        })
        .await
        .unwrap();
        let text = format!(
            "{}\n--- stderr ---\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // The notifying backend's process id differs between two sessions.
        let masked: String = text
            .lines()
            .map(|line| match line.find("server process with PID") {
                Some(at) => format!("{}server process with PID …", &line[..at]),
                None => line.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("\n");
        outputs.push(masked);
    }
    assert!(
        outputs[0].contains("Table \"salesforce.account\""),
        "{}",
        outputs[0]
    );
    assert!(outputs[0].contains("division by zero"));
    assert!(outputs[0].contains("Asynchronous notification \"news\""));
    assert_eq!(outputs[1], outputs[0]);
}

#[tokio::test]
async fn pgbench_select_only_runs_in_every_protocol_mode() {
    let world = World::start(&["Account"], 10).await;
    let password = world.db.server().password().unwrap_or("").to_owned();
    let server = world.db.server();
    let mut init = Command::new(tool(&world, "pgbench"));
    init.args(["-i", "-s", "1", "-q", "-h", "127.0.0.1"])
        .args([
            "-p",
            &server.port().to_string(),
            "-U",
            server.user(),
            world.db.name(),
        ])
        .env("PGPASSWORD", &password);
    output(init).await;
    for mode in ["simple", "extended", "prepared"] {
        let mut bench = Command::new(tool(&world, "pgbench"));
        bench
            .args([
                "-S",
                "-n",
                "-c",
                "4",
                "-j",
                "2",
                "-t",
                "250",
                "-M",
                mode,
                "-h",
                "127.0.0.1",
            ])
            .args([
                "-p",
                &world.proxy().port().to_string(),
                "-U",
                server.user(),
                world.db.name(),
            ])
            .env("PGPASSWORD", &password);
        let report = output(bench).await;
        assert!(
            report.contains("number of transactions actually processed: 1000/1000"),
            "{mode}: {report}"
        );
        assert!(
            !report.contains("number of failed transactions")
                || report.contains("number of failed transactions: 0 "),
            "{mode}: {report}"
        );
    }
}
