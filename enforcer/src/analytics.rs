//! Analytics: Envoy's gRPC access logs (one stream per Envoy worker) become
//! events — what Envoy saw joined with what the enforcer decided (ext_authz
//! dynamic metadata) — written as JSON lines to stdout or a file.
//!
//! Memory is bounded: events wait in a queue of fixed size; when the sink is
//! slow the queue fills and new events are dropped and counted. Envoy is
//! never slowed: the access-log stream is read as fast as it arrives.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use envoy_types::pb::envoy::data::accesslog::v3::HttpAccessLogEntry;
use envoy_types::pb::envoy::service::accesslog::v3::access_log_service_server::{
    AccessLogService, AccessLogServiceServer,
};
use envoy_types::pb::envoy::service::accesslog::v3::stream_access_logs_message::LogEntries;
use envoy_types::pb::envoy::service::accesslog::v3::{StreamAccessLogsMessage, StreamAccessLogsResponse};
use envoy_types::pb::google::protobuf::{Duration as PbDuration, value::Kind};
use serde_json::{Map, Value, json};
use tokio::sync::{mpsc, watch};
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, warn};

use enforcer_core::settings::{AnalyticsSettings, Settings};

/// Counters of the pipeline.
#[derive(Debug, Default)]
pub struct Counters {
    /// Events written.
    pub written: AtomicU64,
    /// Events dropped because the queue was full.
    pub dropped: AtomicU64,
}

/// The access-log service.
#[derive(Clone)]
pub struct Als {
    queue: Arc<parking_lot::RwLock<Option<mpsc::Sender<Value>>>>,
    counters: Arc<Counters>,
}

fn ms(d: &Option<PbDuration>) -> Option<f64> {
    d.as_ref().map(|d| d.seconds as f64 * 1000.0 + f64::from(d.nanos) / 1e6)
}

