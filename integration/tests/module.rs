//! The enforcer as an Envoy dynamic module (enforcer/module): the real
//! Envoy binary loads `libgateway_module.so` by configuration and runs its
//! filter on every request.

use std::process::Command;

use integration::{Proc, eventually, free_port, workspace_bin};
use test_backend::Backend;

/// A stock Envoy with the module's filter before the router, sending
/// everything to `backend`.
fn envoy_config(listen: u16, admin: u16, backend: u16) -> String {
    let module = workspace_bin("libgateway_module.so");
    format!(
        r#"admin: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin} }} }} }}
static_resources:
  listeners:
  - name: http
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {listen} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: http
          route_config:
            virtual_hosts:
            - {{ name: all, domains: ["*"], routes: [ {{ match: {{ prefix: "/" }}, route: {{ cluster: backend }} }} ] }}
          http_filters:
          - name: gateway.enforcer
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter
              dynamic_module_config: {{ name: gateway_module, module: {{ local: {{ filename: "{}" }} }} }}
              filter_name: enforcer
          - name: envoy.filters.http.router
            typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }}
  clusters:
  - name: backend
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: backend
      endpoints: [ {{ lb_endpoints: [ {{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {backend} }} }} }} }} ] }} ]
"#,
        module.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_envoy_loads_the_module_and_runs_its_filter() {
    let backend = Backend::start("module-backend").await.expect("backend");
    let backend_port: u16 = backend.url().rsplit(':').next().and_then(|p| p.parse().ok()).expect("backend port");
    let dir = tempfile::tempdir().expect("dir");
    let (listen, admin) = (free_port(), free_port());
    let config = dir.path().join("envoy.yaml");
    std::fs::write(&config, envoy_config(listen, admin, backend_port)).expect("config");
    let mut cmd = Command::new(integration::envoy_bin());
    cmd.arg("-c").arg(&config).args(["--use-dynamic-base-id", "--concurrency", "1", "--log-level", "info"]);
    let envoy = Proc::spawn_group("envoy-module", &mut cmd, dir.path().join("envoy.log"));

    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{listen}/pets");
    eventually("Envoy to answer through the module's filter", || {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let r = client.get(&url).send().await.map_err(|e| e.to_string())?;
            let name = r.headers().get("x-backend-name").and_then(|v| v.to_str().ok()).map(String::from);
            if r.status() == 200 && name.as_deref() == Some("module-backend") {
                Ok(())
            } else {
                Err(format!("{} {name:?}", r.status()))
            }
        }
    })
    .await;

    // Envoy checked the module's ABI version and found it its own.
    let log = envoy.log();
    assert!(log.contains("Dynamic module ABI version v0.2.0 matched"), "{log}");
    // The filter Envoy holds is the module's.
    let dump = client.get(format!("http://127.0.0.1:{admin}/config_dump")).send().await.expect("config dump");
    let text = dump.text().await.expect("dump text");
    assert!(text.contains("envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter"), "{text}");
    assert!(text.contains("libgateway_module.so"), "{text}");
}
