//! Test identity providers: signing keys (RSA, EC, Ed25519) with their
//! certificates and JWKs, token minting (including deliberately bad tokens),
//! and a real HTTP JWKS server whose key set can change or go away.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A private key that signs test tokens.
pub struct SigningKey {
    /// Key id.
    pub kid: String,
    /// Algorithm it signs with.
    pub alg: Algorithm,
    enc: EncodingKey,
    /// Public key as a JWK.
    pub jwk: Value,
    /// Self-signed certificate of the key (PEM).
    pub cert_pem: String,
    /// The private key (PKCS#8 PEM).
    pub key_pem: String,
}

fn spki(der: &[u8]) -> x509_parser::x509::SubjectPublicKeyInfo<'_> {
    use x509_parser::prelude::FromDer;
    x509_parser::x509::SubjectPublicKeyInfo::from_der(der).expect("spki").1
}

impl SigningKey {
    fn generate(kid: &str, alg: Algorithm, rcgen_alg: &'static rcgen::SignatureAlgorithm) -> SigningKey {
        let kp = rcgen::KeyPair::generate_for(rcgen_alg).expect("key generation");
        let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("params");
        let cert = params.self_signed(&kp).expect("certificate");
        let key_pem = kp.serialize_pem();
        let pub_der = rcgen::PublicKeyData::subject_public_key_info(&kp);
        let info = spki(&pub_der);
        let (enc, jwk) = match info.parsed().expect("public key") {
            x509_parser::public_key::PublicKey::RSA(rsa) => {
                let strip = |b: &[u8]| b[b.iter().position(|x| *x != 0).unwrap_or(0)..].to_vec();
                (
                    EncodingKey::from_rsa_pem(key_pem.as_bytes()).expect("rsa key"),
                    json!({"kty": "RSA", "kid": kid, "use": "sig", "n": B64.encode(strip(rsa.modulus)), "e": B64.encode(strip(rsa.exponent))}),
                )
            }
            x509_parser::public_key::PublicKey::EC(point) => {
                let p = point.data();
                let n = (p.len() - 1) / 2;
                let crv = if n == 32 { "P-256" } else { "P-384" };
                (
                    EncodingKey::from_ec_pem(key_pem.as_bytes()).expect("ec key"),
                    json!({"kty": "EC", "kid": kid, "use": "sig", "crv": crv, "x": B64.encode(&p[1..1 + n]), "y": B64.encode(&p[1 + n..])}),
                )
            }
            _ => {
                let raw = info.subject_public_key.data.to_vec();
                (
                    EncodingKey::from_ed_pem(key_pem.as_bytes()).expect("ed key"),
                    json!({"kty": "OKP", "kid": kid, "use": "sig", "crv": "Ed25519", "x": B64.encode(raw)}),
                )
            }
        };
        SigningKey { kid: kid.to_string(), alg, enc, jwk, cert_pem: cert.pem(), key_pem }
    }

    /// A 2048-bit RSA key signing RS256.
    pub fn rsa(kid: &str) -> SigningKey {
        Self::generate(kid, Algorithm::RS256, &rcgen::PKCS_RSA_SHA256)
    }

    /// The same key material used with another RSA algorithm (RS384, RS512, PS256, ...).
    pub fn with_alg(mut self, alg: Algorithm) -> SigningKey {
        self.alg = alg;
        self
    }

    /// A P-256 key signing ES256.
    pub fn ec256(kid: &str) -> SigningKey {
        Self::generate(kid, Algorithm::ES256, &rcgen::PKCS_ECDSA_P256_SHA256)
    }

    /// A P-384 key signing ES384.
    pub fn ec384(kid: &str) -> SigningKey {
        Self::generate(kid, Algorithm::ES384, &rcgen::PKCS_ECDSA_P384_SHA384)
    }

    /// An Ed25519 key signing EdDSA.
    pub fn ed25519(kid: &str) -> SigningKey {
        Self::generate(kid, Algorithm::EdDSA, &rcgen::PKCS_ED25519)
    }

