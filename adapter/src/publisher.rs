//! What the routers and enforcers are sent: each label's xDS snapshot and
//! the enforcers' configuration and API sets, on `watch` channels that the
//! ADS and enforcer streams follow. A channel changes only when its content
//! does (versions are content hashes), so a change that touches one label
//! wakes only that label's streams.

use std::collections::BTreeMap;
use std::sync::Arc;

use gateway_config::Config;
use gateway_xds::snapshot::{ResourceType, Snapshot};
use gateway_xds::state::{Gateway, Inconsistent};
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::enforcer::Apis;
use crate::enforcer::resources::{ResourceSet, any, config_resource};

/// A label's snapshot: its fingerprint, and per resource type the number of resources and their bytes.
pub type LabelSummary = (String, BTreeMap<&'static str, (usize, usize)>);

/// The channels.
pub struct Publisher {
    routers: Mutex<BTreeMap<String, watch::Sender<Snapshot>>>,
    enforcer_config: watch::Sender<Arc<ResourceSet>>,
    enforcer_apis: Mutex<Apis>,
}

impl Publisher {
    /// Channels for a gateway configured by `config` (which the enforcers are sent).
    pub fn new(config: &Config) -> Publisher {
        let enforcer_config = ResourceSet::new(vec![any(gateway_proto::CONFIG_TYPE_URL, &config_resource(config))]);
        Publisher {
            routers: Mutex::new(BTreeMap::new()),
            enforcer_config: watch::Sender::new(Arc::new(enforcer_config)),
            enforcer_apis: Mutex::new(Apis::default()),
        }
    }

    /// Publishes every label of `gateway` whose snapshot changed, and the
    /// enforcers' API sets that changed. A snapshot that fails its check is a
    /// bug and is not sent: the routers keep the last good configuration.
    pub fn publish(&self, gateway: &mut Gateway) {
        let mut routers = self.routers.lock();
        let labels: Vec<String> = gateway.labels().map(String::from).chain(routers.keys().cloned()).collect();
        for label in labels {
            let snap = gateway.unchecked_snapshot(&label);
            if routers.get(&label).is_some_and(|tx| *tx.borrow() == snap) {
                continue;
            }
            // Checked only when it changed (the check walks the whole label).
            if let Err(e) = gateway.verify(&label, &snap) {
                tracing::error!(error = %e, "configuration not published");
                continue;
            }
            match routers.get(&label) {
                Some(tx) => {
                    tx.send_replace(snap);
                }
                None => {
                    routers.insert(label, watch::Sender::new(snap));
                }
            }
        }
        self.enforcer_apis.lock().refresh(gateway);
    }

    /// Watches the snapshot of `label` (built from `gateway` if the label has
    /// no channel yet). Refused when the label has no consistent snapshot (a
    /// bug: the stream ends, the Envoy keeps what it has).
    pub fn subscribe(
        &self,
        label: &str,
        gateway: impl FnOnce() -> Result<Snapshot, Inconsistent>,
    ) -> Result<watch::Receiver<Snapshot>, Inconsistent> {
        if let Some(tx) = self.routers.lock().get(label) {
            return Ok(tx.subscribe());
        }
        let snap = gateway()?;
        let mut routers = self.routers.lock();
        Ok(routers.entry(label.to_string()).or_insert_with(|| watch::Sender::new(snap)).subscribe())
    }

    /// Per label: resources and encoded bytes per type of the current snapshot.
    pub fn summary(&self) -> BTreeMap<String, LabelSummary> {
        let routers = self.routers.lock();
        routers
            .iter()
            .map(|(label, tx)| {
                let snap = tx.borrow();
                let per_type = ResourceType::ALL
                    .iter()
                    .map(|&ty| {
                        let m = snap.resources(ty);
                        (ty.short_name(), (m.len(), m.values().map(|r| r.body.len()).sum()))
                    })
                    .collect();
                (label.clone(), (snap.fingerprint(), per_type))
            })
            .collect()
    }

    /// Each label's current snapshot fingerprint.
    pub fn fingerprints(&self) -> BTreeMap<String, String> {
        self.routers.lock().iter().map(|(label, tx)| (label.clone(), tx.borrow().fingerprint())).collect()
    }

    /// Watches the enforcer configuration.
    pub fn enforcer_config(&self) -> watch::Receiver<Arc<ResourceSet>> {
        self.enforcer_config.subscribe()
    }

    /// Watches the enforcer API resources of `label`.
    pub fn enforcer_apis(&self, label: &str) -> watch::Receiver<Arc<ResourceSet>> {
        self.enforcer_apis.lock().subscribe(label)
    }
}
