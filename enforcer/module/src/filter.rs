//! What the module's filter does, free of the C ABI.
//!
//! The decision is the enforcer's own: the request is described as the
//! ext_authz filter would describe it (a `CheckRequest`: method, path,
//! headers, the route's context extensions) and decided by the same code as
//! the enforcer service (`enforcer::authz::checked`), so the codes,
//! bodies, headers and analytics metadata are the same in both modes. What
//! Envoy is told to do with the answer is what its ext_authz filter does
//! with a `CheckResponse`.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use enforcer::authz::Outcome;
use envoy_types::pb::envoy::service::auth::v3::{
    AttributeContext, CheckRequest, CheckResponse, OkHttpResponse, attribute_context, check_response,
};
use envoy_types::pb::google::protobuf::value::Kind;

use crate::runtime::Shared;

/// Where the ext_authz filter puts the enforcer's metadata; the interceptors
/// (adapter/xds/src/translate/interceptor.lua), the local-reply mapper and
/// analytics read it there, so the module writes it there too.
pub const METADATA_NAMESPACE: &str = "envoy.filters.http.ext_authz";

/// Where Envoy puts the client's TLS certificate for the module (the
/// listener's `set_current_client_cert_details`, adapter/xds/src/translate/listener.rs).
pub const CLIENT_CERT_HEADER: &str = "x-forwarded-client-cert";

/// The URL-encoded PEM in the `Cert` field of Envoy's
/// `x-forwarded-client-cert` value (`Hash=...;Cert="..."`), as ext_authz
/// sends it (`include_peer_certificate`).
pub fn forwarded_cert(xfcc: &str) -> Option<&str> {
    // Envoy sanitises the header and sets one element: the last is ours.
    let element = xfcc.rsplit(',').next()?;
    element.split(';').find_map(|kv| kv.strip_prefix("Cert=")).map(|v| v.trim_matches('"')).filter(|v| !v.is_empty())
}

/// The answer to a request that could not be decided (the engine has no
/// data yet, or a panic was caught at the boundary): the same 500 and body
/// as when the ext_authz enforcer fails (adapter/xds/src/translate/local_reply.rs,
/// `ENFORCER_FAILURE`).
pub const FAILURE_STATUS: u32 = 500;
/// See [`FAILURE_STATUS`].
pub const FAILURE_BODY: &str = r#"{"code":"102500","message":"Unclassified Validation Failure","description":"Error during validating the request"}"#;

/// A decision still being made (it waits on the network: a key set, Redis).
pub type Pending = Pin<Box<dyn Future<Output = Answer> + Send>>;

/// The enforcer's answer: Envoy's ext_authz response and what it decided,
/// or none when it could not decide.
pub type Answer = Option<(CheckResponse, Outcome)>;

/// What the filter tells Envoy after the request headers.
pub enum Headers {
    /// Go on to the next filter (and the upstream).
    Continue,
    /// Stop: the filter answered the request itself.
    Stop,
    /// Stop until the decision is made; then [`Filter::decided`].
    Wait(Pending),
    /// Stop until the request body is in ([`Filter::on_request_body`]): the
    /// route sends it to the enforcer.
    Buffer,
}

/// What the filter tells Envoy after a piece of the request body (or its
/// trailers).
pub enum Body {
    /// Go on.
    Continue,
    /// Hold this piece with the rest, until the body is in.
    Buffer,
    /// Stop: the filter answered the request itself.
    Stop,
    /// Stop until the decision is made; then [`Filter::decided`].
    Wait(Pending),
}

impl From<Headers> for Body {
    fn from(h: Headers) -> Body {
        match h {
            Headers::Continue => Body::Continue,
            Headers::Stop => Body::Stop,
            Headers::Wait(p) => Body::Wait(p),
            Headers::Buffer => Body::Buffer,
        }
    }
}

