//! Message mediation of an operation: interceptors (`x-wso2-request-interceptor`,
//! `x-wso2-response-interceptor`), operation policies (README.md, "Operation
//! policies") and the examples a mocked API answers with.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::endpoint::parse_endpoint_url;
use crate::model::{Endpoint, Method, Scheme};
use crate::problem::Ctx;
use crate::value::{field, kind, opt_object, opt_string, opt_string_list, opt_u64};

/// What an interceptor service is sent (`includes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Includes {
    /// `request_headers`
    pub request_headers: bool,
    /// `request_body`
    pub request_body: bool,
    /// `request_trailers`
    pub request_trailers: bool,
    /// `response_headers`
    pub response_headers: bool,
    /// `response_body`
    pub response_body: bool,
    /// `response_trailers`
    pub response_trailers: bool,
    /// `invocation_context`
    pub invocation_context: bool,
}

/// The names `includes` accepts.
pub const INCLUDE_NAMES: &[&str] = &[
    "request_headers",
    "request_body",
    "request_trailers",
    "response_headers",
    "response_body",
    "response_trailers",
    "invocation_context",
];

impl Includes {
    /// Sets the part named `name`; false for an unknown name.
    pub fn set(&mut self, name: &str) -> bool {
        let slot = match name {
            "request_headers" => &mut self.request_headers,
            "request_body" => &mut self.request_body,
            "request_trailers" => &mut self.request_trailers,
            "response_headers" => &mut self.response_headers,
            "response_body" => &mut self.response_body,
            "response_trailers" => &mut self.response_trailers,
            "invocation_context" => &mut self.invocation_context,
            _ => return false,
        };
        *slot = true;
        true
    }

    /// The parts as their names, in [`INCLUDE_NAMES`] order.
    pub fn names(&self) -> Vec<&'static str> {
        let flags = [
            self.request_headers,
            self.request_body,
            self.request_trailers,
            self.response_headers,
            self.response_body,
            self.response_trailers,
            self.invocation_context,
        ];
        INCLUDE_NAMES.iter().zip(flags).filter(|(_, on)| *on).map(|(n, _)| *n).collect()
    }
}

/// An interceptor service (Choreo Connect's contract: `POST <service>/api/v1/handle-request`
/// and `/api/v1/handle-response`; the path of the service URL is ignored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Interceptor {
    /// The service (scheme, host, port).
    pub service: Endpoint,
    /// What it is sent.
    pub includes: Includes,
    /// `clusterTimeout`, seconds: the connect timeout of the service's cluster
    /// (default `[router] clusterTimeoutInSeconds`).
    pub cluster_timeout_s: Option<u32>,
    /// `requestTimeout`, seconds: how long a call may take (default
    /// `[router] clusterTimeoutInSeconds`).
    pub request_timeout_s: Option<u32>,
}

/// One action of an operation policy, after its definition was rendered and
/// checked.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase", tag = "action")]
pub enum PolicyAction {
    /// `SET_HEADER`
    SetHeader {
        /// Header name.
        name: String,
        /// Value.
        value: String,
    },
    /// `REMOVE_HEADER`
    RemoveHeader {
        /// Header name.
        name: String,
    },
    /// `REWRITE_RESOURCE_PATH`: the upstream path below the endpoint's base
    /// path; `{uri.var.<param>}` stands for a path parameter's value.
    RewritePath {
        /// The new resource path.
        path: String,
        /// Keep the request's query string.
        include_query: bool,
    },
    /// `REWRITE_RESOURCE_METHOD`
    RewriteMethod {
        /// The method the backend sees.
        method: Method,
    },
    /// `ADD_QUERY`
    AddQuery {
        /// Parameter name.
        name: String,
        /// Value.
        value: String,
    },
    /// `CALL_INTERCEPTOR_SERVICE`
    CallInterceptor(Interceptor),
    /// `OPA`: a remote OPA server, or a Rego module of the project evaluated
    /// in the enforcer.
    Opa(OpaPolicy),
}

