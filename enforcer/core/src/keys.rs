//! Signature keys: from certificates (PEM files) and from JWKS endpoints.
//!
//! The algorithm a key may verify comes from the key, never from the token:
//! an RSA key verifies RS*/PS* only, a P-256 key ES256 only, a P-384 key
//! ES384 only, an Ed25519 key EdDSA only, and a JWK's `alg` narrows that to
//! one. Symmetric keys are never accepted, so `alg: none` and HS256 signed
//! with an RSA public key cannot verify.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey};
use tracing::{debug, info, warn};

/// Why a key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A file could not be read or holds no usable key.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// PEM text holds no usable key.
    #[error("{0}")]
    Pem(String),
    /// A JWKS could not be fetched or parsed.
    #[error("JWKS {url}: {reason}")]
    Jwks {
        /// The endpoint.
        url: String,
        /// Why.
        reason: String,
    },
}

/// Why a key-set document could not be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FetchError(pub String);

/// Gets a key-set document; the service implements it over HTTP
/// (`enforcer/src/jwks_http.rs`), bounding the body to [`Jwks::MAX_BYTES`].
pub trait Fetch: Send + Sync + 'static {
    /// The body at `url`, or why it could not be had.
    fn fetch(&self, url: &str) -> BoxFuture<'static, Result<Vec<u8>, FetchError>>;
}

const RSA_ALGS: &[Algorithm] =
    &[Algorithm::RS256, Algorithm::RS384, Algorithm::RS512, Algorithm::PS256, Algorithm::PS384, Algorithm::PS512];

/// A public key and the algorithms it may verify.
#[derive(Clone)]
pub struct VerifyKey {
    /// Key id (JWKS `kid`).
    pub kid: Option<String>,
    /// The key.
    pub key: DecodingKey,
    /// Algorithms this key verifies.
    pub algs: Vec<Algorithm>,
}

impl std::fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyKey").field("kid", &self.kid).field("algs", &self.algs).finish()
    }
}

/// The JWS algorithm named by a token header, if the gateway knows it.
pub fn algorithm(name: &str) -> Option<Algorithm> {
    Some(match name {
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        _ => return None,
    })
}

impl VerifyKey {
    /// Verifies `signature` (base64url) over `input` with algorithm `alg`
    /// (from the token header), which this key must allow.
    pub fn verify(&self, alg: &str, input: &str, signature: &str) -> bool {
        let Some(alg) = algorithm(alg) else { return false };
        if !self.algs.contains(&alg) {
            return false;
        }
        jsonwebtoken::crypto::verify(signature, input.as_bytes(), &self.key, alg).unwrap_or(false)
    }

