//! Envoy's ext_authz v3 `Check`: CheckRequest → [`Decision`] → CheckResponse.
//! A denial is a successful RPC carrying a denied response; only a check the
//! enforcer cannot make at all (no configuration yet) is a gRPC error, which
//! Envoy turns into the documented 500/102500.

use std::collections::HashMap;
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::{
    HeaderValue, HeaderValueOption, header_value_option::HeaderAppendAction,
};
use envoy_types::pb::envoy::service::auth::v3::authorization_server::{Authorization, AuthorizationServer};
use envoy_types::pb::envoy::service::auth::v3::{
    CheckRequest, CheckResponse, DeniedHttpResponse, OkHttpResponse, check_response,
};
use envoy_types::pb::envoy::r#type::v3::HttpStatus;
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use envoy_types::pb::google::rpc;
use tonic::{Request, Response, Status};

use enforcer_core::request::SoapVersion;
use enforcer_core::{AuthInfo, Decision, Engine, Input};

use crate::drain::Activity;
use crate::metrics::Metrics;
use crate::traces::Tracer;

/// Metadata key telling the router the enforcer answered (its local-reply
/// mapper leaves such answers alone; adapter/xds/src/translate/local_reply.rs).
pub const REPLY_KEY: &str = "choreo-connect-enforcer-reply";

/// The ext_authz service.
#[derive(Clone)]
pub struct Authz {
    engine: Arc<Engine>,
    metrics: Arc<Metrics>,
    activity: Arc<Activity>,
    tracer: Option<Tracer>,
}

impl Authz {
    /// A tonic service deciding with `engine`, counting in `metrics` and
    /// noting each check in `activity` (the drain on shutdown waits for it
    /// to go quiet).
    pub fn server(
        engine: Arc<Engine>,
        metrics: Arc<Metrics>,
        activity: Arc<Activity>,
        tracer: Option<Tracer>,
        max_message: usize,
    ) -> AuthorizationServer<Authz> {
        AuthorizationServer::new(Authz { engine, metrics, activity, tracer }).max_decoding_message_size(max_message)
    }
}

/// What a check decided, for metrics and traces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// `allow` or `deny`.
    pub decision: &'static str,
    /// Choreo Connect's error code of a denial, empty otherwise.
    pub code: &'static str,
    /// The HTTP status of a denial, 0 otherwise.
    pub status: u16,
}

fn string(s: impl Into<String>) -> Value {
    Value { kind: Some(Kind::StringValue(s.into())) }
}

fn header(key: impl Into<String>, value: impl Into<String>) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue { key: key.into(), value: value.into(), ..Default::default() }),
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        ..Default::default()
    }
}

fn analytics_fields(m: &mut HashMap<String, Value>, info: &AuthInfo, correlation: &str) {
    let mut put = |k: &str, v: &str| {
        if !v.is_empty() {
            m.insert(k.to_string(), string(v));
        }
    };
    put("x-wso2-api-id", &info.api_id);
    put("x-wso2-api-name", &info.api_name);
    put("x-wso2-api-version", &info.api_version);
    put("x-wso2-api-type", &info.api_type);
    put("x-wso2-api-context", &info.api_context);
    put("x-wso2-api-resource-template", &info.resource);
    put("x-wso2-application-name", &info.app_name);
    put("x-wso2-application-id", &info.app_id);
    put("x-wso2-application-owner", &info.app_owner);
    put("x-wso2-application-key-type", info.key_type_str());
    put("x-wso2-auth-type", info.auth_type_str());
    put("x-wso2-user", &info.user);
    put("x-wso2-tier", &info.tier);
    put("x-wso2-correlation-id", correlation);
    if info.quota_exceeded {
        put("x-wso2-quota-exceeded", "true");
    }
}

/// Turns a decision into Envoy's answer.
pub fn response(
    decision: Decision,
    path: &str,
    request_id: &str,
    analytics: bool,
    soap: Option<SoapVersion>,
) -> CheckResponse {
    let mut meta = HashMap::with_capacity(20);
    meta.insert(REPLY_KEY.to_string(), string("Ok"));
    match decision {
        Decision::Allow { set, remove, respond, info } => {
            meta.insert("originalPath".into(), string(path.split('?').next().unwrap_or(path)));
            // The interceptors' authenticationContext (adapter/xds/src/translate/interceptor.lua).
            if let Some(t) = info.auth_type {
                meta.insert("tokenType".into(), string(t.as_str()));
            }
            if !info.token.is_empty() {
                meta.insert("token".into(), string(info.token.clone()));
            }
            if info.key_type.is_some() {
                meta.insert("keyType".into(), string(info.key_type_str()));
            }
            if analytics {
                analytics_fields(&mut meta, &info, request_id);
            }
            CheckResponse {
                status: Some(rpc::Status { code: 0, ..Default::default() }),
                dynamic_metadata: Some(Struct { fields: meta }),
                http_response: Some(check_response::HttpResponse::OkResponse(OkHttpResponse {
                    headers: set.into_iter().map(|(k, v)| header(k.into_owned(), v)).collect(),
                    headers_to_remove: remove,
                    response_headers_to_add: respond.into_iter().map(|(k, v)| header(k, v)).collect(),
                    ..Default::default()
                })),
            }
        }
        Decision::Deny { deny, www_authenticate, info } => {
            meta.insert("correlationID".into(), string(request_id));
            if analytics {
                analytics_fields(&mut meta, &info, request_id);
                if !deny.code.is_empty() {
                    meta.insert("ErrorCode".into(), string(deny.code));
                }
            }
            let mut headers = Vec::with_capacity(2 + deny.headers.len());
            for (k, v) in &deny.headers {
                headers.push(header(*k, v.clone()));
            }
            if let Some(w) = www_authenticate {
                headers.push(header("www-authenticate", w));
            }
            let (grpc_code, status) = (deny.grpc_code(), deny.status);
            let body = match deny.answer {
                Some(answer) => {
                    let (h, body) = *answer;
                    headers.extend(h.into_iter().map(|(k, v)| header(k, v)));
                    body
                }
                None => match soap.and_then(|v| deny.soap_fault(v)) {
                    Some((content_type, fault)) => {
                        headers.push(header("content-type", content_type));
                        fault
                    }
                    None => {
                        let body = deny.body();
                        if !body.is_empty() {
                            headers.push(header("content-type", "application/json"));
                        }
                        body
                    }
                },
            };
            CheckResponse {
                status: Some(rpc::Status { code: grpc_code, ..Default::default() }),
                dynamic_metadata: Some(Struct { fields: meta }),
                http_response: Some(check_response::HttpResponse::DeniedResponse(DeniedHttpResponse {
                    status: Some(HttpStatus { code: i32::from(status) }),
                    headers,
                    body,
                })),
            }
        }
    }
}

