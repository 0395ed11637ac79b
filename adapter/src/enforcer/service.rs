//! `EnforcerDiscoveryService`: state-of-the-world streams of the enforcer's
//! configuration, APIs, revoked tokens and throttling data, with ACK/NACK as in xDS, and the
//! `RevokeTokens` call.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream as FutStream;
use gateway_proto::service::enforcer_discovery_service_server::{
    EnforcerDiscoveryService, EnforcerDiscoveryServiceServer,
};
use gateway_proto::service::{DiscoveryRequest, DiscoveryResponse, RevokeRequest, RevokeResponse};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::{Instrument, debug, info, info_span, warn};

use super::resources::{Kind, ResourceSet};
use super::revocation::Revoked;
use crate::clock::now_ms;
use crate::hub::Hub;
use crate::metrics::{KindLabels, TypeLabels};
use crate::status::EnforcerStreamReport;

/// The service.
#[derive(Clone)]
pub struct Service {
    hub: Arc<Hub>,
}

impl Service {
    /// A tonic service for `hub`.
    pub fn server(hub: Arc<Hub>) -> EnforcerDiscoveryServiceServer<Service> {
        EnforcerDiscoveryServiceServer::new(Service { hub })
            .max_encoding_message_size(usize::MAX)
            .max_decoding_message_size(4 * 1024 * 1024)
    }

    fn start(
        &self,
        kind: Kind,
        req: Request<Streaming<DiscoveryRequest>>,
    ) -> Pin<Box<dyn FutStream<Item = Result<DiscoveryResponse, Status>> + Send>> {
        let peer = req.remote_addr().map(|a| a.to_string()).unwrap_or_default();
        let inbound = req.into_inner();
        let (tx, rx) = mpsc::channel(4);
        let hub = Arc::clone(&self.hub);
        let id = hub.status.next_stream_id();
        let span = info_span!("enforcer_stream", id, ?kind, %peer);
        tokio::spawn(
            async move {
                run(&hub, kind, id, peer, inbound, tx).await;
                hub.status.forget_enforcer(id);
            }
            .instrument(span),
        );
        Box::pin(ReceiverStream::new(rx))
    }
}

type Out = mpsc::Sender<Result<DiscoveryResponse, Status>>;

