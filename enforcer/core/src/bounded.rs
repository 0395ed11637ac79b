//! A size-bounded map whose entries carry their own deadline: the token
//! cache and the backend JWT cache.
//!
//! Why not a cache crate: the enforcer holds 100,000 tokens (issue 14's
//! target is 50 MB for the whole process with 1,000 APIs), and the general
//! caches spend most of their memory on bookkeeping (moka 32 MB, quick_cache
//! 18 MB per 100,000 entries of a 32-byte key and a pointer). This is a
//! plain hash map per shard, 32 bytes an entry for a 16-byte key and a
//! pointer, with the eviction the caches need and no more:
//!
//! * an entry is never returned after its deadline (checked on every read,
//!   dropped then);
//! * when a shard is full, one pass drops what has expired and what was not
//!   read since the previous pass (CLOCK's second chance, in batches); if
//!   that frees less than an eighth of the shard, arbitrary entries go too.
//!   A pass costs the shard's size and frees at least an eighth of it, so
//!   inserts stay O(1) amortised.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::{Mutex, MutexGuard};

/// Shards (a power of two): one lock each.
const SHARDS: usize = 16;

/// Entries per shard allocated up front at most (1,048,576 in all).
const PRESIZE_LIMIT: usize = 65_536;

struct Slot<V> {
    value: V,
    /// Unix second from which the entry is gone.
    until: u32,
    /// Read since the last eviction pass.
    seen: bool,
}

type Shard<K, V> = HashMap<K, Slot<V>>;

/// The map. `K` is the key, `V` a cheap clone (an `Arc`).
pub struct Bounded<K, V> {
    shards: Box<[Mutex<Shard<K, V>>]>,
    /// Picks the shard (independent of the maps' own hashing).
    spread: RandomState,
    per_shard: usize,
}

fn clamp(until: i64) -> u32 {
    u32::try_from(until.max(0)).unwrap_or(u32::MAX)
}

impl<K: Hash + Eq, V: Clone> Bounded<K, V> {
    /// A map of at most about `capacity` entries (rounded up to a multiple of the shard count).
    pub fn new(capacity: usize) -> Bounded<K, V> {
        let per_shard = capacity.max(1).div_ceil(SHARDS);
        // Sized once: a table that grows leaves its smaller copies to the
        // allocator (as much again in memory it may keep). Only the control
        // bytes of the slots are written up front; the slots themselves
        // become resident as they fill.
        let presized = per_shard.min(PRESIZE_LIMIT);
        Bounded {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::with_capacity(presized))).collect(),
            spread: RandomState::new(),
            per_shard,
        }
    }

    fn shard(&self, key: &K) -> MutexGuard<'_, Shard<K, V>> {
        // Bits 32.. of the hash: SHARDS is a power of two.
        let i = (self.spread.hash_one(key) >> 32) as usize & (SHARDS - 1);
        // A panic while holding a shard leaves the map consistent (no
        // operation panics half-way); go on with it.
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The value of `key`, unless absent or past its deadline at `now` (Unix seconds).
    pub fn get(&self, key: &K, now: i64) -> Option<V> {
        let mut shard = self.shard(key);
        let slot = shard.get_mut(key)?;
        if now >= i64::from(slot.until) {
            shard.remove(key);
            return None;
        }
        slot.seen = true;
        Some(slot.value.clone())
    }

    /// Keeps `value` under `key` until the Unix second `until`, evicting if the shard is full.
    pub fn insert(&self, key: K, value: V, until: i64, now: i64) {
        let mut shard = self.shard(&key);
        if shard.len() >= self.per_shard && !shard.contains_key(&key) {
            evict(&mut shard, self.per_shard, now);
        }
        shard.insert(key, Slot { value, until: clamp(until), seen: false });
    }

    /// Drops every entry `keep` says no to.
    pub fn retain(&self, mut keep: impl FnMut(&K, &V) -> bool) {
        for s in self.shards.iter() {
            s.lock().unwrap_or_else(|e| e.into_inner()).retain(|k, slot| keep(k, &slot.value));
        }
    }

    /// Drops everything.
    pub fn clear(&self) {
        for s in self.shards.iter() {
            *s.lock().unwrap_or_else(|e| e.into_inner()) = HashMap::new();
        }
    }

    /// Entries held (expired ones included until read or evicted).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len()).sum()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Frees at least an eighth of a full shard: every expired entry; then,
