//! Test harness: runs the real adapter, enforcer and Envoy on loopback
//! ports chosen at run time, with Rust backends in the test process.
//!
//! * Binaries come from the workspace's target folder (`make test` builds
//!   them first) and Envoy from `ENVOY_BIN` or the project's tool folder
//!   (`make envoy`) ([`paths`]).
//! * Every Envoy gets its own base id (`--use-dynamic-base-id`) and the
//!   bootstrap users get, rendered by scripts/render-bootstrap.sh ([`bootstrap`]).
//! * Child processes are killed when the [`Gateway`] is dropped, also when a
//!   test panics; their logs are printed when a test fails ([`process`]).
//! * Waits are bounded retries ([`eventually`]), never bare sleeps ([`wait`]).
//!
//! The rest: [`ports`] (listener ports), [`certs`] (the test PKI),
//! [`http`] (answers, raw HTTP/1.1), [`zips`] (projects), [`tokens`]
//! (signing keys, JWKS server) and [`gateway`] (the gateway under test,
//! one file per component).

pub mod bootstrap;
pub mod certs;
pub mod fixtures;
pub mod gateway;
pub mod http;
pub mod paths;
pub mod ports;
pub mod process;
pub mod redis;
pub mod tokens;
pub mod wait;
pub mod zips;

pub use bootstrap::XdsMode;
pub use certs::Certs;
pub use gateway::{Gateway, GatewayBuilder, IDP_ISSUER, Idp, TESTKEY_ISSUER};
pub use http::{Resp, raw_http};
pub use paths::{envoy_bin, workspace_bin, workspace_bin_dir, workspace_root};
pub use ports::{Ports, free_port};
pub use process::Proc;
pub use redis::RedisServer;
pub use wait::{eventually, patience};
pub use zips::{api_yaml, stored_zip, symlink_zip, zip_project};
