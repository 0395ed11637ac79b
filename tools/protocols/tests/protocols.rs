//! Self-tests of each server, called directly.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use test_protocols::grpc::{EchoRequest, UNARY_PATH};
use test_protocols::tokio_tungstenite::tungstenite::client::IntoClientRequest;
use test_protocols::tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use test_protocols::tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use test_protocols::tokio_tungstenite::{WebSocketStream, client_async};
use test_protocols::{
    GraphqlServer, GrpcServer, Http2Server, Protocols, SoapServer, TlsIdentity, WebSocketServer, soap,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(10);

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One request on a new connection (any stream), over HTTP/1.1 or HTTP/2.
async fn call_on<S>(io: S, h2: bool, req: Request<Full<Bytes>>) -> Reply
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(io);
    let resp = if h2 {
        let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await.expect("h2");
        tokio::spawn(conn);
        send.send_request(req).await.expect("send")
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(io).await.expect("h1");
        tokio::spawn(conn);
        send.send_request(req).await.expect("send")
    };
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Reply { status: parts.status, headers: parts.headers, body }
}

fn request(
    h2: bool,
    method: Method,
    authority: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Request<Full<Bytes>> {
    let mut req = Request::builder().method(method);
    req = if h2 { req.uri(format!("http://{authority}{path}")) } else { req.uri(path).header(HOST, authority) };
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.body(Full::new(Bytes::from(body.to_string()))).expect("request")
}

/// One plain HTTP/1.1 request.
async fn http(addr: SocketAddr, method: Method, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    call_on(tcp, false, request(false, method, &addr.to_string(), path, headers, body)).await
}

// ---------------------------------------------------------------- WebSocket

async fn ws_connect(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> WebSocketStream<TcpStream> {
    let mut req = format!("ws://{addr}{path}").into_client_request().expect("request");
    for (k, v) in headers {
        let name = hyper::header::HeaderName::from_bytes(k.as_bytes()).expect("header name");
        req.headers_mut().insert(name, v.parse().expect("header value"));
    }
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (ws, resp) = client_async(req, tcp).await.expect("WebSocket handshake");
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    ws
}

async fn next<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>) -> Message {
    tokio::time::timeout(WAIT, ws.next()).await.expect("in time").expect("a message").expect("no error")
}

#[tokio::test]
async fn websocket_echo_whoami_and_close() {
    let server = WebSocketServer::start().await.expect("start");
    let mut ws = ws_connect(server.addr, "/chat/room?x=1", &[("x-custom", "yes")]).await;

    ws.send(Message::text("hello")).await.expect("send");
    assert_eq!(next(&mut ws).await, Message::text("hello"));
    ws.send(Message::binary(vec![0u8, 1, 2, 255])).await.expect("send");
    assert_eq!(next(&mut ws).await, Message::binary(vec![0u8, 1, 2, 255]));

    ws.send(Message::text("__whoami")).await.expect("send");
    let Message::Text(text) = next(&mut ws).await else { panic!("a text answer") };
    let who: Value = serde_json::from_str(text.as_str()).expect("JSON");
    assert_eq!(who["path"], "/chat/room?x=1");
    assert_eq!(who["headers"]["x-custom"], "yes");
    assert_eq!(who["headers"]["upgrade"], "websocket");

    ws.send(Message::text("__close")).await.expect("send");
    match next(&mut ws).await {
        Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::Normal),
        other => panic!("expected a close frame, got {other:?}"),
    }
    // The close handshake completes and the stream ends.
    let end = tokio::time::timeout(WAIT, ws.next()).await.expect("in time");
    assert!(end.is_none() || matches!(end, Some(Err(_))), "{end:?}");

    assert_eq!(server.messages(), 4);
    let upgrades = server.upgrades();
    assert_eq!(upgrades.len(), 1);
    assert_eq!(upgrades[0].path, "/chat/room?x=1");
    assert_eq!(upgrades[0].header("X-Custom"), Some("yes"));

    // Not an upgrade.
    let r = http(server.addr, Method::GET, "/", &[], "").await;
    assert_eq!(r.status, StatusCode::UPGRADE_REQUIRED);

    // Stopping closes open sessions too.
    let mut ws = ws_connect(server.addr, "/again", &[]).await;
    ws.send(Message::text("ping")).await.expect("send");
    assert_eq!(next(&mut ws).await, Message::text("ping"));
    server.shutdown().await;
    let end = tokio::time::timeout(WAIT, ws.next()).await.expect("closed in time");
    assert!(!matches!(end, Some(Ok(Message::Text(_)))), "{end:?}");
    assert!(TcpStream::connect(server.addr).await.is_err(), "still listening after stop");
}

