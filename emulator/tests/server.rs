//! The server's life: HTTPS with the certificates generated at start (clients that trust
//! the authority's PEM file can log in and call the API), a taken port, and shutdown.

// Helpers outside `#[test]` functions fail loudly too, as the tests do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{API, Harness};
use reqwest::StatusCode;
use sfpg_emulator::http::{EmulatorConfig, EmulatorError, Transport, start};

#[tokio::test]
async fn https_works_for_clients_trusting_the_generated_certificate() {
    let cert_path = std::env::temp_dir().join(format!("sfpg-tls-test-{}.pem", std::process::id()));
    let emulator = start(EmulatorConfig {
        transport: Transport::Https {
            cert_path: Some(cert_path.clone()),
        },
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    assert!(emulator.instance_url().starts_with("https://127.0.0.1:"));
    assert_eq!(emulator.cert_path(), Some(cert_path.as_path()));
    let pem = std::fs::read(&cert_path).unwrap();
    assert_eq!(Some(pem.as_slice()), emulator.cert_pem().map(str::as_bytes));

    let trusting = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .build()
        .unwrap();
    let token = common::password_login(&emulator, &trusting).await;
    let response = trusting
        .get(format!("{}{API}/limits", emulator.instance_url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // A client that does not trust the certificate cannot connect.
    let sceptical = reqwest::Client::new();
    assert!(
        sceptical
            .get(format!("{}/services/data", emulator.instance_url()))
            .send()
            .await
            .is_err()
    );

    emulator.shutdown().await;
    std::fs::remove_file(&cert_path).unwrap();
}

#[tokio::test]
async fn shutdown_stops_the_server() {
    let h = Harness::new().await;
    let url = h.url("/services/data");
    assert!(h.http.get(&url).send().await.is_ok());
    h.emulator.shutdown().await;
    let fresh = reqwest::Client::new();
    assert!(fresh.get(&url).send().await.is_err());
}

#[tokio::test]
async fn a_taken_port_fails_to_start() {
    let h = Harness::new().await;
    let taken = start(EmulatorConfig {
        listen: h.emulator.local_addr(),
        ..EmulatorConfig::default()
    })
    .await;
    assert!(matches!(taken, Err(EmulatorError::Bind { .. })));
}
