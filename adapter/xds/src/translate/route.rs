//! Routes of one API on one vhost (ARCHITECTURE.md, "Envoy's cost per route").
//!
//! Per resource and base path (the API's, and its version-less form for
//! default versions) the API gets:
//! * for methods that go to the enforcer (secured ones; every method of a
//!   BLOCKED API; OPTIONS when the resource does not declare it): a route to
//!   the sandbox cluster taken only when the enforcer set
//!   `x-wso2-cluster-header` to it, then a route to the production cluster
//!   (or to the sandbox one when there is no production); both with ext_authz
//!   and the context extensions the enforcer needs;
//! * for methods with security disabled and no throttling tier: a route to
//!   the production cluster with no ext_authz configuration: the filter is
//!   off by default (listener.rs), so Envoy does not even create it (no
//!   enforcer hop; the cluster header is ignored). With a tier (the API's or the operation's,
//!   not Unlimited) they go through the enforcer, which counts them.
//!
//! OPTIONS, as in Choreo Connect: Envoy's CORS filter answers preflights from
//! allowed origins (it runs before ext_authz); every other OPTIONS of a
//! resource that does not declare OPTIONS reaches the enforcer, which answers
//! 204 with `Allow` and never lets it through. No OPTIONS route forwards
//! without the enforcer, so no preflight-shaped request reaches a backend
//! unchecked. A declared OPTIONS is an operation like any other.
//!
//! Paths match as in Choreo Connect: `{param}` is one segment, a trailing
//! `/*` is anything below, otherwise one optional trailing slash. Literal
//! parts are escaped (Choreo Connect leaves `.` unescaped).

use std::collections::HashMap;

use base64::Engine;
use envoy_types::pb::envoy::config::core::v3::RuntimeFractionalPercent;
use envoy_types::pb::envoy::config::core::v3::data_source;
use envoy_types::pb::envoy::config::route::v3::{
    Decorator, DirectResponseAction, HeaderMatcher, RetryPolicy, Route, RouteAction, RouteMatch, header_matcher,
    retry_policy, route, route_action, route_match,
};
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::CorsPolicy as PbCors;
use envoy_types::pb::envoy::extensions::filters::http::ext_authz::v3::{
    BufferSettings, CheckSettings, ExtAuthzPerRoute, ext_authz_per_route,
};
use envoy_types::pb::envoy::extensions::retry::priority::previous_priorities::v3::PreviousPrioritiesConfig;
use envoy_types::pb::envoy::r#type::matcher::v3::RegexMatchAndSubstitute;
use envoy_types::pb::envoy::r#type::v3::FractionalPercent;
use envoy_types::pb::google::protobuf::Any;
use gateway_config::Config;
use gateway_model::{Api, ApiCors, ApiType, EndpointCluster, EndpointKind, Method, Operation, Resource};

use super::cluster::{ClusterOut, cluster};
use super::names::{FILTER_CORS, FILTER_ENFORCER_MODULE, FILTER_EXT_AUTHZ, HEADER_CLUSTER, cluster_name};
use super::util::{any, bool_value, escape, millis, regex, secs, set_header, string_exact, string_regex, u32_value};

/// Where a route sorts inside its virtual host: more specific paths first.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SortKey {
    /// Per path segment: rank (literal 0, literal with parameter 1, parameter 2, wildcard 3) and text.
    segments: Vec<(u8, String)>,
    /// Sandbox routes (which also match a header) before the route they refine.
    variant: u8,
    /// Tie breaker.
    name: String,
}

impl SortKey {
    /// Key of a path template, e.g. `/pets/{id}/*`.
    pub fn of_path(path: &str, variant: u8, name: &str) -> SortKey {
        let segments = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| {
                let rank = if s == "*" {
                    3
                } else if s.starts_with('{') && s.ends_with('}') && s.matches('{').count() == 1 {
                    2
                } else if s.contains('{') {
                    1
                } else {
                    0
                };
                (rank, if rank == 0 { s.to_string() } else { String::new() })
            })
            .collect();
        SortKey { segments, variant, name: name.to_string() }
    }

    /// A key that sorts after every API route (system routes).
    pub fn last(name: &str) -> SortKey {
        SortKey { segments: vec![(u8::MAX, String::new())], variant: 0, name: name.to_string() }
    }
}

