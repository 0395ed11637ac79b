//! Deploying over the management API, as WSO2's `apictl mg` expects it
//! (README.md, "Management API"): `POST /oauth2/token`, `POST /apis` (multipart part `file`,
//! `override`), `DELETE /apis`, `GET /apis`.
//!
//! As in Choreo Connect, an API is deployed per vhost: its identity is
//! (organization, vhost, API id). A project deployed without override to a
//! vhost that does not have it yet stands beside the same API on other
//! vhosts; a deploy with override replaces it on the project's vhosts only;
//! `DELETE /apis` takes it off one vhost (`vhost=`) or all.
//!
//! Better than Choreo Connect: a bad project is a 400 listing every problem
//! (not a bare 500), uploads are bounded, a deploy applies fully or not at
//! all, deploys are serialized, and an answered deploy survives `kill -9`
//! (the project is in the store before the 200 goes out; see [`crate::store`]).
//! Disk writes run off the async workers and outside the state's lock.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::{Multipart, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use deployment::{Listed, Refusal, Selection, parts};
use gateway_config::model::Upload;
use gateway_model::{Deployment, ParseOptions, Problems, Project, ProjectFiles, ZipLimits, parse_project};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tracing::{info, warn};

use super::auth::Auth;
use super::json::{KeepBody, json_object};
use crate::hub::{Hub, State as HubState};
use crate::status::deploy_status;
use crate::store::{Change, Corrupt, Placement, Store, StoreError};

/// What the deploy endpoints need.
pub struct Rest {
    /// The adapter's state.
    pub hub: Arc<Hub>,
    /// Where deployed projects are kept.
    pub store: Store,
    /// How projects are parsed.
    pub parse_opts: Arc<ParseOptions>,
    /// Credentials (none when the management API is off).
    pub auth: Option<Auth>,
    /// Upload limits.
    pub upload: Upload,
    /// Stored entries that could not be restored at start-up.
    pub not_restored: Mutex<Vec<Corrupt>>,
}

/// A refusal, answered with Choreo Connect's `Error` body:
/// `{code, message, description, error: [{code, message}]}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    description: String,
    problems: Vec<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({"code": self.status.as_u16(), "message": self.message});
        if !self.description.is_empty() {
            body["description"] = json!(self.description);
        }
        if !self.problems.is_empty() {
            let code = self.status.as_u16().to_string();
            body["error"] = Value::Array(self.problems.iter().map(|p| json!({"code": code, "message": p})).collect());
        }
        (self.status, axum::Json(body)).into_response()
    }
}

/// An [`ApiError`].
pub fn error(
    status: StatusCode,
    message: impl Into<String>,
    description: impl Into<String>,
    problems: &[String],
) -> ApiError {
    ApiError { status, message: message.into(), description: description.into(), problems: problems.to_vec() }
}

fn bad_project(problems: &Problems) -> ApiError {
    let list: Vec<String> = problems.0.iter().map(ToString::to_string).collect();
    error(StatusCode::BAD_REQUEST, "Invalid API project", format!("{} problem(s) in the project", list.len()), &list)
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    error(StatusCode::INTERNAL_SERVER_ERROR, "Internal error", e.to_string(), &[])
}

/// Runs blocking work (disk, translation) off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(internal)
}

/// Writes `changes` to the store (durable), then `apply`s the change to the
/// state and publishes it, both off the async workers. The caller holds the
/// change lock and has checked the change, so `apply` cannot be refused; a
/// failed store write changes nothing. Returns the milliseconds spent storing
/// and applying.
async fn commit<F>(rest: &Arc<Rest>, changes: Vec<Change>, apply: F) -> Result<(f64, f64), ApiError>
where
    F: FnOnce(&mut HubState) -> Result<(), ApiError> + Send + 'static,
{
    let t = std::time::Instant::now();
    let r = Arc::clone(rest);
    blocking(move || r.store.apply(&changes)).await?.map_err(internal)?;
    let stored_ms = t.elapsed().as_secs_f64() * 1000.0;
    let t = std::time::Instant::now();
    let hub = Arc::clone(&rest.hub);
    blocking(move || hub.update(apply)).await?.inspect_err(|e| {
        tracing::error!(error = ?e, "a checked change failed to apply: the store holds it, the routers do not (restart the adapter)");
    })?;
    Ok((stored_ms, t.elapsed().as_secs_f64() * 1000.0))
}

fn placements(deployments: &[Deployment]) -> Vec<Placement> {
    deployments.iter().map(|d| Placement { environment: d.environment.clone(), vhost: d.vhost.clone() }).collect()
}

