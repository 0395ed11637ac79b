//! From project files to an [`Api`]: Choreo Connect's precedence rules
//! (README.md, "API projects"), endpoint overrides from the environment, certificates,
//! deployments and validation.

use std::collections::BTreeMap;

use serde_json::Value;
use sha1::{Digest, Sha1};

use crate::apiyaml::{ApiYaml, YamlEndpoint, parse_api_yaml};
use crate::endpoint::{EndpointsValue, parse_endpoint_url};
use crate::files::ProjectFiles;
use crate::model::{
    Api, ApiCors, ApiType, ClientCertificate, DEFAULT_ORGANIZATION, Deployment, Endpoint, EndpointCluster,
    EndpointKind, Method, Operation, PolicyAction, Project, Resource, RetryConfig, Scheme, SecurityRequirement,
    SecurityScheme,
};
use crate::openapi::{Definition, OasVersion, RawResource, parse_definition};
use crate::problem::{Ctx, Problem, Problems};
use crate::value::{field, get_ci, kind, opt_object, opt_string, parse_document};

/// Router settings and environment that parsing depends on.
#[derive(Debug, Clone)]
pub struct ParseOptions {
    /// `[router.upstream.retry] maxRetryCount`
    pub max_retry_count: u32,
    /// `[router.upstream.retry] statusCodes`
    pub default_retry_status_codes: Vec<u32>,
    /// `[router.upstream.timeouts] maxRouteTimeoutInSeconds`, in milliseconds.
    pub max_route_timeout_ms: u32,
    /// `[[adapter.vhostMapping]]`: environment → default vhost.
    pub vhost_mapping: Vec<(String, String)>,
    /// Environment variables named `api_*` (endpoint overrides, README.md).
    pub env: BTreeMap<String, String>,
    /// Advanced throttling policies deployed in the catalogue, which API and
    /// resource tiers may name besides the built-in and `<n>Per<Unit>` names.
    pub known_tiers: crate::policy::KnownTiers,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions {
            max_retry_count: 5,
            default_retry_status_codes: vec![504],
            max_route_timeout_ms: 60_000,
            vhost_mapping: vec![("Default".into(), "localhost".into())],
            env: BTreeMap::new(),
            known_tiers: crate::policy::KnownTiers::default(),
        }
    }
}

const API_YAML_NAMES: &[&str] = &["api.yaml", "api.yml", "api.json"];
const ASYNCAPI_NAMES: &[&str] = &["Definitions/asyncapi.yaml", "Definitions/asyncapi.yml", "Definitions/asyncapi.json"];
const DEFINITION_NAMES: &[&str] = &[
    "Definitions/swagger.yaml",
    "Definitions/swagger.yml",
    "Definitions/swagger.json",
    "Definitions/openapi.yaml",
    "Definitions/openapi.yml",
    "Definitions/openapi.json",
];

/// Parses and validates a project. Every problem found is returned, not just the first.
pub fn parse_project(files: &ProjectFiles, opts: &ParseOptions) -> Result<Project, Problems> {
    let mut problems = Vec::new();
    let project = assemble(files, opts, &mut problems);
    match project {
        Some(p) if problems.is_empty() => Ok(p),
        _ => {
            if problems.is_empty() {
                problems.push(Problem::new("", "", "the project could not be read"));
            }
            Err(Problems(problems))
        }
    }
}

fn read_doc(files: &ProjectFiles, name: &str, problems: &mut Vec<Problem>) -> Option<Value> {
    let bytes = files.get(name)?;
    match parse_document(bytes) {
        Ok(v) => Some(v),
        Err(why) => {
            problems.push(Problem::new(name, "", why));
            None
        }
    }
}

