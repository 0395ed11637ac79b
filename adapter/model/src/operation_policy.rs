//! Operation policies (README.md, "Operation policies"): api.yaml
//! `operations[].operationPolicies`, the specifications and `.gotmpl`
//! definitions of the project's `Policies/` folder and the built-in ones
//! (adapter/model/src/builtin_policies.rs), rendered and checked into
//! [`PolicyAction`]s.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde_json::{Map, Value};

use crate::mediation::{OpaPolicy, PolicyAction, parse_includes};
use crate::model::{Method, Resource, Scheme};
use crate::problem::{Ctx, Problem};
use crate::value::{field, get_ci, kind, opt_bool, opt_object, opt_string, opt_string_list, parse_document};
use crate::{ProjectFiles, endpoint::parse_endpoint_url};

/// The gateway name a specification must list in `supportedGateways`.
const GATEWAY: &str = "ChoreoConnect";

/// A policy specification (`type: operation_policy_specification`).
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    /// Where it was read from (a project file, or `built-in`).
    pub file: String,
    pub name: String,
    pub version: String,
    pub applicable_flows: Vec<String>,
    pub supported_gateways: Vec<String>,
    pub supported_api_types: Vec<String>,
    pub multiple_allowed: bool,
    pub attributes: Vec<Attribute>,
    /// The `.gotmpl` definition.
    pub definition: Option<(String, String)>,
}

/// `policyAttributes[]`
#[derive(Debug, Clone)]
pub(crate) struct Attribute {
    pub name: String,
    pub required: bool,
    pub validation_regex: Option<String>,
    /// `validation_regex`, compiled once when the specification is read.
    pub compiled_regex: Option<regex::Regex>,
    pub default_value: Option<String>,
    pub allowed_values: Vec<String>,
}

/// The policies a project can use: its own (`Policies/`) over the built-in ones.
#[derive(Debug, Default)]
pub(crate) struct Catalogue {
    specs: BTreeMap<String, Spec>,
}

impl Catalogue {
    fn get(&self, name: &str, version: &str) -> Option<&Spec> {
        self.specs.get(&format!("{name}_{version}"))
    }
}

/// The built-in policies, read once: every project's catalogue starts from
/// them (reading them for each project, YAML and validation regexes, was a
/// third of the adapter's start-up CPU at 10,000 projects: perf, ARCHITECTURE.md).
static BUILT_IN_SPECS: LazyLock<(BTreeMap<String, Spec>, Vec<Problem>)> = LazyLock::new(|| {
    let mut problems = Vec::new();
    let mut specs = BTreeMap::new();
    let mut ctx = Ctx::new("", &mut problems);
    for (stem, spec, tmpl) in crate::builtin_policies::BUILT_IN {
        let file = format!("built-in policy {stem}");
        let mut c = ctx.for_file(&file);
        if let Ok(doc) = parse_document(spec.as_bytes())
            && let Some(mut s) = parse_spec(&mut c, &doc, &file)
        {
            s.definition = Some((format!("built-in policy {stem} (definition)"), tmpl.to_string()));
            specs.insert(stem.to_string(), s);
        }
    }
    (specs, problems)
});

