//! The test PKI: a CA and the certificate every component presents.

use std::path::{Path, PathBuf};

/// A test CA and the certificate every component uses (server and client
/// authentication, for `localhost` and 127.0.0.1), signed by it.
pub struct Certs {
    /// PEM of the CA certificate.
    pub ca_pem: String,
    /// CA certificate file (the truststore of every component).
    pub ca_path: PathBuf,
    /// PEM of the components' certificate.
    pub cert_pem: String,
    /// Certificate file.
    pub cert_path: PathBuf,
    /// Key file.
    pub key_path: PathBuf,
}

pub(crate) fn make_certs(dir: &Path) -> Certs {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "Gateway test CA");
    ca_params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::DigitalSignature];
    let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
    let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).expect("params");
    params.distinguished_name.push(rcgen::DnType::CommonName, "localhost");
    params.extended_key_usages =
        vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth, rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &issuer).expect("certificate");
    let ca_pem = ca.pem();
    let cert_pem = cert.pem();
    let ca_path = dir.join("ca.pem");
    let cert_path = dir.join("mg.pem");
    let key_path = dir.join("mg.key");
    std::fs::write(&ca_path, &ca_pem).expect("write CA");
    std::fs::write(&cert_path, &cert_pem).expect("write cert");
    std::fs::write(&key_path, key.serialize_pem()).expect("write key");
    Certs { ca_pem, ca_path, cert_pem, cert_path, key_path }
}
