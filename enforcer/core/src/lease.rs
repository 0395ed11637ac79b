//! Counting shared by enforcer replicas through quota leases.
//!
//! Each replica takes a small lease of a window's requests from the shared
//! counter (one atomic call for all the counters a request needs, the window
//! computed from the store's clock) and spends it locally. Every admitted
//! request was leased from the counter, so the gateway never admits more
//! than the limit; a replica's unspent lease is lost when the window ends, so
//! it admits at most `replicas × lease` less. The lease is
//! `max(1, ⌊accuracy × limit ÷ replicas⌋)`: with the default accuracy of 2 %
//! the store is called about once per `lease` admitted requests, and a
//! counter whose window is spent answers locally until the window ends.
//!
//! When the store fails or is slower than its timeout, the request does not
//! wait longer: the failure mode decides (`local`: count in memory with
//! `limit ÷ replicas` per replica; `open`: admit; `closed`: refuse) and the
//! store is tried again a second later, so shared counting resumes within
//! about a second of the store returning.
//!
//! The store itself (Redis) lives in the enforcer binary (enforcer/src/redis_store.rs);
//! this module is the accounting, behind [`LeaseStore`].

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use parking_lot::Mutex;

use crate::ratelimit::{Admitted, Hit, MemoryLimiter, Quota, Throttled, Usage};

/// One counter's lease request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRequest {
    /// Choreo Connect's key of the counter (the store adds its prefix and the window).
    pub key: String,
    /// The window's limit.
    pub limit: u64,
    /// The window's length, seconds.
    pub window_secs: u64,
    /// Requests wanted.
    pub want: u64,
}

/// The store's answer for one counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseReply {
    /// Requests granted (fewer than wanted: the window is spent).
    pub granted: u64,
    /// The counter after the grant (requests leased by every replica this window).
    pub counter: u64,
    /// End of the window, Unix seconds, by the store's clock.
    pub window_end: u64,
}

/// The store could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rate-limit store: {0}")]
pub struct StoreError(pub String);

/// Where leases come from (Redis in the enforcer).
pub trait LeaseStore: Send + Sync {
    /// Takes the leases, atomically for all of them.
    fn take<'a>(&'a self, reqs: &'a [LeaseRequest]) -> BoxFuture<'a, Result<Vec<LeaseReply>, StoreError>>;
}

/// What to do while the store cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureMode {
    /// Count in memory, each replica allowing `limit ÷ replicas`.
    Local,
    /// Admit every request.
    Open,
    /// Refuse every request that a limit applies to.
    Closed,
}

impl FailureMode {
    /// `local`, `open` or `closed` (anything else: `local`).
    pub fn parse(s: &str) -> FailureMode {
        match s {
            "open" => FailureMode::Open,
            "closed" => FailureMode::Closed,
            _ => FailureMode::Local,
        }
    }
}

/// Why a request was not admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// A quota is spent.
    Throttled(Throttled),
    /// The shared store cannot be reached and the failure mode is `closed`.
    Unavailable,
}

/// Counts for metrics.
#[derive(Debug, Default)]
pub struct LeaseStats {
    /// Calls to the store.
    pub store_calls: AtomicU64,
    /// Calls that failed or timed out.
    pub store_errors: AtomicU64,
    /// Requests admitted with shared counting.
    pub admitted: AtomicU64,
    /// Requests decided by the failure mode.
    pub degraded_decisions: AtomicU64,
    /// The store is being skipped after a failure.
    pub degraded: AtomicBool,
}

/// A counter's lease on this replica.
#[derive(Debug, Clone, Copy)]
struct Lease {
    /// The window it belongs to ends (store's clock).
    end: u64,
    /// Unspent requests.
    tokens: u64,
    /// The window's counter reached the limit: no more leases this window.
    exhausted: bool,
    /// The counter after the last grant.
    counter: u64,
}

/// Settings of a [`LeasedLimiter`].
#[derive(Debug, Clone, Copy)]
pub struct LeaseSettings {
    /// Share of a limit leases may leave unused.
    pub accuracy: f64,
    /// Replicas sharing the counters.
    pub replicas: u32,
    /// Longest wait for the store.
    pub timeout: Duration,
    /// While the store is away.
    pub failure_mode: FailureMode,
}

