//! Mediation's cost (issue 12's figures), every figure a ratio measured in
//! one run with interleaved wrk rounds through Envoy, the same backend
//! answer (`/__fixed`) on every route:
//!
//! * one request interceptor (Envoy's Lua filter calling tools/interceptor,
//!   `includes: [request_headers]`, its sample answer adding a header) over
//!   the same route without, on a secured route (JWT, enforcer) and on an
//!   open one (no enforcer);
//! * OPA per check: embedded Rego (regorus in the enforcer) and a remote OPA
//!   server over the same route without a policy. The remote server is
//!   integration/opa/opa_server.py (OPA's Go engine behind Python's HTTP
//!   server, the only OPA these machines can run): its figure bounds what a
//!   Python front costs, not what a real `opa run --server` would.

use crate::median;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use integration::{Gateway, XdsMode, api_yaml, free_port, workspace_bin, workspace_root};
use serde_json::{Value, json};

use crate::enforcer::{Reaped, jwt_claims, start_backend};
use crate::wrk_with;

const REGO: &str = "package bench\nimport rego.v1\ndefault allow := false\nallow if {\n  input.method == \"GET\"\n  input.apiContext.apiName == \"Bench\"\n}\n";

fn oas(interceptor: u16) -> String {
    format!(
        r#"openapi: 3.0.1
info: {{ title: Bench, version: v1 }}
paths:
  /plain: {{ get: {{}} }}
  /icpt:
    get:
      x-wso2-request-interceptor:
        serviceURL: http://127.0.0.1:{interceptor}
        includes: [request_headers]
  /open-plain:
    get:
      x-wso2-disable-security: true
  /open-icpt:
    get:
      x-wso2-disable-security: true
      x-wso2-request-interceptor:
        serviceURL: http://127.0.0.1:{interceptor}
        includes: [request_headers]
  /rego: {{ get: {{}} }}
  /opa: {{ get: {{}} }}
"#
    )
}

/// Every route rewrites to the backend's `/__fixed`, so only mediation differs.
fn operations(opa: u16) -> String {
    let mut out = String::from("  operations:\n");
    for target in ["/plain", "/icpt", "/open-plain", "/open-icpt", "/rego", "/opa"] {
        out.push_str(&format!(
            "    - target: {target}\n      verb: GET\n      operationPolicies:\n        request:\n          - policyName: rewriteResourcePath\n            policyVersion: v1\n            parameters: {{ newResourcePath: /__fixed }}\n"
        ));
        match target {
            "/rego" => out.push_str(
                "          - policyName: regoPolicy\n            policyVersion: v1\n            parameters: { regoFile: bench.rego, policy: bench, rule: allow }\n",
            ),
            "/opa" => out.push_str(&format!(
                "          - policyName: opaPolicy\n            policyVersion: v1\n            parameters: {{ serverUrl: \"http://127.0.0.1:{opa}/v1/data\", policy: bench, rule: allow }}\n"
            )),
            _ => {}
        }
    }
    out
}

