//! The cost of the API types beyond REST (issue 13's figures), each a ratio
//! measured in one run:
//!
//! * GraphQL: the enforcer's query work (parse, validation against the
//!   schema, depth and complexity) per request, in process, for a small and
//!   a deep query; and through Envoy with wrk (interleaved rounds) a secured
//!   REST route vs the same JWT on a GraphQL API with each query, every
//!   route answered by the backend's `/__fixed`.
//! * WebSocket: echoed messages per second over one connection with a
//!   window of messages in flight, through the gateway vs straight to the
//!   same echo server (tools/protocols), interleaved rounds.

use crate::median;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use enforcer_core::graphql::{GraphqlSchema, analyse};
use futures::{SinkExt, StreamExt};
use integration::{Gateway, IDP_ISSUER, XdsMode, api_yaml, tokens::now};
use serde_json::{Value, json};
use test_protocols::WebSocketServer;
use test_protocols::graphql::SCHEMA_SDL;
use test_protocols::tokio_tungstenite::tungstenite::Message;
use test_protocols::tokio_tungstenite::tungstenite::client::IntoClientRequest;
use test_protocols::tokio_tungstenite::{WebSocketStream, client_async};
use tokio::net::TcpStream;

use crate::enforcer::start_backend;
use crate::wrk_with;

const SMALL: &str = "{ hero { name } }";
/// Depth 7, fragments, aliases, 40-odd fields.
const DEEP: &str = "query Deep { a: human(id: \"1000\") { ...H friends { ...C friends { ...C friends { ...C friends { name } } } } } \
                    b: droid(id: \"2001\") { ...C primaryFunction friends { ...C } } \
                    c: allHumans(first: 5) { ...H starships { id name length } } } \
                    fragment C on Character { id name appearsIn } \
                    fragment H on Human { id name homePlanet height appearsIn starships { name } }";

/// Microseconds per analysis of `query`, over `iterations`.
fn analysis_us(schema: &GraphqlSchema, query: &str, iterations: u32) -> Result<f64> {
    let vars = Value::Null;
    analyse(schema, query, None, &vars).map_err(|e| anyhow::anyhow!("{query}: {e:?}"))?;
    let start = Instant::now();
    for _ in 0..iterations {
        std::hint::black_box(analyse(schema, std::hint::black_box(query), None, &vars).ok());
    }
    Ok(start.elapsed().as_secs_f64() * 1e6 / f64::from(iterations))
}

fn operations() -> String {
    let mut out = String::from("  securityScheme: [oauth2]\n  operations:\n");
    for (t, v) in [("hero", "QUERY"), ("human", "QUERY"), ("droid", "QUERY"), ("allHumans", "QUERY")] {
        out.push_str(&format!("    - {{target: {t}, verb: {v}}}\n"));
    }
    out
}