    /// The key of a JWK, or `None` for keys that must not verify tokens
    /// (symmetric, encryption-only, unknown types or curves).
    pub fn from_jwk(jwk: &Jwk) -> Option<VerifyKey> {
        use jsonwebtoken::jwk::PublicKeyUse;
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            return None;
        }
        let family: Vec<Algorithm> = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => RSA_ALGS.to_vec(),
            AlgorithmParameters::EllipticCurve(p) => match p.curve {
                EllipticCurve::P256 => vec![Algorithm::ES256],
                EllipticCurve::P384 => vec![Algorithm::ES384],
                _ => return None,
            },
            AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => vec![Algorithm::EdDSA],
            _ => return None,
        };
        let algs = match jwk.common.key_algorithm.and_then(|a| algorithm(&format!("{a:?}"))) {
            Some(a) if family.contains(&a) => vec![a],
            Some(_) => return None,
            None if jwk.common.key_algorithm.is_some() => return None,
            None => family,
        };
        let key = DecodingKey::from_jwk(jwk).ok()?;
        Some(VerifyKey { kid: jwk.common.key_id.clone(), key, algs })
    }

    /// The public keys of a PEM file: certificates or public keys.
    pub fn from_pem_file(path: &str) -> Result<Vec<VerifyKey>, KeyError> {
        let err = |reason: String| KeyError::File { path: path.to_string(), reason };
        let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
        let keys = Self::from_pem(&bytes).map_err(|e| err(e.to_string()))?;
        Ok(keys)
    }

    /// The public keys of PEM text: every certificate or public key in it.
    pub fn from_pem(bytes: &[u8]) -> Result<Vec<VerifyKey>, KeyError> {
        let mut out = Vec::new();
        for pem in x509_parser::pem::Pem::iter_from_buffer(bytes) {
            let pem = pem.map_err(|e| KeyError::Pem(format!("not PEM: {e}")))?;
            let spki_der: Vec<u8> = match pem.label.as_str() {
                "CERTIFICATE" => {
                    let cert = pem.parse_x509().map_err(|e| KeyError::Pem(format!("bad certificate: {e}")))?;
                    cert.tbs_certificate.subject_pki.raw.to_vec()
                }
                "PUBLIC KEY" => pem.contents.clone(),
                _ => continue,
            };
            out.push(Self::from_spki(&spki_der)?);
        }
        if out.is_empty() {
            return Err(KeyError::Pem("no certificate or public key in the file".into()));
        }
        Ok(out)
    }

    fn from_spki(der: &[u8]) -> Result<VerifyKey, KeyError> {
        use x509_parser::prelude::FromDer;
        use x509_parser::public_key::PublicKey;
        use x509_parser::x509::SubjectPublicKeyInfo;
        let bad = |e: &dyn std::fmt::Display| KeyError::Pem(format!("bad public key: {e}"));
        let (_, spki) = SubjectPublicKeyInfo::from_der(der).map_err(|e| bad(&e))?;
        let parsed = spki.parsed().map_err(|e| bad(&e))?;
        let raw = spki.subject_public_key.data.to_vec();
        let (key, algs) = match parsed {
            PublicKey::RSA(_) => (DecodingKey::from_rsa_der(&raw), RSA_ALGS.to_vec()),
            PublicKey::EC(point) => {
                let curve = spki
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.as_oid().ok())
                    .map(|o| o.to_id_string())
                    .unwrap_or_default();
                let alg = match curve.as_str() {
                    "1.2.840.10045.3.1.7" => Algorithm::ES256,
                    "1.3.132.0.34" => Algorithm::ES384,
                    other => return Err(KeyError::Pem(format!("unsupported elliptic curve {other}"))),
                };
                (DecodingKey::from_ec_der(point.data()), vec![alg])
            }
            PublicKey::Unknown(_) if spki.algorithm.algorithm.to_id_string() == "1.3.101.112" => {
                (DecodingKey::from_ed_der(&raw), vec![Algorithm::EdDSA])
            }
            _ => {
                return Err(KeyError::Pem("unsupported public key type (RSA, EC P-256/P-384 and Ed25519 are)".into()));
            }
        };
        Ok(VerifyKey { kid: None, key, algs })
    }
}

/// Keys fetched from a JWKS endpoint, refreshed in the background and
/// re-fetched when a token names an unknown `kid` (at most once per
/// [`Jwks::MIN_REFETCH`]). When the endpoint is down the keys already fetched
/// keep working.
///
/// No lock is held while fetching: concurrent unknown `kid`s share the one
/// fetch in flight, which gets at most [`Jwks::MISS_WAIT`]; after it, for
/// [`Jwks::MIN_REFETCH`], unknown `kid`s are refused at once. A stream of
/// forged `kid`s therefore costs one fetch per period and no queue. A key
/// set larger than [`Jwks::MAX_BYTES`] is refused.
pub struct Jwks {
    url: String,
    fetcher: Arc<dyn Fetch>,
    keys: ArcSwap<Vec<VerifyKey>>,
    last_fetch: parking_lot::Mutex<Option<Instant>>,
    last_miss_fetch: parking_lot::Mutex<Option<Instant>>,
    in_flight: parking_lot::Mutex<Option<Shared<BoxFuture<'static, ()>>>>,
}

impl std::fmt::Debug for Jwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwks").field("url", &self.url).finish()
    }
}

impl Jwks {
    /// Least time between fetches caused by unknown key ids.
    pub const MIN_REFETCH: Duration = Duration::from_secs(5);
    /// Longest a check waits for a fetch caused by an unknown key id.
    pub const MISS_WAIT: Duration = Duration::from_secs(2);
    /// Background refresh period.
    pub const REFRESH: Duration = Duration::from_secs(300);
    /// Largest key set accepted, bytes.
    pub const MAX_BYTES: usize = 1024 * 1024;

    /// A JWKS source (nothing fetched yet).
    pub fn new(url: String, fetcher: Arc<dyn Fetch>) -> Arc<Jwks> {
        Arc::new(Jwks {
            url,
            fetcher,
            keys: ArcSwap::from_pointee(Vec::new()),
            last_fetch: parking_lot::Mutex::new(None),
            last_miss_fetch: parking_lot::Mutex::new(None),
            in_flight: parking_lot::Mutex::new(None),
        })
    }

