//! The routers of a test gateway: Envoy processes, their bootstrap, their
//! admin API, and requests through them.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::Gateway;
use crate::bootstrap::render;
use crate::http::Resp;
use crate::http::raw_http;
use crate::paths::envoy_bin;
use crate::ports::free_port;
use crate::process::Proc;
use crate::wait::{eventually, patience};

impl Gateway {
    /// The Envoy process id.
    pub fn envoy_pid(&self) -> Option<u32> {
        self.envoy.as_ref().map(Proc::pid)
    }

    /// Stops Envoy (SIGKILL, waited for).
    pub fn kill_envoy(&mut self) {
        if let Some(mut p) = self.envoy.take() {
            p.kill();
        }
        self.admin = None;
    }

    /// Whether Envoy is still running.
    pub fn envoy_running(&mut self) -> bool {
        self.envoy.as_mut().is_some_and(Proc::running)
    }

    /// Envoy's log so far.
    pub fn envoy_log(&self) -> String {
        self.envoy.as_ref().map(Proc::log).unwrap_or_default()
    }

    /// The rendered Envoy bootstrap.
    pub fn bootstrap(&self) -> String {
        self.bootstrap_for("Default", "test-router", self.ports.router_admin, self.ports.router_stats)
    }

    /// The rendered Envoy bootstrap for a router of `label` with its admin
    /// and stats listener ports.
    pub fn bootstrap_for(&self, label: &str, hostname: &str, admin: u16, stats: u16) -> String {
        let vars = self.bootstrap_vars(label, hostname, admin, stats);
        let port = vars.get("ENFORCER_PORT").cloned().unwrap_or_default();
        let mut text = render(&vars, self.component_tls);
        if !self.extra_enforcer_ports.is_empty() {
            let line = format!(
                "        - endpoint: {{ address: {{ socket_address: {{ address: \"127.0.0.1\", port_value: {port} }} }} }}\n"
            );
            assert!(text.contains(&line), "the bootstrap's ext-authz endpoint line changed:\n{text}");
            let more: String = self.extra_enforcer_ports.iter().map(|p| line.replace(&port, &p.to_string())).collect();
            text = text.replacen(&line, &format!("{line}{more}"), 1);
        }
        text
    }

