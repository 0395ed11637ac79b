//! The enforcer's spans (`[tracing]`): one per check, a child of the
//! router's ext_authz call, so that one request is one trace holding the
//! router's spans and the enforcer's.
//!
//! The parent comes from the Check call's gRPC metadata, where Envoy puts
//! the context of its ext_authz span: B3 headers (`x-b3-traceid`,
//! `x-b3-spanid`, `x-b3-sampled`) for zipkin, W3C `traceparent` otherwise
//! (Choreo Connect's rule). A check is traced only when the router sampled
//! the request. Spans wait in a bounded queue (dropped, and counted in the
//! log, when the collector is slower than the traffic) and leave in batches
//! every second: OTLP over gRPC or HTTP (protobuf), or Zipkin v2 JSON.
//! Service name: `choreo_connect_enforcer-<label>`; span name
//! `ExtAuthService:check()`, as in Choreo Connect.

use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use enforcer_core::settings::{Settings, TraceExporter, TraceSettings};
use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};

use gateway_proto::otlp;

use crate::authz::Outcome;

/// The span name (Choreo Connect's).
pub const SPAN_NAME: &str = "ExtAuthService:check()";
const QUEUE: usize = 8192;
const BATCH: usize = 512;

/// The context a check's span descends from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parent {
    /// Trace id.
    pub trace_id: [u8; 16],
    /// The router's ext_authz span.
    pub span_id: [u8; 8],
}

fn hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let s = s.trim();
    // B3 allows a 64-bit trace id: left-padded to 128 bits.
    let padded;
    let s = if N == 16 && s.len() == 16 {
        padded = format!("{:0>32}", s);
        padded.as_str()
    } else {
        s
    };
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    (out.iter().any(|b| *b != 0)).then_some(out)
}

fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// W3C `traceparent: 00-<trace>-<span>-<flags>`; only a sampled one.
pub fn parent_w3c(traceparent: &str) -> Option<Parent> {
    let mut parts = traceparent.trim().split('-');
    let version = parts.next()?;
    let (trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?);
    if version.len() != 2 || version == "ff" || (version == "00" && parts.next().is_some()) {
        return None;
    }
    let flags = u8::from_str_radix(flags, 16).ok()?;
    (flags & 1 == 1).then_some(Parent { trace_id: hex::<16>(trace)?, span_id: hex::<8>(span)? })
}

/// B3 multi-header context; only a sampled one (`x-b3-sampled: 1`, or the
/// debug flag).
pub fn parent_b3(get: impl Fn(&str) -> Option<String>) -> Option<Parent> {
    let sampled = get("x-b3-sampled").is_some_and(|s| s == "1" || s.eq_ignore_ascii_case("true"))
        || get("x-b3-flags").is_some_and(|f| f == "1");
    if !sampled {
        return None;
    }
    Some(Parent { trace_id: hex::<16>(&get("x-b3-traceid")?)?, span_id: hex::<8>(&get("x-b3-spanid")?)? })
}

/// One finished check.
#[derive(Debug, Clone)]
pub struct SpanRecord {
    parent: Parent,
    span_id: [u8; 8],
    start_unix_ns: u64,
    duration_ns: u64,
    outcome: Option<Outcome>,
    request_id: String,
}

/// Hands spans to the exporter; cheap to clone.
#[derive(Clone)]
pub struct Tracer {
    tx: mpsc::Sender<SpanRecord>,
    settings: watch::Receiver<Option<Arc<Settings>>>,
    ids: Arc<(std::hash::RandomState, AtomicU64)>,
    dropped: Arc<AtomicU64>,
}

/// A check being traced.
pub struct Started {
    parent: Parent,
    start: SystemTime,
    clock: std::time::Instant,
}

impl Tracer {
    /// The tracer and its export task, following the enforcer's settings.
    pub fn start(
        settings: watch::Receiver<Option<Arc<Settings>>>,
        label: &str,
    ) -> (Tracer, impl std::future::Future<Output = ()> + Send + 'static) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let tracer = Tracer {
            tx,
            settings: settings.clone(),
            ids: Arc::new((std::hash::RandomState::new(), AtomicU64::new(1))),
            dropped: Arc::new(AtomicU64::new(0)),
        };
        let service = format!("choreo_connect_enforcer-{label}");
        (tracer, export(rx, settings, service))
    }

    fn enabled(&self) -> Option<TraceExporter> {
        self.settings.borrow().as_ref().and_then(|s| s.tracing.as_ref()).map(|t| t.exporter.clone())
    }

    /// Starts a span when tracing is on and the request's context (in the
    /// Check call's metadata) is sampled.
    pub fn begin(&self, metadata: &tonic::metadata::MetadataMap) -> Option<Started> {
        let exporter = self.enabled()?;
        let get = |k: &str| metadata.get(k).and_then(|v| v.to_str().ok()).map(str::to_string);
        let parent = match exporter {
            TraceExporter::Zipkin => parent_b3(get),
            TraceExporter::OtlpGrpc | TraceExporter::OtlpHttp => parent_w3c(&get("traceparent")?),
        }?;
        Some(Started { parent, start: SystemTime::now(), clock: std::time::Instant::now() })
    }

    /// Ends a span with what the check decided (`None`: it failed).
    pub fn end(&self, started: Started, outcome: Option<Outcome>, request_id: &str) {
        let n = self.ids.1.fetch_add(1, Ordering::Relaxed);
        let mut span_id = self.ids.0.hash_one((n, started.parent.trace_id)).to_be_bytes();
        if span_id == [0; 8] {
            span_id[7] = 1;
        }
        let rec = SpanRecord {
            parent: started.parent,
            span_id,
            start_unix_ns: started.start.duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0),
            duration_ns: started.clock.elapsed().as_nanos() as u64,
            outcome,
            request_id: request_id.to_string(),
        };
        if self.tx.try_send(rec).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                warn!(dropped = n, "trace collector slower than the traffic: spans dropped");
            }
        }
    }
}

