//! One request as Envoy describes it to the enforcer, and what can be read
//! from it.

use std::collections::HashMap;

use percent_encoding::percent_decode_str;

/// Header with the client's address, set by the router before ext_authz
/// (adapter/xds/src/translate/listener.rs) over anything a client sent.
pub const CLIENT_IP_HEADER: &str = "x-wso2-client-ip";

/// The SOAP version of a request, told apart as Choreo Connect does:
/// `Content-Type` exactly `text/xml` with a `SOAPAction` header (1.1), or
/// exactly `application/soap+xml` (1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SoapVersion {
    /// SOAP 1.1
    V11,
    /// SOAP 1.2
    V12,
}

/// One request, as Envoy describes it.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// Method.
    pub method: &'a str,
    /// Path with query.
    pub path: &'a str,
    /// Lower-cased request headers.
    pub headers: &'a HashMap<String, String>,
    /// The route's context extensions.
    pub ext: &'a HashMap<String, String>,
    /// The TLS peer certificate (URL-encoded PEM), or empty.
    pub peer_cert: &'a str,
    /// The peer address of the check, used when the router's client address is missing.
    pub source_ip: &'a str,
    /// The request body as far as the router sent it (empty unless the
    /// route passes it).
    pub body: &'a [u8],
}

impl<'a> Input<'a> {
    /// A request header (lower-case name).
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers.get(name).map(String::as_str)
    }

    /// The SOAP version of the request, if it is a SOAP request.
    pub fn soap_version(&self) -> Option<SoapVersion> {
        match self.header("content-type") {
            Some("text/xml") if self.headers.contains_key("soapaction") => Some(SoapVersion::V11),
            Some("application/soap+xml") => Some(SoapVersion::V12),
            _ => None,
        }
    }

    /// A context extension of the route ("" when absent).
    pub fn ext(&self, key: &str) -> &'a str {
        self.ext.get(key).map(String::as_str).unwrap_or("")
    }

    /// Client IP: the address the router determined (`x-wso2-client-ip`,
    /// which it sets from its `use_remote_address` and trusted hops and
    /// overwrites whatever a client sent), else the peer address of the check.
    /// Never `x-forwarded-for`, which a client can write.
    pub fn client_ip(&self) -> &'a str {
        self.header(CLIENT_IP_HEADER).map(str::trim).filter(|x| !x.is_empty()).unwrap_or(self.source_ip)
    }

    /// The cluster of the route for a key type ("" in the extension: none).
    pub fn cluster(&self, key_type: crate::decision::KeyType) -> Option<&'a str> {
        let key = match key_type {
            crate::decision::KeyType::Production => "prodClusterName",
            crate::decision::KeyType::Sandbox => "sandClusterName",
        };
        Some(self.ext(key)).filter(|n| !n.is_empty())
    }
}

/// The decoded value of query parameter `name` in `path`.
pub fn query_param(path: &str, name: &str) -> Option<String> {
    let (_, q) = path.split_once('?')?;
    url::form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// `path` without the query parameters named in `names`, order of the rest kept.
pub fn without_query_params(path: &str, names: &[String]) -> String {
    let Some((p, q)) = path.split_once('?') else { return path.to_string() };
    let kept: Vec<&str> = q
        .split('&')
        .filter(|pair| {
            let k = pair.split('=').next().unwrap_or("");
            let k = percent_decode_str(&k.replace('+', " ")).decode_utf8_lossy().into_owned();
            !k.is_empty() && !names.contains(&k)
        })
        .collect();
    if kept.is_empty() { p.to_string() } else { format!("{p}?{}", kept.join("&")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params_are_found_and_removed() {
        assert_eq!(query_param("/a?x=1&apikey=a%2Eb.c", "apikey").as_deref(), Some("a.b.c"));
        assert_eq!(query_param("/a", "apikey"), None);
        let names = vec!["apikey".to_string()];
        assert_eq!(without_query_params("/a?x=1&apikey=k&y=2", &names), "/a?x=1&y=2");
        assert_eq!(without_query_params("/a?apikey=k", &names), "/a");
        assert_eq!(without_query_params("/a?x=1", &names), "/a?x=1");
    }
}