/// One route and where it goes.
#[derive(Debug, Clone)]
pub struct PlacedRoute {
    /// First path segment: selects the route configuration.
    pub scope: String,
    /// Virtual host.
    pub vhost: String,
    /// Order within the virtual host.
    pub key: SortKey,
    /// The route.
    pub route: Route,
}

/// Everything one API contributes on one vhost.
pub struct ApiTranslation {
    /// Clusters (and EDS assignments), one per distinct name.
    pub clusters: Vec<ClusterOut>,
    /// Routes with their scope.
    pub routes: Vec<PlacedRoute>,
}

/// The first segment of a base path (validated non-empty by the model).
pub fn scope_of(base_path: &str) -> String {
    base_path.trim_start_matches('/').split('/').next().unwrap_or("").to_string()
}

/// A path regex for a base path and a resource template.
struct PathRegex {
    /// The route match (RE2, anchored).
    matcher: String,
    /// Regex of `base + body` with parameter groups, no suffix.
    prefix: String,
    /// The resource body with `\N` in place of parameters (trailing `/*` removed).
    body_subst: String,
    /// Number of parameter groups.
    params: usize,
    wildcard: bool,
    /// The resource path as written, minus the query (for the substitution of
    /// non-wildcard paths, keeping a trailing slash as Choreo Connect does).
    template_subst: String,
}

fn path_regex(base: &str, template: &str) -> PathRegex {
    let template = template.split('?').next().unwrap_or("");
    let wildcard = template.ends_with("/*") || template == "*";
    let body = if wildcard {
        &template[..template.len() - if template == "*" { 1 } else { 2 }]
    } else {
        template.trim_end_matches('/')
    };
    let mut params = 0;
    let mut prefix = String::new();
    let mut body_subst = String::new();
    let convert = |text: &str, regex_out: &mut String, subst_out: Option<&mut String>, params: &mut usize| {
        let mut subst_buf = String::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            let Some(close_rel) = rest[open..].find('}') else { break };
            let close = open + close_rel;
            regex_out.push_str(&escape(&rest[..open]));
            subst_buf.push_str(&rest[..open]);
            regex_out.push_str("([^/]+)");
            *params += 1;
            subst_buf.push_str(&format!("\\{}", *params));
            rest = &rest[close + 1..];
        }
        regex_out.push_str(&escape(rest));
        subst_buf.push_str(rest);
        if let Some(s) = subst_out {
            s.push_str(&subst_buf);
        }
    };
    convert(base, &mut prefix, None, &mut params);
    let base_params = params;
    convert(body, &mut prefix, Some(&mut body_subst), &mut params);
    // Substitution of the whole template (trailing slash kept).
    let mut template_subst = String::new();
    {
        let mut p = base_params;
        let mut scratch = String::new();
        convert(if wildcard { body } else { template }, &mut scratch, Some(&mut template_subst), &mut p);
    }
    let matcher = if wildcard { format!("^{prefix}(/.*)?$") } else { format!("^{prefix}/?$") };
    PathRegex { matcher, prefix, body_subst, params, wildcard, template_subst }
}

/// The rewrite of a matched path to the endpoint's base path.
fn rewrite(p: &PathRegex, endpoint_base: &str) -> RegexMatchAndSubstitute {
    let (pattern, substitution) = if p.wildcard {
        let head = format!("{endpoint_base}{}", p.body_subst);
        if head.is_empty() {
            // Nothing before the wildcard: keep the rest, and never send an empty path.
            (format!("^{}/?(.*)$", p.prefix), format!("/\\{}", p.params + 1))
        } else {
            (p.matcher.clone(), format!("{head}\\{}", p.params + 1))
        }
    } else {
        let s = format!("{endpoint_base}{}", p.template_subst);
        (p.matcher.clone(), if s.is_empty() { "/".to_string() } else { s })
    };
    RegexMatchAndSubstitute { pattern: Some(regex(pattern)), substitution }
}

/// Resolved clusters of a resource.
struct Target<'a> {
    name: String,
    ec: &'a EndpointCluster,
}

