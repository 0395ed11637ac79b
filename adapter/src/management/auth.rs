//! Who may use the management API: users of `[[adapter.server.users]]` with
//! HTTP Basic, or with a Bearer token from `POST /oauth2/token` (RS256,
//! signed with `[adapter.server] tokenPrivateKeyPath`, claims `username`,
//! `scope: "admin"`, `exp`), as in Choreo Connect.

use std::path::Path;
use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair, UnparsedPublicKey};
use base64::Engine;
use gateway_config::model::User;
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Longest token lifetime (Choreo Connect caps `tokenTTL` at 24 h).
pub const MAX_TTL: Duration = Duration::from_secs(24 * 3600);

/// Why the token key could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("adapter.server.tokenPrivateKeyPath {path}: {reason}")]
pub struct KeyError {
    /// The key file.
    pub path: String,
    /// What is wrong.
    pub reason: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    username: String,
    scope: String,
    iat: u64,
    exp: u64,
}

/// The signing key: RSA (RS256, as Choreo Connect) or EC P-256 (ES256).
enum Key {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
}

impl Key {
    fn alg(&self) -> &'static str {
        match self {
            Key::Rsa(_) => "RS256",
            Key::Ec(_) => "ES256",
        }
    }

    fn sign(&self, input: &[u8]) -> Option<Vec<u8>> {
        let rng = SystemRandom::new();
        match self {
            Key::Rsa(k) => {
                let mut sig = vec![0; k.public_modulus_len()];
                k.sign(&signature::RSA_PKCS1_SHA256, &rng, input, &mut sig).ok()?;
                Some(sig)
            }
            Key::Ec(k) => k.sign(&rng, input).ok().map(|s| s.as_ref().to_vec()),
        }
    }

    fn verify(&self, input: &[u8], sig: &[u8]) -> bool {
        match self {
            Key::Rsa(k) => UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, k.public_key().as_ref())
                .verify(input, sig)
                .is_ok(),
            Key::Ec(k) => UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, k.public_key().as_ref())
                .verify(input, sig)
                .is_ok(),
        }
    }
}

