//! The enforcer's HTTPS server (port 9001): `/testkey`, `/jwks` and the admin
//! API (README.md, "Enforcer admin API"), plus `POST /revoked_tokens` (not in Choreo Connect).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use enforcer_core::throttle::PolicyKind;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use enforcer_core::Engine;

/// Forwards revocations to the adapter (its gRPC answer).
pub type Revoker = Arc<
    dyn Fn(Vec<gateway_proto::api::RevokedToken>) -> futures::future::BoxFuture<'static, Result<(), tonic::Status>>
        + Send
        + Sync,
>;

/// Shared state of the server.
#[derive(Clone)]
pub struct AdminState {
    /// The engine (settings, APIs, revoked tokens).
    pub engine: Arc<Engine>,
    /// How revocations reach the adapter.
    pub revoker: Revoker,
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

fn admin_error(status: StatusCode, message: &str) -> Response {
    json_response(status, json!({"error": true, "message": message}))
}

fn text(status: StatusCode, body: impl Into<String>) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain")], body.into()).into_response()
}

/// `user:password` of a Basic authorization header: `None` when absent,
/// `Some(Err)` when malformed.
fn basic(headers: &HeaderMap) -> Option<Result<(String, String), ()>> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    if !v.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("basic")) {
        return Some(Err(()));
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(v[5..].trim()).ok();
    let Some(text) = decoded.and_then(|d| String::from_utf8(d).ok()) else { return Some(Err(())) };
    match text.split_once(':') {
        Some((u, p)) => Some(Ok((u.to_string(), p.to_string()))),
        None => Some(Err(())),
    }
}

