//! A whole gateway under test: adapter, enforcer and routers on ports
//! chosen at run time, in a temporary folder that holds their
//! configuration, certificates, logs and projects.

mod adapter;
mod enforcer;
mod envoy;

use std::path::PathBuf;
use std::time::Duration;

use crate::bootstrap::XdsMode;
use crate::certs::{Certs, make_certs};
use crate::ports::{Ports, free_port};
use crate::process::Proc;
use crate::tokens;

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
    /// More ext_authz ports on 127.0.0.1 (enforcer replicas) in the
    /// `ext-authz` cluster of Envoys started after.
    pub extra_enforcer_ports: Vec<u16>,
    /// The module metrics ports of the Envoys started by `add_envoy`, in order.
    pub extra_module_metrics: Vec<u16>,
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
    policy_files: Vec<(String, String)>,
    start_envoy: bool,
    start_adapter: bool,
    with_enforcer: bool,
    component_tls: bool,
    adapter_env: Vec<(String, String)>,
    enforcer_args: Vec<String>,
    router_env: Vec<(&'static str, String)>,
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

    /// Also start the enforcer, with test issuers (see [`Idp`]). With
    /// `GATEWAY_TEST_ENFORCER_MODE=module` in the test's environment, the
    /// decisions are made by the enforcer's dynamic module in Envoy instead
    /// of over ext_authz (see [`GatewayBuilder::enforcer_in_module`]): the
    /// same tests, run again that way, prove every behaviour in both modes.
    pub fn with_enforcer(mut self) -> Self {
        self.with_enforcer = true;
        if std::env::var("GATEWAY_TEST_ENFORCER_MODE").is_ok_and(|m| m == "module") {
            self = self.enforcer_in_module();
        }
        self
    }

    /// The enforcer's decisions are made in Envoy by its dynamic module
    /// (`[router] enforcerMode = "module"`, set through `CC_ROUTER_ENFORCERMODE`
    /// so that a test's own `[router]` table still applies). The enforcer
    /// service still runs: analytics, `/testkey`, `/jwks`, its admin API.
    pub fn enforcer_in_module(self) -> Self {
        if self.adapter_env.iter().any(|(k, _)| k == "CC_ROUTER_ENFORCERMODE") {
            return self;
        }
        self.adapter_env("CC_ROUTER_ENFORCERMODE", "module")
    }

    /// A variable of the router's environment (Envoy's, and so its
    /// module's), replacing the harness's own.
    pub fn router_env(mut self, key: &'static str, value: &str) -> Self {
        self.router_env.push((key, value.to_string()));
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

    /// A throttling policy file in `artifacts/throttling-policies` before the adapter starts.
    pub fn policy_file(mut self, name: &str, text: &str) -> Self {
        self.policy_files.push((name.to_string(), text.to_string()));
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
            adapter_metrics: free_port(),
            enforcer_metrics: free_port(),
            module_metrics: free_port(),
            router_admin: free_port(),
            router_stats: free_port(),
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
            bootstrap_overrides: self.router_env,
            extra_enforcer_ports: Vec::new(),
            extra_module_metrics: Vec::new(),
            enforcer_args: self.enforcer_args,
            enforcer_env: Vec::new(),
        };
        for (name, files) in &self.projects {
            let files: Vec<(&str, &str)> = files.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
            gw.write_project(name, &files);
        }
        for (name, text) in &self.policy_files {
            gw.write_policy_file(name, text);
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
            policy_files: Vec::new(),
            start_envoy: true,
            start_adapter: true,
            with_enforcer: false,
            component_tls: true,
            adapter_env: Vec::new(),
            enforcer_args: Vec::new(),
            router_env: Vec::new(),
        }
    }

    /// Writes a throttling policy file into `artifacts/throttling-policies`.
    pub fn write_policy_file(&self, name: &str, text: &str) {
        let dir = self.dir.path().join("artifacts/throttling-policies");
        std::fs::create_dir_all(&dir).expect("policies dir");
        std::fs::write(dir.join(name), text).expect("write policy file");
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
[adapter.throttling]
filePath = "{dir}/throttling.json"
[adapter.store]
location = "{dir}/store"
[adapter.xdsServer]
tlsEnabled = {tls}
[adapter.metrics]
port = {metrics}
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
            metrics = self.ports.adapter_metrics,
            tls = self.component_tls,
            extra = self.extra_config.replace("{dir}", &self.dir.path().display().to_string()),
        )
    }

    /// The test identity providers (panics unless started `with_enforcer`).
    pub fn idp(&self) -> &Idp {
        self.idp.as_ref().expect("gateway started with_enforcer()")
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

    /// The HTTP client (trusts the gateway's certificate).
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }
}
