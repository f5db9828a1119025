//! Building the HTTP client: a custom CA certificate (how the client trusts the emulator's
//! self-signed certificate or a corporate proxy's CA), and the headers every call carries.

use sfpg_salesforce::{Config, ErrorClass};

use crate::scripted::*;

#[tokio::test]
async fn a_self_signed_server_is_trusted_only_with_its_certificate() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_pem = certified.cert.pem();
    let server = Scripted::start_tls(cert_pem.clone(), certified.signing_key.serialize_pem()).await;

    let trusting = Config::new(&server.login_url)
        .unwrap()
        .with_retry(quick_retries())
        .with_ca_certificates_pem(cert_pem);
    let client = server.client_with(trusting, password());
    server.reply(Reply::json(
        200,
        r#"{"encoding":"UTF-8","maxBatchSize":200,"sobjects":[]}"#,
    ));
    let global = client.describe_global().await.unwrap();
    assert_eq!(global.max_batch_size, 200);

    let default_roots = server.client_with(server.config(), password());
    let error = default_roots.describe_global().await.unwrap_err();
    assert!(error.is_connect(), "{error}");
    assert_eq!(error.class(), ErrorClass::Retryable);
    assert_eq!(
        server.grants().len(),
        1,
        "only the trusting client reached the server"
    );
}

#[test]
fn a_pem_without_certificates_is_a_configuration_error() {
    let config = Config::new("https://localhost:1")
        .unwrap()
        .with_ca_certificates_pem("not a certificate");
    let limiter = sfpg_salesforce::RateLimiter::new(sfpg_salesforce::Rate::default());
    let error = sfpg_salesforce::Client::new(config, password(), limiter).unwrap_err();
    assert!(
        matches!(error, sfpg_salesforce::Error::Config(_)),
        "{error}"
    );
}

#[test]
fn a_call_options_client_that_would_break_the_header_is_a_configuration_error() {
    for bad in ["", "sfpg, defaultNamespace=x", "sf pg"] {
        let config = Config::new("https://localhost:1")
            .unwrap()
            .with_call_options_client(bad);
        let limiter = sfpg_salesforce::RateLimiter::new(sfpg_salesforce::Rate::default());
        let error = sfpg_salesforce::Client::new(config, password(), limiter).unwrap_err();
        assert!(
            matches!(error, sfpg_salesforce::Error::Config(_)),
            "{bad:?}: {error}"
        );
    }
}