fn retry_policy(ec: &EndpointCluster, c: &Config) -> Option<RetryPolicy> {
    let failover = ec.kind == EndpointKind::Failover && ec.endpoints.len() > 1;
    if ec.retry.is_none() && !failover {
        return None;
    }
    let mut on = Vec::new();
    let mut count = 0;
    let mut codes = Vec::new();
    if let Some(r) = &ec.retry {
        on.push("retriable-status-codes");
        count = r.count;
        codes = r.status_codes.clone();
    }
    let mut priority = None;
    if failover {
        // A failed connection is retried on the next priority at once,
        // without waiting for health checks to mark the endpoint down.
        on.extend(["connect-failure", "refused-stream", "reset"]);
        count = count.max(ec.endpoints.len() as u32 - 1);
        priority = Some(retry_policy::RetryPriority {
            name: "envoy.retry_priorities.previous_priorities".to_string(),
            config_type: Some(retry_policy::retry_priority::ConfigType::TypedConfig(any(&PreviousPrioritiesConfig {
                update_frequency: 1,
            }))),
        });
    }
    Some(RetryPolicy {
        retry_on: on.join(","),
        num_retries: Some(u32_value(count)),
        retriable_status_codes: codes,
        retry_back_off: Some(retry_policy::RetryBackOff {
            base_interval: Some(millis(c.router.upstream.retry.base_interval_in_millis)),
            ..Default::default()
        }),
        retry_priority: priority,
        ..Default::default()
    })
}

fn cors_proto(
    origins: &[String],
    methods: &[String],
    headers: &[String],
    expose: &[String],
    credentials: bool,
) -> PbCors {
    let origin_matchers = origins
        .iter()
        .map(|o| {
            if o == "*" {
                string_regex(".*")
            } else if o.contains('*') {
                string_regex(o.split('*').map(escape).collect::<Vec<_>>().join(".*"))
            } else {
                string_exact(o.as_str())
            }
        })
        .collect();
    PbCors {
        allow_origin_string_match: origin_matchers,
        allow_methods: methods.join(", "),
        allow_headers: headers.join(", "),
        expose_headers: expose.join(", "),
        allow_credentials: Some(bool_value(credentials)),
        // Preflights from origins that are not allowed go on to the enforcer,
        // which answers 204 with `Allow` and no CORS headers (Choreo Connect).
        forward_not_matching_preflights: Some(bool_value(true)),
        ..Default::default()
    }
}

/// The `[router.cors]` policy, set once per virtual host (not per route:
/// every route of an API without `x-wso2-cors` inherits it).
pub fn global_cors(c: &Config) -> Option<Any> {
    let g = &c.router.cors;
    g.enabled.then(|| {
        any(&cors_proto(&g.allow_origins, &g.allow_methods, &g.allow_headers, &g.expose_headers, g.allow_credentials))
    })
}

/// An API's per-route CORS policy, when it differs from the virtual host's
/// (`[router.cors]`).
fn api_cors(api: &Api, c: &Config) -> Option<Any> {
    match &api.cors {
        ApiCors::Global => None,
        ApiCors::Api(p) => Some(any(&cors_proto(
            &p.allow_origins,
            &p.allow_methods,
            &p.allow_headers,
            &p.expose_headers,
            p.allow_credentials,
        ))),
        ApiCors::None if c.router.cors.enabled => {
            // Switch the inherited virtual-host policy off for this API.
            let off = PbCors {
                filter_enabled: Some(RuntimeFractionalPercent {
                    default_value: Some(FractionalPercent { numerator: 0, denominator: 0 }),
                    runtime_key: String::new(),
                }),
                ..Default::default()
            };
            Some(any(&off))
        }
        ApiCors::None => None,
    }
}