async fn export(mut rx: mpsc::Receiver<SpanRecord>, settings: watch::Receiver<Option<Arc<Settings>>>, service: String) {
    let http = reqwest::Client::builder().no_proxy().build().unwrap_or_default();
    let mut grpc: Option<(String, tonic::transport::Channel)> = None;
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        if rx.recv_many(&mut batch, BATCH).await == 0 {
            return;
        }
        // Gather what arrives within a second, up to a batch.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        while batch.len() < BATCH {
            let room = BATCH - batch.len();
            match tokio::time::timeout_at(deadline, rx.recv_many(&mut batch, room)).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let Some(t) = settings.borrow().as_ref().and_then(|s| s.tracing.clone()) else {
            batch.clear();
            continue;
        };
        let n = batch.len();
        let result = match t.exporter {
            TraceExporter::OtlpHttp => otlp_http(&http, &t, &service, &batch).await,
            TraceExporter::OtlpGrpc => otlp_grpc(&mut grpc, &t, &service, &batch).await,
            TraceExporter::Zipkin => zipkin(&http, &t, &service, &batch).await,
        };
        match result {
            Ok(()) => debug!(spans = n, "spans exported"),
            Err(e) => warn!(spans = n, collector = %format!("{}:{}", t.host, t.port), error = %e, "spans not exported"),
        }
        batch.clear();
    }
}

/// What a check decided, as its span's tags (`None`: it failed). The
/// enforcer's module tags its span in Envoy's trace with the same
/// (enforcer/module/src/filter.rs).
pub fn outcome_tags(outcome: Option<&Outcome>) -> Vec<(&'static str, String)> {
    let mut out = Vec::with_capacity(4);
    match outcome {
        Some(o) => {
            out.push(("enforcer.decision", o.decision.to_string()));
            if !o.code.is_empty() {
                out.push(("enforcer.error_code", o.code.to_string()));
                out.push(("http.response.status_code", o.status.to_string()));
            }
        }
        None => out.push(("enforcer.decision", "error".to_string())),
    }
    out
}

fn attributes(r: &SpanRecord) -> Vec<(&'static str, String)> {
    let mut out = outcome_tags(r.outcome.as_ref());
    if !r.request_id.is_empty() {
        out.push(("request.id", r.request_id.clone()));
    }
    out
}

