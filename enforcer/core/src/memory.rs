//! What the engine keeps between requests and the filters consult: the
//! revoked tokens, the validated tokens and the backend JWTs already signed.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::bounded::Bounded;
use crate::cache::TokenCache;

/// A backend JWT's cache key: the incoming token's id and the API (`basePath:version`).
pub type BackendJwtKey = (Box<str>, Box<str>);

/// Revoked token ids with their expiry.
pub type Revoked = HashMap<Box<str>, i64>;

/// The engine's memory.
pub struct Memory {
    /// Revoked token ids with their expiry.
    pub revoked: ArcSwap<Revoked>,
    /// Validated tokens.
    pub cache: ArcSwap<TokenCache>,
    /// Backend JWTs by (token id, API), with their `exp` (the entry goes at
    /// `exp`; readers also want the skew left).
    pub backend_jwts: Bounded<BackendJwtKey, (Arc<str>, i64)>,
    /// Rate limit counters: in memory (exact for one enforcer) or shared
    /// through quota leases; replaced when `[enforcer.throttling]` changes backend.
    pub limiter: ArcSwap<crate::lease::Limiter>,
}

impl Default for Memory {
    fn default() -> Self {
        Memory::new()
    }
}

impl Memory {
    /// Nothing revoked, nothing cached (the token cache off until a configuration turns it on).
    pub fn new() -> Memory {
        Memory {
            revoked: ArcSwap::from_pointee(HashMap::new()),
            cache: ArcSwap::from_pointee(TokenCache::new(false, 1, 1)),
            backend_jwts: Bounded::new(10_000),
            limiter: ArcSwap::from_pointee(crate::lease::Limiter::default()),
        }
    }

    /// Forgets every validated token and backend JWT, and caches from now on
    /// as `(enabled, maximum entries, seconds)` says.
    pub fn reset(&self, (enabled, max, ttl): (bool, u64, u64)) {
        self.cache.store(Arc::new(TokenCache::new(enabled, max, ttl)));
        self.backend_jwts.clear();
    }

    /// Installs the revoked tokens and drops them from the caches.
    pub fn set_revoked(&self, revoked: Revoked) {
        self.cache.load().drop_revoked(&revoked);
        self.backend_jwts.retain(|k, _| !revoked.contains_key(&k.0));
        self.revoked.store(Arc::new(revoked));
    }

    /// Whether the token with this id is revoked.
    pub fn is_revoked(&self, id: &str) -> bool {
        self.revoked.load().contains_key(id)
    }
}