/// Shared counting through a [`LeaseStore`].
pub struct LeasedLimiter {
    store: Arc<dyn LeaseStore>,
    settings: LeaseSettings,
    leases: Mutex<HashMap<String, Lease>>,
    prune_at: AtomicU64,
    /// One refill at a time: concurrent requests for the same counter wait
    /// for one store call instead of each making their own.
    refill: tokio::sync::Mutex<()>,
    fallback: MemoryLimiter,
    /// Until when (Unix milliseconds) the store is skipped after a failure.
    degraded_until: AtomicU64,
    /// For metrics.
    pub stats: Arc<LeaseStats>,
}

/// How long the store is skipped after a failure before it is tried again.
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl LeasedLimiter {
    /// A limiter over `store`.
    pub fn new(store: Arc<dyn LeaseStore>, settings: LeaseSettings) -> LeasedLimiter {
        LeasedLimiter {
            store,
            settings,
            leases: Mutex::new(HashMap::new()),
            prune_at: AtomicU64::new(1024),
            refill: tokio::sync::Mutex::new(()),
            fallback: MemoryLimiter::default(),
            degraded_until: AtomicU64::new(0),
            stats: Arc::new(LeaseStats::default()),
        }
    }

    /// The lease size for `limit`.
    pub fn lease_size(&self, limit: u64) -> u64 {
        let k = (self.settings.accuracy * limit as f64 / f64::from(self.settings.replicas.max(1))).floor() as u64;
        k.clamp(1, limit.max(1))
    }

    /// Decides with the leases held, when they suffice: `None` when a
    /// counter needs a lease first. `fresh` counters were just refilled and
    /// count as current whatever the local clock says.
    fn decide(&self, hits: &[(&Hit, Quota)], now: u64, fresh: &HashSet<&str>) -> Option<Result<Admitted, Refused>> {
        let mut leases = self.leases.lock();
        let current = |l: &Lease, key: &str| l.end > now || fresh.contains(key);
        for (hit, _) in hits {
            match leases.get(hit.key.as_str()) {
                Some(l) if current(l, &hit.key) && (l.tokens > 0 || l.exhausted) => {}
                _ => return None,
            }
        }
        // Every counter has tokens or is spent: the first spent enforced one refuses.
        for (hit, quota) in hits {
            let l = leases[hit.key.as_str()];
            if l.tokens == 0 && hit.enforce {
                let usage = Usage {
                    level: hit.level,
                    policy: Arc::clone(&hit.policy),
                    quota: *quota,
                    remaining: 0,
                    reset_at: l.end,
                };
                return Some(Err(Refused::Throttled(Throttled { usage })));
            }
        }
        let mut admitted = Admitted::default();
        for (hit, quota) in hits {
            let Some(l) = leases.get_mut(hit.key.as_str()) else { continue };
            if l.tokens == 0 {
                admitted.over_quota = true;
                continue;
            }
            l.tokens -= 1;
            if hit.enforce {
                admitted.usage.push(Usage {
                    level: hit.level,
                    policy: Arc::clone(&hit.policy),
                    quota: *quota,
                    remaining: quota.limit.saturating_sub(l.counter) + l.tokens,
                    reset_at: l.end,
                });
            }
        }
        admitted.usage.sort_by_key(|u| u.remaining);
        Some(Ok(admitted))
    }

    /// Checks `hits` and counts the request at every level when admitted.
    pub async fn check_and_count(&self, hits: &[Hit], now: u64) -> Result<Admitted, Refused> {
        let counted: Vec<(&Hit, Quota)> = hits.iter().filter_map(|h| h.quota.map(|q| (h, q))).collect();
        if counted.is_empty() {
            return Ok(Admitted::default());
        }
        if now_ms() < self.degraded_until.load(Ordering::Relaxed) {
            return self.degraded(hits, now);
        }
        let none = HashSet::new();
        if let Some(d) = self.decide(&counted, now, &none) {
            return self.note(d);
        }
        // One deadline for waiting on the refill in progress and for the
        // store call: no request waits longer than the timeout.
        let deadline = tokio::time::Instant::now() + self.settings.timeout;
        let Ok(_refill) = tokio::time::timeout_at(deadline, self.refill.lock()).await else {
            // Another request's store call is slow: this one is decided by the failure mode.
            return self.degraded(hits, now);
        };
        if now_ms() < self.degraded_until.load(Ordering::Relaxed) {
            return self.degraded(hits, now);
        }
        // A counter can be spent by a concurrent request while a lease for
        // another one is being fetched: fetch again (bounded), never admit
        // a request that was not counted.
        for _ in 0..3 {
            if let Some(d) = self.decide(&counted, now, &none) {
                return self.note(d);
            }
            let reqs: Vec<LeaseRequest> = {
                let leases = self.leases.lock();
                counted
                    .iter()
                    .filter(|(h, _)| {
                        !leases.get(h.key.as_str()).is_some_and(|l| l.end > now && (l.tokens > 0 || l.exhausted))
                    })
                    .map(|(h, q)| LeaseRequest {
                        key: h.key.clone(),
                        limit: q.limit,
                        window_secs: q.window_secs,
                        want: self.lease_size(q.limit),
                    })
                    .collect()
            };
            self.stats.store_calls.fetch_add(1, Ordering::Relaxed);
            let replies = match tokio::time::timeout_at(deadline, self.store.take(&reqs)).await {
                Ok(Ok(r)) if r.len() == reqs.len() => r,
                Ok(Ok(r)) => return self.failed(format!("{} replies to {} requests", r.len(), reqs.len()), hits, now),
                Ok(Err(e)) => return self.failed(e.to_string(), hits, now),
                Err(_) => return self.failed(format!("no answer within {:?}", self.settings.timeout), hits, now),
            };
            if self.stats.degraded.swap(false, Ordering::Relaxed) {
                tracing::info!("rate-limit store reachable again: shared counting resumed");
            }
            {
                let mut leases = self.leases.lock();
                if leases.len() as u64 > self.prune_at.load(Ordering::Relaxed) {
                    leases.retain(|_, l| l.end > now);
                    self.prune_at.store((leases.len() as u64 * 2).max(1024), Ordering::Relaxed);
                }
                for (req, rep) in reqs.iter().zip(&replies) {
                    let l = leases.entry(req.key.clone()).or_insert(Lease {
                        end: 0,
                        tokens: 0,
                        exhausted: false,
                        counter: 0,
                    });
                    if l.end != rep.window_end {
                        *l = Lease { end: rep.window_end, tokens: 0, exhausted: false, counter: 0 };
                    }
                    l.tokens += rep.granted;
                    l.counter = rep.counter;
                    l.exhausted = rep.granted < req.want;
                }
            }
            let fresh: HashSet<&str> = reqs.iter().map(|r| r.key.as_str()).collect();
            if let Some(d) = self.decide(&counted, now, &fresh) {
                return self.note(d);
            }
        }
        // Still not decidable (counters spent under it three times): the failure mode decides.
        self.degraded(hits, now)
    }

    fn note(&self, d: Result<Admitted, Refused>) -> Result<Admitted, Refused> {
        if d.is_ok() {
            self.stats.admitted.fetch_add(1, Ordering::Relaxed);
        }
        d
    }

    fn failed(&self, why: String, hits: &[Hit], now: u64) -> Result<Admitted, Refused> {
        self.stats.store_errors.fetch_add(1, Ordering::Relaxed);
        self.degraded_until.store(now_ms() + RETRY_AFTER_FAILURE.as_millis() as u64, Ordering::Relaxed);
        if !self.stats.degraded.swap(true, Ordering::Relaxed) {
            tracing::warn!(error = %why, mode = ?self.settings.failure_mode, "rate-limit store unreachable: counting by the failure mode");
        }
        self.degraded(hits, now)
    }

    /// The failure mode's decision.
    fn degraded(&self, hits: &[Hit], now: u64) -> Result<Admitted, Refused> {
        self.stats.degraded_decisions.fetch_add(1, Ordering::Relaxed);
        match self.settings.failure_mode {
            FailureMode::Open => Ok(Admitted::default()),
            FailureMode::Closed => Err(Refused::Unavailable),
            FailureMode::Local => {
                let n = u64::from(self.settings.replicas.max(1));
                let local: Vec<Hit> = hits
                    .iter()
                    .map(|h| Hit { quota: h.quota.map(|q| Quota { limit: (q.limit / n).max(1), ..q }), ..h.clone() })
                    .collect();
                self.fallback.check_and_count(&local, now).map_err(Refused::Throttled)
            }
        }
    }
}

