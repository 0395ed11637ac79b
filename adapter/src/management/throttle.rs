//! Throttling policies and blocking conditions over the management API, on
//! API Manager's admin API paths and formats (what apictl and API Manager
//! users know):
//!
//! * `GET /throttling/policies/search?query=type:<sub|app|advanced|custom>`
//! * `GET /throttling/policies/export?name=<n>[&type=<t>]`: apictl's export document
//! * `POST /throttling/policies/import[?overwrite=true]`: the document, as the
//!   body (YAML or JSON) or as the multipart part `file`
//! * `DELETE /throttling/policies/<type>/<name>`
//! * `GET|POST /throttling/deny-policies`, `GET|PATCH|DELETE /throttling/deny-policies/<id>`
//!
//! Every change is written to `[adapter.throttling] filePath` before it is
//! answered and pushed to the enforcers (adapter/src/enforcer/throttle.rs).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use gateway_model::policy::{PolicyKind, ThrottlePolicy, export_document, parse_blocking_condition, parse_policy};
use serde_json::{Value, json};
use tracing::info;

use super::deploy::{ApiError, Rest, error};
use crate::enforcer::throttle::{SOURCE_API, ThrottleError};
use crate::hub::Hub;

fn bad(description: impl Into<String>, problems: &[String]) -> ApiError {
    error(StatusCode::BAD_REQUEST, "Invalid request", description, problems)
}

fn from_catalogue(e: ThrottleError) -> ApiError {
    match e {
        ThrottleError::Exists { .. } => error(StatusCode::CONFLICT, "Resource Already Exists", e.to_string(), &[]),
        ThrottleError::NotFound(m) => error(StatusCode::NOT_FOUND, "Resource Not Found", m, &[]),
        ThrottleError::Refused(m) => error(StatusCode::CONFLICT, "Change refused", m, &[]),
        ThrottleError::File { .. } => error(StatusCode::INTERNAL_SERVER_ERROR, "Internal error", e.to_string(), &[]),
    }
}

/// Runs a catalogue change (a file write) off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ThrottleError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, "Internal error", e.to_string(), &[]))?
        .map_err(from_catalogue)
}

/// API Manager's short type names in lists: `sub`, `app`, `advanced`, `custom`.
fn short(kind: PolicyKind) -> &'static str {
    match kind {
        PolicyKind::Subscription => "sub",
        PolicyKind::Application => "app",
        PolicyKind::Advanced => "advanced",
        PolicyKind::Custom => "custom",
    }
}

fn kind_param(v: Option<&str>) -> Result<Option<PolicyKind>, ApiError> {
    match v.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(t) => PolicyKind::parse(t).map(Some).ok_or_else(|| {
            bad(format!("type: {t:?}: expected sub, app, advanced or custom (or subscription, application)"), &[])
        }),
    }
}

fn summary(p: &ThrottlePolicy) -> Value {
    json!({
        "policyName": p.name,
        "displayName": if p.display_name.is_empty() { &p.name } else { &p.display_name },
        "description": p.description,
        "isDeployed": true,
        "type": short(p.kind),
        "builtin": p.builtin,
    })
}

/// Query parameters of the policy endpoints.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyQuery {
    query: Option<String>,
    name: Option<String>,
    r#type: Option<String>,
    overwrite: Option<String>,
    format: Option<String>,
}

/// `GET /throttling/policies/search?query=type:sub`
pub async fn search(State(rest): State<Arc<Rest>>, Query(q): Query<PolicyQuery>) -> Response {
    let kind = match q.query.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(query) => match query.strip_prefix("type:") {
            Some(t) => kind_param(Some(t)),
            None => Err(bad(format!("query: {query:?}: expected type:<sub|app|advanced|custom>"), &[])),
        },
    };
    match kind {
        Ok(kind) => {
            let list: Vec<Value> = rest.hub.throttle.list(kind).iter().map(summary).collect();
            axum::Json(json!({"count": list.len(), "list": list})).into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// `GET /throttling/policies/export?name=Gold&type=sub[&format=yaml]`
pub async fn export(State(rest): State<Arc<Rest>>, Query(q): Query<PolicyQuery>) -> Response {
    let kind = match kind_param(q.r#type.as_deref()) {
        Ok(k) => k,
        Err(e) => return e.into_response(),
    };
    let Some(name) = q.name.as_deref().map(str::trim).filter(|s| !s.is_empty()) else {
        return bad("name: the policy to export is required", &[]).into_response();
    };
    let Some(p) = rest.hub.throttle.get(kind, name) else {
        let what = kind.map_or("throttling".to_string(), |k| k.as_str().to_string());
        return error(StatusCode::NOT_FOUND, "Resource Not Found", format!("no {what} policy named {name}"), &[])
            .into_response();
    };
    let doc = export_document(&p);
    match q.format.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("json") => axum::Json(doc).into_response(),
        Some("yaml") => match serde_norway::to_string(&doc) {
            Ok(y) => ([(header::CONTENT_TYPE, "application/yaml")], y).into_response(),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "Internal error", e.to_string(), &[]).into_response(),
        },
        Some(other) => bad(format!("format: {other:?}: expected json or yaml"), &[]).into_response(),
    }
}

