//! WebSocket APIs (type WS, AsyncAPI 2) through the real router, adapter and
//! enforcer, with a real WebSocket echo server as the backend (Choreo
//! Connect's `websocket/*` test cases, ported): the upgrade is authenticated
//! and authorised like any request (JWT, API key, internal key, topic
//! scopes), topics map to backend paths, frames flow both ways, and a
//! connection is counted against the API's rate limit at the upgrade.

use futures::{SinkExt, StreamExt};
use integration::tokens::{now, unique};
use integration::{Gateway, IDP_ISSUER, XdsMode};
use serde_json::{Value, json};
use test_protocols::WebSocketServer;
use test_protocols::tokio_tungstenite::tungstenite::client::IntoClientRequest;
use test_protocols::tokio_tungstenite::tungstenite::{self, Message};
use test_protocols::tokio_tungstenite::{WebSocketStream, client_async};
use tokio::net::TcpStream;

fn asyncapi(backend: &str) -> String {
    format!(
        r#"asyncapi: 2.0.0
info: {{ title: Chat, version: "1.0" }}
servers:
  production:
    url: {backend}
    protocol: ws
channels:
  /notifications:
    publish:
      x-uri-mapping: /notifications
    subscribe:
      x-uri-mapping: /notifications
  /rooms/{{roomID}}:
    subscribe:
      x-uri-mapping: /chat/{{uri.var.roomID}}/stream
      x-scopes: [reader]
  /noMapping:
    publish: {{}}
  /open:
    x-auth-type: None
    publish:
      x-uri-mapping: /open
components:
  securitySchemes:
    oauth2:
      type: oauth2
    apikey:
      type: apiKey
      name: apikey
      in: header
"#
    )
}

fn api_yaml(extra: &str) -> String {
    format!(
        "type: api\nversion: v4.1.0\ndata:\n  name: Chat\n  version: \"1.0\"\n  context: /chat\n  type: WS\n{extra}  endpointConfig:\n    endpoint_type: ws\n    production_endpoints:\n      url: ws://127.0.0.1:1\n"
    )
}

async fn gateway(ws: &WebSocketServer, extra: &str) -> Gateway {
    Gateway::builder(XdsMode::Delta)
        .with_enforcer()
        .project("chat", &[("api.yaml", &api_yaml(extra)), ("Definitions/asyncapi.yaml", &asyncapi(&ws.url()))])
        .start()
        .await
}

fn claims(scope: &str) -> Value {
    json!({
        "iss": IDP_ISSUER, "sub": "alice", "azp": "c1", "exp": now() + 600, "iat": now(),
        "jti": format!("ws-{}", unique()), "scope": scope,
        "application": {"id": 1, "uuid": "app-1", "name": "ChatApp", "owner": "alice"},
        "subscribedAPIs": [{"name": "Chat", "version": "1.0", "context": "/chat/1.0", "subscriptionTier": "Unlimited"}],
    })
}

type Ws = WebSocketStream<TcpStream>;

/// Opens a WebSocket through the router's HTTP listener; a refused upgrade
/// gives its status and body.
async fn connect(gw: &Gateway, path: &str, headers: &[(&str, &str)]) -> Result<Ws, (u16, String)> {
    let addr = format!("127.0.0.1:{}", gw.ports.http);
    let mut req = format!("ws://localhost{path}").into_client_request().expect("request");
    for (k, v) in headers {
        req.headers_mut()
            .insert(tungstenite::http::HeaderName::from_bytes(k.as_bytes()).expect("name"), v.parse().expect("value"));
    }
    let tcp = TcpStream::connect(&addr).await.expect("connect to the router");
    match client_async(req, tcp).await {
        Ok((ws, resp)) => {
            assert_eq!(resp.status(), 101);
            Ok(ws)
        }
        Err(tungstenite::Error::Http(resp)) => {
            let body = resp.body().as_ref().map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
            Err((resp.status().as_u16(), body))
        }
        Err(e) => panic!("{path}: {e}"),
    }
}

