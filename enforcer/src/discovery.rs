//! The enforcer's data from the adapter: configuration, APIs and revoked
//! tokens, each on a state-of-the-world stream. A response that cannot be
//! used is refused (NACK, naming the problem) and the data in use stays;
//! while the adapter is away the enforcer keeps serving on what it has and
//! reconnects with backoff.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use gateway_proto::service::enforcer_discovery_service_client::EnforcerDiscoveryServiceClient;
use gateway_proto::service::{DiscoveryRequest, DiscoveryResponse, ErrorDetail};
use gateway_proto::{api as pa, config as pc};
use prost::Message;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tracing::{debug, info, warn};

use enforcer_core::Engine;
use enforcer_core::apis::ApiIndex;
use enforcer_core::keys::Fetch;
use enforcer_core::lease::{FailureMode, LeaseSettings, LeasedLimiter, Limiter};
use enforcer_core::settings::{RedisSettings, Settings, ThrottleSettings};

/// `url` without its password, for logs.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// Where and who.
#[derive(Debug, Clone)]
pub struct Client {
    /// The adapter's gRPC channel.
    pub channel: Channel,
    /// The label (gateway environment) this enforcer serves.
    pub label: String,
    /// This instance's host name.
    pub instance: String,
}

/// Which stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Configuration.
    Config,
    /// APIs.
    Apis,
    /// Revoked tokens.
    Revoked,
    /// Throttling policies and blocking conditions.
    Throttle,
}

/// The four streams an engine is fed by, with their names (for logs and
/// the task supervisor).
pub const STREAMS: [(&str, Kind); 4] = [
    ("configuration stream", Kind::Config),
    ("API stream", Kind::Apis),
    ("revoked-token stream", Kind::Revoked),
    ("throttling-data stream", Kind::Throttle),
];

impl Kind {
    fn type_url(self) -> &'static str {
        match self {
            Kind::Config => gateway_proto::CONFIG_TYPE_URL,
            Kind::Apis => gateway_proto::API_TYPE_URL,
            Kind::Revoked => gateway_proto::REVOKED_TOKEN_TYPE_URL,
            Kind::Throttle => gateway_proto::THROTTLE_DATA_TYPE_URL,
        }
    }
}