/// The request a CheckRequest describes, and its correlation id (the
/// client's `x-request-id`, else Envoy's request id). Absent fields read as
/// empty: the engine then denies, it never guesses.
pub fn input(req: &CheckRequest) -> (Input<'_>, &str) {
    static EMPTY: std::sync::OnceLock<HashMap<String, String>> = std::sync::OnceLock::new();
    let empty = EMPTY.get_or_init(HashMap::new);
    let attrs = req.attributes.as_ref();
    let http = attrs.and_then(|a| a.request.as_ref()).and_then(|r| r.http.as_ref());
    let source = attrs.and_then(|a| a.source.as_ref());
    let source_ip = source
        .and_then(|p| p.address.as_ref())
        .and_then(|a| match &a.address {
            Some(envoy_types::pb::envoy::config::core::v3::address::Address::SocketAddress(s)) => {
                Some(s.address.as_str())
            }
            _ => None,
        })
        .unwrap_or("");
    let headers = http.map(|h| &h.headers).unwrap_or(empty);
    let input = Input {
        method: http.map(|h| h.method.as_str()).unwrap_or(""),
        path: http.map(|h| h.path.as_str()).unwrap_or(""),
        headers,
        ext: attrs.map(|a| &a.context_extensions).unwrap_or(empty),
        peer_cert: source.map(|p| p.certificate.as_str()).unwrap_or(""),
        source_ip,
        // `pack_as_bytes` puts the body in raw_body; without it Envoy sends it as text.
        body: http
            .map(|h| if h.raw_body.is_empty() { h.body.as_bytes() } else { h.raw_body.as_slice() })
            .unwrap_or(&[]),
    };
    let request_id = headers.get("x-request-id").map(String::as_str).or(http.map(|h| h.id.as_str())).unwrap_or("");
    (input, request_id)
}

/// Decides on a CheckRequest.
pub async fn check(engine: &Engine, req: &CheckRequest) -> Result<CheckResponse, Status> {
    checked(engine, req).await.map(|(r, _)| r)
}

/// Decides on a CheckRequest; also says what was decided.
pub async fn checked(engine: &Engine, req: &CheckRequest) -> Result<(CheckResponse, Outcome), Status> {
    let (input, request_id) = input(req);
    let mut decision = engine.check(input).await.map_err(|e| Status::unavailable(e.to_string()))?;
    // The credential reaches the metadata (and so access logs) only where an
    // interceptor is sent the invocation context (the route says so).
    if input.ext("authContext") != "true"
        && let Decision::Allow { info, .. } = &mut decision
    {
        info.token.clear();
    }
    let outcome = match &decision {
        Decision::Allow { .. } => Outcome { decision: "allow", code: "", status: 0 },
        Decision::Deny { deny, .. } => Outcome { decision: "deny", code: deny.code, status: deny.status },
    };
    let settings = engine.settings.load();
    let analytics = settings.as_ref().is_some_and(|s| s.analytics.enabled);
    let soap = settings.as_ref().filter(|s| s.soap_faults).and_then(|_| input.soap_version());
    Ok((response(decision, input.path, request_id, analytics, soap), outcome))
}

#[tonic::async_trait]
impl Authorization for Authz {
    async fn check(&self, request: Request<CheckRequest>) -> Result<Response<CheckResponse>, Status> {
        self.activity.touch();
        let span = self.tracer.as_ref().and_then(|t| t.begin(request.metadata()));
        let started = std::time::Instant::now();
        let result = checked(&self.engine, request.get_ref()).await;
        let seconds = started.elapsed().as_secs_f64();
        match &result {
            Ok((_, o)) => self.metrics.observe_check(o.decision, o.code, seconds),
            Err(_) => self.metrics.observe_check("error", "", seconds),
        }
        if let (Some(t), Some(span)) = (&self.tracer, span) {
            t.end(span, result.as_ref().ok().map(|(_, o)| *o), input(request.get_ref()).1);
        }
        result.map(|(r, _)| Response::new(r))
    }
}

#[cfg(test)]
#[path = "authz_tests.rs"]
mod tests;
