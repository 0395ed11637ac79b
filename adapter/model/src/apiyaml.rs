//! `api.yaml` / `api.json` (keys of `data` are matched case-insensitively, as
//! Choreo Connect's Go decoder does).

use serde_json::{Map, Value};

use crate::endpoint::parse_security_config;
use crate::model::{ApiType, BasicAuth};
use crate::problem::Ctx;
use crate::value::{field, get_ci, kind, opt_bool, opt_object, opt_string, opt_string_list, opt_u64};

/// One endpoint of `endpointConfig`.
#[derive(Debug, Clone, Default)]
pub(crate) struct YamlEndpoint {
    pub url: String,
    pub path: String,
    /// `config.actionDuration`: route timeout in ms.
    pub action_duration: Option<u32>,
    /// `config.retryTimeOut`: retry count.
    pub retry_count: Option<u32>,
}

/// What the adapter reads from api.yaml.
#[derive(Debug, Clone)]
pub(crate) struct ApiYaml {
    pub id: Option<String>,
    pub name: String,
    pub version: String,
    pub context: String,
    pub api_type: ApiType,
    pub lifecycle_status: String,
    pub mocked: bool,
    pub authorization_header: Option<String>,
    pub security_scheme: Vec<String>,
    pub organization: Option<String>,
    pub throttling_policy: Option<String>,
    /// Choreo's `throttlingLimit{requestCount, unit}` as a tier name (`10PerMinute`, `Unlimited`).
    pub throttling_limit: Option<String>,
    /// `operations[]`: (target, verb, tier) from each one's `throttlingLimit`.
    pub operation_limits: Vec<(String, String, String)>,
    pub is_default_version: bool,
    pub prototyped: bool,
    pub production: Vec<YamlEndpoint>,
    pub production_failover: bool,
    pub sandbox: Vec<YamlEndpoint>,
    pub sandbox_failover: bool,
    pub production_security: Option<BasicAuth>,
    pub sandbox_security: Option<BasicAuth>,
}

/// Parses the document of `file`. Returns `None` when it is unusable (the
/// problems say why).
pub(crate) fn parse_api_yaml(ctx: &mut Ctx<'_>, doc: &Value) -> Option<ApiYaml> {
    let Some(top) = doc.as_object() else {
        ctx.err("", format!("expected an object with `type`, `version` and `data`, found {}", kind(doc)));
        return None;
    };
    let data = match get_ci(top, "data") {
        Some(Value::Object(d)) => d,
        Some(other) => {
            ctx.err("data", format!("expected an object, found {}", kind(other)));
            return None;
        }
        None => {
            ctx.err("data", "missing: api.yaml holds the API under `data`");
            return None;
        }
    };
    let before = ctx.problems.len();
    let s = |ctx: &mut Ctx<'_>, key: &str| opt_string(ctx, get_ci(data, key), &format!("data.{key}"));

    let name = s(ctx, "name").unwrap_or_default();
    let version = s(ctx, "version").unwrap_or_default();
    let context = s(ctx, "context").unwrap_or_default();
    for (key, value) in [("name", &name), ("version", &version), ("context", &context)] {
        if value.trim().is_empty() {
            ctx.err(format!("data.{key}"), "missing or empty: an API needs a name, a version and a context");
        }
    }
    let type_text = s(ctx, "type").unwrap_or_default();
    let api_type = match type_text.to_ascii_uppercase().as_str() {
        "HTTP" | "" => ApiType::Http,
        "SOAP" | "SOAPTOREST" => ApiType::Soap,
        "WS" => ApiType::Ws,
        "GRAPHQL" => ApiType::Graphql,
        other => {
            ctx.err("data.type", format!("API type {other:?} is not supported (expected HTTP, SOAP, WS or GRAPHQL)"));
            ApiType::Http
        }
    };
    let implementation = s(ctx, "endpointImplementationType").unwrap_or_default().to_ascii_uppercase();
    let mocked = implementation == "MOCKED_OAS";
    if implementation == "INLINE" {
        ctx.err("data.endpointImplementationType", "INLINE endpoint implementations are not supported");
    }

    let security_scheme =
        opt_string_list(ctx, get_ci(data, "securityScheme"), "data.securityScheme").unwrap_or_default();
    let is_default_version = opt_bool(ctx, get_ci(data, "isDefaultVersion"), "data.isDefaultVersion").unwrap_or(false);

    let mut y = ApiYaml {
        id: s(ctx, "id").filter(|v| !v.is_empty()),
        name,
        version,
        context,
        api_type,
        lifecycle_status: s(ctx, "lifeCycleStatus").unwrap_or_default().to_ascii_uppercase(),
        mocked,
        authorization_header: s(ctx, "authorizationHeader").filter(|v| !v.is_empty()),
        security_scheme,
        organization: s(ctx, "organizationId").filter(|v| !v.is_empty()),
        throttling_policy: s(ctx, "apiThrottlingPolicy")
            .filter(|v| !v.is_empty())
            .and_then(|t| crate::known_tier(ctx, "data.apiThrottlingPolicy", t)),
        throttling_limit: get_ci(data, "throttlingLimit")
            .filter(|v| !v.is_null())
            .and_then(|v| limit_name(ctx, v, "data.throttlingLimit")),
        operation_limits: operation_limits(ctx, get_ci(data, "operations")),
        is_default_version,
        prototyped: false,
        production: Vec::new(),
        production_failover: false,
        sandbox: Vec::new(),
        sandbox_failover: false,
        production_security: None,
        sandbox_security: None,
    };

    if let Some(ec) = opt_object(ctx, get_ci(data, "endpointConfig"), "data.endpointConfig") {
        parse_endpoint_config(ctx, ec, &mut y);
    }
    if ctx.problems.len() > before {
        return None;
    }
    Some(y)
}