/// Translates an API deployed on `vhost`.
pub fn translate_api(api: &Api, vhost: &str, c: &Config) -> ApiTranslation {
    let org = api.organization.as_str();
    let mut clusters: Vec<ClusterOut> = Vec::new();
    let add_cluster = |name: &str, ec: &EndpointCluster, clusters: &mut Vec<ClusterOut>| {
        if !clusters.iter().any(|x| x.cluster.name == name) {
            clusters.push(cluster(name, ec, api, c));
        }
    };
    let name_for = |prefix: &str, ec: &EndpointCluster, suffix: &str| -> String {
        match &ec.reference {
            Some(r) => cluster_name(org, &format!("{r}_xwso2cluster"), vhost, &api.name, &api.version),
            None => format!("{}{suffix}", cluster_name(org, prefix, vhost, &api.name, &api.version)),
        }
    };
    for (n, ec) in &api.named_endpoints {
        let name = cluster_name(org, &format!("{n}_xwso2cluster"), vhost, &api.name, &api.version);
        add_cluster(&name, ec, &mut clusters);
    }
    let api_prod = api.production.as_ref().map(|ec| Target { name: name_for("clusterProd", ec, ""), ec });
    let api_sand = api.sandbox.as_ref().map(|ec| Target { name: name_for("clusterSand", ec, ""), ec });
    for t in api_prod.iter().chain(api_sand.iter()) {
        add_cluster(&t.name, t.ec, &mut clusters);
    }

    let cors = api_cors(api, c);
    let mut base_paths = vec![api.base_path.clone()];
    if let Some(v) = &api.versionless_base_path {
        base_paths.push(v.clone());
    }
    let mut routes = Vec::new();
    for resource in &api.resources {
        if resource.operations.is_empty() {
            continue;
        }
        let suffix = format!("_{:08x}0", xxhash_rust::xxh3::xxh3_64(resource.path.as_bytes()) as u32);
        let prod = match &resource.production {
            Some(ec) => Some(Target { name: name_for("clusterProd", ec, &suffix), ec }),
            None => api_prod.as_ref().map(|t| Target { name: t.name.clone(), ec: t.ec }),
        };
        let sand = match &resource.sandbox {
            Some(ec) => Some(Target { name: name_for("clusterSand", ec, &suffix), ec }),
            None => api_sand.as_ref().map(|t| Target { name: t.name.clone(), ec: t.ec }),
        };
        for t in prod.iter().chain(sand.iter()) {
            add_cluster(&t.name, t.ec, &mut clusters);
        }
        for o in &resource.operations {
            for (name, i) in super::mediation::interceptors(api, vhost, o) {
                if !clusters.iter().any(|x| x.cluster.name == name) {
                    clusters.push(super::cluster::interceptor_cluster(&name, i, api, c));
                }
            }
        }
        for base in &base_paths {
            routes.extend(resource_routes(api, resource, base, vhost, prod.as_ref(), sand.as_ref(), &cors, c));
        }
    }
    ApiTranslation { clusters, routes }
}

/// How a resource's path is matched and rewritten. Envoy holds every route
/// in memory and compiles each regex: the forms below use as few regexes as
/// the template allows (measured: a regex route with a regex rewrite costs
/// about 8 KB in Envoy, a prefix route about 2.3 KB).
enum PathMatch {
    /// No parameters, no wildcard: the path with an optional trailing slash,
    /// and a prefix rewrite (which, on a regex route, replaces the whole path).
    Literal { matcher: String, template_subst: String },
    /// A trailing `/*` and no parameters: Envoy's path-separated prefix match
    /// (the path itself or anything below it), and a prefix rewrite.
    Prefix { prefix: String, body: String },
    /// Parameters: a regex match and a regex rewrite.
    Regex(PathRegex),
}

impl PathMatch {
    fn new(base: &str, template: &str) -> PathMatch {
        let wildcard = template.ends_with("/*") || template == "*";
        if template.contains('{') {
            return PathMatch::Regex(path_regex(base, template));
        }
        if wildcard {
            let body = template.strip_suffix("/*").or_else(|| template.strip_suffix('*')).unwrap_or("");
            let body = body.trim_end_matches('/').to_string();
            PathMatch::Prefix { prefix: format!("{base}{body}"), body }
        } else {
            let trimmed = template.trim_end_matches('/');
            PathMatch::Literal {
                matcher: format!("^{}/?$", escape(&format!("{base}{trimmed}"))),
                template_subst: template.to_string(),
            }
        }
    }

    /// The route match for this path.
    fn route_match(&self, headers: Vec<HeaderMatcher>) -> RouteMatch {
        let path_specifier = match self {
            PathMatch::Literal { matcher, .. } => route_match::PathSpecifier::SafeRegex(regex(matcher.clone())),
            PathMatch::Prefix { prefix, .. } => route_match::PathSpecifier::PathSeparatedPrefix(prefix.clone()),
            PathMatch::Regex(r) => route_match::PathSpecifier::SafeRegex(regex(r.matcher.clone())),
        };
        RouteMatch { path_specifier: Some(path_specifier), headers, ..Default::default() }
    }

    /// Sets the upstream path rewrite on `action`.
    fn set_rewrite(&self, action: &mut RouteAction, endpoint_base: &str) {
        match self {
            PathMatch::Literal { template_subst, .. } => {
                let s = format!("{endpoint_base}{template_subst}");
                action.prefix_rewrite = if s.is_empty() { "/".to_string() } else { s };
            }
            PathMatch::Prefix { prefix, body } => {
                let head = format!("{endpoint_base}{body}");
                if head.is_empty() {
                    // Nothing goes before the rest of the path, and it must never be empty.
                    action.regex_rewrite = Some(RegexMatchAndSubstitute {
                        pattern: Some(regex(format!("^{}/?(.*)$", escape(prefix)))),
                        substitution: "/\\1".to_string(),
                    });
                } else {
                    action.prefix_rewrite = head;
                }
            }
            PathMatch::Regex(r) => action.regex_rewrite = Some(rewrite(r, endpoint_base)),
        }
    }
}