#[tokio::test]
async fn websocket_subprotocol_is_accepted() {
    let server = WebSocketServer::start().await.expect("start");
    let mut req = format!("ws://{}/p", server.addr).into_client_request().expect("request");
    req.headers_mut().insert("sec-websocket-protocol", "chat, superchat".parse().expect("value"));
    let tcp = TcpStream::connect(server.addr).await.expect("connect");
    let (mut ws, resp) = client_async(req, tcp).await.expect("handshake");
    assert_eq!(resp.headers()["sec-websocket-protocol"], "chat");
    ws.send(Message::Text(Utf8Bytes::from_static("x"))).await.expect("send");
    assert_eq!(next(&mut ws).await, Message::text("x"));
}

// ------------------------------------------------------------------ GraphQL

#[tokio::test]
async fn graphql_post_get_and_errors() {
    let server = GraphqlServer::start().await.expect("start");
    let body = json!({"query": "query Hero($e: Episode) { hero(episode: $e) { name } }", "operationName": "Hero", "variables": {"e": "NEWHOPE"}})
        .to_string();
    let r = http(server.addr, Method::POST, "/starwars/1.0.0", &[("content-type", "application/json")], &body).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers[CONTENT_TYPE], "application/json");
    assert_eq!(r.json(), json!({"data": {"hero": {"name": "R2-D2"}}}));

    let r = http(server.addr, Method::GET, "/any?query=%7Bhero(episode%3AEMPIRE)%7Bname%7D%7D", &[], "").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json(), json!({"data": {"hero": {"name": "Luke Skywalker"}}}));

    // A GraphQL error is still 200; a body that is no GraphQL request is 400.
    let r =
        http(server.addr, Method::POST, "/", &[("content-type", "application/json")], r#"{"query":"{ nope }"}"#).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.json()["errors"][0]["message"].as_str().is_some_and(|m| m.contains("nope")), "{}", r.text());
    let r = http(server.addr, Method::POST, "/", &[("content-type", "application/json")], "not json").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.json()["errors"][0]["message"].is_string());

    let seen = server.requests();
    assert_eq!(seen.len(), 4);
    assert_eq!((seen[0].method.as_str(), seen[0].path.as_str()), ("POST", "/starwars/1.0.0"));
    assert_eq!(seen[0].body_text(), body);
    assert_eq!(seen[0].header("content-type"), Some("application/json"));
    assert_eq!(
        (seen[1].method.as_str(), seen[1].path.as_str()),
        ("GET", "/any?query=%7Bhero(episode%3AEMPIRE)%7Bname%7D%7D")
    );
    server.clear();
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn graphql_subscription_over_websocket() {
    let server = GraphqlServer::start().await.expect("start");
    let mut ws = ws_connect(server.addr, "/graphql", &[("sec-websocket-protocol", "graphql-transport-ws")]).await;
    ws.send(Message::text(r#"{"type":"connection_init"}"#)).await.expect("init");
    let Message::Text(ack) = next(&mut ws).await else { panic!("text") };
    assert_eq!(serde_json::from_str::<Value>(ack.as_str()).expect("JSON")["type"], "connection_ack");
    let subscribe = json!({"id": "1", "type": "subscribe",
        "payload": {"query": "subscription { reviewAdded(episode: JEDI) { episode stars commentary } }"}});
    ws.send(Message::text(subscribe.to_string())).await.expect("subscribe");

    // The subscription starts asynchronously: create reviews until one arrives.
    let mutation = json!({"query": r#"mutation { createReview(episode: JEDI, review: {stars: 3, commentary: "fine"}) { stars } }"#}).to_string();
    let mut got = None;
    for _ in 0..50 {
        let r = http(server.addr, Method::POST, "/graphql", &[("content-type", "application/json")], &mutation).await;
        assert_eq!(r.json(), json!({"data": {"createReview": {"stars": 3}}}));
        if let Ok(Some(Ok(Message::Text(t)))) = tokio::time::timeout(Duration::from_millis(200), ws.next()).await {
            got = Some(serde_json::from_str::<Value>(t.as_str()).expect("JSON"));
            break;
        }
    }
    let got = got.expect("a subscription event");
    assert_eq!(got["type"], "next");
    assert_eq!(got["id"], "1");
    assert_eq!(got["payload"]["data"]["reviewAdded"], json!({"episode": "JEDI", "stars": 3, "commentary": "fine"}));
    assert_eq!(server.requests()[0].header("sec-websocket-protocol"), Some("graphql-transport-ws"));
}

// --------------------------------------------------------------------- SOAP

#[tokio::test]
async fn soap_11_12_and_faults() {
    let server = SoapServer::start().await.expect("start");
    let envelope = r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><getQuote/></soap:Body></soap:Envelope>"#;

    let r = http(
        server.addr,
        Method::POST,
        "/stock/1.0",
        &[("content-type", "text/xml; charset=utf-8"), ("soapaction", "\"urn:getQuote\"")],
        envelope,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers[CONTENT_TYPE], "text/xml; charset=utf-8");
    let text = r.text();
    assert!(text.contains(r#"xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/""#), "{text}");
    let echo = format!(
        "<echo><action>urn:getQuote</action><contentType>text/xml; charset=utf-8</contentType><bodyBytes>{}</bodyBytes></echo>",
        envelope.len()
    );
    assert!(text.contains(&echo), "{text}");

    let r = http(
        server.addr,
        Method::POST,
        "/stock/1.0",
        &[("content-type", "application/soap+xml; charset=utf-8; action=\"urn:a&b\"")],
        "<x/>",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers[CONTENT_TYPE], "application/soap+xml; charset=utf-8");
    let text = r.text();
    assert!(text.contains(r#"xmlns:soap="http://www.w3.org/2003/05/soap-envelope""#), "{text}");
    assert!(text.contains("<action>urn:a&amp;b</action>"), "{text}");
    assert!(
        text.contains("<contentType>application/soap+xml; charset=utf-8; action=&quot;urn:a&amp;b&quot;</contentType>"),
        "{text}"
    );
    assert!(text.contains("<bodyBytes>4</bodyBytes>"), "{text}");

    for (ct, ns) in [("text/xml", soap::SOAP11_NS), ("application/soap+xml", soap::SOAP12_NS)] {
        let r = http(server.addr, Method::POST, "/f", &[("content-type", ct), ("x-soap-fault", "true")], "<x/>").await;
        assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
        let text = r.text();
        assert!(text.contains(ns) && text.contains("Fault>") && text.contains("asked to fail"), "{text}");
    }
    let r = http(server.addr, Method::GET, "/f", &[], "").await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);

    let seen = server.requests();
    assert_eq!(seen.len(), 5);
    assert_eq!(seen[0].header("soapaction"), Some("\"urn:getQuote\""));
    assert_eq!(seen[0].soap_action.as_deref(), Some("urn:getQuote"));
    assert_eq!(seen[0].soap_version, soap::SoapVersion::V11);
    assert_eq!(seen[0].body, envelope);
    assert_eq!(seen[0].body_bytes, envelope.len());
    assert_eq!(seen[1].path, "/stock/1.0");
    assert_eq!(seen[1].soap_version, soap::SoapVersion::V12);
    assert_eq!(seen[1].soap_action.as_deref(), Some("urn:a&b"));
    assert_eq!(seen[1].content_type.as_deref(), Some("application/soap+xml; charset=utf-8; action=\"urn:a&b\""));
    assert_eq!(seen[4].soap_action, None);
    assert_eq!(seen[4].http.version, "HTTP/1.1");
}

// ------------------------------------------------------------------- HTTP/2

async fn tls_call(server: &Http2Server, alpn: &str) -> Reply {
    let config = server.identity().client_config(&[alpn]).expect("client config");
    let tcp = TcpStream::connect(server.tls_addr).await.expect("connect");
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    let tls = tokio_rustls::TlsConnector::from(config).connect(name, tcp).await.expect("TLS handshake");
    let h2 = alpn == "h2";
    let authority = format!("localhost:{}", server.tls_addr.port());
    let mut req = request(h2, Method::GET, &authority, "/echo?x=1", &[("x-test", "t")], "");
    if h2 {
        *req.uri_mut() = format!("https://{authority}/echo?x=1").parse().expect("uri");
    }
    call_on(tls, h2, req).await
}

#[tokio::test]
async fn http2_over_tls_and_h2c() {
    let server = Http2Server::start().await.expect("start");

    let r = tls_call(&server, "h2").await;
    assert_eq!(r.status, StatusCode::OK);
    let echo = r.json();
    assert_eq!(echo["version"], "HTTP/2.0");
    assert_eq!(echo["alpn"], "h2");
    assert_eq!(echo["tls"], true);
    assert_eq!(echo["method"], "GET");
    assert_eq!(echo["path"], "/echo?x=1");
    assert_eq!(echo["headers"]["x-test"], "t");

    let echo = tls_call(&server, "http/1.1").await.json();
    assert_eq!((echo["version"].as_str(), echo["alpn"].as_str()), (Some("HTTP/1.1"), Some("http/1.1")));

    for h2 in [false, true] {
        let tcp = TcpStream::connect(server.plain_addr).await.expect("connect");
        let req = request(h2, Method::POST, &server.plain_addr.to_string(), "/p", &[], "abc");
        let echo = call_on(tcp, h2, req).await.json();
        assert_eq!(echo["version"], if h2 { "HTTP/2.0" } else { "HTTP/1.1" });
        assert_eq!(echo["alpn"], Value::Null);
        assert_eq!(echo["tls"], false);
        assert_eq!(echo["bodyBytes"], 3);
    }
    let seen = server.requests();
    assert_eq!(seen.len(), 4);
    assert_eq!(seen[0].alpn.as_deref(), Some("h2"));
    assert_eq!(seen[0].authority.as_deref(), Some(format!("localhost:{}", server.tls_addr.port()).as_str()));
    assert_eq!(seen[3].body_text(), "abc");
}

#[tokio::test]
async fn a_given_identity_is_presented() {
    let identity = TlsIdentity::self_signed().expect("identity");
    let given = TlsIdentity::from_pem(identity.cert_pem(), identity.key_pem()).expect("usable");
    assert!(TlsIdentity::from_pem("nope", identity.key_pem()).is_err());
    let server =
        Http2Server::start_on(test_protocols::loopback(), test_protocols::loopback(), &given).await.expect("start");
    assert_eq!(server.cert_pem(), identity.cert_pem());
    assert_eq!(tls_call(&server, "h2").await.status, StatusCode::OK);
}

// --------------------------------------------------------------------- gRPC

#[tokio::test]
async fn grpc_unary_streams_and_errors() {
    let server = GrpcServer::start().await.expect("start");
    let mut client = server.client().await.expect("h2c client");

    let mut req = tonic::Request::new(EchoRequest { message: "hello".into(), repeat: 0 });
    req.metadata_mut().insert("x-test-flavour", "mint".parse().expect("value"));
    req.metadata_mut().insert("x-other", "no".parse().expect("value"));
    let resp = client.unary(req).await.expect("unary");
    assert_eq!(resp.metadata().get("x-test-flavour").map(|v| v.to_str().ok()), Some(Some("mint")));
    assert!(resp.metadata().get("x-other").is_none());
    // tonic merges the trailers into the metadata of a unary response.
    assert_eq!(resp.metadata().get("x-echo-trailer").map(|v| v.to_str().ok()), Some(Some("done")));
    let reply = resp.into_inner();
    assert_eq!((reply.message.as_str(), reply.index), ("hello", 0));

    let err = client.unary(EchoRequest { message: "fail".into(), repeat: 0 }).await.expect_err("asked to fail");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert_eq!(err.message(), "asked to fail");

    let stream = client.server_stream(EchoRequest { message: "s".into(), repeat: 3 }).await.expect("stream");
    let replies: Vec<_> = stream.into_inner().collect().await;
    let replies: Vec<(String, i32)> =
        replies.into_iter().map(|r| r.expect("reply")).map(|r| (r.message, r.index)).collect();
    assert_eq!(replies, [("s".to_string(), 0), ("s".to_string(), 1), ("s".to_string(), 2)]);
    let err = client.server_stream(EchoRequest { message: "s".into(), repeat: -1 }).await.expect_err("negative");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);

    let outbound = futures::stream::iter(["a", "b", "c"].map(|m| EchoRequest { message: m.into(), repeat: 0 }));
    let replies: Vec<_> = client.bidi_stream(outbound).await.expect("bidi").into_inner().collect().await;
    let replies: Vec<(String, i32)> =
        replies.into_iter().map(|r| r.expect("reply")).map(|r| (r.message, r.index)).collect();
    assert_eq!(replies, [("a".to_string(), 0), ("b".to_string(), 1), ("c".to_string(), 2)]);

    let calls = server.calls();
    assert_eq!(calls.len(), 5);
    assert_eq!(calls[0].method, UNARY_PATH);
    assert_eq!(calls[0].header("x-test-flavour"), Some("mint"));
    assert_eq!(calls[0].messages, ["hello"]);
    assert_eq!(calls[2].method, "/test.echo.Echo/ServerStream");
    assert_eq!(calls[4].method, "/test.echo.Echo/BidiStream");
    assert_eq!(calls[4].messages, ["a", "b", "c"]);
    assert!(!calls[0].tls);
}

#[tokio::test]
async fn grpc_over_tls() {
    let server = GrpcServer::start().await.expect("start");
    let mut client = server.tls_client().await.expect("TLS client");
    let reply = client.unary(EchoRequest { message: "secure".into(), repeat: 0 }).await.expect("unary").into_inner();
    assert_eq!(reply.message, "secure");
    let stream = client.server_stream(EchoRequest { message: "s".into(), repeat: 2 }).await.expect("stream");
    assert_eq!(stream.into_inner().collect::<Vec<_>>().await.len(), 2);
    let calls = server.calls();
    assert!(calls[0].tls);
    assert_eq!(calls[0].alpn.as_deref(), Some("h2"));
}

// ---------------------------------------------------------------------- All

#[tokio::test]
async fn all_start_and_stop() {
    let all = Protocols::start().await.expect("start");
    let addrs = all.addresses();
    assert_eq!(
        addrs.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        ["websocket", "graphql", "soap", "http2", "http2-tls", "grpc", "grpc-tls"]
    );
    assert_eq!(all.http2.cert_pem(), all.grpc.cert_pem());
    let r = http(all.soap.addr, Method::POST, "/", &[("content-type", "text/xml")], "<x/>").await;
    assert_eq!(r.status, StatusCode::OK);
    all.shutdown().await;
    for (name, addr) in addrs {
        assert!(TcpStream::connect(addr).await.is_err(), "{name} still listening");
    }
}
