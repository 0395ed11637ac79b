//! Envoy's protos as a [`DescriptorPool`], compiled once per process from the
//! `.proto` files the envoy-types crate ships (the very definitions the
//! adapter encodes with). The golden tests decode resources with it into the
//! JSON of Envoy's `config_dump`; the benchmarks encode a JSON bootstrap into
//! Envoy's binary form (`.pb`) with it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, SerializeOptions};

/// Why the pool could not be built.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `cargo metadata` did not run or did not name envoy-types.
    #[error("locating the envoy-types sources with cargo metadata: {0}")]
    Metadata(String),
    /// protox rejected the files.
    #[error("compiling Envoy's protos: {0}")]
    Compile(String),
    /// A message name the pool does not hold.
    #[error("no message {0} among the compiled Envoy protos")]
    Unknown(String),
}

/// The files compiled: every resource the adapter sends, every typed
/// extension its resources name, and the bootstrap.
const FILES: &[&str] = &[
    "envoy/config/bootstrap/v3/bootstrap.proto",
    "envoy/config/cluster/v3/cluster.proto",
    "envoy/config/endpoint/v3/endpoint.proto",
    "envoy/config/listener/v3/listener.proto",
    "envoy/config/route/v3/route.proto",
    "envoy/config/route/v3/scoped_route.proto",
    "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto",
    "envoy/extensions/filters/http/ext_authz/v3/ext_authz.proto",
    "envoy/extensions/filters/http/cors/v3/cors.proto",
    "envoy/extensions/filters/http/router/v3/router.proto",
    "envoy/extensions/filters/http/lua/v3/lua.proto",
    "envoy/extensions/filters/http/local_ratelimit/v3/local_rate_limit.proto",
    "envoy/extensions/filters/http/header_mutation/v3/header_mutation.proto",
    "envoy/extensions/http/early_header_mutation/header_mutation/v3/header_mutation.proto",
    "envoy/extensions/clusters/dns/v3/dns_cluster.proto",
    "envoy/extensions/transport_sockets/tls/v3/tls.proto",
    "envoy/extensions/upstreams/http/v3/http_protocol_options.proto",
    "envoy/extensions/retry/priority/previous_priorities/v3/previous_priorities_config.proto",
    "envoy/extensions/access_loggers/grpc/v3/als.proto",
];

/// The directory of the envoy-types crate this workspace builds with.
fn envoy_types_dir() -> Result<PathBuf, Error> {
    // `--filter-platform` with the host: without it, cargo metadata wants the
    // crates of every target platform (Windows console crates and the like),
    // which a normal build never downloads, so `--offline` fails on a fresh
    // machine.
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = Command::new(rustc).arg("-vV").output().map_err(|e| Error::Metadata(format!("rustc -vV: {e}")))?;
    let host = String::from_utf8_lossy(&version.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .ok_or_else(|| Error::Metadata("rustc -vV names no host".into()))?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline", "--filter-platform", &host])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .map_err(|e| Error::Metadata(e.to_string()))?;
    if !out.status.success() {
        return Err(Error::Metadata(String::from_utf8_lossy(&out.stderr).into_owned()));
    }
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| Error::Metadata(e.to_string()))?;
    meta["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == "envoy-types")
        .and_then(|p| p["manifest_path"].as_str())
        .and_then(|m| Path::new(m).parent())
        .map(Path::to_path_buf)
        .ok_or_else(|| Error::Metadata("envoy-types is not in the dependency graph".into()))
}

fn compile() -> Result<DescriptorPool, Error> {
    let proto = envoy_types_dir()?.join("proto");
    let includes: Vec<PathBuf> = [
        "data-plane-api",
        "xds",
        "googleapis",
        "protoc-gen-validate",
        "cel-spec/proto",
        "opentelemetry-proto",
        "client_model",
    ]
    .iter()
    .map(|d| proto.join(d))
    .filter(|p| p.exists())
    .collect();
    let fds = protox::compile(FILES, &includes).map_err(|e| Error::Compile(e.to_string()))?;
    DescriptorPool::from_file_descriptor_set(fds).map_err(|e| Error::Compile(e.to_string()))
}

/// The pool, compiled on first use.
pub fn pool() -> Result<&'static DescriptorPool, Error> {
    static POOL: OnceLock<Result<DescriptorPool, String>> = OnceLock::new();
    POOL.get_or_init(|| compile().map_err(|e| e.to_string())).as_ref().map_err(|e| Error::Compile(e.clone()))
}

/// The descriptor of a message, by its full name (`envoy.config.cluster.v3.Cluster`).
pub fn message(name: &str) -> Result<MessageDescriptor, Error> {
    pool()?.get_message_by_name(name).ok_or_else(|| Error::Unknown(name.to_string()))
}