/// The `OPA` action.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OpaPolicy {
    /// `serverURL` (remote mode; empty with `regoFile`).
    pub server_url: String,
    /// `policy`: the package path, e.g. `example/authz` or `example.authz`.
    pub policy: String,
    /// `rule` (default `allow`).
    pub rule: String,
    /// `token`: sent as `Authorization: Bearer <token>`.
    #[serde(skip_serializing)]
    pub token: String,
    /// `additionalProperties`: names of extra request properties for the input.
    pub additional_properties: Vec<String>,
    /// `sendAccessToken`: put the caller's token in the input.
    pub send_access_token: bool,
    /// `maxOpenConnections`
    pub max_open_connections: Option<u32>,
    /// `maxPerRoute`
    pub max_per_route: Option<u32>,
    /// `connectionTimeout`, seconds.
    pub connection_timeout_s: Option<u32>,
    /// Embedded mode: the Rego module (`regoFile`, a file of the project).
    pub rego: Option<String>,
}

/// Mediation of one operation.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Mediation {
    /// Request-flow policies, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub request: Vec<PolicyAction>,
    /// Response-flow policies, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub response: Vec<PolicyAction>,
    /// The request interceptor (operation > path item > API; a
    /// `CALL_INTERCEPTOR_SERVICE` request policy wins).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_interceptor: Option<Box<Interceptor>>,
    /// The response interceptor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_interceptor: Option<Box<Interceptor>>,
    /// Examples of a mocked API's operation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mock: Option<MockConfig>,
}

impl Mediation {
    /// No policies, interceptors or mock.
    pub const EMPTY: Mediation = Mediation {
        request: Vec::new(),
        response: Vec::new(),
        request_interceptor: None,
        response_interceptor: None,
        mock: None,
    };

    /// True when the operation needs nothing beyond plain routing.
    pub fn is_empty(&self) -> bool {
        self == &Mediation::EMPTY
    }

    /// As [`crate::model::Operation`] keeps it: `None` when empty.
    pub fn boxed(self) -> Option<Box<Mediation>> {
        (!self.is_empty()).then(|| Box::new(self))
    }
}

/// The responses a mocked operation can give (from the OpenAPI examples).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MockConfig {
    /// By status code (`200`, `404`, `default`), in definition order.
    pub responses: Vec<MockResponse>,
}

/// One status code of a mocked operation.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MockResponse {
    /// `200`, ..., or `default`.
    pub code: String,
    /// Response headers with an example value.
    pub headers: Vec<(String, String)>,
    /// By media type, in definition order.
    pub content: Vec<MockContent>,
}

/// The examples of one media type.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MockContent {
    /// The media type.
    pub content_type: String,
    /// (name, body): `example` has the name `""`; `examples.<name>.value` its name.
    pub examples: Vec<(String, String)>,
}

/// Parses an `x-wso2-request-interceptor` / `x-wso2-response-interceptor` value.
pub(crate) fn parse_interceptor(ctx: &mut Ctx<'_>, v: &Value, path: &str) -> Option<Interceptor> {
    let obj = opt_object(ctx, Some(v), path)?;
    let url = opt_string(ctx, obj.get("serviceURL"), &field(path, "serviceURL"));
    let Some(url) = url.filter(|u| !u.trim().is_empty()) else {
        ctx.err(field(path, "serviceURL"), "missing: an interceptor needs the URL of its service");
        return None;
    };
    let service = match parse_endpoint_url(&url, Scheme::Http) {
        Ok(e) if matches!(e.scheme, Scheme::Http | Scheme::Https) => e,
        Ok(_) => {
            ctx.err(
                field(path, "serviceURL"),
                format!("{url:?}: an interceptor service is reached over http or https"),
            );
            return None;
        }
        Err(why) => {
            ctx.err(field(path, "serviceURL"), why);
            return None;
        }
    };
    let includes = parse_includes(ctx, obj.get("includes"), &field(path, "includes"))?;
    let timeout = |ctx: &mut Ctx<'_>, key: &str| -> Option<u32> {
        let at = field(path, key);
        let n = opt_u64(ctx, obj.get(key), &at)?;
        if n == 0 || n > 3600 {
            ctx.err(at, format!("{n}: a timeout is 1 to 3600 seconds"));
            return None;
        }
        Some(n as u32)
    };
    let cluster_timeout_s = timeout(ctx, "clusterTimeout");
    let request_timeout_s = timeout(ctx, "requestTimeout");
    Some(Interceptor { service, includes, cluster_timeout_s, request_timeout_s })
}

