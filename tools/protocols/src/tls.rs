//! The certificate and key the TLS listeners present.

use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::ServerError;

/// A certificate chain and its key, in PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsIdentity {
    cert_pem: String,
    key_pem: String,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity").field("cert_pem", &self.cert_pem).finish_non_exhaustive()
    }
}

fn tls_err(what: &str, e: impl std::fmt::Display) -> ServerError {
    ServerError::Tls(format!("{what}: {e}"))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

impl TlsIdentity {
    /// A new self-signed certificate (ECDSA P-256) for `localhost`,
    /// `127.0.0.1` and `::1`, which is its own trust anchor.
    pub fn self_signed() -> Result<TlsIdentity, ServerError> {
        let key = rcgen::KeyPair::generate().map_err(|e| tls_err("key", e))?;
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
        let mut params = rcgen::CertificateParams::new(names).map_err(|e| tls_err("certificate", e))?;
        params.distinguished_name.push(rcgen::DnType::CommonName, "localhost");
        let cert = params.self_signed(&key).map_err(|e| tls_err("certificate", e))?;
        Ok(TlsIdentity { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }

    /// The pair given in PEM (the certificate chain first the leaf), checked
    /// to be usable.
    pub fn from_pem(cert_pem: impl Into<String>, key_pem: impl Into<String>) -> Result<TlsIdentity, ServerError> {
        let identity = TlsIdentity { cert_pem: cert_pem.into(), key_pem: key_pem.into() };
        identity.server_config(&[])?;
        Ok(identity)
    }

    /// The certificate chain (PEM): what clients trust.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The private key (PEM).
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    fn certs(&self) -> Result<Vec<CertificateDer<'static>>, ServerError> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| tls_err("certificate PEM", e))?;
        if certs.is_empty() {
            return Err(ServerError::Tls("no certificate in the PEM".to_string()));
        }
        Ok(certs)
    }

    /// A server configuration presenting this identity, offering `alpn`.
    pub fn server_config(&self, alpn: &[&str]) -> Result<Arc<rustls::ServerConfig>, ServerError> {
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).map_err(|e| tls_err("private key PEM", e))?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_err("protocol versions", e))?
            .with_no_client_auth()
            .with_single_cert(self.certs()?, key)
            .map_err(|e| tls_err("certificate and key", e))?;
        config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        Ok(Arc::new(config))
    }

    /// A client configuration trusting this identity's certificates (and
    /// nothing else), offering `alpn`: for tests that call the TLS listeners
    /// directly.
    pub fn client_config(&self, alpn: &[&str]) -> Result<Arc<rustls::ClientConfig>, ServerError> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in self.certs()? {
            roots.add(cert).map_err(|e| tls_err("trust anchor", e))?;
        }
        let mut config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_err("protocol versions", e))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        Ok(Arc::new(config))
    }
}
