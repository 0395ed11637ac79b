//! Denials: Choreo Connect's error codes, statuses and JSON bodies (README.md, "Errors").

use std::borrow::Cow;

/// Appended to most 900901 descriptions, as Choreo Connect does.
pub const CREDENTIALS_SUFFIX: &str = ". Make sure you have provided the correct security credentials";

/// Which challenge an authentication failure carries in `WWW-Authenticate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge {
    /// No `WWW-Authenticate` (not an authentication failure).
    None,
    /// An authentication failure: the challenges of the authenticators that
    /// applied to the resource.
    Auth,
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deny {
    /// HTTP status.
    pub status: u16,
    /// `code`, a string in the body.
    pub code: &'static str,
    /// `error_message`
    pub message: &'static str,
    /// `error_description`
    pub description: Cow<'static, str>,
    /// Whether `WWW-Authenticate` is added.
    pub challenge: Challenge,
    /// Extra headers (e.g. `Allow` on a CORS answer).
    pub headers: Vec<(&'static str, String)>,
    /// Sent without a JSON body (CORS 204 answers).
    pub empty_body: bool,
    /// A mocked API's answer: its headers (with `content-type`) and body,
    /// sent instead of an error body.
    pub answer: Option<Box<Answer>>,
}

/// A mocked API's answer: headers (with `content-type`) and body.
pub type Answer = (Vec<(String, String)>, String);

impl Deny {
    fn new(status: u16, code: &'static str, message: &'static str, description: impl Into<Cow<'static, str>>) -> Deny {
        Deny {
            status,
            code,
            message,
            description: description.into(),
            challenge: Challenge::None,
            headers: Vec::new(),
            empty_body: false,
            answer: None,
        }
    }

    fn auth(mut self) -> Deny {
        self.challenge = Challenge::Auth;
        self
    }

    /// 404: no API or resource for the request.
    pub fn not_found() -> Deny {
        Deny::new(404, "404", "Not Found", "The requested resource is not available.")
    }

    /// 900901 with a description.
    pub fn invalid_credentials(description: impl Into<Cow<'static, str>>) -> Deny {
        Deny::new(401, "900901", "Invalid Credentials", description).auth()
    }

    /// 900901: no usable credentials at all.
    pub fn missing_credentials() -> Deny {
        Deny::invalid_credentials("Make sure you have provided the correct security credentials")
    }

    /// 900901: a token that failed validation.
    pub fn bad_token() -> Deny {
        Deny::invalid_credentials("Invalid Credentials. Make sure you have provided the correct security credentials")
    }

    /// 900901: a value that is not a JWT.
    pub fn not_a_jwt() -> Deny {
        Deny::invalid_credentials(
            "Not a JWT token. Failed to decode the token header. Make sure you have provided the correct security credentials",
        )
    }

    /// 900901: a revoked token.
    pub fn revoked() -> Deny {
        Deny::invalid_credentials("Invalid JWT token. Make sure you have provided the correct security credentials")
    }

    /// 900901 with Choreo Connect's authenticator-specific text
    /// (`API key authentication failed.`, `Internal key authentication failed.`)
    /// in the description; the message is the code's, as for every 900901.
    pub fn authentication_failed(text: &'static str) -> Deny {
        Deny::invalid_credentials(format!("{text}{CREDENTIALS_SUFFIX}"))
    }

    /// 900900: the enforcer could not validate (e.g. keys unavailable).
    pub fn unclassified(description: impl Into<Cow<'static, str>>) -> Deny {
        Deny::new(401, "900900", "Unclassified Authentication Failure", description).auth()
    }

    /// 900901: the key type has no endpoint.
    pub fn no_endpoint(production: bool) -> Deny {
        Deny::invalid_credentials(if production {
            "Production key offered to an API with no production endpoint"
        } else {
            "Sandbox key offered to an API with no sandbox endpoint"
        })
    }

    /// 900908: not subscribed.
    pub fn not_subscribed(description: &'static str) -> Deny {
        Deny::new(403, "900908", "Resource forbidden ", description)
    }

    /// 900907: subscription blocked.
    pub fn subscription_blocked() -> Deny {
        Deny::new(401, "900907", "The requested API is temporarily blocked", "API Subscription is blocked")
    }

    /// 900909: subscription inactive.
    pub fn subscription_inactive() -> Deny {
        Deny::new(
            403,
            "900909",
            "The subscription to the API is inactive",
            "User is NOT authorized to access the Resource. API Subscription validation failed.",
        )
    }

    /// 700700: the API's lifecycle state is BLOCKED.
    pub fn api_blocked() -> Deny {
        Deny::new(
            503,
            "700700",
            "API blocked",
            "This API has been blocked temporarily. Please try again later or contact the system administrators.",
        )
    }

    /// 900910: scopes.
    pub fn scopes(resource: &str) -> Deny {
        Deny::new(
            403,
            "900910",
            "The access token does not allow you to access the requested resource",
            format!("User is NOT authorized to access the Resource: {resource}. Scope validation failed."),
        )
    }

    /// 900911: the enforcer has no data to decide with (no configuration yet).
    pub fn unavailable() -> Deny {
        Deny::new(
            500,
            "900911",
            "Internal Server Error",
            "The gateway is not ready to authorize requests: no configuration received yet",
        )
    }

    /// 429: a rate limit's quota is spent (900800, 900802, 900803, 900804,
    /// 900806); `Retry-After` is the HTTP-date at which its window ends.
    pub fn throttled(code: &'static str, retry_after: String) -> Deny {
        let mut d = Deny::new(429, code, "Message throttled out", "You have exceeded your quota");
        d.headers.push(("retry-after", retry_after));
        d
    }

    /// 503: rate limits apply but cannot be checked (the shared counter
    /// store is unreachable and `[enforcer.throttling] failureMode = "closed"`).
    pub fn throttling_unavailable() -> Deny {
        Deny::new(
            503,
            "900808",
            "Service Unavailable",
            "Rate limits cannot be checked: the shared counter store is unreachable",
        )
    }

    /// 403 900805: a blocking condition matches.
    pub fn blocked() -> Deny {
        Deny::new(403, "900805", "Message blocked", "You have been blocked from accessing the resource")
    }

    /// 403 901101: the OPA policy said no.
    pub fn opa_denied() -> Deny {
        Deny::new(403, "901101", "Forbidden", "The request is not allowed by the OPA policy of the resource")
    }

    /// 500 901102: the OPA policy could not be asked.
    pub fn opa_request_failed() -> Deny {
        Deny::new(500, "901102", "Internal Server Error", "The OPA policy of the resource could not be evaluated")
    }

    /// 500 901103: the OPA policy answered something that is not a decision.
    pub fn opa_bad_response() -> Deny {
        Deny::new(500, "901103", "Internal Server Error", "The OPA policy of the resource gave no boolean result")
    }

    /// 400 900870: a mock answer asked for with a malformed preference.
    pub fn mock_bad_request(description: String) -> Deny {
        Deny::new(400, "900870", "Bad Request", description)
    }

    /// 501 900871: no mock answer for the preference.
    pub fn mock_not_implemented(description: String) -> Deny {
        Deny::new(501, "900871", "Not Implemented", description)
    }

    /// A mocked API's answer (delivered as a denial, as Choreo Connect does).
    pub fn mock(status: u16, headers: Vec<(String, String)>, body: String) -> Deny {
        let mut d = Deny::new(status, "", "", "");
        d.answer = Some(Box::new((headers, body)));
        d
    }

    /// 204 with `Allow`, the answer to OPTIONS on a resource without an OPTIONS operation.
    pub fn options(allow: String) -> Deny {
        let mut d = Deny::new(204, "", "", "");
        d.headers.push(("allow", allow));
        d.empty_body = true;
        d
    }

    /// The JSON body, keys in Choreo Connect's order.
    pub fn body(&self) -> String {
        if self.empty_body {
            return String::new();
        }
        // serde_json::Map would sort the keys; Choreo Connect's order is fixed.
        format!(
            "{{\"error_message\":{},\"code\":{},\"error_description\":{}}}",
            json_string(self.message),
            json_string(self.code),
            json_string(&self.description)
        )
    }

    /// The SOAP fault of this denial (a denial of a SOAP request with
    /// `[adapter] soapErrorInXMLEnabled`), and its content type: fault code
    /// `Server` (1.1) or `env:Receiver` (1.2) whatever the status, the
    /// message as the fault string, `<code>:<description>` as the detail.
    /// `None` where the answer is not an error (CORS, mock answers).
    pub fn soap_fault(&self, v: crate::request::SoapVersion) -> Option<(&'static str, String)> {
        if self.empty_body || self.answer.is_some() || self.code.is_empty() {
            return None;
        }
        let (m, c, d) = (xml_text(self.message), xml_text(self.code), xml_text(&self.description));
        Some(match v {
            crate::request::SoapVersion::V11 => (
                "text/xml",
                format!(
                    "<SOAP-ENV:Envelope xmlns:SOAP-ENV=\"http://schemas.xmlsoap.org/soap/envelope/\"><SOAP-ENV:Header/>\
                     <SOAP-ENV:Body><SOAP-ENV:Fault><faultcode>Server</faultcode><faultstring>{m}</faultstring>\
                     <detail>{c}:{d}</detail></SOAP-ENV:Fault></SOAP-ENV:Body></SOAP-ENV:Envelope>"
                ),
            ),
            crate::request::SoapVersion::V12 => (
                "application/soap+xml",
                format!(
                    "<env:Envelope xmlns:env=\"http://www.w3.org/2003/05/soap-envelope\"><env:Header/><env:Body>\
                     <env:Fault><env:Code><env:Value>env:Receiver</env:Value></env:Code><env:Reason>\
                     <env:Text xml:lang=\"en-US\">{m}</env:Text></env:Reason><env:Detail>{c}:{d}</env:Detail>\
                     </env:Fault></env:Body></env:Envelope>"
                ),
            ),
        })
    }

    /// gRPC status code of the denied CheckResponse, as Choreo Connect sets it:
    /// UNAUTHENTICATED for 401, PERMISSION_DENIED for 403, RESOURCE_EXHAUSTED
    /// for 409 and 429, INTERNAL otherwise.
    pub fn grpc_code(&self) -> i32 {
        match self.status {
            401 => 16,
            403 => 7,
            409 | 429 => 8,
            _ => 13,
        }
    }
}

/// `s` as XML character data.
fn xml_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(ch),
        }
    }
    out
}