impl PathMatch {
    /// Sets the upstream path to `mapped` under the endpoint's base path (a
    /// WebSocket topic's `x-uri-mapping`), each `{x}` filled from the
    /// template's parameter `{x}`.
    fn set_mapped_rewrite(&self, action: &mut RouteAction, endpoint_base: &str, mapped: &str, template: &str) {
        let PathMatch::Regex(r) = self else {
            action.prefix_rewrite = format!("{endpoint_base}{mapped}");
            return;
        };
        let names = gateway_model::path_params(template);
        // The base path's parameters come first in the match.
        let first = r.params.saturating_sub(names.len());
        let mut substitution = endpoint_base.to_string();
        let mut rest = mapped;
        while let Some(open) = rest.find('{') {
            let Some(close) = rest[open..].find('}').map(|c| c + open) else { break };
            substitution.push_str(&rest[..open]);
            let var = &rest[open + 1..close];
            if let Some(i) = names.iter().position(|n| *n == var) {
                substitution.push_str(&format!("\\{}", first + i + 1));
            }
            rest = &rest[close + 1..];
        }
        substitution.push_str(rest);
        action.regex_rewrite = Some(RegexMatchAndSubstitute { pattern: Some(regex(r.matcher.clone())), substitution });
    }
}

/// The request body a GraphQL API's routes send to the enforcer: the
/// configured size, at least 1 MiB (queries can be long); a larger body is
/// refused by the router (413).
fn graphql_body(c: &Config) -> BufferSettings {
    let p = &c.router.payload_passing_to_enforcer;
    BufferSettings {
        max_request_bytes: p.max_request_bytes.max(1 << 20),
        allow_partial_message: false,
        pack_as_bytes: true,
    }
}

fn method_matcher(methods: &[Method]) -> HeaderMatcher {
    let matcher = match methods {
        [one] => string_exact(one.as_str()),
        many => string_regex(format!("^({})$", many.iter().map(|m| m.as_str()).collect::<Vec<_>>().join("|"))),
    };
    HeaderMatcher {
        name: ":method".to_string(),
        header_match_specifier: Some(header_matcher::HeaderMatchSpecifier::StringMatch(matcher)),
        ..Default::default()
    }
}

