//! The adapter ↔ enforcer protocol (`proto/wso2`), modelled on Choreo
//! Connect's `wso2.discovery` services: configuration, APIs and revoked
//! tokens, each a state-of-the-world stream with ACK/NACK as in xDS.

#![allow(missing_docs, clippy::all, clippy::pedantic)]

/// Generated messages and services.
pub mod wso2 {
    pub mod discovery {
        pub mod config {
            tonic::include_proto!("wso2.discovery.config");
        }
        pub mod api {
            tonic::include_proto!("wso2.discovery.api");
        }
        pub mod service {
            tonic::include_proto!("wso2.discovery.service");
        }
    }
}

pub use wso2::discovery::{api, config, service};

/// Prefix of every type URL.
pub const TYPE_PREFIX: &str = "type.googleapis.com/";
/// Type URL of the enforcer configuration.
pub const CONFIG_TYPE_URL: &str = "type.googleapis.com/wso2.discovery.config.Config";
/// Type URL of an API.
pub const API_TYPE_URL: &str = "type.googleapis.com/wso2.discovery.api.Api";
/// Type URL of a revoked token.
pub const REVOKED_TOKEN_TYPE_URL: &str = "type.googleapis.com/wso2.discovery.api.RevokedToken";
