//! The management REST API (HTTPS, base path `/api/mgw/adapter/0.1`).
//!
//! Deploying (`/oauth2/token`, `/apis`: see [`deploy`]), revoking tokens
//! (`/revoked_tokens`), and what the adapter serves: every connected Envoy
//! with, per resource type, the last version sent and acknowledged and the
//! last NACK (`GET /xds`), and the state of the artifacts folder and the
//! store (`GET /artifacts`).

pub mod auth;
pub mod deploy;
mod json;
pub mod throttle;

use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde_json::json;
use tracing::info;

use self::deploy::Rest;
use self::json::{KeepBody, json_object};
use crate::artifacts::Report;
use crate::hub::Hub;

/// Base path of the management API (as in Choreo Connect).
pub const BASE_PATH: &str = "/api/mgw/adapter/0.1";

#[derive(Clone)]
struct AppState {
    hub: Arc<Hub>,
    report: Arc<Report>,
    rest: Arc<Rest>,
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Basic realm=\"adapter\"")],
        axum::Json(json!({"code": 401, "message": "Credentials are invalid"})),
    )
        .into_response()
}

fn authorized(headers: &HeaderMap, rest: &Rest) -> bool {
    let value = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    value.zip(rest.auth.as_ref()).and_then(|(v, a)| a.check(v)).is_some()
}

/// Most of a refused request's body read before the 401: answering with a
/// body still on its way closes the connection under the client, which then
/// sees a reset instead of the 401. Larger bodies are not waited for.
const UNAUTHORIZED_DRAIN_BYTES: usize = 1024 * 1024;

async fn auth(State(s): State<AppState>, req: Request, next: Next) -> Response {
    if authorized(req.headers(), &s.rest) {
        return next.run(req).await;
    }
    let _ = axum::body::to_bytes(req.into_body(), UNAUTHORIZED_DRAIN_BYTES).await;
    unauthorized()
}

/// Counts `POST /apis` by result (adapter_deploy_requests_total), refusals
/// of the authentication included.
async fn count_deploys(State(hub): State<Arc<Hub>>, req: Request, next: Next) -> Response {
    let deploy = req.method() == axum::http::Method::POST
        && req.uri().path().strip_prefix(BASE_PATH).is_some_and(|p| p.trim_end_matches('/') == "/apis");
    let resp = next.run(req).await;
    if deploy {
        hub.metrics.count_deploy(resp.status().as_u16());
    }
    resp
}

/// `GET /logging`: the log level in force.
async fn log_level() -> Response {
    axum::Json(json!({"level": gateway_runtime::logging::level()})).into_response()
}

/// `PUT /logging` `{"level": "debug"}` (or Choreo Connect's `DEBG`, or a
/// directive such as `info,adapter::ads=debug`): changes it at once, until
/// the next restart.
async fn set_log_level(body: axum::body::Bytes) -> Response {
    let bad = |m: String| {
        (StatusCode::BAD_REQUEST, axum::Json(json!({"code": 400, "message": "Invalid request", "description": m})))
            .into_response()
    };
    let v: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return bad(format!("the body is not JSON: {e}")),
    };
    let Some(level) = v.get("level").and_then(|l| l.as_str()) else {
        return bad("level: expected a string such as \"debug\"".into());
    };
    match gateway_runtime::logging::set_level(level) {
        Ok(l) => axum::Json(json!({"level": l})).into_response(),
        Err(e) => bad(format!("level: {e}")),
    }
}

async fn xds_status(State(s): State<AppState>) -> Response {
    let streams = s.hub.status.streams();
    let labels: serde_json::Map<String, serde_json::Value> = s
        .hub
        .publisher
        .summary()
        .into_iter()
        .map(|(label, (version, types))| {
            let mut t: serde_json::Map<String, serde_json::Value> = types
                .into_iter()
                .map(|(ty, (n, bytes))| (ty.to_string(), json!({"resources": n, "bytes": bytes})))
                .collect();
            // The snapshot's fingerprint: a stream whose `snapshot` equals it and is in sync holds it all.
            t.insert("version".into(), json!(version));
            (label, serde_json::Value::Object(t))
        })
        .collect();
    axum::Json(json!({
        "nacks": s.hub.status.nacks(),
        "labels": labels,
        "streams": streams,
        "enforcers": s.hub.status.enforcer_streams(),
    }))
    .into_response()
}

fn bad_request(message: impl Into<String>) -> Response {
    (StatusCode::BAD_REQUEST, axum::Json(json!({"code": 400, "message": message.into()}))).into_response()
}

/// `POST /revoked_tokens`: `{"token": "<JWT>"}` or `{"jti": "...", "expiryTime": <unix seconds>}`.
/// Without an expiry (a token without `exp`, or no `expiryTime`) the
/// revocation stays until `DELETE /revoked_tokens` removes it.
async fn revoke(State(s): State<AppState>, body: axum::body::Bytes) -> Response {
    use crate::enforcer::revocation::{NO_EXPIRY, Revoked, numeric_date, token_identity};
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        token: Option<String>,
        jti: Option<String>,
        #[serde(rename = "expiryTime")]
        expiry_time: Option<serde_json::Value>,
    }
    let b: Body = match json_object(&body) {
        Ok(b) => b,
        Err(e) => return bad_request(format!("request body: {e}")),
    };
    let expiry = match &b.expiry_time {
        None | Some(serde_json::Value::Null) => NO_EXPIRY,
        Some(v) => match numeric_date(v).filter(|e| *e >= 0) {
            Some(e) => e,
            None => return bad_request(format!("expiryTime: expected Unix seconds, found {v}")),
        },
    };
    let entry = match (b.token, b.jti) {
        (Some(token), None) if b.expiry_time.is_none() => match token_identity(&token) {
            Ok(r) => r,
            Err(e) => return bad_request(e.to_string()),
        },
        (None, Some(jti)) if !jti.trim().is_empty() => Revoked { jti: jti.trim().to_string(), expiry },
        _ => return bad_request("give either \"token\" (a JWT) or \"jti\" (with an optional \"expiryTime\")"),
    };
    let hub = Arc::clone(&s.hub);
    let e = entry.clone();
    match tokio::task::spawn_blocking(move || hub.revocations.revoke(std::slice::from_ref(&e))).await {
        Ok(Ok(version)) => {
            info!(jti = %entry.jti, "token revoked");
            axum::Json(json!({"jti": entry.jti, "expiryTime": entry.expiry, "version": version})).into_response()
        }
        Ok(Err(crate::enforcer::revocation::RevocationError::BadRequest(m))) => bad_request(m),
        Ok(Err(e)) => internal_error(e.to_string()),
        Err(e) => internal_error(e.to_string()),
    }
}