    /// The environment the router's bootstrap is rendered from (what the
    /// container entrypoint reads), for a router of `label`.
    pub fn bootstrap_vars(
        &self,
        label: &str,
        hostname: &str,
        admin: u16,
        stats: u16,
    ) -> BTreeMap<&'static str, String> {
        let mut vars = BTreeMap::new();
        vars.insert("ROUTER_LABEL", label.to_string());
        vars.insert("ROUTER_CLUSTER", "default_cluster".to_string());
        vars.insert("ROUTER_ADMIN_HOST", "127.0.0.1".to_string());
        vars.insert("ROUTER_ADMIN_PORT", admin.to_string());
        vars.insert("ROUTER_STATS_HOST", "127.0.0.1".to_string());
        vars.insert("ROUTER_STATS_PORT", stats.to_string());
        vars.insert("ADAPTER_HOST", "127.0.0.1".to_string());
        vars.insert("ADAPTER_PORT", self.ports.xds.to_string());
        vars.insert("XDS_API_TYPE", self.mode.api_type().to_string());
        vars.insert("ENFORCER_HOST", "127.0.0.1".to_string());
        vars.insert("ENFORCER_PORT", self.ports.enforcer.to_string());
        vars.insert("ENFORCER_ANALYTICS_RECEIVER_PORT", self.ports.als.to_string());
        vars.insert("ENFORCER_HTTPS_PORT", self.ports.enforcer_https.to_string());
        vars.insert("ENFORCER_CA_CERT_PATH", self.certs.ca_path.display().to_string());
        vars.insert("ADAPTER_CA_CERT_PATH", self.certs.ca_path.display().to_string());
        vars.insert("ROUTER_PUBLIC_CERT_PATH", self.certs.cert_path.display().to_string());
        vars.insert("ROUTER_PRIVATE_KEY_PATH", self.certs.key_path.display().to_string());
        vars.insert("HOSTNAME", hostname.to_string());
        vars.insert("ENFORCER_MODULE_METRICS_ADDRESS", format!("127.0.0.1:{}", self.ports.module_metrics));
        for (k, v) in &self.bootstrap_overrides {
            vars.insert(k, v.clone());
        }
        vars
    }

    /// The router's environment, as its container has it: the variables its
    /// bootstrap is rendered from (the enforcer's dynamic module reads where
    /// the adapter is from them), and where Envoy finds the module.
    fn router_env(&self, cmd: &mut Command, label: &str, hostname: &str, admin: u16, stats: u16) {
        cmd.envs(self.bootstrap_vars(label, hostname, admin, stats))
            .env("COMPONENT_TLS", self.component_tls.to_string())
            .env("ENVOY_DYNAMIC_MODULES_SEARCH_PATH", crate::workspace_bin_dir());
    }

    /// Starts Envoy and waits until it serves `/ready` (and, with the
    /// enforcer in Envoy, until its module has the adapter's data).
    pub async fn start_envoy(&mut self) {
        self.spawn_envoy().await;
        self.wait_ready().await;
        if self.enforcer_in_module() {
            self.wait_module_synced("test-router-module").await;
        }
    }

    /// Where the enforcer's metrics are served: by its dynamic module in
    /// Envoy in module mode, else by the enforcer service.
    pub fn decision_metrics_port(&self) -> u16 {
        if self.enforcer_in_module() { self.ports.module_metrics } else { self.ports.enforcer_metrics }
    }

    /// True when the enforcer decides inside Envoy (its dynamic module).
    pub fn enforcer_in_module(&self) -> bool {
        self.adapter_env.iter().any(|(k, v)| k == "CC_ROUTER_ENFORCERMODE" && v == "module")
    }

    /// Waits until the enforcer module of the router `instance` has acknowledged
    /// the adapter's configuration, APIs, revoked tokens and throttling data.
    pub async fn wait_module_synced(&self, instance: &str) {
        eventually("the enforcer module to sync with the adapter", || async {
            let synced = self.synced_streams(instance).await?;
            if synced >= 3 { Ok(()) } else { Err(format!("{synced} streams synced")) }
        })
        .await;
    }

    /// Waits until Envoy serves `/ready`.
    pub async fn wait_ready(&self) {
        eventually("Envoy to serve /ready", || async {
            let r = self.get("/ready").await?;
            if r.status == 200 { Ok(()) } else { Err(format!("/ready answered {}", r.status)) }
        })
        .await;
    }

    /// Starts Envoy and waits for its admin interface only.
    pub async fn spawn_envoy(&mut self) {
        let path = self.dir.path().join("envoy.yaml");
        std::fs::write(&path, self.bootstrap()).expect("write bootstrap");
        let admin_file = self.dir.path().join("envoy-admin-address");
        let _ = std::fs::remove_file(&admin_file);
        let mut cmd = Command::new(envoy_bin());
        cmd.arg("-c")
            .arg(&path)
            .arg("--use-dynamic-base-id")
            .arg("--base-id-path")
            .arg(self.dir.path().join("envoy-base-id"))
            .arg("--admin-address-path")
            .arg(&admin_file)
            .arg("--concurrency")
            .arg(std::env::var("ENVOY_CONCURRENCY").unwrap_or_else(|_| "1".to_string()))
            .arg("--drain-time-s")
            .arg("1")
            .arg("--log-level")
            .arg(std::env::var("ENVOY_LOG_LEVEL").unwrap_or_else(|_| "info".to_string()));
        self.router_env(&mut cmd, "Default", "test-router", self.ports.router_admin, self.ports.router_stats);
        let mut proc = Proc::spawn("envoy", &mut cmd, self.dir.path().join("envoy.log"));
        let deadline = Instant::now() + patience();
        let admin = loop {
            if !proc.running() {
                panic!("Envoy exited:\n{}", proc.log());
            }
            if let Some(a) = std::fs::read_to_string(&admin_file).ok().filter(|s| !s.trim().is_empty()) {
                break a.trim().to_string();
            }
            assert!(Instant::now() < deadline, "Envoy wrote no admin address:\n{}", proc.log());
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        self.envoy = Some(proc);
        self.admin = Some(admin);
    }

    /// Starts another Envoy serving `label` (listeners share ports through
    /// SO_REUSEPORT); returns its admin address. It stops with the gateway.
    /// Its module's metrics port (module mode) is the last of
    /// [`Gateway::extra_module_metrics`].
    pub async fn add_envoy(&mut self, label: &str, hostname: &str) -> String {
        let n = self.extra_envoys.len();
        let path = self.dir.path().join(format!("envoy-{n}.yaml"));
        std::fs::write(&path, self.bootstrap_for(label, hostname, free_port(), free_port())).expect("write bootstrap");
        let admin_file = self.dir.path().join(format!("envoy-{n}-admin-address"));
        let mut cmd = Command::new(envoy_bin());
        cmd.arg("-c").arg(&path).arg("--use-dynamic-base-id").arg("--admin-address-path").arg(&admin_file).args([
            "--concurrency",
            "1",
            "--log-level",
            "info",
        ]);
        self.router_env(&mut cmd, label, hostname, 0, 0);
        let metrics = free_port();
        cmd.env("ENFORCER_MODULE_METRICS_ADDRESS", format!("127.0.0.1:{metrics}"));
        self.extra_module_metrics.push(metrics);
        let mut proc = Proc::spawn(&format!("envoy-{label}"), &mut cmd, self.dir.path().join(format!("envoy-{n}.log")));
        let deadline = Instant::now() + patience();
        let admin = loop {
            assert!(proc.running(), "Envoy for {label} exited:\n{}", proc.log());
            if let Some(a) = std::fs::read_to_string(&admin_file).ok().filter(|s| !s.trim().is_empty()) {
                break a.trim().to_string();
            }
            assert!(Instant::now() < deadline, "Envoy for {label} wrote no admin address");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        self.extra_envoys.push(proc);
        admin
    }

    /// Route names held by the Envoy whose admin interface is at `admin`.
    pub async fn route_names_at(&self, admin: &str) -> Vec<String> {
        let text = self
            .client
            .get(format!("http://{admin}/config_dump?resource=dynamic_route_configs"))
            .send()
            .await
            .expect("config_dump")
            .text()
            .await
            .expect("body");
        // Before any route configuration arrived, Envoy answers with a non-JSON message.
        let dump: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        route_names_in(&dump)
    }

    /// A request to Envoy's HTTP listener with `Host: host`.
    pub async fn request(
        &self,
        method: &str,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Resp, String> {
        let url = format!("http://127.0.0.1:{}{path}", self.ports.http);
        self.send(method, &url, host, headers, None).await
    }

    /// A request with a body to Envoy's HTTP listener with `Host: host`.
    pub async fn request_with_body(
        &self,
        method: &str,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Result<Resp, String> {
        let url = format!("http://127.0.0.1:{}{path}", self.ports.http);
        self.send(method, &url, host, headers, Some(body.as_bytes().to_vec())).await
    }

    /// A request to Envoy's HTTPS listener.
    pub async fn request_tls(&self, method: &str, path: &str) -> Result<Resp, String> {
        let url = format!("https://localhost:{}{path}", self.ports.https);
        self.send(method, &url, "localhost", &[], None).await
    }

    async fn send(
        &self,
        method: &str,
        url: &str,
        host: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<Resp, String> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
        let mut rb = self.client.request(method, url).header("host", host);
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        if let Some(b) = body {
            rb = rb.body(b);
        }
        let r = rb.send().await.map_err(|e| format!("{url}: {e}"))?;
        let status = r.status().as_u16();
        let mut hs: BTreeMap<String, String> = BTreeMap::new();
        for (k, v) in r.headers() {
            let v = String::from_utf8_lossy(v.as_bytes()).to_string();
            hs.entry(k.as_str().to_string())
                .and_modify(|e| {
                    e.push_str(", ");
                    e.push_str(&v);
                })
                .or_insert(v);
        }
        let body = r.text().await.map_err(|e| e.to_string())?;
        Ok(Resp { status, headers: hs, body })
    }

    /// `GET path` with `Host: localhost`.
    pub async fn get(&self, path: &str) -> Result<Resp, String> {
        self.request("GET", "localhost", path, &[]).await
    }

    /// Waits until `GET path` (on `localhost`) answers `status`; returns the response.
    pub async fn wait_status(&self, path: &str, status: u16) -> Resp {
        eventually(&format!("GET {path} to answer {status}"), || async {
            let r = self.get(path).await?;
            if r.status == status { Ok(r) } else { Err(format!("answered {}: {}", r.status, r.body)) }
        })
        .await
    }

    fn admin(&self) -> &str {
        self.admin.as_deref().expect("Envoy is running")
    }

    /// Envoy's `/config_dump` (optionally one resource kind).
    pub async fn config_dump(&self, resource: Option<&str>) -> Value {
        let mut url = format!("http://{}/config_dump", self.admin());
        if let Some(r) = resource {
            url.push_str(&format!("?resource={r}"));
        }
        let text = self.client.get(url).send().await.expect("config_dump").text().await.expect("body");
        serde_json::from_str(&text).expect("config_dump JSON")
    }

    /// Envoy's counters and gauges.
    pub async fn stats(&self) -> BTreeMap<String, String> {
        let url = format!("http://{}/stats", self.admin());
        let text = self.client.get(url).send().await.expect("stats").text().await.expect("body");
        text.lines().filter_map(|l| l.split_once(": ")).map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// A counter (0 when absent).
    pub async fn stat(&self, name: &str) -> u64 {
        self.stats().await.get(name).and_then(|v| v.parse().ok()).unwrap_or(0)
    }

    /// The names of the routes Envoy holds, across all route configurations.
    pub async fn route_names(&self) -> Vec<String> {
        let dump = self.config_dump(Some("dynamic_route_configs")).await;
        route_names_in(&dump)
    }

    /// Sends `request` as written (no client normalises the path or the
    /// headers) to Envoy's HTTP listener and reads the answer. The request
    /// should say `connection: close`.
    pub async fn raw(&self, request: &[u8]) -> Result<Resp, String> {
        raw_http(&format!("127.0.0.1:{}", self.ports.http), request).await
    }
}

/// The names of the routes in a `config_dump` of route configurations.
fn route_names_in(dump: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for c in dump["configs"].as_array().into_iter().flatten() {
        for vh in c["route_config"]["virtual_hosts"].as_array().into_iter().flatten() {
            for r in vh["routes"].as_array().into_iter().flatten() {
                if let Some(n) = r["name"].as_str() {
                    out.push(n.to_string());
                }
            }
        }
    }
    out
}
