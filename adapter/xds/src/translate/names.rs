//! Names shared with the bootstrap, the enforcer and operators.

/// Static cluster of the enforcer's ext_authz gRPC service (in `envoy/bootstrap.yaml`).
pub const CLUSTER_EXT_AUTHZ: &str = "ext-authz";
/// Static cluster of the enforcer's HTTPS server (`/testkey`, `/jwks`).
pub const CLUSTER_ENFORCER_HTTP: &str = "ext_authz_http_cluster";
/// Static cluster of the enforcer's access-log service.
pub const CLUSTER_ACCESS_LOGGER: &str = "access-logger";

/// Request header the enforcer sets to choose the sandbox cluster.
pub const HEADER_CLUSTER: &str = "x-wso2-cluster-header";
/// Request header holding the path without its query, set before routing: its
/// first segment selects the route scope.
pub const HEADER_ROUTE_SCOPE: &str = "x-wso2-route-scope";

/// Request header holding the client's address as Envoy determined it
/// (`use_remote_address`, `xff_num_trusted_hops`), set before ext_authz and
/// removed before upstream: the enforcer's one source for IP-based decisions.
pub const HEADER_CLIENT_IP: &str = "x-wso2-client-ip";

/// Method-override headers: a backend that honours them would execute
/// another method than the one the gateway authorized, so clients' values
/// never reach it.
pub const METHOD_OVERRIDE_HEADERS: &[&str] = &["x-http-method-override", "x-http-method", "x-method-override"];

/// Listener names (as in Choreo Connect).
pub const LISTENER_HTTP: &str = "HTTPListener";
/// HTTPS listener name.
pub const LISTENER_HTTPS: &str = "HTTPSListener";
/// The HTTP connection manager's scoped-routes name.
pub const SCOPED_ROUTES: &str = "default";
/// HCM stat prefix (as in Choreo Connect): stats are `http.ingress_http.*`.
pub const STAT_PREFIX: &str = "ingress_http";

/// Dynamic metadata key the enforcer sets on every answer of its own, so that
/// only ext_authz *failures* are mapped to 500/102500.
pub const ENFORCER_REPLY_KEY: &str = "choreo-connect-enforcer-reply";
/// Dynamic metadata key the enforcer's module sets when it answers with its
/// own failure (500/102500: nothing could be decided, or a panic was
/// caught; enforcer/module/src/filter.rs, `FAILURE_KEY`), so that SOAP
/// requests get that failure as a fault, as they do when ext_authz fails.
pub const ENFORCER_FAILURE_KEY: &str = "choreo-connect-enforcer-failure";
/// Dynamic metadata namespace of the ext_authz filter.
pub const EXT_AUTHZ_NAMESPACE: &str = "envoy.filters.http.ext_authz";

/// HTTP filter names.
pub const FILTER_CORS: &str = "envoy.filters.http.cors";
/// ext_authz filter.
pub const FILTER_EXT_AUTHZ: &str = "envoy.filters.http.ext_authz";
/// The enforcer as a dynamic module (`[router] enforcerMode = "module"`),
/// in the place of ext_authz.
pub const FILTER_ENFORCER_MODULE: &str = "gateway.enforcer";
/// The module's name: Envoy loads `lib<name>.so` (enforcer/module).
pub const ENFORCER_MODULE: &str = "gateway_module";
/// The module's filter that runs the enforcer (enforcer/module/src/filter.rs).
pub const ENFORCER_MODULE_FILTER: &str = "enforcer";
/// Local rate limit filter (the JWKS route).
pub const FILTER_LOCAL_RATELIMIT: &str = "envoy.filters.http.local_ratelimit";
/// Header mutation filter (the client address for the enforcer).
pub const FILTER_HEADER_MUTATION: &str = "envoy.filters.http.header_mutation";
/// Lua filter (interceptors, method rewrites: adapter/xds/src/translate/interceptor.lua).
pub const FILTER_LUA: &str = "envoy.filters.http.lua";
/// Router filter.
pub const FILTER_ROUTER: &str = "envoy.filters.http.router";

/// Metadata namespace on routes describing the API (for access logs and operators).
pub const ROUTE_METADATA_NAMESPACE: &str = "gateway";

/// The scoped route configuration of a first path segment.
pub fn scope_name(key: &str) -> String {
    format!("scope/{key}")
}

/// The route configuration of a first path segment.
pub fn route_config_name(key: &str) -> String {
    format!("routes/{key}")
}

/// A cluster name in Choreo Connect's format:
/// `<org>_<prefix>_<vhost>_<TitleWithoutSpaces><version>`.
pub fn cluster_name(org: &str, prefix: &str, vhost: &str, title: &str, version: &str) -> String {
    let title: String = title.chars().filter(|c| !c.is_whitespace()).collect();
    format!("{org}_{prefix}_{vhost}_{title}{version}")
}