/// The analytics event of one access-log entry, or `None` for requests that
/// are not API traffic (no API known and no enforcer decision).
pub fn event(e: &HttpAccessLogEntry) -> Option<Value> {
    let common = e.common_properties.as_ref();
    let req = e.request.as_ref();
    let resp = e.response.as_ref();
    let meta =
        common.and_then(|c| c.metadata.as_ref()).and_then(|m| m.filter_metadata.get("envoy.filters.http.ext_authz"));
    let get = |k: &str| -> Option<String> {
        meta.and_then(|m| m.fields.get(k)).and_then(|v| match &v.kind {
            Some(Kind::StringValue(s)) => Some(s.clone()),
            _ => None,
        })
    };
    let route = common.map(|c| c.route_name.as_str()).unwrap_or("");
    // Requests the enforcer was not asked about (resources with security
    // disabled) are known by their route, named `<API>:<version> <methods> <path>`;
    // system routes (`/health`, `/testkey`, ...) and unrouted requests are not API traffic.
    let (route_api, route_version) = match route_api_of(route) {
        Some((n, v)) => (Some(n.to_string()), Some(v.to_string())),
        None => (None, None),
    };
    let api_name = get("x-wso2-api-name").or(route_api);
    api_name.as_ref()?;
    let status = resp.and_then(|r| r.response_code.as_ref()).map(|c| c.value).unwrap_or(0);
    let flags = common.and_then(|c| c.response_flags.as_ref());
    // ext_authz marks its denials with a response flag (UAEX); the enforcer
    // module (enforcer/module) answers locally, which sets none, but every
    // denial of either carries the enforcer's correlation id in the
    // metadata (authz::response), and no allowed request does.
    let denied = flags.is_some_and(|f| f.unauthorized_details.is_some()) || get("correlationID").is_some();
    let total = common.and_then(|c| ms(&c.time_to_last_downstream_tx_byte));
    let upstream =
        common.and_then(|c| match (ms(&c.time_to_first_upstream_tx_byte), ms(&c.time_to_last_upstream_rx_byte)) {
            (Some(a), Some(b)) if b >= a => Some(b - a),
            _ => None,
        });
    let start = common
        .and_then(|c| c.start_time.as_ref())
        .map(|t| t.seconds as f64 + f64::from(t.nanos) / 1e9)
        .unwrap_or_else(|| enforcer_core::now_secs() as f64);
    let client_ip = common
        .and_then(|c| c.downstream_remote_address.as_ref())
        .and_then(|a| match &a.address {
            Some(envoy_types::pb::envoy::config::core::v3::address::Address::SocketAddress(s)) => {
                Some(s.address.clone())
            }
            _ => None,
        })
        .unwrap_or_default();
    let mut ev = Map::new();
    ev.insert("timestamp".into(), json!(start));
    ev.insert(
        "correlationId".into(),
        json!(get("x-wso2-correlation-id").or_else(|| req.map(|r| r.request_id.clone())).unwrap_or_default()),
    );
    ev.insert("apiId".into(), json!(get("x-wso2-api-id")));
    ev.insert("apiName".into(), json!(api_name));
    ev.insert("apiVersion".into(), json!(get("x-wso2-api-version").or(route_version)));
    ev.insert("apiContext".into(), json!(get("x-wso2-api-context")));
    ev.insert("apiType".into(), json!(get("x-wso2-api-type")));
    ev.insert("resource".into(), json!(get("x-wso2-api-resource-template")));
    ev.insert("method".into(), json!(req.map(|r| method_name(r.request_method))));
    // The path the client asked for: Envoy's request path is the upstream one
    // after rewriting; the router logs the original (without query) in the
    // route-scope header, and the enforcer names it in its decision.
    let path = get("originalPath")
        .or_else(|| req.and_then(|r| r.request_headers.get("x-wso2-route-scope").cloned()))
        .or_else(|| req.map(|r| r.original_path.clone()).filter(|p| !p.is_empty()))
        .or_else(|| req.map(|r| r.path.split('?').next().unwrap_or("").to_string()));
    ev.insert("path".into(), json!(path));
    ev.insert("applicationName".into(), json!(get("x-wso2-application-name")));
    ev.insert("applicationId".into(), json!(get("x-wso2-application-id")));
    ev.insert("applicationOwner".into(), json!(get("x-wso2-application-owner")));
    ev.insert("keyType".into(), json!(get("x-wso2-application-key-type")));
    ev.insert("authType".into(), json!(get("x-wso2-auth-type")));
    ev.insert("userName".into(), json!(get("x-wso2-user")));
    ev.insert("tier".into(), json!(get("x-wso2-tier")));
    // Admitted past a subscription quota that only counts (stopOnQuotaReach false).
    ev.insert("subscriptionQuotaExceeded".into(), json!(get("x-wso2-quota-exceeded").is_some()));
    ev.insert("responseCode".into(), json!(status));
    ev.insert("errorCode".into(), json!(get("ErrorCode")));
    ev.insert("deniedByEnforcer".into(), json!(denied));
    ev.insert("upstreamCluster".into(), json!(common.map(|c| c.upstream_cluster.clone()).filter(|s| !s.is_empty())));
    ev.insert("upstreamLatencyMs".into(), json!(upstream));
    ev.insert("totalLatencyMs".into(), json!(total));
    ev.insert("clientIp".into(), json!(client_ip));
    ev.insert("userAgent".into(), json!(req.map(|r| r.user_agent.clone())));
    // Body bytes each way; for a WebSocket connection, its frames in
    // aggregate (the event is written when the connection closes).
    ev.insert("requestBodyBytes".into(), json!(req.map(|r| r.request_body_bytes)));
    ev.insert("responseBodyBytes".into(), json!(resp.map(|r| r.response_body_bytes)));
    Some(Value::Object(ev))
}

/// `(name, version)` from an API route's name `<name>:<version> <methods> <path>[ (sandbox)]`.
fn route_api_of(route: &str) -> Option<(&str, &str)> {
    if route.starts_with('/') {
        return None;
    }
    let route = route.strip_suffix(" (sandbox)").unwrap_or(route);
    let mut parts = route.rsplitn(3, ' ');
    let (_path, _methods, head) = (parts.next()?, parts.next()?, parts.next()?);
    head.rsplit_once(':')
}

fn method_name(m: i32) -> &'static str {
    use envoy_types::pb::envoy::config::core::v3::RequestMethod as M;
    match M::try_from(m).unwrap_or(M::MethodUnspecified) {
        M::Get => "GET",
        M::Head => "HEAD",
        M::Post => "POST",
        M::Put => "PUT",
        M::Delete => "DELETE",
        M::Connect => "CONNECT",
        M::Options => "OPTIONS",
        M::Trace => "TRACE",
        M::Patch => "PATCH",
        M::MethodUnspecified => "",
    }
}