/// `POST /oauth2/token`: `{"username", "password"}` → `{"accessToken"}`; 401 with no body otherwise.
pub async fn token(State(rest): State<Arc<Rest>>, body: axum::body::Bytes) -> Response {
    #[derive(Deserialize)]
    struct Credentials {
        username: String,
        password: String,
    }
    let Ok(c) = json_object::<Credentials>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "Invalid request",
            "expected {\"username\": ..., \"password\": ...}",
            &[],
        )
        .into_response();
    };
    let valid = |s: &str| s.len() <= 100;
    let issued = rest.auth.as_ref().filter(|_| valid(&c.username) && valid(&c.password));
    match issued.and_then(|a| a.issue(&c.username, &c.password)) {
        Some(t) => axum::Json(json!({"accessToken": t})).into_response(),
        // Choreo Connect's answer, which apictl expects: 401 with no body.
        None => (StatusCode::UNAUTHORIZED, axum::Extension(KeepBody)).into_response(),
    }
}

#[derive(Debug, Deserialize)]
pub struct DeployQuery {
    #[serde(default, rename = "override")]
    r#override: Option<String>,
    /// What older apictl builds sent.
    #[serde(default)]
    overwrite: Option<String>,
}

fn flag(v: &Option<String>) -> Result<bool, ApiError> {
    match v.as_deref().map(str::trim) {
        None | Some("") | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(error(
            StatusCode::BAD_REQUEST,
            "Invalid request",
            format!("override: expected true or false, found {other:?}"),
            &[],
        )),
    }
}

/// Reads the `file` part, refusing more than `max` bytes.
async fn read_file_part(mut multipart: Multipart, max: u64) -> Result<Vec<u8>, ApiError> {
    let bad = |m: String| error(StatusCode::BAD_REQUEST, "Invalid request", m, &[]);
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => return Err(bad("no multipart part named \"file\" (the zipped API project)".into())),
            Err(e) => return Err(bad(format!("multipart body: {e}"))),
        };
        if field.name() != Some("file") {
            continue;
        }
        let mut field = field;
        let mut bytes = Vec::new();
        loop {
            match field.chunk().await {
                Ok(Some(chunk)) => {
                    bytes.extend_from_slice(&chunk);
                    if bytes.len() as u64 > max {
                        return Err(bad(format!(
                            "the zip is larger than the limit of {max} bytes ([adapter.server.upload] maxZipBytes)"
                        )));
                    }
                }
                Ok(None) => return Ok(bytes),
                Err(e) => return Err(bad(format!("multipart body: {e}"))),
            }
        }
    }
}

/// A refused change: 409 with Choreo Connect's message for the kind.
fn refused(r: Refusal) -> ApiError {
    let description = r.to_string();
    match r {
        Refusal::Exists { .. } => error(StatusCode::CONFLICT, "API already exists", description, &[]),
        Refusal::Conflicts(problems) => {
            error(StatusCode::CONFLICT, "API conflicts with a deployed API", description, &problems)
        }
        Refusal::NotOurs { .. } => {
            error(StatusCode::CONFLICT, "API deployed from the artifacts folder", description, &[])
        }
    }
}

