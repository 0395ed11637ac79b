//! Validated tokens, keyed by the SHA-256 of the token (and the kind of
//! credential), bounded in size; an entry never outlives the token's `exp`
//! nor the configured expiry, and is dropped when its token is revoked.

use std::sync::Arc;

use crate::bounded::Bounded;
use crate::token::TokenInfo;

/// Allowed clock skew for `exp` and `nbf`, seconds (Choreo Connect: 5).
pub const SKEW_SECS: i64 = 5;

/// Which authenticator validated a token (so one credential cannot be replayed as another kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `Authorization: Bearer`.
    Jwt = 1,
    /// API key.
    ApiKey = 2,
    /// Internal key.
    InternalKey = 3,
}

/// The cache key of a token: the first 128 bits of its SHA-256. Only
/// tokens that passed validation are cached, so reaching another token's
/// entry would take a second preimage of 128 bits; half the bytes of the
/// whole digest, per entry.
pub type Key = [u8; 16];

/// The cache key of `token` validated as `kind`.
pub fn key(kind: Kind, token: &str) -> Key {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(&[kind as u8]);
    ctx.update(token.as_bytes());
    let d = ctx.finish();
    let mut k = [0u8; 16];
    k.copy_from_slice(&d.as_ref()[..16]);
    k
}

/// Lookups in the token caches of this process, for the enforcer's metrics.
#[derive(Debug, Default)]
pub struct CacheStats {
    /// A valid token was found.
    pub hits: std::sync::atomic::AtomicU64,
    /// The token had to be validated (the cache is enabled).
    pub misses: std::sync::atomic::AtomicU64,
}

/// The token caches' lookups (one process, one enforcer).
pub static STATS: CacheStats =
    CacheStats { hits: std::sync::atomic::AtomicU64::new(0), misses: std::sync::atomic::AtomicU64::new(0) };

/// The token cache: a [`Bounded`] map (32 bytes an entry, against 180 for
/// quick_cache and 320 for moka, `examples/cache_mem.rs`); each entry
/// carries the second it must be dropped at: the token's `exp` (plus the
/// skew) or the configured expiry after it was cached, whichever is first.
#[derive(Clone)]
pub struct TokenCache {
    inner: Option<Arc<Bounded<Key, Arc<TokenInfo>>>>,
    max_secs: i64,
    /// (enabled, size, seconds) it was built for.
    pub shape: (bool, u64, u64),
}

impl TokenCache {
    /// A cache of at most `size` tokens, each kept at most `max_secs`; none when disabled.
    pub fn new(enabled: bool, size: u64, max_secs: u64) -> TokenCache {
        let inner = enabled.then(|| Arc::new(Bounded::new(usize::try_from(size.max(1)).unwrap_or(usize::MAX))));
        TokenCache { inner, max_secs: i64::try_from(max_secs).unwrap_or(i64::MAX), shape: (enabled, size, max_secs) }
    }

    /// A cached, still valid token.
    pub fn get(&self, key: &Key, now: i64) -> Option<Arc<TokenInfo>> {
        use std::sync::atomic::Ordering::Relaxed;
        let inner = self.inner.as_ref()?;
        let found = inner.get(key, now);
        match found {
            Some(_) => STATS.hits.fetch_add(1, Relaxed),
            None => STATS.misses.fetch_add(1, Relaxed),
        };
        found
    }

    /// Remembers a validated token (until its `exp`, at most the configured expiry from now).
    pub fn insert(&self, key: Key, info: Arc<TokenInfo>) {
        if let Some(c) = &self.inner {
            let now = crate::now_secs();
            let until = now.saturating_add(self.max_secs);
            let until = info.exp.map_or(until, |exp| until.min(exp.saturating_add(SKEW_SECS)));
            if until > now {
                c.insert(key, info, until, now);
            }
        }
    }

    /// Drops every entry whose token id `revoked` holds.
    pub fn drop_revoked(&self, revoked: &std::collections::HashMap<Box<str>, i64>) {
        if let Some(c) = &self.inner
            && !revoked.is_empty()
        {
            c.retain(|_, info| !revoked.contains_key(&info.id));
        }
    }

    /// Entries held (expired ones included until evicted).
    pub fn len(&self) -> u64 {
        self.inner.as_ref().map(|c| c.len() as u64).unwrap_or(0)
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
