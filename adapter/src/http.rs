//! The management REST API (HTTPS, base path `/api/mgw/adapter/0.1`).
//!
//! For now it reports what the adapter serves: every connected Envoy with,
//! per resource type, the last version sent and acknowledged and the last
//! NACK (`GET /xds`), and the state of the artifacts folder (`GET /artifacts`).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use gateway_config::model::User;
use serde_json::json;
use subtle::ConstantTimeEq;
use tracing::info;

use crate::artifacts::Report;
use crate::hub::Hub;

/// Base path of the management API (as in Choreo Connect).
pub const BASE_PATH: &str = "/api/mgw/adapter/0.1";

#[derive(Clone)]
struct AppState {
    hub: Arc<Hub>,
    report: Arc<Report>,
    users: Arc<Vec<User>>,
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Basic realm=\"adapter\"")],
        axum::Json(json!({"code": 401, "message": "Credentials are invalid"})),
    )
        .into_response()
}

fn authorized(headers: &HeaderMap, users: &[User]) -> bool {
    let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else { return false };
    let Some(encoded) = value.strip_prefix("Basic ").or_else(|| value.strip_prefix("basic ")) else { return false };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else { return false };
    let Ok(text) = String::from_utf8(decoded) else { return false };
    let Some((user, pass)) = text.split_once(':') else { return false };
    users.iter().any(|u| {
        let name_ok: bool = u.username.as_bytes().ct_eq(user.as_bytes()).into();
        let pass_ok: bool = u.password.as_bytes().ct_eq(pass.as_bytes()).into();
        name_ok & pass_ok
    })
}

async fn auth(State(s): State<AppState>, req: Request, next: Next) -> Response {
    if authorized(req.headers(), &s.users) { next.run(req).await } else { unauthorized() }
}

async fn xds_status(State(s): State<AppState>) -> Response {
    let streams = s.hub.streams();
    let labels: serde_json::Map<String, serde_json::Value> = s
        .hub
        .summary()
        .into_iter()
        .map(|(label, types)| {
            let t: serde_json::Map<String, serde_json::Value> = types
                .into_iter()
                .map(|(ty, (n, bytes))| (ty.to_string(), json!({"resources": n, "bytes": bytes})))
                .collect();
            (label, serde_json::Value::Object(t))
        })
        .collect();
    axum::Json(json!({
        "nacks": s.hub.nacks(),
        "labels": labels,
        "streams": streams,
        "enforcers": s.hub.enforcer_streams(),
    }))
    .into_response()
}

fn bad_request(message: impl Into<String>) -> Response {
    (StatusCode::BAD_REQUEST, axum::Json(json!({"code": 400, "message": message.into()}))).into_response()
}

/// `POST /revoked_tokens`: `{"token": "<JWT>"}` or `{"jti": "...", "expiryTime": <unix seconds>}`.
async fn revoke(State(s): State<AppState>, body: axum::body::Bytes) -> Response {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        token: Option<String>,
        jti: Option<String>,
        #[serde(rename = "expiryTime")]
        expiry_time: Option<i64>,
    }
    let b: Body = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return bad_request(format!("request body: {e}")),
    };
    let now = crate::hub::now_secs();
    let entry = match (b.token, b.jti) {
        (Some(token), None) => match crate::enforcer::revocation::token_identity(&token, now) {
            Ok(r) => r,
            Err(e) => return bad_request(e.to_string()),
        },
        (None, Some(jti)) if !jti.trim().is_empty() => {
            crate::enforcer::revocation::Revoked { jti: jti.trim().to_string(), expiry: b.expiry_time.unwrap_or(0) }
        }
        _ => return bad_request("give either \"token\" (a JWT) or \"jti\""),
    };
    match s.hub.revoke(std::slice::from_ref(&entry)) {
        Ok(version) => {
            info!(jti = %entry.jti, "token revoked");
            axum::Json(json!({"jti": entry.jti, "expiryTime": entry.expiry, "version": version})).into_response()
        }
        Err(crate::enforcer::revocation::RevocationError::BadRequest(m)) => bad_request(m),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(json!({"code": 500, "message": e.to_string()})))
            .into_response(),
    }
}

/// `GET /revoked_tokens`
async fn revoked_list(State(s): State<AppState>) -> Response {
    let list = s.hub.revoked_list();
    axum::Json(json!({"count": list.len(), "list": list})).into_response()
}

async fn artifacts_status(State(s): State<AppState>) -> Response {
    axum::Json(json!({ "entries": s.report.entries() })).into_response()
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, axum::Json(json!({"code": 404, "message": "Not Found"}))).into_response()
}

/// The router of the management API.
pub fn router(hub: Arc<Hub>, report: Arc<Report>, users: Vec<User>) -> Router {
    let state = AppState { hub, report, users: Arc::new(users) };
    let api = Router::new()
        .route("/xds", get(xds_status))
        .route("/artifacts", get(artifacts_status))
        .route("/revoked_tokens", get(revoked_list).post(revoke))
        .layer(middleware::from_fn_with_state(state.clone(), auth))
        .with_state(state);
    Router::new().nest(BASE_PATH, api).fallback(not_found)
}