/// `POST /apis`
pub async fn deploy(State(rest): State<Arc<Rest>>, Query(q): Query<DeployQuery>, multipart: Multipart) -> Response {
    let replace = match (flag(&q.r#override), flag(&q.overwrite)) {
        (Ok(a), Ok(b)) => a || b,
        (Err(r), _) | (_, Err(r)) => return r.into_response(),
    };
    let zip = match read_file_part(multipart, rest.upload.max_zip_bytes).await {
        Ok(z) => z,
        Err(r) => return r.into_response(),
    };
    let limits = ZipLimits {
        max_entries: usize::try_from(rest.upload.max_entries).unwrap_or(usize::MAX),
        max_total_bytes: rest.upload.max_uncompressed_bytes,
        max_ratio: rest.upload.max_compression_ratio,
    };
    // Parsing is CPU work: off the async workers.
    let started = std::time::Instant::now();
    let opts = Arc::clone(&rest.parse_opts);
    let zip: Arc<[u8]> = Arc::from(zip);
    let z = Arc::clone(&zip);
    let parsed = tokio::task::spawn_blocking(move || {
        ProjectFiles::from_zip(&z, limits).and_then(|files| parse_project(&files, &opts))
    })
    .await;
    let project = match parsed {
        Ok(Ok(p)) => p,
        Ok(Err(problems)) => return bad_project(&problems).into_response(),
        Err(e) => return internal(e).into_response(),
    };
    let (name, version) = (project.api.name.clone(), project.api.version.clone());
    let at = placements(&project.deployments);
    let parsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    let split = parts(&project.api, &project.deployments);
    // One change at a time: check, store (durable), apply.
    let _change = rest.hub.changes().lock().await;
    let waited_ms = started.elapsed().as_secs_f64() * 1000.0 - parsed_ms;
    if let Err(r) = rest.hub.read(|state| state.deployments.check_upload(&project.api, &split, replace)) {
        return refused(r).into_response();
    }
    let changes = split
        .iter()
        .map(|p| Change::Put {
            source: p.source.clone(),
            zip: Arc::clone(&zip),
            deployments: placements(&p.deployments),
        })
        .collect();
    let apply = move |state: &mut HubState| {
        for p in split {
            let part =
                Project { api: project.api.clone(), deployments: p.deployments, skipped_environments: Vec::new() };
            state.deploy(&p.source, part).map_err(internal)?;
        }
        Ok(())
    };
    let (stored_ms, applied_ms) = match commit(&rest, changes, apply).await {
        Ok(t) => t,
        Err(r) => return r.into_response(),
    };
    info!(
        api = %name, %version, deployments = ?at, parsed_ms, waited_ms, stored_ms, applied_ms,
        total_ms = started.elapsed().as_secs_f64() * 1000.0,
        "API deployed over the REST API"
    );
    axum::Json(json!({
        "apiName": name,
        "version": version,
        "deployments": at.iter().map(|p| json!({"environment": p.environment, "vhost": p.vhost})).collect::<Vec<_>>(),
    }))
    .into_response()
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UndeployQuery {
    api_name: Option<String>,
    version: Option<String>,
    vhost: Option<String>,
    environments: Option<String>,
}

/// `DELETE /apis?apiName=&version=[&vhost=][&environments=a:b]`
pub async fn undeploy(State(rest): State<Arc<Rest>>, Query(q): Query<UndeployQuery>) -> Response {
    let bad = |m: &str| error(StatusCode::BAD_REQUEST, "Invalid request", m, &[]).into_response();
    let Some(name) = q.api_name.filter(|s| !s.trim().is_empty()) else { return bad("apiName is required") };
    let Some(version) = q.version.filter(|s| !s.trim().is_empty()) else { return bad("version is required") };
    let vhost = q.vhost.filter(|s| !s.is_empty());
    let environments: Option<BTreeSet<String>> =
        q.environments.filter(|s| !s.is_empty()).map(|s| s.split(':').map(str::to_string).collect());
    let selection = Selection { vhost: vhost.clone(), environments };
    let _change = rest.hub.changes().lock().await;
    // What goes and what stays, per source; the artifacts folder's APIs are its own.
    let plan = rest.hub.read(|state| state.deployments.plan_undeploy(&name, &version, &selection)).map_err(refused);
    let result: Result<usize, ApiError> = async {
        let plan = plan?;
        let removed = plan.iter().map(|u| u.removed).sum();
        if plan.is_empty() {
            return Ok(0);
        }
        let changes = plan
            .iter()
            .map(|u| match u.kept.is_empty() {
                true => Change::Remove { source: u.source.clone() },
                false => Change::Move { source: u.source.clone(), deployments: placements(&u.kept) },
            })
            .collect();
        commit(&rest, changes, move |state: &mut HubState| state.undeploy_planned(plan).map_err(internal)).await?;
        Ok(removed)
    }
    .await;
    match result {
        Ok(0) => error(
            StatusCode::NOT_FOUND,
            "API not found",
            format!(
                "no deployment of {name} {version} matches{}",
                vhost.map(|v| format!(" on vhost {v}")).unwrap_or_default()
            ),
            &[],
        )
        .into_response(),
        Ok(n) => {
            info!(api = %name, %version, removed = n, "API undeployed over the REST API");
            StatusCode::OK.into_response()
        }
        Err(r) => r.into_response(),
    }
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    query: Option<String>,
    limit: Option<String>,
}

#[derive(Debug, Serialize)]
struct ListItem {
    #[serde(rename = "apiName")]
    api_name: String,
    version: String,
    #[serde(rename = "apiType")]
    api_type: String,
    context: String,
    #[serde(rename = "gateway-envs")]
    gateway_envs: Vec<String>,
    vhost: String,
}

impl From<Listed> for ListItem {
    fn from(l: Listed) -> ListItem {
        ListItem {
            api_name: l.name,
            version: l.version,
            api_type: l.api_type,
            context: l.context,
            gateway_envs: l.environments,
            vhost: l.vhost,
        }
    }
}

/// `GET /apis?query=type:http&limit=N` → `{"total", "count", "list"}`: `total`
/// is every deployed API (one per vhost), `count` the ones listed.
pub async fn list(State(rest): State<Arc<Rest>>, Query(q): Query<ListQuery>) -> Response {
    let bad = |m: String| error(StatusCode::BAD_REQUEST, "Invalid request", m, &[]).into_response();
    let api_type = match q.query.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(v) => match v.split_once(':') {
            Some(("type", t)) if !t.is_empty() => Some(t.to_uppercase()),
            _ => return bad(format!("query: expected type:http or type:ws, found {v:?}")),
        },
    };
    let limit = match q.limit.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => usize::MAX,
        Some(v) => match v.parse::<usize>().ok().filter(|_| v.bytes().all(|b| b.is_ascii_digit())) {
            Some(n) if n >= 1 => n,
            _ => return bad(format!("limit: expected a number from 1, found {v:?}")),
        },
    };
    let items: Vec<ListItem> =
        rest.hub.read(|state| state.deployments.listing()).into_iter().map(ListItem::from).collect();
    // As Choreo Connect: `total` counts every deployed API (per vhost), `count` what is returned.
    let total = items.len();
    let filtered: Vec<ListItem> =
        items.into_iter().filter(|i| api_type.as_deref().is_none_or(|t| i.api_type == t)).collect();
    let list: Vec<ListItem> = filtered.into_iter().take(limit).collect();
    axum::Json(json!({"total": total, "count": list.len(), "list": list})).into_response()
}

