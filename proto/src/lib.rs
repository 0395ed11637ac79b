//! The adapter ↔ enforcer protocol (`proto/wso2`), modelled on Choreo
//! Connect's `wso2.discovery` services: configuration, APIs and revoked
//! tokens, each a state-of-the-world stream with ACK/NACK as in xDS.

#![allow(missing_docs, clippy::all, clippy::pedantic)]

/// Generated messages and (with the `grpc` feature) services.
pub mod wso2 {
    pub mod discovery {
        pub mod config {
            include!(concat!(env!("OUT_DIR"), "/wso2.discovery.config.rs"));
        }
        pub mod api {
            include!(concat!(env!("OUT_DIR"), "/wso2.discovery.api.rs"));
        }
        pub mod throttle {
            include!(concat!(env!("OUT_DIR"), "/wso2.discovery.throttle.rs"));
        }
        #[cfg(feature = "grpc")]
        pub mod service {
            include!(concat!(env!("OUT_DIR"), "/wso2.discovery.service.rs"));
        }
    }
}

pub mod otlp;

#[cfg(feature = "grpc")]
pub use wso2::discovery::service;
pub use wso2::discovery::{api, config, throttle};

/// Prefix of every type URL.
pub const TYPE_PREFIX: &str = "type.googleapis.com/";
/// Type URL of the enforcer configuration.
pub const CONFIG_TYPE_URL: &str = "type.googleapis.com/wso2.discovery.config.Config";
/// Type URL of an API.
pub const API_TYPE_URL: &str = "type.googleapis.com/wso2.discovery.api.Api";
/// Type URL of a revoked token.
pub const REVOKED_TOKEN_TYPE_URL: &str = "type.googleapis.com/wso2.discovery.api.RevokedToken";
/// Type URL of the throttling data (policies and blocking conditions).
pub const THROTTLE_DATA_TYPE_URL: &str = "type.googleapis.com/wso2.discovery.throttle.ThrottleData";
