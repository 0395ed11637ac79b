//! HTTP/2 on both sides of the real router (Choreo Connect's `http2/*` test
//! cases, made to check the protocol actually spoken): clients over h2 with
//! ALPN on the HTTPS listener and h2c (prior knowledge) on the HTTP
//! listener; `x-wso2-http2-backend-enabled` to an h2c backend and to one
//! over TLS; and a gRPC service proxied as an API of type HTTP (unary with
//! trailers, server and bidirectional streaming, errors, and a call refused
//! by the enforcer as a gRPC status).

use std::time::Duration;

use futures::StreamExt;
use integration::tokens::{now, unique};
use integration::{Gateway, IDP_ISSUER, XdsMode, api_yaml};
use serde_json::{Value, json};
use test_protocols::grpc::{EchoClient, EchoRequest};
use test_protocols::{GrpcServer, Http2Server};

fn echo_oas(endpoint: &str, http2: bool, open: bool) -> String {
    format!(
        "openapi: 3.0.1\ninfo: {{title: H2, version: v1}}\nx-wso2-http2-backend-enabled: {http2}\n\
         x-wso2-disable-security: {open}\nx-wso2-production-endpoints:\n  urls: [{endpoint}]\npaths:\n  /echo:\n    get: {{}}\n"
    )
}

async fn gateway(files: &[(&str, &str)]) -> Gateway {
    Gateway::builder(XdsMode::Delta).with_enforcer().project("h2", files).start().await
}

fn client(gw: &Gateway, h2c: bool) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(gw.certs.ca_pem.as_bytes()).expect("CA");
    let b = reqwest::Client::builder().no_proxy().add_root_certificate(ca).timeout(Duration::from_secs(20));
    if h2c { b.http2_prior_knowledge() } else { b }.build().expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_speak_h2_over_tls_and_h2c_and_http1_still_works() {
    let backend = Http2Server::start().await.expect("HTTP/2 echo");
    let gw = gateway(&[
        ("api.yaml", &api_yaml("H2", "v1", "/h2", &backend.plain_url())),
        ("Definitions/swagger.yaml", &echo_oas(&backend.plain_url(), false, true)),
    ])
    .await;

    // h2 over TLS, negotiated by ALPN.
    let url = format!("https://localhost:{}/h2/v1/echo", gw.ports.https);
    let r = client(&gw, false).get(&url).send().await.expect("h2 request");
    assert_eq!((r.status().as_u16(), r.version()), (200, reqwest::Version::HTTP_2));
    let seen: Value = r.json().await.expect("JSON");
    assert_eq!(seen["version"], "HTTP/1.1", "the backend is not HTTP/2-enabled: {seen}");
    assert_eq!(seen["path"], "/echo");

    // h2c with prior knowledge on the plain listener.
    // (`localhost`: the authority names the virtual host; h2 has no Host header.)
    let url = format!("http://localhost:{}/h2/v1/echo", gw.ports.http);
    let r = client(&gw, true).get(&url).send().await.expect("h2c request");
    assert_eq!((r.status().as_u16(), r.version()), (200, reqwest::Version::HTTP_2));

    // HTTP/1.1 on both.
    let r = gw.get("/h2/v1/echo").await.expect("http/1.1");
    assert_eq!(r.status, 200, "{}", r.body);
    let r = gw.request_tls("GET", "/h2/v1/echo").await.expect("https/1.1");
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_backends_over_h2c_and_tls() {
    let backend = Http2Server::start().await.expect("HTTP/2 echo");
    // h2c upstream.
    let gw = gateway(&[
        ("api.yaml", &api_yaml("H2", "v1", "/h2", &backend.plain_url())),
        ("Definitions/swagger.yaml", &echo_oas(&backend.plain_url(), true, true)),
    ])
    .await;
    let r = gw.get("/h2/v1/echo").await.expect("request");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["version"], "HTTP/2.0", "{}", r.body);

    // h2 over TLS upstream: the backend's certificate trusted through the
    // project's Endpoint-certificates/, ALPN h2.
    let tls = backend.tls_url();
    let gw = gateway(&[
        ("api.yaml", &api_yaml("H2", "v1", "/h2", &tls)),
        ("Definitions/swagger.yaml", &echo_oas(&tls, true, true)),
        ("Endpoint-certificates/backend.pem", backend.cert_pem()),
    ])
    .await;
    let r = gw.get("/h2/v1/echo").await.expect("request");
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = r.json();
    assert_eq!((seen["version"].as_str(), seen["alpn"].as_str()), (Some("HTTP/2.0"), Some("h2")), "{seen}");
    assert_eq!(seen["tls"], true, "{seen}");
}

