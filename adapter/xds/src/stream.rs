//! The ADS stream state machine, without I/O.
//!
//! One [`Stream`] follows one Envoy's aggregated stream, in state-of-the-world
//! or delta mode. It is fed requests and new snapshots and answers with the
//! responses to send; the gRPC handler only moves messages (style.md practice 2).
//!
//! What it guarantees:
//! * **Nothing is sent without a reason**: a response goes out only when the
//!   client lacks the current version of a resource it subscribes to. An ACK
//!   therefore never gets an answer, and a snapshot that changes nothing sends
//!   nothing.
//! * **One response in flight per type**, identified by its nonce. A request
//!   quoting any other nonce is stale and ignored (its subscription changes too,
//!   in state-of-the-world mode, as the protocol says; Envoy repeats them with
//!   the current nonce).
//! * **NACKs**: the client keeps its last good version; the rejected versions
//!   are remembered and not sent again until the content changes, so a bad
//!   resource never loops.
//! * **Ordering**: types are sent in [`ResourceType::ALL`] order and a type waits
//!   while an earlier one is in flight, so clusters and endpoints are in place
//!   before listeners and routes that use them.
//! * **Make before break**: clusters (and their endpoints) that the current
//!   snapshot dropped stay in the client's set until the client has
//!   acknowledged routes that no longer use them.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse, Resource as DeltaResource,
};
use serde::Serialize;

use crate::snapshot::{Resource, ResourceType, Snapshot, set_version};

/// Protocol variant of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// `StreamAggregatedResources`
    Sotw,
    /// `DeltaAggregatedResources`
    Delta,
}

/// A response to send on the stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    /// State of the world.
    Sotw(DiscoveryResponse),
    /// Delta.
    Delta(DeltaDiscoveryResponse),
}

/// Something worth logging or counting that happened on the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The client accepted a response.
    Ack {
        /// Type acknowledged.
        ty: ResourceType,
        /// Version acknowledged.
        version: String,
    },
    /// The client rejected a response; it keeps its previous configuration.
    Nack {
        /// Type rejected.
        ty: ResourceType,
        /// The rejected version.
        version: String,
        /// Envoy's error text.
        message: String,
        /// Names of the resources in the rejected response.
        resources: Vec<String>,
    },
}

/// What one input produced.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Responses to send, in order.
    pub responses: Vec<Response>,
    /// Events to log or count.
    pub events: Vec<Event>,
}

/// The identity a client sent in its first request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeInfo {
    /// `node.id`: the gateway label (environment), e.g. `Default`.
    pub id: String,
    /// `node.cluster`
    pub cluster: String,
    /// `node.metadata.instanceIdentifier` (the router's host name), if set.
    pub instance: String,
    /// Envoy's build version, from `user_agent_build_version`.
    pub version: String,
}

impl NodeInfo {
    /// Extracts what the adapter uses from an Envoy `Node`.
    pub fn from_node(node: &Node) -> NodeInfo {
        use envoy_types::pb::google::protobuf::value::Kind;
        let instance = node
            .metadata
            .as_ref()
            .and_then(|m| m.fields.get("instanceIdentifier"))
            .and_then(|v| match &v.kind {
                Some(Kind::StringValue(s)) => Some(s.clone()),
                _ => None,
            })
            .unwrap_or_default();
        let version = match &node.user_agent_version_type {
            Some(envoy_types::pb::envoy::config::core::v3::node::UserAgentVersionType::UserAgentBuildVersion(b)) => b
                .version
                .as_ref()
                .map(|v| format!("{}.{}.{}", v.major_number, v.minor_number, v.patch))
                .unwrap_or_default(),
            Some(envoy_types::pb::envoy::config::core::v3::node::UserAgentVersionType::UserAgentVersion(v)) => v.clone(),
            None => String::new(),
        };
        NodeInfo { id: node.id.clone(), cluster: node.cluster.clone(), instance, version }
    }
}

/// A response the client has not answered yet.
#[derive(Debug, Clone)]
struct InFlight {
    nonce: String,
    version: String,
    updated: Vec<(String, String)>,
    removed: Vec<String>,
    /// State-of-the-world response to a wildcard type: it replaces the whole set.
    full_set: bool,
}