/// What a filter may do with its request.
pub trait Stream {
    /// Every request header, names as Envoy holds them (lower case, pseudo
    /// headers included); repeated headers once per value.
    fn request_headers(&mut self) -> Vec<(String, String)>;
    /// The client's address as Envoy determined it (`source.address`: after
    /// `use_remote_address` and the trusted hops), with its port.
    fn client_address(&mut self) -> Option<String>;
    /// The request body so far: what Envoy holds for the filter and the
    /// piece just received, at most `limit` bytes of it.
    fn request_body(&mut self, limit: usize) -> Vec<u8>;
    /// The size of [`Stream::request_body`], without copying it.
    fn request_body_size(&mut self) -> usize;
    /// Sets a request header, replacing its values.
    fn set_request_header(&mut self, name: &str, value: &str);
    /// Removes a request header.
    fn remove_request_header(&mut self, name: &str);
    /// Adds a response header.
    fn add_response_header(&mut self, name: &str, value: &str);
    /// Sets a string in the request's dynamic metadata.
    fn set_metadata(&mut self, namespace: &str, key: &str, value: &str);
    /// Makes Envoy choose the route again (after header changes).
    fn clear_route_cache(&mut self);
    /// Answers the request with `status`, `headers` and `body`.
    fn respond(&mut self, status: u32, headers: &[(&str, &str)], body: &[u8]);
    /// Starts a span named `name`, a child of the request's span in Envoy's
    /// trace, when the request is traced.
    fn begin_span(&mut self, name: &str);
    /// Tags and finishes the span begun, if any.
    fn end_span(&mut self, tags: &[(&str, String)]);
}

/// What the filter configuration's name selects.
pub enum Mode {
    /// Decide nothing (the benchmark's spike: what the module itself costs).
    Noop,
    /// The enforcer.
    Enforcer(Arc<Shared>),
}

/// The filter's configuration, shared by Envoy's workers.
pub struct Config {
    /// What it does.
    pub mode: Mode,
    /// Debug builds only, for the tests: `GATEWAY_MODULE_FAULT=panic` in
    /// Envoy's environment makes every decision panic, to prove that a
    /// panic is caught at the boundary and the request refused
    /// (integration/tests/module.rs). Always false in a release build.
    pub panic_on_decide: bool,
}

/// Why a filter configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The filter name is not one the module knows.
    #[error("unknown filter name {0:?} (expected \"enforcer\" or \"noop\")")]
    UnknownFilter(String),
    /// The enforcer could not start.
    #[error("the enforcer cannot start: {0}")]
    Start(String),
}

impl Config {
    /// The configuration of the filter named `name` (the HTTP filter's
    /// `filter_name`).
    pub fn new(name: &str, _config: &[u8]) -> Result<Config, ConfigError> {
        let panic_on_decide =
            cfg!(debug_assertions) && std::env::var("GATEWAY_MODULE_FAULT").is_ok_and(|v| v == "panic");
        match name {
            "noop" => Ok(Config { mode: Mode::Noop, panic_on_decide }),
            "enforcer" => {
                let shared = crate::runtime::shared().map_err(ConfigError::Start)?;
                Ok(Config { mode: Mode::Enforcer(shared), panic_on_decide })
            }
            other => Err(ConfigError::UnknownFilter(other.to_string())),
        }
    }
}

/// One route's settings (adapter/xds/src/translate/module.rs): the context
/// extensions the ext_authz filter would send (the API, the resource
/// template, the clusters) and whether the enforcer reads the request body,
/// as JSON in a `google.protobuf.StringValue`, whose text Envoy hands the
/// module.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Context extensions.
    #[serde(default)]
    pub context: HashMap<String, String>,
    /// The request body goes to the enforcer (GraphQL queries,
    /// `[router.payloadPassingToEnforcer]`); none: the headers only.
    #[serde(default)]
    pub body: Option<BodySettings>,
}

/// How much of the request body the enforcer reads (ext_authz's
/// `with_request_body`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BodySettings {
    /// At most this many bytes.
    pub max_bytes: u32,
    /// A longer body is decided on its first `max_bytes` (true) or refused
    /// with 413 (false).
    #[serde(default)]
    pub allow_partial: bool,
}

