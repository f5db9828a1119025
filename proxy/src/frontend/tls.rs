//! TLS for client connections, ended at the proxy with a configured certificate.
//!
//! Clients reach it either the classic way (SSLRequest, answered `S`) or, from PostgreSQL
//! 17's libpq with `sslnegotiation=direct`, by opening with a TLS ClientHello that names the
//! `postgresql` ALPN protocol.

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// ALPN protocol name PostgreSQL registers for direct TLS negotiation.
pub const ALPN_POSTGRESQL: &[u8] = b"postgresql";

#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    #[error("cannot read the TLS certificate chain from {path}: {source}")]
    Certificates {
        path: String,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("no certificate found in {path}")]
    NoCertificate { path: String },
    #[error("cannot read the TLS private key from {path}: {source}")]
    PrivateKey {
        path: String,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("the TLS certificate and key do not make a valid configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A server certificate chain and its key.
#[derive(Clone)]
pub struct TlsConfig {
    acceptor: TlsAcceptor,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key must never be printed; nothing else here is worth printing either.
        f.write_str("TlsConfig { .. }")
    }
}

impl TlsConfig {
    /// Loads a PEM certificate chain (leaf first) and a PEM private key (PKCS#8, PKCS#1 or
    /// SEC1).
    pub fn from_pem_files(cert_chain: &Path, key: &Path) -> Result<Self, TlsConfigError> {
        let certs = CertificateDer::pem_file_iter(cert_chain)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|source| TlsConfigError::Certificates {
                path: cert_chain.display().to_string(),
                source,
            })?;
        if certs.is_empty() {
            return Err(TlsConfigError::NoCertificate {
                path: cert_chain.display().to_string(),
            });
        }
        let key =
            PrivateKeyDer::from_pem_file(key).map_err(|source| TlsConfigError::PrivateKey {
                path: key.display().to_string(),
                source,
            })?;
        Self::new(certs, key)
    }

    /// The same from PEM text in memory.
    pub fn from_pem(cert_chain: &[u8], key: &[u8]) -> Result<Self, TlsConfigError> {
        let certs = CertificateDer::pem_slice_iter(cert_chain)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| TlsConfigError::Certificates {
                path: "(memory)".to_owned(),
                source,
            })?;
        if certs.is_empty() {
            return Err(TlsConfigError::NoCertificate {
                path: "(memory)".to_owned(),
            });
        }
        let key =
            PrivateKeyDer::from_pem_slice(key).map_err(|source| TlsConfigError::PrivateKey {
                path: "(memory)".to_owned(),
                source,
            })?;
        Self::new(certs, key)
    }

    fn new(
        certs: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self, TlsConfigError> {
        // An explicit provider: the process-wide default is ambiguous when more than one
        // crypto backend is compiled in, and rustls would panic choosing.
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
        // Offered to clients that ask; a client that names no ALPN (classic SSLRequest)
        // still gets TLS.
        config.alpn_protocols = vec![ALPN_POSTGRESQL.to_vec()];
        Ok(TlsConfig {
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    pub fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }
}
