//! What the enforcer does of message mediation (README.md, "Operation
//! policies", "Mock APIs"): the request-flow policies Choreo Connect's
//! enforcer carries out (ADD_QUERY, the query handling of
//! REWRITE_RESOURCE_PATH, OPA, remote or embedded Rego) and a mocked API's
//! answers. Header edits, path and method rewrites and interceptors are
//! Envoy's (adapter/xds/src/translate/route.rs).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::future::BoxFuture;
use gateway_proto::api as pa;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

/// Characters escaped in an added query parameter's name and value.
const QUERY: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b'#').add(b'&').add(b'+').add(b'=').add(b'<').add(b'>');

/// Longest an embedded Rego evaluation may run.
pub const REGO_DEADLINE: Duration = Duration::from_millis(100);

/// One request-flow policy of an operation.
#[derive(Clone)]
pub enum RequestPolicy {
    /// `ADD_QUERY`
    AddQuery {
        /// Name.
        name: String,
        /// Value.
        value: String,
    },
    /// `REWRITE_RESOURCE_PATH` with `includeQueryParams: false`: the query string is dropped.
    DropQuery,
    /// `REWRITE_RESOURCE_PATH` keeping the query: nothing for the enforcer to do.
    Nothing,
    /// `OPA`
    Opa(Arc<OpaPolicy>),
}

impl std::fmt::Debug for RequestPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RequestPolicy::AddQuery { name, value } => write!(f, "AddQuery({name}={value})"),
            RequestPolicy::DropQuery => f.write_str("DropQuery"),
            RequestPolicy::Nothing => f.write_str("Nothing"),
            RequestPolicy::Opa(o) => write!(f, "Opa({})", o.target()),
        }
    }
}

/// Where an OPA policy is evaluated.
pub enum OpaMode {
    /// A server's Data API: `POST <url>` with `{"input": ...}`.
    Remote {
        /// `serverURL/policy/rule`.
        url: String,
        /// `Authorization: Bearer <token>` when not empty.
        token: String,
        /// Connect timeout.
        connect_timeout: Duration,
    },
    /// A Rego module compiled once; each check evaluates `rule` on a clone.
    Embedded {
        /// The compiled module.
        engine: Box<regorus::Engine>,
        /// `data.<package>.<rule>`
        rule: String,
    },
}

/// An `OPA` policy.
pub struct OpaPolicy {
    /// Remote or embedded.
    pub mode: OpaMode,
    /// Put the caller's token in `input.authenticationContext`.
    pub send_access_token: bool,
    /// `additionalProperties` (names of request properties; see [`input_document`]).
    pub additional_properties: Vec<String>,
}

impl OpaPolicy {
    fn target(&self) -> String {
        match &self.mode {
            OpaMode::Remote { url, .. } => url.clone(),
            OpaMode::Embedded { rule, .. } => rule.clone(),
        }
    }
}