impl Route {
    /// Parses a route's configuration.
    pub fn parse(config: &[u8]) -> Result<Route, String> {
        if config.is_empty() {
            return Ok(Route::default());
        }
        serde_json::from_slice(config).map_err(|e| format!("the route's enforcer settings: {e}"))
    }
}

/// The answer to a body longer than a route's `maxBytes` (without
/// `allowPartial`): what Envoy's ext_authz filter answers.
pub const TOO_LARGE_STATUS: u32 = 413;
/// See [`TOO_LARGE_STATUS`].
pub const TOO_LARGE_BODY: &str = "Payload Too Large";

/// One request's filter.
pub struct Filter {
    /// Shared with the other requests' filters: it outlives them all,
    /// whatever order Envoy destroys things in.
    pub config: Arc<Config>,
    /// Headers the enforcer adds to the response (rate-limit headers).
    respond: Vec<(String, String)>,
    /// The route sends the caller's credentials to an interceptor, which
    /// reads them from the metadata.
    auth_context: bool,
    /// The request is a gRPC call (`content-type: application/grpc...`).
    grpc: bool,
    /// The request, described, waiting for its body.
    buffering: Option<(CheckRequest, BodySettings)>,
    /// The cluster of the route Envoy chose before the decision: the route
    /// a request without the cluster header takes (production, else
    /// sandbox; adapter/xds/src/translate/route.rs).
    routed_cluster: String,
}

impl Filter {
    /// A filter for a new request.
    pub fn new(config: Arc<Config>) -> Filter {
        Filter {
            config,
            respond: Vec::new(),
            auth_context: false,
            grpc: false,
            buffering: None,
            routed_cluster: String::new(),
        }
    }

    /// The request's headers arrived: decide, at once when nothing has to
    /// be waited for (a cached token), else later ([`Headers::Wait`]); or,
    /// when the route sends the body to the enforcer, once it is in.
    pub fn on_request_headers(
        &mut self,
        stream: &mut dyn Stream,
        route: Option<&Route>,
        end_of_stream: bool,
    ) -> Headers {
        if !matches!(self.config.mode, Mode::Enforcer(_)) {
            return Headers::Continue;
        }
        // A route without the enforcer's settings never turns the filter on
        // (it is off by default); if one did, nothing could be decided for it.
        let Some(route) = route else {
            fail(stream);
            return Headers::Stop;
        };
        self.auth_context = route.context.get("authContext").is_some_and(|v| v == "true");
        let cluster = |k: &str| route.context.get(k).filter(|c| !c.is_empty());
        self.routed_cluster =
            cluster("prodClusterName").or_else(|| cluster("sandClusterName")).cloned().unwrap_or_default();
        let mut headers = stream.request_headers();
        // The client's address, for the enforcer and the interceptors after
        // it, in the header the ext_authz mode's header-mutation filter sets
        // (adapter/xds/src/translate/listener.rs, `client_ip_mutation`),
        // which module mode does without: whatever a client sent is replaced.
        if let Some(ip) = stream.client_address().as_deref().map(without_port) {
            headers.retain(|(k, _)| k != CLIENT_IP_HEADER);
            stream.set_request_header(CLIENT_IP_HEADER, ip);
            headers.push((CLIENT_IP_HEADER.to_string(), ip.to_string()));
        }
        let cert_header = headers.iter().any(|(k, _)| k == CLIENT_CERT_HEADER);
        self.grpc = headers.iter().any(|(k, v)| k == "content-type" && v.starts_with("application/grpc"));
        let upgrade = is_upgrade(&headers);
        let req = check_request(headers, &route.context);
        // The client certificate's header is the router's, for the enforcer
        // only: it never reaches a backend.
        if cert_header {
            stream.remove_request_header(CLIENT_CERT_HEADER);
        }
        match route.body {
            // An upgrade (WebSocket) has no body to wait for: what follows
            // the headers is the upgraded stream (ext_authz does the same).
            Some(body) if !end_of_stream && !upgrade => {
                self.buffering = Some((req, body));
                Headers::Buffer
            }
            _ => self.decide(stream, req),
        }
    }

