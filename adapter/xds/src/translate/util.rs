//! Small builders shared by the translators.

use envoy_types::pb::envoy::config::core::v3::{
    AggregatedConfigSource, ApiVersion, ConfigSource, HeaderValue, HeaderValueOption,
    config_source::ConfigSourceSpecifier, header_value_option::HeaderAppendAction,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{RegexMatcher, StringMatcher, string_matcher::MatchPattern};
use envoy_types::pb::google::protobuf::{Any, BoolValue, Duration, UInt32Value};
use prost::{Message, Name};

/// Packs a message into an `Any`.
pub fn any<M: Message + Name>(m: &M) -> Any {
    Any { type_url: M::type_url(), value: m.encode_to_vec() }
}

/// A duration of whole seconds.
pub fn secs(s: u32) -> Duration {
    Duration { seconds: i64::from(s), nanos: 0 }
}

/// A duration in milliseconds.
pub fn millis(ms: u32) -> Duration {
    Duration { seconds: i64::from(ms / 1000), nanos: ((ms % 1000) * 1_000_000) as i32 }
}

/// `ConfigSource` = the ADS stream.
pub fn ads() -> ConfigSource {
    ConfigSource {
        config_source_specifier: Some(ConfigSourceSpecifier::Ads(AggregatedConfigSource {})),
        resource_api_version: ApiVersion::V3 as i32,
        ..Default::default()
    }
}

/// A header to set, replacing any value the request or response had.
pub fn set_header(key: &str, value: &str) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue { key: key.to_string(), value: value.to_string(), ..Default::default() }),
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        ..Default::default()
    }
}

/// An RE2 matcher.
pub fn regex(r: impl Into<String>) -> RegexMatcher {
    RegexMatcher { regex: r.into(), ..Default::default() }
}

/// A string matcher by RE2 regex (full match).
pub fn string_regex(r: impl Into<String>) -> StringMatcher {
    StringMatcher { match_pattern: Some(MatchPattern::SafeRegex(regex(r))), ..Default::default() }
}

/// An exact string matcher.
pub fn string_exact(s: impl Into<String>) -> StringMatcher {
    StringMatcher { match_pattern: Some(MatchPattern::Exact(s.into())), ..Default::default() }
}

/// `BoolValue`
pub fn bool_value(v: bool) -> BoolValue {
    BoolValue { value: v }
}

/// `UInt32Value`
pub fn u32_value(v: u32) -> UInt32Value {
    UInt32Value { value: v }
}

/// Escapes a literal for RE2 (the escaping of `regex-syntax` is RE2-compatible
/// for the characters allowed in paths).
pub fn escape(literal: &str) -> String {
    regex_syntax::escape(literal)
}
