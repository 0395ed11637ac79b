//! Rate limiting's counting core: Choreo Connect's levels with WSO2's
//! semantics, counted in memory (one enforcer: exact).
//!
//! * **Windows** are fixed and aligned to the clock (WSO2's documented
//!   semantics: a 10/min limit resets at every full minute), so the reset
//!   time, and `Retry-After`, is the same on every replica.
//! * **A request is checked at every level first, then counted at every
//!   level**, under the locks of all its counters, so a throttled request
//!   consumes nothing anywhere (as in Choreo Connect, where only allowed
//!   requests are published to the Traffic Manager).
//! * **Levels** keep Choreo Connect's order and codes: API (900800) or else
//!   every matched resource (900802), subscription (900804), application
//!   (900803), custom (900806); blocking conditions answer 900805 before
//!   anything is counted. `Unlimited` is not counted.
//!
//! The shared (Redis) backend and the policy catalogue build on this module.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};

use crate::deny::Deny;

/// A quota: at most `limit` requests per window of `window_secs` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Requests admitted per window.
    pub limit: u64,
    /// Window length in seconds (1 s to days).
    pub window_secs: u64,
}

impl Quota {
    /// `limit` per `unit_time` × `time_unit` (WSO2's `sec`, `min`, `hour`,
    /// `day`, also spelled out and in capitals: Choreo's `SECOND`, `MINUTE`...).
    /// `None` for an unknown unit or a zero length.
    pub fn new(limit: u64, unit_time: u64, time_unit: &str) -> Option<Quota> {
        let unit = match time_unit.trim().to_ascii_lowercase().as_str() {
            "s" | "sec" | "second" | "seconds" => 1,
            "m" | "min" | "minute" | "minutes" => 60,
            "h" | "hour" | "hours" => 3600,
            "d" | "day" | "days" => 86_400,
            _ => return None,
        };
        let window_secs = unit_time.checked_mul(unit).filter(|w| *w > 0)?;
        Some(Quota { limit, window_secs })
    }

    /// The window holding `now` (Unix seconds): `[start, end)`, aligned to
    /// multiples of its length since the Unix epoch.
    pub fn window(&self, now: u64) -> (u64, u64) {
        let start = now - now % self.window_secs;
        (start, start + self.window_secs)
    }
}

/// Choreo Connect's throttling levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Level {
    /// The API's tier (all consumers).
    Api,
    /// A resource's tier (when the API has none).
    Resource,
    /// The subscription's tier (per application and API).
    Subscription,
    /// The application's tier (per application and user).
    Application,
    /// A custom policy's key template.
    Custom,
}

impl Level {
    /// The error code of a request throttled at this level.
    pub fn code(self) -> &'static str {
        match self {
            Level::Api => "900800",
            Level::Resource => "900802",
            Level::Subscription => "900804",
            Level::Application => "900803",
            Level::Custom => "900806",
        }
    }
}

/// One counter a request is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// The level (decides the error code).
    pub level: Level,
    /// Choreo Connect's key for the level, e.g. `<context>:<version>`.
    pub key: String,
    /// The quota; `None` is `Unlimited` (not counted).
    pub quota: Option<Quota>,
    /// Refuse once the quota is spent; `false` counts only (a subscription
    /// tier without `stopOnQuotaReach`).
    pub enforce: bool,
    /// The policy's name (for rate-limit headers).
    pub policy: Arc<str>,
}

impl Hit {
    /// An enforced counter.
    pub fn new(level: Level, key: String, quota: Option<Quota>, policy: Arc<str>) -> Hit {
        Hit { level, key, quota, enforce: true, policy }
    }
}

/// Where a request stands at one counter once admitted or refused: what
/// the rate-limit headers report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    /// The level.
    pub level: Level,
    /// The policy's name.
    pub policy: Arc<str>,
    /// Its quota.
    pub quota: Quota,
    /// Requests left in the window (after this one, when admitted).
    pub remaining: u64,
    /// End of the window, Unix seconds.
    pub reset_at: u64,
}