fn json_string(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// `WWW-Authenticate` for an authentication failure, from the challenges of
/// the authenticators that applied (Choreo Connect's format: the challenges
/// joined by a space, then `error` and `error_description`).
pub fn www_authenticate(challenges: &[&str]) -> String {
    let mut parts: Vec<&str> = challenges.iter().copied().filter(|c| !c.is_empty()).collect();
    parts.dedup();
    let head = parts.join(" ");
    if head.is_empty() {
        "error=\"invalid_token\", error_description=\"The provided token is invalid\"".to_string()
    } else {
        format!("{head}, error=\"invalid_token\", error_description=\"The provided token is invalid\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soap_faults_carry_the_code_message_and_description_escaped() {
        use crate::request::SoapVersion;
        let d = Deny::missing_credentials();
        let (ct, body) = d.soap_fault(SoapVersion::V11).expect("an error");
        assert_eq!(ct, "text/xml");
        assert!(body.contains("<SOAP-ENV:Fault><faultcode>Server</faultcode><faultstring>Invalid Credentials</faultstring><detail>900901:Make sure you have provided the correct security credentials</detail></SOAP-ENV:Fault>"), "{body}");
        let (ct, body) = d.soap_fault(SoapVersion::V12).expect("an error");
        assert_eq!(ct, "application/soap+xml");
        assert!(body.contains("<env:Fault><env:Code><env:Value>env:Receiver</env:Value></env:Code><env:Reason><env:Text xml:lang=\"en-US\">Invalid Credentials</env:Text></env:Reason><env:Detail>900901:Make sure you have provided the correct security credentials</env:Detail></env:Fault>"), "{body}");
        let mut odd = Deny::scopes("<a&b>");
        odd.description = "x < y & \"z\"".into();
        let (_, body) = odd.soap_fault(SoapVersion::V11).expect("an error");
        assert!(body.contains("<detail>900910:x &lt; y &amp; &quot;z&quot;</detail>"), "{body}");
        // Answers that are not errors keep their form.
        assert!(Deny::options("OPTIONS, GET".into()).soap_fault(SoapVersion::V11).is_none());
    }

    #[test]
    fn body_has_choreo_connects_keys_in_order_and_code_as_string() {
        let b = Deny::missing_credentials().body();
        assert_eq!(
            b,
            r#"{"error_message":"Invalid Credentials","code":"900901","error_description":"Make sure you have provided the correct security credentials"}"#
        );
        let v: serde_json::Value = serde_json::from_str(&Deny::scopes("/pets/{id}").body()).expect("json");
        assert_eq!(v["code"], "900910");
        assert_eq!(
            v["error_description"],
            "User is NOT authorized to access the Resource: /pets/{id}. Scope validation failed."
        );
    }

    #[test]
    fn grpc_codes_follow_the_status() {
        assert_eq!(Deny::bad_token().grpc_code(), 16);
        assert_eq!(Deny::not_subscribed("x").grpc_code(), 7);
        assert_eq!(Deny::not_found().grpc_code(), 13);
        assert_eq!(Deny::api_blocked().grpc_code(), 13);
    }

    #[test]
    fn challenge_joins_authenticators() {
        assert_eq!(
            www_authenticate(&["Bearer realm=\"Choreo Connect\""]),
            "Bearer realm=\"Choreo Connect\", error=\"invalid_token\", error_description=\"The provided token is invalid\""
        );
        assert_eq!(
            www_authenticate(&["Mutual SSL realm=\"Choreo Connect\"", "", "Bearer realm=\"Choreo Connect\""]),
            "Mutual SSL realm=\"Choreo Connect\" Bearer realm=\"Choreo Connect\", error=\"invalid_token\", error_description=\"The provided token is invalid\""
        );
    }

    #[test]
    fn authenticator_specific_messages_keep_the_double_period() {
        let d = Deny::authentication_failed("API key authentication failed.");
        assert_eq!(d.message, "Invalid Credentials", "the message is looked up from the code, as in Choreo Connect");
        assert_eq!(
            d.description,
            "API key authentication failed.. Make sure you have provided the correct security credentials"
        );
    }
}
