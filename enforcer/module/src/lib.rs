//! The enforcer as an Envoy dynamic module.
//!
//! Envoy 1.40 loads shared libraries that implement HTTP filters in its own
//! worker threads (`envoy.filters.http.dynamic_modules`). This crate builds
//! `libgateway_module.so`, which stock Envoy loads by configuration alone.
//!
//! Layout:
//! * `abi.rs`: the C boundary, and the only place unsafe code is allowed:
//!   this crate's own declarations of the part of Envoy's dynamic-module ABI
//!   it uses (written for Envoy 1.40.0, ABI `v0.2.0`), the exported hooks,
//!   the check at load that the running Envoy offers every callback the
//!   module calls, and a catch of every panic at the boundary.
//! * `filter.rs`: what the filter does, in safe Rust, behind the small
//!   [`filter::Stream`] interface: the enforcer's decision, made by the
//!   enforcer's own code, applied as Envoy's ext_authz filter would.
//! * `runtime.rs`: the engine and the thread that feeds it from the adapter,
//!   and the enforcer's metrics.
//! * `version.rs`: the running Envoy's version, checked at load.
//!
//! Two filters, by `filter_name`: `enforcer`, and `noop`, which decides
//! nothing (what the module itself costs, measured by `make bench`).

pub mod abi;
pub mod filter;
pub mod runtime;
pub mod version;