/// An admitted request: the enforced counters, the one with the fewest
/// requests left first, and whether a count-only quota was exceeded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Admitted {
    /// Every enforced counter, the tightest first.
    pub usage: Vec<Usage>,
    /// A count-only (subscription, `stopOnQuotaReach = false`) quota is spent.
    pub over_quota: bool,
}

/// A throttled request: the level and when its window ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Throttled {
    /// The counter whose quota is spent (the first in Choreo Connect's
    /// order); `remaining` is 0.
    pub usage: Usage,
}

impl Throttled {
    /// The level.
    pub fn level(&self) -> Level {
        self.usage.level
    }

    /// End of the window, Unix seconds.
    pub fn reset_at(&self) -> u64 {
        self.usage.reset_at
    }

    /// Choreo Connect's answer: 429 with the level's code and
    /// `Retry-After` as an HTTP-date at the window's end.
    pub fn deny(&self) -> Deny {
        Deny::throttled(self.usage.level.code(), http_date(self.usage.reset_at))
    }
}

/// Which rate-limit headers to write (`[enforcer.throttling.headers]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderKinds {
    /// `Retry-After` on throttled responses.
    pub retry_after: bool,
    /// `X-RateLimit-*`, Envoy's DRAFT_VERSION_03 format.
    pub x_rate_limit: bool,
    /// `RateLimit-Policy` / `RateLimit`, draft-ietf-httpapi-ratelimit-headers-11.
    pub ietf: bool,
}

impl Default for HeaderKinds {
    fn default() -> Self {
        HeaderKinds { retry_after: true, x_rate_limit: false, ietf: false }
    }
}

fn sf_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars().filter(|c| (' '..='~').contains(c)) {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// The rate-limit headers for `usage` (tightest first) at `now`.
///
/// * `X-RateLimit-Limit: <limit of the tightest>, <limit>;w=<window>;name="<policy>", ...`,
///   `X-RateLimit-Remaining`, `X-RateLimit-Reset` (seconds), as Envoy's
///   ratelimit filter writes them with `DRAFT_VERSION_03`.
/// * `RateLimit-Policy: "<policy>";q=<limit>;w=<window>, ...` and
///   `RateLimit: "<policy>";r=<remaining>;t=<seconds to reset>` (the tightest).
pub fn rate_limit_headers(usage: &[Usage], now: u64, kinds: HeaderKinds) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let Some(tight) = usage.first() else { return out };
    let reset = tight.reset_at.saturating_sub(now);
    if kinds.x_rate_limit {
        let mut limit = tight.quota.limit.to_string();
        for u in usage {
            limit.push_str(&format!(", {};w={};name={}", u.quota.limit, u.quota.window_secs, sf_string(&u.policy)));
        }
        out.push(("x-ratelimit-limit", limit));
        out.push(("x-ratelimit-remaining", tight.remaining.to_string()));
        out.push(("x-ratelimit-reset", reset.to_string()));
    }
    if kinds.ietf {
        let policies: Vec<String> = usage
            .iter()
            .map(|u| format!("{};q={};w={}", sf_string(&u.policy), u.quota.limit, u.quota.window_secs))
            .collect();
        out.push(("ratelimit-policy", policies.join(", ")));
        out.push(("ratelimit", format!("{};r={};t={}", sf_string(&tight.policy), tight.remaining, reset)));
    }
    out
}

const STRIPES: usize = 64;

/// A key's current window and what it counted.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: u64,
    end: u64,
    count: u64,
}

/// Key → its current window (an earlier window is replaced, not kept).
type Counters = HashMap<String, Window>;

/// Counters in memory: exact for one enforcer.
pub struct MemoryLimiter {
    stripes: Vec<Mutex<Counters>>,
    hasher: std::hash::RandomState,
}

