//! Memory of the token cache: RSS growth for 100,000 cached tokens (realistic
//! claims: an application, one subscription, two scopes), and for the cache
//! alone (`bounded::Bounded`, 16-byte keys) with empty values, to tell the
//! cache's own cost from the tokens'. (The caches before measured here:
//! moka 32 MB alone, quick_cache with 32-byte keys 18.2 MB.)
//!
//! cargo run --release -p gateway-enforcer-core --example cache_mem [tokens|cache] [N]

use std::sync::Arc;

// The allocator the enforcer binary uses.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .expect("VmRSS");
    kb / 1024.0
}

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_else(|| "tokens".into());
    let n: u64 = std::env::args().nth(2).and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let before = rss_mb();
    if mode == "cache" {
        let c: enforcer_core::bounded::Bounded<[u8; 16], Arc<()>> =
            enforcer_core::bounded::Bounded::new((n + n / 10) as usize);
        for i in 0..n {
            let mut k = [0u8; 16];
            k[..8].copy_from_slice(&i.to_le_bytes());
            c.insert(k, Arc::new(()), i64::from(u32::MAX), 0);
        }
        println!("the cache alone: {:.1} MB for {} entries", rss_mb() - before, c.len());
        return;
    }
    let cache = enforcer_core::cache::TokenCache::new(true, n + n / 10, 900);
    let issuer: Arc<str> = "IdP".into();
    for i in 0..n {
        let claims: serde_json::Map<String, serde_json::Value> = serde_json::from_value(serde_json::json!({
            "iss": "https://idp.example.com", "sub": "bench-user", "azp": "bench-client", "aud": "bench",
            "exp": 4_000_000_000i64, "iat": 1, "jti": format!("token-{i}"), "scope": "read write",
            "keytype": "PRODUCTION",
            "application": {"id": 7, "uuid": "app-7", "name": "BenchApp", "tier": "Unlimited", "owner": "bench-user"},
            "subscribedAPIs": [{"name": "Bench", "version": "v1", "context": "/bench/v1", "subscriptionTier": "Unlimited"}],
        }))
        .expect("claims");
        let info = enforcer_core::token::TokenInfo::from_claims("sig", &claims, Arc::clone(&issuer), "azp");
        cache.insert(enforcer_core::cache::key(enforcer_core::cache::Kind::Jwt, &format!("token-{i}")), Arc::new(info));
    }
    println!(
        "token cache: {:.1} MB for {} entries (TokenInfo is {} bytes)",
        rss_mb() - before,
        cache.len(),
        std::mem::size_of::<enforcer_core::token::TokenInfo>()
    );
}