/// Reads the built-in policies and the project's `Policies/` folder.
pub(crate) fn read_catalogue(files: &ProjectFiles, ctx: &mut Ctx<'_>) -> Catalogue {
    let (built_in, problems) = &*BUILT_IN_SPECS;
    let mut cat = Catalogue { specs: built_in.clone() };
    ctx.problems.extend(problems.iter().cloned());
    let mut definitions: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut own: BTreeMap<String, Spec> = BTreeMap::new();
    for (path, content) in files.under("Policies/") {
        let rest = &path["Policies/".len()..];
        if rest.contains('/') {
            continue;
        }
        let Some((stem, ext)) = rest.rsplit_once('.') else { continue };
        match ext {
            "gotmpl" => match std::str::from_utf8(content) {
                Ok(t) => {
                    definitions.insert(stem.to_string(), (path.to_string(), t.to_string()));
                }
                Err(_) => ctx.for_file(path).err("", "a policy definition must be UTF-8 text"),
            },
            "yaml" | "yml" | "json" => {
                let mut c = ctx.for_file(path);
                match parse_document(content) {
                    Ok(doc) => {
                        if let Some(s) = parse_spec(&mut c, &doc, path) {
                            let expected = format!("{}_{}", s.name, s.version);
                            if expected != stem {
                                c.err(
                                    "data.name",
                                    format!(
                                        "the file is named {stem:?} but the policy is {expected:?} \
                                         (policies are matched by <name>_<version>)"
                                    ),
                                );
                            }
                            own.insert(stem.to_string(), s);
                        }
                    }
                    Err(why) => c.err("", why),
                }
            }
            // Rego modules of embedded OPA policies, and anything else, are read where used.
            _ => {}
        }
    }
    for (stem, mut s) in own {
        match definitions.remove(&stem) {
            Some(d) => s.definition = Some(d),
            None => ctx
                .for_file(&s.file.clone())
                .err("", format!("no definition: the policy needs Policies/{stem}.gotmpl beside its specification")),
        }
        cat.specs.insert(stem, s);
    }
    for (stem, (path, _)) in definitions {
        if !cat.specs.contains_key(&stem) {
            ctx.for_file(&path)
                .err("", format!("no specification: the definition needs Policies/{stem}.yaml beside it"));
        }
    }
    cat
}

fn parse_spec(ctx: &mut Ctx<'_>, doc: &Value, file: &str) -> Option<Spec> {
    let top = doc.as_object().filter(|o| o.contains_key("data"));
    let Some(top) = top else {
        ctx.err("", "expected a policy specification: `type: operation_policy_specification` and `data`");
        return None;
    };
    let ty = opt_string(ctx, get_ci(top, "type"), "type").unwrap_or_default();
    if ty != "operation_policy_specification" {
        ctx.err("type", format!("{ty:?}: expected operation_policy_specification"));
        return None;
    }
    let data = opt_object(ctx, get_ci(top, "data"), "data")?;
    let s = |ctx: &mut Ctx<'_>, key: &str| opt_string(ctx, get_ci(data, key), &field("data", key));
    let list =
        |ctx: &mut Ctx<'_>, key: &str| opt_string_list(ctx, get_ci(data, key), &field("data", key)).unwrap_or_default();
    let name = s(ctx, "name").unwrap_or_default();
    let version = s(ctx, "version").unwrap_or_else(|| "v1".to_string());
    if name.is_empty() {
        ctx.err("data.name", "missing: a policy needs a name");
        return None;
    }
    let mut attributes = Vec::new();
    match get_ci(data, "policyAttributes") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let at = format!("data.policyAttributes[{i}]");
                let Some(a) = opt_object(ctx, Some(item), &at) else { continue };
                let aname = opt_string(ctx, get_ci(a, "name"), &field(&at, "name")).unwrap_or_default();
                if aname.is_empty() {
                    ctx.err(field(&at, "name"), "missing: an attribute needs a name");
                    continue;
                }
                let validation_regex = opt_string(ctx, get_ci(a, "validationRegex"), &field(&at, "validationRegex"))
                    .filter(|r| !r.is_empty());
                let compiled_regex = match validation_regex.as_deref().map(regex::Regex::new) {
                    Some(Err(e)) => {
                        ctx.err(field(&at, "validationRegex"), format!("not a valid regular expression: {e}"));
                        None
                    }
                    Some(Ok(re)) => Some(re),
                    None => None,
                };
                attributes.push(Attribute {
                    compiled_regex,
                    name: aname,
                    required: opt_bool(ctx, get_ci(a, "required"), &field(&at, "required")).unwrap_or(false),
                    validation_regex,
                    default_value: get_ci(a, "defaultValue").filter(|v| !v.is_null()).map(scalar_text),
                    allowed_values: opt_string_list(ctx, get_ci(a, "allowedValues"), &field(&at, "allowedValues"))
                        .unwrap_or_default(),
                });
            }
        }
        Some(other) => ctx.err("data.policyAttributes", format!("expected a list, found {}", kind(other))),
    }
    Some(Spec {
        file: file.to_string(),
        name,
        version,
        applicable_flows: list(ctx, "applicableFlows"),
        supported_gateways: list(ctx, "supportedGateways"),
        supported_api_types: list(ctx, "supportedApiTypes"),
        multiple_allowed: opt_bool(ctx, get_ci(data, "multipleAllowed"), "data.multipleAllowed").unwrap_or(false),
        attributes,
        definition: None,
    })
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The policies of one operation, by flow.
#[derive(Debug, Default)]
pub(crate) struct OperationPolicies {
    pub request: Vec<PolicyAction>,
    pub response: Vec<PolicyAction>,
}