impl Default for MemoryLimiter {
    fn default() -> Self {
        MemoryLimiter {
            stripes: (0..STRIPES).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: std::hash::RandomState::new(),
        }
    }
}

impl MemoryLimiter {
    fn stripe(&self, key: &str) -> usize {
        (self.hasher.hash_one(key) as usize) % STRIPES
    }

    /// Checks `hits` in order at `now` (Unix seconds); when every enforced
    /// quota has room, counts the request at every level and admits it, else
    /// counts nothing and says which level refused.
    pub fn check_and_count(&self, hits: &[Hit], now: u64) -> Result<Admitted, Throttled> {
        let counted: Vec<(&Hit, Quota, usize)> =
            hits.iter().filter_map(|h| h.quota.map(|q| (h, q, self.stripe(&h.key)))).collect();
        if counted.is_empty() {
            return Ok(Admitted::default());
        }
        // Every stripe involved, locked in index order (no deadlock), so the
        // check and the count are one step for this request.
        let mut order: Vec<usize> = counted.iter().map(|(_, _, s)| *s).collect();
        order.sort_unstable();
        order.dedup();
        let mut guards: Vec<MutexGuard<'_, Counters>> = order.iter().map(|&s| self.stripes[s].lock()).collect();
        let at = |s: usize| order.binary_search(&s).unwrap_or(0);
        let mut used = Vec::with_capacity(counted.len());
        for (hit, quota, s) in &counted {
            let (start, end) = quota.window(now);
            let n = guards[at(*s)].get(&hit.key).filter(|w| w.start == start).map_or(0, |w| w.count);
            if hit.enforce && n >= quota.limit {
                let usage = Usage {
                    level: hit.level,
                    policy: Arc::clone(&hit.policy),
                    quota: *quota,
                    remaining: 0,
                    reset_at: end,
                };
                return Err(Throttled { usage });
            }
            used.push(n);
        }
        let mut admitted = Admitted::default();
        for ((hit, quota, s), n) in counted.iter().zip(used) {
            let (start, end) = quota.window(now);
            let map = &mut guards[at(*s)];
            match map.get_mut(&hit.key) {
                Some(w) if w.start == start => w.count += 1,
                Some(w) => *w = Window { start, end, count: 1 },
                None => {
                    // A new key: the stripe's ended windows go first.
                    map.retain(|_, w| w.end > now);
                    map.insert(hit.key.clone(), Window { start, end, count: 1 });
                }
            }
            if hit.enforce {
                admitted.usage.push(Usage {
                    level: hit.level,
                    policy: Arc::clone(&hit.policy),
                    quota: *quota,
                    remaining: quota.limit - n - 1,
                    reset_at: end,
                });
            } else if n >= quota.limit {
                admitted.over_quota = true;
            }
        }
        admitted.usage.sort_by_key(|u| u.remaining);
        Ok(admitted)
    }

    /// Requests counted for `key` in the window holding `now`.
    pub fn count(&self, key: &str, quota: Quota, now: u64) -> u64 {
        let (start, _) = quota.window(now);
        self.stripes[self.stripe(key)].lock().get(key).filter(|w| w.start == start).map_or(0, |w| w.count)
    }
}

