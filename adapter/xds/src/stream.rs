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

use crate::snapshot::{Resource, ResourceMap, ResourceType, Snapshot, set_version};

/// What a client should hold of one type.
enum Desired<'a> {
    /// Exactly a snapshot's map (the common case), with its version.
    All(&'a ResourceMap, &'a str),
    /// The subscribed names that exist (a view, nothing copied).
    Named(&'a BTreeSet<String>, &'a ResourceMap, Option<&'a ResourceMap>),
    /// A union (clusters kept for routes that may still use them).
    Built(BTreeMap<&'a str, &'a Arc<Resource>>),
}

impl<'a> Desired<'a> {
    fn get(&self, name: &str) -> Option<&'a Arc<Resource>> {
        match self {
            Desired::All(m, _) => m.get(name),
            Desired::Named(names, m, retained) => {
                if names.contains(name) {
                    m.get(name).or_else(|| retained.and_then(|r| r.get(name)))
                } else {
                    None
                }
            }
            Desired::Built(m) => m.get(name).copied(),
        }
    }

    fn iter(&self) -> Box<dyn Iterator<Item = (&'a str, &'a Arc<Resource>)> + '_> {
        match self {
            Desired::All(m, _) => Box::new(m.iter().map(|(n, r)| (&**n, r))),
            Desired::Named(names, m, None) => {
                Box::new(MergeJoin { names: names.iter().peekable(), map: m.iter().peekable() })
            }
            Desired::Named(names, m, Some(retained)) => {
                let (m, retained) = (*m, *retained);
                Box::new(names.iter().filter_map(move |n| {
                    m.get(n.as_str()).or_else(|| retained.get(n.as_str())).map(|r| (n.as_str(), r))
                }))
            }
            Desired::Built(m) => Box::new(m.iter().map(|(n, r)| (*n, *r))),
        }
    }

    fn version(&self) -> String {
        match self {
            Desired::All(_, v) => v.to_string(),
            Desired::Named(..) => set_version(self.iter().map(|(_, r)| r)),
            Desired::Built(m) => set_version(m.values().copied()),
        }
    }
}

/// The entries of a map whose keys are in a set, walking both in key order
/// (linear, no lookups).
struct MergeJoin<'a> {
    names: std::iter::Peekable<std::collections::btree_set::Iter<'a, String>>,
    map: std::iter::Peekable<std::collections::btree_map::Iter<'a, Arc<str>, Arc<Resource>>>,
}

impl<'a> Iterator for MergeJoin<'a> {
    type Item = (&'a str, &'a Arc<Resource>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let n = *self.names.peek()?;
            let (k, _) = *self.map.peek()?;
            match n.as_str().cmp(&**k) {
                std::cmp::Ordering::Less => {
                    self.names.next();
                }
                std::cmp::Ordering::Greater => {
                    self.map.next();
                }
                std::cmp::Ordering::Equal => {
                    self.names.next();
                    return self.map.next().map(|(k, r)| (&**k, r));
                }
            }
        }
    }
}

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
            Some(envoy_types::pb::envoy::config::core::v3::node::UserAgentVersionType::UserAgentVersion(v)) => {
                v.clone()
            }
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
    updated: Vec<(Arc<str>, Arc<str>)>,
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
    /// Responses sent so far.
    pub responses: u64,
    /// Encoded resource bytes sent so far.
    pub bytes_sent: u64,
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
    client_has: HashMap<Arc<str>, Arc<str>>,
    /// Delta: subscribed names the client was told do not exist.
    told_absent: HashSet<String>,
    in_flight: Option<InFlight>,
    /// Nonce of the latest response sent for this type.
    last_nonce: Option<String>,
    /// Versions the client rejected: name → version.
    rejected: HashMap<Arc<str>, Arc<str>>,
    /// State of the world, wildcard types: the rejected set version.
    rejected_set: Option<String>,
    status: TypeStatus,
    /// Bumped on every change of this state, to invalidate `memo`.
    epoch: u64,
    /// The last evaluation, valid while the inputs are the same.
    memo: Option<Memo>,
}

/// An evaluation of one type and the inputs it was made from.
#[derive(Debug, Clone)]
struct Memo {
    epoch: u64,
    map: Arc<ResourceMap>,
    retained: Option<Arc<ResourceMap>>,
    /// The client holds exactly what it should.
    matches: bool,
    /// What to send, if anything.
    planned: Option<Planned>,
}

