//! Envoy's own errors as Choreo Connect's JSON error bodies (README.md, "Errors").

use envoy_types::pb::envoy::config::accesslog::v3::{
    AccessLogFilter, AndFilter, MetadataFilter, ResponseFlagFilter, access_log_filter::FilterSpecifier,
};
use envoy_types::pb::envoy::config::core::v3::{SubstitutionFormatString, substitution_format_string::Format};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    LocalReplyConfig, ResponseMapper,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{
    MetadataMatcher, ValueMatcher, metadata_matcher::PathSegment, metadata_matcher::path_segment::Segment,
    value_matcher::MatchPattern,
};
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};

use super::names::{ENFORCER_REPLY_KEY, EXT_AUTHZ_NAMESPACE};
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

/// The HCM's local reply configuration.
pub fn local_reply_config() -> LocalReplyConfig {
    let mut mappers: Vec<ResponseMapper> = ROUTER_ERRORS.iter().map(|e| mapper(e, flag_filter(e.flag))).collect();
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
    let uaex = AccessLogFilter {
        filter_specifier: Some(FilterSpecifier::AndFilter(AndFilter {
            filters: vec![flag_filter(ENFORCER_FAILURE.flag), not_from_enforcer],
        })),
    };
    mappers.push(mapper(&ENFORCER_FAILURE, uaex));
    LocalReplyConfig { mappers, body_format: None }
}