/// An HTTP-date (IMF-fixdate), as Choreo Connect writes `Retry-After`:
/// `Sun, 06 Dec 2026 01:11:00 GMT`.
pub fn http_date(unix: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let days = unix / 86_400;
    let secs = unix % 86_400;
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        day,
        MONTHS[(month - 1) as usize],
        year,
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(level: Level, key: &str, limit: u64, secs: u64) -> Hit {
        Hit::new(level, key.into(), Some(Quota { limit, window_secs: secs }), "P".into())
    }

    fn throttled(level: Level, limit: u64, secs: u64, reset_at: u64) -> Throttled {
        Throttled {
            usage: Usage {
                level,
                policy: "P".into(),
                quota: Quota { limit, window_secs: secs },
                remaining: 0,
                reset_at,
            },
        }
    }

    #[test]
    fn windows_are_aligned_to_the_clock() {
        let q = Quota::new(10, 1, "min").expect("quota");
        assert_eq!(q.window(125), (120, 180));
        assert_eq!(q.window(180), (180, 240));
        assert_eq!(Quota::new(5, 2, "HOUR").expect("quota").window(7300), (7200, 14_400));
        assert_eq!(Quota::new(1, 1, "DAY").expect("quota").window(1_796_519_460).1 % 86_400, 0);
        assert_eq!(Quota::new(1, 0, "min"), None);
        assert_eq!(Quota::new(1, 1, "fortnight"), None);
    }

    #[test]
    fn http_dates_as_choreo_connect_writes_them() {
        assert_eq!(http_date(1_796_519_460), "Sun, 06 Dec 2026 01:11:00 GMT");
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(951_868_799), "Tue, 29 Feb 2000 23:59:59 GMT");
        assert_eq!(http_date(1_735_646_400), "Tue, 31 Dec 2024 12:00:00 GMT");
    }

    #[test]
    fn exactly_the_limit_per_window_then_the_next_window_starts_afresh() {
        let l = MemoryLimiter::default();
        let hits = [hit(Level::Api, "/pets:1.0", 3, 60)];
        let admitted = (0..6).filter(|_| l.check_and_count(&hits, 125).is_ok()).count();
        assert_eq!(admitted, 3);
        assert_eq!(l.check_and_count(&hits, 179), Err(throttled(Level::Api, 3, 60, 180)));
        assert!(l.check_and_count(&hits, 180).is_ok(), "a new minute");
        assert_eq!(l.count("/pets:1.0", Quota { limit: 3, window_secs: 60 }, 180), 1);
    }

    #[test]
    fn a_throttled_request_consumes_nothing_at_any_level() {
        let l = MemoryLimiter::default();
        let (api, app) = (hit(Level::Api, "api", 5, 60), hit(Level::Application, "app:alice", 2, 60));
        let hits = [api.clone(), app.clone()];
        assert!(l.check_and_count(&hits, 0).is_ok());
        assert!(l.check_and_count(&hits, 0).is_ok());
        let t = l.check_and_count(&hits, 0).expect_err("the application's quota is spent");
        assert_eq!((t.level(), t.level().code()), (Level::Application, "900803"));
        assert_eq!(l.count("api", api.quota.expect("quota"), 0), 2, "the refused request was not counted at the API");
        // The first level in Choreo Connect's order decides.
        let l = MemoryLimiter::default();
        let hits = [hit(Level::Api, "a", 1, 60), hit(Level::Subscription, "s", 1, 60)];
        assert!(l.check_and_count(&hits, 0).is_ok());
        assert_eq!(l.check_and_count(&hits, 0).map_err(|t| t.level()), Err(Level::Api));
    }

    #[test]
    fn unlimited_is_not_counted() {
        let l = MemoryLimiter::default();
        let hits = [Hit::new(Level::Api, "free".into(), None, "Unlimited".into())];
        assert!((0..1000).all(|_| l.check_and_count(&hits, 0).is_ok()));
    }

    #[test]
    fn exact_under_concurrency_at_twice_the_limit() {
        let l = std::sync::Arc::new(MemoryLimiter::default());
        let admitted = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let (l, admitted) = (std::sync::Arc::clone(&l), std::sync::Arc::clone(&admitted));
                std::thread::spawn(move || {
                    // Two levels sharing a request, several keys per stripe set.
                    let hits =
                        [hit(Level::Api, "api", 1000, 60), hit(Level::Application, &format!("app:{}", t % 2), 700, 60)];
                    for _ in 0..250 {
                        if l.check_and_count(&hits, 1_000_000).is_ok() {
                            admitted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        // 2000 offered; the API admits 1000 at most, each application 700.
        assert_eq!(admitted.load(std::sync::atomic::Ordering::Relaxed), 1000);
        assert_eq!(l.count("api", Quota { limit: 1000, window_secs: 60 }, 1_000_000), 1000);
        let apps = l.count("app:0", Quota { limit: 700, window_secs: 60 }, 1_000_000)
            + l.count("app:1", Quota { limit: 700, window_secs: 60 }, 1_000_000);
        assert_eq!(apps, 1000, "every admitted request counted once at the application level too");
    }

    #[test]
    fn ended_windows_are_dropped() {
        let l = MemoryLimiter::default();
        for minute in 0..100u64 {
            assert!(l.check_and_count(&[hit(Level::Api, "api", 10, 60)], minute * 60).is_ok());
        }
        let held: usize = l.stripes.iter().map(|s| s.lock().len()).sum();
        assert_eq!(held, 1, "only the current window is kept");
    }

    #[test]
    fn throttled_and_blocked_answers_are_choreo_connects() {
        let d = throttled(Level::Subscription, 5, 60, 1_796_519_460).deny();
        assert_eq!(d.status, 429);
        assert_eq!(
            d.body(),
            r#"{"error_message":"Message throttled out","code":"900804","error_description":"You have exceeded your quota"}"#
        );
        assert_eq!(d.headers, vec![("retry-after", "Sun, 06 Dec 2026 01:11:00 GMT".to_string())]);
        let b = Deny::blocked();
        assert_eq!(b.status, 403);
        assert_eq!(
            b.body(),
            r#"{"error_message":"Message blocked","code":"900805","error_description":"You have been blocked from accessing the resource"}"#
        );
        assert!(b.headers.is_empty(), "no Retry-After on a block");
    }

    #[test]
    fn count_only_quotas_admit_and_say_so() {
        let l = MemoryLimiter::default();
        let mut sub = hit(Level::Subscription, "s", 1, 60);
        sub.enforce = false;
        let hits = [hit(Level::Api, "a", 10, 60), sub];
        assert_eq!(l.check_and_count(&hits, 0).map(|a| a.over_quota), Ok(false));
        let a = l.check_and_count(&hits, 0).expect("admitted past the count-only quota");
        assert!(a.over_quota);
        assert_eq!(a.usage.len(), 1, "only enforced quotas are reported");
        assert_eq!(a.usage[0].remaining, 8);
    }

    #[test]
    fn rate_limit_headers_in_both_formats() {
        let usage = vec![
            Usage {
                level: Level::Subscription,
                policy: "Gold".into(),
                quota: Quota { limit: 10, window_secs: 60 },
                remaining: 3,
                reset_at: 120,
            },
            Usage {
                level: Level::Api,
                policy: "10KPerMin".into(),
                quota: Quota { limit: 10_000, window_secs: 60 },
                remaining: 9000,
                reset_at: 120,
            },
        ];
        let all = HeaderKinds { retry_after: true, x_rate_limit: true, ietf: true };
        let h = rate_limit_headers(&usage, 100, all);
        let get = |n: &str| h.iter().find(|(k, _)| *k == n).map(|(_, v)| v.as_str());
        assert_eq!(get("x-ratelimit-limit"), Some(r#"10, 10;w=60;name="Gold", 10000;w=60;name="10KPerMin""#));
        assert_eq!(get("x-ratelimit-remaining"), Some("3"));
        assert_eq!(get("x-ratelimit-reset"), Some("20"));
        assert_eq!(get("ratelimit-policy"), Some(r#""Gold";q=10;w=60, "10KPerMin";q=10000;w=60"#));
        assert_eq!(get("ratelimit"), Some(r#""Gold";r=3;t=20"#));
        assert!(rate_limit_headers(&usage, 100, HeaderKinds::default()).is_empty());
    }
}