/// The body of an import: the multipart part `file` (the only part), or the body itself.
async fn import_body(req: Request) -> Result<(String, Vec<u8>), ApiError> {
    let multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    if !multipart {
        let bytes = Bytes::from_request(req, &()).await.map_err(|e| bad(format!("request body: {e}"), &[]))?;
        return Ok(("request body".into(), bytes.to_vec()));
    }
    let mut m = Multipart::from_request(req, &()).await.map_err(|e| bad(format!("multipart body: {e}"), &[]))?;
    // Exactly one part, named `file`: any other part is refused (as management-api.yaml says).
    let mut file = None;
    loop {
        match m.next_field().await {
            Ok(Some(f)) if f.name() == Some("file") && file.is_none() => {
                let name = f.file_name().unwrap_or("file").to_string();
                let bytes = f.bytes().await.map_err(|e| bad(format!("multipart body: {e}"), &[]))?;
                file = Some((name, bytes.to_vec()));
            }
            Ok(Some(f)) => {
                let name = f.name().unwrap_or_default().to_string();
                return Err(bad(format!("multipart part {name:?}: expected only one part, named \"file\""), &[]));
            }
            Ok(None) => {
                return file.ok_or_else(|| bad("no multipart part named \"file\" (the exported policy)", &[]));
            }
            Err(e) => return Err(bad(format!("multipart body: {e}"), &[])),
        }
    }
}

