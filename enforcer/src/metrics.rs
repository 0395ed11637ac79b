//! The enforcer's Prometheus metrics, on `GET /metrics` of the metrics port
//! (`ENFORCER_METRICS_ADDRESS`, default `0.0.0.0:19086`).
//!
//! | name | type | labels |
//! | --- | --- | --- |
//! | `enforcer_checks_total` | counter | `decision` = allow, deny, error; `code` = Choreo Connect's error code of a denial (900901, ...), empty otherwise |
//! | `enforcer_check_duration_seconds` | histogram | |
//! | `enforcer_token_cache_hits_total`, `enforcer_token_cache_misses_total` | counter | |
//! | `enforcer_jwks_fetches_total` | counter | `result` = success, error |
//! | `enforcer_analytics_events_dropped_total` | counter | events lost because the sink was slower than the traffic |
//! | `enforcer_analytics_events_written_total` | counter | |

use std::sync::Arc;
use std::sync::atomic::Ordering;

use gateway_runtime::metrics::latency_buckets;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::analytics::Counters;

/// `{decision, code}`
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CheckLabels {
    /// allow, deny, error
    pub decision: &'static str,
    /// The error code of a denial.
    pub code: &'static str,
}

/// `{result}`
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// success, error
    pub result: &'static str,
}

/// The enforcer's metrics.
pub struct Metrics {
    registry: Registry,
    /// Checks by decision and code.
    pub checks: Family<CheckLabels, Counter>,
    /// Check latency.
    pub check_duration: Histogram,
    /// Key set fetches.
    pub jwks_fetches: Family<ResultLabels, Counter>,
}

/// Counters kept elsewhere (the token cache, the analytics pipeline), read at
/// each scrape.
struct Reads {
    analytics: Arc<Counters>,
    engine: Option<Arc<enforcer_core::Engine>>,
}

impl std::fmt::Debug for Reads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reads").field("analytics", &self.analytics).finish_non_exhaustive()
    }
}

impl Collector for Reads {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let cache = &enforcer_core::cache::STATS;
        for (name, help, value) in [
            ("token_cache_hits", "Token validations answered from the cache", cache.hits.load(Ordering::Relaxed)),
            (
                "token_cache_misses",
                "Token validations the cache could not answer",
                cache.misses.load(Ordering::Relaxed),
            ),
            (
                "analytics_events_dropped",
                "Analytics events dropped because the sink was slower than the traffic",
                self.analytics.dropped.load(Ordering::Relaxed),
            ),
            ("analytics_events_written", "Analytics events written", self.analytics.written.load(Ordering::Relaxed)),
        ] {
            let counter = ConstCounter::new(value);
            let metric = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            counter.encode(metric)?;
        }
        // Shared (Redis) throttling, when in use.
        if let Some(stats) = self.engine.as_ref().and_then(|e| e.memory.limiter.load().stats()) {
            for (name, help, value) in [
                ("throttle_store_calls", "Calls to the shared rate-limit store (Redis)", &stats.store_calls),
                (
                    "throttle_store_errors",
                    "Calls to the shared rate-limit store that failed or timed out",
                    &stats.store_errors,
                ),
                ("throttle_admitted_shared", "Requests admitted with shared counting", &stats.admitted),
                (
                    "throttle_degraded_decisions",
                    "Requests decided by [enforcer.throttling] failureMode while the store was away",
                    &stats.degraded_decisions,
                ),
            ] {
                let counter = ConstCounter::new(value.load(Ordering::Relaxed));
                let metric = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
                counter.encode(metric)?;
            }
            let gauge =
                prometheus_client::metrics::gauge::ConstGauge::new(i64::from(stats.degraded.load(Ordering::Relaxed)));
            let metric = encoder.encode_descriptor(
                "throttle_degraded",
                "1 while the shared rate-limit store is unreachable and the failure mode decides",
                None,
                gauge.metric_type(),
            )?;
            gauge.encode(metric)?;
        }
        Ok(())
    }
}

impl Metrics {
    /// The metrics, reading the analytics pipeline's counters and the engine's throttling counts.
    pub fn new(analytics: Arc<Counters>, engine: Option<Arc<enforcer_core::Engine>>) -> Metrics {
        let mut registry = Registry::with_prefix("enforcer");
        let checks = Family::<CheckLabels, Counter>::default();
        registry.register("checks", "ext_authz checks, by decision and error code", checks.clone());
        let check_duration = Histogram::new(latency_buckets());
        registry.register_with_unit(
            "check_duration",
            "Time to decide on an ext_authz check",
            Unit::Seconds,
            check_duration.clone(),
        );
        let jwks_fetches = Family::<ResultLabels, Counter>::default();
        registry.register("jwks_fetches", "Key set (JWKS) fetches, by result", jwks_fetches.clone());
        registry.register_collector(Box::new(Reads { analytics, engine }));
        Metrics { registry, checks, check_duration, jwks_fetches }
    }

    /// Metrics that count but are never served (tests, benchmarks).
    pub fn detached() -> Arc<Metrics> {
        Arc::new(Metrics::new(Arc::new(Counters::default()), None))
    }

    /// Counts one check.
    pub fn observe_check(&self, decision: &'static str, code: &'static str, seconds: f64) {
        self.checks.get_or_create(&CheckLabels { decision, code }).inc();
        self.check_duration.observe(seconds);
    }

    /// The OpenMetrics text.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        gateway_runtime::metrics::encode(&self.registry)
    }
}