/// as a CLOCK hand would, entries not read since they were last passed over
/// (the ones passed over lose their mark); then arbitrary ones. The hand
/// starts at the table's beginning each time, an approximation: the table's
/// order is the keys' hash order, unrelated to age.
fn evict<K: Hash + Eq, V>(shard: &mut Shard<K, V>, per_shard: usize, now: i64) {
    let target = per_shard - per_shard.div_ceil(8);
    shard.retain(|_, s| now < i64::from(s.until));
    let mut excess = shard.len().saturating_sub(target);
    if excess > 0 {
        shard.retain(|_, s| {
            if excess == 0 {
                return true;
            }
            if std::mem::take(&mut s.seen) {
                return true;
            }
            excess -= 1;
            false
        });
    }
    if excess > 0 {
        shard.retain(|_, _| {
            let drop = excess > 0;
            excess = excess.saturating_sub(1);
            !drop
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_gone_at_its_deadline() {
        let m: Bounded<u32, &str> = Bounded::new(10);
        m.insert(1, "a", 100, 50);
        assert_eq!(m.get(&1, 99), Some("a"));
        assert_eq!(m.get(&1, 100), None);
        assert_eq!(m.len(), 0, "an expired entry is dropped when read");
        m.insert(2, "b", -5, 0);
        assert_eq!(m.get(&2, 0), None, "a deadline in the past is never served");
    }

    #[test]
    fn the_size_stays_bounded_and_read_entries_survive_eviction() {
        let cap = 160;
        let m: Bounded<u32, u32> = Bounded::new(cap);
        // Fill, then keep reading one entry while many more go in.
        m.insert(0, 0, 1000, 0);
        for i in 1..10_000u32 {
            assert_eq!(m.get(&0, 1), Some(0), "a hot entry is kept (round {i})");
            m.insert(i, i, 1000, 1);
            assert!(m.len() <= cap, "{} entries held, bound {cap}", m.len());
        }
        // Most recent inserts are mostly there; the bound is used.
        assert!(m.len() > cap / 2, "{} entries held", m.len());
    }

    fn slot(until: u32, seen: bool) -> Slot<u32> {
        Slot { value: 0, until, seen }
    }

    #[test]
    fn eviction_drops_expired_then_unread_then_arbitrary_entries() {
        // 16 entries, room for 16: a pass must bring it to 14 (an eighth freed).
        let mut shard: Shard<u32, u32> = (0..16).map(|i| (i, slot(1000, true))).collect();
        shard.insert(100, slot(10, true));
        shard.insert(101, slot(10, true));
        shard.insert(102, slot(1000, false));
        shard.insert(103, slot(1000, false));
        shard.insert(104, slot(1000, false));
        evict(&mut shard, 16, 20);
        assert!(!shard.contains_key(&100) && !shard.contains_key(&101), "expired entries go");
        assert!(!shard.contains_key(&102) && !shard.contains_key(&103) && !shard.contains_key(&104), "unread ones go");
        assert_eq!(shard.len(), 14, "then read ones, down to 7/8");
        // Survivors passed over lost their mark: the next pass can take them.
        assert!(shard.values().any(|s| !s.seen));

        let mut all_read: Shard<u32, u32> = (0..16).map(|i| (i, slot(1000, true))).collect();
        evict(&mut all_read, 16, 20);
        assert_eq!(all_read.len(), 14, "an eighth goes even when every entry was read");
    }

    #[test]
    fn retain_and_clear() {
        // Room for all 50 in any one shard: the shard a key lands in is
        // random (per map), and a full shard would evict.
        let m: Bounded<u32, u32> = Bounded::new(50 * SHARDS);
        for i in 0..50 {
            m.insert(i, i, 1000, 0);
        }
        m.retain(|k, _| k % 2 == 0);
        assert_eq!(m.len(), 25);
        assert_eq!(m.get(&3, 1), None);
        assert_eq!(m.get(&4, 1), Some(4));
        m.clear();
        assert!(m.is_empty());
    }
}