impl RequestPolicy {
    /// The policy the adapter sent, checked (an embedded Rego module is compiled here).
    pub fn new(p: &pa::Policy) -> Result<RequestPolicy, String> {
        let get = |k: &str| p.parameters.get(k).map(String::as_str).unwrap_or("");
        Ok(match p.action.as_str() {
            "ADD_QUERY" => RequestPolicy::AddQuery {
                name: get("queryParamName").to_string(),
                value: get("queryParamValue").to_string(),
            },
            "REWRITE_RESOURCE_PATH" => {
                if get("includeQueryParams").eq_ignore_ascii_case("false") {
                    RequestPolicy::DropQuery
                } else {
                    RequestPolicy::Nothing
                }
            }
            "OPA" => {
                let policy = get("policy").trim_matches('/');
                let rule = get("rule");
                let mode = if !get("rego").is_empty() {
                    let mut engine = regorus::Engine::new();
                    // A policy that loops must not hold an enforcer worker: each
                    // evaluation is cut at REGO_DEADLINE (an error: 500/901102).
                    engine.set_execution_timer_config(regorus::utils::limits::ExecutionTimerConfig {
                        limit: REGO_DEADLINE,
                        check_interval: std::num::NonZeroU32::MIN,
                    });
                    engine
                        .add_policy("policy.rego".to_string(), get("rego").to_string())
                        .map_err(|e| format!("the Rego module does not compile: {e}"))?;
                    let package = policy.replace('/', ".");
                    let rule = format!("data.{package}.{}", if rule.is_empty() { "allow" } else { rule });
                    // A rule the module does not declare fails every check: refuse it now.
                    engine.clone().eval_rule(rule.clone()).map_err(|e| format!("{rule}: {e}"))?;
                    OpaMode::Embedded { engine: Box::new(engine), rule }
                } else {
                    let base = get("serverURL").trim_end_matches('/');
                    let url =
                        if rule.is_empty() { format!("{base}/{policy}") } else { format!("{base}/{policy}/{rule}") };
                    let secs = get("connectionTimeout").parse::<u64>().ok().filter(|s| *s > 0).unwrap_or(5);
                    OpaMode::Remote {
                        url,
                        token: p.parameters.get("token").cloned().unwrap_or_default(),
                        connect_timeout: Duration::from_secs(secs),
                    }
                };
                RequestPolicy::Opa(Arc::new(OpaPolicy {
                    mode,
                    send_access_token: get("sendAccessToken").eq_ignore_ascii_case("true"),
                    additional_properties: get("additionalProperties")
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect(),
                }))
            }
            other => return Err(format!("action {other:?} is not carried out by the enforcer")),
        })
    }
}

/// Posts an input document to an OPA server; the enforcer service implements
/// it over HTTP (enforcer/src/opa_http.rs).
pub trait OpaTransport: Send + Sync + 'static {
    /// `(status, body)` of `POST url`, or why there was none.
    fn post(
        &self,
        url: &str,
        token: &str,
        body: Vec<u8>,
        connect_timeout: Duration,
    ) -> BoxFuture<'static, Result<(u16, Vec<u8>), String>>;
}

/// The transport of remote OPA policies, set once by the service.
pub static OPA_TRANSPORT: OnceLock<Arc<dyn OpaTransport>> = OnceLock::new();

/// An OPA decision that could not be made, or a denial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpaOutcome {
    /// `result` was true.
    Allow,
    /// `result` was false: 403 / 901101.
    Deny,
    /// The server could not be asked, or did not answer 200: 500 / 901102.
    RequestFailed(String),
    /// The answer had no boolean `result`: 500 / 901103.
    BadResponse(String),
}

/// Facts of the request the input document is made of.
pub struct InputFacts<'a> {
    /// Request headers (lower-cased), credentials already taken out.
    pub headers: Vec<(&'a str, &'a str)>,
    /// The client's address.
    pub origin: &'a str,
    /// Method.
    pub method: &'a str,
    /// The original path with its query.
    pub path: &'a str,
    /// apiName, apiVersion, orgId, vhost, pathTemplate, prodClusterName, sandClusterName.
    pub api_context: [(&'static str, &'a str); 7],
    /// (token, tokenType, keyType), when the policy sends the access token.
    pub auth: Option<(&'a str, &'a str, &'a str)>,
}

/// Choreo Connect's input document: `{"input": {transportHeaders,
/// requestOrigin, method, path, apiContext{...}, authenticationContext{token,
/// tokenType, keyType}}}`. `additionalProperties` name request properties
/// set by custom Java filters in Choreo Connect; this gateway has none, so
/// they add nothing (README.md, "OPA").
pub fn input_document(f: &InputFacts<'_>) -> serde_json::Value {
    use serde_json::{Map, Value};
    let mut headers = Map::new();
    for (k, v) in &f.headers {
        headers.insert((*k).to_string(), Value::String((*v).to_string()));
    }
    let mut api = Map::new();
    for (k, v) in f.api_context {
        api.insert(k.to_string(), Value::String(v.to_string()));
    }
    let mut input = Map::new();
    input.insert("transportHeaders".into(), Value::Object(headers));
    input.insert("requestOrigin".into(), Value::String(f.origin.to_string()));
    input.insert("method".into(), Value::String(f.method.to_string()));
    input.insert("path".into(), Value::String(f.path.to_string()));
    input.insert("apiContext".into(), Value::Object(api));
    if let Some((token, ty, key)) = f.auth {
        let mut a = Map::new();
        a.insert("token".into(), Value::String(token.to_string()));
        a.insert("tokenType".into(), Value::String(ty.to_string()));
        a.insert("keyType".into(), Value::String(key.to_string()));
        input.insert("authenticationContext".into(), Value::Object(a));
    }
    let mut doc = Map::new();
    doc.insert("input".into(), Value::Object(input));
    Value::Object(doc)
}