/// Choreo's `throttlingLimit: {requestCount, unit}` as the tier it names:
/// `<count>Per<Second|Minute|Hour|Day>`, or `Unlimited` for `-1`.
fn limit_name(ctx: &mut Ctx<'_>, v: &Value, at: &str) -> Option<String> {
    let Some(o) = v.as_object() else {
        ctx.err(at, format!("expected {{requestCount, unit}}, found {}", kind(v)));
        return None;
    };
    let count = match get_ci(o, "requestCount") {
        Some(Value::Number(n)) if n.as_i64() == Some(-1) => return Some("Unlimited".into()),
        Some(Value::Number(n)) if n.as_u64().is_some_and(|c| c > 0) => n.as_u64().unwrap_or(0),
        other => {
            let found = other.map_or("nothing".to_string(), ToString::to_string);
            ctx.err(
                field(at, "requestCount"),
                format!("expected a positive whole number or -1 (unlimited), found {found}"),
            );
            return None;
        }
    };
    let unit = opt_string(ctx, get_ci(o, "unit"), &field(at, "unit")).unwrap_or_default();
    let title = match unit.trim().to_ascii_uppercase().as_str() {
        "SECOND" => "Second",
        "MINUTE" => "Minute",
        "HOUR" => "Hour",
        "DAY" => "Day",
        _ => {
            ctx.err(field(at, "unit"), format!("{unit:?}: expected SECOND, MINUTE, HOUR or DAY"));
            return None;
        }
    };
    Some(format!("{count}Per{title}"))
}

