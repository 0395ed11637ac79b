//! RSA signing of the JWTs the enforcer issues (backend JWT, `/testkey`).
//! The key is parsed once; each signature is one RSA operation.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, RsaKeyPair};
use base64::Engine;
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use x509_parser::public_key::PublicKey;

const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Why a signing key could not be loaded or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignerError {
    /// A key or certificate file is unusable.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The signature could not be computed.
    #[error("signing failed: {0}")]
    Sign(String),
}

fn file_error(path: &str, reason: impl ToString) -> SignerError {
    SignerError::File { path: path.to_string(), reason: reason.to_string() }
}

/// The RSA signature algorithms the enforcer signs with (RSASSA-PKCS1-v1_5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RsaAlg {
    /// SHA-256 (`SHA256withRSA`).
    Rs256,
    /// SHA-384 (`SHA384withRSA`).
    Rs384,
    /// SHA-512 (`SHA512withRSA`).
    Rs512,
}

impl RsaAlg {
    /// From Choreo Connect's Java names (`SHA256withRSA`, ...).
    pub fn from_java_name(name: &str) -> Option<RsaAlg> {
        [("SHA256withRSA", RsaAlg::Rs256), ("SHA384withRSA", RsaAlg::Rs384), ("SHA512withRSA", RsaAlg::Rs512)]
            .into_iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, a)| a)
    }

    /// The JWS `alg`.
    pub fn jws_name(self) -> &'static str {
        match self {
            RsaAlg::Rs256 => "RS256",
            RsaAlg::Rs384 => "RS384",
            RsaAlg::Rs512 => "RS512",
        }
    }

    fn padding(self) -> &'static dyn signature::RsaEncoding {
        match self {
            RsaAlg::Rs256 => &signature::RSA_PKCS1_SHA256,
            RsaAlg::Rs384 => &signature::RSA_PKCS1_SHA384,
            RsaAlg::Rs512 => &signature::RSA_PKCS1_SHA512,
        }
    }
}

/// A private key with its certificate.
pub struct Signer {
    key: RsaKeyPair,
    rng: SystemRandom,
    /// `kid`: base64url of the lower-case hex SHA-256 of the certificate (Choreo Connect's thumbprint).
    pub kid: String,
    /// `x5t`: the same with SHA-1.
    pub x5t: String,
    n: String,
    e: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").field("kid", &self.kid).finish()
    }
}

fn thumbprint(alg: &'static aws_lc_rs::digest::Algorithm, der: &[u8]) -> String {
    let hex: String = aws_lc_rs::digest::digest(alg, der).as_ref().iter().map(|b| format!("{b:02x}")).collect();
    base64::engine::general_purpose::URL_SAFE.encode(hex)
}

impl Signer {
    /// Loads a PEM private key (PKCS#1 or PKCS#8, RSA) and its PEM certificate.
    pub fn from_files(key_path: &str, cert_path: &str) -> Result<Signer, SignerError> {
        let key_der = PrivateKeyDer::from_pem_file(key_path)
            .map_err(|e| file_error(key_path, format!("no usable private key: {e}")))?;
        let key = match &key_der {
            PrivateKeyDer::Pkcs1(k) => RsaKeyPair::from_der(k.secret_pkcs1_der()),
            PrivateKeyDer::Pkcs8(k) => RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()),
            _ => return Err(file_error(key_path, "not an RSA private key")),
        }
        .map_err(|e| file_error(key_path, format!("not a usable RSA private key: {e}")))?;
        let cert_pem = std::fs::read(cert_path).map_err(|e| file_error(cert_path, e))?;
        let (_, pem) =
            x509_parser::pem::parse_x509_pem(&cert_pem).map_err(|e| file_error(cert_path, format!("not PEM: {e}")))?;
        let cert = pem.parse_x509().map_err(|e| file_error(cert_path, format!("bad certificate: {e}")))?;
        let Ok(PublicKey::RSA(rsa)) = cert.public_key().parsed() else {
            return Err(file_error(cert_path, "not an RSA certificate"));
        };
        let strip = |b: &[u8]| -> Vec<u8> {
            let i = b.iter().position(|x| *x != 0).unwrap_or(b.len().saturating_sub(1));
            b[i..].to_vec()
        };
        let (n, e) = (strip(rsa.modulus), strip(rsa.exponent));
        use aws_lc_rs::signature::KeyPair;
        let public = key.public_key().as_ref().to_vec();
        if !public.windows(n.len()).any(|w| w == n.as_slice()) {
            return Err(file_error(cert_path, format!("the certificate does not belong to the key {key_path}")));
        }
        Ok(Signer {
            key,
            rng: SystemRandom::new(),
            kid: thumbprint(&aws_lc_rs::digest::SHA256, &pem.contents),
            x5t: thumbprint(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, &pem.contents),
            n: B64URL.encode(n),
            e: B64URL.encode(e),
        })
    }

    /// The public key as a JWK.
    pub fn jwk(&self, alg: &str) -> serde_json::Value {
        serde_json::json!({"kty": "RSA", "e": self.e, "n": self.n, "use": "sig", "alg": alg, "kid": self.kid})
    }

    /// A compact JWT of `header` and `claims` (JSON texts), signed with
    /// `alg` (which the header must name).
    pub fn sign(&self, alg: RsaAlg, header: &str, claims: &str) -> Result<String, SignerError> {
        let input = format!("{}.{}", B64URL.encode(header), B64URL.encode(claims));
        let mut sig = vec![0u8; self.key.public_modulus_len()];
        self.key
            .sign(alg.padding(), &self.rng, input.as_bytes(), &mut sig)
            .map_err(|e| SignerError::Sign(e.to_string()))?;
        Ok(format!("{input}.{}", B64URL.encode(sig)))
    }
}
