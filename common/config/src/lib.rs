//! The gateway's `config.toml`, in WSO2 Choreo Connect's format.
//!
//! One file configures the adapter, the router (through the adapter) and the
//! enforcer. Keys and defaults follow Choreo Connect (see
//! README.md, "Configuration"): camelCase keys matched
//! case-insensitively, `$env{NAME}` substitution and `CC_<SECTION>_<FIELD>`
//! overrides. Loading is pure: the caller passes the text and the environment.

mod defaults;
pub mod enforcer;
mod error;
mod loader;
pub mod log;
pub mod model;
pub mod policies;
mod validate;

pub use error::{ConfigError, Warning};
pub use loader::{Loaded, load};
pub use model::Config;
pub use validate::{CODEC_TYPES, TLS_VERSIONS};

#[cfg(test)]
mod tests;