fn assemble(files: &ProjectFiles, opts: &ParseOptions, problems: &mut Vec<Problem>) -> Option<Project> {
    let Some(yaml_name) = API_YAML_NAMES.iter().find(|n| files.get(n).is_some()) else {
        problems.push(Problem::new("", "", "no api.yaml or api.json at the project root"));
        return None;
    };
    let yaml_doc = read_doc(files, yaml_name, problems)?;
    let y = parse_api_yaml(&mut Ctx::new(yaml_name, problems).with_tiers(&opts.known_tiers), &yaml_doc)?;

    let (def_name, def) = match y.api_type {
        ApiType::Http | ApiType::Soap => {
            let Some(def_name) = DEFINITION_NAMES.iter().find(|n| files.get(n).is_some()) else {
                problems.push(Problem::new(
                    "Definitions/swagger.yaml",
                    "",
                    format!(
                        "missing: an {} API needs an OpenAPI definition (Definitions/swagger.yaml or .json)",
                        y.api_type
                    ),
                ));
                return None;
            };
            let def_doc = read_doc(files, def_name, problems)?;
            let def = parse_definition(
                &mut Ctx::new(def_name, problems).with_tiers(&opts.known_tiers),
                &def_doc,
                y.prototyped,
                y.mocked,
                Scheme::Http,
            )?;
            (*def_name, def)
        }
        ApiType::Ws => {
            let Some(def_name) = ASYNCAPI_NAMES.iter().find(|n| files.get(n).is_some()) else {
                problems.push(Problem::new(
                    "Definitions/asyncapi.yaml",
                    "",
                    "missing: a WebSocket API needs an AsyncAPI 2 definition (Definitions/asyncapi.yaml or .json)",
                ));
                return None;
            };
            let def_doc = read_doc(files, def_name, problems)?;
            let def = crate::asyncapi::parse_asyncapi(
                &mut Ctx::new(def_name, problems).with_tiers(&opts.known_tiers),
                &def_doc,
                y.prototyped,
            )?;
            (*def_name, def)
        }
        ApiType::Graphql => (*yaml_name, graphql_definition(yaml_name, &yaml_doc, problems)),
    };
    let graphql = match y.api_type {
        ApiType::Graphql => {
            Some(crate::graphql::read_graphql(files, yaml_name, &yaml_doc, problems, &opts.known_tiers)?)
        }
        _ => None,
    };

    let (endpoint_certificates, default_certificate) = read_certificates(files, problems);
    let deployments = read_deployments(files, opts, problems);

    let client_certificates = read_client_certificates(files, problems);
    let mut api = build_api(&y, yaml_name, &def, def_name, opts, problems, endpoint_certificates, default_certificate)?;
    if let Some(g) = graphql {
        api.resources = vec![graphql_resource()];
        api.graphql = Some(g);
    }
    api.client_certificates = client_certificates;
    api.interceptor_certificates = read_interceptor_certificates(files, problems);
    apply_operation_policies(files, yaml_name, &yaml_doc, &mut api, problems);
    let (deployments, skipped_environments) = deployments?;
    Some(Project { api, deployments, skipped_environments })
}

/// The SHA-1 of `name:version`, hex: Choreo Connect's id for APIs without a UUID
/// and the key of endpoint overrides.
pub fn name_version_hash(name: &str, version: &str) -> String {
    hex::encode(Sha1::digest(format!("{name}:{version}").as_bytes()))
}

fn yaml_cluster(ctx: &mut Ctx<'_>, eps: &[YamlEndpoint], failover: bool) -> Option<EndpointCluster> {
    if eps.is_empty() {
        return None;
    }
    let mut endpoints = Vec::new();
    for e in eps {
        match parse_endpoint_url(&e.url, Scheme::Http) {
            Ok(ep) => endpoints.push(ep),
            Err(why) => ctx.err(&e.path, why),
        }
    }
    if endpoints.is_empty() {
        return None;
    }
    Some(EndpointCluster::plain(endpoints, if failover { EndpointKind::Failover } else { EndpointKind::LoadBalance }))
}

fn servers_cluster(servers: &[Endpoint]) -> EndpointCluster {
    EndpointCluster::plain(servers.to_vec(), EndpointKind::LoadBalance)
}

/// Resolves an extension value against the named lists.
fn resolve(
    ctx: &mut Ctx<'_>,
    v: &Option<EndpointsValue>,
    named: &BTreeMap<String, EndpointCluster>,
    path: &str,
) -> Option<EndpointCluster> {
    match v {
        None => None,
        Some(EndpointsValue::Inline(c)) => Some(c.clone()),
        Some(EndpointsValue::Reference(name)) => match named.get(name) {
            Some(c) => Some(c.clone()),
            None => {
                ctx.err(path, format!("refers to #/x-wso2-endpoints/{name}, which is not defined in x-wso2-endpoints"));
                None
            }
        },
    }
}

