//! What the routers and enforcers hold: their streams, what they
//! acknowledged and refused, and per API whether every router applied it
//! (`GET /xds`, `GET /apis/status`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};

use gateway_model::Deployment;
use gateway_xds::stream::StreamStatus;
use parking_lot::Mutex;
use serde::Serialize;

use crate::enforcer::resources::Kind;

/// A connected Envoy.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamReport {
    /// Stream number (per adapter process).
    pub id: u64,
    /// Peer address.
    pub peer: String,
    /// Unix time in milliseconds.
    pub connected_at_ms: u64,
    /// The stream's protocol state.
    #[serde(flatten)]
    pub status: StreamStatus,
}

/// A connected enforcer's stream.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnforcerStreamReport {
    /// Stream number (per adapter process).
    pub id: u64,
    /// Peer address.
    pub peer: String,
    /// The enforcer's label.
    pub label: String,
    /// The enforcer's host name.
    pub instance: String,
    /// What the stream carries.
    pub kind: Kind,
    /// Unix time in milliseconds.
    pub connected_at_ms: u64,
    /// Version last sent.
    pub sent_version: String,
    /// Resources in the last response.
    pub sent_resources: usize,
    /// Version last acknowledged.
    pub acked_version: String,
    /// The last NACK's message, if the last response was refused.
    pub nack: Option<String>,
}

/// Every connected router and enforcer stream, and the NACK count.
pub struct Status {
    routers: Mutex<BTreeMap<u64, StreamReport>>,
    enforcers: Mutex<BTreeMap<u64, EnforcerStreamReport>>,
    next_stream: AtomicU64,
    nacks: AtomicU64,
}

impl Default for Status {
    fn default() -> Self {
        Status {
            routers: Mutex::new(BTreeMap::new()),
            enforcers: Mutex::new(BTreeMap::new()),
            next_stream: AtomicU64::new(1),
            nacks: AtomicU64::new(0),
        }
    }
}

impl Status {
    /// A new stream number (routers and enforcers share the sequence).
    pub fn next_stream_id(&self) -> u64 {
        self.next_stream.fetch_add(1, Ordering::Relaxed)
    }

    /// Records a router stream's status.
    pub fn report(&self, report: StreamReport) {
        self.routers.lock().insert(report.id, report);
    }

    /// Forgets a closed router stream.
    pub fn forget(&self, id: u64) {
        self.routers.lock().remove(&id);
    }

    /// The connected routers.
    pub fn streams(&self) -> Vec<StreamReport> {
        self.routers.lock().values().cloned().collect()
    }

    /// Counts a NACK (from a router or an enforcer).
    pub fn count_nack(&self) {
        self.nacks.fetch_add(1, Ordering::Relaxed);
    }

    /// NACKs received since start.
    pub fn nacks(&self) -> u64 {
        self.nacks.load(Ordering::Relaxed)
    }

    /// Records an enforcer stream's status.
    pub fn report_enforcer(&self, report: EnforcerStreamReport) {
        self.enforcers.lock().insert(report.id, report);
    }

    /// Forgets a closed enforcer stream.
    pub fn forget_enforcer(&self, id: u64) {
        self.enforcers.lock().remove(&id);
    }

    /// The connected enforcer streams.
    pub fn enforcer_streams(&self) -> Vec<EnforcerStreamReport> {
        self.enforcers.lock().values().cloned().collect()
    }

    /// The connected enforcers: one per peer address, whatever number of
    /// streams (configuration, APIs, ...) it holds.
    pub fn enforcer_instances(&self) -> usize {
        self.enforcers.lock().values().map(|e| e.peer.as_str()).collect::<BTreeSet<_>>().len()
    }
}

/// Whether an API's configuration reached the routers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Applied {
    /// Every connected router holds it (vacuously with none).
    Applied,
    /// Some router does not hold it yet.
    Pending,
    /// A router refused the configuration that carries it.
    Rejected,
}

/// A router's refusal of the current configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    /// The resource type (`cds`, `lds`, ...).
    #[serde(rename = "type")]
    pub ty: String,
    /// Envoy's error text.
    pub message: String,
}

/// One router of an environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouterStatus {
    /// Its `instanceIdentifier`.
    pub instance: String,
    /// It holds the environment's current configuration in full.
    pub applied: bool,
    /// Its pending NACK of that configuration.
    pub rejected: Option<Rejection>,
}

/// One environment an API is deployed in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnvironmentStatus {
    /// The environment (label).
    pub environment: String,
    /// Over its routers.
    pub state: Applied,
    /// Its connected routers.
    pub routers: Vec<RouterStatus>,
}

/// Where an API deployed at `deployments` stands, per environment and over
/// all, given each label's current snapshot fingerprint and the connected
/// routers.
///
/// A router has applied it when it holds its environment's current
/// configuration in full; a pending NACK of that configuration makes the
/// state [`Applied::Rejected`], with the router's message.
pub fn deploy_status(
    deployments: &[Deployment],
    fingerprints: &BTreeMap<String, String>,
    routers: &[StreamReport],
) -> (Applied, Vec<EnvironmentStatus>) {
    let envs: BTreeSet<&str> = deployments.iter().map(|d| d.environment.as_str()).collect();
    let mut overall = Applied::Applied;
    let mut per_env = Vec::new();
    for env in envs {
        let current = fingerprints.get(env).map(String::as_str).unwrap_or("");
        let mut state = Applied::Applied;
        let mut statuses = Vec::new();
        for s in routers.iter().filter(|s| s.status.node.as_ref().is_some_and(|n| n.id == env)) {
            let instance = s.status.node.as_ref().map(|n| n.instance.clone()).unwrap_or_default();
            let rejected = s.status.types.iter().find_map(|(ty, t)| {
                let nack = t.last_nack.as_ref()?;
                let sent = t.last_sent.as_ref()?;
                (nack.version == sent.version).then(|| Rejection { ty: ty.to_string(), message: nack.message.clone() })
            });
            let applied = s.status.snapshot == current && s.status.in_sync;
            if rejected.is_some() {
                state = Applied::Rejected;
            } else if !applied && state == Applied::Applied {
                state = Applied::Pending;
            }
            statuses.push(RouterStatus { instance, applied, rejected });
        }
        if state == Applied::Rejected || (state == Applied::Pending && overall == Applied::Applied) {
            overall = state;
        }
        per_env.push(EnvironmentStatus { environment: env.to_string(), state, routers: statuses });
    }
    (overall, per_env)
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
