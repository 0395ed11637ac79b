//! AsyncAPI 2 definitions of WebSocket APIs (`Definitions/asyncapi.yaml`).
//!
//! Each channel is a topic: a resource the client opens with a WebSocket
//! upgrade (`GET`), authenticated and authorised like any request. Per
//! channel: `x-auth-type: None` or `x-wso2-disable-security` (an open
//! topic), and on its `publish`/`subscribe` operation (publish wins)
//! `x-uri-mapping` (the backend path, `{uri.var.x}` from the topic's `{x}`;
//! without it the endpoint's base path), `x-scopes` (any one suffices;
//! subscribe's when publish has none) and a throttling tier.
//! `servers.production` / `servers.sandbox` (`ws://`, `wss://`) are endpoints,
//! as are api.yaml's `endpointConfig` URLs; the root's `x-wso2-*` extensions
//! apply as in an OpenAPI definition.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::endpoint::parse_endpoint_url;
use crate::model::{Endpoint, Method, Operation, Scheme, SecurityRequirement, SecurityScheme};
use crate::openapi::{Definition, OasVersion, RawResource, auth_type_none, parse_root_extensions, parse_schemes, tier};
use crate::problem::Ctx;
use crate::value::{field, kind, opt_bool, opt_object, opt_string, opt_string_list};

/// The security scheme topics with `x-scopes` refer to (Choreo Connect's
/// `default` OAuth2 scheme).
pub(crate) const DEFAULT_SCHEME: &str = "default";

/// Parses an AsyncAPI 2 document.
pub(crate) fn parse_asyncapi(ctx: &mut Ctx<'_>, doc: &Value, prototyped: bool) -> Option<Definition> {
    let Some(root) = doc.as_object() else {
        ctx.err("", format!("expected an AsyncAPI document (an object), found {}", kind(doc)));
        return None;
    };
    match root.get("asyncapi").and_then(Value::as_str) {
        Some(v) if v.starts_with("2.") => {}
        Some(v) => {
            ctx.err("asyncapi", format!("AsyncAPI version {v:?} is not supported (2.x is)"));
            return None;
        }
        None => {
            ctx.err("asyncapi", "missing: a WebSocket API's definition is an AsyncAPI 2 document");
            return None;
        }
    }
    let before = ctx.problems.len();
    let mut def = Definition {
        version: OasVersion::V3,
        base_path: None,
        servers: Vec::new(),
        sandbox_servers: Vec::new(),
        ext: parse_root_extensions(ctx, root, Scheme::Ws),
        security_schemes: BTreeMap::new(),
        security: Vec::new(),
        resources: Vec::new(),
    };
    if !prototyped && let Some(servers) = opt_object(ctx, root.get("servers"), "servers") {
        def.servers = server(ctx, servers, "production");
        def.sandbox_servers = server(ctx, servers, "sandbox");
    }
    if let Some(c) = opt_object(ctx, root.get("components"), "components")
        && let Some(s) = opt_object(ctx, c.get("securitySchemes"), "components.securitySchemes")
    {
        def.security_schemes = parse_schemes(ctx, s, "components.securitySchemes");
    }
    // Topic scopes name the definition's OAuth2 scheme (Choreo Connect's
    // `default` when it has none).
    let scheme = def
        .security_schemes
        .iter()
        .find(|(_, s)| s.kind.eq_ignore_ascii_case("oauth2"))
        .map(|(n, _)| n.clone())
        .unwrap_or_else(|| DEFAULT_SCHEME.to_string());
    match root.get("channels") {
        None | Some(Value::Null) => ctx.err("channels", "missing: a WebSocket API needs at least one channel (topic)"),
        Some(Value::Object(channels)) => {
            for (name, item) in channels {
                let p = field("channels", name);
                let Some(item) = opt_object(ctx, Some(item), &p) else { continue };
                if let Some(r) = channel(ctx, name, item, &p, &scheme) {
                    def.resources.push(r);
                }
            }
        }
        Some(other) => ctx.err("channels", format!("expected an object of channels, found {}", kind(other))),
    }
    if def.resources.iter().any(|r| r.operations.iter().any(|o| o.security.is_some())) {
        def.security_schemes.entry(scheme).or_insert_with(|| SecurityScheme {
            kind: "oauth2".into(),
            name: String::new(),
            location: String::new(),
        });
    }
    // Each declared scheme is a way in (an OAuth2 token, an API key) for the
    // topics without scopes of their own.
    def.security = def
        .security_schemes
        .keys()
        .map(|n| [(n.clone(), Vec::new())].into_iter().collect::<SecurityRequirement>())
        .collect();
    (ctx.problems.len() == before).then_some(def)
}

