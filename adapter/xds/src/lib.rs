//! The adapter's xDS core, free of I/O.
//!
//! * [`snapshot`]: content-versioned resources and per-label snapshots;
//! * [`stream`]: the ADS stream state machine (state of the world and delta).

pub mod snapshot;
pub mod stream;

#[cfg(test)]
mod stream_tests;
