//! OpenAPI 2 and 3 definitions with Choreo Connect's vendor extensions.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::endpoint::{EndpointsValue, parse_endpoint_object, parse_endpoint_url, parse_endpoints_extension};
use crate::mediation::{Interceptor, MaybeInterceptor, Mediation, interceptors_at, mock_config, resolve_interceptors};
use crate::model::{
    ApiCors, CorsPolicy, Endpoint, EndpointCluster, Method, Operation, Scheme, SecurityRequirement, SecurityScheme,
};
use crate::problem::Ctx;
use crate::value::{field, get_ci, kind, opt_bool, opt_object, opt_string, opt_string_list};

/// OpenAPI major version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OasVersion {
    V2,
    V3,
}

/// Root-level vendor extensions.
#[derive(Default)]
pub(crate) struct RootExtensions {
    pub base_path: Option<String>,
    pub named_endpoints: Vec<(String, EndpointCluster)>,
    pub production: Option<EndpointsValue>,
    pub sandbox: Option<EndpointsValue>,
    pub cors: Option<ApiCors>,
    pub disable_security: bool,
    pub tier: Option<String>,
    pub auth_header: Option<String>,
    pub http2: Option<bool>,
    pub request_interceptor: Option<Box<Interceptor>>,
    pub response_interceptor: Option<Box<Interceptor>>,
    /// `x-wso2-pass-request-payload-to-enforcer`
    pub pass_payload: Option<bool>,
}

/// A path item of the definition.
pub(crate) struct RawResource {
    pub path: String,
    pub field: String,
    pub operations: Vec<Operation>,
    pub production: Option<EndpointsValue>,
    pub sandbox: Option<EndpointsValue>,
    /// OAS3 path-level `servers`.
    pub servers: Vec<Endpoint>,
    /// AsyncAPI `x-uri-mapping`: the backend path of a WebSocket topic.
    pub upstream_path: Option<String>,
}

/// What the adapter reads from a definition.
pub(crate) struct Definition {
    pub version: OasVersion,
    /// OAS2 `basePath` (set even when absent, as in Choreo Connect), or the
    /// path of the last absolute OAS3 server.
    pub base_path: Option<String>,
    /// Endpoints from OAS2 `host` or OAS3 `servers` (AsyncAPI: `servers.production`).
    pub servers: Vec<Endpoint>,
    /// AsyncAPI `servers.sandbox`.
    pub sandbox_servers: Vec<Endpoint>,
    pub ext: RootExtensions,
    pub security_schemes: BTreeMap<String, SecurityScheme>,
    pub security: Vec<SecurityRequirement>,
    pub resources: Vec<RawResource>,
}

const OAS2_METHODS: &[&str] = &["get", "post", "put", "delete", "head", "patch", "options"];
const OAS3_METHODS: &[&str] = &["get", "post", "put", "delete", "head", "patch", "options", "trace", "connect"];