    /// The filter is holding the request for its body.
    pub fn buffering(&self) -> bool {
        self.buffering.is_some()
    }

    /// A piece of the request body arrived (`end_of_stream`: the last). A
    /// body the enforcer reads is held until it is in (or, with
    /// `allowPartial`, until `maxBytes` of it are), then decided on.
    pub fn on_request_body(&mut self, stream: &mut dyn Stream, end_of_stream: bool) -> Body {
        let Some((_, settings)) = &self.buffering else { return Body::Continue };
        let max = usize::try_from(settings.max_bytes).unwrap_or(usize::MAX);
        let size = stream.request_body_size();
        if size > max && !settings.allow_partial {
            self.buffering = None;
            stream.respond(TOO_LARGE_STATUS, &[("content-type", "text/plain")], TOO_LARGE_BODY.as_bytes());
            return Body::Stop;
        }
        // Without allowPartial the whole body is decided on (or refused above).
        if end_of_stream || (settings.allow_partial && size >= max) {
            self.decide_with_body(stream, max, size > max).into()
        } else {
            Body::Buffer
        }
    }

    /// The request's trailers arrived: a body still held is all there is.
    pub fn on_request_trailers(&mut self, stream: &mut dyn Stream) -> Body {
        match &self.buffering {
            Some((_, settings)) => {
                let max = usize::try_from(settings.max_bytes).unwrap_or(usize::MAX);
                let partial = stream.request_body_size() > max;
                self.decide_with_body(stream, max, partial).into()
            }
            None => Body::Continue,
        }
    }

    /// Decides on the held request with (at most `max` bytes of) its body,
    /// described as ext_authz describes it (`raw_body`, and whether it was
    /// cut short in `x-envoy-auth-partial-body`).
    fn decide_with_body(&mut self, stream: &mut dyn Stream, max: usize, partial: bool) -> Headers {
        let Some((mut req, _)) = self.buffering.take() else { return Headers::Continue };
        let body = stream.request_body(max);
        if let Some(http) = req.attributes.as_mut().and_then(|a| a.request.as_mut()).and_then(|r| r.http.as_mut()) {
            http.headers.insert("x-envoy-auth-partial-body".to_string(), partial.to_string());
            http.size = i64::try_from(body.len()).unwrap_or(i64::MAX);
            http.raw_body = body;
        }
        self.decide(stream, req)
    }