#[allow(clippy::too_many_arguments)]
fn resource_routes(
    api: &Api,
    resource: &Resource,
    base: &str,
    vhost: &str,
    prod: Option<&Target<'_>>,
    sand: Option<&Target<'_>>,
    cors: &Option<Any>,
    c: &Config,
) -> Vec<PlacedRoute> {
    let template = resource.path.split('?').next().unwrap_or("");
    let pm = PathMatch::new(base, template);
    let no_endpoints = EndpointCluster::plain(Vec::new(), EndpointKind::LoadBalance);
    let mock_target = (api.mocked && prod.is_none() && sand.is_none()).then(|| Target {
        name: cluster_name(&api.organization, "clusterProd", vhost, &api.name, &api.version),
        ec: &no_endpoints,
    });
    let mock_sand = mock_target.as_ref().map(|t| Target {
        name: cluster_name(&api.organization, "clusterSand", vhost, &api.name, &api.version),
        ec: t.ec,
    });
    // A mocked API without endpoints answers both key types (the enforcer
    // picks these names; the routes answer before any cluster is used).
    let prod = prod.or(mock_target.as_ref());
    let sand = sand.or(mock_sand.as_ref());
    let scope = scope_of(base);
    let full_template = format!("{base}{template}");
    let all_methods: Vec<Method> = resource.operations.iter().map(|o| o.method).collect();
    // A BLOCKED API answers 503/700700 everywhere, also where security is
    // disabled: the enforcer says so, so every method goes there.
    let blocked = api.lifecycle_status == "BLOCKED";
    // An operation open to anyone still goes to the enforcer when a
    // throttling tier counts it (the API's, else its own; not Unlimited).
    let counted = |o: &&Operation| {
        api.tier.as_ref().or(o.tier.as_ref()).is_some_and(|t| !t.trim().eq_ignore_ascii_case("unlimited"))
    };
    // A mocked API is answered by the enforcer, and policies the enforcer
    // carries out need it even where nobody is authenticated.
    let skips_enforcer = |o: &&Operation| {
        o.disable_security && !blocked && !counted(o) && !api.mocked && !super::mediation::needs_enforcer(o)
    };
    // Operations whose route-level mediation (header edits, rewrites,
    // interceptors) differs get a route each; the others share one.
    let shared: Vec<&Operation> =
        resource.operations.iter().filter(|o| !super::mediation::needs_own_route(o)).collect();
    let secured: Vec<Method> = shared.iter().filter(|o| !skips_enforcer(o)).map(|o| o.method).collect();
    let open: Vec<Method> = shared.iter().filter(|o| skips_enforcer(o)).map(|o| o.method).collect();
    let method_list = |ms: &[Method]| ms.iter().map(|m| m.as_str()).collect::<Vec<_>>();
    let cors_override = cors;
    let context_extensions = |med: Option<&Operation>| {
        let mut ext = HashMap::new();
        // The caller's credential goes into ext_authz's metadata only for an
        // interceptor that is sent the invocation context.
        if med.is_some_and(super::mediation::sends_auth_context) {
            ext.insert("authContext".to_string(), "true".to_string());
        }
        ext.insert("path".to_string(), template.to_string());
        ext.insert("vHost".to_string(), vhost.to_string());
        ext.insert("basePath".to_string(), api.base_path.clone());
        ext.insert("method".to_string(), method_list(&all_methods).join(" "));
        ext.insert("version".to_string(), api.version.clone());
        ext.insert("name".to_string(), api.name.clone());
        ext.insert("prodClusterName".to_string(), prod.map(|t| t.name.clone()).unwrap_or_default());
        ext.insert("sandClusterName".to_string(), sand.map(|t| t.name.clone()).unwrap_or_default());
        ext
    };
    // The request body goes to the enforcer for a GraphQL API (the
    // query) and, with `[router.payloadPassingToEnforcer]`, for an API
    // that does not opt out; no other route waits for its body.
    let body = if api.graphql.is_some() {
        Some(graphql_body(c))
    } else if c.router.payload_passing_to_enforcer.pass_request_payload && api.pass_request_payload.unwrap_or(true) {
        let p = &c.router.payload_passing_to_enforcer;
        Some(BufferSettings {
            max_request_bytes: p.max_request_bytes,
            allow_partial_message: p.allow_partial_message,
            pack_as_bytes: p.pack_as_bytes,
        })
    } else {
        None
    };
    // A secured route's check settings turn the (default off) ext_authz
    // filter on; an open route has none, so Envoy never creates the filter.
    let per_filter = |secured: bool, med: Option<&Operation>| {
        let mut m = HashMap::new();
        if secured && c.router.enforcer_in_module() {
            m.insert(
                FILTER_ENFORCER_MODULE.to_string(),
                any(&super::module::per_route(&context_extensions(med), body.as_ref())),
            );
        } else if secured {
            m.insert(
                FILTER_EXT_AUTHZ.to_string(),
                any(&ExtAuthzPerRoute {
                    r#override: Some(ext_authz_per_route::Override::CheckSettings(CheckSettings {
                        context_extensions: context_extensions(med),
                        // The listener's settings are the router's; a
                        // GraphQL API's are its own (the query is in the body).
                        disable_request_body_buffering: body.is_none(),
                        with_request_body: api.graphql.as_ref().and(body),
                        ..Default::default()
                    })),
                }),
            );
        }
        if let Some(cors) = cors_override {
            m.insert(FILTER_CORS.to_string(), cors.clone());
        }
        m
    };

    let mut out = Vec::new();
    let mut place = |mut route: Route, headers: Vec<HeaderMatcher>, variant: u8| {
        let key = SortKey::of_path(&full_template, variant, &route.name);
        route.r#match = Some(pm.route_match(headers));
        out.push(PlacedRoute { scope: scope.clone(), vhost: vhost.to_string(), key, route });
    };

    let facts = super::mediation::RouteFacts {
        api,
        vhost,
        template,
        methods: method_list(&all_methods).join(" "),
        prod: prod.map(|t| t.name.as_str()).unwrap_or(""),
        sand: sand.map(|t| t.name.as_str()).unwrap_or(""),
    };
    // The whole-path regex a REWRITE_RESOURCE_PATH rewrites with: built only
    // for resources with route-level mediation (every route pays otherwise).
    let full_regex = if resource.operations.iter().any(super::mediation::needs_own_route) {
        path_regex(base, template).matcher
    } else {
        String::new()
    };
    let forward = |target: &Target<'_>,
                   methods: &[Method],
                   secured: bool,
                   sandbox_match: bool,
                   med: Option<&Operation>|
     -> (Route, Vec<HeaderMatcher>) {
        let mut headers = vec![method_matcher(methods)];
        if sandbox_match {
            headers.push(HeaderMatcher {
                name: HEADER_CLUSTER.to_string(),
                header_match_specifier: Some(header_matcher::HeaderMatchSpecifier::StringMatch(string_exact(
                    target.name.clone(),
                ))),
                ..Default::default()
            });
        }
        let ec = target.ec;
        let timeout = match ec.timeout_ms {
            Some(ms) => millis(ms),
            None => secs(c.router.upstream.timeouts.route_timeout_in_seconds),
        };
        let mut action = RouteAction {
            cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(target.name.clone())),
            host_rewrite_specifier: Some(route_action::HostRewriteSpecifier::AutoHostRewrite(bool_value(true))),
            timeout: Some(timeout),
            idle_timeout: Some(secs(c.router.upstream.timeouts.route_idle_timeout_in_seconds)),
            retry_policy: retry_policy(ec, c),
            ..Default::default()
        };
        match &resource.upstream_path {
            Some(up) => pm.set_mapped_rewrite(&mut action, ec.base_path(), up, template),
            None => pm.set_rewrite(&mut action, ec.base_path()),
        }
        if api.api_type == ApiType::Ws || api.graphql.is_some() {
            // The upgrade is checked like any request. A WebSocket API's
            // connection then lives as long as it is used (the route's idle
            // timeout), not the route timeout of a request. A GraphQL API's
            // upgrades reach the enforcer only to be refused with the reason
            // (no GraphQL over WebSocket), where Envoy would answer a bare 403.
            action.upgrade_configs =
                vec![route_action::UpgradeConfig { upgrade_type: "websocket".to_string(), ..Default::default() }];
            if api.api_type == ApiType::Ws {
                action.timeout = Some(secs(0));
            }
        }
        let mut request_headers_to_add = Vec::new();
        if let Some(auth) = &ec.basic_auth {
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", auth.username, auth.password));
            request_headers_to_add.push(set_header("authorization", &format!("Basic {token}")));
        }
        let action = if api.mocked {
            // The enforcer answers every request of a mocked API; this
            // is never reached (fail closed if it were).
            route::Action::DirectResponse(DirectResponseAction {
                status: 500,
                body: Some(envoy_types::pb::envoy::config::core::v3::DataSource {
                    specifier: Some(data_source::Specifier::InlineString(MOCK_FALLBACK.to_string())),
                    ..Default::default()
                }),
                ..Default::default()
            })
        } else {
            route::Action::Route(action)
        };
        let mut route = Route {
            name: format!(
                "{}:{} {} {}{}",
                api.name,
                api.version,
                method_list(methods).join(","),
                full_template,
                if sandbox_match { " (sandbox)" } else { "" }
            ),
            action: Some(action),
            decorator: Some(Decorator { operation: format!("{vhost}:{full_template}"), ..Default::default() }),
            typed_per_filter_config: per_filter(secured, med),
            request_headers_to_add,
            ..Default::default()
        };
        if let Some(o) = med {
            super::mediation::apply(&mut route, o, &facts, ec.base_path(), &full_regex, c);
        }
        (route, headers)
    };

    // OPTIONS on a resource that does not declare it goes to the enforcer
    // (204 with `Allow`), after the CORS filter answered real preflights
    // from allowed origins. Never to the backend.
    let mut to_enforcer = secured.clone();
    if !all_methods.contains(&Method::Options) {
        to_enforcer.push(Method::Options);
    }
    let main = prod.or(sand);
    if let Some(main) = main {
        let mut group = |secured: &[Method], to_enforcer: &[Method], open: &[Method], med: Option<&Operation>| {
            if let (Some(s), Some(p), false) = (sand, prod, secured.is_empty())
                && s.name != p.name
            {
                let (r, h) = forward(s, to_enforcer, true, true, med);
                place(r, h, 0);
            }
            if !to_enforcer.is_empty() {
                let (r, h) = forward(main, to_enforcer, true, false, med);
                place(r, h, 1);
            }
            if !open.is_empty() {
                let (r, h) = forward(main, open, false, false, med);
                place(r, h, 1);
            }
            // An interceptor's dynamic endpoint: the Lua filter sets the
            // cluster header to an x-wso2-endpoints list and re-routes here.
            if let Some(o) = med.filter(|o| o.mediation().request_interceptor.is_some()) {
                let methods = [o.method];
                for (n, ec) in &api.named_endpoints {
                    let name =
                        cluster_name(&api.organization, &format!("{n}_xwso2cluster"), vhost, &api.name, &api.version);
                    let t = Target { name, ec };
                    let (mut r, h) = forward(&t, &methods, !secured.is_empty(), true, med);
                    r.name = r.name.replace(" (sandbox)", &format!(" (dynamic endpoint {n})"));
                    place(r, h, 0);
                }
            }
        };
        group(&secured, &to_enforcer, &open, None);
        for o in resource.operations.iter().filter(|o| super::mediation::needs_own_route(o)) {
            let m = [o.method];
            if skips_enforcer(&o) {
                group(&[], &[], &m, Some(o));
            } else {
                group(&m, &m, &[], Some(o));
            }
        }
    }
    out
}