/// Parses a definition. `prototyped` APIs ignore `host`/`servers`; `mocked`
/// ones keep each operation's response examples.
pub(crate) fn parse_definition(
    ctx: &mut Ctx<'_>,
    doc: &Value,
    prototyped: bool,
    mocked: bool,
    scheme: Scheme,
) -> Option<Definition> {
    let Some(root) = doc.as_object() else {
        ctx.err("", format!("expected an OpenAPI document (an object), found {}", kind(doc)));
        return None;
    };
    let version = if root.contains_key("swagger") {
        OasVersion::V2
    } else if root.contains_key("openapi") {
        OasVersion::V3
    } else {
        ctx.err("", "not an OpenAPI 2 or 3 document: it has neither `swagger` nor `openapi`");
        return None;
    };
    let before = ctx.problems.len();
    let mut def = Definition {
        version,
        base_path: None,
        servers: Vec::new(),
        sandbox_servers: Vec::new(),
        ext: RootExtensions::default(),
        security_schemes: BTreeMap::new(),
        security: Vec::new(),
        resources: Vec::new(),
    };

    match version {
        OasVersion::V2 => {
            let base = opt_string(ctx, root.get("basePath"), "basePath").unwrap_or_default();
            def.base_path = Some(base.clone());
            let host = opt_string(ctx, root.get("host"), "host").unwrap_or_default();
            if !host.is_empty() && !prototyped {
                let schemes = opt_string_list(ctx, root.get("schemes"), "schemes").unwrap_or_default();
                let s = if schemes.iter().any(|s| s.eq_ignore_ascii_case("https")) { "https" } else { "http" };
                match parse_endpoint_url(&format!("{s}://{host}{base}"), scheme) {
                    Ok(e) => def.servers.push(e),
                    Err(why) => ctx.err("host", why),
                }
            }
            if let Some(defs) = opt_object(ctx, root.get("securityDefinitions"), "securityDefinitions") {
                def.security_schemes = parse_schemes(ctx, defs, "securityDefinitions");
            }
        }
        OasVersion::V3 => {
            if !prototyped {
                let (servers, base) = parse_servers(ctx, root.get("servers"), "servers", scheme);
                def.servers = servers;
                def.base_path = base;
            }
            let comp = opt_object(ctx, root.get("components"), "components");
            if let Some(schemes) =
                comp.and_then(|c| opt_object(ctx, c.get("securitySchemes"), "components.securitySchemes"))
            {
                def.security_schemes = parse_schemes(ctx, schemes, "components.securitySchemes");
            }
        }
    }
    def.security = parse_requirements(ctx, root.get("security"), "security").unwrap_or_default();
    def.ext = parse_root_extensions(ctx, root, scheme);

    let root_disable = opt_bool(ctx, root.get("x-wso2-disable-security"), "x-wso2-disable-security");
    let methods = if version == OasVersion::V2 { OAS2_METHODS } else { OAS3_METHODS };
    match root.get("paths") {
        None | Some(Value::Null) => {}
        Some(Value::Object(paths)) => {
            for (path, item) in paths {
                if !path.starts_with('/') {
                    continue;
                }
                let item_path = format!("paths.{path}");
                let Some(item) = opt_object(ctx, Some(item), &item_path) else { continue };
                let root_interceptors = (&def.ext.request_interceptor, &def.ext.response_interceptor);
                let level = Level { root_disable, root_interceptors, mocked, scheme, version };
                if let Some(r) = parse_path_item(ctx, path, item, &item_path, methods, &level) {
                    def.resources.push(r);
                }
            }
        }
        Some(other) => ctx.err("paths", format!("expected an object, found {}", kind(other))),
    }
    if ctx.problems.len() > before {
        return None;
    }
    Some(def)
}

/// OAS3 `servers`: absolute URLs become endpoints; the last one's path is the base path.
fn parse_servers(ctx: &mut Ctx<'_>, v: Option<&Value>, path: &str, scheme: Scheme) -> (Vec<Endpoint>, Option<String>) {
    let mut out = Vec::new();
    let mut base = None;
    let items = match v {
        None | Some(Value::Null) => return (out, base),
        Some(Value::Array(items)) => items,
        Some(other) => {
            ctx.err(path, format!("expected a list of servers, found {}", kind(other)));
            return (out, base);
        }
    };
    for (i, s) in items.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let Some(obj) = opt_object(ctx, Some(s), &p) else { continue };
        let url = opt_string(ctx, obj.get("url"), &field(&p, "url")).unwrap_or_default();
        let url = url.trim();
        // Relative server URLs, and URLs with unresolved variables, are not
        // endpoints (Choreo Connect skips them too).
        if url.is_empty() || url.starts_with('/') || url.contains('{') {
            continue;
        }
        if let Ok(e) = parse_endpoint_url(url, scheme) {
            base = Some(e.base_path.clone());
            out.push(e);
        }
    }
    (out, base)
}

pub(crate) fn parse_schemes(
    ctx: &mut Ctx<'_>,
    defs: &Map<String, Value>,
    path: &str,
) -> BTreeMap<String, SecurityScheme> {
    let mut out = BTreeMap::new();
    for (name, v) in defs {
        let p = field(path, name);
        let Some(obj) = opt_object(ctx, Some(v), &p) else { continue };
        if obj.contains_key("$ref") {
            ctx.err(&p, "`$ref` security schemes are not supported; define the scheme inline");
            continue;
        }
        let kind = opt_string(ctx, obj.get("type"), &field(&p, "type")).unwrap_or_default();
        let name_field = opt_string(ctx, obj.get("name"), &field(&p, "name")).unwrap_or_default();
        let location = opt_string(ctx, obj.get("in"), &field(&p, "in")).unwrap_or_default();
        out.insert(name.clone(), SecurityScheme { kind, name: name_field, location });
    }
    out
}