/// `POST /throttling/policies/import[?overwrite=true]`
pub async fn import(
    State(rest): State<Arc<Rest>>,
    q: Result<Query<PolicyQuery>, QueryRejection>,
    req: Request,
) -> Response {
    // The whole body is read before anything is refused: answering with part
    // of it unread closes the connection under a client still sending it,
    // which then gets a reset instead of the answer.
    let (parts, body) = req.into_parts();
    let body = Bytes::from_request(Request::from_parts(parts.clone(), body), &()).await;
    let Query(q) = match q {
        Ok(q) => q,
        Err(e) => return e.into_response(),
    };
    let overwrite = match q.overwrite.as_deref().map(str::trim) {
        None | Some("") | Some("false") => false,
        Some("true") => true,
        Some(other) => return bad(format!("overwrite: expected true or false, found {other:?}"), &[]).into_response(),
    };
    let body = match body {
        Ok(b) => b,
        Err(e) => return bad(format!("request body: {e}"), &[]).into_response(),
    };
    let (file, bytes) = match import_body(Request::from_parts(parts, body.into())).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let policy = match parse_policy(&file, &bytes) {
        Ok(p) => p,
        Err(problems) => {
            let list: Vec<String> = problems.0.iter().map(ToString::to_string).collect();
            return error(
                StatusCode::BAD_REQUEST,
                "Invalid throttling policy",
                format!("{} problem(s) in the policy", list.len()),
                &list,
            )
            .into_response();
        }
    };
    let (kind, name) = (policy.kind, policy.name.clone());
    let hub = Arc::clone(&rest.hub);
    match blocking(move || hub.throttle.import(policy, SOURCE_API, overwrite)).await {
        Ok(replaced) => {
            info!(kind = kind.as_str(), policy = %name, replaced, "throttling policy imported");
            let message = format!("Successfully imported {} Throttling Policy : {name}", kind.title());
            let status = if replaced { StatusCode::OK } else { StatusCode::CREATED };
            (status, axum::Json(json!({"message": message, "policyName": name, "type": short(kind)}))).into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// The first deployed API whose API or resource tier is `name`.
fn api_using(hub: &Hub, name: &str) -> Option<String> {
    hub.read(|s| {
        s.gateway.deployments().find_map(|(_, _, api)| {
            let named = |t: &Option<String>| t.as_deref().is_some_and(|t| t.eq_ignore_ascii_case(name));
            let uses = named(&api.tier) || api.resources.iter().any(|r| r.operations.iter().any(|o| named(&o.tier)));
            uses.then(|| format!("API {} {}", api.name, api.version))
        })
    })
}

/// `DELETE /throttling/policies/<type>/<name>`
pub async fn remove(State(rest): State<Arc<Rest>>, Path((kind, name)): Path<(String, String)>) -> Response {
    let kind = match kind_param(Some(&kind)) {
        Ok(Some(k)) => k,
        Ok(None) => return bad("type: required", &[]).into_response(),
        Err(e) => return e.into_response(),
    };
    let hub = Arc::clone(&rest.hub);
    let n = name.clone();
    // Holding the change lock: no project naming the policy is deployed in between.
    let _change = rest.hub.changes().lock().await;
    match blocking(move || hub.throttle.remove(kind, &n, |t| api_using(&hub, t))).await {
        Ok(()) => {
            info!(kind = kind.as_str(), policy = %name, "throttling policy removed");
            axum::Json(json!({"message": format!("{} policy {name} removed", kind.title())})).into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// `GET /throttling/deny-policies`
pub async fn blocking_list(State(rest): State<Arc<Rest>>) -> Response {
    let list: Vec<Value> = rest.hub.throttle.blocking().iter().map(|b| b.to_json()).collect();
    axum::Json(json!({"count": list.len(), "list": list})).into_response()
}

/// `POST /throttling/deny-policies` `{conditionType, conditionValue, conditionStatus}`
pub async fn blocking_add(State(rest): State<Arc<Rest>>, body: Bytes) -> Response {
    let id = uuid_v4();
    let cond = match parse_blocking_condition(&body, id) {
        Ok(c) => c,
        Err(p) => {
            let list: Vec<String> = p.0.iter().map(ToString::to_string).collect();
            return bad(list.join("; "), &list).into_response();
        }
    };
    let hub = Arc::clone(&rest.hub);
    match blocking(move || hub.throttle.add_blocking(cond)).await {
        Ok(c) => {
            info!(id = %c.condition_id, kind = %c.condition_type, "blocking condition added");
            (StatusCode::CREATED, axum::Json(c.to_json())).into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// `GET /throttling/deny-policies/<id>`
pub async fn blocking_get(State(rest): State<Arc<Rest>>, Path(id): Path<String>) -> Response {
    match rest.hub.throttle.blocking().into_iter().find(|b| b.condition_id == id) {
        Some(b) => axum::Json(b.to_json()).into_response(),
        None => error(StatusCode::NOT_FOUND, "Resource Not Found", format!("no blocking condition {id}"), &[])
            .into_response(),
    }
}

/// `PATCH /throttling/deny-policies/<id>` `{conditionStatus}`
pub async fn blocking_patch(State(rest): State<Arc<Rest>>, Path(id): Path<String>, body: Bytes) -> Response {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Patch {
        condition_status: bool,
    }
    let p: Patch = match super::json::json_object(&body) {
        Ok(p) => p,
        Err(e) => {
            return bad(format!("request body: {e} (expected {{\"conditionStatus\": true|false}})"), &[])
                .into_response();
        }
    };
    let hub = Arc::clone(&rest.hub);
    match blocking(move || hub.throttle.set_blocking_status(&id, p.condition_status)).await {
        Ok(c) => axum::Json(c.to_json()).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `DELETE /throttling/deny-policies/<id>`
pub async fn blocking_remove(State(rest): State<Arc<Rest>>, Path(id): Path<String>) -> Response {
    let hub = Arc::clone(&rest.hub);
    let i = id.clone();
    match blocking(move || hub.throttle.remove_blocking(&i)).await {
        Ok(()) => {
            info!(%id, "blocking condition removed");
            axum::Json(json!({"message": format!("blocking condition {id} removed")})).into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// A random (version 4) UUID.
fn uuid_v4() -> String {
    let mut b = [0u8; 16];
    if aws_lc_rs::rand::fill(&mut b).is_err() {
        // No system randomness: the clock, which is unique enough for one adapter.
        let n = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        b = n.to_le_bytes();
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}