fn grpc_oas(endpoint: &str, open: bool) -> String {
    format!(
        "openapi: 3.0.1\ninfo: {{title: Echo, version: v1}}\nx-wso2-basePath: /test.echo.Echo\n\
         x-wso2-http2-backend-enabled: true\nx-wso2-disable-security: {open}\n\
         x-wso2-production-endpoints:\n  urls: [{endpoint}/test.echo.Echo]\npaths:\n  /*:\n    post: {{}}\n"
    )
}

async fn grpc_client(gw: &Gateway) -> EchoClient<tonic::transport::Channel> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{}", gw.ports.http))
        .expect("endpoint")
        .origin("http://localhost".parse().expect("origin"))
        .timeout(Duration::from_secs(20));
    EchoClient::new(endpoint.connect().await.expect("connect to the router"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_unary_and_streaming_calls_go_through_the_gateway() {
    let backend = GrpcServer::start().await.expect("gRPC server");
    let gw = gateway(&[
        ("api.yaml", &api_yaml("Echo", "v1", "/echo", &backend.plain_url())),
        ("Definitions/swagger.yaml", &grpc_oas(&backend.plain_url(), false)),
    ])
    .await;
    let mut c = grpc_client(&gw).await;

    // Refused by the enforcer: the 401 reaches the client as UNAUTHENTICATED.
    let err = c.unary(EchoRequest { message: "hi".into(), repeat: 0 }).await.expect_err("no token");
    assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err:?}");
    assert!(backend.calls().is_empty(), "a refused call never reaches the service");

    let claims = json!({
        "iss": IDP_ISSUER, "sub": "alice", "azp": "c1", "exp": now() + 600, "iat": now(), "jti": format!("g-{}", unique()),
        "application": {"id": 1, "uuid": "app-1", "name": "EchoApp", "owner": "alice"},
        "subscribedAPIs": [{"name": "Echo", "version": "v1", "context": "/test.echo.Echo", "subscriptionTier": "Unlimited"}],
    });
    let bearer: tonic::metadata::MetadataValue<_> =
        format!("Bearer {}", gw.idp().idp.sign(&claims)).parse().expect("metadata");
    let with_token = |msg: EchoRequest| {
        let mut r = tonic::Request::new(msg);
        r.metadata_mut().insert("authorization", bearer.clone());
        r.metadata_mut().insert("x-test-id", "42".parse().expect("metadata"));
        r
    };

    // Unary: reply, metadata and the trailer.
    let resp = c.unary(with_token(EchoRequest { message: "hello".into(), repeat: 0 })).await.expect("unary");
    assert_eq!(resp.get_ref().message, "hello");
    assert_eq!(resp.metadata().get("x-test-id").and_then(|v| v.to_str().ok()), Some("42"));
    assert_eq!(resp.metadata().get("x-echo-trailer").and_then(|v| v.to_str().ok()), Some("done"), "the trailer");
    let call = backend.calls().pop().expect("seen");
    assert_eq!(call.method, "/test.echo.Echo/Unary");
    assert!(call.header("authorization").is_none(), "the token stays at the gateway: {:?}", call.metadata);

    // A service error keeps its status and message.
    let err = c.unary(with_token(EchoRequest { message: "fail".into(), repeat: 0 })).await.expect_err("fail");
    assert_eq!((err.code(), err.message()), (tonic::Code::InvalidArgument, "asked to fail"));

    // Server streaming.
    let mut stream =
        c.server_stream(with_token(EchoRequest { message: "s".into(), repeat: 5 })).await.expect("stream").into_inner();
    let mut got = Vec::new();
    while let Some(m) = stream.next().await {
        got.push(m.expect("message").index);
    }
    assert_eq!(got, vec![0, 1, 2, 3, 4]);

    // Bidirectional streaming.
    let outbound = futures::stream::iter((0..3).map(|i| EchoRequest { message: format!("b{i}"), repeat: 0 }));
    let mut req = tonic::Request::new(outbound);
    req.metadata_mut().insert("authorization", bearer.clone());
    let mut inbound = c.bidi_stream(req).await.expect("bidi").into_inner();
    let mut echoed = Vec::new();
    while let Some(m) = inbound.next().await {
        echoed.push(m.expect("message").message);
    }
    assert_eq!(echoed, vec!["b0", "b1", "b2"]);
}