/// Deploys what the store holds (at start-up, before xDS is served; the
/// caller holds the change lock). Entries that cannot be read or deployed
/// are reported and skipped. A record of the earlier format (one record for
/// every vhost of an API) is rewritten as one record per vhost.
pub fn restore(rest: &Rest) -> Result<usize, StoreError> {
    let (stored, mut corrupt) = rest.store.load()?;
    let mut restored = 0;
    for s in stored {
        let parsed =
            ProjectFiles::from_zip(&s.zip, ZipLimits::default()).and_then(|f| parse_project(&f, &rest.parse_opts));
        let project = match parsed {
            Ok(p) => p,
            Err(problems) => {
                corrupt.push(Corrupt {
                    file: s.source.clone(),
                    reason: format!("stored project no longer parses: {problems}"),
                });
                continue;
            }
        };
        let deployments: Vec<Deployment> = s
            .deployments
            .iter()
            .map(|p| Deployment { environment: p.environment.clone(), vhost: p.vhost.clone() })
            .collect();
        let split = parts(&project.api, &deployments);
        if split.len() != 1 || split[0].source != s.source {
            let zip: Arc<[u8]> = Arc::from(s.zip.as_slice());
            let mut changes: Vec<Change> = split
                .iter()
                .map(|p| Change::Put {
                    source: p.source.clone(),
                    zip: Arc::clone(&zip),
                    deployments: placements(&p.deployments),
                })
                .collect();
            changes.push(Change::Remove { source: s.source.clone() });
            rest.store.apply(&changes)?;
            info!(from = %s.source, to = ?split.iter().map(|p| &p.source).collect::<Vec<_>>(), "stored deployment rewritten per vhost");
        }
        for p in split {
            let part =
                Project { api: project.api.clone(), deployments: p.deployments, skipped_environments: Vec::new() };
            match rest.hub.update(|state| state.deploy(&p.source, part)) {
                Ok(()) => restored += 1,
                Err(problems) => corrupt.push(Corrupt { file: p.source.clone(), reason: problems.to_string() }),
            }
        }
    }
    for c in &corrupt {
        warn!(entry = %c.file, reason = %c.reason, "stored API not restored");
    }
    *rest.not_restored.lock() = corrupt;
    Ok(restored)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusQuery {
    api_name: Option<String>,
    version: Option<String>,
}

/// `GET /apis/status?apiName=&version=`: where the API is deployed and, per
/// environment, whether every connected router applied it.
///
/// A router has applied it when it holds its environment's current
/// configuration (snapshot fingerprint) in full; a pending NACK of that
/// configuration makes the state `rejected`, with the router's message.
/// `state` is `applied` (every connected router; vacuously with none),
/// `pending`, or `rejected`.
pub async fn status(State(rest): State<Arc<Rest>>, Query(q): Query<StatusQuery>) -> Response {
    let bad = |m: &str| error(StatusCode::BAD_REQUEST, "Invalid request", m, &[]).into_response();
    let Some(name) = q.api_name.filter(|s| !s.trim().is_empty()) else {
        return bad("apiName is required");
    };
    let Some(version) = q.version.filter(|s| !s.trim().is_empty()) else {
        return bad("version is required");
    };
    let deployments: Vec<Deployment> = rest.hub.read(|state| state.deployments.placements(&name, &version));
    if deployments.is_empty() {
        return error(StatusCode::NOT_FOUND, "API not found", format!("{name} {version} is not deployed"), &[])
            .into_response();
    }
    let (overall, per_env) =
        deploy_status(&deployments, &rest.hub.publisher.fingerprints(), &rest.hub.status.streams());
    axum::Json(json!({
        "apiName": name,
        "version": version,
        "state": overall,
        "deployments": placements(&deployments),
        "environments": per_env,
    }))
    .into_response()
}