fn same(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

fn query(req_query: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(req_query.unwrap_or("").as_bytes()).into_owned().collect()
}

/// The whole server: one handler, because Choreo Connect checks credentials
/// before methods and paths.
pub async fn handle(State(st): State<AdminState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 64 * 1024).await.unwrap_or_default();
    let Some(s) = st.engine.settings.load_full() else {
        return admin_error(StatusCode::SERVICE_UNAVAILABLE, "The enforcer has not received its configuration yet.");
    };
    let path = parts.uri.path();
    if path == "/testkey"
        && let Some(t) = &s.test_key
    {
        return testkey(t, &parts.headers, &body);
    }
    if path == "/jwks"
        && parts.method == Method::GET
        && let Some(bj) = &s.backend_jwt
    {
        return (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], bj.jwks.clone()).into_response();
    }
    if !s.rest_server {
        return admin_error(StatusCode::NOT_FOUND, "Requested Resource Not Found");
    }
    match basic(&parts.headers) {
        None => return admin_error(StatusCode::UNAUTHORIZED, "No Authorization header provided"),
        Some(Err(())) => {
            return admin_error(
                StatusCode::UNAUTHORIZED,
                "Username/ password invalid. User is not authorized to invoke the resource.",
            );
        }
        Some(Ok((u, p))) => {
            if !(same(&u, &s.management.0) & same(&p, &s.management.1)) {
                return admin_error(
                    StatusCode::UNAUTHORIZED,
                    "Username/ password invalid. User is not authorized to invoke the resource.",
                );
            }
        }
    }
    let q = query(parts.uri.query());
    let param = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if parts.method == Method::POST && path == "/revoked_tokens" {
        return revoke(&st, &body).await;
    }
    if parts.method == Method::PUT && path == "/logging" {
        return set_log_level(&body);
    }
    if parts.method != Method::GET {
        return admin_error(StatusCode::NOT_IMPLEMENTED, "Request Method not implemented.");
    }
    let empty_list = || json_response(StatusCode::OK, json!({"count": 0, "list": []}));
    match path {
        "/apis" => {
            let apis = st.engine.apis.load();
            let list: Vec<Value> = apis
                .iter()
                .filter(|a| param("name").is_none_or(|n| a.raw.title.contains(n)))
                .filter(|a| param("context").is_none_or(|c| a.raw.base_path == c))
                .filter(|a| param("version").is_none_or(|v| a.raw.version == v))
                .filter(|a| param("apiUUID").is_none_or(|u| a.raw.id == u))
                .map(|a| api_json(a))
                .collect();
            json_response(StatusCode::OK, json!({"count": list.len(), "list": list}))
        }
        "/api/info" => {
            let (Some(c), Some(v)) = (param("context"), param("version")) else {
                return admin_error(StatusCode::BAD_REQUEST, "Query parameters context and version could not be empty");
            };
            let apis = st.engine.apis.load();
            match apis.iter().find(|a| a.raw.base_path == c && a.raw.version == v) {
                Some(a) => json_response(
                    StatusCode::OK,
                    json!({
                        "apiId": a.raw.id, "provider": a.raw.provider, "name": a.raw.title,
                        "version": a.raw.version, "context": a.raw.base_path, "tier": a.raw.tier,
                        "apiType": a.raw.api_type, "lcState": a.raw.api_lifecycle_state,
                        "apiUUID": a.raw.id, "defaultVersion": a.raw.is_default_version,
                        "subscriptions": [],
                    }),
                ),
                None => admin_error(
                    StatusCode::NOT_FOUND,
                    &format!("No API information found for context {c} and version {v}"),
                ),
            }
        }
        "/applications" => {
            if param("orgId").is_none_or(str::is_empty) {
                return admin_error(StatusCode::BAD_REQUEST, "Organization id should not be empty.");
            }
            empty_list()
        }
        "/subscriptions" => empty_list(),
        "/throttling_policies/application"
        | "/throttling_policies/subscription"
        | "/throttling_policies/advanced"
        | "/throttling_policies/custom" => {
            let kind = match path.rsplit('/').next() {
                Some("application") => PolicyKind::Application,
                Some("subscription") => PolicyKind::Subscription,
                Some("advanced") => PolicyKind::Advanced,
                _ => PolicyKind::Custom,
            };
            let data = st.engine.throttle.load();
            let list: Vec<Value> = data
                .policies(kind)
                .into_iter()
                .filter(|p| param("name").is_none_or(|n| &*p.name == n))
                .map(|p| policy_json(p))
                .collect();
            json_response(StatusCode::OK, json!({"count": list.len(), "list": list}))
        }
        "/blocking_conditions" => {
            let data = st.engine.throttle.load();
            let list: Vec<Value> = data.all_blocking.iter().map(blocking_json).collect();
            json_response(StatusCode::OK, json!({"count": list.len(), "list": list}))
        }
        "/logging" => json_response(StatusCode::OK, json!({"level": gateway_runtime::logging::level()})),
        "/revoked_tokens" => {
            let revoked = st.engine.memory.revoked.load();
            let wanted = param("token").and_then(|t| enforcer_core::token::parse(t).ok().map(|j| token_id(&j)));
            let tokens: Vec<Value> = revoked
                .iter()
                .filter(|(id, _)| wanted.as_deref().is_none_or(|w| w == &***id))
                .map(|(id, exp)| json!({"token": &**id, "expiredTime": exp}))
                .collect();
            json_response(StatusCode::OK, json!({"count": tokens.len(), "tokens": tokens}))
        }
        _ => admin_error(StatusCode::NOT_FOUND, "Requested Resource Not Found"),
    }
}

/// `PUT /logging` `{"level": "debug"}`: the enforcer's log level, at once
/// (a level, Choreo Connect's `DEBG`..., or a directive such as
/// `info,enforcer=debug`).
fn set_log_level(body: &[u8]) -> Response {
    let v: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return admin_error(StatusCode::BAD_REQUEST, &format!("request body is not JSON: {e}")),
    };
    let Some(level) = v.get("level").and_then(Value::as_str) else {
        return admin_error(StatusCode::BAD_REQUEST, "level: expected a string such as \"debug\"");
    };
    match gateway_runtime::logging::set_level(level) {
        Ok(l) => json_response(StatusCode::OK, json!({"level": l})),
        Err(e) => admin_error(StatusCode::BAD_REQUEST, &format!("level: {e}")),
    }
}