/// Why a response from the adapter was refused (its text is the NACK's message).
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// A resource of another type on this stream.
    #[error("resource of type {found:?} on the {stream} stream")]
    WrongType {
        /// The type found.
        found: String,
        /// The stream's type.
        stream: &'static str,
    },
    /// Not exactly one configuration.
    #[error("expected one configuration, got {0}")]
    ConfigCount(usize),
    /// A resource that does not decode.
    #[error("undecodable {what}: {source}")]
    Decode {
        /// What it should have been.
        what: &'static str,
        /// The decoder's error.
        source: prost::DecodeError,
    },
    /// A configuration the enforcer cannot use.
    #[error(transparent)]
    Settings(#[from] enforcer_core::settings::SettingsError),
    /// An API the enforcer cannot use.
    #[error(transparent)]
    Api(#[from] enforcer_core::apis::ApiError),
    /// Not exactly one set of throttling data.
    #[error("expected one set of throttling data, got {0}")]
    ThrottleCount(usize),
    /// Throttling data the enforcer cannot use.
    #[error(transparent)]
    Throttle(#[from] enforcer_core::throttle::ThrottleDataError),
}

fn decode<M: Message + Default>(what: &'static str, bytes: &[u8]) -> Result<M, ApplyError> {
    M::decode(bytes).map_err(|source| ApplyError::Decode { what, source })
}

/// Applies responses to the engine.
pub struct Applier {
    /// The engine.
    pub engine: Arc<Engine>,
    /// Gets the key sets of JWKS issuers.
    pub fetch: Arc<dyn Fetch>,
    /// Publishes each accepted configuration.
    pub settings_tx: watch::Sender<Option<Arc<Settings>>>,
    /// The counting backend's settings in use (the limiter is replaced only
    /// when they change: a new configuration must not reset the counters).
    pub limiter_settings: parking_lot::Mutex<Option<LimiterKey>>,
    /// What the configuration is loaded for: the service, or decisions only
    /// (the enforcer's module in the router).
    pub role: enforcer_core::settings::Role,
}

/// What the counting backend is built from.
pub type LimiterKey = (Option<RedisSettings>, u64, u32, String);

/// The counting backend for `t`, unless `current` already is.
fn limiter_for(
    t: &ThrottleSettings,
    current: Option<&LimiterKey>,
) -> Result<Option<(LimiterKey, Limiter)>, ApplyError> {
    // In memory only the backend matters: other keys changing must not reset the counters.
    let key: LimiterKey = match &t.redis {
        Some(r) => (Some(r.clone()), t.accuracy.to_bits(), t.replicas, t.failure_mode.clone()),
        None => (None, 0, 0, String::new()),
    };
    if current == Some(&key) {
        return Ok(None);
    }
    let limiter = match &t.redis {
        None => Limiter::default(),
        Some(r) => {
            let store = crate::redis_store::RedisStore::new(&r.url, &r.key_prefix).map_err(|e| {
                ApplyError::Settings(enforcer_core::settings::SettingsError {
                    key: "enforcer.throttling.redis.url".into(),
                    reason: e.to_string(),
                })
            })?;
            Limiter::Leased(LeasedLimiter::new(
                store,
                LeaseSettings {
                    accuracy: t.accuracy,
                    replicas: t.replicas,
                    timeout: Duration::from_millis(r.timeout_ms),
                    failure_mode: FailureMode::parse(&t.failure_mode),
                },
            ))
        }
    };
    Ok(Some((key, limiter)))
}

impl Applier {
    /// Applies one response; an error is refused with a NACK naming it.
    pub fn apply(&self, kind: Kind, resp: &DiscoveryResponse) -> Result<(), ApplyError> {
        for r in &resp.resources {
            if r.type_url != kind.type_url() {
                return Err(ApplyError::WrongType { found: r.type_url.clone(), stream: kind.type_url() });
            }
        }
        match kind {
            Kind::Config => {
                let [one] = resp.resources.as_slice() else {
                    return Err(ApplyError::ConfigCount(resp.resources.len()));
                };
                let c: pc::Config = decode("configuration", &one.value)?;
                let s = Arc::new(Settings::load_for(&c, &self.fetch, self.role)?);
                let mut current = self.limiter_settings.lock();
                let limiter = limiter_for(&s.throttling, current.as_ref())?;
                for w in &s.warnings {
                    warn!("{w}");
                }
                for j in s.jwks_sources() {
                    j.spawn_refresh();
                }
                self.engine.set_settings(Arc::clone(&s));
                if let Some((key, limiter)) = limiter {
                    match &key.0 {
                        Some(r) => {
                            info!(url = %redact(&r.url), replicas = key.2, "throttling counts in Redis (quota leases)")
                        }
                        None => info!("throttling counts in memory"),
                    }
                    self.engine.memory.limiter.store(Arc::new(limiter));
                    *current = Some(key);
                }
                drop(current);
                self.settings_tx.send_replace(Some(s));
                info!(version = %resp.version_info, "configuration applied");
            }
            Kind::Apis => {
                let apis =
                    resp.resources.iter().map(|r| decode::<pa::Api>("API", &r.value)).collect::<Result<Vec<_>, _>>()?;
                let index = ApiIndex::new(apis)?;
                info!(version = %resp.version_info, apis = index.len(), "APIs applied");
                self.engine.set_apis(index);
            }
            Kind::Revoked => {
                let mut map = HashMap::new();
                for r in &resp.resources {
                    let t: pa::RevokedToken = decode("revoked token", &r.value)?;
                    map.insert(t.jti.into_boxed_str(), t.expirytime);
                }
                info!(version = %resp.version_info, tokens = map.len(), "revoked tokens applied");
                self.engine.set_revoked(map);
            }
            Kind::Throttle => {
                let [one] = resp.resources.as_slice() else {
                    return Err(ApplyError::ThrottleCount(resp.resources.len()));
                };
                let d: gateway_proto::throttle::ThrottleData = decode("throttling data", &one.value)?;
                let data = enforcer_core::throttle::ThrottleData::from_proto(&d)?;
                info!(
                    version = %resp.version_info,
                    policies = d.policies.len(),
                    blocking_conditions = data.blocking.len(),
                    "throttling data applied"
                );
                self.engine.set_throttle(data);
            }
        }
        Ok(())
    }
}

/// Waits between reconnection attempts: doubling from [`Backoff::FIRST`] up to
/// [`Backoff::MAX`], and back to the first after a stream that worked, so an
/// adapter restart hours later is followed within a fraction of a second.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { next: Backoff::FIRST }
    }
}