fn start_interceptor() -> Result<(Reaped, u16)> {
    let port = free_port();
    let child = Command::new(workspace_bin("test-interceptor"))
        .args(["--listen", &format!("127.0.0.1:{port}"), "--threads", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("start the reference interceptor (tools/interceptor)")?;
    Ok((Reaped::new(child), port))
}

fn start_opa(dir: &std::path::Path) -> Result<(Reaped, u16)> {
    let root = workspace_root();
    let mut child = Command::new("python3")
        .env("PYTHONPATH", root.join(".tools/pip-opa"))
        .arg(root.join("integration/opa/opa_server.py"))
        .args(["--policies", &dir.to_string_lossy(), "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("start integration/opa/opa_server.py")?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
    let port = line.trim().strip_prefix("listening on ").and_then(|p| p.parse().ok());
    let reaped = Reaped::new(child);
    match port {
        Some(p) => Ok((reaped, p)),
        None => bail!("the OPA test server did not start ({line:?}); `make opa` installs its engine"),
    }
}

/// The benchmark.
pub async fn mediation(duration: u64, rounds: usize, connections: u32) -> Result<Value> {
    eprintln!("mediation: interceptor and OPA routes vs plain ones ({rounds} interleaved wrk rounds of {duration}s)");
    let (_backend, backend) = start_backend()?;
    let (_interceptor, interceptor) = start_interceptor()?;
    let policies = tempfile::tempdir()?;
    std::fs::write(policies.path().join("bench.rego"), REGO)?;
    let (_opa, opa) = start_opa(policies.path())?;
    let api = api_yaml("Bench", "v1", "/bench", &format!("http://127.0.0.1:{backend}")) + &operations(opa);
    let def = oas(interceptor);
    let gw = Gateway::builder(XdsMode::Delta)
        .with_enforcer()
        .project(
            "bench",
            &[("api.yaml", api.as_str()), ("Definitions/swagger.yaml", def.as_str()), ("Policies/bench.rego", REGO)],
        )
        .start()
        .await;
    let bearer = format!("Bearer {}", gw.idp().idp.sign(&jwt_claims("bench-mediation")));
    let variants = ["plain", "icpt", "open-plain", "open-icpt", "rego", "opa"];
    let headers = |v: &str| {
        let mut h = vec!["Host: localhost".to_string()];
        if !v.starts_with("open") {
            h.push(format!("Authorization: {bearer}"));
        }
        h
    };
    for v in variants {
        let b = bearer.clone();
        integration::eventually(&format!("/{v} to answer 200"), || async {
            let auth = [("authorization", b.as_str())];
            let r = gw.request("GET", "localhost", &format!("/bench/v1/{v}"), &auth).await?;
            if r.status == 200 { Ok(()) } else { Err(format!("{} {}", r.status, r.body)) }
        })
        .await;
        let url = format!("http://127.0.0.1:{}/bench/v1/{v}", gw.ports.http);
        wrk_with(&url, &headers(v), 2, connections)?;
    }
    let mut rps: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    let mut p50: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    let mut runs = Vec::new();
    for round in 0..rounds {
        eprintln!("  round {}/{rounds}", round + 1);
        for (i, v) in variants.iter().enumerate() {
            let url = format!("http://127.0.0.1:{}/bench/v1/{v}", gw.ports.http);
            let (w, cmd) = wrk_with(&url, &headers(v), duration, connections)?;
            if w.non2xx > 0 {
                bail!("mediation {v}: {} non-2xx responses ({cmd})", w.non2xx);
            }
            rps[i].push(w.rps);
            p50[i].push(w.p50_ms);
            runs.push(json!({"route": v, "round": round, "rps": w.rps, "p50_ms": w.p50_ms, "p99_ms": w.p99_ms, "command": cmd}));
        }
    }
    let ratio = |a: usize, b: usize| -> Vec<f64> { (0..rounds).map(|r| rps[a][r] / rps[b][r].max(1.0)).collect() };
    let (icpt, open_icpt, rego, opa_r) = (ratio(1, 0), ratio(3, 2), ratio(4, 0), ratio(5, 0));
    let added_ms = |a: usize| median(p50[a].clone()) - median(p50[0].clone());
    Ok(json!({
        "tool": format!("wrk -t1 -c{connections} through Envoy, interleaved rounds; every route answers the backend's /__fixed"),
        "rps_median": variants.iter().enumerate().map(|(i, v)| (v.to_string(), json!(median(rps[i].clone())))).collect::<serde_json::Map<_, _>>(),
        "p50_ms_median": variants.iter().enumerate().map(|(i, v)| (v.to_string(), json!(median(p50[i].clone())))).collect::<serde_json::Map<_, _>>(),
        "interceptor": {
            "mechanism": "Envoy's Lua filter (adapter/xds/src/translate/interceptor.lua) calling tools/interceptor (1 thread), includes request_headers",
            "secured_ratio_per_round": icpt,
            "secured_ratio": median(icpt.clone()),
            "open_ratio_per_round": open_icpt,
            "open_ratio": median(open_icpt.clone()),
            "target_min_ratio": 0.70,
            "choreo_connect_documented_ratio": 0.53,
        },
        "opa": {
            "embedded_rego_ratio_per_round": rego,
            "embedded_rego_ratio": median(rego.clone()),
            "remote_ratio_per_round": opa_r,
            "remote_ratio": median(opa_r.clone()),
            "embedded_added_p50_ms": added_ms(4),
            "remote_added_p50_ms": added_ms(5),
            "remote_server": "integration/opa/opa_server.py (OPA v1.20 Go engine behind Python's threaded HTTP server)",
        },
        "runs": runs,
    }))
}

/// The printed summary.
pub fn print_summary(r: &Value) {
    let m = &r["mediation"];
    if !m.is_object() {
        return;
    }
    println!("\n== Mediation (wrk through Envoy, interleaved rounds) ==");
    let i = &m["interceptor"];
    println!(
        "  one request interceptor: secured route {:.2}x, open route {:.2}x of the same route without (target >= 0.70; Choreo Connect documents 0.53)",
        i["secured_ratio"].as_f64().unwrap_or(0.0),
        i["open_ratio"].as_f64().unwrap_or(0.0)
    );
    let o = &m["opa"];
    println!(
        "  OPA: embedded Rego {:.2}x (+{:.2} ms p50), remote (Python front) {:.2}x (+{:.2} ms p50) of the route without",
        o["embedded_rego_ratio"].as_f64().unwrap_or(0.0),
        o["embedded_added_p50_ms"].as_f64().unwrap_or(0.0),
        o["remote_ratio"].as_f64().unwrap_or(0.0),
        o["remote_added_p50_ms"].as_f64().unwrap_or(0.0)
    );
}
