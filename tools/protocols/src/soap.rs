//! A SOAP responder.
//!
//! `POST` on any path. The SOAP version comes from the `Content-Type`:
//! `application/soap+xml` is SOAP 1.2 (the action is its `action`
//! parameter, else a `SOAPAction` header), anything else SOAP 1.1 (the
//! action is the `SOAPAction` header, quotes removed). The answer is `200`,
//! an envelope of the same version (`text/xml; charset=utf-8` for 1.1,
//! `application/soap+xml; charset=utf-8` for 1.2) whose body is
//!
//! ```xml
//! <echo><action>ACTION</action><contentType>CONTENT-TYPE</contentType><bodyBytes>N</bodyBytes></echo>
//! ```
//!
//! (values XML-escaped; `N` is the request body's length). With the request
//! header `x-soap-fault: true` it answers `500` with a SOAP fault of that
//! version instead (faultstring / Reason `asked to fail`). Other methods get
//! `405`. Every request is recorded ([`SoapRequestSeen`]).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::rt::TokioIo;

use crate::ServerError;
use crate::net::{self, ConnInfo, Log, RequestSeen, Resp, Tasks};

/// The SOAP 1.1 envelope namespace.
pub const SOAP11_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";
/// The SOAP 1.2 envelope namespace.
pub const SOAP12_NS: &str = "http://www.w3.org/2003/05/soap-envelope";

/// A SOAP version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SoapVersion {
    /// SOAP 1.1: `text/xml` and a `SOAPAction` header.
    V11,
    /// SOAP 1.2: `application/soap+xml`, with an optional `action` parameter.
    V12,
}

impl SoapVersion {
    /// The envelope namespace.
    pub fn namespace(self) -> &'static str {
        match self {
            SoapVersion::V11 => SOAP11_NS,
            SoapVersion::V12 => SOAP12_NS,
        }
    }

    /// The content type of its messages.
    pub fn content_type(self) -> &'static str {
        match self {
            SoapVersion::V11 => "text/xml; charset=utf-8",
            SoapVersion::V12 => "application/soap+xml; charset=utf-8",
        }
    }
}

/// Escapes `&`, `<`, `>`, `"` and `'` for XML text and attributes.
pub fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// Removes one pair of surrounding double quotes.
fn unquote(v: &str) -> &str {
    let v = v.trim();
    v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v)
}

/// The SOAP version and action (if any) of a request with these headers.
pub fn version_and_action(headers: &HeaderMap) -> (SoapVersion, Option<String>) {
    let content_type = headers.get(CONTENT_TYPE).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let content_type = content_type.unwrap_or_default();
    let mut params = content_type.split(';');
    let media = params.next().unwrap_or("").trim().to_ascii_lowercase();
    let header_action = headers.get("soapaction").map(|v| unquote(&String::from_utf8_lossy(v.as_bytes())).to_string());
    if media == "application/soap+xml" {
        let param_action = params.find_map(|p| {
            let (k, v) = p.split_once('=')?;
            k.trim().eq_ignore_ascii_case("action").then(|| unquote(v).to_string())
        });
        (SoapVersion::V12, param_action.or(header_action))
    } else {
        (SoapVersion::V11, header_action)
    }
}

/// The echo envelope.
pub fn echo_envelope(version: SoapVersion, action: &str, content_type: &str, body_bytes: usize) -> String {
    let body = format!(
        "<echo><action>{}</action><contentType>{}</contentType><bodyBytes>{body_bytes}</bodyBytes></echo>",
        xml_escape(action),
        xml_escape(content_type)
    );
    envelope(version, &body)
}

/// A fault envelope saying `reason`.
pub fn fault_envelope(version: SoapVersion, reason: &str) -> String {
    let reason = xml_escape(reason);
    let body = match version {
        SoapVersion::V11 => {
            format!("<soap:Fault><faultcode>soap:Server</faultcode><faultstring>{reason}</faultstring></soap:Fault>")
        }
        SoapVersion::V12 => format!(
            "<soap:Fault><soap:Code><soap:Value>soap:Receiver</soap:Value></soap:Code>\
             <soap:Reason><soap:Text xml:lang=\"en\">{reason}</soap:Text></soap:Reason></soap:Fault>"
        ),
    };
    envelope(version, &body)
}