fn query_url(port: u16, query: &str) -> String {
    let q: String = url_encode(query);
    format!("http://127.0.0.1:{port}/gql/v1?query={q}")
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn graphql(duration: u64, rounds: usize, connections: u32) -> Result<Value> {
    let schema = GraphqlSchema::parse(SCHEMA_SDL, &[]).map_err(|e| anyhow::anyhow!("schema: {e:?}"))?;
    let small_us = analysis_us(&schema, SMALL, 20_000)?;
    let deep_us = analysis_us(&schema, DEEP, 5_000)?;

    let (_backend, backend) = start_backend()?;
    let fixed = format!("http://127.0.0.1:{backend}/__fixed");
    let rest_oas = "openapi: 3.0.1\ninfo: {title: Rest, version: v1}\npaths:\n  /__fixed:\n    get: {}\n";
    let gql_yaml = api_yaml("Gql", "v1", "/gql", &fixed).replace("type: HTTP", "type: GRAPHQL") + &operations();
    let gw = Gateway::builder(XdsMode::Delta)
        .with_enforcer()
        .project(
            "rest",
            &[
                ("api.yaml", &api_yaml("Rest", "v1", "/rest", &format!("http://127.0.0.1:{backend}"))),
                ("Definitions/swagger.yaml", rest_oas),
            ],
        )
        .project("gql", &[("api.yaml", &gql_yaml), ("Definitions/schema.graphql", SCHEMA_SDL)])
        .start()
        .await;
    let claims = json!({
        "iss": IDP_ISSUER, "sub": "bench", "azp": "c", "exp": now() + 3600, "iat": now(), "jti": "bench-apitypes",
        "application": {"id": 1, "uuid": "app-1", "name": "Bench", "owner": "bench"},
        "subscribedAPIs": [
            {"name": "Rest", "version": "v1", "context": "/rest/v1", "subscriptionTier": "Unlimited"},
            {"name": "Gql", "version": "v1", "context": "/gql/v1", "subscriptionTier": "Unlimited"},
        ],
    });
    let bearer = format!("Bearer {}", gw.idp().idp.sign(&claims));
    let headers = vec!["Host: localhost".to_string(), format!("Authorization: {bearer}")];
    let port = gw.ports.http;
    let variants = [
        ("rest", format!("http://127.0.0.1:{port}/rest/v1/__fixed")),
        ("graphql_small", query_url(port, SMALL)),
        ("graphql_deep", query_url(port, DEEP)),
    ];
    for (name, url) in &variants {
        let path = url.trim_start_matches(&format!("http://127.0.0.1:{port}")).to_string();
        let b = bearer.clone();
        integration::eventually(&format!("{name} to answer 200"), || async {
            let r = gw.request("GET", "localhost", &path, &[("authorization", b.as_str())]).await?;
            if r.status == 200 { Ok(()) } else { Err(format!("{} {}", r.status, r.body)) }
        })
        .await;
        wrk_with(url, &headers, 2, connections)?;
    }
    let mut rps: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    let mut p50: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    let mut runs = Vec::new();
    for round in 0..rounds {
        eprintln!("  graphql round {}/{rounds}", round + 1);
        for (i, (name, url)) in variants.iter().enumerate() {
            let (w, cmd) = wrk_with(url, &headers, duration, connections)?;
            if w.non2xx > 0 {
                bail!("{name}: {} non-2xx responses ({cmd})", w.non2xx);
            }
            rps[i].push(w.rps);
            p50[i].push(w.p50_ms);
            runs.push(json!({"route": name, "round": round, "rps": w.rps, "p50_ms": w.p50_ms, "p99_ms": w.p99_ms, "command": cmd}));
        }
    }
    let ratio = |a: usize| -> Vec<f64> { (0..rounds).map(|r| rps[a][r] / rps[0][r].max(1.0)).collect() };
    let (small, deep) = (ratio(1), ratio(2));
    Ok(json!({
        "analysis_us": {"small": small_us, "deep": deep_us, "small_query": SMALL, "deep_query": DEEP},
        "tool": format!("wrk -t1 -c{connections} through Envoy (GET ?query=), interleaved rounds; JWT cached; every route answers the backend's /__fixed"),
        "rps_median": {"rest": median(rps[0].clone()), "graphql_small": median(rps[1].clone()), "graphql_deep": median(rps[2].clone())},
        "p50_ms_median": {"rest": median(p50[0].clone()), "graphql_small": median(p50[1].clone()), "graphql_deep": median(p50[2].clone())},
        "small_to_rest_ratio_per_round": small,
        "small_to_rest_ratio": median(small.clone()),
        "deep_to_rest_ratio_per_round": deep,
        "deep_to_rest_ratio": median(deep.clone()),
        "runs": runs,
    }))
}

type Ws = WebSocketStream<TcpStream>;

async fn ws_connect(addr: &str, path: &str, auth: Option<&str>) -> Result<Ws> {
    let mut req = format!("ws://localhost{path}").into_client_request()?;
    if let Some(a) = auth {
        req.headers_mut().insert("authorization", a.parse()?);
    }
    let tcp = TcpStream::connect(addr).await.with_context(|| format!("connect {addr}"))?;
    let (ws, _) = client_async(req, tcp).await.with_context(|| format!("upgrade {addr}{path}"))?;
    Ok(ws)
}

/// Echoed messages per second over one connection for `seconds`, with
/// `window` messages in flight.
async fn echo_rate(ws: &mut Ws, seconds: u64, window: usize, payload: &str) -> Result<f64> {
    let end = Instant::now() + Duration::from_secs(seconds);
    let start = Instant::now();
    let mut in_flight = 0usize;
    let mut echoed = 0u64;
    loop {
        let sending = Instant::now() < end;
        while sending && in_flight < window {
            ws.send(Message::Text(payload.into())).await?;
            in_flight += 1;
        }
        if in_flight == 0 {
            break;
        }
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Text(_)))) => {
                in_flight -= 1;
                echoed += 1;
            }
            Ok(Some(Ok(_))) => {}
            other => bail!("the echo stopped: {other:?}"),
        }
    }
    Ok(echoed as f64 / start.elapsed().as_secs_f64())
}

