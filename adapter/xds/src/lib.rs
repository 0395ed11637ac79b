//! The adapter's xDS core, free of I/O.
//!
//! * [`translate`]: API model and configuration → Envoy resources;
//! * [`state`]: deployed APIs per label, translated incrementally;
//! * [`snapshot`]: content-versioned resources and per-label snapshots
//!   (its [`snapshot::ResourceType`]s in `resource_type.rs`, which the
//!   canonical encoder in `canon.rs` shares);
//! * [`stream`]: the ADS stream state machine (state of the world and delta).

mod canon;
mod resource_type;
pub mod snapshot;
pub mod state;
pub mod stream;
pub mod translate;

#[cfg(test)]
mod stream_tests;