/// Body of the route of a mocked API's operation, should the enforcer ever
/// let one through.
const MOCK_FALLBACK: &str = r#"{"code":"102507","message":"Upstream not configured for the resource","description":"A mocked API is answered by the enforcer"}"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn re(base: &str, t: &str) -> (String, String, String) {
        let p = path_regex(base, t);
        let r = rewrite(&p, "/api");
        let pattern = r.pattern.map(|m| m.regex).unwrap_or_default();
        (p.matcher, pattern, r.substitution)
    }

    #[test]
    fn path_templates_become_anchored_escaped_regexes() {
        assert_eq!(re("/petstore/1.0.0", "/pet/{petId}").0, r"^/petstore/1\.0\.0/pet/([^/]+)/?$");
        assert_eq!(re("/bp", "/pet/*").0, r"^/bp/pet(/.*)?$");
        assert_eq!(re("/bp", "/*").0, r"^/bp(/.*)?$");
        assert_eq!(re("/bp", "/").0, r"^/bp/?$");
        assert_eq!(re("/bp", "/pets/").0, r"^/bp/pets/?$");
        assert_eq!(re("/bp", "/pets?limit=10").0, r"^/bp/pets/?$");
        assert_eq!(re("/bp", "/file/{name}.json").0, r"^/bp/file/([^/]+)\.json/?$");
        assert_eq!(re("/bp", "/pet/{id}/tags/*").0, r"^/bp/pet/([^/]+)/tags(/.*)?$");
    }

    #[test]
    fn rewrites_put_the_endpoint_base_path_in_front() {
        assert_eq!(re("/petstore/1.0.0", "/pet/{petId}").2, r"/api/pet/\1");
        assert_eq!(re("/bp", "/pet/{id}/tags/*").2, r"/api/pet/\1/tags\2");
        assert_eq!(re("/bp", "/pets/").2, "/api/pets/");
        assert_eq!(re("/bp", "/").2, "/api/");
        assert_eq!(re("/bp", "/*").2, r"/api\1");
        // No endpoint base path and a wildcard: never an empty upstream path.
        let p = path_regex("/bp", "/*");
        let r = rewrite(&p, "");
        assert_eq!(r.pattern.map(|m| m.regex).unwrap_or_default(), r"^/bp/?(.*)$");
        assert_eq!(r.substitution, r"/\1");
        let r = rewrite(&path_regex("/bp", "/items"), "");
        assert_eq!(r.substitution, "/items");
    }

    #[test]
    fn specific_paths_sort_before_general_ones() {
        let mut paths = vec!["/a/*", "/a/{x}", "/a/b", "/a", "/a/{x}.json", "/a/b/*", "/a/{x}/c"];
        paths.sort_by_key(|p| SortKey::of_path(p, 0, ""));
        assert_eq!(paths, vec!["/a", "/a/b", "/a/b/*", "/a/{x}.json", "/a/{x}", "/a/{x}/c", "/a/*"]);
    }

    #[test]
    fn the_scope_is_the_first_segment() {
        assert_eq!(scope_of("/petstore/v1"), "petstore");
        assert_eq!(scope_of("/x"), "x");
    }
}