#[allow(clippy::too_many_arguments)]
fn build_api(
    y: &ApiYaml,
    yaml_name: &str,
    def: &Definition,
    def_name: &str,
    opts: &ParseOptions,
    problems: &mut Vec<Problem>,
    endpoint_certificates: BTreeMap<String, String>,
    default_certificate: Option<String>,
) -> Option<Api> {
    let before = problems.len();
    // 1. api.yaml
    let mut base_path = if y.context.contains("{version}") {
        y.context.replace("{version}", &y.version)
    } else {
        format!("{}/{}", y.context.trim_end_matches('/'), y.version)
    };
    let (mut production, mut sandbox) = {
        let mut ctx = Ctx::new(yaml_name, problems);
        (
            yaml_cluster(&mut ctx, &y.production, y.production_failover),
            yaml_cluster(&mut ctx, &y.sandbox, y.sandbox_failover),
        )
    };

    // 2. The definition: OAS2 basePath (always) and host; OAS3 servers.
    if def.version == OasVersion::V2 {
        base_path = def.base_path.clone().unwrap_or_default();
    } else if let Some(b) = &def.base_path {
        base_path = b.clone();
    }
    if !def.servers.is_empty() {
        production = Some(servers_cluster(&def.servers));
        // An AsyncAPI definition names its sandbox server apart.
        if y.api_type != ApiType::Ws {
            sandbox = None;
        }
    }
    if !def.sandbox_servers.is_empty() {
        sandbox = Some(servers_cluster(&def.sandbox_servers));
    }

    // 3. Vendor extensions.
    let mut ctx = Ctx::new(def_name, problems);
    if let Some(b) = &def.ext.base_path {
        base_path = b.clone();
    }
    let named: BTreeMap<String, EndpointCluster> = def.ext.named_endpoints.iter().cloned().collect();
    let ext_prod = resolve(&mut ctx, &def.ext.production, &named, "x-wso2-production-endpoints");
    let ext_sand = resolve(&mut ctx, &def.ext.sandbox, &named, "x-wso2-sandbox-endpoints");
    if ext_prod.is_some() {
        production = ext_prod;
    } else if def.ext.sandbox.is_some() {
        // Only sandbox endpoints declared in the definition: the API has no production endpoints.
        production = None;
    }
    if ext_sand.is_some() {
        sandbox = ext_sand;
    }
    let http2 = def.ext.http2.unwrap_or(false);
    let mut named = named;
    for c in production.iter_mut().chain(sandbox.iter_mut()).chain(named.values_mut()) {
        c.http2 = c.http2 || http2;
    }

    // 4. api.yaml fills what the definition left open.
    for (cluster, eps, security) in
        [(&mut production, &y.production, &y.production_security), (&mut sandbox, &y.sandbox, &y.sandbox_security)]
    {
        if let Some(c) = cluster {
            if let Some(first) = eps.first() {
                if c.timeout_ms.is_none() {
                    c.timeout_ms = first.action_duration;
                }
                if c.retry.is_none()
                    && let Some(count) = first.retry_count
                {
                    c.retry = Some(RetryConfig { count, status_codes: opts.default_retry_status_codes.clone() });
                }
            }
            if c.basic_auth.is_none() {
                c.basic_auth = security.clone();
            }
        }
    }

    // 5. Endpoint overrides from the environment (README.md, "Running the components by hand").
    apply_env_overrides(&mut ctx, y, opts, &mut production, &mut sandbox);

    // 6. Resources (exactly as many as the definition has: a deployed API
    // keeps this vector, and doubling growth left up to half of it unused,
    // about 1 KB per API of 5 resources; heaptrack, ARCHITECTURE.md).
    let mut resources = Vec::with_capacity(def.resources.len());
    for r in &def.resources {
        resources.push(build_resource(&mut ctx, r, &named));
    }

    // 7. Security.
    // Choreo's operations[].throttlingLimit, where the definition names no tier for the operation.
    for r in &mut resources {
        for op in &mut r.operations {
            if op.tier.is_none()
                && let Some((_, _, tier)) =
                    y.operation_limits.iter().find(|(t, v, _)| *t == r.path && v == op.method.as_str())
            {
                op.tier = Some(tier.clone());
            }
        }
    }
    let (security_schemes, security, mutual_ssl, application_security) = sanitize_security(y, def, &mut resources);

    // 8. Validation and clamps.
    if base_path.is_empty() {
        ctx.err(
            "",
            "empty base path: give the API a context in api.yaml, `basePath` (OpenAPI 2), an absolute `servers` URL (OpenAPI 3) or x-wso2-basePath",
        );
    } else if !valid_base_path(&base_path) {
        ctx.err(
            if def.ext.base_path.is_some() { "x-wso2-basePath" } else { "" },
            format!("invalid base path {base_path:?}: it must start with / and contain only letters, digits and ~/_.-"),
        );
    } else if base_path.trim_matches('/').is_empty() {
        ctx.err(
            if def.ext.base_path.is_some() { "x-wso2-basePath" } else { "" },
            "the base path \"/\" is not supported: an API needs at least one path segment of its own",
        );
    }
    let base_path = if base_path.len() > 1 { base_path.trim_end_matches('/').to_string() } else { base_path };
    if production.is_none() && sandbox.is_none() && !y.mocked {
        let mut yctx = ctx.for_file(yaml_name);
        yctx.err(
            "data.endpointConfig",
            "no endpoints: give production or sandbox endpoints in api.yaml, the definition's servers or x-wso2-production-endpoints",
        );
    }
    for (what, c) in
        [("x-wso2-production-endpoints", production.as_mut()), ("x-wso2-sandbox-endpoints", sandbox.as_mut())]
    {
        if let Some(c) = c {
            validate_cluster(&mut ctx, c, what, opts);
        }
    }
    for (name, c) in named.iter_mut() {
        validate_cluster(&mut ctx, c, &format!("x-wso2-endpoints.{name}"), opts);
    }
    for (r, raw) in resources.iter_mut().zip(&def.resources) {
        for (key, c) in
            [("x-wso2-production-endpoints", r.production.as_mut()), ("x-wso2-sandbox-endpoints", r.sandbox.as_mut())]
        {
            if let Some(c) = c {
                validate_cluster(&mut ctx, c, &field(&raw.field, key), opts);
            }
        }
        if r.path.contains("{}") {
            ctx.err(&raw.field, "empty path parameter `{}`");
        }
    }

    let versionless_base_path = if y.is_default_version {
        let suffix = format!("/{}", y.version);
        match base_path.strip_suffix(&suffix) {
            Some(rest) if !rest.is_empty() => Some(rest.to_string()),
            _ => {
                ctx.for_file(yaml_name).err(
                    "data.isDefaultVersion",
                    format!(
                        "the base path {base_path:?} does not end with /{}, so it has no version-less form",
                        y.version
                    ),
                );
                None
            }
        }
    } else {
        None
    };

    if problems.len() > before {
        return None;
    }
    Some(Api {
        id: y.id.clone().unwrap_or_else(|| name_version_hash(&y.name, &y.version)),
        name: y.name.clone(),
        version: y.version.clone(),
        organization: y.organization.clone().unwrap_or_else(|| DEFAULT_ORGANIZATION.to_string()),
        api_type: y.api_type,
        base_path,
        is_default_version: y.is_default_version,
        versionless_base_path,
        lifecycle_status: y.lifecycle_status.clone(),
        tier: def.ext.tier.clone().or_else(|| y.throttling_policy.clone()).or_else(|| y.throttling_limit.clone()),
        auth_header: def.ext.auth_header.clone().or_else(|| y.authorization_header.clone()),
        disable_security: def.ext.disable_security,
        security_schemes,
        security,
        mutual_ssl,
        application_security,
        cors: def.ext.cors.clone().unwrap_or(ApiCors::Global),
        production: production.map(Box::new),
        sandbox: sandbox.map(Box::new),
        named_endpoints: named,
        resources,
        endpoint_certificates,
        default_certificate,
        client_certificates: Vec::new(),
        mocked: y.mocked,
        pass_request_payload: def.ext.pass_payload,
        interceptor_certificates: None,
        graphql: None,
    })
}