/// Issues and checks the management API's credentials.
pub struct Auth {
    users: Vec<User>,
    key: Key,
    ttl: Duration,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth").field("users", &self.users.len()).field("ttl", &self.ttl).finish()
    }
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl Auth {
    /// Loads the key (PEM: RSA PKCS#8 or PKCS#1, or EC P-256 PKCS#8) that
    /// signs tokens lasting `ttl` (at most 24 h).
    pub fn new(users: Vec<User>, key_path: &Path, ttl: Duration) -> Result<Auth, KeyError> {
        let err = |reason: String| KeyError { path: key_path.display().to_string(), reason };
        let pem = std::fs::read(key_path).map_err(|e| err(e.to_string()))?;
        let der = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| err(format!("no usable private key: {e}")))?;
        let key = match &der {
            PrivateKeyDer::Pkcs1(k) => {
                RsaKeyPair::from_der(k.secret_pkcs1_der()).map(Key::Rsa).map_err(|e| e.to_string())
            }
            PrivateKeyDer::Pkcs8(k) => RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()).map(Key::Rsa).or_else(|_| {
                EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, k.secret_pkcs8_der())
                    .map(Key::Ec)
                    .map_err(|e| format!("neither RSA nor EC P-256: {e}"))
            }),
            PrivateKeyDer::Sec1(k) => {
                EcdsaKeyPair::from_private_key_der(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, k.secret_sec1_der())
                    .map(Key::Ec)
                    .map_err(|e| format!("not an EC P-256 key: {e}"))
            }
            _ => Err("not an RSA or EC private key".to_string()),
        }
        .map_err(|e| err(format!("not a usable private key: {e}")))?;
        Ok(Auth { users, key, ttl: ttl.min(MAX_TTL) })
    }

    fn user_ok(&self, user: &str, password: &str) -> bool {
        // Every user is compared, in constant time, whatever matches.
        self.users.iter().fold(false, |found, u| {
            let name_ok: bool = u.username.as_bytes().ct_eq(user.as_bytes()).into();
            let pass_ok: bool = u.password.as_bytes().ct_eq(password.as_bytes()).into();
            found | (name_ok & pass_ok)
        })
    }

    fn encode(&self, claims: &Claims) -> Option<String> {
        let header = serde_json::json!({"alg": self.key.alg(), "typ": "JWT"}).to_string();
        let body = serde_json::to_string(claims).ok()?;
        let input = format!("{}.{}", B64URL.encode(header), B64URL.encode(body));
        let sig = self.key.sign(input.as_bytes())?;
        Some(format!("{input}.{}", B64URL.encode(sig)))
    }

    /// A token for `user`, if the credentials are right.
    pub fn issue(&self, user: &str, password: &str) -> Option<String> {
        if !self.user_ok(user, password) {
            return None;
        }
        let iat = now();
        self.encode(&Claims { username: user.to_string(), scope: "admin".into(), iat, exp: iat + self.ttl.as_secs() })
    }

    fn decode(&self, token: &str) -> Option<Claims> {
        let (input, sig) = token.rsplit_once('.')?;
        let (header, body) = input.split_once('.')?;
        let header: serde_json::Value = serde_json::from_slice(&B64URL.decode(header).ok()?).ok()?;
        if header.get("alg").and_then(serde_json::Value::as_str) != Some(self.key.alg()) {
            return None;
        }
        if !self.key.verify(input.as_bytes(), &B64URL.decode(sig).ok()?) {
            return None;
        }
        serde_json::from_slice(&B64URL.decode(body).ok()?).ok()
    }

    /// The user an `Authorization` header value authenticates: Basic
    /// credentials of a configured user, or a valid, unexpired token with
    /// scope `admin` of a user that still exists.
    pub fn check(&self, authorization: &str) -> Option<String> {
        let (scheme, value) = authorization.split_once(' ')?;
        let value = value.trim();
        if scheme.eq_ignore_ascii_case("basic") {
            let decoded = base64::engine::general_purpose::STANDARD.decode(value).ok()?;
            let text = String::from_utf8(decoded).ok()?;
            let (user, pass) = text.split_once(':')?;
            return self.user_ok(user, pass).then(|| user.to_string());
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let c = self.decode(value)?;
        let admin = c.scope.split(' ').any(|s| s == "admin");
        let exists = self.users.iter().any(|u| u.username == c.username);
        (admin && exists && c.exp > now()).then_some(c.username)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(ttl: Duration) -> (Auth, tempfile::TempDir) {
        auth_with(ttl, &rcgen::PKCS_RSA_SHA256)
    }

    fn auth_with(ttl: Duration, alg: &'static rcgen::SignatureAlgorithm) -> (Auth, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("dir");
        let kp = rcgen::KeyPair::generate_for(alg).expect("key");
        let path = dir.path().join("mg.key");
        std::fs::write(&path, kp.serialize_pem()).expect("write");
        let users = vec![User { username: "admin".into(), password: "admin".into() }];
        (Auth::new(users, &path, ttl).expect("auth"), dir)
    }

    #[test]
    fn basic_and_bearer() {
        let (a, _d) = auth(Duration::from_secs(3600));
        assert_eq!(a.check("Basic YWRtaW46YWRtaW4=").as_deref(), Some("admin"));
        assert_eq!(a.check("basic YWRtaW46YWRtaW4=").as_deref(), Some("admin"));
        assert_eq!(a.check("Basic YWRtaW46bm9wZQ=="), None, "wrong password");
        assert_eq!(a.issue("admin", "nope"), None);
        let t = a.issue("admin", "admin").expect("token");
        assert_eq!(a.check(&format!("Bearer {t}")).as_deref(), Some("admin"));
        assert_eq!(a.check(&format!("Bearer {t}x")), None, "bad signature");
        assert_eq!(a.check(&t), None, "no scheme");
        // Another key's token.
        let (other, _d2) = auth(Duration::from_secs(3600));
        let foreign = other.issue("admin", "admin").expect("token");
        assert_eq!(a.check(&format!("Bearer {foreign}")), None);
    }

    #[test]
    fn expired_tokens_and_removed_users_are_refused() {
        let (a, _d) = auth(Duration::from_secs(3600));
        let claims = Claims { username: "admin".into(), scope: "admin".into(), iat: now() - 7200, exp: now() - 1 };
        let expired = a.encode(&claims).expect("encode");
        assert_eq!(a.check(&format!("Bearer {expired}")), None);
        let claims = Claims { username: "gone".into(), scope: "admin".into(), iat: now(), exp: now() + 60 };
        let gone = a.encode(&claims).expect("encode");
        assert_eq!(a.check(&format!("Bearer {gone}")), None);
        let claims = Claims { username: "admin".into(), scope: "read".into(), iat: now(), exp: now() + 60 };
        let no_admin = a.encode(&claims).expect("encode");
        assert_eq!(a.check(&format!("Bearer {no_admin}")), None);
    }

    #[test]
    fn an_ec_key_signs_es256() {
        let (a, _d) = auth_with(Duration::from_secs(60), &rcgen::PKCS_ECDSA_P256_SHA256);
        let t = a.issue("admin", "admin").expect("token");
        assert_eq!(a.check(&format!("Bearer {t}")).as_deref(), Some("admin"));
        let header = t.split('.').next().expect("header");
        assert!(String::from_utf8(B64URL.decode(header).expect("b64")).expect("utf8").contains("ES256"));
    }

    #[test]
    fn ttl_is_capped_at_a_day() {
        let (a, _d) = auth(Duration::from_secs(7 * 24 * 3600));
        assert_eq!(a.ttl, MAX_TTL);
    }
}