/// Per-type report, as served by the adapter's status endpoint.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TypeStatus {
    /// The client subscribed to this type.
    pub subscribed: bool,
    /// Resources the client is known to hold.
    pub resources_held: usize,
    /// The last response sent.
    pub last_sent: Option<Sent>,
    /// The last response the client accepted.
    pub last_acked: Option<Acked>,
    /// Responses rejected so far.
    pub nacks: u64,
    /// The last rejection.
    pub last_nack: Option<Nack>,
}

/// A sent response.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Sent {
    /// `version_info` / `system_version_info`
    pub version: String,
    /// Its nonce.
    pub nonce: String,
    /// Resources added or updated by it.
    pub resources: usize,
    /// Resources removed by it (delta).
    pub removed: usize,
    /// Encoded size of the resources, in bytes.
    pub bytes: usize,
    /// Unix time in milliseconds.
    pub at_ms: u64,
}

/// An accepted response.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Acked {
    /// The version accepted.
    pub version: String,
    /// Its nonce.
    pub nonce: String,
    /// Unix time in milliseconds.
    pub at_ms: u64,
}

/// A rejected response.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Nack {
    /// The version rejected.
    pub version: String,
    /// Its nonce.
    pub nonce: String,
    /// Envoy's error text.
    pub message: String,
    /// Resources in the rejected response.
    pub resources: Vec<String>,
    /// Unix time in milliseconds.
    pub at_ms: u64,
}

#[derive(Debug, Default)]
struct TypeState {
    requested: bool,
    wildcard: bool,
    names: BTreeSet<String>,
    /// What the client holds: name → version, as far as we know.
    client_has: HashMap<String, String>,
    /// Delta: subscribed names the client was told do not exist.
    told_absent: HashSet<String>,
    in_flight: Option<InFlight>,
    /// Nonce of the latest response sent for this type.
    last_nonce: Option<String>,
    /// Versions the client rejected: name → version.
    rejected: HashMap<String, String>,
    /// State of the world, wildcard types: the rejected set version.
    rejected_set: Option<String>,
    status: TypeStatus,
}

/// The state of one ADS stream.
#[derive(Debug)]
pub struct Stream {
    mode: Mode,
    node: Option<NodeInfo>,
    snapshot: Snapshot,
    /// The last snapshot whose routes the client holds completely.
    routes_synced: Option<Snapshot>,
    types: [TypeState; 5],
    next_nonce: u64,
}

/// A status report of one stream.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamStatus {
    /// Protocol variant.
    pub mode: Mode,
    /// The client's identity.
    pub node: Option<NodeInfo>,
    /// Fingerprint of the snapshot the stream is converging to.
    pub snapshot: String,
    /// True when the client holds the current version of everything it
    /// subscribes to and nothing is in flight.
    pub in_sync: bool,
    /// Per type, by short name (`cds`, `eds`, `lds`, `srds`, `rds`).
    pub types: BTreeMap<&'static str, TypeStatus>,
}

struct Planned {
    ty: ResourceType,
    version: String,
    updated: Vec<Arc<Resource>>,
    removed: Vec<String>,
    full_set: bool,
}

impl Stream {
    /// A new stream that will converge the client to `snapshot`.
    pub fn new(mode: Mode, snapshot: Snapshot) -> Stream {
        Stream {
            mode,
            node: None,
            snapshot,
            routes_synced: None,
            types: Default::default(),
            next_nonce: 0,
        }
    }

    /// The protocol variant.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The client's identity, once its first request arrived.
    pub fn node(&self) -> Option<&NodeInfo> {
        self.node.as_ref()
    }

