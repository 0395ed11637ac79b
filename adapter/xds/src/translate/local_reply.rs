//! Envoy's own errors as Choreo Connect's JSON error bodies (README.md, "Errors").

use envoy_types::pb::envoy::config::accesslog::v3::{
    AccessLogFilter, AndFilter, HeaderFilter, MetadataFilter, ResponseFlagFilter, access_log_filter::FilterSpecifier,
};
use envoy_types::pb::envoy::config::core::v3::{
    DataSource, SubstitutionFormatString, data_source, substitution_format_string::Format,
};
use envoy_types::pb::envoy::config::route::v3::{HeaderMatcher, header_matcher::HeaderMatchSpecifier};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    LocalReplyConfig, ResponseMapper,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{
    MetadataMatcher, ValueMatcher, metadata_matcher::PathSegment, metadata_matcher::path_segment::Segment,
    value_matcher::MatchPattern,
};
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};

use super::names::{ENFORCER_FAILURE_KEY, ENFORCER_REPLY_KEY, EXT_AUTHZ_NAMESPACE};
use super::util::u32_value;

/// One router error: the Envoy response flag, the status, and the body fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouterError {
    /// Envoy response flag (short form).
    pub flag: &'static str,
    /// HTTP status sent.
    pub status: u32,
    /// `code`
    pub code: &'static str,
    /// `message`
    pub message: &'static str,
    /// `description`; `None` = Envoy's own reply text.
    pub description: Option<&'static str>,
}

/// Choreo Connect's router errors, in a fixed order.
pub const ROUTER_ERRORS: &[RouterError] = &[
    RouterError {
        flag: "NR",
        status: 404,
        code: "404",
        message: "Not Found",
        description: Some("The requested resource is not available."),
    },
    RouterError { flag: "UF", status: 503, code: "102503", message: "Upstream connection failed", description: None },
    RouterError { flag: "UT", status: 504, code: "102504", message: "Upstream connection timeout", description: None },
    RouterError { flag: "UO", status: 503, code: "102505", message: "Upstream overflow", description: None },
    RouterError {
        flag: "URX",
        status: 500,
        code: "102506",
        message: "Upstream maximum connect attempts reached",
        description: None,
    },
    RouterError {
        flag: "NC",
        status: 500,
        code: "102507",
        message: "Upstream not configured for the resource",
        description: None,
    },
    RouterError { flag: "UH", status: 503, code: "102508", message: "No healthy upstream", description: None },
    RouterError {
        flag: "UR",
        status: 503,
        code: "102509",
        message: "Upstream connection reset by the remote",
        description: None,
    },
    RouterError {
        flag: "UC",
        status: 503,
        code: "102510",
        message: "Upstream connection termination",
        description: None,
    },
    RouterError {
        flag: "LR",
        status: 503,
        code: "102511",
        message: "Connection reset by the gateway",
        description: None,
    },
    RouterError {
        flag: "IH",
        status: 400,
        code: "102512",
        message: "Strictly checked header validation failure",
        description: None,
    },
    RouterError { flag: "SI", status: 500, code: "102513", message: "Stream idle timeout", description: None },
    RouterError {
        flag: "DPE",
        status: 500,
        code: "102514",
        message: "HTTP protocol error in downstream request",
        description: None,
    },
    RouterError {
        flag: "UPE",
        status: 500,
        code: "102515",
        message: "HTTP protocol error in upstream request",
        description: None,
    },
    RouterError {
        flag: "UMSDR",
        status: 500,
        code: "102516",
        message: "Upstream request reached max stream duration",
        description: None,
    },
];

/// The ext_authz failure (enforcer unreachable, timed out or failed).
pub const ENFORCER_FAILURE: RouterError = RouterError {
    flag: "UAEX",
    status: 500,
    code: "102500",
    message: "Unclassified Validation Failure",
    description: Some("Error during validating the request"),
};

fn string(s: &str) -> Value {
    Value { kind: Some(Kind::StringValue(s.to_string())) }
}

fn json_body(e: &RouterError) -> SubstitutionFormatString {
    let mut fields = std::collections::HashMap::new();
    fields.insert("code".to_string(), string(e.code));
    fields.insert("message".to_string(), string(e.message));
    fields.insert("description".to_string(), string(e.description.unwrap_or("%LOCAL_REPLY_BODY%")));
    SubstitutionFormatString { format: Some(Format::JsonFormat(Struct { fields })), ..Default::default() }
}

fn flag_filter(flag: &str) -> AccessLogFilter {
    AccessLogFilter {
        filter_specifier: Some(FilterSpecifier::ResponseFlagFilter(ResponseFlagFilter {
            flags: vec![flag.to_string()],
        })),
    }
}

fn mapper(e: &RouterError, filter: AccessLogFilter) -> ResponseMapper {
    ResponseMapper {
        filter: Some(filter),
        status_code: Some(u32_value(e.status)),
        body_format_override: Some(json_body(e)),
        ..Default::default()
    }
}

/// The SOAP version of a request, as Choreo Connect tells them apart:
/// `Content-Type` exactly `application/soap+xml` (1.2), or exactly
/// `text/xml` with a `SOAPAction` header (1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Soap {
    /// SOAP 1.1
    V11,
    /// SOAP 1.2
    V12,
}