/// Reads api.yaml `operations[].operationPolicies` and resolves each
/// policy against the catalogue. `resources` are the definition's (each
/// policy must name an operation of it). Returns (target, method, policies).
pub(crate) fn operation_policies(
    ctx: &mut Ctx<'_>,
    data: &Map<String, Value>,
    cat: &Catalogue,
    files: &ProjectFiles,
    resources: &[Resource],
    api_type: &str,
) -> Vec<(String, Method, OperationPolicies)> {
    let mut out = Vec::new();
    let ops = match get_ci(data, "operations") {
        None | Some(Value::Null) => return out,
        Some(Value::Array(a)) => a,
        Some(other) => {
            ctx.err("data.operations", format!("expected a list, found {}", kind(other)));
            return out;
        }
    };
    for (i, op) in ops.iter().enumerate() {
        let at = format!("data.operations[{i}]");
        let Some(op) = opt_object(ctx, Some(op), &at) else { continue };
        let Some(policies) = get_ci(op, "operationPolicies").filter(|v| !v.is_null()) else { continue };
        let pat = field(&at, "operationPolicies");
        let Some(policies) = opt_object(ctx, Some(policies), &pat) else { continue };
        let target = opt_string(ctx, get_ci(op, "target"), &field(&at, "target")).unwrap_or_default();
        let verb = opt_string(ctx, get_ci(op, "verb"), &field(&at, "verb")).unwrap_or_default();
        let Some(method) = Method::from_key(&verb) else {
            ctx.err(field(&at, "verb"), format!("{verb:?} is not an HTTP method"));
            continue;
        };
        let declared = resources.iter().any(|r| r.path == target && r.operations.iter().any(|o| o.method == method));
        if !declared {
            ctx.err(&at, format!("{method} {target} has policies but the definition declares no such operation"));
            continue;
        }
        let mut result = OperationPolicies::default();
        for (flow, slot) in
            [("request", Some(&mut result.request)), ("response", Some(&mut result.response)), ("fault", None)]
        {
            let fat = field(&pat, flow);
            let list = match get_ci(policies, flow) {
                None | Some(Value::Null) => continue,
                Some(Value::Array(a)) => a,
                Some(other) => {
                    ctx.err(&fat, format!("expected a list, found {}", kind(other)));
                    continue;
                }
            };
            let mut seen: Vec<String> = Vec::new();
            let mut actions = Vec::new();
            for (j, p) in list.iter().enumerate() {
                let pat = format!("{fat}[{j}]");
                let Some(p) = opt_object(ctx, Some(p), &pat) else { continue };
                if let Some(a) = resolve(ctx, p, &pat, flow, cat, files, (api_type, method), &mut seen) {
                    actions.push(a);
                }
            }
            // Choreo Connect accepts fault policies and never runs them;
            // they are checked and ignored here too.
            if let Some(s) = slot {
                *s = actions;
            }
        }
        out.push((target, method, result));
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn resolve(
    ctx: &mut Ctx<'_>,
    p: &Map<String, Value>,
    at: &str,
    flow: &str,
    cat: &Catalogue,
    files: &ProjectFiles,
    (api_type, op_method): (&str, Method),
    seen: &mut Vec<String>,
) -> Option<PolicyAction> {
    let name = opt_string(ctx, get_ci(p, "policyName"), &field(at, "policyName")).unwrap_or_default();
    let version = opt_string(ctx, get_ci(p, "policyVersion"), &field(at, "policyVersion"))
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "v1".to_string());
    if name.is_empty() {
        ctx.err(field(at, "policyName"), "missing: name the policy to apply");
        return None;
    }
    let Some(spec) = cat.get(&name, &version) else {
        ctx.err(
            field(at, "policyName"),
            format!(
                "unknown policy {name:?} version {version:?}: neither Policies/{name}_{version}.yaml in the \
                 project nor a built-in policy"
            ),
        );
        return None;
    };
    let stem = format!("{name}_{version}");
    if !spec.supported_gateways.iter().any(|g| g == GATEWAY) {
        ctx.err(
            field(at, "policyName"),
            format!(
                "policy {stem} does not support this gateway ({} lists {:?}, not {GATEWAY})",
                spec.file, spec.supported_gateways
            ),
        );
        return None;
    }
    if !spec.applicable_flows.iter().any(|f| f.eq_ignore_ascii_case(flow)) {
        ctx.err(
            at,
            format!(
                "policy {stem} cannot be applied to the {flow} flow (applicableFlows: {:?})",
                spec.applicable_flows
            ),
        );
        return None;
    }
    if !spec.supported_api_types.is_empty()
        && !spec.supported_api_types.iter().any(|t| t.eq_ignore_ascii_case(api_type))
    {
        ctx.err(
            at,
            format!(
                "policy {stem} does not support {api_type} APIs (supportedApiTypes: {:?})",
                spec.supported_api_types
            ),
        );
        return None;
    }
    if seen.contains(&stem) && !spec.multiple_allowed {
        ctx.err(at, format!("policy {stem} is applied twice in the {flow} flow, and its multipleAllowed is false"));
        return None;
    }
    seen.push(stem.clone());

    // Parameters: given values (as text), defaults for the missing ones, checks.
    let pat = field(at, "parameters");
    let given = opt_object(ctx, get_ci(p, "parameters"), &pat).cloned().unwrap_or_default();
    let mut params: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in &given {
        match v {
            Value::Null => {}
            Value::Object(_) | Value::Array(_) => {
                ctx.err(field(&pat, k), format!("expected a text value, found {}", kind(v)));
            }
            other => {
                params.insert(k.clone(), scalar_text(other));
            }
        }
    }
    let mut ok = true;
    for a in &spec.attributes {
        match params.get(&a.name) {
            None => {
                if let Some(d) = &a.default_value {
                    params.insert(a.name.clone(), d.clone());
                } else if a.required {
                    ctx.err(field(&pat, &a.name), format!("missing: policy {stem} requires it"));
                    ok = false;
                }
            }
            Some(v) => {
                if let (Some(r), Some(re)) = (&a.validation_regex, &a.compiled_regex)
                    && !re.is_match(v)
                {
                    ctx.err(field(&pat, &a.name), format!("{v:?} does not match the policy's validationRegex {r}"));
                    ok = false;
                }
                if !a.allowed_values.is_empty() && !a.allowed_values.contains(v) {
                    ctx.err(field(&pat, &a.name), format!("{v:?} is not one of {:?}", a.allowed_values));
                    ok = false;
                }
            }
        }
    }
    if !ok {
        return None;
    }
    let (def_file, template) = spec.definition.as_ref()?;
    let rendered = match render(template, &params) {
        Ok(r) => r,
        Err(why) => {
            ctx.err(at, format!("the definition {def_file} cannot be rendered: {why}"));
            return None;
        }
    };
    let doc = match parse_document(rendered.as_bytes()) {
        Ok(d) => d,
        Err(why) => {
            ctx.err(at, format!("the definition {def_file}, rendered with these parameters, is not YAML: {why}"));
            return None;
        }
    };
    let def = doc.get("definition").and_then(Value::as_object);
    let Some(def) = def else {
        ctx.err(at, format!("the definition {def_file} renders no `definition` object"));
        return None;
    };
    let action = def.get("action").map(scalar_text).unwrap_or_default();
    let dparams: BTreeMap<String, String> = def
        .get("parameters")
        .and_then(Value::as_object)
        .map(|m| m.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), scalar_text(v))).collect())
        .unwrap_or_default();
    action_of(ctx, at, &stem, &action, &dparams, flow, files, op_method)
}