    /// Handles a state-of-the-world request.
    pub fn on_sotw_request(&mut self, req: &DiscoveryRequest, now_ms: u64) -> Outcome {
        let mut out = Outcome::default();
        self.note_node(req.node.as_ref());
        let Some(ty) = ResourceType::from_type_url(&req.type_url) else {
            tracing::debug!(type_url = %req.type_url, "request for a type this server does not serve");
            return out;
        };
        if !req.response_nonce.is_empty() {
            let ts = &self.types[ty.index()];
            if ts.last_nonce.as_deref() != Some(req.response_nonce.as_str()) {
                // Stale: the client has not seen our latest response for this type yet.
                return out;
            }
            if ts.in_flight.is_some() {
                match &req.error_detail {
                    Some(err) => self.nack(ty, &err.message, now_ms, &mut out),
                    None => self.ack(ty, now_ms, &mut out),
                }
            }
            // Otherwise a subscription change quoting an answered response.
        }
        let first = !self.types[ty.index()].requested;
        let ts = &mut self.types[ty.index()];
        ts.requested = true;
        ts.status.subscribed = true;
        let names: BTreeSet<String> = req.resource_names.iter().cloned().collect();
        ts.wildcard = ty.is_wildcard() && (names.is_empty() || names.contains("*"));
        if !ts.wildcard {
            ts.client_has.retain(|n, _| names.contains(n));
            ts.rejected.retain(|n, _| names.contains(n));
        }
        ts.names = names.into_iter().filter(|n| n != "*").collect();
        if first && req.response_nonce.is_empty() && !req.version_info.is_empty() && ty.is_wildcard() {
            // A client reconnecting with the set it holds: if that is the
            // current set, there is nothing to send.
            let desired = self.desired(ty);
            if set_version(desired.values().copied()) == req.version_info {
                let held = desired.iter().map(|(n, r)| (n.to_string(), r.version.clone())).collect();
                self.types[ty.index()].client_has = held;
            }
        }
        self.pump(now_ms, &mut out);
        out
    }

    /// Handles a delta request.
    pub fn on_delta_request(&mut self, req: &DeltaDiscoveryRequest, now_ms: u64) -> Outcome {
        let mut out = Outcome::default();
        self.note_node(req.node.as_ref());
        let Some(ty) = ResourceType::from_type_url(&req.type_url) else {
            tracing::debug!(type_url = %req.type_url, "request for a type this server does not serve");
            return out;
        };
        {
            let ts = &mut self.types[ty.index()];
            if !ts.requested {
                ts.requested = true;
                ts.status.subscribed = true;
                for (name, version) in &req.initial_resource_versions {
                    ts.client_has.insert(name.clone(), version.clone());
                }
                if ty.is_wildcard() && req.resource_names_subscribe.is_empty() {
                    ts.wildcard = true;
                }
            }
            for name in &req.resource_names_subscribe {
                if name == "*" {
                    ts.wildcard = true;
                } else {
                    ts.names.insert(name.clone());
                }
            }
            for name in &req.resource_names_unsubscribe {
                if name == "*" {
                    ts.wildcard = false;
                } else {
                    ts.names.remove(name);
                    ts.client_has.remove(name);
                    ts.told_absent.remove(name);
                    ts.rejected.remove(name);
                }
            }
        }
        if !req.response_nonce.is_empty() {
            let current = self.types[ty.index()].in_flight.as_ref().map(|f| f.nonce == req.response_nonce);
            // Any other nonce is stale (or already answered): only the subscription part counts.
            if current == Some(true) {
                match &req.error_detail {
                    Some(err) => self.nack(ty, &err.message, now_ms, &mut out),
                    None => self.ack(ty, now_ms, &mut out),
                }
            }
        }
        self.pump(now_ms, &mut out);
        out
    }

    /// Moves the stream to a new snapshot.
    pub fn on_snapshot(&mut self, snapshot: Snapshot, now_ms: u64) -> Outcome {
        let mut out = Outcome::default();
        self.snapshot = snapshot;
        self.pump(now_ms, &mut out);
        out
    }

    /// True when the client holds everything it should and nothing is in flight.
    pub fn in_sync(&self) -> bool {
        ResourceType::ALL.iter().all(|&ty| {
            let ts = &self.types[ty.index()];
            if !ts.requested {
                return true;
            }
            ts.in_flight.is_none() && self.type_matches(ty, true)
        })
    }

    /// A report for the status endpoint.
    pub fn status(&self) -> StreamStatus {
        let types = ResourceType::ALL
            .iter()
            .map(|&ty| {
                let ts = &self.types[ty.index()];
                let mut s = ts.status.clone();
                s.resources_held = ts.client_has.len();
                (ty.short_name(), s)
            })
            .collect();
        StreamStatus {
            mode: self.mode,
            node: self.node.clone(),
            snapshot: self.snapshot.fingerprint(),
            in_sync: self.in_sync(),
            types,
        }
    }

    fn note_node(&mut self, node: Option<&Node>) {
        if self.node.is_none()
            && let Some(n) = node
        {
            self.node = Some(NodeInfo::from_node(n));
        }
    }

