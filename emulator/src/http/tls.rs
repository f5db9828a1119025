//! The certificates the emulator serves HTTPS with, generated at start so no key material
//! lives in the repository: a throwaway certificate authority and a server certificate it
//! signs for the emulator's host names. Clients trust the authority's PEM file.
//!
//! A lone self-signed server certificate is not enough: OpenSSL (Python, curl) refuses
//! to treat an end-entity certificate as its own trust anchor, while every TLS stack
//! accepts a CA certificate in its trust store.

use std::path::Path;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use super::EmulatorError;

/// A freshly generated authority, the server certificate it signed, and the TLS
/// configuration that serves them.
pub struct SelfSigned {
    /// The authority's certificate in PEM form, for clients to trust.
    pub cert_pem: String,
    pub server_config: Arc<ServerConfig>,
}

/// Generates an authority and a server certificate valid for `hosts` (names or IPs).
pub fn self_signed(hosts: &[String]) -> Result<SelfSigned, EmulatorError> {
    let tls = |e: &dyn std::fmt::Display| EmulatorError::Tls(e.to_string());

    let ca_key = KeyPair::generate().map_err(|e| tls(&e))?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(|e| tls(&e))?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "sfpg emulator local CA");
    let ca_cert = ca_params.self_signed(&ca_key).map_err(|e| tls(&e))?;
    let issuer = Issuer::new(ca_params, ca_key);

    let server_key = KeyPair::generate().map_err(|e| tls(&e))?;
    let mut server_params = CertificateParams::new(hosts.to_vec()).map_err(|e| tls(&e))?;
    server_params
        .distinguished_name
        .push(DnType::CommonName, "sfpg emulator");
    server_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server_params.use_authority_key_identifier_extension = true;
    let server_cert = server_params
        .signed_by(&server_key, &issuer)
        .map_err(|e| tls(&e))?;

    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
    // The provider is named rather than taken from the process default: the workspace
    // links more than one, and rustls refuses to guess.
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls(&e))?
        .with_no_client_auth()
        .with_single_cert(vec![server_cert.der().clone(), ca_cert.der().clone()], key)
        .map_err(|e| tls(&e))?;
    // HTTP/1.1 only: a dropped-connection fault must close the connection, which an
    // HTTP/2 stream error would not.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(SelfSigned {
        cert_pem: ca_cert.pem(),
        server_config: Arc::new(config),
    })
}

/// Writes the certificate where clients can find it.
pub fn write_pem(path: &Path, pem: &str) -> Result<(), EmulatorError> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).map_err(|e| EmulatorError::CertFile {
            path: path.to_owned(),
            source: e,
        })?;
    }
    std::fs::write(path, pem).map_err(|e| EmulatorError::CertFile {
        path: path.to_owned(),
        source: e,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_a_pem_certificate_for_the_hosts() {
        let cert = self_signed(&["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        assert!(cert.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert_eq!(cert.server_config.alpn_protocols, [b"http/1.1".to_vec()]);
    }

    #[test]
    fn writes_the_pem_into_a_new_directory() {
        let dir = std::env::temp_dir().join(format!("sfpg-tls-test-{}", std::process::id()));
        let path = dir.join("nested").join("cert.pem");
        write_pem(&path, "PEM").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "PEM");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