/// Go's text/template over the parameters, with Choreo Connect's helper
/// `isParamExists . "name"`.
fn render(template: &str, params: &BTreeMap<String, String>) -> Result<String, String> {
    crate::gotemplate::render(template, params)
}

#[allow(clippy::too_many_arguments)]
fn action_of(
    ctx: &mut Ctx<'_>,
    at: &str,
    stem: &str,
    action: &str,
    p: &BTreeMap<String, String>,
    flow: &str,
    files: &ProjectFiles,
    op_method: Method,
) -> Option<PolicyAction> {
    let mut missing = Vec::new();
    let mut need = |key: &str| -> String {
        match p.get(key) {
            Some(v) if !v.is_empty() => v.clone(),
            _ => {
                missing.push(key.to_string());
                String::new()
            }
        }
    };
    let request_only = |ctx: &mut Ctx<'_>| {
        if flow != "request" {
            ctx.err(at, format!("policy {stem}: {action} applies to the request flow only"));
            false
        } else {
            true
        }
    };
    let a = match action {
        "SET_HEADER" | "REMOVE_HEADER" => {
            let name = need("headerName");
            // Envoy refuses a route configuration that edits pseudo-headers,
            // `host` or a malformed name: it would block every API of the scope.
            let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
            if !name.is_empty() && (!name.chars().all(token) || name.eq_ignore_ascii_case("host")) {
                ctx.err(at, format!("policy {stem}: headerName {name:?} is not a header this gateway may edit"));
                return None;
            }
            if action == "SET_HEADER" {
                let value = need("headerValue");
                if value.chars().any(|c| c == '\r' || c == '\n' || c == '\0') {
                    ctx.err(at, format!("policy {stem}: headerValue holds a line break or NUL"));
                    return None;
                }
                PolicyAction::SetHeader { name, value }
            } else {
                PolicyAction::RemoveHeader { name }
            }
        }
        "REWRITE_RESOURCE_PATH" => {
            if !request_only(ctx) {
                return None;
            }
            let path = need("resourcePath");
            // Choreo Connect's check: letters, digits and ~/_.- once the
            // {uri.var.x} references are taken out (no query, no fragment).
            let mut bare = path.clone();
            for v in crate::uri_vars(&path) {
                bare = bare.replace(&format!("{{uri.var.{v}}}"), "");
            }
            if !bare.chars().all(|c| c.is_ascii_alphanumeric() || "~/_.-".contains(c)) {
                ctx.err(
                    at,
                    format!("policy {stem}: resourcePath {path:?} may hold only letters, digits, ~/_.- and {{uri.var.<param>}}"),
                );
                return None;
            }
            let include_query = p.get("includeQueryParams").map(|v| v.eq_ignore_ascii_case("true")).unwrap_or(true);
            PolicyAction::RewritePath { path, include_query }
        }
        "REWRITE_RESOURCE_METHOD" => {
            if !request_only(ctx) {
                return None;
            }
            // Choreo Connect builds no route when currentMethod is not the
            // operation's, and the rewritten request then fails with 404.
            if let Some(cur) = p.get("currentMethod").filter(|c| !c.is_empty() && *c != "<no value>")
                && !cur.eq_ignore_ascii_case(op_method.as_str())
            {
                ctx.err(
                    at,
                    format!("policy {stem}: currentMethod {cur:?} is not the operation's method {op_method}, so the rewrite could never apply"),
                );
                return None;
            }
            let m = need("updatedMethod");
            match Method::from_key(&m) {
                Some(method) => PolicyAction::RewriteMethod { method },
                None if m.is_empty() => PolicyAction::RewriteMethod { method: Method::Get },
                None => {
                    ctx.err(at, format!("policy {stem}: updatedMethod {m:?} is not an HTTP method"));
                    return None;
                }
            }
        }
        "ADD_QUERY" => {
            if !request_only(ctx) {
                return None;
            }
            PolicyAction::AddQuery { name: need("queryParamName"), value: need("queryParamValue") }
        }
        "CALL_INTERCEPTOR_SERVICE" => {
            let url = need("interceptorServiceURL");
            if url.is_empty() {
                ctx.err(at, format!("policy {stem}: CALL_INTERCEPTOR_SERVICE needs interceptorServiceURL"));
                return None;
            }
            let service = match parse_endpoint_url(&url, Scheme::Http) {
                Ok(e) if matches!(e.scheme, Scheme::Http | Scheme::Https) => e,
                Ok(_) => {
                    ctx.err(at, format!("policy {stem}: interceptorServiceURL {url:?} must be http or https"));
                    return None;
                }
                Err(why) => {
                    ctx.err(at, format!("policy {stem}: interceptorServiceURL: {why}"));
                    return None;
                }
            };
            let inc_value = p.get("includes").map(|s| Value::String(s.clone()));
            let includes = parse_includes(ctx, inc_value.as_ref(), &field(at, "parameters.includes"))?;
            PolicyAction::CallInterceptor(crate::mediation::Interceptor {
                service,
                includes,
                cluster_timeout_s: None,
                request_timeout_s: None,
            })
        }
        "OPA" => {
            if !request_only(ctx) {
                return None;
            }
            let rego = match p.get("regoFile").filter(|f| !f.is_empty()) {
                None => None,
                Some(f) => {
                    let path = if f.starts_with("Policies/") { f.clone() } else { format!("Policies/{f}") };
                    match files.get(&path).map(std::str::from_utf8) {
                        Some(Ok(t)) => Some(t.to_string()),
                        Some(Err(_)) => {
                            ctx.err(at, format!("policy {stem}: {path} is not UTF-8 text"));
                            return None;
                        }
                        None => {
                            ctx.err(at, format!("policy {stem}: regoFile {path} is not in the project"));
                            return None;
                        }
                    }
                }
            };
            if let Some(module) = &rego {
                let package = p.get("policy").cloned().unwrap_or_default().trim_matches('/').replace('/', ".");
                let rule = p.get("rule").filter(|r| !r.is_empty()).map(String::as_str).unwrap_or("allow");
                let path = format!("data.{package}.{rule}");
                let mut engine = regorus::Engine::new();
                let checked = engine
                    .add_policy(p.get("regoFile").cloned().unwrap_or_default(), module.clone())
                    .map_err(|e| format!("does not compile: {e}"))
                    .and_then(|_| engine.eval_rule(path.clone()).map(|_| ()).map_err(|e| format!("{path}: {e}")));
                if let Err(why) = checked {
                    ctx.err(at, format!("policy {stem}: the Rego module {why}"));
                    return None;
                }
            }
            if let Some(g) = p.get("requestGenerator").filter(|g| !g.is_empty()) {
                ctx.err(
                    at,
                    format!(
                        "policy {stem}: requestGenerator {g:?}: custom OPA request generators are Java classes of \
                         Choreo Connect's enforcer; this gateway sends Choreo Connect's default input document"
                    ),
                );
                return None;
            }
            let server_url = p.get("serverURL").cloned().unwrap_or_default();
            if rego.is_none() && server_url.is_empty() {
                ctx.err(at, format!("policy {stem}: its definition gives OPA no serverURL (or regoFile)"));
                return None;
            }
            if !server_url.is_empty()
                && let Err(why) = parse_endpoint_url(&server_url, Scheme::Http)
            {
                ctx.err(at, format!("policy {stem}: serverURL: {why}"));
                return None;
            }
            let num = |ctx: &mut Ctx<'_>, key: &str| -> Option<u32> {
                let v = p.get(key).filter(|v| !v.is_empty())?;
                match v.trim().parse::<u32>() {
                    Ok(n) => Some(n),
                    Err(_) => {
                        ctx.err(at, format!("policy {stem}: {key} {v:?} is not a number"));
                        None
                    }
                }
            };
            let policy = need("policy");
            PolicyAction::Opa(OpaPolicy {
                server_url,
                policy,
                rule: p.get("rule").filter(|r| !r.is_empty()).cloned().unwrap_or_else(|| "allow".to_string()),
                token: p.get("accessKey").or_else(|| p.get("token")).cloned().unwrap_or_default(),
                additional_properties: p
                    .get("additionalProperties")
                    .map(|s| s.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect())
                    .unwrap_or_default(),
                send_access_token: p.get("sendAccessToken").is_some_and(|v| v.eq_ignore_ascii_case("true")),
                max_open_connections: num(ctx, "maxOpenConnections"),
                max_per_route: num(ctx, "maxPerRoute"),
                connection_timeout_s: num(ctx, "connectionTimeout"),
                rego,
            })
        }
        other => {
            ctx.err(at, format!("policy {stem}: policy action {other:?} not supported by Choreo Connect gateway"));
            return None;
        }
    };
    if !missing.is_empty() {
        ctx.err(at, format!("policy {stem}: its definition gives {action} no {} (required)", missing.join(", ")));
        return None;
    }
    Some(a)
}