impl Soap {
    fn content_type(self) -> &'static str {
        match self {
            Soap::V11 => "text/xml",
            Soap::V12 => "application/soap+xml",
        }
    }

    /// The request headers that select this version.
    fn filters(self) -> Vec<AccessLogFilter> {
        let header = |name: &str, m: HeaderMatchSpecifier| AccessLogFilter {
            filter_specifier: Some(FilterSpecifier::HeaderFilter(HeaderFilter {
                header: Some(HeaderMatcher {
                    name: name.to_string(),
                    header_match_specifier: Some(m),
                    ..Default::default()
                }),
            })),
        };
        let mut out = vec![header(
            "content-type",
            HeaderMatchSpecifier::StringMatch(super::util::string_exact(self.content_type())),
        )];
        if self == Soap::V11 {
            out.push(header("soapaction", HeaderMatchSpecifier::PresentMatch(true)));
        }
        out
    }

    /// The router's fault: the SOAP 1.1 element layout in both versions
    /// (the 1.2 namespace with Choreo Connect's trailing slash), the detail
    /// `<code>:<description>`.
    fn body(self, e: &RouterError) -> String {
        let (ns, code) = match self {
            Soap::V11 => ("http://schemas.xmlsoap.org/soap/envelope/", "soapenv:Server"),
            Soap::V12 => ("http://www.w3.org/2003/05/soap-envelope/", "soapenv:Receiver"),
        };
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><soapenv:Envelope xmlns:soapenv=\"{ns}\"><soapenv:Body>\
             <soapenv:Fault><faultcode>{code}</faultcode><faultstring>{}</faultstring><detail>{}:{}</detail>\
             </soapenv:Fault></soapenv:Body></soapenv:Envelope>",
            e.message,
            e.code,
            e.description.unwrap_or("%LOCAL_REPLY_BODY%")
        )
    }

    fn mapper(self, e: &RouterError, mut filters: Vec<AccessLogFilter>) -> ResponseMapper {
        filters.extend(self.filters());
        ResponseMapper {
            filter: Some(AccessLogFilter { filter_specifier: Some(FilterSpecifier::AndFilter(AndFilter { filters })) }),
            status_code: Some(u32_value(e.status)),
            body_format_override: Some(SubstitutionFormatString {
                format: Some(Format::TextFormatSource(DataSource {
                    specifier: Some(data_source::Specifier::InlineString(self.body(e))),
                    ..Default::default()
                })),
                content_type: self.content_type().to_string(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

/// The HCM's local reply configuration. With `soap` (`[adapter]
/// soapErrorInXMLEnabled`), SOAP requests get SOAP faults, the others JSON.
pub fn local_reply_config(soap: bool) -> LocalReplyConfig {
    // ext_authz failures only: the enforcer marks its own answers (denials)
    // with dynamic metadata, and those keep their status and body. The
    // access-log MetadataFilter ignores MetadataMatcher.invert: when the key
    // is present the value matcher decides (present_match false never
    // matches), when it is absent match_if_key_not_found does.
    let not_from_enforcer = AccessLogFilter {
        filter_specifier: Some(FilterSpecifier::MetadataFilter(MetadataFilter {
            matcher: Some(MetadataMatcher {
                filter: EXT_AUTHZ_NAMESPACE.to_string(),
                path: vec![PathSegment { segment: Some(Segment::Key(ENFORCER_REPLY_KEY.to_string())) }],
                value: Some(ValueMatcher { match_pattern: Some(MatchPattern::PresentMatch(false)) }),
                invert: false,
            }),
            match_if_key_not_found: Some(super::util::bool_value(true)),
        })),
    };
    let uaex = vec![flag_filter(ENFORCER_FAILURE.flag), not_from_enforcer];
    // The enforcer's module answers its own failure itself (the JSON
    // above, no UAEX flag), and marks it.
    let module_failure = AccessLogFilter {
        filter_specifier: Some(FilterSpecifier::MetadataFilter(MetadataFilter {
            matcher: Some(MetadataMatcher {
                filter: EXT_AUTHZ_NAMESPACE.to_string(),
                path: vec![PathSegment { segment: Some(Segment::Key(ENFORCER_FAILURE_KEY.to_string())) }],
                value: Some(ValueMatcher { match_pattern: Some(MatchPattern::PresentMatch(true)) }),
                invert: false,
            }),
            match_if_key_not_found: Some(super::util::bool_value(false)),
        })),
    };
    let mut mappers = Vec::new();
    // First match wins: the SOAP forms before the JSON ones.
    if soap {
        for v in [Soap::V12, Soap::V11] {
            mappers.extend(ROUTER_ERRORS.iter().map(|e| v.mapper(e, vec![flag_filter(e.flag)])));
            mappers.push(v.mapper(&ENFORCER_FAILURE, uaex.clone()));
            mappers.push(v.mapper(&ENFORCER_FAILURE, vec![module_failure.clone()]));
        }
    }
    mappers.extend(ROUTER_ERRORS.iter().map(|e| mapper(e, flag_filter(e.flag))));
    let uaex = AccessLogFilter { filter_specifier: Some(FilterSpecifier::AndFilter(AndFilter { filters: uaex })) };
    mappers.push(mapper(&ENFORCER_FAILURE, uaex));
    LocalReplyConfig { mappers, body_format: None }
}