    /// Decides on `req`: at once when nothing has to be waited for, else
    /// [`Headers::Wait`].
    fn decide(&mut self, stream: &mut dyn Stream, req: CheckRequest) -> Headers {
        let Mode::Enforcer(shared) = &self.config.mode else { return Headers::Continue };
        assert!(!self.config.panic_on_decide, "GATEWAY_MODULE_FAULT=panic");
        let engine = Arc::clone(&shared.engine);
        let metrics = Arc::clone(&shared.metrics);
        // The check's span in the router's trace (the enforcer service's
        // span name and tags, enforcer/src/traces.rs).
        stream.begin_span(enforcer::traces::SPAN_NAME);
        let started = Instant::now();
        let mut decision: Pending = Box::pin(async move {
            let result = enforcer::authz::checked(&engine, &req).await;
            // Counted as the enforcer service counts its checks.
            let seconds = started.elapsed().as_secs_f64();
            match &result {
                Ok((_, o)) => metrics.observe_check(o.decision, o.code, seconds),
                Err(_) => metrics.observe_check("error", "", seconds),
            }
            result.ok()
        });
        // Polled here, in the worker, inside the module's runtime (a key-set
        // fetch or a Redis call started now registers with it).
        let _in_runtime = shared.runtime.enter();
        match decision.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(answer) => self.decided(stream, answer),
            Poll::Pending => Headers::Wait(decision),
        }
    }

    /// Tells Envoy what the enforcer decided: [`Headers::Continue`] to let
    /// the request go on, [`Headers::Stop`] when it was answered.
    pub fn decided(&mut self, stream: &mut dyn Stream, answer: Answer) -> Headers {
        let Some((answer, outcome)) = answer else {
            fail(stream);
            return Headers::Stop;
        };
        stream.end_span(&enforcer::traces::outcome_tags(Some(&outcome)));
        let meta = answer.dynamic_metadata.as_ref().map(|m| &m.fields);
        let allowed = matches!(answer.http_response, Some(check_response::HttpResponse::OkResponse(_)));
        // Each entry costs Envoy a metadata merge (measured: about 3 µs of
        // its CPU per entry), so an allowed request gets only what is read:
        // the analytics fields (present only with analytics on) and the
        // credentials for an interceptor (only on such a route). A denial
        // gets everything (the local-reply mapper and analytics read it).
        let analytics = meta.is_some_and(|m| m.contains_key("x-wso2-api-id"));
        let wanted = |k: &str| match k {
            _ if !allowed => true,
            enforcer::authz::REPLY_KEY => false,
            "originalPath" => analytics,
            "tokenType" | "token" | "keyType" => self.auth_context,
            _ => true,
        };
        for (k, v) in meta.into_iter().flatten().filter(|(k, _)| wanted(k)) {
            if let Some(Kind::StringValue(s)) = &v.kind {
                stream.set_metadata(METADATA_NAMESPACE, k, s);
            }
        }
        match answer.http_response {
            Some(check_response::HttpResponse::OkResponse(ok)) => {
                let reroutes = self.reroutes(&ok);
                for h in ok.headers.iter().filter_map(|h| h.header.as_ref()) {
                    stream.set_request_header(&h.key, &h.value);
                }
                for name in &ok.headers_to_remove {
                    stream.remove_request_header(name);
                }
                self.respond =
                    ok.response_headers_to_add.into_iter().filter_map(|h| h.header).map(|h| (h.key, h.value)).collect();
                if reroutes {
                    stream.clear_route_cache();
                }
                Headers::Continue
            }
            Some(check_response::HttpResponse::DeniedResponse(denied)) => {
                let status = denied.status.map(|s| s.code).unwrap_or(403);
                let grpc = self.grpc;
                let headers: Vec<(&str, &str)> = denied
                    .headers
                    .iter()
                    .filter_map(|h| h.header.as_ref())
                    .map(|h| (h.key.as_str(), h.value.as_str()))
                    // A gRPC client is answered in gRPC (Envoy's local reply
                    // turns the status into grpc-status for a gRPC request),
                    // which another content type would spoil.
                    .filter(|(k, _)| !(grpc && k.eq_ignore_ascii_case("content-type")))
                    .collect();
                if grpc {
                    // Trailers-only gRPC answer: the code the ext_authz
                    // response carries (401 -> UNAUTHENTICATED, ...).
                    let code = answer.status.as_ref().map(|s| s.code).unwrap_or(13).to_string();
                    let message = serde_json::from_str::<serde_json::Value>(&denied.body)
                        .ok()
                        .and_then(|v| v["error_message"].as_str().map(String::from))
                        .unwrap_or_default();
                    let mut h = headers.clone();
                    h.extend([
                        ("content-type", "application/grpc"),
                        ("grpc-status", code.as_str()),
                        ("grpc-message", message.as_str()),
                    ]);
                    stream.respond(200, &h, b"");
                    return Headers::Stop;
                }
                stream.respond(u32::try_from(status).unwrap_or(403), &headers, denied.body.as_bytes());
                Headers::Stop
            }
            // An answer that says nothing is no permission.
            _ => {
                fail(stream);
                Headers::Stop
            }
        }
    }

    /// Whether the headers an allowed request gets can change its route, so
    /// that Envoy must choose it again (ext_authz clears the route cache on
    /// any change; that costs Envoy a second scope and route match, about
    /// 3 µs). Routes match on the path, the method and the cluster header
    /// (route.rs); the enforcer sets the cluster header on every allowed
    /// request, which changes the route only when it names another cluster
    /// than the one the route Envoy chose goes to (the client's cluster
    /// header is removed before routing, listener.rs).
    fn reroutes(&self, ok: &OkHttpResponse) -> bool {
        let routing = |k: &str| k == ":path" || k == ":method" || k == ":authority" || k == "host";
        ok.headers.iter().filter_map(|h| h.header.as_ref()).any(|h| {
            routing(&h.key) || (h.key == enforcer_core::chain::CLUSTER_HEADER && h.value != self.routed_cluster)
        }) || ok.headers_to_remove.iter().any(|k| routing(k) || k == enforcer_core::chain::CLUSTER_HEADER)
    }

    /// The response's headers: adds what the enforcer asked for.
    pub fn on_response_headers(&mut self, stream: &mut dyn Stream) {
        for (k, v) in std::mem::take(&mut self.respond) {
            stream.add_response_header(&k, &v);
        }
    }
}

