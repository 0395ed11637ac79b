//! Content-versioned resources and immutable snapshots.
//!
//! A [`Resource`] carries the encoded protobuf of one Envoy resource and a
//! version derived from those bytes, so the same content always has the same
//! version (also across adapter restarts) and a rebuild that changes nothing
//! sends nothing. A [`Snapshot`] is what one gateway label should hold: every
//! resource of every type, each map shared cheaply between snapshots.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use envoy_types::pb::google::protobuf::Any;
use prost::Message;

pub use crate::resource_type::ResourceType;

/// A 64-bit content hash rendered as 16 hex digits.
pub fn content_version(bytes: &[u8]) -> String {
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(bytes))
}

/// One encoded Envoy resource.
#[derive(Clone, PartialEq, Eq)]
pub struct Resource {
    /// The resource name (cluster name, route configuration name, ...).
    /// Shared (not copied) by the label's map and what each stream records
    /// its client holds: there are tens of thousands of them.
    pub name: Arc<str>,
    /// Content hash of `body` (shared the same way).
    pub version: Arc<str>,
    /// The encoded protobuf message (not wrapped in `Any`).
    pub body: Vec<u8>,
}

impl fmt::Debug for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resource")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("bytes", &self.body.len())
            .finish()
    }
}

impl Resource {
    /// Encodes `message` (a resource of type `ty`) canonically and versions
    /// it by content.
    pub fn encode<M: Message>(ty: ResourceType, name: impl Into<String>, message: &M) -> Resource {
        Resource::from_bytes(name, crate::canon::canonicalize(ty, &message.encode_to_vec()))
    }

    /// Wraps already encoded bytes.
    pub fn from_bytes(name: impl Into<String>, body: Vec<u8>) -> Resource {
        let version = content_version(&body).into();
        Resource { name: Arc::from(name.into()), version, body }
    }

    /// The resource as an `Any` of type `ty`.
    pub fn to_any(&self, ty: ResourceType) -> Any {
        Any { type_url: ty.type_url().to_string(), value: self.body.clone() }
    }
}

/// The resources of one type, by name.
pub type ResourceMap = BTreeMap<Arc<str>, Arc<Resource>>;

/// Everything one label's Envoys should hold. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    maps: [Arc<ResourceMap>; 5],
    versions: [String; 5],
}

impl PartialEq for Snapshot {
    fn eq(&self, other: &Self) -> bool {
        self.versions == other.versions
    }
}

impl Snapshot {
    /// A snapshot of the given per-type maps (indexed like [`ResourceType::ALL`]).
    pub fn new(maps: [Arc<ResourceMap>; 5]) -> Snapshot {
        let versions = std::array::from_fn(|i| set_version(maps[i].values()));
        Snapshot { maps, versions }
    }

    /// A snapshot whose per-type versions are already known.
    pub fn with_versions(maps: [Arc<ResourceMap>; 5], versions: [String; 5]) -> Snapshot {
        Snapshot { maps, versions }
    }

    /// The resources of one type.
    pub fn resources(&self, ty: ResourceType) -> &Arc<ResourceMap> {
        &self.maps[ty.index()]
    }

    /// The content version of one type's whole set.
    pub fn version(&self, ty: ResourceType) -> &str {
        &self.versions[ty.index()]
    }

    /// A short fingerprint of the whole snapshot, for logs.
    pub fn fingerprint(&self) -> String {
        content_version(self.versions.join("/").as_bytes())
    }

    /// Checks that every name a resource refers to exists: clusters named by
    /// routes, endpoints of EDS clusters, route configurations named by scopes.
    /// Returns the dangling references (empty when consistent).
    pub fn dangling(&self, refs: &References<'_>) -> Vec<String> {
        let mut out = Vec::new();
        for c in &refs.clusters {
            if !self.maps[ResourceType::Cluster.index()].contains_key(*c) {
                out.push(format!("cluster {c}"));
            }
        }
        for e in &refs.endpoints {
            if !self.maps[ResourceType::Endpoint.index()].contains_key(*e) {
                out.push(format!("endpoints {e}"));
            }
        }
        for r in &refs.route_configs {
            if !self.maps[ResourceType::Route.index()].contains_key(r.as_str()) {
                out.push(format!("route configuration {r}"));
            }
        }
        out
    }
}

/// Names that resources of a snapshot refer to (see [`Snapshot::dangling`]).
#[derive(Debug, Clone, Default)]
pub struct References<'a> {
    /// Clusters used by routes.
    pub clusters: Vec<&'a str>,
    /// Load assignments needed by EDS clusters.
    pub endpoints: Vec<&'a str>,
    /// Route configurations named by scopes.
    pub route_configs: Vec<String>,
}

/// The version of a set of resources: a hash of their names and versions.
pub fn set_version<'a>(resources: impl IntoIterator<Item = &'a Arc<Resource>>) -> String {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for r in resources {
        h.update(r.name.as_bytes());
        h.update(&[0]);
        h.update(r.version.as_bytes());
        h.update(&[0]);
    }
    format!("{:016x}", h.digest())
}
