//! Revoked tokens (not in Choreo Connect's standalone mode): kept by the
//! adapter in a JSON file, so they survive restarts, and pushed to every
//! enforcer. An entry is dropped once its token would have expired anyway;
//! an entry whose token has no expiry ([`NO_EXPIRY`]) stays until it is
//! removed (`DELETE /revoked_tokens`): a token that never expires must never
//! work again by itself.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::resources::{ResourceSet, any};
use crate::clock::now_secs;

/// The expiry of an entry kept until removed (the token has no `exp`).
pub const NO_EXPIRY: i64 = 0;

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
    /// Unix seconds after which the entry can go; [`NO_EXPIRY`]: kept until removed.
    #[serde(rename = "expiryTime")]
    pub expiry: i64,
}

/// A numeric timestamp claim in Unix seconds, integer or not (JSON has one
/// number type; `1.7e9` and `1700000000.5` are both valid `exp` values).
pub fn numeric_date(v: &serde_json::Value) -> Option<i64> {
    match v {
        serde_json::Value::Number(n) => {
            // Floats beyond i64 (year 292 billion) are refused, not saturated.
            n.as_i64().or_else(|| n.as_f64().filter(|f| f.is_finite() && f.abs() < 9.0e18).map(|f| f.floor() as i64))
        }
        _ => None,
    }
}

/// The identifier and expiry of a JWT as the enforcer sees them: `jti`, or
/// the signature part when there is none; `exp`, or [`NO_EXPIRY`].
/// The token's signature is not checked: revoking a forged token is harmless.
pub fn token_identity(token: &str) -> Result<Revoked, RevocationError> {
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
    let exp = claims.get("exp").and_then(numeric_date).filter(|e| *e > 0);
    Ok(Revoked {
        jti: jti.map(str::to_string).unwrap_or_else(|| parts[2].to_string()),
        expiry: exp.unwrap_or(NO_EXPIRY),
    })
}

#[derive(Serialize, Deserialize, Default)]
struct FileFormat {
    tokens: Vec<Revoked>,
}