/// `servers.<name>.url` as an endpoint (none when absent).
fn server(ctx: &mut Ctx<'_>, servers: &Map<String, Value>, name: &str) -> Vec<Endpoint> {
    let p = field("servers", name);
    let Some(s) = opt_object(ctx, servers.get(name), &p) else { return Vec::new() };
    let url = opt_string(ctx, s.get("url"), &field(&p, "url")).unwrap_or_default();
    if url.trim().is_empty() {
        return Vec::new();
    }
    match parse_endpoint_url(url.trim(), Scheme::Ws) {
        Ok(e) if matches!(e.scheme, Scheme::Ws | Scheme::Wss) => vec![e],
        Ok(e) => {
            ctx.err(field(&p, "url"), format!("{:?} is not a ws:// or wss:// URL", e.url));
            Vec::new()
        }
        Err(why) => {
            ctx.err(field(&p, "url"), why);
            Vec::new()
        }
    }
}

fn channel(ctx: &mut Ctx<'_>, name: &str, item: &Map<String, Value>, p: &str, scheme: &str) -> Option<RawResource> {
    if !name.starts_with('/') {
        ctx.err(p, "a channel name is the topic's path: it must start with /");
        return None;
    }
    let channel_open = auth_type_none(ctx, item, p)
        || opt_bool(ctx, item.get("x-wso2-disable-security"), &field(p, "x-wso2-disable-security")) == Some(true);
    // Both open the same upgrade request (GET on the topic): when a channel
    // has both, publish's extensions decide.
    // Scopes: publish's, else subscribe's (a scope written on either one
    // always applies: the upgrade is the same request).
    let mut all_scopes = Vec::new();
    for key in ["publish", "subscribe"] {
        let op_path = field(p, key);
        if let Some(o) = item.get(key).and_then(Value::as_object) {
            let s = scopes(ctx, o.get("x-scopes"), &field(&op_path, "x-scopes"));
            if all_scopes.is_empty() {
                all_scopes = s;
            }
        }
    }
    let mut op = None;
    let mut mapping = None;
    for key in ["publish", "subscribe"] {
        let op_path = field(p, key);
        let Some(o) = opt_object(ctx, item.get(key), &op_path) else { continue };
        if op.is_some() {
            continue;
        }
        let scopes = std::mem::take(&mut all_scopes);
        let security = (!scopes.is_empty()).then(|| {
            let req: SecurityRequirement = [(scheme.to_string(), scopes)].into_iter().collect();
            vec![req]
        });
        mapping = opt_string(ctx, o.get("x-uri-mapping"), &field(&op_path, "x-uri-mapping"))
            .map(|m| (m, field(&op_path, "x-uri-mapping")));
        op = Some(Operation {
            method: Method::Get,
            disable_security: channel_open || auth_type_none(ctx, o, &op_path),
            tier: tier(ctx, o, &op_path),
            security,
            mediation: None,
        });
    }
    let Some(op) = op else {
        ctx.err(p, "the channel has neither `publish` nor `subscribe`: no client could use it");
        return None;
    };
    // The backend path: the mapping's path, `{uri.var.x}` taken from the
    // topic's `{x}`; no mapping → the endpoint's base path with `/`.
    let upstream = match mapping {
        None => "/".to_string(),
        Some((m, at)) => {
            if m.contains('?') {
                ctx.err(
                    at,
                    format!("{m:?}: query parameters in x-uri-mapping are not supported; map the topic to a path"),
                );
                return None;
            }
            let mut out = format!("/{}", m.trim_matches('/'));
            let params = crate::assemble::path_params(name);
            let mut rest = out.as_str();
            let mut rewritten = String::new();
            while let Some(open) = rest.find("{uri.var.") {
                let Some(close) = rest[open..].find('}').map(|c| c + open) else { break };
                let var = &rest[open + "{uri.var.".len()..close];
                if !params.contains(&var) {
                    ctx.err(&at, format!("{{uri.var.{var}}} is not a parameter of the channel {name:?}"));
                    return None;
                }
                rewritten.push_str(&rest[..open]);
                rewritten.push_str(&format!("{{{var}}}"));
                rest = &rest[close + 1..];
            }
            rewritten.push_str(rest);
            out = rewritten;
            if !out.chars().all(|c| c.is_ascii_alphanumeric() || "~/_.-{}".contains(c)) {
                ctx.err(
                    at,
                    format!("{m:?}: the backend path may contain only letters, digits and ~/_.- and {{uri.var.x}}"),
                );
                return None;
            }
            out
        }
    };
    Some(RawResource {
        path: name.to_string(),
        field: p.to_string(),
        operations: vec![op],
        production: None,
        sandbox: None,
        servers: Vec::new(),
        upstream_path: Some(upstream),
    })
}

/// `x-scopes`: a list, or the map form API Manager exports (`"0": creator`).
fn scopes(ctx: &mut Ctx<'_>, v: Option<&Value>, path: &str) -> Vec<String> {
    match v {
        Some(Value::Object(m)) => m
            .iter()
            .filter_map(|(k, v)| match v.as_str() {
                Some(s) => Some(s.to_string()),
                None => {
                    ctx.err(field(path, k), format!("expected a scope name, found {}", kind(v)));
                    None
                }
            })
            .collect(),
        other => opt_string_list(ctx, other, path).unwrap_or_default(),
    }
}
