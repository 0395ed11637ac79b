//! The adapter's shared state: deployed APIs, the snapshot of every label and
//! the status of every connected Envoy.
//!
//! Changes go through [`Hub::update`], which holds the one lock for the
//! change, then publishes each label's new snapshot on a `watch` channel
//! (only if it changed: versions are content hashes). Each ADS stream
//! watches its label's channel.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use gateway_config::Config;
use gateway_xds::snapshot::Snapshot;
use gateway_xds::state::{Gateway, Inconsistent};
use gateway_xds::stream::StreamStatus;
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::watch;

use crate::deploy::Registry;
use crate::enforcer::Apis;
use crate::enforcer::resources::{ResourceSet, any, config_resource};
use crate::enforcer::revocation::{RevocationError, Revoked, Store};
use crate::enforcer::service::EnforcerStreamReport;

/// Everything behind the lock.
pub struct State {
    /// Translated APIs per label.
    pub gateway: Gateway,
    /// Which project source deployed what.
    pub registry: Registry,
}

/// A connected Envoy, as reported by the status endpoint.
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

/// Shared adapter state.
pub struct Hub {
    /// Serializes changes to what is deployed (REST deploys and undeploys,
    /// the artifacts folder, the start-up restore), so that one change's
    /// check, store writes and apply see no other change in between. Held
    /// across the store's disk writes, which run off the async workers; the
    /// state lock below is taken only briefly, so readers (routers, lists,
    /// status) never wait for a disk.
    changes: tokio::sync::Mutex<()>,
    state: Mutex<State>,
    channels: Mutex<BTreeMap<String, watch::Sender<Snapshot>>>,
    streams: Mutex<BTreeMap<u64, StreamReport>>,
    next_stream: AtomicU64,
    nacks: AtomicU64,
    closing: watch::Sender<bool>,
    loaded: watch::Sender<bool>,
    enforcer_config: watch::Sender<Arc<ResourceSet>>,
    enforcer_apis: Mutex<Apis>,
    revoked: Mutex<Store>,
    /// One change of the revoked tokens at a time (held while it is saved).
    revocation_writes: Mutex<()>,
    revoked_tx: watch::Sender<Arc<ResourceSet>>,
    enforcer_streams: Mutex<BTreeMap<u64, EnforcerStreamReport>>,
}

/// Unix time in seconds.
pub fn now_secs() -> i64 {
    (now_ms() / 1000) as i64
}