/// The counting backend in use.
pub enum Limiter {
    /// In memory: exact for one enforcer.
    Memory(MemoryLimiter),
    /// Shared through quota leases.
    Leased(LeasedLimiter),
}

impl Default for Limiter {
    fn default() -> Self {
        Limiter::Memory(MemoryLimiter::default())
    }
}

impl Limiter {
    /// Checks `hits` and counts the request at every level when admitted.
    pub async fn check_and_count(&self, hits: &[Hit], now: u64) -> Result<Admitted, Refused> {
        match self {
            Limiter::Memory(m) => m.check_and_count(hits, now).map_err(Refused::Throttled),
            Limiter::Leased(l) => l.check_and_count(hits, now).await,
        }
    }

    /// The shared limiter's counts, when shared.
    pub fn stats(&self) -> Option<Arc<LeaseStats>> {
        match self {
            Limiter::Memory(_) => None,
            Limiter::Leased(l) => Some(Arc::clone(&l.stats)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ratelimit::Level;
    use futures::FutureExt;

    /// The store's semantics in memory (the Redis script's, for unit tests
    /// of the accounting; integration/tests/throttling_redis.rs runs the real one).
    #[derive(Default)]
    struct Counters {
        map: Mutex<HashMap<(String, u64), u64>>,
        calls: AtomicU64,
        down: AtomicBool,
        now: AtomicU64,
    }

    impl LeaseStore for Counters {
        fn take<'a>(&'a self, reqs: &'a [LeaseRequest]) -> BoxFuture<'a, Result<Vec<LeaseReply>, StoreError>> {
            async move {
                self.calls.fetch_add(1, Ordering::Relaxed);
                if self.down.load(Ordering::Relaxed) {
                    return Err(StoreError("connection refused".into()));
                }
                let now = self.now.load(Ordering::Relaxed);
                let mut map = self.map.lock();
                Ok(reqs
                    .iter()
                    .map(|r| {
                        let start = now - now % r.window_secs;
                        let c = map.entry((r.key.clone(), start)).or_insert(0);
                        let granted = r.want.min(r.limit.saturating_sub(*c));
                        *c += granted;
                        LeaseReply { granted, counter: *c, window_end: start + r.window_secs }
                    })
                    .collect())
            }
            .boxed()
        }
    }

    fn limiter(store: &Arc<Counters>, replicas: u32, mode: FailureMode) -> LeasedLimiter {
        let s: Arc<dyn LeaseStore> = Arc::clone(store) as Arc<dyn LeaseStore>;
        LeasedLimiter::new(
            s,
            LeaseSettings { accuracy: 0.02, replicas, timeout: Duration::from_secs(1), failure_mode: mode },
        )
    }

    fn hit(key: &str, limit: u64) -> Hit {
        Hit::new(Level::Api, key.into(), Some(Quota { limit, window_secs: 60 }), "P".into())
    }

    #[tokio::test]
    async fn three_replicas_never_exceed_the_limit_and_lose_at_most_the_accuracy() {
        let store = Arc::new(Counters::default());
        store.now.store(600, Ordering::Relaxed);
        let replicas: Vec<LeasedLimiter> = (0..3).map(|_| limiter(&store, 3, FailureMode::Local)).collect();
        let hits = [hit("api", 5000)];
        let mut admitted = 0u64;
        // 2× the limit, round robin over the replicas.
        for i in 0..10_000usize {
            if replicas[i % 3].check_and_count(&hits, 600).await.is_ok() {
                admitted += 1;
            }
        }
        assert!(admitted <= 5000, "{admitted}");
        assert!(admitted >= 4900, "at most 2 % lost: {admitted}");
        let calls = store.calls.load(Ordering::Relaxed);
        assert!(calls as f64 / admitted as f64 <= 0.05, "{calls} store calls for {admitted} admitted");
        // The next window starts afresh (store's clock).
        store.now.store(660, Ordering::Relaxed);
        assert!(replicas[0].check_and_count(&hits, 660).await.is_ok());
    }

    #[tokio::test]
    async fn small_limits_are_exact_and_a_refused_request_takes_nothing() {
        let store = Arc::new(Counters::default());
        let replicas: Vec<LeasedLimiter> = (0..3).map(|_| limiter(&store, 3, FailureMode::Local)).collect();
        let (api, app) = (hit("api", 50), Hit { level: Level::Application, ..hit("app", 10) });
        let hits = [api, app];
        let ok = futures::future::join_all((0..30).map(|i| replicas[i % 3].check_and_count(&hits, 0))).await;
        assert_eq!(ok.iter().filter(|r| r.is_ok()).count(), 10, "the application's 10, exactly");
        let refused = ok.iter().find_map(|r| r.clone().err()).expect("refusals");
        assert!(matches!(refused, Refused::Throttled(t) if t.level() == Level::Application && t.reset_at() == 60));
        // The API counter holds only what was leased: 10 spent plus unspent leases, never the 20 refused.
        let api_counter = store.map.lock().get(&("api".to_string(), 0)).copied().unwrap_or(0);
        assert!(api_counter <= 10 + 3, "{api_counter}");
    }

    #[tokio::test]
    async fn a_store_failure_falls_back_to_the_failure_mode_and_recovers() {
        let store = Arc::new(Counters::default());
        store.down.store(true, Ordering::Relaxed);
        let local = limiter(&store, 2, FailureMode::Local);
        let hits = [hit("api", 10)];
        let admitted = futures::future::join_all((0..10).map(|_| local.check_and_count(&hits, 0))).await;
        assert_eq!(admitted.iter().filter(|r| r.is_ok()).count(), 5, "limit ÷ replicas while the store is away");
        assert_eq!(store.calls.load(Ordering::Relaxed), 1, "the store is skipped after a failure");
        assert!(local.stats.degraded.load(Ordering::Relaxed));
        assert!(limiter(&store, 2, FailureMode::Open).check_and_count(&hits, 0).await.is_ok());
        assert_eq!(limiter(&store, 2, FailureMode::Closed).check_and_count(&hits, 0).await, Err(Refused::Unavailable));
        // Back: after the retry delay the store is used again.
        store.down.store(false, Ordering::Relaxed);
        local.degraded_until.store(0, Ordering::Relaxed);
        assert!(local.check_and_count(&hits, 0).await.is_ok());
        assert!(!local.stats.degraded.load(Ordering::Relaxed));
    }

    /// A store whose calls for counter `a` wait for a permit (a slow refill).
    struct Gated {
        inner: Counters,
        entered: tokio::sync::Notify,
        gate: tokio::sync::Semaphore,
    }

    impl LeaseStore for Gated {
        fn take<'a>(&'a self, reqs: &'a [LeaseRequest]) -> BoxFuture<'a, Result<Vec<LeaseReply>, StoreError>> {
            async move {
                if reqs.iter().any(|r| r.key == "a") {
                    self.entered.notify_one();
                    let _permit = self.gate.acquire().await.map_err(|e| StoreError(e.to_string()))?;
                }
                self.inner.take(reqs).await
            }
            .boxed()
        }
    }

    /// A gated store and one replica's limiter over it (failure mode `closed`).
    fn gated(timeout: Duration) -> (Arc<Gated>, Arc<LeasedLimiter>) {
        let store = Arc::new(Gated {
            inner: Counters::default(),
            entered: tokio::sync::Notify::new(),
            gate: tokio::sync::Semaphore::new(0),
        });
        let s: Arc<dyn LeaseStore> = Arc::clone(&store) as Arc<dyn LeaseStore>;
        let settings = LeaseSettings { accuracy: 0.02, replicas: 1, timeout, failure_mode: FailureMode::Closed };
        (store, Arc::new(LeasedLimiter::new(s, settings)))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_counter_spent_during_another_refill_is_leased_again_not_skipped() {
        let (store, l) = gated(Duration::from_secs(5));
        let b = hit("b", 100); // lease of 2
        assert!(l.check_and_count(std::slice::from_ref(&b), 0).await.is_ok(), "b: 2 leased, 1 left");
        // R1 needs a lease for a (slow) and takes b's last token later; R2 spends b meanwhile.
        let r1 = {
            let (l, hits) = (Arc::clone(&l), vec![hit("a", 100), b.clone()]);
            tokio::spawn(async move { l.check_and_count(&hits, 0).await })
        };
        store.entered.notified().await;
        assert!(l.check_and_count(std::slice::from_ref(&b), 0).await.is_ok(), "R2 spends b's last token");
        store.gate.add_permits(1);
        assert!(r1.await.expect("task").is_ok());
        let b_counter = store.inner.map.lock().get(&("b".to_string(), 0)).copied();
        assert_eq!(b_counter, Some(4), "R1 was counted at b: a second lease of 2 was taken for it");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_request_waits_past_the_timeout_behind_a_slow_refill() {
        let (store, l) = gated(Duration::from_millis(100));
        let slow = {
            let l = Arc::clone(&l);
            tokio::spawn(async move { l.check_and_count(&[hit("a", 100)], 0).await })
        };
        store.entered.notified().await;
        let started = std::time::Instant::now();
        assert_eq!(l.check_and_count(&[hit("c", 100)], 0).await, Err(Refused::Unavailable), "the failure mode decides");
        assert!(started.elapsed() < Duration::from_millis(500), "waited {:?}", started.elapsed());
        assert_eq!(slow.await.expect("task"), Err(Refused::Unavailable), "the slow call itself timed out");
    }
}