fn otlp_request(service: &str, batch: &[SpanRecord]) -> otlp::ExportTraceServiceRequest {
    let kv = |k: &str, v: String| otlp::KeyValue {
        key: k.to_string(),
        value: Some(otlp::AnyValue { value: Some(otlp::any_value::Value::StringValue(v)) }),
    };
    let spans = batch
        .iter()
        .map(|r| otlp::Span {
            trace_id: r.parent.trace_id.to_vec(),
            span_id: r.span_id.to_vec(),
            parent_span_id: r.parent.span_id.to_vec(),
            flags: 1,
            name: SPAN_NAME.to_string(),
            kind: otlp::SPAN_KIND_SERVER,
            start_time_unix_nano: r.start_unix_ns,
            end_time_unix_nano: r.start_unix_ns + r.duration_ns,
            attributes: attributes(r).into_iter().map(|(k, v)| kv(k, v)).collect(),
            status: r
                .outcome
                .is_none()
                .then(|| otlp::Status { message: "no decision".to_string(), code: otlp::STATUS_CODE_ERROR }),
            ..Default::default()
        })
        .collect();
    otlp::ExportTraceServiceRequest {
        resource_spans: vec![otlp::ResourceSpans {
            resource: Some(otlp::Resource { attributes: vec![kv("service.name", service.to_string())] }),
            scope_spans: vec![otlp::ScopeSpans {
                scope: Some(otlp::InstrumentationScope { name: "CHOREO-CONNECT".to_string(), ..Default::default() }),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn url(t: &TraceSettings) -> String {
    format!("http://{}:{}{}", t.host, t.port, t.endpoint)
}

async fn otlp_http(
    http: &reqwest::Client,
    t: &TraceSettings,
    service: &str,
    batch: &[SpanRecord],
) -> Result<(), String> {
    use prost::Message;
    let body = otlp_request(service, batch).encode_to_vec();
    let resp = http
        .post(url(t))
        .header("content-type", "application/x-protobuf")
        .timeout(Duration::from_secs(t.timeout_s.max(1)))
        .body(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if resp.status().is_success() { Ok(()) } else { Err(format!("HTTP {}", resp.status())) }
}

async fn otlp_grpc(
    channel: &mut Option<(String, tonic::transport::Channel)>,
    t: &TraceSettings,
    service: &str,
    batch: &[SpanRecord],
) -> Result<(), String> {
    let target = format!("http://{}:{}", t.host, t.port);
    if channel.as_ref().is_none_or(|(u, _)| *u != target) {
        let endpoint = tonic::transport::Endpoint::from_shared(target.clone()).map_err(|e| e.to_string())?;
        *channel = Some((target, endpoint.timeout(Duration::from_secs(t.timeout_s.max(1))).connect_lazy()));
    }
    let Some((_, ch)) = channel.as_ref() else { return Err("no channel".into()) };
    let mut grpc = tonic::client::Grpc::new(ch.clone());
    grpc.ready().await.map_err(|e| e.to_string())?;
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    );
    let codec = tonic_prost::ProstCodec::<otlp::ExportTraceServiceRequest, otlp::ExportTraceServiceResponse>::default();
    grpc.unary(tonic::Request::new(otlp_request(service, batch)), path, codec)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

async fn zipkin(http: &reqwest::Client, t: &TraceSettings, service: &str, batch: &[SpanRecord]) -> Result<(), String> {
    let spans: Vec<serde_json::Value> = batch
        .iter()
        .map(|r| {
            let tags: serde_json::Map<String, serde_json::Value> =
                attributes(r).into_iter().map(|(k, v)| (k.to_string(), serde_json::Value::String(v))).collect();
            serde_json::json!({
                "traceId": to_hex(&r.parent.trace_id),
                "id": to_hex(&r.span_id),
                "parentId": to_hex(&r.parent.span_id),
                "name": SPAN_NAME,
                "kind": "SERVER",
                "timestamp": r.start_unix_ns / 1000,
                "duration": (r.duration_ns / 1000).max(1),
                "localEndpoint": {"serviceName": service},
                "tags": tags,
            })
        })
        .collect();
    let resp = http
        .post(url(t))
        .timeout(Duration::from_secs(t.timeout_s.max(1)))
        .json(&spans)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if resp.status().is_success() { Ok(()) } else { Err(format!("HTTP {}", resp.status())) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn w3c_and_b3_parents() {
        let p = parent_w3c("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").expect("sampled");
        assert_eq!(to_hex(&p.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(to_hex(&p.span_id), "00f067aa0ba902b7");
        assert_eq!(parent_w3c("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"), None, "not sampled");
        assert_eq!(parent_w3c("00-00000000000000000000000000000000-00f067aa0ba902b7-01"), None, "zero trace id");
        assert_eq!(parent_w3c("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"), None);
        assert_eq!(parent_w3c("00-4bf9-00f067aa0ba902b7-01"), None);
        let h = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
        };
        let p = parent_b3(h(&[
            ("x-b3-traceid", "a3ce929d0e0e4736"),
            ("x-b3-spanid", "00f067aa0ba902b7"),
            ("x-b3-sampled", "1"),
        ]))
        .expect("64-bit trace id");
        assert_eq!(to_hex(&p.trace_id), "0000000000000000a3ce929d0e0e4736");
        assert_eq!(parent_b3(h(&[("x-b3-traceid", "a3ce929d0e0e4736"), ("x-b3-spanid", "00f067aa0ba902b7")])), None);
    }

    #[test]
    fn otlp_span_encodes_parent_and_decision() {
        use prost::Message;
        let parent = parent_w3c("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").expect("parent");
        let rec = SpanRecord {
            parent,
            span_id: [1, 2, 3, 4, 5, 6, 7, 8],
            start_unix_ns: 10,
            duration_ns: 5,
            outcome: Some(Outcome { decision: "deny", code: "900901", status: 401 }),
            request_id: "r1".into(),
        };
        let bytes = otlp_request("choreo_connect_enforcer-Default", &[rec]).encode_to_vec();
        let back = otlp::ExportTraceServiceRequest::decode(bytes.as_slice()).expect("decode");
        let span = &back.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(span.parent_span_id, parent.span_id.to_vec());
        assert_eq!(span.end_time_unix_nano, 15);
        let attrs: Vec<(String, String)> = span
            .attributes
            .iter()
            .map(|kv| match &kv.value {
                Some(otlp::AnyValue { value: Some(otlp::any_value::Value::StringValue(v)) }) => {
                    (kv.key.clone(), v.clone())
                }
                _ => (kv.key.clone(), String::new()),
            })
            .collect();
        assert!(attrs.contains(&("enforcer.error_code".into(), "900901".into())), "{attrs:?}");
        assert!(attrs.contains(&("enforcer.decision".into(), "deny".into())), "{attrs:?}");
    }
}
