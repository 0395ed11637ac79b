//! Validated tokens, keyed by the SHA-256 of the token (and the kind of
//! credential), bounded in size; an entry never outlives the token's `exp`
//! nor the configured expiry, and is dropped when its token is revoked.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::sync::Cache;

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

/// The cache key of a token.
pub type Key = [u8; 32];

/// The cache key of `token` validated as `kind`.
pub fn key(kind: Kind, token: &str) -> Key {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(&[kind as u8]);
    ctx.update(token.as_bytes());
    let d = ctx.finish();
    let mut k = [0u8; 32];
    k.copy_from_slice(d.as_ref());
    k
}

struct Expiry {
    max: Duration,
}

impl moka::Expiry<Key, Arc<TokenInfo>> for Expiry {
    fn expire_after_create(&self, _key: &Key, value: &Arc<TokenInfo>, _created_at: Instant) -> Option<Duration> {
        let ttl = match value.exp {
            Some(exp) => {
                let left = exp + SKEW_SECS - crate::now_secs();
                Duration::from_secs(left.max(0) as u64).min(self.max)
            }
            None => self.max,
        };
        Some(ttl)
    }
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

/// The token cache.
#[derive(Clone)]
pub struct TokenCache {
    inner: Option<Cache<Key, Arc<TokenInfo>>>,
    /// (enabled, size, seconds) it was built for.
    pub shape: (bool, u64, u64),
}

impl TokenCache {
    /// A cache of at most `size` tokens, each kept at most `max_secs`; none when disabled.
    pub fn new(enabled: bool, size: u64, max_secs: u64) -> TokenCache {
        let inner = enabled.then(|| {
            Cache::builder()
                .max_capacity(size)
                .expire_after(Expiry { max: Duration::from_secs(max_secs) })
                .support_invalidation_closures()
                .build()
        });
        TokenCache { inner, shape: (enabled, size, max_secs) }
    }

    /// A cached, still valid token.
    pub fn get(&self, key: &Key, now: i64) -> Option<Arc<TokenInfo>> {
        use std::sync::atomic::Ordering::Relaxed;
        let inner = self.inner.as_ref()?;
        let found = inner.get(key).filter(|v| !matches!(v.exp, Some(exp) if exp + SKEW_SECS <= now));
        match found {
            Some(_) => STATS.hits.fetch_add(1, Relaxed),
            None => STATS.misses.fetch_add(1, Relaxed),
        };
        found
    }

    /// Remembers a validated token.
    pub fn insert(&self, key: Key, info: Arc<TokenInfo>) {
        if let Some(c) = &self.inner {
            c.insert(key, info);
        }
    }

    /// Drops every entry whose token id `revoked` holds.
    pub fn drop_revoked(&self, revoked: &std::collections::HashMap<Box<str>, i64>) {
        if let Some(c) = &self.inner
            && !revoked.is_empty()
        {
            let revoked = revoked.clone();
            let _ = c.invalidate_entries_if(move |_, v| revoked.contains_key(&v.id));
        }
    }

    /// Entries held (approximate).
    pub fn len(&self) -> u64 {
        self.inner
            .as_ref()
            .map(|c| {
                c.run_pending_tasks();
                c.entry_count()
            })
            .unwrap_or(0)
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
