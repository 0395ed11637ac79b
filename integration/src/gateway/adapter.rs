//! The adapter of a test gateway: its process and its management API.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::Gateway;
use crate::http::Resp;
use crate::paths::workspace_bin;
use crate::process::{Proc, maybe_wrapped, wait_exit};
use crate::tokens;
use crate::wait::patience;

/// Base path of the adapter's management API (adapter/src/management/mod.rs).
pub const MGMT_BASE_PATH: &str = "/api/mgw/adapter/0.1";

impl Gateway {
    /// The URL of `path` on the adapter's management API.
    pub fn mgmt_url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{MGMT_BASE_PATH}{path}", self.ports.mgmt)
    }

    /// A request to the adapter's management API (Basic admin/admin).
    pub async fn mgmt(&self, method: &str, path: &str, body: Option<Value>) -> Resp {
        let url = self.mgmt_url(path);
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut rb = self.client.request(method, url).basic_auth("admin", Some("admin"));
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await.expect("management API request");
        let status = r.status().as_u16();
        let headers =
            r.headers().iter().map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string())).collect();
        Resp { status, headers, body: r.text().await.unwrap_or_default() }
    }

    /// Starts (or restarts) the adapter and waits for its management API.
    pub async fn start_adapter(&mut self) {
        let config = self.dir.path().join("config.toml");
        std::fs::write(&config, self.config_text()).expect("write config");
        let n = std::fs::read_dir(self.dir.path()).map(|r| r.count()).unwrap_or(0);
        let log = self.dir.path().join(format!("adapter-{n}.log"));
        // ADAPTER_WRAP: a program to run the adapter under (heaptrack, say).
        // Its process id is then the wrapper's.
        let (mut cmd, wrapped) = maybe_wrapped("ADAPTER_WRAP", workspace_bin("adapter"));
        cmd.arg("--config").arg(&config).arg("--xds-address").arg(format!("127.0.0.1:{}", self.ports.xds));
        let level = std::env::var("ADAPTER_LOG").unwrap_or_else(|_| "info,adapter=debug".to_string());
        cmd.env("RUST_LOG", level).env("NO_COLOR", "1").envs(self.adapter_env.iter().map(|(k, v)| (k, v)));
        let mut proc = Proc::spawn("adapter", &mut cmd, log);
        if wrapped {
            proc = proc.graceful();
        }
        let deadline = Instant::now() + patience();
        loop {
            if !proc.running() {
                panic!("the adapter exited:\n{}", proc.log());
            }
            match self.xds_status_raw().await {
                Ok(_) => break,
                Err(e) if Instant::now() > deadline => {
                    panic!("the adapter's management API did not come up: {e}\n{}", proc.log())
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        self.adapter = Some(proc);
    }

    /// Runs the adapter with extra environment until it exits by itself
    /// (within the patience); its exit code and log.
    pub async fn run_adapter_until_exit(&self, env: &[(&str, &str)]) -> (Option<i32>, String) {
        let config = self.dir.path().join("config.toml");
        std::fs::write(&config, self.config_text()).expect("write config");
        let log = self.dir.path().join(format!("adapter-exit-{}.log", tokens::unique()));
        let mut cmd = Command::new(workspace_bin("adapter"));
        cmd.arg("--config").arg(&config).arg("--xds-address").arg(format!("127.0.0.1:{}", self.ports.xds));
        cmd.env("RUST_LOG", "info").env("NO_COLOR", "1").envs(self.adapter_env.iter().map(|(k, v)| (k, v)));
        cmd.envs(env.iter().copied());
        let mut proc = Proc::spawn("adapter", &mut cmd, log);
        let code = wait_exit(&mut proc).await;
        (code, proc.log())
    }

    /// Kills the adapter with SIGKILL.
    pub fn kill_adapter(&mut self) {
        if let Some(mut a) = self.adapter.take() {
            a.kill();
        }
    }

    /// The adapter's log so far.
    pub fn adapter_log(&self) -> String {
        self.adapter.as_ref().map(Proc::log).unwrap_or_default()
    }

    /// The adapter's process id.
    pub fn adapter_pid(&self) -> Option<u32> {
        self.adapter.as_ref().map(Proc::pid)
    }

    /// A request to the management API with the given `Authorization` value (or none).
    pub async fn mgmt_as(&self, method: &str, path: &str, authorization: Option<&str>, body: Option<Value>) -> Resp {
        let url = self.mgmt_url(path);
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut rb = self.client.request(method, url);
        if let Some(a) = authorization {
            rb = rb.header("authorization", a);
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        Self::resp(rb.send().await.expect("management API request")).await
    }

    /// `POST /apis` as apictl sends it: multipart part `file` holding the
    /// zip, `?override=true` when asked.
    pub async fn deploy_zip(&self, zip: Vec<u8>, override_: bool, authorization: &str) -> Resp {
        let mut url = self.mgmt_url("/apis");
        if override_ {
            url.push_str("?override=true");
        }
        let part = reqwest::multipart::Part::bytes(zip)
            .file_name("project.zip")
            .mime_str("application/octet-stream")
            .expect("mime");
        let form = reqwest::multipart::Form::new().part("file", part);
        let r = self.client.post(url).header("authorization", authorization).multipart(form).send().await;
        Self::resp(r.expect("deploy request")).await
    }

    /// A request to the management API with exactly these headers and body.
    pub async fn mgmt_raw(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Resp {
        let url = self.mgmt_url(path);
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut rb = self.client.request(method, url).body(body);
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        Self::resp(rb.send().await.expect("management API request")).await
    }

    /// A bearer token from `POST /oauth2/token` (admin/admin).
    pub async fn mgmt_token(&self) -> String {
        let r = self
            .mgmt_as("POST", "/oauth2/token", None, Some(serde_json::json!({"username": "admin", "password": "admin"})))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()["accessToken"].as_str().expect("accessToken").to_string()
    }

    async fn resp(r: reqwest::Response) -> Resp {
        let status = r.status().as_u16();
        let headers =
            r.headers().iter().map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string())).collect();
        Resp { status, headers, body: r.text().await.unwrap_or_default() }
    }

    /// How many of the enforcer `instance`'s discovery streams hold what the
    /// adapter sent them (sent and acknowledged versions equal), per `/xds`.
    pub(super) async fn synced_streams(&self, instance: &str) -> Result<usize, String> {
        let status = self.xds_status_raw().await?;
        let streams = status["enforcers"].as_array().cloned().unwrap_or_default();
        Ok(streams
            .iter()
            .filter(|s| s["instance"] == instance && !s["sentVersion"].as_str().unwrap_or("").is_empty())
            .filter(|s| s["sentVersion"] == s["ackedVersion"])
            .count())
    }

    pub(super) async fn xds_status_raw(&self) -> Result<Value, String> {
        let url = self.mgmt_url("/xds");
        let r = self.client.get(url).basic_auth("admin", Some("admin")).send().await.map_err(|e| e.to_string())?;
        if !r.status().is_success() {
            return Err(format!("status {}", r.status()));
        }
        r.json().await.map_err(|e| e.to_string())
    }

    /// The adapter's report on connected Envoys.
    pub async fn xds_status(&self) -> Value {
        self.xds_status_raw().await.expect("xds status")
    }

    /// The adapter's report on the artifacts folder.
    pub async fn artifacts_status(&self) -> Value {
        let url = self.mgmt_url("/artifacts");
        let r = self.client.get(url).basic_auth("admin", Some("admin")).send().await.expect("artifacts status");
        r.json().await.expect("artifacts JSON")
    }
}