/// `includes`: a list of part names (or, in a policy parameter, a comma-separated string).
pub(crate) fn parse_includes(ctx: &mut Ctx<'_>, v: Option<&Value>, path: &str) -> Option<Includes> {
    let names = match v {
        Some(Value::String(s)) => s.split(',').map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect(),
        other => opt_string_list(ctx, other, path).unwrap_or_default(),
    };
    let mut inc = Includes::default();
    let mut ok = true;
    for n in names {
        if !inc.set(&n.to_ascii_lowercase()) {
            ctx.err(path, format!("unknown part {n:?} (expected some of {})", INCLUDE_NAMES.join(", ")));
            ok = false;
        }
    }
    ok.then_some(inc)
}

/// The examples of one OpenAPI operation (`responses`), for a mocked API.
/// OpenAPI 3: `content.<type>.example` and `content.<type>.examples.<name>.value`;
/// OpenAPI 2: `examples.<type>`. Header examples: `headers.<name>.example`
/// (or `schema.example`).
pub(crate) fn mock_config(ctx: &mut Ctx<'_>, op: &Map<String, Value>, op_path: &str) -> MockConfig {
    let mut cfg = MockConfig::default();
    let Some(responses) = opt_object(ctx, op.get("responses"), &field(op_path, "responses")) else {
        return cfg;
    };
    for (code, r) in responses {
        let at = field(&field(op_path, "responses"), code);
        let Some(r) = r.as_object() else { continue };
        let mut resp = MockResponse { code: code.clone(), ..Default::default() };
        if let Some(Value::Object(headers)) = r.get("headers") {
            for (name, h) in headers {
                let ex = h.get("example").or_else(|| h.get("schema").and_then(|s| s.get("example")));
                if let Some(ex) = ex {
                    resp.headers.push((name.clone(), example_text(ex)));
                }
            }
        }
        if let Some(Value::Object(content)) = r.get("content") {
            for (ct, media) in content {
                let mut mc = MockContent { content_type: ct.clone(), examples: Vec::new() };
                if let Some(ex) = media.get("example") {
                    mc.examples.push((String::new(), example_text(ex)));
                }
                if let Some(Value::Object(named)) = media.get("examples") {
                    for (name, e) in named {
                        match e.get("value") {
                            Some(v) => mc.examples.push((name.clone(), example_text(v))),
                            None => ctx.err(
                                field(&field(&field(&field(&at, "content"), ct), "examples"), name),
                                format!(
                                    "a mocked API needs the example's `value` (found {}; `$ref` and \
                                     `externalValue` examples are not resolved)",
                                    kind(e)
                                ),
                            ),
                        }
                    }
                }
                resp.content.push(mc);
            }
        }
        if let Some(Value::Object(examples)) = r.get("examples") {
            for (ct, ex) in examples {
                resp.content
                    .push(MockContent { content_type: ct.clone(), examples: vec![(String::new(), example_text(ex))] });
            }
        }
        cfg.responses.push(resp);
    }
    cfg
}

/// An example as the body or header value sent: strings as they are, anything
/// else as JSON.
fn example_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// An interceptor as the model keeps it: boxed, since most operations have none.
pub(crate) type MaybeInterceptor = Option<Box<Interceptor>>;

/// Fills `m.request_interceptor` and friends from the three levels.
pub(crate) fn resolve_interceptors(m: &mut Mediation, levels: [(&MaybeInterceptor, &MaybeInterceptor); 3]) {
    for (req, resp) in levels {
        if m.request_interceptor.is_none() {
            m.request_interceptor.clone_from(req);
        }
        if m.response_interceptor.is_none() {
            m.response_interceptor.clone_from(resp);
        }
    }
}

/// The interceptor extensions of one level of the definition.
pub(crate) fn interceptors_at(
    ctx: &mut Ctx<'_>,
    obj: &Map<String, Value>,
    path: &str,
) -> (MaybeInterceptor, MaybeInterceptor) {
    let mut one = |key: &str| {
        obj.get(key).filter(|v| !v.is_null()).and_then(|v| parse_interceptor(ctx, v, &field(path, key)).map(Box::new))
    };
    (one("x-wso2-request-interceptor"), one("x-wso2-response-interceptor"))
}
