//! Revoked tokens (not in Choreo Connect's standalone mode): kept by the
//! adapter in a JSON file, so they survive restarts, and pushed to every
//! enforcer. Entries are dropped once the token would have expired anyway.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use serde::{Deserialize, Serialize};

/// Kept this long when a token's expiry is unknown (seconds): one day longer
/// than any sensible token lifetime.
pub const UNKNOWN_EXPIRY_TTL: i64 = 30 * 24 * 3600;

/// Why revocation failed.
#[derive(Debug, thiserror::Error)]
pub enum RevocationError {
    /// The store file cannot be read or written.
    #[error("revoked-token file {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The request named no usable token.
    #[error("{0}")]
    BadRequest(String),
}

/// One revoked token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revoked {
    /// The token's `jti`, or its signature when it has none.
    pub jti: String,
    /// Unix seconds after which the entry can go.
    #[serde(rename = "expiryTime")]
    pub expiry: i64,
}

/// The identifier and expiry of a JWT as the enforcer sees them: `jti`, or
/// the signature part when there is none; `exp`, or `now + UNKNOWN_EXPIRY_TTL`.
/// The token's signature is not checked: revoking a forged token is harmless.
pub fn token_identity(token: &str, now: i64) -> Result<Revoked, RevocationError> {
    let bad = |why: &str| RevocationError::BadRequest(format!("token: {why}"));
    let parts: Vec<&str> = token.trim().split('.').collect();
    if parts.len() != 3 || parts.iter().any(|p| p.is_empty()) {
        return Err(bad("not a JWT (expected three dot-separated parts)"));
    }
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(parts[1].trim_end_matches('='))
        .map_err(|_| bad("the payload is not base64url"))?;
    let claims: serde_json::Value =
        serde_json::from_slice(&payload).map_err(|_| bad("the payload is not a JSON object"))?;
    let jti = claims.get("jti").and_then(|v| v.as_str()).filter(|s| !s.is_empty());
    let exp = claims.get("exp").and_then(|v| v.as_i64());
    Ok(Revoked {
        jti: jti.map(str::to_string).unwrap_or_else(|| parts[2].to_string()),
        expiry: exp.unwrap_or(now + UNKNOWN_EXPIRY_TTL),
    })
}

#[derive(Serialize, Deserialize, Default)]
struct FileFormat {
    tokens: Vec<Revoked>,
}

/// The revoked tokens.
#[derive(Debug, Default)]
pub struct Store {
    entries: BTreeMap<String, i64>,
    file: Option<PathBuf>,
}

impl Store {
    /// Opens the store kept in `file` (none: memory only), dropping expired entries.
    pub fn open(file: Option<&Path>, now: i64) -> Result<Store, RevocationError> {
        let mut store = Store { entries: BTreeMap::new(), file: file.map(Path::to_path_buf) };
        if let Some(path) = file {
            let err = |reason: String| RevocationError::File { path: path.display().to_string(), reason };
            match std::fs::read(path) {
                Ok(bytes) => {
                    let f: FileFormat =
                        serde_json::from_slice(&bytes).map_err(|e| err(format!("not a revoked-token file: {e}")))?;
                    store.entries = f.tokens.into_iter().map(|r| (r.jti, r.expiry)).collect();
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(err(e.to_string())),
            }
        }
        store.prune(now);
        Ok(store)
    }

    fn prune(&mut self, now: i64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|_, exp| *exp > now);
        self.entries.len() != before
    }

    /// Adds `tokens` and saves the store; on a save failure nothing changes.
    /// Returns whether anything changed.
    pub fn revoke(&mut self, tokens: &[Revoked], now: i64) -> Result<bool, RevocationError> {
        let mut next = self.entries.clone();
        for t in tokens {
            if t.jti.is_empty() {
                return Err(RevocationError::BadRequest("jti: must not be empty".into()));
            }
            let exp = if t.expiry > 0 { t.expiry } else { now + UNKNOWN_EXPIRY_TTL };
            let e = next.entry(t.jti.clone()).or_insert(exp);
            *e = (*e).max(exp);
        }
        next.retain(|_, exp| *exp > now);
        if next == self.entries {
            return Ok(false);
        }
        self.save(&next)?;
        self.entries = next;
        Ok(true)
    }

    /// Drops expired entries (saving the store). Returns whether any went.
    pub fn expire(&mut self, now: i64) -> bool {
        if !self.prune(now) {
            return false;
        }
        let entries = self.entries.clone();
        if let Err(e) = self.save(&entries) {
            tracing::warn!(error = %e, "could not save the revoked-token file");
        }
        true
    }

    fn save(&self, entries: &BTreeMap<String, i64>) -> Result<(), RevocationError> {
        let Some(path) = &self.file else { return Ok(()) };
        let err = |reason: String| RevocationError::File { path: path.display().to_string(), reason };
        let f = FileFormat { tokens: entries.iter().map(|(j, e)| Revoked { jti: j.clone(), expiry: *e }).collect() };
        let bytes = serde_json::to_vec_pretty(&f).map_err(|e| err(e.to_string()))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| err(format!("cannot create {}: {e}", dir.display())))?;
        }
        crate::fsutil::write_atomic(path, &bytes).map_err(|e| err(e.to_string()))?;
        Ok(())
    }

    /// The revoked tokens.
    pub fn entries(&self) -> impl Iterator<Item = Revoked> + '_ {
        self.entries.iter().map(|(j, e)| Revoked { jti: j.clone(), expiry: *e })
    }

    /// Number of revoked tokens.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No revoked tokens.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: &str) -> String {
        let e = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!("{}.{}.c2ln", e(r#"{"alg":"RS256"}"#), e(claims))
    }

    #[test]
    fn identity_is_the_jti_or_the_signature() {
        let r = token_identity(&jwt(r#"{"jti":"abc","exp":2000}"#), 1000).expect("valid");
        assert_eq!(r, Revoked { jti: "abc".into(), expiry: 2000 });
        let r = token_identity(&jwt(r#"{"sub":"x"}"#), 1000).expect("valid");
        assert_eq!(r, Revoked { jti: "c2ln".into(), expiry: 1000 + UNKNOWN_EXPIRY_TTL });
        for bad in ["", "a.b", "a..c", "a.!!!.c", &format!("x.{}.y", "bm90IGpzb24")] {
            assert!(token_identity(bad, 0).is_err(), "{bad}");
        }
    }

    #[test]
    fn revocations_survive_reopening_and_expire() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("data/revoked.json");
        let mut s = Store::open(Some(&path), 100).expect("open");
        assert!(
            s.revoke(&[Revoked { jti: "a".into(), expiry: 200 }, Revoked { jti: "b".into(), expiry: 500 }], 100)
                .expect("revoke")
        );
        assert!(!s.revoke(&[Revoked { jti: "a".into(), expiry: 150 }], 100).expect("revoke"), "no change");
        let s2 = Store::open(Some(&path), 300).expect("reopen");
        assert_eq!(s2.entries().collect::<Vec<_>>(), vec![Revoked { jti: "b".into(), expiry: 500 }]);
        assert!(s.expire(300));
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn a_corrupt_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("revoked.json");
        std::fs::write(&path, "{not json").expect("write");
        let err = Store::open(Some(&path), 0).expect_err("corrupt").to_string();
        assert!(err.contains("revoked.json"), "{err}");
    }
}