/// Where the module marks its own failure for the local-reply mapper, which
/// turns it into a SOAP fault for a SOAP request
/// (adapter/xds/src/translate/names.rs, `ENFORCER_FAILURE_KEY`).
pub const FAILURE_KEY: &str = "choreo-connect-enforcer-failure";

/// Answers with the enforcer-failure 500, marked as the enforcer's answer so
/// the local-reply mapper leaves its JSON alone, and as a failure, so that a
/// SOAP request gets it as a fault (as when ext_authz fails).
pub fn fail(stream: &mut dyn Stream) {
    stream.end_span(&enforcer::traces::outcome_tags(None));
    stream.set_metadata(METADATA_NAMESPACE, enforcer::authz::REPLY_KEY, "Ok");
    stream.set_metadata(METADATA_NAMESPACE, FAILURE_KEY, "true");
    stream.respond(FAILURE_STATUS, &[("content-type", "application/json")], FAILURE_BODY.as_bytes());
}

/// The header the router puts the client's address in.
pub const CLIENT_IP_HEADER: &str = enforcer_core::request::CLIENT_IP_HEADER;

/// `127.0.0.1:5432` → `127.0.0.1`, `[::1]:5432` → `::1` (as Envoy's
/// `%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%`); anything else as it is.
fn without_port(address: &str) -> &str {
    if let Some(v6) = address.strip_prefix('[') {
        return v6.split_once(']').map_or(address, |(ip, _)| ip);
    }
    match address.rsplit_once(':') {
        Some((ip, port)) if !ip.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => ip,
        _ => address,
    }
}

/// A WebSocket upgrade (HTTP/1.1 `Upgrade: websocket`, or HTTP/2's
/// extended CONNECT with `:protocol`).
fn is_upgrade(headers: &[(String, String)]) -> bool {
    let has = |name: &str, f: &dyn Fn(&str) -> bool| headers.iter().any(|(k, v)| k == name && f(v));
    (has("upgrade", &|v| v.eq_ignore_ascii_case("websocket"))
        && has("connection", &|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("upgrade"))))
        || (has(":method", &|v| v == "CONNECT") && has(":protocol", &|_| true))
}

