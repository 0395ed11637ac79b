//! What the gateway serves, per label, built incrementally.
//!
//! [`Gateway`] holds the deployed APIs of every label (gateway environment)
//! and the Envoy resources they translate to. Deploying or removing one API
//! re-translates only that API's clusters and the route configurations of
//! the scopes it touches, so a change at 10,000 APIs costs about as much as
//! at ten.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use gateway_config::Config;
use gateway_model::Api;

use envoy_types::pb::envoy::config::route::v3::{route, route_action};

use crate::snapshot::{References, Resource, ResourceMap, ResourceType, Snapshot, set_version};
use crate::translate::{
    listener::listeners,
    names::{route_config_name, scope_name},
    route::{PlacedRoute, translate_api},
    scope::{route_configuration, scoped_route, system_routes},
};

/// Identifies an API deployment within a label: the vhost and the API id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct ApiKey {
    /// Virtual host.
    pub vhost: String,
    /// API id (UUID or name:version hash).
    pub id: String,
}

#[derive(Debug)]
struct Entry {
    api: Arc<Api>,
    /// Sorted, no duplicates (usually one scope).
    scopes: Box<[String]>,
    clusters: Box<[String]>,
    endpoints: Box<[String]>,
}

#[derive(Debug, Default)]
struct Label {
    apis: BTreeMap<ApiKey, Entry>,
    /// Per scope, its APIs (sorted). The per-scope sets are small (most
    /// scopes hold one API), so they are exact-size vectors: a B-tree node
    /// costs hundreds of bytes even for one entry, times 10,000 scopes.
    scope_members: BTreeMap<String, Vec<ApiKey>>,
    /// Per scope, the clusters its routes send to (bootstrap clusters left
    /// out; sorted, no duplicates).
    scope_clusters: BTreeMap<String, Box<[String]>>,
    /// Resources per type (the listener slot is unused: listeners are shared).
    /// Shared with the snapshots: a type that did not change keeps the same
    /// map, so streams skip it without looking at its entries.
    maps: [Arc<ResourceMap>; 5],
    /// Content version per type; `None` when it must be recomputed.
    versions: [Option<String>; 5],
    /// Scopes shared by several APIs whose route configuration is out of
    /// date. Rebuilding such a scope translates every member again, so it
    /// is done once per batch of changes, when the next snapshot is taken
    /// (a load of N APIs under one first segment would otherwise translate
    /// N²/2 times).
    stale: BTreeSet<String>,
}

impl Label {
    fn insert(&mut self, ty: ResourceType, resource: Resource) {
        let i = ty.index();
        if self.maps[i].get(&resource.name).is_some_and(|r| r.version == resource.version) {
            return;
        }
        Arc::make_mut(&mut self.maps[i]).insert(resource.name.clone(), Arc::new(resource));
        self.versions[i] = None;
    }

    /// Takes `key` out of the members of `scope`.
    fn leave_scope(&mut self, scope: &str, key: &ApiKey) {
        if let Some(m) = self.scope_members.get_mut(scope)
            && let Ok(i) = m.binary_search(key)
        {
            m.remove(i);
        }
    }

    fn remove(&mut self, ty: ResourceType, name: &str) {
        let i = ty.index();
        if self.maps[i].contains_key(name) {
            Arc::make_mut(&mut self.maps[i]).remove(name);
            self.versions[i] = None;
        }
    }
}

/// Deployed APIs and their Envoy resources, per label.
#[derive(Debug)]
pub struct Gateway {
    config: Arc<Config>,
    listeners: Arc<ResourceMap>,
    listeners_version: String,
    labels: BTreeMap<String, Label>,
    ready: bool,
    /// APIs translated so far (each deploy translates its API once; a
    /// rebuild of a shared scope translates each member again).
    translations: u64,
}

/// Scopes that hold system routes.
const SYSTEM_SCOPES: &[&str] = &["health", "ready", "testkey", ".wellknown"];

/// Clusters of the bootstrap (static), which routes may use without CDS.
const BOOTSTRAP_CLUSTERS: &[&str] = &[crate::translate::names::CLUSTER_ENFORCER_HTTP];

