//! Route scopes: one route configuration per first path segment.
//!
//! Envoy's stock scoped routes (SRDS) pick a route configuration per request
//! from a key; the key here is the first segment of the path (taken from a
//! header set before routing, without the query string). One API change then
//! re-sends only the route configuration of its first segment, not the whole
//! route table. See ARCHITECTURE.md for the measurements behind the choice.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::core::v3::{DataSource, data_source};
use envoy_types::pb::envoy::config::route::v3::{
    Decorator, DirectResponseAction, Route, RouteAction, RouteConfiguration, RouteMatch, ScopedRouteConfiguration,
    VirtualHost, route, route_action, route_match, scoped_route_configuration,
};
use envoy_types::pb::envoy::extensions::filters::http::header_mutation::v3::HeaderMutationPerRoute;

use envoy_types::pb::google::protobuf::Any;

use gateway_config::Config;

use envoy_types::pb::envoy::config::core::v3::RuntimeFractionalPercent;
use envoy_types::pb::envoy::extensions::filters::http::local_ratelimit::v3::LocalRateLimit;
use envoy_types::pb::envoy::r#type::v3::{FractionalPercent, TokenBucket};

use super::names::{
    CLUSTER_ENFORCER_HTTP, FILTER_CORS, FILTER_EXT_AUTHZ, FILTER_HEADER_MUTATION, FILTER_LOCAL_RATELIMIT,
    HEADER_CLIENT_IP, HEADER_CLUSTER, HEADER_ROUTE_SCOPE, route_config_name, scope_name,
};
use super::route::{PlacedRoute, SortKey};
use super::util::{any, bool_value, secs, set_header, u32_value};

/// System routes on the system host, as in Choreo Connect: `/testkey` (when
/// the test key issuer is on) and `/.wellknown/jwks` (when the backend JWT is
/// on) to the enforcer's HTTPS server, `/health`, and `/ready` once start-up
/// is done.
pub fn system_routes(c: &Config, ready: bool) -> Vec<PlacedRoute> {
    let system_host = c.router.system_host.as_str();
    let mut out = Vec::new();
    if c.enforcer.jwt_issuer.enabled {
        out.push(to_enforcer("testkey", "/testkey", "/testkey", system_host));
    }
    if c.enforcer.jwt_generator.enabled {
        let mut jwks = to_enforcer(".wellknown", "/.wellknown/jwks", "/jwks", system_host);
        jwks.route.typed_per_filter_config.insert(FILTER_LOCAL_RATELIMIT.to_string(), jwks_rate_limit(c));
        out.push(jwks);
    }
    out.push(direct("health", "/health", r#"{"status": "healthy"}"#, system_host));
    if ready {
        out.push(direct("ready", "/ready", r#"{"status": "ready"}"#, system_host));
    }
    out
}

/// Choreo Connect's token bucket on `/.wellknown/jwks`:
/// `[enforcer.jwtGenerator] jwksRatelimitQuota` requests per
/// `jwksRatelimitTimeWindowInSeconds`; past it Envoy answers 429.
fn jwks_rate_limit(c: &Config) -> Any {
    let g = &c.enforcer.jwt_generator;
    let all = || RuntimeFractionalPercent {
        default_value: Some(FractionalPercent { numerator: 100, denominator: 0 }),
        runtime_key: String::new(),
    };
    any(&LocalRateLimit {
        stat_prefix: "jwks_rate_limit".to_string(),
        token_bucket: Some(TokenBucket {
            max_tokens: g.jwks_ratelimit_quota,
            tokens_per_fill: Some(u32_value(g.jwks_ratelimit_quota)),
            fill_interval: Some(secs(g.jwks_ratelimit_time_window_in_seconds)),
        }),
        filter_enabled: Some(all()),
        filter_enforced: Some(all()),
        ..Default::default()
    })
}

fn to_enforcer(scope: &str, path: &str, rewrite: &str, vhost: &str) -> PlacedRoute {
    let route = Route {
        name: path.to_string(),
        r#match: Some(RouteMatch {
            path_specifier: Some(route_match::PathSpecifier::Path(path.to_string())),
            ..Default::default()
        }),
        action: Some(route::Action::Route(RouteAction {
            cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(CLUSTER_ENFORCER_HTTP.to_string())),
            prefix_rewrite: rewrite.to_string(),
            host_rewrite_specifier: Some(route_action::HostRewriteSpecifier::AutoHostRewrite(bool_value(true))),
            ..Default::default()
        })),
        decorator: Some(Decorator { operation: path.to_string(), ..Default::default() }),
        ..Default::default()
    };
    PlacedRoute { scope: scope.to_string(), vhost: vhost.to_string(), key: SortKey::last(path), route }
}

fn direct(scope: &str, path: &str, body: &str, vhost: &str) -> PlacedRoute {
    let route = Route {
        name: path.to_string(),
        r#match: Some(RouteMatch {
            path_specifier: Some(route_match::PathSpecifier::Path(path.to_string())),
            ..Default::default()
        }),
        action: Some(route::Action::DirectResponse(DirectResponseAction {
            status: 200,
            body: Some(DataSource {
                specifier: Some(data_source::Specifier::InlineString(body.to_string())),
                ..Default::default()
            }),
            ..Default::default()
        })),
        response_headers_to_add: vec![set_header("content-type", "application/json")],
        ..Default::default()
    };
    PlacedRoute { scope: scope.to_string(), vhost: vhost.to_string(), key: SortKey::last(path), route }
}