/// A `security` list: `[{scheme: [scopes]}]`.
fn parse_requirements(ctx: &mut Ctx<'_>, v: Option<&Value>, path: &str) -> Option<Vec<SecurityRequirement>> {
    match v {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => {
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let p = format!("{path}[{i}]");
                let Some(obj) = opt_object(ctx, Some(item), &p) else { continue };
                let mut req = SecurityRequirement::new();
                for (name, scopes) in obj {
                    let scopes = opt_string_list(ctx, Some(scopes), &field(&p, name)).unwrap_or_default();
                    req.insert(name.clone(), scopes);
                }
                out.push(req);
            }
            Some(out)
        }
        Some(other) => {
            ctx.err(path, format!("expected a list of security requirements, found {}", kind(other)));
            None
        }
    }
}

pub(crate) fn tier(ctx: &mut Ctx<'_>, obj: &Map<String, Value>, path: &str) -> Option<String> {
    let key = if obj.contains_key("x-wso2-throttling-tier") { "x-wso2-throttling-tier" } else { "x-throttling-tier" };
    let at = field(path, key);
    let t = opt_string(ctx, obj.get(key), &at).filter(|t| !t.is_empty())?;
    crate::known_tier(ctx, &at, t)
}

pub(crate) fn auth_type_none(ctx: &mut Ctx<'_>, obj: &Map<String, Value>, path: &str) -> bool {
    opt_string(ctx, obj.get("x-auth-type"), &field(path, "x-auth-type")).as_deref() == Some("None")
}

pub(crate) fn parse_root_extensions(ctx: &mut Ctx<'_>, root: &Map<String, Value>, scheme: Scheme) -> RootExtensions {
    let mut ext = RootExtensions {
        base_path: opt_string(ctx, root.get("x-wso2-basePath"), "x-wso2-basePath").filter(|b| !b.is_empty()),
        ..Default::default()
    };
    match root.get("x-wso2-endpoints") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let p = format!("x-wso2-endpoints[{i}]");
                let Some(obj) = opt_object(ctx, Some(item), &p) else { continue };
                for (name, v) in obj {
                    let np = field(&p, name);
                    let Some(o) = opt_object(ctx, Some(v), &np) else { continue };
                    if let Some(mut c) = parse_endpoint_object(ctx, o, &np, scheme) {
                        c.reference = Some(name.clone());
                        if ext.named_endpoints.iter().any(|(n, _)| n == name) {
                            ctx.err(&np, format!("endpoint list {name:?} is defined twice"));
                        }
                        ext.named_endpoints.push((name.clone(), c));
                    }
                }
            }
        }
        Some(other) => {
            ctx.err("x-wso2-endpoints", format!("expected a list of named endpoint lists, found {}", kind(other)))
        }
    }
    for (key, slot) in
        [("x-wso2-production-endpoints", &mut ext.production), ("x-wso2-sandbox-endpoints", &mut ext.sandbox)]
    {
        if let Some(v) = root.get(key).filter(|v| !v.is_null()) {
            *slot = parse_endpoints_extension(ctx, v, key, scheme, true);
        }
    }
    ext.cors = parse_cors(ctx, root.get("x-wso2-cors"));
    let disable = opt_bool(ctx, root.get("x-wso2-disable-security"), "x-wso2-disable-security");
    ext.disable_security = disable == Some(true) || auth_type_none(ctx, root, "");
    ext.tier = tier(ctx, root, "");
    ext.auth_header = opt_string(ctx, root.get("x-wso2-auth-header"), "x-wso2-auth-header").filter(|h| !h.is_empty());
    ext.http2 = opt_bool(ctx, root.get("x-wso2-http2-backend-enabled"), "x-wso2-http2-backend-enabled");
    (ext.request_interceptor, ext.response_interceptor) = interceptors_at(ctx, root, "");
    ext.pass_payload =
        opt_bool(ctx, root.get("x-wso2-pass-request-payload-to-enforcer"), "x-wso2-pass-request-payload-to-enforcer");
    ext
}

/// `x-wso2-cors`: absent or disabled → the global policy.
fn parse_cors(ctx: &mut Ctx<'_>, v: Option<&Value>) -> Option<ApiCors> {
    parse_cors_object(ctx, v, "x-wso2-cors")
}