    /// The snapshot whose clusters must be kept because the client may still
    /// route to them.
    fn retained(&self) -> Option<&Snapshot> {
        self.routes_synced.as_ref().filter(|s| *s != &self.snapshot)
    }

    /// What the client should hold of `ty` now.
    fn desired(&self, ty: ResourceType) -> BTreeMap<&str, &Arc<Resource>> {
        let ts = &self.types[ty.index()];
        let current = self.snapshot.resources(ty);
        let retained = match ty {
            ResourceType::Cluster | ResourceType::Endpoint => self.retained().map(|s| s.resources(ty)),
            _ => None,
        };
        let mut out = BTreeMap::new();
        if ts.wildcard {
            if let Some(old) = retained {
                out.extend(old.iter().map(|(n, r)| (n.as_str(), r)));
            }
            out.extend(current.iter().map(|(n, r)| (n.as_str(), r)));
        }
        for name in &ts.names {
            if let Some(r) = current.get(name).or_else(|| retained.and_then(|m| m.get(name))) {
                out.insert(name.as_str(), r);
            }
        }
        out
    }

    /// Whether the client holds exactly the desired content of `ty`.
    fn type_matches(&self, ty: ResourceType, strict_extra: bool) -> bool {
        let ts = &self.types[ty.index()];
        let desired = self.desired(ty);
        let all_held = desired.iter().all(|(n, r)| ts.client_has.get(*n) == Some(&r.version));
        if !all_held {
            return false;
        }
        if strict_extra && ts.wildcard {
            return ts.client_has.keys().all(|n| desired.contains_key(n.as_str()));
        }
        true
    }

    fn update_routes_synced(&mut self) {
        let synced = ResourceType::ALL.iter().filter(|t| t.carries_routes()).all(|&ty| {
            let ts = &self.types[ty.index()];
            !ts.requested || (ts.in_flight.is_none() && self.type_matches(ty, true))
        });
        if synced {
            self.routes_synced = Some(self.snapshot.clone());
        }
    }

    /// True when the client holds the current endpoints of every EDS cluster
    /// it holds (clusters it rejected excepted): only then do routes that may
    /// use those clusters go out, so a new cluster is never routed to while
    /// it is still warming.
    fn endpoints_settled(&self) -> bool {
        let cds = &self.types[ResourceType::Cluster.index()];
        let eds = &self.types[ResourceType::Endpoint.index()];
        let endpoints = self.snapshot.resources(ResourceType::Endpoint);
        endpoints.iter().all(|(name, r)| {
            !cds.client_has.contains_key(name)
                || cds.rejected.contains_key(name)
                || eds.client_has.get(name) == Some(&r.version)
                || eds.rejected.get(name) == Some(&r.version)
        })
    }

    fn pump(&mut self, now_ms: u64, out: &mut Outcome) {
        self.update_routes_synced();
        let mut blocked = false;
        for ty in ResourceType::ALL {
            let ts = &self.types[ty.index()];
            if ts.in_flight.is_some() {
                blocked = true;
                continue;
            }
            if blocked || !ts.requested {
                continue;
            }
            if ty.carries_routes() && !self.endpoints_settled() {
                // Routes wait until every EDS cluster the client holds has its endpoints.
                break;
            }
            if let Some(plan) = self.plan(ty) {
                out.responses.push(self.send(plan, now_ms));
                blocked = true;
            }
        }
    }

    fn plan(&self, ty: ResourceType) -> Option<Planned> {
        let ts = &self.types[ty.index()];
        let desired = self.desired(ty);
        let version = set_version(desired.values().copied());
        if self.mode == Mode::Sotw && ty.is_wildcard() && ts.wildcard {
            let same = desired.len() == ts.client_has.len()
                && desired.iter().all(|(n, r)| ts.client_has.get(*n) == Some(&r.version));
            if same || ts.rejected_set.as_deref() == Some(version.as_str()) {
                return None;
            }
            return Some(Planned {
                ty,
                version,
                updated: desired.values().map(|r| Arc::clone(r)).collect(),
                removed: Vec::new(),
                full_set: true,
            });
        }
        let updated: Vec<Arc<Resource>> = desired
            .values()
            .filter(|r| {
                ts.client_has.get(&r.name) != Some(&r.version) && ts.rejected.get(&r.name) != Some(&r.version)
            })
            .map(|r| Arc::clone(r))
            .collect();
        let removed: Vec<String> = if self.mode == Mode::Delta {
            let mut removed: BTreeSet<String> = ts
                .client_has
                .keys()
                .filter(|n| !desired.contains_key(n.as_str()) && (ts.wildcard || ts.names.contains(*n)))
                .cloned()
                .collect();
            // Tell the client once that a name it asked for does not exist.
            for n in &ts.names {
                if !desired.contains_key(n.as_str()) && !ts.client_has.contains_key(n) && !ts.told_absent.contains(n) {
                    removed.insert(n.clone());
                }
            }
            removed.into_iter().collect()
        } else {
            Vec::new()
        };
        if updated.is_empty() && removed.is_empty() {
            return None;
        }
        Some(Planned { ty, version, updated, removed, full_set: false })
    }

