//! The enforcer of a test gateway: its process, its configuration and its HTTPS port.

use std::time::{Duration, Instant};

use super::{Gateway, IDP_ISSUER, TESTKEY_ISSUER};
use crate::http::Resp;
use crate::paths::workspace_bin;
use crate::ports::free_port;
use crate::process::{Proc, maybe_wrapped, wait_exit};
use crate::wait::patience;

impl Gateway {
    pub(super) fn enforcer_config(&self) -> String {
        let Some(idp) = &self.idp else { return String::new() };
        let dir = self.dir.path().display();
        format!(
            r#"
[enforcer.jwtIssuer]
issuer = "{TESTKEY_ISSUER}"
publicCertificatePath = "{dir}/testkey.pem"
privateKeyPath = "{dir}/testkey.key"
[[enforcer.jwtIssuer.jwtUser]]
username = "admin"
password = "admin"
[[enforcer.security.tokenService]]
name = "MGW"
issuer = "{TESTKEY_ISSUER}"
certificateFilePath = "{dir}/testkey.pem"
[[enforcer.security.tokenService]]
name = "IdP"
issuer = "{IDP_ISSUER}"
jwksURL = "{jwks}"
validateSubscription = true
consumerKeyClaim = "azp"
[[enforcer.security.tokenService]]
name = "APIM Publisher"
issuer = "https://localhost:9443/publisher"
certificateFilePath = "{dir}/apim.pem"
validateSubscription = true
[[enforcer.security.tokenService]]
name = "APIM APIkey"
certificateFilePath = "{dir}/apim.pem"
validateSubscription = true
[enforcer.management]
username = "admin"
password = "admin"
"#,
            jwks = idp.jwks.url(),
        )
    }

    /// Starts (or restarts) the enforcer and waits until it holds the
    /// adapter's configuration, APIs and revoked tokens.
    pub async fn start_enforcer(&mut self) {
        self.spawn_enforcer().await;
        let deadline = Instant::now() + patience();
        let mut port_retries = 3;
        loop {
            if let Some(p) = self.enforcer.as_mut()
                && !p.running()
            {
                let log = p.log();
                // free_port() only finds a port that was free: a test running
                // in parallel may take it first. Before Envoy knows the
                // ports, pick others; after, wait for the port to be free.
                if log.contains("Address already in use") && port_retries > 0 {
                    port_retries -= 1;
                    if self.envoy.is_none() && self.extra_envoys.is_empty() {
                        self.ports.enforcer = free_port();
                        self.ports.als = free_port();
                        self.ports.enforcer_https = free_port();
                    } else {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    self.spawn_enforcer().await;
                    continue;
                }
                panic!("the enforcer exited:\n{log}");
            }
            if self.synced_streams("test-enforcer").await.is_ok_and(|n| n >= 3) {
                break;
            }
            assert!(Instant::now() < deadline, "the enforcer did not sync with the adapter:\n{}", self.enforcer_log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts the enforcer without waiting for it.
    pub async fn spawn_enforcer(&mut self) {
        let p = self.ports;
        let proc = self.enforcer_process("enforcer", [p.enforcer, p.als, p.enforcer_https, p.enforcer_metrics]);
        self.enforcer = Some(proc);
    }

    /// Starts one more enforcer (a replica) on ports `[ext_authz, access
    /// logs, HTTPS, metrics]`, with the harness's arguments and environment.
    /// The caller owns it; Envoys started after [`Gateway::extra_enforcer_ports`]
    /// lists its ext_authz port balance checks over both.
    pub fn enforcer_process(&self, name: &str, ports: [u16; 4]) -> Proc {
        let n = std::fs::read_dir(self.dir.path()).map(|r| r.count()).unwrap_or(0);
        // ENFORCER_WRAP: a program to run the enforcer under (heaptrack, say).
        // Its process id is then the wrapper's.
        let (mut cmd, wrapped) = maybe_wrapped("ENFORCER_WRAP", workspace_bin("enforcer"));
        cmd.args(["--label", "Default", "--adapter-host", "127.0.0.1"])
            .arg("--adapter-xds-port")
            .arg(self.ports.xds.to_string())
            .arg("--authz-address")
            .arg(format!("127.0.0.1:{}", ports[0]))
            .arg("--als-address")
            .arg(format!("127.0.0.1:{}", ports[1]))
            .arg("--admin-address")
            .arg(format!("127.0.0.1:{}", ports[2]))
            .arg("--metrics-address")
            .arg(format!("127.0.0.1:{}", ports[3]))
            .arg("--cert")
            .arg(&self.certs.cert_path)
            .arg("--key")
            .arg(&self.certs.key_path)
            .arg("--trusted-ca")
            .arg(&self.certs.ca_path)
            .arg(format!("--adapter-tls={}", self.component_tls))
            .arg(format!("--grpc-tls={}", self.component_tls));
        let level = std::env::var("ENFORCER_LOG").unwrap_or_else(|_| "info,enforcer=debug".to_string());
        cmd.args(&self.enforcer_args);
        cmd.env("RUST_LOG", level).env("NO_COLOR", "1").env("HOSTNAME", "test-enforcer");
        cmd.envs(self.enforcer_env.iter().map(|(k, v)| (k, v)));
        let proc = Proc::spawn(name, &mut cmd, self.dir.path().join(format!("{name}-{n}.log")));
        if wrapped { proc.graceful() } else { proc }
    }

    /// Kills the enforcer with SIGKILL.
    pub fn kill_enforcer(&mut self) {
        if let Some(mut e) = self.enforcer.take() {
            e.kill();
        }
    }

    /// The enforcer's log so far.
    pub fn enforcer_log(&self) -> String {
        self.enforcer.as_ref().map(Proc::log).unwrap_or_default()
    }

    /// A request to the enforcer's HTTPS server.
    pub async fn enforcer_https(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Resp {
        let url = format!("https://localhost:{}{path}", self.ports.enforcer_https);
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut rb = self.client.request(method, url).body(body.to_string());
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        let r = rb.send().await.expect("enforcer HTTPS request");
        let status = r.status().as_u16();
        let headers =
            r.headers().iter().map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string())).collect();
        let body = r.text().await.unwrap_or_default();
        Resp { status, headers, body }
    }

    /// Runs the enforcer with extra environment until it exits by itself
    /// (within the patience); its exit code and log.
    pub async fn run_enforcer_until_exit(&mut self, env: &[(&str, &str)]) -> (Option<i32>, String) {
        self.enforcer_env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self.spawn_enforcer().await;
        self.enforcer_env.clear();
        let mut proc = self.enforcer.take().expect("spawned");
        let code = wait_exit(&mut proc).await;
        (code, proc.log())
    }

    /// The enforcer's process id, while it runs.
    pub fn enforcer_pid(&self) -> Option<u32> {
        self.enforcer.as_ref().map(Proc::pid)
    }
}