fn build_resource(ctx: &mut Ctx<'_>, r: &RawResource, named: &BTreeMap<String, EndpointCluster>) -> Resource {
    let mut production = resolve(ctx, &r.production, named, &field(&r.field, "x-wso2-production-endpoints"));
    if production.is_none() && !r.servers.is_empty() {
        production = Some(servers_cluster(&r.servers));
    }
    let sandbox = resolve(ctx, &r.sandbox, named, &field(&r.field, "x-wso2-sandbox-endpoints"));
    Resource {
        path: r.path.clone(),
        operations: r.operations.clone(),
        production: production.map(Box::new),
        sandbox: sandbox.map(Box::new),
        upstream_path: r.upstream_path.clone(),
    }
}

/// A GraphQL API has no OpenAPI definition: api.yaml gives its endpoints,
/// security schemes and CORS policy (`corsConfiguration`), and the enforcer
/// always gets the request body.
fn graphql_definition(yaml_name: &str, yaml_doc: &Value, problems: &mut Vec<Problem>) -> Definition {
    let mut ext = crate::openapi::RootExtensions { pass_payload: Some(true), ..Default::default() };
    let data = yaml_doc.as_object().and_then(|o| get_ci(o, "data")).and_then(Value::as_object);
    if let Some(c) = data.and_then(|d| get_ci(d, "corsConfiguration")).filter(|c| !c.is_null()) {
        let mut ctx = Ctx::new(yaml_name, problems);
        ext.cors = crate::openapi::parse_cors_object(&mut ctx, Some(c), "data.corsConfiguration");
    }
    Definition {
        version: OasVersion::V3,
        base_path: None,
        servers: Vec::new(),
        sandbox_servers: Vec::new(),
        ext,
        // JWTs work unless api.yaml's securityScheme says otherwise.
        security_schemes: [(
            "default".to_string(),
            SecurityScheme { kind: "oauth2".into(), name: String::new(), location: String::new() },
        )]
        .into_iter()
        .collect(),
        security: Vec::new(),
        resources: Vec::new(),
    }
}