fn internal_error(message: String) -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(json!({"code": 500, "message": message}))).into_response()
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct UnrevokeQuery {
    jti: Option<String>,
    token: Option<String>,
}

/// `DELETE /revoked_tokens?jti=...` (or `?token=<JWT>`): the token works again.
/// 404 when it was not revoked.
async fn unrevoke(State(s): State<AppState>, q: Result<Query<UnrevokeQuery>, QueryRejection>) -> Response {
    let Query(q) = match q {
        Ok(q) => q,
        Err(e) => return bad_request(e.body_text()),
    };
    let jti = match (q.jti, q.token) {
        (Some(j), None) if !j.trim().is_empty() => j.trim().to_string(),
        (None, Some(t)) => match crate::enforcer::revocation::token_identity(&t) {
            Ok(r) => r.jti,
            Err(e) => return bad_request(e.to_string()),
        },
        _ => return bad_request("give either jti or token as a query parameter"),
    };
    let hub = Arc::clone(&s.hub);
    let j = jti.clone();
    match tokio::task::spawn_blocking(move || hub.revocations.unrevoke(&[j])).await {
        Ok(Ok(0)) => {
            (StatusCode::NOT_FOUND, axum::Json(json!({"code": 404, "message": format!("{jti} is not revoked")})))
                .into_response()
        }
        Ok(Ok(_)) => {
            info!(%jti, "revocation removed");
            axum::Json(json!({"jti": jti, "version": s.hub.revocations.version()})).into_response()
        }
        Ok(Err(e)) => internal_error(e.to_string()),
        Err(e) => internal_error(e.to_string()),
    }
}

/// `GET /revoked_tokens`
async fn revoked_list(State(s): State<AppState>) -> Response {
    let list = s.hub.revocations.list();
    axum::Json(json!({"count": list.len(), "list": list})).into_response()
}

async fn artifacts_status(State(s): State<AppState>) -> Response {
    let not_restored = s.rest.not_restored.lock().clone();
    axum::Json(json!({ "entries": s.report.entries(), "storeNotRestored": not_restored })).into_response()
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, axum::Json(json!({"code": 404, "message": "Not Found"}))).into_response()
}

/// Every refusal is JSON (`{code, message, description}`), also those
/// produced before a handler runs (a query string or a multipart body that
/// cannot be read, a method the path does not have).
async fn json_errors(resp: Response) -> Response {
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error())
        || is_json
        || resp.extensions().get::<KeepBody>().is_some()
    {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_string();
    let mut json = json!({"code": status.as_u16(), "message": status.canonical_reason().unwrap_or("Error")});
    if !text.is_empty() {
        json["description"] = json!(text);
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    Response::from_parts(parts, axum::body::Body::from(json.to_string()))
}

/// The router of the management API.
pub fn router(hub: Arc<Hub>, report: Arc<Report>, rest: Arc<Rest>) -> Router {
    // The body limit is enforced while reading the upload (400 with the reason).
    let body_limit = usize::try_from(rest.upload.max_zip_bytes).unwrap_or(usize::MAX).saturating_add(1024 * 1024);
    let counted = Arc::clone(&hub);
    let state = AppState { hub, report, rest: Arc::clone(&rest) };
    let deploys = Router::new()
        .route("/apis", get(deploy::list).post(deploy::deploy).delete(deploy::undeploy))
        .route("/apis/status", get(deploy::status))
        .route("/throttling/policies/search", get(throttle::search))
        .route("/throttling/policies/export", get(throttle::export))
        .route("/throttling/policies/import", post(throttle::import))
        .route("/throttling/policies/{type}/{name}", delete(throttle::remove))
        .route("/throttling/deny-policies", get(throttle::blocking_list).post(throttle::blocking_add))
        .route(
            "/throttling/deny-policies/{id}",
            get(throttle::blocking_get).patch(throttle::blocking_patch).delete(throttle::blocking_remove),
        )
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .with_state(Arc::clone(&rest));
    let api = Router::new()
        .route("/xds", get(xds_status))
        .route("/artifacts", get(artifacts_status))
        .route("/revoked_tokens", get(revoked_list).post(revoke).delete(unrevoke))
        .route("/logging", get(log_level).put(set_log_level))
        .with_state(state.clone())
        .merge(deploys)
        .layer(middleware::from_fn_with_state(state, auth));
    let token = Router::new().route("/oauth2/token", post(deploy::token)).with_state(rest);
    Router::new()
        .nest(BASE_PATH, api.merge(token))
        .fallback(not_found)
        .layer(middleware::map_response(json_errors))
        .layer(middleware::from_fn_with_state(counted, count_deploys))
}
