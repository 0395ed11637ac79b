//! What Envoy does of an operation's mediation (README.md, "Interceptors",
//! "Operation policies"): header policies become the route's header edits,
//! REWRITE_RESOURCE_PATH its path rewrite, and interceptors and
//! REWRITE_RESOURCE_METHOD the Lua filter's per-route configuration
//! (adapter/xds/src/translate/interceptor.lua) in the route's metadata.
//! ADD_QUERY, OPA, the query handling of path rewrites and mock answers are
//! the enforcer's (enforcer/core/src/mediation.rs).

use std::collections::HashMap;

use envoy_types::pb::envoy::config::core::v3::Metadata;
use envoy_types::pb::envoy::config::route::v3::{Route, RouteAction, route};
use envoy_types::pb::envoy::extensions::filters::http::lua::v3::{Lua, LuaPerRoute, lua_per_route};
use envoy_types::pb::envoy::r#type::matcher::v3::RegexMatchAndSubstitute;
use envoy_types::pb::google::protobuf::{Any, ListValue, Struct, Value, value::Kind};
use gateway_config::Config;
use gateway_model::{Api, Interceptor, Operation, PolicyAction};
use serde_json::json;

use super::names::{FILTER_LUA, cluster_name};
use super::util::{any, regex, set_header};

/// The Lua filter's named source with the interceptor contract and the method rewrite.
pub const LUA_SOURCE: &str = "mediation";
/// The interceptor library (Choreo Connect's contract for stock Envoy's Lua filter).
const LUA_LIBRARY: &str = include_str!("interceptor.lua");

/// The HCM's Lua filter: no default code (routes without mediation run no
/// Lua), the library as a named source that routes select. Its header edits
/// do not re-route; a dynamic endpoint clears the route cache itself.
pub fn lua_filter() -> Any {
    let mut sources = HashMap::new();
    sources.insert(
        LUA_SOURCE.to_string(),
        envoy_types::pb::envoy::config::core::v3::DataSource {
            specifier: Some(envoy_types::pb::envoy::config::core::v3::data_source::Specifier::InlineString(
                LUA_LIBRARY.to_string(),
            )),
            ..Default::default()
        },
    );
    any(&Lua { source_codes: sources, clear_route_cache: Some(super::util::bool_value(false)), ..Default::default() })
}

/// True when the operation needs a route of its own (its header edits,
/// rewrites or interceptors differ from its resource's other methods).
pub fn needs_own_route(o: &Operation) -> bool {
    let m = o.mediation();
    m.request_interceptor.is_some()
        || m.response_interceptor.is_some()
        || !m.response.is_empty()
        || m.request.iter().any(|a| {
            matches!(
                a,
                PolicyAction::SetHeader { .. }
                    | PolicyAction::RemoveHeader { .. }
                    | PolicyAction::RewritePath { .. }
                    | PolicyAction::RewriteMethod { .. }
            )
        })
}

/// True when the enforcer has something to do for the operation even if it
/// is open to anyone (ADD_QUERY, OPA, dropping the query on a path rewrite).
pub fn needs_enforcer(o: &Operation) -> bool {
    o.mediation().request.iter().any(|a| {
        matches!(
            a,
            PolicyAction::AddQuery { .. }
                | PolicyAction::Opa(_)
                | PolicyAction::RewritePath { include_query: false, .. }
        )
    })
}

/// True when an interceptor of the operation is sent the invocation context
/// (with the caller's `authenticationContext`).
pub fn sends_auth_context(o: &Operation) -> bool {
    let m = o.mediation();
    [&m.request_interceptor, &m.response_interceptor].into_iter().flatten().any(|i| i.includes.invocation_context)
}

/// The cluster of an interceptor service of the API on `vhost`.
pub fn interceptor_cluster_name(api: &Api, vhost: &str, flow: &str, i: &Interceptor) -> String {
    let prefix = if flow == "request" { "reqInterceptor" } else { "resInterceptor" };
    let id = xxhash_rust::xxh3::xxh3_64(format!("{}|{:?}", i.service.url, i.cluster_timeout_s).as_bytes()) as u32;
    format!("{}_{id:08x}", cluster_name(&api.organization, prefix, vhost, &api.name, &api.version))
}

/// The interceptors of an operation with their cluster names.
pub fn interceptors<'a>(api: &Api, vhost: &str, o: &'a Operation) -> Vec<(String, &'a Interceptor)> {
    let m = o.mediation();
    [("request", &m.request_interceptor), ("response", &m.response_interceptor)]
        .into_iter()
        .filter_map(|(flow, i)| i.as_deref().map(|i| (interceptor_cluster_name(api, vhost, flow, i), i)))
        .collect()
}

/// Facts about the route the Lua configuration needs.
pub struct RouteFacts<'a> {
    /// The API.
    pub api: &'a Api,
    /// The virtual host.
    pub vhost: &'a str,
    /// The resource's path template.
    pub template: &'a str,
    /// Every method of the resource, space-separated.
    pub methods: String,
    /// Production cluster ("" when none).
    pub prod: &'a str,
    /// Sandbox cluster ("" when none).
    pub sand: &'a str,
}