    /// The endpoint.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The keys currently held.
    pub fn keys(&self) -> Arc<Vec<VerifyKey>> {
        self.keys.load_full()
    }

    /// Fetches the key set; on failure the keys held stay.
    pub async fn fetch(&self) -> Result<usize, KeyError> {
        let err = |reason: String| KeyError::Jwks { url: self.url.clone(), reason };
        *self.last_fetch.lock() = Some(Instant::now());
        let body = self.fetcher.fetch(&self.url).await.map_err(|e| err(e.0))?;
        if body.len() > Self::MAX_BYTES {
            return Err(err(format!("the key set is larger than {} bytes", Self::MAX_BYTES)));
        }
        let set: JwkSet = serde_json::from_slice(&body).map_err(|e| err(format!("not a JWK set: {e}")))?;
        let keys: Vec<VerifyKey> = set.keys.iter().filter_map(VerifyKey::from_jwk).collect();
        let n = keys.len();
        self.keys.store(Arc::new(keys));
        debug!(url = %self.url, keys = n, "JWKS fetched");
        Ok(n)
    }

    /// The key with id `kid`, fetching the set again if it is unknown (see
    /// the type's documentation for how that is bounded).
    pub async fn key(self: &Arc<Self>, kid: &str) -> Option<VerifyKey> {
        let find = |keys: &[VerifyKey]| keys.iter().find(|k| k.kid.as_deref() == Some(kid)).cloned();
        if let Some(k) = find(&self.keys.load()) {
            return Some(k);
        }
        let fetch = {
            let mut in_flight = self.in_flight.lock();
            match &*in_flight {
                Some(f) => f.clone(),
                None => {
                    {
                        let mut last = self.last_miss_fetch.lock();
                        if last.is_some_and(|t| t.elapsed() < Self::MIN_REFETCH) {
                            return None;
                        }
                        *last = Some(Instant::now());
                    }
                    let me = Arc::clone(self);
                    let kid = kid.to_string();
                    let f = async move {
                        match tokio::time::timeout(Self::MISS_WAIT, me.fetch()).await {
                            Ok(Ok(_)) => info!(url = %me.url, kid, "JWKS re-fetched for an unknown key id"),
                            Ok(Err(e)) => warn!(error = %e, "JWKS re-fetch failed; keeping the keys held"),
                            Err(_) => warn!(url = %me.url, "JWKS re-fetch timed out; keeping the keys held"),
                        }
                        *me.in_flight.lock() = None;
                    }
                    .boxed()
                    .shared();
                    *in_flight = Some(f.clone());
                    // Runs to the end even if every waiter gives up.
                    tokio::spawn(f.clone());
                    f
                }
            }
        };
        let _ = tokio::time::timeout(Self::MISS_WAIT, fetch).await;
        find(&self.keys.load())
    }

    /// Refreshes the keys now and then every [`Jwks::REFRESH`], until dropped.
    pub fn spawn_refresh(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut first = true;
            loop {
                let Some(j) = weak.upgrade() else { return };
                let recent = !first && j.last_fetch.lock().is_some_and(|t| t.elapsed() < Self::REFRESH / 2);
                if !recent && let Err(e) = j.fetch().await {
                    warn!(error = %e, "JWKS refresh failed; keeping the keys held");
                }
                first = false;
                drop(j);
                tokio::time::sleep(Self::REFRESH).await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwk_algorithms_come_from_the_key() {
        let set: JwkSet = serde_json::from_str(
            r#"{"keys":[
              {"kty":"RSA","kid":"r","n":"sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw","e":"AQAB"},
              {"kty":"RSA","kid":"r256","alg":"RS256","n":"sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw","e":"AQAB"},
              {"kty":"oct","kid":"h","k":"c2VjcmV0"},
              {"kty":"RSA","kid":"enc","use":"enc","n":"sXch","e":"AQAB"}
            ]}"#,
        )
        .expect("jwks");
        let keys: Vec<VerifyKey> = set.keys.iter().filter_map(VerifyKey::from_jwk).collect();
        assert_eq!(keys.len(), 2, "symmetric and encryption keys are dropped: {keys:?}");
        assert_eq!(keys[0].algs.len(), 6);
        assert_eq!(keys[1].algs, vec![Algorithm::RS256]);
        assert!(!keys[0].verify("HS256", "a.b", "c2ln"));
        assert!(!keys[0].verify("none", "a.b", ""));
    }
}