/// Reads OPA's answer as Choreo Connect does: `result` must be a boolean
/// (or the strings "true"/"false").
pub fn read_result(status: u16, body: &[u8]) -> OpaOutcome {
    if status != 200 {
        return OpaOutcome::RequestFailed(format!("the OPA server answered HTTP {status}"));
    }
    let v: serde_json::Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return OpaOutcome::BadResponse(format!("the OPA answer is not JSON: {e}")),
    };
    match v.get("result") {
        Some(serde_json::Value::Bool(true)) => OpaOutcome::Allow,
        Some(serde_json::Value::Bool(false)) => OpaOutcome::Deny,
        Some(serde_json::Value::String(s)) if s.eq_ignore_ascii_case("true") => OpaOutcome::Allow,
        Some(serde_json::Value::String(s)) if s.eq_ignore_ascii_case("false") => OpaOutcome::Deny,
        None => OpaOutcome::BadResponse("the OPA answer has no result (is the rule defined?)".into()),
        Some(other) => OpaOutcome::BadResponse(format!("the OPA result is not a boolean: {other}")),
    }
}

/// Evaluates `policy` on `input`.
pub async fn evaluate(policy: &OpaPolicy, input: serde_json::Value) -> OpaOutcome {
    match &policy.mode {
        OpaMode::Remote { url, token, connect_timeout } => {
            let Some(t) = OPA_TRANSPORT.get() else {
                return OpaOutcome::RequestFailed("no HTTP client for OPA servers".into());
            };
            let body = input.to_string().into_bytes();
            match t.post(url, token, body, *connect_timeout).await {
                Ok((status, body)) => read_result(status, &body),
                Err(e) => OpaOutcome::RequestFailed(e),
            }
        }
        OpaMode::Embedded { engine, rule } => {
            let mut e = (**engine).clone();
            let input = match regorus::Value::from_json_str(&input["input"].to_string()) {
                Ok(v) => v,
                Err(err) => return OpaOutcome::BadResponse(format!("input: {err}")),
            };
            e.set_input(input);
            match e.eval_rule(rule.clone()) {
                Ok(regorus::Value::Bool(b)) => {
                    if b {
                        OpaOutcome::Allow
                    } else {
                        OpaOutcome::Deny
                    }
                }
                Ok(regorus::Value::Undefined) => {
                    OpaOutcome::BadResponse(format!("{rule} is undefined for this input (give it a default)"))
                }
                Ok(other) => OpaOutcome::BadResponse(format!("{rule} is not a boolean: {other}")),
                Err(err) => OpaOutcome::RequestFailed(format!("{rule}: {err}")),
            }
        }
    }
}