/// `operations[]` entries with a `throttlingLimit` (Choreo's format).
fn operation_limits(ctx: &mut Ctx<'_>, v: Option<&Value>) -> Vec<(String, String, String)> {
    let Some(Value::Array(list)) = v else { return Vec::new() };
    let mut out = Vec::new();
    for (i, op) in list.iter().enumerate() {
        let Some(o) = op.as_object() else { continue };
        let Some(limit) = get_ci(o, "throttlingLimit").filter(|l| !l.is_null()) else { continue };
        let at = format!("data.operations[{i}]");
        let target = opt_string(ctx, get_ci(o, "target"), &field(&at, "target")).unwrap_or_default();
        let verb = opt_string(ctx, get_ci(o, "verb"), &field(&at, "verb")).unwrap_or_default();
        if target.is_empty() || verb.is_empty() {
            ctx.err(at.clone(), "an operation with a throttlingLimit needs its target and verb");
            continue;
        }
        if let Some(tier) = limit_name(ctx, limit, &field(&at, "throttlingLimit")) {
            out.push((target, verb.to_ascii_uppercase(), tier));
        }
    }
    out
}

fn parse_endpoint_config(ctx: &mut Ctx<'_>, ec: &Map<String, Value>, y: &mut ApiYaml) {
    let base = "data.endpointConfig";
    if let Some(status) = opt_string(ctx, get_ci(ec, "implementation_status"), &field(base, "implementation_status")) {
        y.prototyped = status.eq_ignore_ascii_case("prototyped");
    }
    y.production = endpoint_list(ctx, ec, "production_endpoints");
    y.sandbox = endpoint_list(ctx, ec, "sandbox_endpoints");
    let prod_failovers = endpoint_list(ctx, ec, "production_failovers");
    let sand_failovers = endpoint_list(ctx, ec, "sandbox_failovers");
    if !y.production.is_empty() && !prod_failovers.is_empty() {
        y.production.extend(prod_failovers);
        y.production_failover = true;
    }
    if !y.sandbox.is_empty() && !sand_failovers.is_empty() {
        y.sandbox.extend(sand_failovers);
        y.sandbox_failover = true;
    }
    let sec_path = field(base, "endpoint_security");
    if let Some(sec) = opt_object(ctx, get_ci(ec, "endpoint_security"), &sec_path) {
        for (key, slot) in [("production", &mut y.production_security), ("sandbox", &mut y.sandbox_security)] {
            let p = field(&sec_path, key);
            if let Some(s) = opt_object(ctx, get_ci(sec, key), &p) {
                *slot = parse_security_config(ctx, s, &p);
            }
        }
    }
}

/// `production_endpoints` and friends: one `{url, config}` object or a list of them.
fn endpoint_list(ctx: &mut Ctx<'_>, ec: &Map<String, Value>, key: &str) -> Vec<YamlEndpoint> {
    let path = format!("data.endpointConfig.{key}");
    let items: Vec<(String, &Value)> = match get_ci(ec, key) {
        None | Some(Value::Null) => return Vec::new(),
        Some(Value::Array(items)) => items.iter().enumerate().map(|(i, v)| (format!("{path}[{i}]"), v)).collect(),
        Some(v @ Value::Object(_)) => vec![(path.clone(), v)],
        Some(other) => {
            ctx.err(&path, format!("expected an endpoint object or a list of them, found {}", kind(other)));
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for (p, item) in items {
        let Some(obj) = opt_object(ctx, Some(item), &p) else { continue };
        let url = opt_string(ctx, get_ci(obj, "url"), &field(&p, "url")).unwrap_or_default();
        if url.trim().is_empty() {
            ctx.err(field(&p, "url"), "missing or empty endpoint URL");
            continue;
        }
        let mut e = YamlEndpoint { url, path: field(&p, "url"), ..Default::default() };
        let cfg_path = field(&p, "config");
        if let Some(cfg) = opt_object(ctx, get_ci(obj, "config"), &cfg_path) {
            e.action_duration = opt_u64(ctx, get_ci(cfg, "actionDuration"), &field(&cfg_path, "actionDuration"))
                .map(|v| v.min(u64::from(u32::MAX)) as u32)
                .filter(|v| *v > 0);
            e.retry_count = opt_u64(ctx, get_ci(cfg, "retryTimeOut"), &field(&cfg_path, "retryTimeOut"))
                .map(|v| v.min(u64::from(u32::MAX)) as u32);
        }
        out.push(e);
    }
    out
}
