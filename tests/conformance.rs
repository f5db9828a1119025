//! Runs the simple-salesforce conformance suite (`tests/conformance/`), the aiosfstream-ng
//! Streaming API check and the grpcio + avro Pub/Sub API check, against an emulator started
//! in this process over HTTPS. Installs the Python requirements with pip when one of them is
//! missing, and fails with pytest's output.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sfpg_emulator::http::{EmulatorConfig, OrgSource, Transport, start};

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

fn conformance_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("conformance")
}

fn run(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"))
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Installs `requirements.txt` unless the modules import already.
fn ensure_requirements() {
    let probe = run(Command::new(python()).args([
        "-c",
        "import simple_salesforce, pytest, aiosfstream_ng, grpc, grpc_tools, avro",
    ]));
    if probe.status.success() {
        return;
    }
    let requirements = conformance_dir().join("requirements.txt");
    let install = run(Command::new(python())
        .args(["-m", "pip", "install", "--quiet", "-r"])
        .arg(&requirements));
    assert!(
        install.status.success(),
        "pip install -r {} failed:\n{}",
        requirements.display(),
        text(&install)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_salesforce_drives_the_emulator() {
    let cert_path =
        std::env::temp_dir().join(format!("sfpg-conformance-{}.pem", std::process::id()));
    let emulator = start(EmulatorConfig {
        transport: Transport::Https {
            cert_path: Some(cert_path.clone()),
        },
        org: OrgSource::Generated {
            records: 200,
            seed: 7,
        },
        ..EmulatorConfig::default()
    })
    .await
    .expect("the emulator starts");

    let app = emulator.apps()[0].clone();
    let user = emulator.users()[0].clone();
    let token_url = emulator.token_url();
    let pubsub_endpoint = emulator.pubsub_endpoint().to_owned();
    let ca_file = cert_path.clone();
    let pytest = tokio::task::spawn_blocking(move || {
        ensure_requirements();
        run(Command::new(python())
            .args(["-m", "pytest", "-q", "--tb=short", "-p", "no:cacheprovider"])
            .arg(conformance_dir())
            .env("SFPG_EMULATOR_TOKEN_URL", token_url)
            .env("SFPG_EMULATOR_CLIENT_ID", app.client_id)
            .env("SFPG_EMULATOR_CLIENT_SECRET", app.client_secret)
            .env("SFPG_EMULATOR_USERNAME", user.username)
            .env("SFPG_EMULATOR_PASSWORD", user.password)
            .env("SFPG_EMULATOR_CA_FILE", ca_file)
            .env("SFPG_EMULATOR_PUBSUB_ENDPOINT", pubsub_endpoint)
            .env("SFPG_EMULATOR_API_VERSION", "62.0"))
    })
    .await
    .expect("pytest ran");

    emulator.shutdown().await;
    // The file is in the temporary directory; failing to remove it harms nothing.
    let _ = std::fs::remove_file(&cert_path);
    let output = text(&pytest);
    assert!(pytest.status.success(), "pytest failed:\n{output}");
    // A skipped test means the environment above did not reach it.
    assert!(
        !output.contains("skipped"),
        "pytest skipped tests:\n{output}"
    );
    println!("{output}");
}