/// The path with ADD_QUERY parameters added and, for a path rewrite that
/// drops them, the query string removed first.
pub fn rewrite_query(path: &str, policies: &[RequestPolicy]) -> Option<String> {
    let mut changed = false;
    let (mut head, mut query) = match path.split_once('?') {
        Some((h, q)) => (h.to_string(), q.to_string()),
        None => (path.to_string(), String::new()),
    };
    // The client's query goes first when a rewrite drops it; every added
    // parameter stays, whatever the order of the policies.
    if policies.iter().any(|p| matches!(p, RequestPolicy::DropQuery)) {
        query.clear();
        changed = true;
    }
    for p in policies {
        match p {
            RequestPolicy::DropQuery => {}
            RequestPolicy::AddQuery { name, value } => {
                if !query.is_empty() {
                    query.push('&');
                }
                query.push_str(&utf8_percent_encode(name, QUERY).to_string());
                query.push('=');
                query.push_str(&utf8_percent_encode(value, QUERY).to_string());
                changed = true;
            }
            RequestPolicy::Nothing | RequestPolicy::Opa(_) => {}
        }
    }
    if !changed {
        return None;
    }
    if head.is_empty() {
        head.push('/');
    }
    Some(if query.is_empty() { head } else { format!("{head}?{query}") })
}

/// A mocked API's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MockAnswer {
    /// Status, headers (mock headers then `content-type`), body.
    Example(u16, Vec<(String, String)>, String),
    /// 400 / 900870 with this description.
    BadRequest(String),
    /// 501 / 900871 with this description.
    NotImplemented(String),
}

/// Chooses the example for a request, as Choreo Connect does: `Prefer:
/// code=<nnn>, example=<name>` and `Accept` (README.md, "Mock APIs").
/// Without a preferred code, `default` answers 200, else the first
/// response declared; a preferred code matches exactly, then `50x`, then
/// `5xx`, and is the status sent.
pub fn mock_answer(cfg: &pa::MockedApiConfig, prefer: Option<&str>, accept: Option<&str>) -> MockAnswer {
    let mut code_pref: Option<String> = None;
    let mut example_pref: Option<String> = None;
    for part in prefer.unwrap_or("").split(',') {
        let Some((k, v)) = part.split_once('=') else { continue };
        match k.trim().to_ascii_lowercase().as_str() {
            "code" => code_pref = Some(v.trim().to_string()),
            "example" => example_pref = Some(v.trim().to_string()),
            _ => {}
        }
    }
    let lower = |s: &str| s.to_ascii_lowercase();
    let (status, resp) = match &code_pref {
        Some(code) => {
            let Some(status) = code.parse::<u16>().ok().filter(|_| code.len() == 3) else {
                return MockAnswer::BadRequest("Invalid format for code preference".into());
            };
            let candidates = [code.clone(), format!("{}x", &code[..2]), format!("{}xx", &code[..1])];
            let found = candidates.iter().find_map(|c| cfg.responses.iter().find(|r| lower(&r.code) == *c));
            match found {
                Some(r) => (status, r),
                None => {
                    return MockAnswer::NotImplemented(format!(
                        "Preferred code {code} is not supported for this resource."
                    ));
                }
            }
        }
        None => match cfg.responses.iter().find(|r| lower(&r.code) == "default") {
            Some(r) => (200, r),
            None => match cfg.responses.first() {
                Some(r) => (lower(&r.code).replace('x', "0").parse::<u16>().unwrap_or(200), r),
                None => return MockAnswer::NotImplemented(String::new()),
            },
        },
    };
    let content = match accept.map(str::trim).filter(|a| !a.is_empty()) {
        None => resp
            .content
            .iter()
            .find(|c| c.content_type.eq_ignore_ascii_case("application/json"))
            .or_else(|| resp.content.first()),
        Some(accept) => {
            let parts: Vec<&str> = accept.split(',').map(|p| p.split(';').next().unwrap_or("").trim()).collect();
            let matches = |pattern: &str, ct: &str| {
                let ct = ct.to_ascii_lowercase();
                let pattern = pattern.to_ascii_lowercase();
                match pattern.split_once('/') {
                    _ if pattern == "*" || pattern == "*/*" => true,
                    Some((t, "*")) => ct.split('/').next() == Some(t),
                    _ => ct == pattern,
                }
            };
            let chosen = parts.iter().find_map(|p| resp.content.iter().find(|c| matches(p, &c.content_type)));
            match chosen {
                Some(c) => Some(c),
                None => {
                    return MockAnswer::NotImplemented(format!(
                        "Accept type [{}] is not supported for this resource",
                        parts.join(", ")
                    ));
                }
            }
        }
    };
    let mut headers: Vec<(String, String)> =
        resp.headers.iter().map(|h| (h.name.to_ascii_lowercase(), h.value.clone())).collect();
    let Some(content) = content else {
        // Headers only (no media type declared): an empty answer.
        return MockAnswer::Example(status, headers, String::new());
    };
    let example = match &example_pref {
        Some(name) => match content.examples.iter().find(|e| e.r#ref.eq_ignore_ascii_case(name)) {
            Some(e) => e,
            None => {
                return MockAnswer::NotImplemented(format!(
                    "Example preference {name} is not supported for this resource"
                ));
            }
        },
        None => match content.examples.first() {
            Some(e) => e,
            None => return MockAnswer::NotImplemented(String::new()),
        },
    };
    headers.push(("content-type".to_string(), content.content_type.clone()));
    MockAnswer::Example(status, headers, example.body.clone())
}