/// The revoked tokens.
#[derive(Debug, Default, Clone)]
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
        self.entries.retain(|_, exp| live(*exp, now));
        self.entries.len() != before
    }

    /// Adds `tokens` and saves the store; on a save failure nothing changes.
    /// Returns whether anything changed. A token revoked twice keeps the
    /// later expiry ([`NO_EXPIRY`] being the latest of all).
    pub fn revoke(&mut self, tokens: &[Revoked], now: i64) -> Result<bool, RevocationError> {
        let mut next = self.entries.clone();
        for t in tokens {
            if t.jti.is_empty() {
                return Err(RevocationError::BadRequest("jti: must not be empty".into()));
            }
            let exp = t.expiry.max(NO_EXPIRY);
            let e = next.entry(t.jti.clone()).or_insert(exp);
            *e = if *e == NO_EXPIRY || exp == NO_EXPIRY { NO_EXPIRY } else { (*e).max(exp) };
        }
        next.retain(|_, exp| live(*exp, now));
        if next == self.entries {
            return Ok(false);
        }
        self.save(&next)?;
        self.entries = next;
        Ok(true)
    }

    /// Removes the revocations of `jtis` and saves the store; on a save
    /// failure nothing changes. Returns how many were removed.
    pub fn unrevoke(&mut self, jtis: &[String]) -> Result<usize, RevocationError> {
        let mut next = self.entries.clone();
        let removed = jtis.iter().filter(|j| next.remove(j.as_str()).is_some()).count();
        if removed > 0 {
            self.save(&next)?;
            self.entries = next;
        }
        Ok(removed)
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
        gateway_runtime::delay_point("revocation-write");
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

/// The revoked tokens in force and their channel to the enforcers.
pub struct Revocations {
    store: Mutex<Store>,
    /// One change at a time (held while it is saved).
    writes: Mutex<()>,
    tx: watch::Sender<Arc<ResourceSet>>,
}

fn resource_set(store: &Store) -> ResourceSet {
    ResourceSet::new(
        store
            .entries()
            .map(|r| {
                any(
                    gateway_proto::REVOKED_TOKEN_TYPE_URL,
                    &gateway_proto::api::RevokedToken { jti: r.jti, expirytime: r.expiry },
                )
            })
            .collect(),
    )
}

impl Default for Revocations {
    fn default() -> Self {
        Revocations::new(Store::default())
    }
}

impl Revocations {
    /// Serves the tokens of `store`.
    pub fn new(store: Store) -> Revocations {
        let set = resource_set(&store);
        Revocations { store: Mutex::new(store), writes: Mutex::new(()), tx: watch::Sender::new(Arc::new(set)) }
    }

    /// Uses `store` from now on (at start-up).
    pub fn replace(&self, store: Store) {
        let set = resource_set(&store);
        *self.store.lock() = store;
        self.tx.send_replace(Arc::new(set));
    }

    /// Watches the revoked tokens.
    pub fn subscribe(&self) -> watch::Receiver<Arc<ResourceSet>> {
        self.tx.subscribe()
    }

    /// Changes the revoked tokens with `f` (which saves them, a blocking disk
    /// write): one writer at a time, on a copy, so readers of the list never
    /// wait for the disk; the copy replaces the list once saved and is pushed
    /// to every enforcer. Call it off the async workers.
    fn change<R>(
        &self,
        f: impl FnOnce(&mut Store) -> Result<R, RevocationError>,
        changed: impl Fn(&R) -> bool,
    ) -> Result<R, RevocationError> {
        let _writer = self.writes.lock();
        let mut next = self.store.lock().clone();
        let r = f(&mut next)?;
        if changed(&r) {
            let set = resource_set(&next);
            *self.store.lock() = next;
            self.tx.send_replace(Arc::new(set));
        }
        Ok(r)
    }

    /// Revokes `tokens`: saved, then pushed to every enforcer. Returns the
    /// version of the revoked-token set that includes them.
    pub fn revoke(&self, tokens: &[Revoked]) -> Result<String, RevocationError> {
        self.change(|s| s.revoke(tokens, now_secs()), |changed| *changed)?;
        Ok(self.version())
    }

    /// Removes the revocations of `jtis`: saved, then pushed to every
    /// enforcer. Returns how many there were.
    pub fn unrevoke(&self, jtis: &[String]) -> Result<usize, RevocationError> {
        self.change(|s| s.unrevoke(jtis), |n| *n > 0)
    }

    /// Drops revocations of tokens that have expired.
    pub fn expire(&self) {
        let _ = self.change(|s| Ok(s.expire(now_secs())), |changed| *changed);
    }

    /// The version of the revoked-token set in force.
    pub fn version(&self) -> String {
        self.tx.borrow().version.clone()
    }

    /// The revoked tokens.
    pub fn list(&self) -> Vec<Revoked> {
        self.store.lock().entries().collect()
    }
}

/// Whether an entry with expiry `exp` is still needed at `now`.
fn live(exp: i64, now: i64) -> bool {
    exp == NO_EXPIRY || exp > now
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
        let r = token_identity(&jwt(r#"{"jti":"abc","exp":2000}"#)).expect("valid");
        assert_eq!(r, Revoked { jti: "abc".into(), expiry: 2000 });
        let r = token_identity(&jwt(r#"{"sub":"x"}"#)).expect("valid");
        assert_eq!(r, Revoked { jti: "c2ln".into(), expiry: NO_EXPIRY });
        // `exp` is a JSON number of either kind.
        let r = token_identity(&jwt(r#"{"jti":"f","exp":2000.75}"#)).expect("valid");
        assert_eq!(r.expiry, 2000);
        let r = token_identity(&jwt(r#"{"jti":"g","exp":2.5e3}"#)).expect("valid");
        assert_eq!(r.expiry, 2500);
        let r = token_identity(&jwt(r#"{"jti":"h","exp":"2000"}"#)).expect("valid");
        assert_eq!(r.expiry, NO_EXPIRY, "a non-numeric exp is no expiry: kept until removed");
        for bad in ["", "a.b", "a..c", "a.!!!.c", &format!("x.{}.y", "bm90IGpzb24")] {
            assert!(token_identity(bad).is_err(), "{bad}");
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
    fn revocations_without_expiry_stay_until_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("revoked.json");
        let mut s = Store::open(Some(&path), 100).expect("open");
        assert!(s.revoke(&[Revoked { jti: "forever".into(), expiry: NO_EXPIRY }], 100).expect("revoke"));
        // A later revocation with an expiry does not shorten it.
        assert!(!s.revoke(&[Revoked { jti: "forever".into(), expiry: 200 }], 100).expect("again"));
        // Years later, still revoked, also after reopening.
        let far = 100 + 10 * 365 * 24 * 3600;
        assert!(!s.expire(far));
        let mut s = Store::open(Some(&path), far).expect("reopen");
        assert_eq!(s.entries().collect::<Vec<_>>(), vec![Revoked { jti: "forever".into(), expiry: NO_EXPIRY }]);
        assert_eq!(s.unrevoke(&["forever".into(), "unknown".into()]).expect("remove"), 1);
        assert!(s.is_empty());
        assert!(Store::open(Some(&path), far).expect("reopen").is_empty(), "the removal is saved");
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
