//! What the module's filter does, free of the C ABI.

use std::sync::Arc;

/// What the filter tells Envoy after the request headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Headers {
    /// Go on to the next filter (and the upstream).
    Continue,
    /// Stop: the filter answered the request itself.
    Stop,
}

/// The filter's configuration, shared by Envoy's workers.
#[derive(Debug, Default)]
pub struct Config {
    /// The filter name from the HTTP filter's configuration.
    pub name: String,
}

impl Config {
    /// A configuration from the filter's name and its `filter_config` bytes.
    pub fn new(name: &str, _config: &[u8]) -> Config {
        Config { name: name.to_string() }
    }
}

/// What the filter may do with the request it is called for.
pub trait Stream {
    /// Answers the request with `status`, `headers` and `body`.
    fn respond(&mut self, status: u32, headers: &[(&str, &str)], body: &[u8]);
}

/// One request's filter.
#[derive(Debug)]
pub struct Filter {
    /// Shared with the other requests' filters: it outlives them all,
    /// whatever order Envoy destroys things in.
    pub config: Arc<Config>,
}

impl Filter {
    /// A filter for a new request.
    pub fn new(config: Arc<Config>) -> Filter {
        Filter { config }
    }

    /// The request's headers arrived. The spike decides nothing: every
    /// request goes on.
    pub fn on_request_headers(&mut self, _stream: &mut dyn Stream, _end_of_stream: bool) -> Headers {
        Headers::Continue
    }
}

/// The answer to a request the module could not decide (a panic caught at
/// the boundary): the same 500 and body as when the ext_authz enforcer
/// fails (adapter/xds/src/translate/local_reply.rs, `ENFORCER_FAILURE`).
pub const FAILURE_STATUS: u32 = 500;
/// See [`FAILURE_STATUS`].
pub const FAILURE_BODY: &str = r#"{"code":"102500","message":"Unclassified Validation Failure","description":"Error during validating the request"}"#;
