//! The enforcer's side of the adapter: its configuration, the APIs of its
//! label, the revoked tokens and the throttling data, served over `EnforcerDiscoveryService`
//! (`proto/wso2/discovery/service.proto`).

pub mod resources;
pub mod revocation;
pub mod service;
pub mod throttle;

use std::collections::BTreeMap;
use std::sync::Arc;

use gateway_model::Api;
use gateway_xds::state::Gateway;
use prost_types::Any;
use tokio::sync::watch;

use resources::{ResourceSet, any, api_resource, resource_hash};

/// An API, and its resource with the resource's hash.
type Built = (Arc<Api>, u64, Arc<Any>);

/// The API resources of one label, rebuilt only for APIs that changed.
#[derive(Default)]
pub struct LabelApis {
    built: BTreeMap<(String, String), Built>,
}

impl LabelApis {
    /// Brings the set up to date with `apis` (vhost, id, api). Returns the new
    /// set when anything changed.
    fn refresh<'a>(&mut self, apis: impl Iterator<Item = (&'a str, &'a str, &'a Arc<Api>)>) -> Option<ResourceSet> {
        let mut changed = false;
        let mut next = BTreeMap::new();
        for (vhost, id, api) in apis {
            let key = (vhost.to_string(), id.to_string());
            let entry = match self.built.remove(&key) {
                Some((old, hash, res)) if Arc::ptr_eq(&old, api) => (old, hash, res),
                _ => {
                    changed = true;
                    let res = any(gateway_proto::API_TYPE_URL, &api_resource(api, vhost));
                    (Arc::clone(api), resource_hash(&res), Arc::new(res))
                }
            };
            next.insert(key, entry);
        }
        changed |= !self.built.is_empty();
        self.built = next;
        changed.then(|| ResourceSet::shared(self.built.values().map(|(_, h, r)| (*h, Arc::clone(r))).collect()))
    }
}

/// Per-label API sets published to enforcer streams.
#[derive(Default)]
pub struct Apis {
    labels: BTreeMap<String, (LabelApis, watch::Sender<Arc<ResourceSet>>)>,
}

impl Apis {
    /// Publishes every label whose APIs changed in `gateway`.
    pub fn refresh(&mut self, gateway: &Gateway) {
        // label → (vhost, API id, API)
        type Deployed<'a> = Vec<(&'a str, &'a str, &'a Arc<Api>)>;
        let mut by_label: BTreeMap<&str, Deployed<'_>> = BTreeMap::new();
        for (label, key, api) in gateway.deployments() {
            by_label.entry(label).or_default().push((key.vhost.as_str(), key.id.as_str(), api));
        }
        let known: Vec<String> = self.labels.keys().cloned().collect();
        for label in
            known.iter().map(String::as_str).chain(by_label.keys().copied()).collect::<std::collections::BTreeSet<_>>()
        {
            let apis = by_label.remove(label).unwrap_or_default();
            let (built, tx) = self
                .labels
                .entry(label.to_string())
                .or_insert_with(|| (LabelApis::default(), watch::Sender::new(Arc::new(ResourceSet::new(Vec::new())))));
            if let Some(set) = built.refresh(apis.into_iter()) {
                tx.send_replace(Arc::new(set));
            }
        }
    }

    /// Watches the APIs of `label`.
    pub fn subscribe(&mut self, label: &str) -> watch::Receiver<Arc<ResourceSet>> {
        self.labels
            .entry(label.to_string())
            .or_insert_with(|| (LabelApis::default(), watch::Sender::new(Arc::new(ResourceSet::new(Vec::new())))))
            .1
            .subscribe()
    }
}