/// Applies the operation's route-level mediation to `route`: header edits,
/// the path rewrite (when `rewrite` is the endpoint's base path), and the
/// Lua configuration.
pub fn apply(r: &mut Route, o: &Operation, facts: &RouteFacts<'_>, endpoint_base: &str, pm_regex: &str, c: &Config) {
    let m = o.mediation();
    for a in &m.request {
        match a {
            PolicyAction::SetHeader { name, value } => r.request_headers_to_add.push(set_header(name, value)),
            PolicyAction::RemoveHeader { name } => r.request_headers_to_remove.push(name.to_ascii_lowercase()),
            PolicyAction::RewritePath { path, .. } => {
                if let Some(route::Action::Route(action)) = r.action.as_mut() {
                    rewrite_path(action, path, facts.template, endpoint_base, pm_regex);
                }
            }
            _ => {}
        }
    }
    for a in &m.response {
        match a {
            PolicyAction::SetHeader { name, value } => r.response_headers_to_add.push(set_header(name, value)),
            PolicyAction::RemoveHeader { name } => r.response_headers_to_remove.push(name.to_ascii_lowercase()),
            _ => {}
        }
    }
    let method = m.request.iter().find_map(|a| match a {
        PolicyAction::RewriteMethod { method } => Some(*method),
        _ => None,
    });
    if m.request_interceptor.is_none() && m.response_interceptor.is_none() && method.is_none() {
        return;
    }
    let api = facts.api;
    let mut cfg = serde_json::Map::new();
    let timeout_ms =
        |i: &Interceptor| u64::from(i.request_timeout_s.unwrap_or(c.router.cluster_timeout_in_seconds)) * 1000;
    for (flow, i, path) in [
        ("request", &m.request_interceptor, "/api/v1/handle-request"),
        ("response", &m.response_interceptor, "/api/v1/handle-response"),
    ] {
        if let Some(i) = i {
            let includes: serde_json::Map<String, serde_json::Value> =
                i.includes.names().into_iter().map(|n| (n.to_string(), json!(true))).collect();
            cfg.insert(
                flow.to_string(),
                json!({
                    "cluster": interceptor_cluster_name(api, facts.vhost, flow, i),
                    "authority": format!("{}:{}", i.service.host, i.service.port),
                    "path": path,
                    "timeoutMs": timeout_ms(i),
                    "includes": includes,
                }),
            );
        }
    }
    if m.request_interceptor.is_some() || m.response_interceptor.is_some() {
        cfg.insert(
            "context".into(),
            json!({
                "apiName": api.name, "apiVersion": api.version, "basePath": api.base_path,
                "pathTemplate": facts.template, "vhost": facts.vhost, "supportedMethods": facts.methods,
                "prodClusterName": facts.prod, "sandClusterName": facts.sand, "organizationId": api.organization,
            }),
        );
        let endpoints: serde_json::Map<String, serde_json::Value> = api
            .named_endpoints
            .keys()
            .map(|n| {
                let cluster =
                    cluster_name(&api.organization, &format!("{n}_xwso2cluster"), facts.vhost, &api.name, &api.version);
                (n.clone(), json!(cluster))
            })
            .collect();
        cfg.insert("dynamicEndpoints".into(), serde_json::Value::Object(endpoints));
    }
    if let Some(method) = method {
        cfg.insert("methodRewrite".into(), json!(method.as_str()));
    }
    let mut fm = HashMap::new();
    fm.insert(FILTER_LUA.to_string(), to_struct(&cfg));
    r.metadata = Some(Metadata { filter_metadata: fm, ..r.metadata.take().unwrap_or_default() });
    r.typed_per_filter_config.insert(
        FILTER_LUA.to_string(),
        any(&LuaPerRoute {
            r#override: Some(lua_per_route::Override::Name(LUA_SOURCE.to_string())),
            ..Default::default()
        }),
    );
}

/// REWRITE_RESOURCE_PATH: the matched path becomes the endpoint's base path
/// and `path`, `{uri.var.x}` standing for parameter `x` of the template.
fn rewrite_path(action: &mut RouteAction, path: &str, template: &str, endpoint_base: &str, pm_regex: &str) {
    let params = gateway_model::path_params(template);
    let mut out = format!("/{}", path.trim_matches('/'));
    for (i, p) in params.iter().enumerate() {
        out = out.replace(&format!("{{uri.var.{p}}}"), &format!("\\{}", i + 1));
    }
    action.prefix_rewrite.clear();
    action.regex_rewrite =
        Some(RegexMatchAndSubstitute { pattern: Some(regex(pm_regex)), substitution: format!("{endpoint_base}{out}") });
}

fn to_value(v: &serde_json::Value) -> Value {
    let kind = match v {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(*b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(s) => Kind::StringValue(s.clone()),
        serde_json::Value::Array(a) => Kind::ListValue(ListValue { values: a.iter().map(to_value).collect() }),
        serde_json::Value::Object(o) => Kind::StructValue(to_struct(o)),
    };
    Value { kind: Some(kind) }
}

fn to_struct(o: &serde_json::Map<String, serde_json::Value>) -> Struct {
    Struct { fields: o.iter().map(|(k, v)| (k.clone(), to_value(v))).collect() }
}
