//! `[tracing]` end to end: the router (Envoy's OpenTelemetry tracer, set up
//! by the adapter) and the enforcer export to a real OTLP receiver, PyPI
//! `oteltap` (installed into .tools/pip-oteltap by `make test`; OTLP over
//! HTTP with protobuf bodies, the protocol it speaks, so the test uses
//! `protocol = "http"`; OTLP/gRPC, Choreo Connect's default, goes through the
//! same code with another transport). One request is one trace: the
//! router's server span, its ext_authz client span, and the enforcer's span
//! under it with the decision and error code. OTLP over gRPC (Choreo
//! Connect's default) and Zipkin (B3 propagation) are tested against
//! stand-in collectors written here (no receiver of either installs here).

use std::collections::BTreeMap;
use std::process::Command;

use integration::{Gateway, Proc, XdsMode, api_yaml, eventually, free_port, workspace_root};
use serde_json::Value;
use test_backend::Backend;

use integration::fixtures::{PETS_OAS as OAS, pets_claims};

/// The receiver, printing each span it gets as a JSON line.
fn oteltap(dir: &std::path::Path, port: u16) -> Proc {
    let lib = workspace_root().join(".tools/pip-oteltap");
    assert!(
        lib.join("oteltap").is_dir(),
        "PyPI oteltap is not in {}: run `make test` (or `make oteltap`)",
        lib.display()
    );
    let mut cmd = Command::new("python3");
    cmd.args(["-u", "-m", "oteltap", "--port", &port.to_string()]).env("PYTHONPATH", &lib);
    Proc::spawn_group("oteltap", &mut cmd, dir.join("oteltap.log"))
}

fn spans(log: &str) -> Vec<Value> {
    log.lines().filter(|l| l.starts_with('{')).filter_map(|l| serde_json::from_str(l).ok()).collect()
}