fn revoked_set(store: &Store) -> ResourceSet {
    ResourceSet::new(
        store
            .entries()
            .map(|r| {
                any(
                    gateway_proto::REVOKED_TOKEN_TYPE_URL,
                    &gateway_proto::api::RevokedToken { jti: r.jti, expirytime: r.expiry },
                )
            })
            .collect(),
    )
}

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// A label's snapshot: its fingerprint, and per resource type the number of resources and their bytes.
pub type LabelSummary = (String, BTreeMap<&'static str, (usize, usize)>);

impl Hub {
    /// A hub serving `config`.
    pub fn new(config: Arc<Config>) -> Arc<Hub> {
        let enforcer_config = ResourceSet::new(vec![any(gateway_proto::CONFIG_TYPE_URL, &config_resource(&config))]);
        Arc::new(Hub {
            enforcer_config: watch::Sender::new(Arc::new(enforcer_config)),
            enforcer_apis: Mutex::new(Apis::default()),
            revoked: Mutex::new(Store::default()),
            revocation_writes: Mutex::new(()),
            revoked_tx: watch::Sender::new(Arc::new(ResourceSet::new(Vec::new()))),
            enforcer_streams: Mutex::new(BTreeMap::new()),
            changes: tokio::sync::Mutex::new(()),
            state: Mutex::new(State { gateway: Gateway::new(config), registry: Registry::default() }),
            channels: Mutex::new(BTreeMap::new()),
            streams: Mutex::new(BTreeMap::new()),
            next_stream: AtomicU64::new(1),
            nacks: AtomicU64::new(0),
            closing: watch::Sender::new(false),
            loaded: watch::Sender::new(false),
        })
    }

    /// Applies a change, then publishes every label's snapshot that changed.
    pub fn update<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut state = self.state.lock();
        let r = f(&mut state);
        let mut channels = self.channels.lock();
        let labels: Vec<String> = state.gateway.labels().map(String::from).chain(channels.keys().cloned()).collect();
        for label in labels {
            let snap = state.gateway.unchecked_snapshot(&label);
            if channels.get(&label).is_some_and(|tx| *tx.borrow() == snap) {
                continue;
            }
            // Checked only when it changed (the check walks the whole label).
            if let Err(e) = state.gateway.verify(&label, &snap) {
                // A bug, never sent: the routers keep the last good configuration.
                tracing::error!(error = %e, "configuration not published");
                continue;
            }
            match channels.get(&label) {
                Some(tx) => {
                    tx.send_replace(snap);
                }
                None => {
                    channels.insert(label, watch::Sender::new(snap));
                }
            }
        }
        self.enforcer_apis.lock().refresh(&state.gateway);
        r
    }

    /// Watches the enforcer configuration.
    pub fn enforcer_config(&self) -> watch::Receiver<Arc<ResourceSet>> {
        self.enforcer_config.subscribe()
    }

    /// Watches the enforcer API resources of `label`.
    pub fn enforcer_apis(&self, label: &str) -> watch::Receiver<Arc<ResourceSet>> {
        self.enforcer_apis.lock().subscribe(label)
    }

    /// Watches the revoked tokens.
    pub fn revoked_tokens(&self) -> watch::Receiver<Arc<ResourceSet>> {
        self.revoked_tx.subscribe()
    }

    /// Uses `store` for revoked tokens (at start-up).
    pub fn set_revocation_store(&self, store: Store) {
        let set = revoked_set(&store);
        *self.revoked.lock() = store;
        self.revoked_tx.send_replace(Arc::new(set));
    }

    /// Changes the revoked tokens with `f` (which saves them, a blocking
    /// disk write): one writer at a time, on a copy, so readers of the list
    /// never wait for the disk; the copy replaces the list once saved and
    /// is pushed to every enforcer. Call it off the async workers.
    fn change_revoked<R>(
        &self,
        f: impl FnOnce(&mut Store) -> Result<R, RevocationError>,
        changed: impl Fn(&R) -> bool,
    ) -> Result<R, RevocationError> {
        let _writer = self.revocation_writes.lock();
        let mut next = self.revoked.lock().clone();
        let r = f(&mut next)?;
        if changed(&r) {
            let set = revoked_set(&next);
            *self.revoked.lock() = next;
            self.revoked_tx.send_replace(Arc::new(set));
        }
        Ok(r)
    }

    /// Revokes `tokens`: saved, then pushed to every enforcer. Returns the
    /// version of the revoked-token set that includes them.
    pub fn revoke(&self, tokens: &[Revoked]) -> Result<String, RevocationError> {
        self.change_revoked(|s| s.revoke(tokens, now_secs()), |changed| *changed)?;
        Ok(self.revoked_tx.borrow().version.clone())
    }

    /// Removes the revocations of `jtis`: saved, then pushed to every
    /// enforcer. Returns how many there were.
    pub fn unrevoke(&self, jtis: &[String]) -> Result<usize, RevocationError> {
        self.change_revoked(|s| s.unrevoke(jtis), |n| *n > 0)
    }

    /// The version of the revoked-token set in force.
    pub fn revoked_version(&self) -> String {
        self.revoked_tx.borrow().version.clone()
    }

    /// The revoked tokens.
    pub fn revoked_list(&self) -> Vec<Revoked> {
        self.revoked.lock().entries().collect()
    }

    /// Drops revocations of tokens that have expired.
    pub fn expire_revocations(&self) {
        let _ = self.change_revoked(|s| Ok(s.expire(now_secs())), |changed| *changed);
    }

    /// Records an enforcer stream's status.
    pub fn report_enforcer(&self, report: EnforcerStreamReport) {
        self.enforcer_streams.lock().insert(report.id, report);
    }

    /// Forgets a closed enforcer stream.
    pub fn forget_enforcer(&self, id: u64) {
        self.enforcer_streams.lock().remove(&id);
    }

    /// The connected enforcer streams.
    pub fn enforcer_streams(&self) -> Vec<EnforcerStreamReport> {
        self.enforcer_streams.lock().values().cloned().collect()
    }

    /// The lock every change to what is deployed takes first (see the field).
    pub fn changes(&self) -> &tokio::sync::Mutex<()> {
        &self.changes
    }

    /// Reads the state.
    pub fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&self.state.lock())
    }

    /// Watches the snapshot of `label`. Refused when the label has never had
    /// a consistent snapshot (a bug: the stream ends, the Envoy keeps what it has).
    pub fn subscribe(&self, label: &str) -> Result<watch::Receiver<Snapshot>, Inconsistent> {
        if let Some(tx) = self.channels.lock().get(label) {
            return Ok(tx.subscribe());
        }
        let snap = self.state.lock().gateway.snapshot(label)?;
        let mut channels = self.channels.lock();
        Ok(channels.entry(label.to_string()).or_insert_with(|| watch::Sender::new(snap)).subscribe())
    }

    /// Asks every stream to end (the adapter is stopping).
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Resolves once [`Hub::close`] was called.
    pub async fn closed(&self) {
        let mut rx = self.closing.subscribe();
        let _ = rx.wait_for(|c| *c).await;
    }

    /// Marks the start-up projects as applied: streams start answering.
    pub fn set_loaded(&self) {
        self.loaded.send_replace(true);
    }

    /// Resolves once the start-up projects are applied, so that no Envoy
    /// ever receives a configuration without them.
    pub async fn loaded(&self) {
        let mut rx = self.loaded.subscribe();
        let _ = rx.wait_for(|l| *l).await;
    }

    /// Per label: resources and encoded bytes per type of the current snapshot.
    pub fn summary(&self) -> BTreeMap<String, LabelSummary> {
        let channels = self.channels.lock();
        channels
            .iter()
            .map(|(label, tx)| {
                let snap = tx.borrow();
                let per_type = gateway_xds::snapshot::ResourceType::ALL
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

    /// A new stream number.
    pub fn next_stream_id(&self) -> u64 {
        self.next_stream.fetch_add(1, Ordering::Relaxed)
    }

    /// Records a stream's status.
    pub fn report(&self, report: StreamReport) {
        self.streams.lock().insert(report.id, report);
    }

    /// Forgets a closed stream.
    pub fn forget(&self, id: u64) {
        self.streams.lock().remove(&id);
    }

    /// Counts a NACK.
    pub fn count_nack(&self) {
        self.nacks.fetch_add(1, Ordering::Relaxed);
    }

    /// NACKs received since start.
    pub fn nacks(&self) -> u64 {
        self.nacks.load(Ordering::Relaxed)
    }

    /// The connected streams.
    pub fn streams(&self) -> Vec<StreamReport> {
        self.streams.lock().values().cloned().collect()
    }
}
