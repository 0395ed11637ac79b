//! Deploy latency over the management API (issue 4): with N APIs already
//! deployed, push new projects one at a time (as `apictl project push` does:
//! multipart zip, Bearer token) and time each from the request until Envoy
//! serves the new API. The project is fsynced to the store before the 200.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use integration::{Gateway, XdsMode, api_yaml, zip_project};
use serde_json::{Value, json};

use crate::{oas, percentile, until_served};

/// p50/p99/max of `pushes` deploys with `existing` APIs in place.
pub async fn latency(existing: usize, pushes: usize) -> Result<Value> {
    eprintln!("deploy latency: {pushes} pushes with {existing} APIs deployed");
    let backend = test_backend::Backend::start("deploy").await?;
    let mut gw = Gateway::builder(XdsMode::Delta).manual().start().await;
    for i in 0..existing {
        gw.write_project(
            &format!("api{i:05}"),
            &[
                ("api.yaml", &api_yaml(&format!("Api{i}"), "v1", &format!("/api{i}"), &backend.url())),
                ("Definitions/swagger.yaml", &oas(i, "")),
            ],
        );
    }
    gw.spawn_envoy().await;
    gw.start_adapter().await;
    if existing > 0 {
        until_served(&gw, &format!("/api{}/v1/search", existing - 1), Duration::from_secs(180)).await?;
    }
    gw.wait_ready().await;
    let bearer = format!("Bearer {}", gw.mgmt_token().await);
    let mut samples = Vec::new();
    let mut response_ms = Vec::new();
    for k in 0..pushes {
        let def = format!(
            "openapi: 3.0.1\ninfo: {{title: Push{k}, version: v1}}\nx-wso2-disable-security: true\npaths:\n  /x:\n    get: {{}}\n"
        );
        let zip = zip_project(
            &format!("Push{k}-v1"),
            &[
                ("api.yaml", &api_yaml(&format!("Push{k}"), "v1", &format!("/push{k}"), &backend.url())),
                ("Definitions/swagger.yaml", &def),
            ],
        );
        let t = Instant::now();
        let r = gw.deploy_zip(zip, false, &bearer).await;
        if r.status != 200 {
            bail!("push {k}: {} {}", r.status, r.body);
        }
        response_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        until_served(&gw, &format!("/push{k}/v1/x"), Duration::from_secs(30)).await?;
        samples.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    if let Ok(path) = std::env::var("BENCH_ADAPTER_LOG") {
        let _ = std::fs::write(path, gw.adapter_log());
    }
    let mut sorted = samples.clone();
    sorted.sort_by(f64::total_cmp);
    response_ms.sort_by(f64::total_cmp);
    Ok(json!({
        "existing_apis": existing,
        "pushes": pushes,
        "push_to_served_ms": {"p50": percentile(&sorted, 50.0), "p99": percentile(&sorted, 99.0), "max": sorted.last().copied().unwrap_or(0.0), "samples": samples},
        "response_ms": {"p50": percentile(&response_ms, 50.0), "p99": percentile(&response_ms, 99.0)},
    }))
}

/// The deploy-latency lines of the printed summary.
pub fn print_summary(r: &Value) {
    for d in r["deploy_latency"].as_array().into_iter().flatten() {
        let f = |v: &Value| v.as_f64().unwrap_or(0.0);
        println!(
            "deploy (REST push -> served by Envoy), {} APIs deployed, {} pushes: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms (200 answered: p50 {:.0} ms) (target p99 < 300 ms at 10,000)",
            d["existing_apis"],
            d["pushes"],
            f(&d["push_to_served_ms"]["p50"]),
            f(&d["push_to_served_ms"]["p99"]),
            f(&d["push_to_served_ms"]["max"]),
            f(&d["response_ms"]["p50"]),
        );
    }
}