async fn next_text(ws: &mut Ws) -> String {
    loop {
        let m = tokio::time::timeout(std::time::Duration::from_secs(10), ws.next())
            .await
            .expect("a message within 10 s")
            .expect("the connection is open")
            .expect("a frame");
        match m {
            Message::Text(t) => return t.to_string(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected text, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_flow_both_ways_after_an_authenticated_upgrade() {
    let backend = WebSocketServer::start().await.expect("WebSocket server");
    let gw = gateway(&backend, "").await;
    let token = format!("Bearer {}", gw.idp().idp.sign(&claims("")));

    let mut ws = connect(&gw, "/chat/1.0/notifications", &[("authorization", &token)])
        .await
        .unwrap_or_else(|(s, b)| panic!("upgrade refused: {s} {b}\n{}", gw.enforcer_log()));
    for i in 0..20 {
        let text = format!("hello {i}");
        ws.send(Message::Text(text.clone().into())).await.expect("send");
        assert_eq!(next_text(&mut ws).await, text);
    }
    let bytes: Vec<u8> = (0..=255u8).collect();
    ws.send(Message::Binary(bytes.clone().into())).await.expect("send");
    let echoed = loop {
        match ws.next().await.expect("open").expect("frame") {
            Message::Binary(b) => break b.to_vec(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected binary, got {other:?}"),
        }
    };
    assert_eq!(echoed, bytes);

    // What the backend saw: the mapped topic path, no credential, the upgrade.
    ws.send(Message::Text("__whoami".into())).await.expect("send");
    let seen: Value = serde_json::from_str(&next_text(&mut ws).await).expect("JSON");
    assert_eq!(seen["path"], "/notifications", "{seen}");
    assert!(seen["headers"].get("authorization").is_none(), "the token stays at the gateway: {seen}");
    assert_eq!(seen["headers"]["upgrade"].as_str().map(str::to_ascii_lowercase).as_deref(), Some("websocket"));
    assert_eq!(backend.messages(), 22);
    ws.close(None).await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upgrade_is_refused_without_valid_credentials_and_scopes() {
    let backend = WebSocketServer::start().await.expect("WebSocket server");
    let gw = gateway(&backend, "").await;

    let (status, body) = connect(&gw, "/chat/1.0/notifications", &[]).await.expect_err("refused");
    assert_eq!(status, 401, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).expect("JSON")["code"], "900901", "{body}");
    let (status, _) =
        connect(&gw, "/chat/1.0/notifications", &[("authorization", "Bearer aaa.bbb.ccc")]).await.expect_err("refused");
    assert_eq!(status, 401);

    // A topic scope: a token without it is refused 403, with it let in.
    let no_scope = format!("Bearer {}", gw.idp().idp.sign(&claims("other")));
    let (status, body) =
        connect(&gw, "/chat/1.0/rooms/room1", &[("authorization", &no_scope)]).await.expect_err("refused");
    assert_eq!(status, 403, "{body}");
    let v: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(v["code"], "900910", "{body}");
    let reader = format!("Bearer {}", gw.idp().idp.sign(&claims("reader")));
    let mut ws = connect(&gw, "/chat/1.0/rooms/room1", &[("authorization", &reader)]).await.expect("upgrade");
    ws.send(Message::Text("__whoami".into())).await.expect("send");
    let seen: Value = serde_json::from_str(&next_text(&mut ws).await).expect("JSON");
    assert_eq!(seen["path"], "/chat/room1/stream", "{{uri.var.roomID}} filled from the topic: {seen}");

    // Unknown version or topic: the router's 404.
    let (status, _) = connect(&gw, "/chat/2.0/notifications", &[("authorization", &reader)]).await.expect_err("404");
    assert_eq!(status, 404);
    let (status, _) = connect(&gw, "/chat/1.0/nowhere", &[("authorization", &reader)]).await.expect_err("404");
    assert_eq!(status, 404);
    assert!(
        backend.upgrades().iter().all(|u| u.path == "/chat/room1/stream"),
        "no refused upgrade reached the backend: {:?}",
        backend.upgrades().iter().map(|u| u.path.clone()).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_internal_keys_and_open_topics() {
    let backend = WebSocketServer::start().await.expect("WebSocket server");
    let gw = gateway(&backend, "").await;
    let apim = &gw.idp().apim;
    let key = apim.sign_without_kid(&json!({
        "iss": "https://localhost:9443/apikey", "sub": "carol", "jti": format!("ak-{}", unique()), "iat": now(), "exp": now() + 600,
        "keytype": "PRODUCTION", "application": {"id": 3, "uuid": "app-3", "name": "KeyApp", "owner": "carol"},
        "subscribedAPIs": [{"name": "Chat", "version": "1.0", "context": "/chat/1.0", "subscriptionTier": "Unlimited"}],
    }));
    let mut ws = connect(&gw, "/chat/1.0/notifications", &[("apikey", &key)])
        .await
        .unwrap_or_else(|(s, b)| panic!("API key refused: {s} {b}"));
    ws.send(Message::Text("__whoami".into())).await.expect("send");
    let seen: Value = serde_json::from_str(&next_text(&mut ws).await).expect("JSON");
    assert!(seen["headers"].get("apikey").is_none(), "{seen}");

    let internal = apim.sign_without_kid(&json!({
        "iss": "https://localhost:9443/publisher", "sub": "admin", "jti": format!("ik-{}", unique()), "exp": now() + 600,
        "token_type": "InternalKey", "keytype": "PRODUCTION",
        "subscribedAPIs": [{"name": "Chat", "version": "1.0", "context": "/chat/1.0", "publisher": "admin"}],
    }));
    let mut ws = connect(&gw, "/chat/1.0/noMapping", &[("internal-key", &internal)])
        .await
        .unwrap_or_else(|(s, b)| panic!("internal key refused: {s} {b}"));
    ws.send(Message::Text("__whoami".into())).await.expect("send");
    let seen: Value = serde_json::from_str(&next_text(&mut ws).await).expect("JSON");
    assert_eq!(seen["path"], "/", "no x-uri-mapping: the endpoint's base path");

    // An open topic needs nothing.
    let mut ws = connect(&gw, "/chat/1.0/open", &[]).await.unwrap_or_else(|(s, b)| panic!("open topic: {s} {b}"));
    ws.send(Message::Text("hi".into())).await.expect("send");
    assert_eq!(next_text(&mut ws).await, "hi");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_counted_against_the_api_tier_at_the_upgrade() {
    let backend = WebSocketServer::start().await.expect("WebSocket server");
    let gw = gateway(&backend, "  apiThrottlingPolicy: 3PerDay\n").await;
    let token = format!("Bearer {}", gw.idp().idp.sign(&claims("")));
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(connect(&gw, "/chat/1.0/notifications", &[("authorization", &token)]).await.expect("upgrade"));
    }
    let (status, body) =
        connect(&gw, "/chat/1.0/notifications", &[("authorization", &token)]).await.expect_err("throttled");
    assert_eq!(status, 429, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).expect("JSON")["code"], "900800", "{body}");
    // The connections let in keep working.
    for ws in &mut open {
        ws.send(Message::Text("still here".into())).await.expect("send");
        assert_eq!(next_text(ws).await, "still here");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_route_upgrades_websockets_only_for_ws_apis() {
    let backend = WebSocketServer::start().await.expect("WebSocket server");
    let gw = gateway(&backend, "").await;
    let routes = gw.config_dump(Some("dynamic_route_configs")).await.to_string();
    assert!(routes.contains("\"upgrade_type\":\"websocket\""), "{routes}");
    // A deploy with a broken definition names the file and field; the API keeps serving.
    let bad = "asyncapi: 2.0.0\ninfo: {title: Chat, version: \"1.0\"}\nchannels:\n  notifications:\n    publish: {}\n";
    let zip = integration::zip_project("chat", &[("api.yaml", &api_yaml("")), ("Definitions/asyncapi.yaml", bad)]);
    let r = gw.deploy_zip(zip, true, &format!("Bearer {}", gw.mgmt_token().await)).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("Definitions/asyncapi.yaml") && r.body.contains("channels.notifications"), "{}", r.body);
    let token = format!("Bearer {}", gw.idp().idp.sign(&claims("")));
    assert!(connect(&gw, "/chat/1.0/notifications", &[("authorization", &token)]).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_is_an_analytics_event_when_it_closes() {
    let backend = WebSocketServer::start().await.expect("WebSocket server");
    let gw = Gateway::builder(XdsMode::Delta)
        .with_enforcer()
        .config("[analytics]\nenabled = true\n[analytics.adapter]\nbufferFlushInterval = \"100ms\"\n[analytics.enforcer.configProperties]\nsink = \"{dir}/analytics.jsonl\"\n")
        .project("chat", &[("api.yaml", &api_yaml("")), ("Definitions/asyncapi.yaml", &asyncapi(&backend.url()))])
        .start()
        .await;
    let token = format!("Bearer {}", gw.idp().idp.sign(&claims("")));
    let mut ws = connect(&gw, "/chat/1.0/notifications", &[("authorization", &token)]).await.expect("upgrade");
    let text = "x".repeat(1000);
    for _ in 0..5 {
        ws.send(Message::Text(text.clone().into())).await.expect("send");
        assert_eq!(next_text(&mut ws).await, text);
    }
    ws.close(None).await.expect("close");
    drop(ws);
    let path = gw.dir.path().join("analytics.jsonl");
    let event: Value = integration::eventually("the connection's analytics event", || async {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|e| e["apiName"] == "Chat")
            .ok_or_else(|| format!("no event yet: {text}"))
    })
    .await;
    assert_eq!(event["responseCode"], 101, "{event}");
    assert_eq!(event["apiType"], "WS", "{event}");
    assert_eq!(event["resource"], "/notifications", "{event}");
    assert_eq!(event["applicationName"], "ChatApp", "{event}");
    assert_eq!(event["method"], "GET", "{event}");
    // The frames in aggregate: five 1000-byte messages each way, plus frame headers.
    for key in ["requestBodyBytes", "responseBodyBytes"] {
        let n = event[key].as_u64().unwrap_or(0);
        assert!((5000..5200).contains(&n), "{key}: {n} in {event}");
    }
}