/// The one route of a GraphQL API: its base path, queries by POST (JSON) or
/// GET (`?query=`); the enforcer resolves the operations from the body.
fn graphql_resource() -> Resource {
    let op = |method| Operation { method, disable_security: false, tier: None, security: None, mediation: None };
    // Path "": the base path itself, rewritten to the endpoint's base path.
    Resource {
        path: String::new(),
        operations: vec![op(Method::Post), op(Method::Get)],
        production: None,
        sandbox: None,
        upstream_path: None,
    }
}

/// `^[/][a-zA-Z0-9~/_.-]*$`
fn valid_base_path(p: &str) -> bool {
    p.starts_with('/') && p.chars().all(|c| c.is_ascii_alphanumeric() || "~/_.-".contains(c))
}

fn validate_cluster(ctx: &mut Ctx<'_>, c: &mut EndpointCluster, path: &str, opts: &ParseOptions) {
    if let Some(first) = c.endpoints.first() {
        let bp = first.base_path.clone();
        for e in &c.endpoints[1..] {
            if e.base_path != bp {
                ctx.err(
                    path,
                    format!(
                        "endpoints of one list must share a base path: {:?} has {:?} but {:?} has {:?}",
                        e.url, e.base_path, first.url, bp
                    ),
                );
            }
        }
    }
    if let Some(r) = &mut c.retry {
        r.count = r.count.min(opts.max_retry_count);
        r.status_codes.retain(|s| (401..=598).contains(s));
        if r.status_codes.is_empty() {
            r.status_codes = opts.default_retry_status_codes.clone();
        }
    }
    if let Some(t) = &mut c.timeout_ms {
        *t = (*t).min(opts.max_route_timeout_ms);
    }
}

/// `api_<sha1(name:version)>_{prod|sand}_endpoint_<i>` and `..._basic_{username|password}`.
fn apply_env_overrides(
    ctx: &mut Ctx<'_>,
    y: &ApiYaml,
    opts: &ParseOptions,
    production: &mut Option<EndpointCluster>,
    sandbox: &mut Option<EndpointCluster>,
) {
    let hash = name_version_hash(&y.name, &y.version);
    for (kind_key, cluster) in [("prod", production), ("sand", sandbox)] {
        let mut endpoints = Vec::new();
        for i in 0.. {
            let var = format!("api_{hash}_{kind_key}_endpoint_{i}");
            let Some(value) = opts.env.get(&var).map(|v| unquote(v)).filter(|v| !v.is_empty()) else { break };
            match parse_endpoint_url(&value, Scheme::Http) {
                Ok(e) => endpoints.push(e),
                Err(why) => ctx.err(format!("(environment variable {var})"), why),
            }
        }
        if !endpoints.is_empty() {
            match cluster {
                Some(c) => {
                    c.endpoints = endpoints;
                    c.kind = EndpointKind::LoadBalance;
                    c.reference = None;
                }
                None => *cluster = Some(servers_cluster(&endpoints)),
            }
        }
        if let Some(c) = cluster
            && let Some(auth) = &mut c.basic_auth
        {
            if let Some(u) = opts.env.get(&format!("api_{hash}_{kind_key}_basic_username")) {
                auth.username = unquote(u);
            }
            if let Some(p) = opts.env.get(&format!("api_{hash}_{kind_key}_basic_password")) {
                auth.password = unquote(p);
            }
        }
    }
}

/// Go's `strconv.Unquote` for the simple cases: `"..."`, `` `...` `` and `'x'`.
fn unquote(v: &str) -> String {
    let v = v.trim();
    for q in ['"', '`', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return v[1..v.len() - 1].to_string();
        }
    }
    v.to_string()
}

type Security = (BTreeMap<String, SecurityScheme>, Vec<SecurityRequirement>, String, bool);

