//! API model and configuration → Envoy resources (ARCHITECTURE.md).

pub mod cluster;
pub mod listener;
pub mod local_reply;
pub mod mediation;
pub mod module;
pub mod names;
pub mod route;
pub mod scope;
pub mod tls;
pub mod tracing;
pub mod util;