    fn send(&mut self, plan: Planned, now_ms: u64) -> Response {
        self.next_nonce += 1;
        let nonce = self.next_nonce.to_string();
        let ty = plan.ty;
        let bytes = plan.updated.iter().map(|r| r.body.len()).sum();
        let ts = &mut self.types[ty.index()];
        ts.status.last_sent = Some(Sent {
            version: plan.version.clone(),
            nonce: nonce.clone(),
            resources: plan.updated.len(),
            removed: plan.removed.len(),
            bytes,
            at_ms: now_ms,
        });
        ts.last_nonce = Some(nonce.clone());
        ts.in_flight = Some(InFlight {
            nonce: nonce.clone(),
            version: plan.version.clone(),
            updated: plan.updated.iter().map(|r| (r.name.clone(), r.version.clone())).collect(),
            removed: plan.removed.clone(),
            full_set: plan.full_set,
        });
        match self.mode {
            Mode::Sotw => Response::Sotw(DiscoveryResponse {
                version_info: plan.version,
                resources: plan.updated.iter().map(|r| r.to_any(ty)).collect(),
                type_url: ty.type_url().to_string(),
                nonce,
                ..Default::default()
            }),
            Mode::Delta => Response::Delta(DeltaDiscoveryResponse {
                system_version_info: plan.version,
                resources: plan
                    .updated
                    .iter()
                    .map(|r| DeltaResource {
                        name: r.name.clone(),
                        version: r.version.clone(),
                        resource: Some(r.to_any(ty)),
                        ..Default::default()
                    })
                    .collect(),
                type_url: ty.type_url().to_string(),
                removed_resources: plan.removed,
                nonce,
                ..Default::default()
            }),
        }
    }

    fn ack(&mut self, ty: ResourceType, now_ms: u64, out: &mut Outcome) {
        let ts = &mut self.types[ty.index()];
        let Some(f) = ts.in_flight.take() else { return };
        if f.full_set {
            ts.client_has = f.updated.iter().cloned().collect();
            ts.rejected_set = None;
        } else {
            for (n, v) in &f.updated {
                ts.client_has.insert(n.clone(), v.clone());
            }
            for n in &f.removed {
                if ts.client_has.remove(n).is_none() {
                    ts.told_absent.insert(n.clone());
                }
            }
        }
        for (n, _) in &f.updated {
            ts.rejected.remove(n);
            ts.told_absent.remove(n);
        }
        ts.status.last_acked = Some(Acked { version: f.version.clone(), nonce: f.nonce, at_ms: now_ms });
        out.events.push(Event::Ack { ty, version: f.version });
    }

    fn nack(&mut self, ty: ResourceType, message: &str, now_ms: u64, out: &mut Outcome) {
        let ts = &mut self.types[ty.index()];
        let Some(f) = ts.in_flight.take() else { return };
        if f.full_set {
            ts.rejected_set = Some(f.version.clone());
        }
        for (n, v) in &f.updated {
            ts.rejected.insert(n.clone(), v.clone());
        }
        let resources: Vec<String> = f.updated.iter().map(|(n, _)| n.clone()).collect();
        ts.status.nacks += 1;
        ts.status.last_nack = Some(Nack {
            version: f.version.clone(),
            nonce: f.nonce,
            message: message.to_string(),
            resources: resources.clone(),
            at_ms: now_ms,
        });
        out.events.push(Event::Nack { ty, version: f.version, message: message.to_string(), resources });
    }
}