fn attrs(span: &Value) -> BTreeMap<String, String> {
    span["attributes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|kv| Some((kv["key"].as_str()?.to_string(), kv["value"]["stringValue"].as_str()?.to_string())))
        .collect()
}

/// The Pets API behind a gateway whose `[tracing]` exports to a collector
/// on 127.0.0.1:`port` (`properties`: more `configProperties` lines).
async fn traced_gateway(b: &Backend, mode: XdsMode, kind: &str, port: u16, properties: &str) -> Gateway {
    let api = api_yaml("Pets", "1.0", "/pets", &b.url());
    Gateway::builder(mode)
        .with_enforcer()
        .config(&format!(
            "[tracing]\nenabled = true\ntype = \"{kind}\"\n[tracing.configProperties]\nhost = \"127.0.0.1\"\nport = \"{port}\"\n{properties}"
        ))
        .project("pets", &[("api.yaml", api.as_str()), ("Definitions/swagger.yaml", OAS)])
        .start()
        .await
}

/// `n` requests without a token: each refused (401), each traced.
async fn refused(gw: &Gateway, n: usize) {
    for _ in 0..n {
        let r = gw.request("GET", "localhost", "/pets/1.0/pets", &[]).await.expect("request");
        assert_eq!(r.status, 401, "{}", r.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_is_one_trace_with_the_router_and_enforcer_spans() {
    let b = Backend::start("b").await.expect("backend");
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let receiver = oteltap(dir.path(), port);
    let gw = traced_gateway(&b, XdsMode::Delta, "otlp", port, "protocol = \"http\"\nconnectionTimeout = \"2\"\n").await;

    // What the adapter configured: the collector's cluster and the tracer.
    let dump = gw.config_dump(None).await.to_string();
    assert!(dump.contains("\"name\":\"wso2_cc_trace\""), "no wso2_cc_trace cluster");
    assert!(dump.contains("choreo_connect_router"), "no tracer with the router's service name");

    let token = gw.idp().idp.sign(&pets_claims("trace-1"));
    let auth = format!("Bearer {token}");
    // Three allowed, three refused (Envoy flushes every 5 spans or 5 s).
    for _ in 0..3 {
        let r = gw.request("GET", "localhost", "/pets/1.0/pets", &[("authorization", &auth)]).await.expect("request");
        assert_eq!(r.status, 200, "{}", r.body);
        let r = gw.request("GET", "localhost", "/pets/1.0/pets", &[]).await.expect("request");
        assert_eq!(r.status, 401, "{}", r.body);
    }

    // For a refused request: the enforcer's span, its parent the router's
    // ext_authz span, whose parent is the router's span of the request. With
    // the enforcer in the router (its module) there is no ext_authz call:
    // the check's span is a child of the router's span, in Envoy's export.
    let module = gw.enforcer_in_module();
    let (enforcer, authz, root) = eventually("a trace with the router's and the enforcer's spans", || async {
        let all = spans(&receiver.log());
        let by_id: BTreeMap<&str, &Value> = all.iter().filter_map(|s| Some((s["spanId"].as_str()?, s))).collect();
        for e in all.iter().filter(|s| s["name"] == "ExtAuthService:check()") {
            if attrs(e).get("enforcer.error_code").map(String::as_str) != Some("900901") {
                continue;
            }
            let Some(authz) = e["parentSpanId"].as_str().and_then(|p| by_id.get(p)) else { continue };
            if module {
                return Ok(((*e).clone(), (*authz).clone(), (*authz).clone()));
            }
            let Some(root) = authz["parentSpanId"].as_str().and_then(|p| by_id.get(p)) else { continue };
            return Ok(((*e).clone(), (*authz).clone(), (*root).clone()));
        }
        Err(format!("{} spans so far:\n{}", all.len(), receiver.log()))
    })
    .await;
    assert_eq!(enforcer["traceId"], root["traceId"], "one trace");
    assert_eq!(authz["traceId"], root["traceId"], "one trace");
    if !module {
        assert!(authz["name"].as_str().unwrap_or("").contains("Authorization.Check"), "{authz}");
        assert_eq!(enforcer["kind"], 2, "a server span: {enforcer}");
    }
    let a = attrs(&enforcer);
    assert_eq!(a.get("enforcer.decision").map(String::as_str), Some("deny"), "{a:?}");
    assert_eq!(a.get("http.response.status_code").map(String::as_str), Some("401"), "{a:?}");
    assert!(root["parentSpanId"].as_str().is_none_or(str::is_empty), "the router's span is the root: {root}");
    let allowed = spans(&receiver.log())
        .into_iter()
        .filter(|s| {
            s["name"] == "ExtAuthService:check()"
                && attrs(s).get("enforcer.decision").map(String::as_str) == Some("allow")
        })
        .count();
    assert!(allowed >= 1, "no span of an allowed check:\n{}", receiver.log());
}

/// `type = "zipkin"`: Envoy's Zipkin tracer and the enforcer's Zipkin export,
/// parent context in B3 headers. No Zipkin server can be installed here (it
/// is a Java service): the collector is a stand-in, an HTTP server taking
/// Zipkin v2 JSON at `/api/v2/spans` the way Zipkin does, which keeps what
/// it was sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zipkin_traces_link_the_enforcer_span_to_the_router_by_b3() {
    let received = std::sync::Arc::new(parking_lot::Mutex::new(Vec::<Value>::new()));
    let r = std::sync::Arc::clone(&received);
    let app = axum::Router::new().route(
        "/api/v2/spans",
        axum::routing::post(move |body: axum::body::Bytes| {
            let r = std::sync::Arc::clone(&r);
            async move {
                match serde_json::from_slice::<Vec<Value>>(&body) {
                    Ok(spans) => {
                        r.lock().extend(spans);
                        axum::http::StatusCode::ACCEPTED
                    }
                    Err(_) => axum::http::StatusCode::BAD_REQUEST,
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let b = Backend::start("b").await.expect("backend");
    let gw = traced_gateway(&b, XdsMode::Sotw, "zipkin", port, "").await;
    refused(&gw, 6).await;
    let (enforcer, authz) = eventually("the enforcer's span under the router's ext_authz span", || async {
        let all = received.lock().clone();
        let found = all.iter().filter(|s| s["name"] == "ExtAuthService:check()").find_map(|e| {
            let authz = all.iter().find(|s| s["id"] == e["parentId"] && s["traceId"] == e["traceId"])?;
            Some((e.clone(), authz.clone()))
        });
        found.ok_or_else(|| format!("{} spans: {}", all.len(), serde_json::to_string(&all).unwrap_or_default()))
    })
    .await;
    assert_eq!(enforcer["tags"]["enforcer.error_code"], "900901", "{enforcer}");
    if gw.enforcer_in_module() {
        // Decided in the router: the check's span is Envoy's, under the
        // router's span of the request.
        assert_eq!(enforcer["localEndpoint"]["serviceName"], authz["localEndpoint"]["serviceName"], "{enforcer}");
        assert!(authz["parentId"].is_null(), "the router's span of the request: {authz}");
    } else {
        assert_eq!(enforcer["localEndpoint"]["serviceName"], "choreo_connect_enforcer-Default", "{enforcer}");
        assert_eq!(enforcer["kind"], "SERVER");
        assert!(authz["name"].as_str().unwrap_or("").to_lowercase().contains("authorization.check"), "{authz}");
    }
    assert_eq!(enforcer["traceId"].as_str().map(str::len), Some(32), "128-bit trace ids: {enforcer}");
    server.abort();
}

/// A stand-in OTLP/gRPC collector: `TraceService/Export` over h2c, keeping
/// the resource's service name with each span (no OTLP/gRPC receiver can be
/// installed here; oteltap speaks OTLP over HTTP only).
mod collector {
    use std::sync::Arc;
    use std::task::{Context, Poll};

    use gateway_proto::otlp;
    use parking_lot::Mutex;
    use tonic::codegen::{BoxFuture, Service, http};

    /// Spans received, with their resource's `service.name`.
    pub type Received = Arc<Mutex<Vec<(String, otlp::Span)>>>;

    #[derive(Clone)]
    pub struct Collector(pub Received);

    impl tonic::server::NamedService for Collector {
        const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
    }

    struct Export(Received);

    impl tonic::server::UnaryService<otlp::ExportTraceServiceRequest> for Export {
        type Response = otlp::ExportTraceServiceResponse;
        type Future = BoxFuture<tonic::Response<Self::Response>, tonic::Status>;

        fn call(&mut self, req: tonic::Request<otlp::ExportTraceServiceRequest>) -> Self::Future {
            let received = Arc::clone(&self.0);
            Box::pin(async move {
                for rs in req.into_inner().resource_spans {
                    let service = rs
                        .resource
                        .iter()
                        .flat_map(|r| &r.attributes)
                        .find(|kv| kv.key == "service.name")
                        .and_then(|kv| match &kv.value {
                            Some(otlp::AnyValue { value: Some(otlp::any_value::Value::StringValue(s)) }) => {
                                Some(s.clone())
                            }
                            _ => None,
                        })
                        .unwrap_or_default();
                    for ss in rs.scope_spans {
                        received.lock().extend(ss.spans.into_iter().map(|s| (service.clone(), s)));
                    }
                }
                Ok(tonic::Response::new(otlp::ExportTraceServiceResponse {}))
            })
        }
    }

    impl Service<http::Request<tonic::body::Body>> for Collector {
        type Response = http::Response<tonic::body::Body>;
        type Error = std::convert::Infallible;
        type Future = BoxFuture<Self::Response, Self::Error>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
            let received = Arc::clone(&self.0);
            Box::pin(async move {
                if req.uri().path() != "/opentelemetry.proto.collector.trace.v1.TraceService/Export" {
                    return Ok(tonic::Status::unimplemented("only Export").into_http());
                }
                let codec = tonic_prost::ProstCodec::<otlp::ExportTraceServiceResponse, otlp::ExportTraceServiceRequest>::default();
                Ok(tonic::server::Grpc::new(codec).unary(Export(received), req).await)
            })
        }
    }
}

/// `type = "otlp"` with Choreo Connect's default transport, gRPC: the
/// router's and the enforcer's spans in one trace, each under its service
/// name (`choreo_connect_router`, `choreo_connect_enforcer-<label>`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_over_grpc_carries_both_service_names_in_one_trace() {
    let received: collector::Received = std::sync::Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(collector::Collector(std::sync::Arc::clone(&received)))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let b = Backend::start("b").await.expect("backend");
    let gw = traced_gateway(&b, XdsMode::Delta, "otlp", port, "").await;
    refused(&gw, 6).await;
    let module = gw.enforcer_in_module();
    let (enforcer, authz, root) = eventually("one trace over OTLP/gRPC", || async {
        let all = received.lock().clone();
        let by_id = |id: &[u8]| all.iter().find(|(_, s)| s.span_id == id).cloned();
        for (service, e) in all.iter().filter(|(_, s)| s.name == "ExtAuthService:check()") {
            let Some(authz) = by_id(&e.parent_span_id) else { continue };
            if module {
                return Ok(((service.clone(), e.clone()), authz.clone(), authz));
            }
            let Some(root) = by_id(&authz.1.parent_span_id) else { continue };
            return Ok(((service.clone(), e.clone()), authz, root));
        }
        Err(format!("{} spans: {:?}", all.len(), all.iter().map(|(s, x)| (s, &x.name)).collect::<Vec<_>>()))
    })
    .await;
    // Decided in the router (its module): the check's span is the router's.
    let service = if module { "choreo_connect_router" } else { "choreo_connect_enforcer-Default" };
    assert_eq!(enforcer.0, service);
    assert_eq!(authz.0, "choreo_connect_router");
    assert_eq!(root.0, "choreo_connect_router");
    assert_eq!(enforcer.1.trace_id, root.1.trace_id, "one trace");
    assert!(root.1.parent_span_id.is_empty(), "the router's span is the root");
    server.abort();
}
