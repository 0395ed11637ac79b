//! The adapter's shared state, and the one way to change it.
//!
//! * [`State`]: what is deployed where ([`deployment::Deployments`], the
//!   pure rules) and its translation into Envoy resources per label
//!   ([`Gateway`]); changed only through [`Hub::update`].
//! * [`Publisher`]: the snapshots routers and enforcers are sent, published
//!   after every change.
//! * [`Status`]: what the connected routers and enforcers acknowledged.
//! * [`Revocations`]: the revoked tokens.
//! * [`Catalogue`]: throttling policies and blocking conditions.
//!
//! A change to what is deployed (REST deploys and undeploys, the artifacts
//! folder, the start-up restore) first takes [`Hub::changes`], so that one
//! change's check, store writes and apply see no other change in between;
//! the state lock itself is held only while applying, so readers (routers,
//! lists, status) never wait for a disk.

use std::sync::Arc;

use deployment::{Deployments, Effect};
use gateway_config::Config;
use gateway_model::{Problems, Project};
use gateway_xds::snapshot::Snapshot;
use gateway_xds::state::{ApiKey, Gateway, Inconsistent};
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::enforcer::revocation::Revocations;
use crate::enforcer::throttle::Catalogue;
use crate::metrics::Metrics;
use crate::publisher::Publisher;
use crate::status::Status;

/// What is deployed, and its translation.
pub struct State {
    /// Translated APIs per label.
    pub gateway: Gateway,
    /// Which source deployed what where.
    pub deployments: Deployments,
}

impl State {
    /// Deploys `project` as what `source` provides (see [`Deployments::deploy`]).
    pub fn deploy(&mut self, source: &str, project: Project) -> Result<(), Problems> {
        let effects = self.deployments.deploy(source, project)?;
        self.apply(effects);
        Ok(())
    }

    /// Removes everything `source` deployed. Returns false when it had nothing.
    pub fn undeploy(&mut self, source: &str) -> bool {
        match self.deployments.undeploy(source) {
            Some(effects) => {
                self.apply(effects);
                true
            }
            None => false,
        }
    }

    /// Carries out a REST undeploy planned with [`Deployments::plan_undeploy`].
    pub fn undeploy_planned(&mut self, plan: Vec<deployment::Undeploy>) -> Result<(), Problems> {
        let effects = self.deployments.undeploy_planned(plan)?;
        self.apply(effects);
        Ok(())
    }

    fn apply(&mut self, effects: Vec<Effect>) {
        for e in effects {
            match e {
                Effect::Upsert { environment, vhost, api } => self.gateway.upsert(&environment, &vhost, api),
                Effect::Remove { environment, vhost, api_id } => {
                    self.gateway.remove(&environment, &ApiKey { vhost, id: api_id });
                }
            }
        }
    }
}

/// Shared adapter state.
pub struct Hub {
    changes: tokio::sync::Mutex<()>,
    state: Mutex<State>,
    /// Snapshots out to routers and enforcers.
    pub publisher: Publisher,
    /// Connected routers and enforcers.
    pub status: Status,
    /// Revoked tokens.
    pub revocations: Revocations,
    /// Throttling policies and blocking conditions.
    pub throttle: Catalogue,
    /// Prometheus metrics.
    pub metrics: Metrics,
    closing: watch::Sender<bool>,
    loaded: watch::Sender<bool>,
}

impl Hub {
    /// A hub serving `config`, with the built-in throttling policies only.
    pub fn new(config: Arc<Config>) -> Arc<Hub> {
        Hub::with_catalogue(config, Catalogue::default())
    }

    /// A hub serving `config` with the throttling catalogue `throttle`.
    pub fn with_catalogue(config: Arc<Config>, throttle: Catalogue) -> Arc<Hub> {
        Arc::new(Hub {
            throttle,
            changes: tokio::sync::Mutex::new(()),
            publisher: Publisher::new(&config),
            state: Mutex::new(State { gateway: Gateway::new(config), deployments: Deployments::default() }),
            status: Status::default(),
            revocations: Revocations::default(),
            metrics: Metrics::default(),
            closing: watch::Sender::new(false),
            loaded: watch::Sender::new(false),
        })
    }

    /// Applies a change, then publishes every label's snapshot that changed.
    pub fn update<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut state = self.state.lock();
        let r = f(&mut state);
        let started = std::time::Instant::now();
        self.publisher.publish(&mut state.gateway);
        self.metrics.snapshot_build.observe(started.elapsed().as_secs_f64());
        r
    }

    /// The lock every change to what is deployed takes first (see the module).
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
        self.publisher.subscribe(label, || self.state.lock().gateway.snapshot(label))
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
}