/// The route configuration of `scope` from its routes (any order). `cors`
/// is the gateway-wide CORS policy, set on every virtual host.
pub fn route_configuration(scope: &str, routes: Vec<PlacedRoute>, cors: Option<&Any>) -> RouteConfiguration {
    let mut by_vhost: BTreeMap<String, Vec<PlacedRoute>> = BTreeMap::new();
    for r in routes {
        by_vhost.entry(r.vhost.clone()).or_default().push(r);
    }
    let virtual_hosts = by_vhost
        .into_iter()
        .map(|(vhost, mut rs)| {
            rs.sort_by(|a, b| a.key.cmp(&b.key));
            let mut per_filter = std::collections::HashMap::new();
            if let Some(cors) = cors {
                per_filter.insert(FILTER_CORS.to_string(), cors.clone());
            }
            // The enforcer reads the client's address from a header, set
            // (by the default-off header mutation filter) only in virtual
            // hosts with a route to the enforcer. The enforcer's module sets
            // it itself (enforcer/module/src/filter.rs), without the cost of
            // another filter.
            if rs.iter().any(|r| r.route.typed_per_filter_config.contains_key(FILTER_EXT_AUTHZ)) {
                per_filter.insert(
                    FILTER_HEADER_MUTATION.to_string(),
                    any(&HeaderMutationPerRoute { mutations: Some(super::listener::client_ip_mutation()) }),
                );
            }
            VirtualHost {
                name: vhost.clone(),
                domains: vec![vhost.clone(), format!("{vhost}:*")],
                routes: rs.into_iter().map(|r| r.route).collect(),
                typed_per_filter_config: per_filter,
                ..Default::default()
            }
        })
        .collect();
    RouteConfiguration {
        name: route_config_name(scope),
        virtual_hosts,
        request_headers_to_remove: vec![
            HEADER_CLUSTER.to_string(),
            HEADER_ROUTE_SCOPE.to_string(),
            HEADER_CLIENT_IP.to_string(),
        ],
        ..Default::default()
    }
}

/// The scope entry that points the key `scope` at its route configuration.
pub fn scoped_route(scope: &str) -> ScopedRouteConfiguration {
    ScopedRouteConfiguration {
        name: scope_name(scope),
        route_configuration_name: route_config_name(scope),
        key: Some(scoped_route_configuration::Key {
            fragments: vec![scoped_route_configuration::key::Fragment {
                r#type: Some(scoped_route_configuration::key::fragment::Type::StringKey(scope.to_string())),
            }],
        }),
        ..Default::default()
    }
}
