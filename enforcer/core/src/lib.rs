//! The enforcer's decisions, free of gRPC and HTTP: Choreo Connect's
//! security semantics over the data the adapter sends.
//!
//! * [`engine`]: the state (configuration, APIs, revoked tokens, caches) and
//!   the decision for one request: find the API and resource the route
//!   names, then run the [`chain`] of filters (CORS, authentication, routing
//!   by key type, credentials, backend JWT).
//! * [`settings`], [`apis`]: the adapter's configuration and APIs, checked and
//!   indexed for the request path; [`keys`], [`token`], [`cache`]: keys,
//!   JWTs and the token cache; [`memory`]: what the filters consult between
//!   requests (revoked tokens, caches); [`signer`], [`backend_jwt`]: what the gateway
//!   signs; [`deny`]: Choreo Connect's error codes and bodies.
//!
//! The service crate (`enforcer/`) puts this behind Envoy's ext_authz gRPC
//! API, fetches key sets over HTTP ([`keys::Fetch`]) and serves the admin API.

pub mod apis;
pub mod backend_jwt;
pub mod bounded;
pub mod cache;
pub mod chain;
pub mod decision;
pub mod deny;
pub mod engine;
pub mod graphql;
pub mod keys;
pub mod lease;
pub mod mediation;
pub mod memory;
pub mod ratelimit;
pub mod request;
pub mod settings;
pub mod signer;
pub mod throttle;
pub mod token;

pub use decision::{AuthInfo, AuthType, Decision, KeyType};
pub use engine::{Engine, NotReady};
pub use request::Input;

/// Unix time in seconds.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod engine_tests;

#[cfg(test)]
pub(crate) mod testkit;