fn limit_json(l: Option<&gateway_proto::throttle::Limit>) -> Value {
    match l {
        Some(l) => json!({"requestCount": l.request_count, "windowSeconds": l.window_seconds}),
        None => Value::Null,
    }
}

/// A policy as Choreo Connect's admin API lists it (`id`, `tenantId`,
/// `name`, `quotaType`...), with its limits.
fn policy_json(p: &enforcer_core::throttle::Policy) -> Value {
    let r = &p.raw;
    let mut v = json!({
        "id": r.name, "tenantId": -1234, "tenantDomain": "carbon.super", "name": r.name,
        "displayName": if r.display_name.is_empty() { &r.name } else { &r.display_name },
        "description": r.description, "quotaType": "requestCount", "contentAware": false,
        "type": p.kind.as_str(), "defaultLimit": limit_json(r.default_limit.as_ref()),
    });
    match p.kind {
        PolicyKind::Subscription => {
            v["stopOnQuotaReach"] = json!(r.stop_on_quota_reach);
            v["rateLimitCount"] = json!(r.burst.as_ref().map_or(0, |b| b.request_count));
            v["rateLimitTimeUnit"] = json!(r.burst.as_ref().map(|b| if b.window_seconds == 1 { "sec" } else { "min" }));
            v["graphQLMaxComplexity"] = json!(r.graphql_max_complexity);
            v["graphQLMaxDepth"] = json!(r.graphql_max_depth);
        }
        PolicyKind::Advanced => {
            v["conditionalGroups"] = r
                .conditional_groups
                .iter()
                .map(|g| {
                    json!({
                        "description": g.description, "limit": limit_json(g.limit.as_ref()),
                        "conditions": g.conditions.iter().map(|c| json!({
                            "type": c.kind, "invertCondition": c.invert, "name": c.name, "value": c.value,
                            "startingIP": c.start_ip, "endingIP": c.end_ip,
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect();
        }
        PolicyKind::Custom => v["keyTemplate"] = json!(r.key_template),
        PolicyKind::Application => {}
    }
    v
}

fn blocking_json(b: &gateway_proto::throttle::BlockingCondition) -> Value {
    json!({
        "conditionId": b.id, "conditionType": b.kind, "conditionValue": b.value, "startingIp": b.start_ip,
        "endingIp": b.end_ip, "invert": b.invert, "conditionStatus": b.enabled,
    })
}

fn token_id(j: &enforcer_core::token::Jwt<'_>) -> String {
    j.claims.get("jti").and_then(Value::as_str).filter(|s| !s.is_empty()).unwrap_or(j.signature).to_string()
}

fn api_json(a: &enforcer_core::apis::Api) -> Value {
    let mut resources = Vec::new();
    for r in a.paths.iter().filter_map(|p| a.resources.get(p)) {
        for op in &r.operations {
            resources.push(json!({
                "httpMethod": op.method, "throttlingPolicy": op.tier,
                "authScheme": if op.disable_security { "None" } else { "Any" },
                "urlPattern": r.path, "scopes": op.scopes,
            }));
        }
    }
    json!({
        "apiId": a.raw.id, "apiProvider": a.raw.provider, "apiName": a.raw.title,
        "apiVersion": a.raw.version, "context": a.raw.base_path, "apiTier": a.raw.tier,
        "apiType": a.raw.api_type, "lcState": a.raw.api_lifecycle_state, "apiUUID": a.raw.id,
        "defaultVersion": a.raw.is_default_version, "resources": resources, "cacheKey": a.raw.id,
        "vhost": a.raw.vhost,
    })
}

/// `POST /revoked_tokens` `{"token": "<JWT>"}` or `{"jti": "...", "expiryTime": n}`:
/// sent to the adapter, which keeps it and pushes it to every enforcer;
/// answered once this enforcer applies it.
async fn revoke(st: &AdminState, body: &Bytes) -> Response {
    let v: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return admin_error(StatusCode::BAD_REQUEST, &format!("request body is not JSON: {e}")),
    };
    let now = enforcer_core::now_secs();
    let entry = if let Some(t) = v.get("token").and_then(Value::as_str) {
        match enforcer_core::token::parse(t) {
            Ok(j) => gateway_proto::api::RevokedToken {
                jti: token_id(&j),
                expirytime: enforcer_core::token::time_claim(&j.claims, "exp").unwrap_or(0),
            },
            Err(e) => return admin_error(StatusCode::BAD_REQUEST, &format!("token: {e}")),
        }
    } else if let Some(j) = v.get("jti").and_then(Value::as_str).filter(|s| !s.trim().is_empty()) {
        gateway_proto::api::RevokedToken {
            jti: j.trim().to_string(),
            expirytime: v.as_object().and_then(|o| enforcer_core::token::time_claim(o, "expiryTime")).unwrap_or(0),
        }
    } else {
        return admin_error(StatusCode::BAD_REQUEST, "give either \"token\" (a JWT) or \"jti\"");
    };
    if entry.expirytime != 0 && entry.expirytime <= now {
        return json_response(
            StatusCode::OK,
            json!({"token": entry.jti, "expiredTime": entry.expirytime, "note": "already expired"}),
        );
    }
    let jti = entry.jti.clone();
    if let Err(e) = (st.revoker)(vec![entry]).await {
        return admin_error(
            StatusCode::BAD_GATEWAY,
            &format!("the adapter did not take the revocation: {}", e.message()),
        );
    }
    // The adapter pushes it back; wait (briefly) until it is in force here.
    for _ in 0..50 {
        if st.engine.memory.revoked.load().contains_key(jti.as_str()) {
            let exp = st.engine.memory.revoked.load().get(jti.as_str()).copied().unwrap_or(0);
            return json_response(StatusCode::OK, json!({"token": jti, "expiredTime": exp}));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    json_response(StatusCode::ACCEPTED, json!({"token": jti, "note": "accepted by the adapter, not yet applied here"}))
}

fn testkey(t: &enforcer_core::settings::TestKeySettings, headers: &HeaderMap, body: &[u8]) -> Response {
    let (user, pass) = match basic(headers) {
        None => {
            return text(
                StatusCode::UNAUTHORIZED,
                "User is NOT authorized to generate a token. Please provide a valid Authorization header to continue.",
            );
        }
        Some(Err(())) => return text(StatusCode::BAD_REQUEST, "Error occurred while processing the request."),
        Some(Ok(up)) => up,
    };
    let ok = t.users.iter().any(|(u, p)| same(u, &user) & same(p, &pass));
    if !ok {
        return text(StatusCode::UNAUTHORIZED, "Wrong username or password. Please provide valid credentials.");
    }
    let scope = std::str::from_utf8(body)
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| *k == "scope")
        .map(|(_, v)| v.to_string())
        .next_back();
    let now = enforcer_core::now_secs();
    let mut claims = serde_json::Map::new();
    claims.insert("iss".into(), json!(t.issuer));
    claims.insert("aud".into(), json!("http://org.wso2.apimgt/gateway"));
    claims.insert("sub".into(), json!(user));
    claims.insert("keytype".into(), json!("PRODUCTION"));
    claims.insert("iat".into(), json!(now));
    claims.insert("exp".into(), json!(now + t.validity));
    claims.insert("jti".into(), json!(enforcer_core::backend_jwt::uuid_v4()));
    if let Some(s) = scope {
        claims.insert("scope".into(), json!(s));
    }
    let header = json!({"typ": "JWT", "alg": "RS256", "x5t": t.signer.x5t}).to_string();
    match t.signer.sign(enforcer_core::signer::RsaAlg::Rs256, &header, &Value::Object(claims).to_string()) {
        Ok(jwt) => text(StatusCode::OK, jwt),
        Err(e) => {
            tracing::error!(error = %e, "test key signing failed");
            text(StatusCode::INTERNAL_SERVER_ERROR, "Error occurred while processing the request.")
        }
    }
}
