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
use gateway_xds::state::Gateway;
use gateway_xds::stream::StreamStatus;
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::watch;

use crate::deploy::Registry;

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
    state: Mutex<State>,
    channels: Mutex<BTreeMap<String, watch::Sender<Snapshot>>>,
    streams: Mutex<BTreeMap<u64, StreamReport>>,
    next_stream: AtomicU64,
    nacks: AtomicU64,
    closing: watch::Sender<bool>,
    loaded: watch::Sender<bool>,
}

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Hub {
    /// A hub serving `config`.
    pub fn new(config: Arc<Config>) -> Arc<Hub> {
        Arc::new(Hub {
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
            let snap = state.gateway.snapshot(&label);
            match channels.get(&label) {
                Some(tx) => {
                    tx.send_if_modified(|cur| {
                        if *cur == snap {
                            false
                        } else {
                            *cur = snap;
                            true
                        }
                    });
                }
                None => {
                    channels.insert(label, watch::Sender::new(snap));
                }
            }
        }
        r
    }

    /// Reads the state.
    pub fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&self.state.lock())
    }

    /// Watches the snapshot of `label`.
    pub fn subscribe(&self, label: &str) -> watch::Receiver<Snapshot> {
        if let Some(tx) = self.channels.lock().get(label) {
            return tx.subscribe();
        }
        let snap = self.state.lock().gateway.snapshot(label);
        let mut channels = self.channels.lock();
        channels.entry(label.to_string()).or_insert_with(|| watch::Sender::new(snap)).subscribe()
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
    pub fn summary(&self) -> BTreeMap<String, BTreeMap<&'static str, (usize, usize)>> {
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
                (label.clone(), per_type)
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