/// api.yaml `securityScheme` rewrites the definition's security, as in Choreo Connect.
fn sanitize_security(y: &ApiYaml, def: &Definition, resources: &mut [Resource]) -> Security {
    // A WebSocket API's security is its AsyncAPI definition's alone.
    if y.api_type == ApiType::Ws {
        return (def.security_schemes.clone(), def.security.clone(), "not_defined".to_string(), false);
    }
    let has = |s: &str| y.security_scheme.iter().any(|x| x.eq_ignore_ascii_case(s));
    let api_key = has("api_key");
    let oauth2 = has("oauth2");
    let mut schemes = if api_key || oauth2 { BTreeMap::new() } else { def.security_schemes.clone() };
    let mut security = def.security.clone();
    let api_key_reqs: Vec<SecurityRequirement> = ["api_key_header", "api_key_query"]
        .iter()
        .map(|n| [(n.to_string(), Vec::new())].into_iter().collect())
        .collect();
    if oauth2 {
        // `oauth2` means "JWTs work here": the definition's `default` scheme,
        // or one made up when the definition has none.
        let d = def.security_schemes.get("default").cloned().unwrap_or_else(|| SecurityScheme {
            kind: "oauth2".into(),
            name: String::new(),
            location: String::new(),
        });
        schemes.insert("default".into(), d);
    }
    if api_key {
        schemes.insert(
            "api_key_header".into(),
            SecurityScheme { kind: "apiKey".into(), name: "apikey".into(), location: "header".into() },
        );
        schemes.insert(
            "api_key_query".into(),
            SecurityScheme { kind: "apiKey".into(), name: "apikey".into(), location: "query".into() },
        );
    }
    let known = |req: &SecurityRequirement| req.keys().all(|k| schemes.contains_key(k));
    security.retain(known);
    if oauth2 && !security.iter().any(|r| r.contains_key("default")) {
        security.insert(0, [("default".to_string(), Vec::new())].into_iter().collect());
    }
    if api_key {
        security.extend(api_key_reqs.iter().cloned());
    }
    for r in resources.iter_mut() {
        for op in &mut r.operations {
            if let Some(reqs) = &mut op.security {
                reqs.retain(known);
                if api_key && oauth2 {
                    reqs.extend(api_key_reqs.iter().cloned());
                }
            }
        }
    }
    let mutual_ssl = if has("mutualssl") && has("mutualssl_mandatory") {
        "mandatory"
    } else if has("mutualssl") {
        "optional"
    } else {
        "not_defined"
    };
    (schemes, security, mutual_ssl.to_string(), has("oauth_basic_auth_api_key_mandatory"))
}

/// `Endpoint-certificates/`: certificates by endpoint URL, and the others as a default bundle.
/// api.yaml `operations[].operationPolicies` onto the operations they name
/// (adapter/model/src/operation_policy.rs). A `CALL_INTERCEPTOR_SERVICE`
/// policy replaces the interceptor the definition's extensions gave.
fn apply_operation_policies(
    files: &ProjectFiles,
    yaml_name: &str,
    yaml_doc: &Value,
    api: &mut Api,
    problems: &mut Vec<Problem>,
) {
    let Some(data) = yaml_doc.as_object().and_then(|o| get_ci(o, "data")).and_then(Value::as_object) else {
        return;
    };
    let mut ctx = Ctx::new(yaml_name, problems);
    let catalogue = crate::operation_policy::read_catalogue(files, &mut ctx);
    let found = crate::operation_policy::operation_policies(
        &mut ctx,
        data,
        &catalogue,
        files,
        &api.resources,
        &api.api_type.to_string(),
    );
    for (target, method, policies) in found {
        let Some(resource) = api.resources.iter_mut().find(|r| r.path == target) else { continue };
        let params = path_params(&resource.path);
        let Some(op) = resource.operations.iter_mut().find(|o| o.method == method) else { continue };
        for a in &policies.request {
            if let PolicyAction::RewritePath { path, .. } = a {
                for var in uri_vars(path) {
                    if !params.contains(&var) {
                        ctx.err(
                            "data.operations",
                            format!(
                                "{method} {target}: invalid path param {var:?} in rewrite path {path:?} \
                                 (the resource's parameters: {params:?})"
                            ),
                        );
                    }
                }
            }
        }
        let interceptor = |list: &[PolicyAction]| {
            list.iter().find_map(|a| match a {
                PolicyAction::CallInterceptor(i) => Some(i.clone()),
                _ => None,
            })
        };
        let mut m = op.mediation.take().map(|b| *b).unwrap_or_default();
        if let Some(i) = interceptor(&policies.request) {
            m.request_interceptor = Some(Box::new(i));
        }
        if let Some(i) = interceptor(&policies.response) {
            m.response_interceptor = Some(Box::new(i));
        }
        let keep = |a: &PolicyAction| !matches!(a, PolicyAction::CallInterceptor(_));
        m.request = policies.request.into_iter().filter(keep).collect();
        m.response = policies.response.into_iter().filter(keep).collect();
        op.mediation = m.boxed();
    }
}

/// The parameter names of a path template, in order (`/a/{x}/b/{y}` → x, y).
pub fn path_params(template: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else { break };
        out.push(&rest[open + 1..open + close]);
        rest = &rest[open + close + 1..];
    }
    out
}