async fn run(hub: &Hub, kind: Kind, id: u64, peer: String, mut inbound: Streaming<DiscoveryRequest>, tx: Out) {
    let first = match inbound.message().await {
        Ok(Some(m)) => m,
        Ok(None) => return,
        Err(e) => {
            debug!(error = %e, "stream ended before its first request");
            return;
        }
    };
    if first.type_url != kind.type_url() {
        let msg = format!("type_url {:?} is not served on this stream (expected {})", first.type_url, kind.type_url());
        let _ = tx.send(Err(Status::invalid_argument(msg))).await;
        return;
    }
    let label = if first.node_id.is_empty() {
        gateway_config::model::DEFAULT_ENVIRONMENT.to_string()
    } else {
        first.node_id.clone()
    };
    info!(%label, instance = %first.instance, "enforcer connected");
    // APIs are sent only once the projects present at start-up are applied.
    if kind == Kind::Apis {
        tokio::select! {
            () = hub.loaded() => {}
            () = hub.closed() => return,
        }
    }
    let mut source: watch::Receiver<Arc<ResourceSet>> = match kind {
        Kind::Config => hub.publisher.enforcer_config(),
        Kind::Apis => hub.publisher.enforcer_apis(&label),
        Kind::RevokedTokens => hub.revocations.subscribe(),
        Kind::ThrottleData => hub.throttle.subscribe(),
    };
    let mut report = EnforcerStreamReport {
        id,
        peer,
        label,
        instance: first.instance.clone(),
        kind,
        connected_at_ms: now_ms(),
        sent_version: String::new(),
        sent_resources: 0,
        acked_version: first.version_info.clone(),
        nack: None,
    };
    let mut nonce: u64 = 0;
    let mut pending: Option<Arc<ResourceSet>> = Some(source.borrow_and_update().clone());
    let labels = TypeLabels { kind: "enforcer", r#type: kind.short_name() };
    // When the last response went out, until it is acknowledged.
    let mut pushed: Option<std::time::Instant> = None;
    loop {
        if let Some(set) = pending.take() {
            // An enforcer that already holds this version (after a reconnect) is not sent it again.
            if !(nonce == 0 && !report.acked_version.is_empty() && report.acked_version == set.version) {
                nonce += 1;
                let resp = DiscoveryResponse {
                    version_info: set.version.clone(),
                    resources: set.resources.iter().map(|r| prost_types::Any::clone(r)).collect(),
                    type_url: kind.type_url().to_string(),
                    nonce: nonce.to_string(),
                };
                if tx.send(Ok(resp)).await.is_err() {
                    return;
                }
                hub.metrics.responses.get_or_create(&labels).inc();
                pushed.get_or_insert_with(std::time::Instant::now);
                report.sent_version = set.version.clone();
                report.sent_resources = set.resources.len();
                debug!(version = %set.version, resources = set.resources.len(), "sent");
            }
            hub.status.report_enforcer(report.clone());
        }
        tokio::select! {
            changed = source.changed() => {
                if changed.is_err() {
                    return;
                }
                pending = Some(source.borrow_and_update().clone());
            }
            msg = inbound.message() => {
                let req = match msg {
                    Ok(Some(r)) => r,
                    Ok(None) => return,
                    Err(e) => {
                        debug!(error = %e, "stream ended");
                        return;
                    }
                };
                if req.response_nonce != nonce.to_string() {
                    continue; // answers an older response
                }
                match &req.error_detail {
                    Some(err) => {
                        warn!(version = %report.sent_version, error = %err.message, "enforcer refused (NACK)");
                        hub.status.count_nack();
                        hub.metrics.nacks.get_or_create(&labels).inc();
                        pushed = None;
                        report.nack = Some(err.message.clone());
                    }
                    None => {
                        debug!(version = %req.version_info, "ACK");
                        report.acked_version = req.version_info.clone();
                        report.nack = None;
                        if let Some(at) = pushed.take() {
                            hub.metrics
                                .push_to_ack
                                .get_or_create(&KindLabels { kind: "enforcer" })
                                .observe(at.elapsed().as_secs_f64());
                        }
                    }
                }
                hub.status.report_enforcer(report.clone());
            }
            () = hub.closed() => return,
        }
    }
}

type BoxStream = Pin<Box<dyn FutStream<Item = Result<DiscoveryResponse, Status>> + Send>>;

#[tonic::async_trait]
impl EnforcerDiscoveryService for Service {
    type StreamConfigStream = BoxStream;
    type StreamApisStream = BoxStream;
    type StreamRevokedTokensStream = BoxStream;
    type StreamThrottleDataStream = BoxStream;

    async fn stream_config(
        &self,
        req: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamConfigStream>, Status> {
        Ok(Response::new(self.start(Kind::Config, req)))
    }

    async fn stream_apis(
        &self,
        req: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamApisStream>, Status> {
        Ok(Response::new(self.start(Kind::Apis, req)))
    }

    async fn stream_revoked_tokens(
        &self,
        req: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamRevokedTokensStream>, Status> {
        Ok(Response::new(self.start(Kind::RevokedTokens, req)))
    }

    async fn stream_throttle_data(
        &self,
        req: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamThrottleDataStream>, Status> {
        Ok(Response::new(self.start(Kind::ThrottleData, req)))
    }

    async fn revoke_tokens(&self, req: Request<RevokeRequest>) -> Result<Response<RevokeResponse>, Status> {
        let tokens: Vec<Revoked> =
            req.into_inner().tokens.into_iter().map(|t| Revoked { jti: t.jti, expiry: t.expirytime }).collect();
        // The revocation file is written (fsync) off the async workers.
        let hub = Arc::clone(&self.hub);
        match tokio::task::spawn_blocking(move || hub.revocations.revoke(&tokens)).await {
            Ok(Ok(version)) => Ok(Response::new(RevokeResponse { version })),
            Ok(Err(super::revocation::RevocationError::BadRequest(m))) => Err(Status::invalid_argument(m)),
            Ok(Err(e)) => Err(Status::internal(e.to_string())),
            Err(e) => Err(Status::internal(e.to_string())),
        }
    }
}
