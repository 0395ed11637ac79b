//! The router's bootstrap: envoy/bootstrap.yaml rendered by
//! scripts/render-bootstrap.sh, the script `make run` and the router image
//! use, so that the tests run Envoy with exactly what users get.

use std::collections::BTreeMap;
use std::process::Command;

use crate::paths::workspace_root;

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

    /// The bootstrap's `api_type` for it.
    pub fn api_type(self) -> &'static str {
        match self {
            XdsMode::Sotw => "GRPC",
            XdsMode::Delta => "DELTA_GRPC",
        }
    }
}

/// Renders envoy/bootstrap.yaml with scripts/render-bootstrap.sh: `vars` set
/// its placeholders; `tls` keeps the TLS blocks (`COMPONENT_TLS`). Nothing
/// else of the test's environment reaches the script.
pub fn render(vars: &BTreeMap<&str, String>, tls: bool) -> String {
    let root = workspace_root();
    let mut cmd = Command::new("bash");
    cmd.arg(root.join("scripts/render-bootstrap.sh")).arg(root.join("envoy/bootstrap.yaml")).env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    cmd.envs(vars.iter().map(|(k, v)| (*k, v.as_str()))).env("COMPONENT_TLS", if tls { "true" } else { "false" });
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run scripts/render-bootstrap.sh: {e}"));
    assert!(out.status.success(), "scripts/render-bootstrap.sh failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("the rendered bootstrap is UTF-8")
}