/// A snapshot that refers to resources it does not hold: a bug in the
/// adapter, never sent to an Envoy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the configuration of label {label} refers to resources it does not hold: {}", dangling.join(", "))]
pub struct Inconsistent {
    /// The label.
    pub label: String,
    /// What is missing.
    pub dangling: Vec<String>,
}

impl Gateway {
    /// An empty gateway for `config`.
    pub fn new(config: Arc<Config>) -> Gateway {
        let listeners = listeners(&config)
            .into_iter()
            .map(|l| {
                let r = Resource::encode(ResourceType::Listener, l.name.clone(), &l);
                (Arc::clone(&r.name), Arc::new(r))
            })
            .collect();
        let listeners: ResourceMap = listeners;
        let listeners_version = set_version(listeners.values());
        Gateway {
            config,
            listeners: Arc::new(listeners),
            listeners_version,
            labels: BTreeMap::new(),
            ready: false,
            translations: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Labels that have (or had) APIs.
    pub fn labels(&self) -> impl Iterator<Item = &str> {
        self.labels.keys().map(String::as_str)
    }

    /// The API deployed under `key` in `label`.
    pub fn api(&self, label: &str, key: &ApiKey) -> Option<&Arc<Api>> {
        self.labels.get(label).and_then(|l| l.apis.get(key)).map(|e| &e.api)
    }

    /// Every deployment: label, key and API.
    pub fn deployments(&self) -> impl Iterator<Item = (&str, &ApiKey, &Arc<Api>)> {
        self.labels.iter().flat_map(|(l, s)| s.apis.iter().map(move |(k, e)| (l.as_str(), k, &e.api)))
    }

    /// Marks start-up as done: `/ready` is served from now on.
    pub fn set_ready(&mut self) {
        if self.ready {
            return;
        }
        self.ready = true;
        let names: Vec<String> = self.labels.keys().cloned().collect();
        for l in names {
            self.rebuild_scope(&l, "ready");
        }
    }

    /// How many times an API was translated so far.
    pub fn translations(&self) -> u64 {
        self.translations
    }

    /// True once [`Gateway::set_ready`] was called.
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    fn label_mut(&mut self, label: &str) -> &mut Label {
        if !self.labels.contains_key(label) {
            let mut state = Label::default();
            // The tracing collector's cluster ([tracing]), in every label.
            if let Some(t) = crate::translate::tracing::trace(&self.config) {
                let c = crate::translate::tracing::cluster(&t);
                state.insert(ResourceType::Cluster, Resource::encode(ResourceType::Cluster, c.name.clone(), &c));
            }
            self.labels.insert(label.to_string(), state);
            for s in SYSTEM_SCOPES {
                self.rebuild_scope(label, s);
            }
        }
        self.labels.get_mut(label).expect("inserted above")
    }

    /// Deploys (or replaces) `api` on `vhost` in `label`.
    pub fn upsert(&mut self, label: &str, vhost: &str, api: Arc<Api>) {
        let key = ApiKey { vhost: vhost.to_string(), id: api.id.clone() };
        let config = Arc::clone(&self.config);
        let t = translate_api(&api, vhost, &config);
        self.translations += 1;
        let state = self.label_mut(label);
        let old = state.apis.remove(&key);

        let mut clusters = Vec::new();
        let mut endpoints = Vec::new();
        for c in &t.clusters {
            let name = c.cluster.name.clone();
            state.insert(ResourceType::Cluster, Resource::encode(ResourceType::Cluster, name.clone(), &c.cluster));
            clusters.push(name.clone());
            if let Some(cla) = &c.endpoints {
                state.insert(ResourceType::Endpoint, Resource::encode(ResourceType::Endpoint, name.clone(), cla));
                endpoints.push(name);
            }
        }
        let scopes: BTreeSet<String> = t.routes.iter().map(|r| r.scope.clone()).collect();
        let mut touched: BTreeSet<String> = scopes.clone();
        let (clusters, endpoints) = (clusters.into_boxed_slice(), endpoints.into_boxed_slice());
        if let Some(old) = &old {
            for name in old.clusters.iter().filter(|n| !clusters.contains(n)) {
                state.remove(ResourceType::Cluster, name);
            }
            for name in old.endpoints.iter().filter(|n| !endpoints.contains(n)) {
                state.remove(ResourceType::Endpoint, name);
            }
            for s in &old.scopes {
                state.leave_scope(s, &key);
                touched.insert(s.clone());
            }
        }
        for s in &scopes {
            // Exact for the usual one member; amortised growth beyond.
            let members = state.scope_members.entry(s.clone()).or_insert_with(|| Vec::with_capacity(1));
            if let Err(i) = members.binary_search(&key) {
                members.insert(i, key.clone());
            }
        }
        let scopes = scopes.into_iter().collect();
        state.apis.insert(key.clone(), Entry { api, scopes, clusters, endpoints });
        // A scope with no other API is rebuilt now from the routes just
        // translated; one shared with other APIs waits for the snapshot.
        let (alone, shared): (Vec<String>, Vec<String>) =
            touched.into_iter().partition(|s| state.scope_members.get(s).is_none_or(|m| m.iter().all(|k| *k == key)));
        state.stale.extend(shared);
        for s in alone {
            self.rebuild_scope_with(label, &s, Some((&key, &t.routes)));
        }
    }

    /// Removes the API `key` from `label`. Returns false when it was not there.
    pub fn remove(&mut self, label: &str, key: &ApiKey) -> bool {
        let Some(state) = self.labels.get_mut(label) else { return false };
        let Some(old) = state.apis.remove(key) else { return false };
        for name in &old.clusters {
            state.remove(ResourceType::Cluster, name);
        }
        for name in &old.endpoints {
            state.remove(ResourceType::Endpoint, name);
        }
        for s in &old.scopes {
            state.leave_scope(s, key);
        }
        // An emptied scope goes now; one other APIs still share waits for
        // the snapshot (see `Label::stale`).
        let (emptied, shared): (Vec<String>, Vec<String>) =
            old.scopes.iter().cloned().partition(|s| state.scope_members.get(s).is_none_or(Vec::is_empty));
        state.stale.extend(shared);
        for s in emptied {
            self.rebuild_scope(label, &s);
        }
        true
    }

    fn rebuild_scope(&mut self, label: &str, scope: &str) {
        self.rebuild_scope_with(label, scope, None);
    }

    /// Rebuilds one scope's route configuration. `fresh` carries routes just
    /// translated for one API, so it is not translated twice.
    fn rebuild_scope_with(&mut self, label: &str, scope: &str, fresh: Option<(&ApiKey, &Vec<PlacedRoute>)>) {
        let config = Arc::clone(&self.config);
        let ready = self.ready;
        let Some(state) = self.labels.get_mut(label) else { return };
        state.stale.remove(scope);
        let mut routes: Vec<PlacedRoute> =
            system_routes(&config, ready).into_iter().filter(|r| r.scope == scope).collect();
        let members: Vec<ApiKey> = state.scope_members.get(scope).map(|m| m.to_vec()).unwrap_or_default();
        for key in members {
            match fresh {
                Some((k, rs)) if *k == key => routes.extend(rs.iter().filter(|r| r.scope == scope).cloned()),
                _ => {
                    if let Some(e) = state.apis.get(&key) {
                        let t = translate_api(&e.api, &key.vhost, &config);
                        self.translations += 1;
                        routes.extend(t.routes.into_iter().filter(|r| r.scope == scope));
                    }
                }
            }
        }
        if state.scope_members.get(scope).is_some_and(Vec::is_empty) {
            state.scope_members.remove(scope);
        }
        let rc_name = route_config_name(scope);
        let scope_entry = scope_name(scope);
        if routes.is_empty() {
            state.remove(ResourceType::Route, &rc_name);
            state.remove(ResourceType::ScopedRoute, &scope_entry);
            state.scope_clusters.remove(scope);
            return;
        }
        let used: BTreeSet<&str> = routes
            .iter()
            .filter_map(|r| match &r.route.action {
                Some(route::Action::Route(a)) => match &a.cluster_specifier {
                    Some(route_action::ClusterSpecifier::Cluster(c)) if !BOOTSTRAP_CLUSTERS.contains(&c.as_str()) => {
                        Some(c.as_str())
                    }
                    _ => None,
                },
                _ => None,
            })
            .collect();
        state.scope_clusters.insert(scope.to_string(), used.into_iter().map(String::from).collect());
        let cors = crate::translate::route::global_cors(&config);
        let rc = route_configuration(scope, routes, cors.as_ref());
        state.insert(ResourceType::Route, Resource::encode(ResourceType::Route, rc_name, &rc));
        let srds = scoped_route(scope);
        state.insert(ResourceType::ScopedRoute, Resource::encode(ResourceType::ScopedRoute, scope_entry, &srds));
    }

    /// Rebuilds the shared scopes of `label` that changed since the last
    /// snapshot, each once.
    fn rebuild_stale(&mut self, label: &str) {
        let Some(state) = self.labels.get_mut(label) else { return };
        for s in std::mem::take(&mut state.stale) {
            self.rebuild_scope(label, &s);
        }
    }

    /// The snapshot of `label`, checked for consistency before anyone sees
    /// it: every cluster a route uses exists, every EDS cluster has its
    /// endpoints, every scope's route configuration exists. An unknown label
    /// gets the listeners and the system routes only.
    pub fn snapshot(&mut self, label: &str) -> Result<Snapshot, Inconsistent> {
        let snap = self.unchecked_snapshot(label);
        self.verify(label, &snap)?;
        Ok(snap)
    }

    /// Checks a snapshot of `label` (see [`Gateway::snapshot`]).
    pub fn verify(&self, label: &str, snap: &Snapshot) -> Result<(), Inconsistent> {
        let dangling = snap.dangling(&self.references(label));
        if dangling.is_empty() { Ok(()) } else { Err(Inconsistent { label: label.to_string(), dangling }) }
    }

    /// What the resources of `label` refer to.
    fn references(&self, label: &str) -> References<'_> {
        let Some(state) = self.labels.get(label) else { return References::default() };
        References {
            clusters: state.scope_clusters.values().flatten().map(String::as_str).collect(),
            endpoints: state.apis.values().flat_map(|e| e.endpoints.iter().map(String::as_str)).collect(),
            route_configs: state.scope_members.keys().map(|s| route_config_name(s)).collect(),
        }
    }

    /// The snapshot of `label`, not yet checked: publish it only after
    /// [`Gateway::verify`].
    pub fn unchecked_snapshot(&mut self, label: &str) -> Snapshot {
        self.rebuild_stale(label);
        let listeners = Arc::clone(&self.listeners);
        let listeners_version = self.listeners_version.clone();
        let state = self.label_mut(label);
        state.maps[ResourceType::Listener.index()] = listeners;
        state.versions[ResourceType::Listener.index()] = Some(listeners_version);
        for ty in ResourceType::ALL {
            let i = ty.index();
            if state.versions[i].is_none() {
                state.versions[i] = Some(set_version(state.maps[i].values()));
            }
        }
        Snapshot::with_versions(
            state.maps.clone(),
            std::array::from_fn(|i| state.versions[i].clone().unwrap_or_default()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api() -> Arc<Api> {
        api_at("Pets", "/pets")
    }

    /// An API named `name` with the base path `context` and one resource, `/p`.
    fn api_at(name: &str, context: &str) -> Arc<Api> {
        let mut files = gateway_model::ProjectFiles::new();
        files.insert(
            "api.yaml",
            format!("type: api\ndata:\n  name: {name}\n  version: 1.0.0\n  context: {context}\n  endpointConfig:\n    endpoint_type: http\n    production_endpoints:\n      url: http://10.0.0.1:8080\n"),
        );
        files.insert(
            "Definitions/swagger.yaml",
            format!("openapi: 3.0.0\ninfo: {{title: {name}, version: 1.0.0}}\npaths:\n  /p:\n    get: {{}}\n"),
        );
        let p = gateway_model::parse_project(&files, &gateway_model::ParseOptions::default()).expect("valid project");
        Arc::new(p.api)
    }

    /// The route paths (prefixes or regexes) of the scope `common`.
    fn common_routes(snap: &Snapshot) -> Vec<String> {
        use envoy_types::pb::envoy::config::route::v3::{RouteConfiguration, route_match::PathSpecifier};
        use prost::Message;
        let Some(r) = snap.resources(ResourceType::Route).get("routes/common") else { return Vec::new() };
        let rc = RouteConfiguration::decode(r.body.as_slice()).expect("route configuration");
        let mut paths: Vec<String> = rc
            .virtual_hosts
            .iter()
            .flat_map(|v| &v.routes)
            .filter_map(|r| match r.r#match.as_ref()?.path_specifier.as_ref()? {
                PathSpecifier::Prefix(p) | PathSpecifier::Path(p) => Some(p.clone()),
                PathSpecifier::SafeRegex(m) => Some(m.regex.clone()),
                _ => None,
            })
            .collect();
        paths.sort();
        paths
    }

    #[test]
    fn apis_sharing_a_scope_are_translated_once_per_batch_not_once_per_member() {
        let mut g = Gateway::new(Arc::new(Config::default()));
        g.snapshot("Default").expect("consistent");
        let before = g.translations();
        // One batch (as the artifacts folder's load): 40 APIs, one scope.
        for i in 0..40 {
            g.upsert("Default", "localhost", api_at(&format!("P{i}"), &format!("/common/p{i}")));
        }
        let snap = g.snapshot("Default").expect("consistent");
        // Each API once at its deploy, and each again in the one rebuild of
        // the shared scope: 80. Rebuilding the scope at every deploy was
        // 1 + 2 + ... + 40 = 820.
        assert_eq!(g.translations() - before, 80);
        let paths = common_routes(&snap);
        assert_eq!(paths.len(), 40, "{paths:?}");
        // The version joins the base path (`context` without `{version}`).
        for i in [0, 17, 39] {
            let want = format!("^/common/p{i}/1\\.0\\.0/p/?$");
            assert!(paths.contains(&want), "{want} not in {paths:?}");
        }

        // A single change to a shared scope: the deploy, then one rebuild.
        let before = g.translations();
        g.upsert("Default", "localhost", api_at("P40", "/common/p40"));
        let snap = g.snapshot("Default").expect("consistent");
        assert_eq!(g.translations() - before, 1 + 41);
        assert_eq!(common_routes(&snap).len(), 41);

        // Removing APIs from the scope in one batch rebuilds it once.
        let before = g.translations();
        let keys: Vec<ApiKey> = g.deployments().map(|(_, k, _)| k.clone()).take(30).collect();
        for k in &keys {
            assert!(g.remove("Default", k));
        }
        let snap = g.snapshot("Default").expect("consistent");
        assert_eq!(g.translations() - before, 11);
        assert_eq!(common_routes(&snap).len(), 11);

        // The last ones: the scope goes with them, nothing is translated.
        let before = g.translations();
        let keys: Vec<ApiKey> = g.deployments().map(|(_, k, _)| k.clone()).collect();
        for k in &keys {
            assert!(g.remove("Default", k));
        }
        let snap = g.snapshot("Default").expect("consistent");
        assert_eq!(g.translations(), before);
        assert!(snap.resources(ResourceType::Route).get("routes/common").is_none());
        assert!(snap.resources(ResourceType::ScopedRoute).keys().all(|k| !k.contains("common")));
        assert!(snap.resources(ResourceType::Cluster).is_empty());
    }

    #[test]
    fn a_single_api_in_its_scope_is_translated_once() {
        let mut g = Gateway::new(Arc::new(Config::default()));
        for i in 0..10 {
            g.upsert("Default", "localhost", api_at(&format!("P{i}"), &format!("/p{i}")));
        }
        g.snapshot("Default").expect("consistent");
        assert_eq!(g.translations(), 10);
    }

    #[test]
    fn a_snapshot_that_refers_to_missing_resources_is_never_handed_out() {
        let mut g = Gateway::new(Arc::new(Config::default()));
        g.upsert("Default", "localhost", api());
        let snap = g.snapshot("Default").expect("consistent");
        assert!(snap.resources(ResourceType::Cluster).len() == 1);
        // Break the invariant the way a bug would: a cluster, its endpoints
        // and a route configuration go while routes still use them.
        let l = g.labels.get_mut("Default").expect("label");
        let cluster = l.maps[ResourceType::Cluster.index()].keys().next().cloned().expect("cluster");
        l.remove(ResourceType::Cluster, &cluster);
        l.remove(ResourceType::Endpoint, &cluster);
        l.remove(ResourceType::Route, "routes/pets");
        let err = g.snapshot("Default").expect_err("inconsistent");
        assert_eq!(
            err.dangling,
            vec![
                format!("cluster {cluster}"),
                format!("endpoints {cluster}"),
                "route configuration routes/pets".into()
            ]
        );
        assert!(err.to_string().contains("label Default"), "{err}");
    }
}
