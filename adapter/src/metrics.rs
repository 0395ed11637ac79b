//! The adapter's Prometheus metrics (`[adapter.metrics]`, port 19085 as in
//! Choreo Connect). Gauges of current state (APIs per label, connected
//! clients) are read from the hub at each scrape; counters and histograms
//! are updated where things happen (`ads.rs`, `enforcer/service.rs`,
//! `hub.rs`, `management/mod.rs`).
//!
//! | name | type | labels |
//! | --- | --- | --- |
//! | `adapter_apis_deployed` | gauge | `label` (gateway environment) |
//! | `adapter_xds_clients` | gauge | `kind` = router, enforcer |
//! | `adapter_xds_responses_total` | counter | `kind`, `type` (cds, eds, lds, srds, rds; config, apis, ...) |
//! | `adapter_xds_nacks_total` | counter | `kind`, `type` |
//! | `adapter_xds_push_to_ack_seconds` | histogram | `kind`: from a new snapshot to the client's ACK of all of it |
//! | `adapter_deploy_requests_total` | counter | `result` = success, invalid, conflict, unauthorized, not_found, error |
//! | `adapter_snapshot_build_seconds` | histogram | building and checking the changed labels' snapshots |

use std::collections::BTreeMap;
use std::sync::Arc;

use gateway_runtime::metrics::latency_buckets;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::hub::Hub;

/// `{label}`
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LabelLabels {
    /// Gateway environment.
    pub label: String,
}

/// `{kind}`
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// `router` or `enforcer`.
    pub kind: &'static str,
}

/// `{kind, type}`
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeLabels {
    /// `router` or `enforcer`.
    pub kind: &'static str,
    /// Resource type's short name.
    pub r#type: &'static str,
}

/// `{result}`
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// What became of the request.
    pub result: &'static str,
}

/// The adapter's metrics.
pub struct Metrics {
    registry: Registry,
    apis: Family<LabelLabels, Gauge>,
    clients: Family<KindLabels, Gauge>,
    /// xDS responses sent.
    pub responses: Family<TypeLabels, Counter>,
    /// NACKs received.
    pub nacks: Family<TypeLabels, Counter>,
    /// From a new snapshot to its full ACK.
    pub push_to_ack: Family<KindLabels, Histogram>,
    /// Deploy requests (`POST /apis`) by result.
    pub deploys: Family<ResultLabels, Counter>,
    /// Snapshot builds.
    pub snapshot_build: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("adapter");
        let apis = Family::<LabelLabels, Gauge>::default();
        registry.register("apis_deployed", "APIs deployed, per gateway environment (label)", apis.clone());
        let clients = Family::<KindLabels, Gauge>::default();
        registry.register("xds_clients", "Routers and enforcers connected over xDS", clients.clone());
        let responses = Family::<TypeLabels, Counter>::default();
        registry.register("xds_responses", "xDS responses sent, per client kind and resource type", responses.clone());
        let nacks = Family::<TypeLabels, Counter>::default();
        registry.register("xds_nacks", "xDS responses a client rejected (NACK)", nacks.clone());
        let push_to_ack =
            Family::<KindLabels, Histogram>::new_with_constructor(|| Histogram::new(latency_buckets()) as Histogram);
        registry.register_with_unit(
            "xds_push_to_ack",
            "Time from a new configuration to the client's acknowledgement of all of it",
            Unit::Seconds,
            push_to_ack.clone(),
        );
        let deploys = Family::<ResultLabels, Counter>::default();
        registry.register("deploy_requests", "API deploy requests (POST /apis), by result", deploys.clone());
        let snapshot_build = Histogram::new(latency_buckets());
        registry.register_with_unit(
            "snapshot_build",
            "Time to build and check the changed snapshots after a change",
            Unit::Seconds,
            snapshot_build.clone(),
        );
        Metrics { registry, apis, clients, responses, nacks, push_to_ack, deploys, snapshot_build }
    }
}

impl Metrics {
    /// Refreshes the state gauges from `hub` and encodes everything.
    pub fn render(&self, hub: &Hub) -> Result<String, std::fmt::Error> {
        let mut per_label: BTreeMap<String, i64> = BTreeMap::new();
        hub.read(|s| {
            for label in s.gateway.labels() {
                per_label.entry(label.to_string()).or_default();
            }
            for (label, _, _) in s.gateway.deployments() {
                *per_label.entry(label.to_string()).or_default() += 1;
            }
        });
        self.apis.clear();
        for (label, n) in per_label {
            self.apis.get_or_create(&LabelLabels { label }).set(n);
        }
        let routers = i64::try_from(hub.status.streams().len()).unwrap_or(i64::MAX);
        let enforcers = hub.status.enforcer_instances();
        self.clients.get_or_create(&KindLabels { kind: "router" }).set(routers);
        self.clients.get_or_create(&KindLabels { kind: "enforcer" }).set(i64::try_from(enforcers).unwrap_or(i64::MAX));
        gateway_runtime::metrics::encode(&self.registry)
    }

    /// Counts a deploy request by its response status.
    pub fn count_deploy(&self, status: u16) {
        let result = match status {
            200..=299 => "success",
            400 | 413 | 415 | 422 => "invalid",
            401 | 403 => "unauthorized",
            404 => "not_found",
            409 => "conflict",
            _ => "error",
        };
        self.deploys.get_or_create(&ResultLabels { result }).inc();
    }
}

/// Serves the metrics of `hub` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, hub: Arc<Hub>) -> std::io::Result<()> {
    gateway_runtime::metrics::serve(listener, Arc::new(move || hub.metrics.render(&hub))).await
}
