//! The ADS gRPC service: moves messages between Envoy and a
//! [`gateway_xds::stream::Stream`] state machine.

use std::pin::Pin;
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use futures::Stream as FutStream;
use gateway_config::model::DEFAULT_ENVIRONMENT;
use gateway_xds::snapshot::ResourceType;
use gateway_xds::stream::{Event, Mode, Outcome, Response, Stream};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Status, Streaming};
use tracing::{Instrument, debug, info, info_span, warn};

use crate::clock::now_ms;
use crate::hub::Hub;
use crate::metrics::{KindLabels, TypeLabels};
use crate::status::StreamReport;

/// The ADS service.
#[derive(Clone)]
pub struct Ads {
    hub: Arc<Hub>,
}

impl Ads {
    /// A tonic service for `hub`. Responses can be large (all clusters of a
    /// label in state-of-the-world mode), so the encoding limit is lifted.
    pub fn service(hub: Arc<Hub>) -> AggregatedDiscoveryServiceServer<Ads> {
        AggregatedDiscoveryServiceServer::new(Ads { hub })
            .max_encoding_message_size(usize::MAX)
            .max_decoding_message_size(64 * 1024 * 1024)
    }
}

type BoxStream<T> = Pin<Box<dyn FutStream<Item = Result<T, Status>> + Send>>;

/// What differs between the two protocol variants.
trait Wire: Send + 'static {
    type Req: Send + 'static;
    type Resp: Send + 'static;
    const MODE: Mode;
    fn node(req: &Self::Req) -> Option<&Node>;
    fn handle(stream: &mut Stream, req: &Self::Req, now: u64) -> Outcome;
    fn unwrap(resp: Response) -> Option<Self::Resp>;
}

struct Sotw;
impl Wire for Sotw {
    type Req = DiscoveryRequest;
    type Resp = DiscoveryResponse;
    const MODE: Mode = Mode::Sotw;
    fn node(req: &DiscoveryRequest) -> Option<&Node> {
        req.node.as_ref()
    }
    fn handle(stream: &mut Stream, req: &DiscoveryRequest, now: u64) -> Outcome {
        stream.on_sotw_request(req, now)
    }
    fn unwrap(resp: Response) -> Option<DiscoveryResponse> {
        match resp {
            Response::Sotw(r) => Some(r),
            Response::Delta(_) => None,
        }
    }
}

struct Delta;
impl Wire for Delta {
    type Req = DeltaDiscoveryRequest;
    type Resp = DeltaDiscoveryResponse;
    const MODE: Mode = Mode::Delta;
    fn node(req: &DeltaDiscoveryRequest) -> Option<&Node> {
        req.node.as_ref()
    }
    fn handle(stream: &mut Stream, req: &DeltaDiscoveryRequest, now: u64) -> Outcome {
        stream.on_delta_request(req, now)
    }
    fn unwrap(resp: Response) -> Option<DeltaDiscoveryResponse> {
        match resp {
            Response::Delta(r) => Some(r),
            Response::Sotw(_) => None,
        }
    }
}

fn start<W: Wire>(hub: Arc<Hub>, req: Request<Streaming<W::Req>>) -> BoxStream<W::Resp>
where
    Streaming<W::Req>: Send,
{
    let peer = req.remote_addr().map(|a| a.to_string()).unwrap_or_default();
    let inbound = req.into_inner();
    let (tx, rx) = mpsc::channel(8);
    let id = hub.status.next_stream_id();
    let span = info_span!("ads", stream = id, mode = ?W::MODE, %peer);
    tokio::spawn(serve::<W>(hub, id, peer, inbound, tx).instrument(span));
    Box::pin(ReceiverStream::new(rx))
}