/// The request as Envoy's ext_authz filter describes it to the enforcer.
fn check_request(headers: Vec<(String, String)>, ext: &HashMap<String, String>) -> CheckRequest {
    use std::collections::hash_map::Entry;
    let mut map: HashMap<String, String> = HashMap::with_capacity(headers.len());
    for (k, v) in headers {
        // Repeated headers are joined with ',' as ext_authz does.
        match map.entry(k) {
            Entry::Occupied(mut e) => {
                e.get_mut().push(',');
                e.get_mut().push_str(&v);
            }
            Entry::Vacant(e) => {
                e.insert(v);
            }
        }
    }
    let method = map.get(":method").cloned().unwrap_or_default();
    let path = map.get(":path").cloned().unwrap_or_default();
    let host = map.get(":authority").cloned().unwrap_or_default();
    let source = map
        .get(CLIENT_CERT_HEADER)
        .and_then(|x| forwarded_cert(x))
        .map(|cert| attribute_context::Peer { certificate: cert.to_string(), ..Default::default() });
    map.remove(CLIENT_CERT_HEADER);
    // No peer address: the enforcer takes the client's from the router's
    // `x-wso2-client-ip` header, which the virtual host of every route to
    // the enforcer sets (as for ext_authz).
    CheckRequest {
        attributes: Some(AttributeContext {
            source,
            request: Some(attribute_context::Request {
                http: Some(attribute_context::HttpRequest { method, path, host, headers: map, ..Default::default() }),
                ..Default::default()
            }),
            context_extensions: ext.clone(),
            ..Default::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_certificate_is_the_cert_field_of_envoys_header() {
        let pem = "-----BEGIN%20CERTIFICATE-----%0AMIIB%0A-----END%20CERTIFICATE-----%0A";
        let xfcc = format!("Hash=ab12;Cert=\"{pem}\"");
        assert_eq!(forwarded_cert(&xfcc), Some(pem));
        assert_eq!(forwarded_cert("Hash=ab12"), None);
        assert_eq!(forwarded_cert("Hash=ab12;Cert=\"\""), None);
        let req = check_request(
            vec![(":path".into(), "/x".into()), (CLIENT_CERT_HEADER.into(), xfcc.clone())],
            &HashMap::new(),
        );
        let attrs = req.attributes.expect("attributes");
        assert_eq!(attrs.source.expect("peer").certificate, pem);
        let http = attrs.request.and_then(|r| r.http).expect("http");
        assert!(!http.headers.contains_key(CLIENT_CERT_HEADER), "the enforcer sees the certificate, not the header");
    }

    #[test]
    fn only_a_change_routes_match_on_makes_envoy_choose_the_route_again() {
        use envoy_types::pb::envoy::config::core::v3::{HeaderValue, HeaderValueOption};
        let mut f = Filter::new(Arc::new(Config { mode: Mode::Noop, panic_on_decide: false }));
        f.routed_cluster = "prod".into();
        let ok = |set: &[(&str, &str)], remove: &[&str]| OkHttpResponse {
            headers: set
                .iter()
                .map(|(k, v)| HeaderValueOption {
                    header: Some(HeaderValue { key: k.to_string(), value: v.to_string(), ..Default::default() }),
                    ..Default::default()
                })
                .collect(),
            headers_to_remove: remove.iter().map(|k| k.to_string()).collect(),
            ..Default::default()
        };
        let cluster = enforcer_core::chain::CLUSTER_HEADER;
        assert!(!f.reroutes(&ok(&[(cluster, "prod"), ("x-jwt-assertion", "j")], &["authorization"])));
        assert!(f.reroutes(&ok(&[(cluster, "sand")], &[])), "the sandbox route");
        assert!(f.reroutes(&ok(&[(":path", "/other")], &[])), "a rewritten path");
        assert!(f.reroutes(&ok(&[], &[cluster])));
        assert!(!f.reroutes(&ok(&[], &[])));
    }

    /// A request whose body so far is `body` bytes; records answers.
    #[derive(Default)]
    struct Fake {
        body: usize,
        answered: Option<(u32, String)>,
    }

    impl Stream for Fake {
        fn request_headers(&mut self) -> Vec<(String, String)> {
            Vec::new()
        }
        fn client_address(&mut self) -> Option<String> {
            None
        }
        fn request_body(&mut self, limit: usize) -> Vec<u8> {
            vec![b'x'; self.body.min(limit)]
        }
        fn request_body_size(&mut self) -> usize {
            self.body
        }
        fn set_request_header(&mut self, _: &str, _: &str) {}
        fn remove_request_header(&mut self, _: &str) {}
        fn add_response_header(&mut self, _: &str, _: &str) {}
        fn set_metadata(&mut self, _: &str, _: &str, _: &str) {}
        fn clear_route_cache(&mut self) {}
        fn respond(&mut self, status: u32, _: &[(&str, &str)], body: &[u8]) {
            self.answered = Some((status, String::from_utf8_lossy(body).into_owned()));
        }
        fn begin_span(&mut self, _: &str) {}
        fn end_span(&mut self, _: &[(&str, String)]) {}
    }

    #[test]
    fn a_body_is_held_whole_unless_the_route_allows_part_of_it() {
        let held = |body: usize, end: bool, allow_partial: bool| {
            let mut f = Filter::new(Arc::new(Config { mode: Mode::Noop, panic_on_decide: false }));
            f.buffering = Some((CheckRequest::default(), BodySettings { max_bytes: 10, allow_partial }));
            let mut s = Fake { body, ..Fake::default() };
            let b = f.on_request_body(&mut s, end);
            (matches!(b, Body::Buffer), matches!(b, Body::Stop), s.answered)
        };
        // maxBytes so far, more to come: held; decided early only with allowPartial.
        assert_eq!(held(10, false, false), (true, false, None));
        assert_eq!(held(10, false, true), (false, false, None));
        assert_eq!(held(4, false, true), (true, false, None));
        assert_eq!(held(4, true, false), (false, false, None), "the whole body is in");
        // Over maxBytes: 413 without allowPartial, decided on a part with it.
        assert_eq!(held(11, false, false), (false, true, Some((413, "Payload Too Large".to_string()))));
        assert_eq!(held(11, false, true), (false, false, None));
    }

    #[test]
    fn the_client_address_loses_its_port_as_envoys_formatter_drops_it() {
        assert_eq!(without_port("127.0.0.1:45678"), "127.0.0.1");
        assert_eq!(without_port("203.0.113.7:0"), "203.0.113.7");
        assert_eq!(without_port("[2001:db8::1]:443"), "2001:db8::1");
        assert_eq!(without_port("2001:db8::1"), "2001:db8::1");
        assert_eq!(without_port("/run/envoy.sock"), "/run/envoy.sock");
    }

    #[test]
    fn websocket_upgrades_are_told_apart() {
        let h = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>();
        assert!(is_upgrade(&h(&[("connection", "keep-alive, Upgrade"), ("upgrade", "WebSocket")])));
        assert!(is_upgrade(&h(&[(":method", "CONNECT"), (":protocol", "websocket")])));
        assert!(!is_upgrade(&h(&[("upgrade", "websocket")])));
        assert!(!is_upgrade(&h(&[(":method", "CONNECT")])));
        assert!(!is_upgrade(&h(&[(":method", "POST"), ("content-type", "application/json")])));
    }

    #[test]
    fn repeated_headers_are_joined_as_ext_authz_joins_them() {
        let req = check_request(
            vec![(":method".into(), "GET".into()), ("x-a".into(), "1".into()), ("x-a".into(), "2".into())],
            &HashMap::new(),
        );
        let http = req.attributes.and_then(|a| a.request).and_then(|r| r.http).expect("http");
        assert_eq!(http.headers["x-a"], "1,2");
        assert_eq!(http.method, "GET");
    }

    #[test]
    fn a_route_configuration_is_the_context_extensions_and_the_body_settings_as_json() {
        let r = Route::parse(br#"{"context":{"path":"/pets","vHost":"localhost"}}"#).expect("parses");
        assert_eq!(r.context.get("path").map(String::as_str), Some("/pets"));
        assert_eq!(r.body, None);
        let r = Route::parse(br#"{"body":{"allowPartial":false,"maxBytes":1024},"context":{}}"#).expect("parses");
        assert_eq!(r.body, Some(BodySettings { max_bytes: 1024, allow_partial: false }));
        assert_eq!(Route::parse(b"").expect("empty"), Route::default());
        let e = Route::parse(br#"{"context":{"path": 1}}"#).expect_err("not a string");
        assert!(e.starts_with("the route's enforcer settings: "), "{e}");
        let e = Route::parse(br#"{"contexts":{}}"#).expect_err("unknown field");
        assert!(e.contains("unknown field `contexts`"), "{e}");
    }
}