/// The `{uri.var.<name>}` names of a rewrite path.
pub fn uri_vars(path: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = path;
    while let Some(at) = rest.find("{uri.var.") {
        let after = &rest[at + "{uri.var.".len()..];
        let Some(close) = after.find('}') else { break };
        out.push(&after[..close]);
        rest = &after[close + 1..];
    }
    out
}

/// `Endpoint-certificates/interceptors/*.crt|.pem`, concatenated: the CAs
/// the API's https interceptor services are verified against.
fn read_interceptor_certificates(files: &ProjectFiles, problems: &mut Vec<Problem>) -> Option<String> {
    let mut all = String::new();
    for (path, content) in files.under("Endpoint-certificates/interceptors/") {
        if !(path.ends_with(".crt") || path.ends_with(".pem")) {
            continue;
        }
        match check_pem_certificates(content) {
            Ok(pem) => {
                all.push_str(pem.trim_end());
                all.push('\n');
            }
            Err(why) => problems.push(Problem::new(path, "", why)),
        }
    }
    (!all.is_empty()).then_some(all)
}

fn read_certificates(files: &ProjectFiles, problems: &mut Vec<Problem>) -> (BTreeMap<String, String>, Option<String>) {
    let mut pool: BTreeMap<String, String> = BTreeMap::new();
    for (path, content) in files.under("Endpoint-certificates/") {
        let rest = &path["Endpoint-certificates/".len()..];
        if rest.contains('/') || !(rest.ends_with(".crt") || rest.ends_with(".pem")) {
            continue;
        }
        match check_pem_certificates(content) {
            Ok(pem) => {
                pool.insert(rest.to_string(), pem);
            }
            Err(why) => problems.push(Problem::new(path, "", why)),
        }
    }
    let mut by_url = BTreeMap::new();
    let index =
        ["Endpoint-certificates/endpoint_certificates.yaml", "Endpoint-certificates/endpoint_certificates.json"]
            .into_iter()
            .find(|n| files.get(n).is_some());
    if let Some(name) = index
        && let Some(doc) = read_doc(files, name, problems)
    {
        let mut ctx = Ctx::new(name, problems);
        let data = doc.as_object().and_then(|o| get_ci(o, "data"));
        match data {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    let p = format!("data[{i}]");
                    let Some(obj) = opt_object(&mut ctx, Some(item), &p) else { continue };
                    let endpoint =
                        opt_string(&mut ctx, get_ci(obj, "endpoint"), &field(&p, "endpoint")).unwrap_or_default();
                    let cert =
                        opt_string(&mut ctx, get_ci(obj, "certificate"), &field(&p, "certificate")).unwrap_or_default();
                    if endpoint.is_empty() || cert.is_empty() {
                        ctx.err(&p, "each entry needs `endpoint` and `certificate`");
                        continue;
                    }
                    let file = cert.rsplit('/').next().unwrap_or(&cert).to_string();
                    match pool.get(&file) {
                        Some(pem) => {
                            by_url.insert(endpoint.trim().to_string(), pem.clone());
                        }
                        None => ctx.err(
                            field(&p, "certificate"),
                            format!("{cert:?} is not a certificate file in Endpoint-certificates/"),
                        ),
                    }
                }
            }
            Some(other) => ctx.err("data", format!("expected a list, found {}", kind(other))),
        }
    }
    let referenced: Vec<String> = by_url.values().cloned().collect();
    let rest: Vec<String> = pool.into_values().filter(|pem| !referenced.contains(pem)).collect();
    let default = if rest.is_empty() { None } else { Some(rest.join("\n")) };
    (by_url, default)
}