    /// A token with these claims, header `{alg, typ, kid}`.
    pub fn sign(&self, claims: &Value) -> String {
        let mut h = Header::new(self.alg);
        h.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&h, claims, &self.enc).expect("sign")
    }

    /// A token without `kid` in the header.
    pub fn sign_without_kid(&self, claims: &Value) -> String {
        jsonwebtoken::encode(&Header::new(self.alg), claims, &self.enc).expect("sign")
    }

    /// A token with exactly this header (any fields: `jku`, `x5u`, `jwk`,
    /// `crit`, `cty`, a strange `kid`), signed with this key's algorithm.
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        let input = format!("{}.{}", B64.encode(header.to_string()), B64.encode(claims.to_string()));
        let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &self.enc, self.alg).expect("sign");
        format!("{input}.{sig}")
    }

    /// Writes the certificate and key as PEM files.
    pub fn write(&self, cert: &Path, key: &Path) {
        std::fs::write(cert, &self.cert_pem).expect("write cert");
        std::fs::write(key, &self.key_pem).expect("write key");
    }

    /// The RSA public key as PEM `PUBLIC KEY` text: the secret an attacker
    /// would use for an HS256 confusion attack.
    pub fn public_pem(&self) -> String {
        rcgen::KeyPair::from_pem(&self.key_pem).expect("key").public_key_pem()
    }
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as i64
}

/// `claims` with `extra` laid over them: each key of `extra` replaces the
/// claim, and a `null` removes it.
pub fn merge_claims(mut claims: Value, extra: Value) -> Value {
    if let (Some(m), Value::Object(e)) = (claims.as_object_mut(), extra) {
        for (k, v) in e {
            if v.is_null() {
                m.remove(&k);
            } else {
                m.insert(k, v);
            }
        }
    }
    claims
}

/// A number not returned before in this process (for unique `jti`s).
pub fn unique() -> u64 {
    static N: AtomicUsize = AtomicUsize::new(1);
    N.fetch_add(1, Ordering::SeqCst) as u64
}

/// A token signed with HMAC-SHA256 using `secret` (e.g. an RSA public key).
pub fn hs256(secret: &[u8], kid: &str, claims: &Value) -> String {
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some(kid.to_string());
    jsonwebtoken::encode(&h, claims, &EncodingKey::from_secret(secret)).expect("sign")
}

/// An unsigned token (`alg: none`).
pub fn unsigned(kid: &str, claims: &Value) -> String {
    let h = json!({"alg": "none", "typ": "JWT", "kid": kid});
    format!("{}.{}.", B64.encode(h.to_string()), B64.encode(claims.to_string()))
}

/// A JWKS endpoint on 127.0.0.1 serving the keys it is given.
pub struct JwksServer {
    /// Its address.
    pub addr: std::net::SocketAddr,
    keys: Arc<parking_lot::RwLock<Vec<Value>>>,
    hits: Arc<AtomicUsize>,
    up: Arc<std::sync::atomic::AtomicBool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl JwksServer {
    /// Starts serving `keys` at `/jwks`.
    pub async fn start(keys: &[&SigningKey]) -> JwksServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind jwks");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(parking_lot::RwLock::new(keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()));
        let hits = Arc::new(AtomicUsize::new(0));
        let up = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (s, h, u) = (Arc::clone(&state), Arc::clone(&hits), Arc::clone(&up));
        let app = axum::Router::new().route(
            "/jwks",
            axum::routing::get(move || {
                let (s, h, u) = (Arc::clone(&s), Arc::clone(&h), Arc::clone(&u));
                async move {
                    h.fetch_add(1, Ordering::SeqCst);
                    if !u.load(Ordering::SeqCst) {
                        return (
                            axum::http::StatusCode::SERVICE_UNAVAILABLE,
                            [("content-type", "text/plain")],
                            String::new(),
                        );
                    }
                    let body = json!({"keys": *s.read()}).to_string();
                    (axum::http::StatusCode::OK, [("content-type", "application/json")], body)
                }
            }),
        );
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        JwksServer { addr, keys: state, hits, up, task: Some(task) }
    }

    /// The JWKS URL.
    pub fn url(&self) -> String {
        format!("http://{}/jwks", self.addr)
    }

    /// Replaces the key set.
    pub fn set_keys(&self, keys: &[&SigningKey]) {
        *self.keys.write() = keys.iter().map(|k| k.jwk.clone()).collect();
    }

    /// Requests served so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Stops serving: connections are refused from now on.
    pub fn stop(&mut self) {
        self.up.store(false, Ordering::SeqCst);
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.stop();
    }
}