async fn serve<W: Wire>(
    hub: Arc<Hub>,
    id: u64,
    peer: String,
    mut inbound: Streaming<W::Req>,
    tx: mpsc::Sender<Result<W::Resp, Status>>,
) {
    let first = match inbound.message().await {
        Ok(Some(r)) => r,
        Ok(None) => return,
        Err(e) => {
            debug!(error = %e, "stream ended before its first request");
            return;
        }
    };
    // Answer nothing until the start-up projects are applied.
    tokio::select! {
        () = hub.loaded() => {}
        () = hub.closed() => return,
    }
    let label = W::node(&first)
        .map(|n| n.id.clone())
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| DEFAULT_ENVIRONMENT.to_string());
    let mut snapshots = match hub.subscribe(&label) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "no configuration to serve");
            let _ = tx.send(Err(Status::internal(e.to_string()))).await;
            return;
        }
    };
    let mut stream = Stream::new(W::MODE, snapshots.borrow_and_update().clone());
    let connected_at_ms = now_ms();
    let mut outcome = W::handle(&mut stream, &first, now_ms());
    if let Some(n) = stream.node() {
        info!(label = %label, node_cluster = %n.cluster, instance = %n.instance, envoy = %n.version, "Envoy connected");
    }
    // When the configuration this Envoy should hold last changed (its first
    // request, then every new snapshot) and it has not acknowledged all of it.
    let mut pushed: Option<std::time::Instant> = Some(std::time::Instant::now());
    loop {
        for e in &outcome.events {
            match e {
                Event::Ack { ty, version } => debug!(%ty, %version, "ACK"),
                Event::Nack { ty, version, message, resources } => {
                    hub.status.count_nack();
                    hub.metrics.nacks.get_or_create(&TypeLabels { kind: "router", r#type: ty.short_name() }).inc();
                    warn!(%ty, %version, resources = ?resources, error = %message, "Envoy rejected configuration (NACK); it keeps its last good version");
                }
            }
        }
        if let Some(at) = pushed.filter(|_| outcome.responses.is_empty() && stream.in_sync()) {
            hub.metrics.push_to_ack.get_or_create(&KindLabels { kind: "router" }).observe(at.elapsed().as_secs_f64());
            pushed = None;
        }
        for resp in &outcome.responses {
            let url = match resp {
                Response::Sotw(r) => r.type_url.as_str(),
                Response::Delta(r) => r.type_url.as_str(),
            };
            let ty = ResourceType::from_type_url(url).map_or("other", ResourceType::short_name);
            hub.metrics.responses.get_or_create(&TypeLabels { kind: "router", r#type: ty }).inc();
        }
        for resp in outcome.responses.drain(..) {
            if let Some(r) = W::unwrap(resp)
                && tx.send(Ok(r)).await.is_err()
            {
                hub.status.forget(id);
                return;
            }
        }
        hub.status.report(StreamReport { id, peer: peer.clone(), connected_at_ms, status: stream.status() });
        outcome = tokio::select! {
            msg = inbound.message() => match msg {
                Ok(Some(req)) => {
                    let started = std::time::Instant::now();
                    let out = W::handle(&mut stream, &req, now_ms());
                    debug!(ms = started.elapsed().as_secs_f64() * 1000.0, responses = out.responses.len(), "request handled");
                    out
                }
                Ok(None) => {
                    info!(label = %label, "Envoy disconnected");
                    break;
                }
                Err(e) => {
                    // Envoy shutting down shows up as a broken pipe: a normal disconnect.
                    info!(label = %label, reason = %e.message(), "Envoy disconnected");
                    break;
                }
            },
            () = hub.closed() => {
                debug!("adapter stopping: stream closed");
                break;
            }
            changed = snapshots.changed() => {
                if changed.is_err() {
                    break;
                }
                let snap = snapshots.borrow_and_update().clone();
                let started = std::time::Instant::now();
                pushed.get_or_insert(started);
                let out = stream.on_snapshot(snap, now_ms());
                debug!(ms = started.elapsed().as_secs_f64() * 1000.0, responses = out.responses.len(), "new snapshot");
                out
            }
        };
    }
    hub.status.forget(id);
}

#[tonic::async_trait]
impl AggregatedDiscoveryService for Ads {
    type StreamAggregatedResourcesStream = BoxStream<DiscoveryResponse>;
    type DeltaAggregatedResourcesStream = BoxStream<DeltaDiscoveryResponse>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<tonic::Response<Self::StreamAggregatedResourcesStream>, Status> {
        Ok(tonic::Response::new(start::<Sotw>(Arc::clone(&self.hub), request)))
    }

    async fn delta_aggregated_resources(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<tonic::Response<Self::DeltaAggregatedResourcesStream>, Status> {
        Ok(tonic::Response::new(start::<Delta>(Arc::clone(&self.hub), request)))
    }
}