/// A CORS object (`x-wso2-cors`, or a GraphQL API's api.yaml
/// `corsConfiguration`) at `path`.
pub(crate) fn parse_cors_object(ctx: &mut Ctx<'_>, v: Option<&Value>, path: &str) -> Option<ApiCors> {
    let obj = opt_object(ctx, v, path)?;
    let enabled = opt_bool(ctx, get_ci(obj, "corsConfigurationEnabled"), &field(path, "corsConfigurationEnabled"));
    if enabled == Some(false) {
        return Some(ApiCors::Global);
    }
    let list =
        |ctx: &mut Ctx<'_>, key: &str| opt_string_list(ctx, get_ci(obj, key), &field(path, key)).unwrap_or_default();
    let policy = CorsPolicy {
        allow_origins: list(ctx, "accessControlAllowOrigins"),
        allow_methods: list(ctx, "accessControlAllowMethods"),
        allow_headers: list(ctx, "accessControlAllowHeaders"),
        expose_headers: list(ctx, "accessControlExposeHeaders"),
        allow_credentials: opt_bool(
            ctx,
            get_ci(obj, "accessControlAllowCredentials"),
            &field(path, "accessControlAllowCredentials"),
        )
        .unwrap_or(false),
    };
    for (i, o) in policy.allow_origins.iter().enumerate() {
        if o.trim().is_empty() {
            ctx.err(format!("{path}.accessControlAllowOrigins[{i}]"), "empty origin");
        }
    }
    Some(ApiCors::Api(policy))
}

/// What a path item inherits from the root of the definition.
struct Level<'a> {
    root_disable: Option<bool>,
    root_interceptors: (&'a MaybeInterceptor, &'a MaybeInterceptor),
    mocked: bool,
    scheme: Scheme,
    version: OasVersion,
}

fn parse_path_item(
    ctx: &mut Ctx<'_>,
    path: &str,
    item: &Map<String, Value>,
    item_path: &str,
    methods: &[&str],
    level: &Level<'_>,
) -> Option<RawResource> {
    let Level { root_disable, scheme, version, .. } = *level;
    // Choreo Connect's precedence: operation > path item > root, each level
    // only a default for the ones below it; `x-auth-type: None` on the
    // operation also opens it. A root `x-auth-type: None` does not reach the
    // operations (Choreo Connect keeps it as an API-level flag only).
    let path_disable = opt_bool(ctx, item.get("x-wso2-disable-security"), &field(item_path, "x-wso2-disable-security"));
    let inherited = path_disable.or(root_disable);
    let path_interceptors = interceptors_at(ctx, item, item_path);
    let mut operations = Vec::new();
    for (key, v) in item {
        let lower = key.to_ascii_lowercase();
        if !methods.contains(&lower.as_str()) {
            continue;
        }
        let Some(method) = Method::from_key(&lower) else { continue };
        let op_path = field(item_path, key);
        let Some(op) = opt_object(ctx, Some(v), &op_path) else { continue };
        let own = opt_bool(ctx, op.get("x-wso2-disable-security"), &field(&op_path, "x-wso2-disable-security"));
        let disable = own.or(inherited) == Some(true) || auth_type_none(ctx, op, &op_path);
        if operations.iter().any(|o: &Operation| o.method == method) {
            ctx.err(&op_path, format!("method {method} is declared twice"));
            continue;
        }
        let mut mediation = Mediation::default();
        let own_interceptors = interceptors_at(ctx, op, &op_path);
        resolve_interceptors(
            &mut mediation,
            [
                (&own_interceptors.0, &own_interceptors.1),
                (&path_interceptors.0, &path_interceptors.1),
                level.root_interceptors,
            ],
        );
        if level.mocked {
            mediation.mock = Some(mock_config(ctx, op, &op_path));
        }
        operations.push(Operation {
            method,
            disable_security: disable,
            tier: tier(ctx, op, &op_path),
            security: parse_requirements(ctx, op.get("security"), &field(&op_path, "security")),
            mediation: mediation.boxed(),
        });
    }
    let mut res = RawResource {
        path: path.to_string(),
        field: item_path.to_string(),
        operations,
        production: None,
        sandbox: None,
        servers: Vec::new(),
        upstream_path: None,
    };
    for (key, slot) in
        [("x-wso2-production-endpoints", &mut res.production), ("x-wso2-sandbox-endpoints", &mut res.sandbox)]
    {
        if let Some(v) = item.get(key).filter(|v| !v.is_null()) {
            *slot = parse_endpoints_extension(ctx, v, &field(item_path, key), scheme, true);
        }
    }
    if version == OasVersion::V3 {
        let (servers, _) = parse_servers(ctx, item.get("servers"), &field(item_path, "servers"), scheme);
        res.servers = servers;
    }
    Some(res)
}