/// Largest response (encoded resource bytes) sent at once, where the
/// protocol allows splitting: named types in state of the world, every type
/// in delta. The rest follows once the client acknowledged, which bounds the
/// memory both sides need for a first sync of thousands of APIs. The gRPC
/// encoder keeps, for the stream's life, a buffer of the next power of two
/// above the largest message sent: 3 MiB keeps that at 4 MiB (with 4 MiB,
/// the framing pushed it to 8 MiB).
pub const MAX_RESPONSE_BYTES: usize = 3 * 1024 * 1024;

/// The state of one ADS stream.
#[derive(Debug)]
pub struct Stream {
    max_response_bytes: usize,
    mode: Mode,
    node: Option<NodeInfo>,
    snapshot: Snapshot,
    /// The last snapshot whose routes the client holds completely.
    routes_synced: Option<Snapshot>,
    types: [TypeState; 5],
    next_nonce: u64,
    /// `endpoints_settled` for the epochs of CDS and EDS and the endpoint map.
    settled_memo: Option<(u64, u64, Arc<ResourceMap>, bool)>,
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

#[derive(Debug, Clone)]
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
            max_response_bytes: MAX_RESPONSE_BYTES,
            mode,
            node: None,
            snapshot,
            routes_synced: None,
            types: Default::default(),
            next_nonce: 0,
            settled_memo: None,
        }
    }

    /// Sets the response size limit (see [`MAX_RESPONSE_BYTES`]).
    pub fn with_max_response_bytes(mut self, bytes: usize) -> Stream {
        self.max_response_bytes = bytes.max(1);
        self
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
            ts.client_has.retain(|n, _| names.contains(&**n));
            ts.rejected.retain(|n, _| names.contains(&**n));
        }
        ts.names = names.into_iter().filter(|n| n != "*").collect();
        self.types[ty.index()].epoch += 1;
        if first && req.response_nonce.is_empty() && !req.version_info.is_empty() && ty.is_wildcard() {
            // A client reconnecting with the set it holds: if that is the
            // current set, there is nothing to send.
            let desired = self.desired(ty);
            if desired.version() == req.version_info {
                let held = desired.iter().map(|(_, r)| (Arc::clone(&r.name), r.version.clone())).collect();
                self.types[ty.index()].client_has = held;
                self.types[ty.index()].epoch += 1;
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
                    ts.client_has.insert(Arc::from(name.as_str()), Arc::from(version.as_str()));
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
                    ts.client_has.remove(name.as_str());
                    ts.told_absent.remove(name);
                    ts.rejected.remove(name.as_str());
                }
            }
        }
        self.types[ty.index()].epoch += 1;
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
    pub fn in_sync(&mut self) -> bool {
        ResourceType::ALL.iter().all(|&ty| {
            let ts = &self.types[ty.index()];
            if !ts.requested {
                return true;
            }
            ts.in_flight.is_none() && self.evaluate(ty).1
        })
    }

    /// A report for the status endpoint.
    pub fn status(&mut self) -> StreamStatus {
        let in_sync = self.in_sync();
        let types = ResourceType::ALL
            .iter()
            .map(|&ty| {
                let ts = &self.types[ty.index()];
                let mut s = ts.status.clone();
                s.resources_held = ts.client_has.len();
                (ty.short_name(), s)
            })
            .collect();
        StreamStatus { mode: self.mode, node: self.node.clone(), snapshot: self.snapshot.fingerprint(), in_sync, types }
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

    /// The retained map of `ty` (clusters and endpoints only), if any.
    fn retained_map(&self, ty: ResourceType) -> Option<&Arc<ResourceMap>> {
        match ty {
            ResourceType::Cluster | ResourceType::Endpoint => self
                .retained()
                .map(|s| s.resources(ty))
                // The same map as now: nothing extra to keep.
                .filter(|m| !Arc::ptr_eq(m, self.snapshot.resources(ty))),
            _ => None,
        }
    }

    /// What the client should hold of `ty` now.
    fn desired(&self, ty: ResourceType) -> Desired<'_> {
        let ts = &self.types[ty.index()];
        let current = self.snapshot.resources(ty);
        let retained = self.retained_map(ty);
        if ts.wildcard && retained.is_none() {
            // Explicit names of a wildcard subscriber are a subset of everything.
            return Desired::All(current, self.snapshot.version(ty));
        }
        if !ts.wildcard {
            return Desired::Named(&ts.names, current, retained.map(|r| r.as_ref()));
        }
        let mut out = BTreeMap::new();
        if let Some(old) = retained {
            out.extend(old.iter().map(|(n, r)| (&**n, r)));
        }
        out.extend(current.iter().map(|(n, r)| (&**n, r)));
        for name in &ts.names {
            if let Some(r) = current.get(name.as_str()).or_else(|| retained.and_then(|m| m.get(name.as_str()))) {
                out.insert(name.as_str(), r);
            }
        }
        Desired::Built(out)
    }

    /// Evaluates `ty`: what to send, and whether the client holds exactly
    /// what it should. Remembered until the inputs change, so a type nothing
    /// happened to costs nothing, whatever its size.
    fn evaluate(&mut self, ty: ResourceType) -> (Option<Planned>, bool) {
        let current = Arc::clone(self.snapshot.resources(ty));
        let retained = self.retained_map(ty).cloned();
        let ts = &self.types[ty.index()];
        if let Some(m) = &ts.memo
            && m.epoch == ts.epoch
            && Arc::ptr_eq(&m.map, &current)
            && match (&m.retained, &retained) {
                (None, None) => true,
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                _ => false,
            }
        {
            return (m.planned.clone(), m.matches);
        }
        let (planned, matches) = self.compute(ty);
        let ts = &mut self.types[ty.index()];
        ts.memo = Some(Memo { epoch: ts.epoch, map: current, retained, matches, planned: planned.clone() });
        (planned, matches)
    }

    fn update_routes_synced(&mut self) {
        let mut synced = true;
        for ty in ResourceType::ALL.into_iter().filter(|t| t.carries_routes()) {
            let ts = &self.types[ty.index()];
            if !ts.requested {
                continue;
            }
            if ts.in_flight.is_some() || !self.evaluate(ty).1 {
                synced = false;
                break;
            }
        }
        if synced && self.routes_synced.as_ref() != Some(&self.snapshot) {
            self.routes_synced = Some(self.snapshot.clone());
        }
    }

    /// True when the client holds the current endpoints of every EDS cluster
    /// it holds (clusters it rejected excepted): only then do routes that may
    /// use those clusters go out, so a new cluster is never routed to while
    /// it is still warming.
    fn endpoints_settled(&mut self) -> bool {
        let cds = &self.types[ResourceType::Cluster.index()];
        let eds = &self.types[ResourceType::Endpoint.index()];
        let endpoints = self.snapshot.resources(ResourceType::Endpoint);
        if let Some((ce, ee, map, settled)) = &self.settled_memo
            && *ce == cds.epoch
            && *ee == eds.epoch
            && Arc::ptr_eq(map, endpoints)
        {
            return *settled;
        }
        let settled = endpoints.iter().all(|(name, r)| {
            !cds.client_has.contains_key(name)
                || cds.rejected.contains_key(name)
                || eds.client_has.get(name) == Some(&r.version)
                || eds.rejected.get(name) == Some(&r.version)
        });
        self.settled_memo = Some((cds.epoch, eds.epoch, Arc::clone(endpoints), settled));
        settled
    }

    fn pump(&mut self, now_ms: u64, out: &mut Outcome) {
        self.update_routes_synced();
        let mut blocked = false;
        let mut settled: Option<bool> = None;
        for ty in ResourceType::ALL {
            let ts = &self.types[ty.index()];
            if ts.in_flight.is_some() {
                blocked = true;
                continue;
            }
            // Endpoints are never held back by clusters in flight: Envoy asks
            // for a new cluster's endpoints while warming it, and may
            // acknowledge the clusters only once they are warm.
            let held_back = blocked && ty != ResourceType::Endpoint;
            if held_back || !ts.requested {
                continue;
            }
            let (planned, _) = self.evaluate(ty);
            let Some(plan) = planned else { continue };
            if ty.carries_routes() && !*settled.get_or_insert_with(|| self.endpoints_settled()) {
                // Routes wait until every EDS cluster the client holds has its endpoints.
                break;
            }
            out.responses.push(self.send(plan, now_ms));
            blocked = true;
        }
    }

    /// What to send for `ty`, and whether the client holds exactly what it should.
    fn compute(&self, ty: ResourceType) -> (Option<Planned>, bool) {
        let ts = &self.types[ty.index()];
        let desired = self.desired(ty);
        let held = |n: &str, r: &Resource| ts.client_has.get(n) == Some(&r.version);
        // One pass: desired resources, those the client holds in some
        // version, and those it holds in the current one. It holds something
        // extra exactly when it holds more names than the desired ones it has.
        let (mut total, mut present, mut held_count) = (0, 0, 0);
        for (n, r) in desired.iter() {
            total += 1;
            if let Some(v) = ts.client_has.get(n) {
                present += 1;
                held_count += usize::from(*v == r.version);
            }
        }
        let all_held = held_count == total;
        let extras = ts.client_has.len() > present;
        let matches = all_held && (!ts.wildcard || !extras);
        // A wildcard subscriber that holds nothing is answered even when there
        // is nothing to send (no APIs yet): Envoy's initialization waits for a
        // first response of every wildcard type, for initial_fetch_timeout.
        let owed = ts.wildcard && ts.status.responses == 0 && ts.client_has.is_empty();
        if self.mode == Mode::Sotw && ty.is_wildcard() && ts.wildcard {
            let version = desired.version();
            if (matches && !owed) || ts.rejected_set.as_deref() == Some(version.as_str()) {
                return (None, matches);
            }
            let planned = Planned {
                ty,
                version,
                updated: desired.iter().map(|(_, r)| Arc::clone(r)).collect(),
                removed: Vec::new(),
                full_set: true,
            };
            return (Some(planned), matches);
        }
        if matches && !owed {
            // Nothing to update; only told-absent names could remain (delta).
            let absent = self.mode == Mode::Delta
                && ts.names.iter().any(|n| {
                    desired.get(n).is_none() && !ts.client_has.contains_key(n.as_str()) && !ts.told_absent.contains(n)
                });
            if !absent {
                return (None, true);
            }
        }
        let mut budget = self.max_response_bytes;
        let updated: Vec<Arc<Resource>> = desired
            .iter()
            .map(|(_, r)| r)
            .filter(|r| !held(&r.name, r) && ts.rejected.get(&r.name) != Some(&r.version))
            .take_while(|r| {
                // Always at least one resource; then as many as fit.
                let fits = budget > 0;
                budget = budget.saturating_sub(r.body.len().max(1));
                fits
            })
            .map(Arc::clone)
            .collect();
        let removed: Vec<String> = if self.mode == Mode::Delta {
            let mut removed: BTreeSet<String> = if extras {
                ts.client_has
                    .keys()
                    .filter(|n| desired.get(n).is_none() && (ts.wildcard || ts.names.contains(&***n)))
                    .map(|n| n.to_string())
                    .collect()
            } else {
                BTreeSet::new()
            };
            // Tell the client once that a name it asked for does not exist.
            for n in &ts.names {
                if desired.get(n).is_none() && !ts.client_has.contains_key(n.as_str()) && !ts.told_absent.contains(n) {
                    removed.insert(n.clone());
                }
            }
            removed.into_iter().collect()
        } else {
            Vec::new()
        };
        if updated.is_empty() && removed.is_empty() && !owed {
            return (None, matches);
        }
        (Some(Planned { ty, version: desired.version(), updated, removed, full_set: false }), matches)
    }

    fn send(&mut self, plan: Planned, now_ms: u64) -> Response {
        self.next_nonce += 1;
        let nonce = self.next_nonce.to_string();
        let ty = plan.ty;
        let bytes = plan.updated.iter().map(|r| r.body.len()).sum();
        let ts = &mut self.types[ty.index()];
        ts.epoch += 1;
        ts.status.responses += 1;
        ts.status.bytes_sent += bytes as u64;
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
                        name: r.name.to_string(),
                        version: r.version.to_string(),
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
        ts.epoch += 1;
        let Some(f) = ts.in_flight.take() else { return };
        if f.full_set {
            ts.client_has = f.updated.iter().cloned().collect();
            ts.rejected_set = None;
        } else {
            for (n, v) in &f.updated {
                ts.client_has.insert(n.clone(), v.clone());
            }
            for n in &f.removed {
                if ts.client_has.remove(n.as_str()).is_none() {
                    ts.told_absent.insert(n.clone());
                }
            }
        }
        for (n, _) in &f.updated {
            ts.rejected.remove(n);
            ts.told_absent.remove(&**n);
        }
        ts.status.last_acked = Some(Acked { version: f.version.clone(), nonce: f.nonce, at_ms: now_ms });
        out.events.push(Event::Ack { ty, version: f.version });
    }

    fn nack(&mut self, ty: ResourceType, message: &str, now_ms: u64, out: &mut Outcome) {
        let ts = &mut self.types[ty.index()];
        ts.epoch += 1;
        let Some(f) = ts.in_flight.take() else { return };
        if f.full_set {
            ts.rejected_set = Some(f.version.clone());
        }
        for (n, v) in &f.updated {
            ts.rejected.insert(n.clone(), v.clone());
        }
        let resources: Vec<String> = f.updated.iter().map(|(n, _)| n.to_string()).collect();
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