/// Lua that visits every body chunk of both directions (after the upgrade,
/// the WebSocket frames), as a frame counter or limiter in Lua would: the
/// floor of what per-frame work in Envoy's Lua filter costs.
const LUA_FRAMES: &str = r#"
function envoy_on_request(h)
  local n = 0
  for chunk in h:bodyChunks() do n = n + chunk:length() end
end
function envoy_on_response(h)
  local n = 0
  for chunk in h:bodyChunks() do n = n + chunk:length() end
end
"#;

/// A plain Envoy proxying WebSockets to `backend`, with the Lua frame
/// visitor or without.
fn plain_ws_envoy(listen: u16, backend: u16, lua: bool) -> String {
    let lua_filter = if lua {
        let code = LUA_FRAMES.lines().map(|l| format!("                  {l}")).collect::<Vec<_>>().join("\n");
        format!(
            "          - name: envoy.filters.http.lua\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua\n              default_source_code:\n                inline_string: |\n{code}\n"
        )
    } else {
        String::new()
    };
    crate::plain_envoy_config_with(
        listen,
        backend,
        "          upgrade_configs: [ { upgrade_type: websocket } ]\n",
        ", timeout: 0s",
        &lua_filter,
    )
}

async fn ws_connect_retrying(addr: &str, path: &str) -> Result<Ws> {
    let mut last = None;
    for _ in 0..100 {
        match ws_connect(addr, path, None).await {
            Ok(ws) => return Ok(ws),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let logs: Vec<String> = std::fs::read_dir(std::env::temp_dir())
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().display().to_string())
        .filter(|p| p.ends_with("-ws.log"))
        .collect();
    Err(last.unwrap_or_else(|| anyhow::anyhow!("{addr}: no connection"))).context(format!("plain Envoy logs: {logs:?}"))
}

async fn websocket(duration: u64, rounds: usize) -> Result<Value> {
    let backend = WebSocketServer::start().await?;
    let asyncapi = format!(
        "asyncapi: 2.0.0\ninfo: {{title: Echo, version: v1}}\nservers:\n  production: {{url: \"{}\"}}\nchannels:\n  /echo:\n    publish:\n      x-uri-mapping: /echo\n",
        backend.url()
    );
    let yaml = api_yaml("Echo", "v1", "/ws", "ws://127.0.0.1:1").replace("type: HTTP", "type: WS");
    let gw = Gateway::builder(XdsMode::Delta)
        .with_enforcer()
        .project("echo", &[("api.yaml", &yaml), ("Definitions/asyncapi.yaml", &asyncapi)])
        .start()
        .await;
    let claims = json!({
        "iss": IDP_ISSUER, "sub": "bench", "azp": "c", "exp": now() + 3600, "iat": now(), "jti": "bench-ws",
        "application": {"id": 1, "uuid": "app-1", "name": "Bench", "owner": "bench"},
        "subscribedAPIs": [{"name": "Echo", "version": "v1", "context": "/ws/v1", "subscriptionTier": "Unlimited"}],
    });
    let bearer = format!("Bearer {}", gw.idp().idp.sign(&claims));
    let gateway_addr = format!("127.0.0.1:{}", gw.ports.http);
    let direct_addr = backend.addr.to_string();
    let payload = "x".repeat(128);
    let window = 32;
    let (plain_port, lua_port) = (integration::free_port(), integration::free_port());
    let _plain = crate::dataplane::start_envoy(
        gw.dir.path(),
        "plain-ws",
        &plain_ws_envoy(plain_port, backend.addr.port(), false),
    )?;
    let _lua =
        crate::dataplane::start_envoy(gw.dir.path(), "lua-ws", &plain_ws_envoy(lua_port, backend.addr.port(), true))?;
    let mut via = ws_connect(&gateway_addr, "/ws/v1/echo", Some(&bearer)).await?;
    let mut direct = ws_connect(&direct_addr, "/echo", None).await?;
    let mut plain = ws_connect_retrying(&format!("127.0.0.1:{plain_port}"), "/echo").await?;
    let mut lua = ws_connect_retrying(&format!("127.0.0.1:{lua_port}"), "/echo").await?;
    for ws in [&mut via, &mut direct, &mut plain, &mut lua] {
        echo_rate(ws, 1, window, &payload).await?;
    }
    let names = ["gateway", "direct", "plain_envoy", "plain_envoy_lua_frames"];
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    let mut runs = Vec::new();
    for round in 0..rounds {
        eprintln!("  websocket round {}/{rounds}", round + 1);
        for (i, ws) in [&mut via, &mut direct, &mut plain, &mut lua].into_iter().enumerate() {
            let r = echo_rate(ws, duration, window, &payload).await?;
            runs.push(json!({"round": round, "path": names[i], "msgs_per_s": r}));
            rates[i].push(r);
        }
    }
    let ratio = |a: usize, b: usize| -> Vec<f64> { (0..rounds).map(|r| rates[a][r] / rates[b][r].max(1.0)).collect() };
    let (g_d, p_d, l_p, g_p) = (ratio(0, 1), ratio(2, 1), ratio(3, 2), ratio(0, 2));
    let medians: serde_json::Map<String, Value> =
        names.iter().enumerate().map(|(i, n)| (n.to_string(), json!(median(rates[i].clone())))).collect();
    Ok(json!({
        "tool": format!("one connection per path, {window} text messages of {} bytes in flight, echoed by tools/protocols; {duration}s per run, interleaved rounds; plain Envoy: same binary, --concurrency 1, a static WebSocket proxy", payload.len()),
        "msgs_per_s_median": medians,
        "gateway_to_direct_per_round": g_d,
        "gateway_to_direct": median(g_d.clone()),
        "plain_envoy_to_direct": median(p_d),
        "gateway_to_plain_envoy": median(g_p),
        "lua_frames_to_plain_envoy_per_round": l_p,
        "lua_frames_to_plain_envoy": median(l_p.clone()),
        "lua_frames_note": "Envoy's Lua filter visiting every body chunk (the frames) of both directions: the floor of a per-frame counter in Lua",
        "runs": runs,
    }))
}

/// The benchmark.
pub async fn apitypes(duration: u64, rounds: usize, connections: u32) -> Result<Value> {
    eprintln!("api types: GraphQL check cost and WebSocket frames through the gateway ({rounds} interleaved rounds)");
    Ok(json!({
        "graphql": graphql(duration, rounds, connections).await?,
        "websocket": websocket(duration, rounds).await?,
    }))
}

/// The printed summary.
pub fn print_summary(r: &Value) {
    let a = &r["api_types"];
    if !a.is_object() {
        return;
    }
    let g = &a["graphql"];
    println!("\n== API types ==");
    println!(
        "  GraphQL analysis in the enforcer (parse, validate, depth, complexity): small {:.1} µs, deep {:.1} µs per request",
        g["analysis_us"]["small"].as_f64().unwrap_or(0.0),
        g["analysis_us"]["deep"].as_f64().unwrap_or(0.0)
    );
    println!(
        "  GraphQL through Envoy vs a secured REST route (same JWT): small {:.2}x, deep {:.2}x (rps, medians of interleaved rounds)",
        g["small_to_rest_ratio"].as_f64().unwrap_or(0.0),
        g["deep_to_rest_ratio"].as_f64().unwrap_or(0.0)
    );
    let w = &a["websocket"];
    let m = &w["msgs_per_s_median"];
    println!(
        "  WebSocket echo: gateway {:.0} msgs/s, direct {:.0}, plain Envoy {:.0}, plain Envoy + Lua per frame {:.0}",
        m["gateway"].as_f64().unwrap_or(0.0),
        m["direct"].as_f64().unwrap_or(0.0),
        m["plain_envoy"].as_f64().unwrap_or(0.0),
        m["plain_envoy_lua_frames"].as_f64().unwrap_or(0.0)
    );
    println!(
        "    gateway/direct {:.2}x, gateway/plain Envoy {:.2}x, Lua per frame/plain Envoy {:.2}x",
        w["gateway_to_direct"].as_f64().unwrap_or(0.0),
        w["gateway_to_plain_envoy"].as_f64().unwrap_or(0.0),
        w["lua_frames_to_plain_envoy"].as_f64().unwrap_or(0.0)
    );
}

#[cfg(test)]
mod tests {
    /// The plain Envoy configurations the benchmarks start are ones Envoy accepts.
    #[test]
    fn plain_envoy_configs_validate() {
        let dir = tempfile::tempdir().expect("temp dir");
        for (name, cfg) in [
            ("plain", crate::plain_envoy_config(18080, 18081)),
            ("ws", super::plain_ws_envoy(18080, 18081, false)),
            ("ws-lua", super::plain_ws_envoy(18080, 18081, true)),
        ] {
            let path = dir.path().join(format!("{name}.yaml"));
            std::fs::write(&path, &cfg).expect("write");
            let out = std::process::Command::new(integration::envoy_bin())
                .args(["--mode", "validate", "--use-dynamic-base-id", "-c"])
                .arg(&path)
                .output()
                .expect("envoy --mode validate");
            assert!(out.status.success(), "{name}:\n{cfg}\n{}", String::from_utf8_lossy(&out.stderr));
        }
    }
}