fn envelope(version: SoapVersion, body: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<soap:Envelope xmlns:soap=\"{}\"><soap:Body>{body}</soap:Body></soap:Envelope>",
        version.namespace()
    )
}

/// A request the SOAP responder received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoapRequestSeen {
    /// `POST`, ...
    pub method: String,
    /// The path with the query.
    pub path: String,
    /// The headers in the order received, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// The SOAP version the content type tells.
    pub soap_version: SoapVersion,
    /// The action: SOAP 1.1's `SOAPAction` header, SOAP 1.2's `action`
    /// parameter (or `SOAPAction` header), without quotes.
    pub soap_action: Option<String>,
    /// The body (invalid UTF-8 replaced).
    pub body: String,
    /// Its length in bytes, as received.
    pub body_bytes: usize,
    /// The request as the other servers record it (HTTP version, TLS, ...).
    pub http: RequestSeen,
}

impl SoapRequestSeen {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        net::find_header(&self.headers, name)
    }
}

struct State {
    requests: Log<SoapRequestSeen>,
    tasks: Tasks,
}

async fn handle(state: Arc<State>, info: ConnInfo, req: Request<Incoming>) -> Result<Resp, Infallible> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return Ok(net::respond(
                StatusCode::BAD_REQUEST,
                "text/plain; charset=utf-8",
                format!("reading the body: {e}"),
            ));
        }
    };
    let (version, action) = version_and_action(&parts.headers);
    let http = RequestSeen::new(&parts, body.clone(), &info);
    state.requests.push(SoapRequestSeen {
        method: http.method.clone(),
        path: http.path.clone(),
        headers: http.headers.clone(),
        content_type: http.header("content-type").map(str::to_string),
        soap_version: version,
        soap_action: action.clone(),
        body: http.body_text(),
        body_bytes: body.len(),
        http,
    });
    if parts.method != Method::POST {
        let mut resp =
            net::respond(StatusCode::METHOD_NOT_ALLOWED, version.content_type(), fault_envelope(version, "use POST"));
        resp.headers_mut().insert(ALLOW, HeaderValue::from_static("POST"));
        return Ok(resp);
    }
    let fault = parts.headers.get("x-soap-fault").is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
    if fault {
        return Ok(net::respond(
            StatusCode::INTERNAL_SERVER_ERROR,
            version.content_type(),
            fault_envelope(version, "asked to fail"),
        ));
    }
    let content_type =
        parts.headers.get(CONTENT_TYPE).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()).unwrap_or_default();
    Ok(net::respond(
        StatusCode::OK,
        version.content_type(),
        echo_envelope(version, action.as_deref().unwrap_or(""), &content_type, body.len()),
    ))
}

/// A SOAP responder running in this process.
pub struct SoapServer {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<State>,
}

impl SoapServer {
    /// Starts one on an ephemeral loopback port.
    pub async fn start() -> Result<SoapServer, ServerError> {
        SoapServer::start_on(crate::loopback()).await
    }

    /// Starts one listening on `addr` (HTTP/1.1 and h2c).
    pub async fn start_on(addr: SocketAddr) -> Result<SoapServer, ServerError> {
        let (listener, addr) = net::bind(addr).await?;
        let tasks = Tasks::default();
        let state = Arc::new(State { requests: Log::default(), tasks: tasks.clone() });
        let st = Arc::clone(&state);
        net::spawn_accept(&tasks, listener, None, move |conn, info| {
            let state = Arc::clone(&st);
            async move {
                let svc = hyper::service::service_fn(move |req| handle(Arc::clone(&state), info.clone(), req));
                if let Err(e) = net::http_builder().serve_connection(TokioIo::new(conn), svc).await {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
            }
        });
        tracing::debug!(%addr, "SOAP responder listening");
        Ok(SoapServer { addr, state })
    }

    /// `http://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The requests received so far, oldest first.
    pub fn requests(&self) -> Vec<SoapRequestSeen> {
        self.state.requests.snapshot()
    }

    /// Forgets the requests.
    pub fn clear(&self) {
        self.state.requests.clear();
    }

    /// Stops listening and closes every connection.
    pub fn stop(&self) {
        self.state.tasks.stop();
    }

    /// Like [`stop`](Self::stop), and returns once the listeners and
    /// connections are closed.
    pub async fn shutdown(&self) {
        self.state.tasks.shutdown().await;
    }
}

impl Drop for SoapServer {
    fn drop(&mut self) {
        self.stop();
    }
}