impl Backoff {
    /// The first wait.
    pub const FIRST: Duration = Duration::from_millis(250);
    /// The longest wait.
    pub const MAX: Duration = Duration::from_secs(5);

    /// The wait before the next attempt; `connected` says whether the last
    /// attempt got a stream from the adapter.
    pub fn after(&mut self, connected: bool) -> Duration {
        if connected {
            self.next = Backoff::FIRST;
        }
        let wait = self.next;
        self.next = (self.next * 2).min(Backoff::MAX);
        wait
    }
}

/// Runs one stream forever: connect, apply, ACK/NACK, reconnect with backoff.
pub async fn run_stream(client: Client, kind: Kind, applier: Arc<Applier>) {
    let mut accepted = String::new();
    let mut backoff = Backoff::default();
    loop {
        let mut connected = false;
        match stream_once(&client, kind, &applier, &mut accepted, &mut connected).await {
            Ok(()) => debug!(?kind, "stream closed by the adapter"),
            Err(e) => debug!(?kind, error = %e, "stream failed"),
        }
        tokio::time::sleep(backoff.after(connected)).await;
        if accepted.is_empty() {
            debug!(?kind, "still waiting for the adapter");
        }
    }
}

async fn stream_once(
    client: &Client,
    kind: Kind,
    applier: &Applier,
    accepted: &mut String,
    connected: &mut bool,
) -> Result<(), tonic::Status> {
    let mut grpc = EnforcerDiscoveryServiceClient::new(client.channel.clone()).max_decoding_message_size(usize::MAX);
    let (tx, rx) = mpsc::channel::<DiscoveryRequest>(4);
    let first = DiscoveryRequest {
        version_info: accepted.clone(),
        node_id: client.label.clone(),
        instance: client.instance.clone(),
        type_url: kind.type_url().to_string(),
        ..Default::default()
    };
    let _ = tx.send(first).await;
    let outbound = ReceiverStream::new(rx);
    let mut inbound = match kind {
        Kind::Config => grpc.stream_config(outbound).await?,
        Kind::Apis => grpc.stream_apis(outbound).await?,
        Kind::Revoked => grpc.stream_revoked_tokens(outbound).await?,
        Kind::Throttle => grpc.stream_throttle_data(outbound).await?,
    }
    .into_inner();
    *connected = true;
    info!(?kind, "connected to the adapter");
    while let Some(resp) = inbound.message().await? {
        gateway_runtime::failpoint(match kind {
            Kind::Config => "enforcer-config-stream",
            Kind::Apis => "enforcer-api-stream",
            Kind::Revoked => "enforcer-revoked-stream",
            Kind::Throttle => "enforcer-throttle-stream",
        });
        let ack = match applier.apply(kind, &resp) {
            Ok(()) => {
                *accepted = resp.version_info.clone();
                DiscoveryRequest {
                    version_info: resp.version_info.clone(),
                    response_nonce: resp.nonce.clone(),
                    node_id: client.label.clone(),
                    type_url: kind.type_url().to_string(),
                    ..Default::default()
                }
            }
            Err(msg) => {
                warn!(?kind, version = %resp.version_info, error = %msg, "refused the adapter's data (NACK); keeping what is in use");
                DiscoveryRequest {
                    version_info: accepted.clone(),
                    response_nonce: resp.nonce.clone(),
                    node_id: client.label.clone(),
                    type_url: kind.type_url().to_string(),
                    error_detail: Some(ErrorDetail { code: 3, message: msg.to_string() }),
                    ..Default::default()
                }
            }
        };
        if tx.send(ack).await.is_err() {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_grows_to_its_maximum_and_resets_after_a_working_stream() {
        let mut b = Backoff::default();
        let waits: Vec<u128> = (0..7).map(|_| b.after(false).as_millis()).collect();
        assert_eq!(waits, vec![250, 500, 1000, 2000, 4000, 5000, 5000]);
        // The adapter came back and the stream worked; then it went away again.
        assert_eq!(b.after(true), Backoff::FIRST);
        assert_eq!(b.after(false).as_millis(), 500);
    }
}