impl Als {
    /// The service, its counters, and the task that follows the analytics
    /// settings as they change (opening the sink and its writer), for the
    /// caller to run and supervise.
    pub fn start(
        mut settings: watch::Receiver<Option<Arc<Settings>>>,
    ) -> (AccessLogServiceServer<Als>, Arc<Counters>, impl std::future::Future<Output = ()> + Send + 'static) {
        let als = Als { queue: Arc::new(parking_lot::RwLock::new(None)), counters: Arc::new(Counters::default()) };
        let (queue, counters) = (Arc::clone(&als.queue), Arc::clone(&als.counters));
        let task = async move {
            let mut current: Option<AnalyticsSettings> = None;
            loop {
                let next = settings.borrow_and_update().as_ref().map(|s| s.analytics.clone()).filter(|a| a.enabled);
                if next != current {
                    let tx = match &next {
                        Some(a) => match open_sink(&a.sink) {
                            Ok(sink) => {
                                let (tx, rx) = mpsc::channel(a.queue_size);
                                let c = Arc::clone(&counters);
                                tokio::task::spawn_blocking(move || write_loop(rx, sink, c));
                                Some(tx)
                            }
                            Err(e) => {
                                warn!(sink = %a.sink, error = %e, "analytics sink cannot be opened; events are dropped");
                                None
                            }
                        },
                        None => None,
                    };
                    *queue.write() = tx;
                    current = next;
                }
                if settings.changed().await.is_err() {
                    return;
                }
            }
        };
        let counters = Arc::clone(&als.counters);
        (AccessLogServiceServer::new(als), counters, task)
    }
}

/// Queues an event, or drops and counts it when the queue is full: the
/// access-log stream is never held up by a slow sink.
fn offer(tx: &mpsc::Sender<Value>, counters: &Counters, ev: Value) {
    if tx.try_send(ev).is_err() {
        let n = counters.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_power_of_two() {
            warn!(dropped = n, "analytics sink is slower than the traffic: events dropped");
        }
    }
}

fn open_sink(sink: &str) -> std::io::Result<Box<dyn Write + Send>> {
    if sink == "stdout" {
        return Ok(Box::new(std::io::stdout()));
    }
    let f = std::fs::OpenOptions::new().create(true).append(true).open(sink)?;
    Ok(Box::new(f))
}

fn write_loop(mut rx: mpsc::Receiver<Value>, sink: Box<dyn Write + Send>, counters: Arc<Counters>) {
    let mut w = std::io::BufWriter::new(sink);
    while let Some(ev) = rx.blocking_recv() {
        let mut n = 1;
        let mut ok = serde_json::to_writer(&mut w, &ev).is_ok() && w.write_all(b"\n").is_ok();
        // Write what is already queued, then flush once.
        while let Ok(ev) = rx.try_recv() {
            ok &= serde_json::to_writer(&mut w, &ev).is_ok() && w.write_all(b"\n").is_ok();
            n += 1;
        }
        ok &= w.flush().is_ok();
        if ok {
            counters.written.fetch_add(n, Ordering::Relaxed);
        } else {
            counters.dropped.fetch_add(n, Ordering::Relaxed);
        }
    }
}

#[tonic::async_trait]
impl AccessLogService for Als {
    async fn stream_access_logs(
        &self,
        request: Request<Streaming<StreamAccessLogsMessage>>,
    ) -> Result<Response<StreamAccessLogsResponse>, Status> {
        let mut stream = request.into_inner();
        while let Some(msg) = stream.message().await? {
            let Some(LogEntries::HttpLogs(logs)) = msg.log_entries else { continue };
            let tx = self.queue.read().clone();
            let Some(tx) = tx else { continue };
            for entry in &logs.log_entry {
                if let Some(ev) = event(entry) {
                    offer(&tx, &self.counters, ev);
                }
            }
        }
        debug!("access-log stream ended");
        Ok(Response::new(StreamAccessLogsResponse {}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_drops_and_counts() {
        let (tx, mut rx) = mpsc::channel(2);
        let c = Counters::default();
        for i in 0..5 {
            offer(&tx, &c, json!(i));
        }
        assert_eq!(c.dropped.load(Ordering::Relaxed), 3);
        assert_eq!(rx.try_recv().ok(), Some(json!(0)));
    }

    #[test]
    fn api_routes_name_their_api() {
        assert_eq!(route_api_of("Pets:1.0 GET,POST /pets/1.0/pets"), Some(("Pets", "1.0")));
        assert_eq!(route_api_of("My Shop:v2 GET /shop/v2/x (sandbox)"), Some(("My Shop", "v2")));
        assert_eq!(route_api_of("/ready"), None);
        assert_eq!(route_api_of(""), None);
    }
}