/// Headers of the request minus the ones carrying credentials, for OPA's
/// `transportHeaders`.
pub fn transport_headers<'a>(headers: &'a HashMap<String, String>, hidden: &[&str]) -> Vec<(&'a str, &'a str)> {
    let mut v: Vec<(&str, &str)> = headers
        .iter()
        .filter(|(k, _)| !hidden.iter().any(|h| h.eq_ignore_ascii_case(k)))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    v.sort_unstable();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> pa::MockedApiConfig {
        let content = |ct: &str, ex: &[(&str, &str)]| pa::MockedContentConfig {
            content_type: ct.into(),
            examples: ex
                .iter()
                .map(|(r, b)| pa::MockedContentExample { r#ref: (*r).into(), body: (*b).into() })
                .collect(),
        };
        pa::MockedApiConfig {
            responses: vec![
                pa::MockedResponseConfig {
                    code: "50X".into(),
                    headers: vec![pa::MockedHeaderConfig { name: "x-wso2-header".into(), value: "Sample".into() }],
                    content: vec![
                        content("text/html", &[("example1", "one"), ("example2", "two")]),
                        content("application/xml", &[("", "<x/>")]),
                    ],
                },
                pa::MockedResponseConfig {
                    code: "default".into(),
                    headers: vec![],
                    content: vec![content("application/json", &[("", r#"{"description":"default content"}"#)])],
                },
            ],
        }
    }

    fn example(status: u16, ct: &str, body: &str, mock_header: bool) -> MockAnswer {
        let mut h = Vec::new();
        if mock_header {
            h.push(("x-wso2-header".to_string(), "Sample".to_string()));
        }
        h.push(("content-type".to_string(), ct.to_string()));
        MockAnswer::Example(status, h, body.to_string())
    }

    #[test]
    fn mock_answers_follow_prefer_and_accept() {
        let c = cfg();
        assert_eq!(
            mock_answer(&c, None, None),
            example(200, "application/json", r#"{"description":"default content"}"#, false)
        );
        assert_eq!(
            mock_answer(&c, Some("code=508, example=example2"), Some("text/*")),
            example(508, "text/html", "two", true)
        );
        assert_eq!(mock_answer(&c, Some("code=508"), Some("text/*")), example(508, "text/html", "one", true));
        assert_eq!(
            mock_answer(&c, Some("code=508, example=example4"), Some("text/*")),
            MockAnswer::NotImplemented("Example preference example4 is not supported for this resource".into())
        );
        assert_eq!(
            mock_answer(&c, Some("code=400"), None),
            MockAnswer::NotImplemented("Preferred code 400 is not supported for this resource.".into())
        );
        assert_eq!(
            mock_answer(&c, Some("code=5000"), None),
            MockAnswer::BadRequest("Invalid format for code preference".into())
        );
        assert_eq!(
            mock_answer(&c, Some("code=500"), Some("image/png, application/zip")),
            MockAnswer::NotImplemented(
                "Accept type [image/png, application/zip] is not supported for this resource".into()
            )
        );
        assert_eq!(
            mock_answer(&c, Some("code=503"), Some("application/xml")),
            example(503, "application/xml", "<x/>", true)
        );
        assert_eq!(mock_answer(&pa::MockedApiConfig::default(), None, None), MockAnswer::NotImplemented(String::new()));
    }

    #[test]
    fn queries_are_added_and_dropped() {
        let add = |n: &str, v: &str| RequestPolicy::AddQuery { name: n.into(), value: v.into() };
        assert_eq!(rewrite_query("/a?x=1", &[add("q", "v w")]).as_deref(), Some("/a?x=1&q=v%20w"));
        assert_eq!(rewrite_query("/a", &[add("q", "v")]).as_deref(), Some("/a?q=v"));
        assert_eq!(rewrite_query("/a?x=1", &[RequestPolicy::DropQuery]).as_deref(), Some("/a"));
        assert_eq!(rewrite_query("/a?x=1", &[RequestPolicy::DropQuery, add("q", "v")]).as_deref(), Some("/a?q=v"));
        assert_eq!(rewrite_query("/a?x=1", &[add("q", "v"), RequestPolicy::DropQuery]).as_deref(), Some("/a?q=v"));
        assert_eq!(rewrite_query("/a?x=1", &[RequestPolicy::Nothing]), None);
    }

    #[test]
    fn opa_results_are_read_as_choreo_connect_does() {
        assert_eq!(read_result(200, br#"{"result":true}"#), OpaOutcome::Allow);
        assert_eq!(read_result(200, br#"{"result":"false"}"#), OpaOutcome::Deny);
        assert!(matches!(read_result(200, b"{}"), OpaOutcome::BadResponse(_)));
        assert!(matches!(read_result(200, br#"{"result":{"allow":true}}"#), OpaOutcome::BadResponse(_)));
        assert!(matches!(read_result(200, b"nope"), OpaOutcome::BadResponse(_)));
        assert!(matches!(read_result(500, b""), OpaOutcome::RequestFailed(_)));
    }

    #[tokio::test]
    async fn embedded_rego_decides_on_the_input_document() {
        let rego = "package example.authz\nimport rego.v1\ndefault allow := false\nallow if {\n  input.method == \"GET\"\n  input.transportHeaders[\"x-user\"] == \"alice\"\n}\n";
        let mut params = HashMap::new();
        params.insert("rego".to_string(), rego.to_string());
        params.insert("policy".to_string(), "example/authz".to_string());
        params.insert("rule".to_string(), "allow".to_string());
        let p = RequestPolicy::new(&pa::Policy { action: "OPA".into(), parameters: params.clone() }).expect("compiles");
        let RequestPolicy::Opa(opa) = p else { panic!("an OPA policy") };
        let facts = |user: &'static str| InputFacts {
            headers: vec![("x-user", user)],
            origin: "10.0.0.1",
            method: "GET",
            path: "/a/b?c",
            api_context: [
                ("apiName", "A"),
                ("apiVersion", "1"),
                ("orgId", "carbon.super"),
                ("vhost", "localhost"),
                ("pathTemplate", "/b"),
                ("prodClusterName", "p"),
                ("sandClusterName", ""),
            ],
            auth: None,
        };
        assert_eq!(evaluate(&opa, input_document(&facts("alice"))).await, OpaOutcome::Allow);
        assert_eq!(evaluate(&opa, input_document(&facts("bob"))).await, OpaOutcome::Deny);
        params.insert("rule".to_string(), "nope".to_string());
        let err = RequestPolicy::new(&pa::Policy { action: "OPA".into(), parameters: params.clone() })
            .expect_err("an undeclared rule");
        assert!(err.contains("data.example.authz.nope"), "{err}");
        params.insert("rego".to_string(), "package x\nallow if {".to_string());
        let err = RequestPolicy::new(&pa::Policy { action: "OPA".into(), parameters: params }).expect_err("bad rego");
        assert!(err.contains("does not compile"), "{err}");
    }
}