/// `Client-certificates/`: the certificates of a mutual-TLS API, named and
/// tiered by `client_certificates.yaml` when there is one.
fn read_client_certificates(files: &ProjectFiles, problems: &mut Vec<Problem>) -> Vec<ClientCertificate> {
    const DIR: &str = "Client-certificates/";
    let mut pool: BTreeMap<String, String> = BTreeMap::new();
    for (path, content) in files.under(DIR) {
        let rest = &path[DIR.len()..];
        if rest.contains('/') || !(rest.ends_with(".crt") || rest.ends_with(".pem")) {
            continue;
        }
        match check_pem_certificates(content) {
            Ok(pem) => {
                pool.insert(rest.to_string(), pem);
            }
            Err(why) => problems.push(Problem::new(path, "", format!("client certificate: {why}"))),
        }
    }
    let index = ["Client-certificates/client_certificates.yaml", "Client-certificates/client_certificates.json"]
        .into_iter()
        .find(|n| files.get(n).is_some());
    let Some(name) = index else {
        return pool
            .into_iter()
            .map(|(file, pem)| ClientCertificate { alias: file, tier: String::new(), pem })
            .collect();
    };
    let Some(doc) = read_doc(files, name, problems) else { return Vec::new() };
    let mut ctx = Ctx::new(name, problems);
    let mut out = Vec::new();
    match doc.as_object().and_then(|o| get_ci(o, "data")) {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let p = format!("data[{i}]");
                let Some(obj) = opt_object(&mut ctx, Some(item), &p) else { continue };
                let alias = opt_string(&mut ctx, get_ci(obj, "alias"), &field(&p, "alias")).unwrap_or_default();
                let cert =
                    opt_string(&mut ctx, get_ci(obj, "certificate"), &field(&p, "certificate")).unwrap_or_default();
                let tier = opt_string(&mut ctx, get_ci(obj, "tierName"), &field(&p, "tierName")).unwrap_or_default();
                if alias.is_empty() || cert.is_empty() {
                    ctx.err(&p, "each entry needs `alias` and `certificate`");
                    continue;
                }
                let file = cert.rsplit('/').next().unwrap_or(&cert).to_string();
                match pool.get(&file) {
                    Some(pem) => out.push(ClientCertificate { alias, tier, pem: pem.clone() }),
                    None => ctx.err(
                        field(&p, "certificate"),
                        format!("{cert:?} is not a certificate file in Client-certificates/"),
                    ),
                }
            }
        }
        Some(other) => ctx.err("data", format!("expected a list, found {}", kind(other))),
    }
    out
}

/// Checks that `content` is one or more PEM X.509 certificates; returns it as text.
pub fn check_pem_certificates(content: &[u8]) -> Result<String, String> {
    let text = std::str::from_utf8(content).map_err(|_| "not a PEM certificate (not text)".to_string())?;
    let mut count = 0;
    for pem in x509_parser::pem::Pem::iter_from_buffer(content) {
        let pem = pem.map_err(|e| format!("not a PEM certificate: {e}"))?;
        if pem.label != "CERTIFICATE" {
            return Err(format!("holds a PEM {:?} block, expected CERTIFICATE", pem.label));
        }
        pem.parse_x509().map_err(|e| format!("not a valid X.509 certificate: {e}"))?;
        count += 1;
    }
    if count == 0 {
        return Err("not a PEM certificate (no -----BEGIN CERTIFICATE----- block)".into());
    }
    Ok(text.to_string())
}

/// `deployment_environments.yaml` resolved against the vhost mapping.
fn read_deployments(
    files: &ProjectFiles,
    opts: &ParseOptions,
    problems: &mut Vec<Problem>,
) -> Option<(Vec<Deployment>, Vec<String>)> {
    let default_vhost = |env: &str| -> Option<String> {
        opts.vhost_mapping
            .iter()
            .rev()
            .find(|(e, _)| e == env)
            .map(|(_, v)| v.clone())
            .or_else(|| (env == "Default").then(|| "localhost".to_string()))
    };
    let name = ["deployment_environments.yaml", "deployment_environments.yml", "deployment_environments.json"]
        .into_iter()
        .find(|n| files.get(n).is_some());
    let Some(name) = name else {
        let vhost = default_vhost("Default").unwrap_or_else(|| "localhost".into());
        return Some((vec![Deployment { environment: "Default".into(), vhost }], Vec::new()));
    };
    let doc = read_doc(files, name, problems)?;
    let before = problems.len();
    let mut ctx = Ctx::new(name, problems);
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    match doc.as_object().and_then(|o| get_ci(o, "data")) {
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let p = format!("data[{i}]");
                let Some(obj) = opt_object(&mut ctx, Some(item), &p) else { continue };
                let env =
                    opt_string(&mut ctx, get_ci(obj, "deploymentEnvironment"), &field(&p, "deploymentEnvironment"))
                        .unwrap_or_default();
                if env.is_empty() {
                    ctx.err(field(&p, "deploymentEnvironment"), "missing or empty");
                    continue;
                }
                let vhost = opt_string(&mut ctx, get_ci(obj, "deploymentVhost"), &field(&p, "deploymentVhost"))
                    .filter(|v| !v.trim().is_empty());
                match default_vhost(&env) {
                    Some(dv) => {
                        let d = Deployment { environment: env, vhost: vhost.unwrap_or(dv) };
                        if !out.contains(&d) {
                            out.push(d);
                        }
                    }
                    None => skipped.push(env),
                }
            }
        }
        None | Some(Value::Null) => ctx.err("data", "missing: a list of {deploymentEnvironment, deploymentVhost}"),
        Some(other) => ctx.err("data", format!("expected a list, found {}", kind(other))),
    }
    if problems.len() > before {
        return None;
    }
    Some((out, skipped))
}
