//! The enforcer as Envoy's dynamic module (`[router] enforcerMode =
//! "module"`): the listener's filter, and each secured route's settings,
//! in the place of ext_authz's (ARCHITECTURE.md, "The enforcer as a dynamic
//! module").

use std::collections::{BTreeMap, HashMap};

use envoy_types::pb::envoy::extensions::dynamic_modules::v3::DynamicModuleConfig;
use envoy_types::pb::envoy::extensions::filters::http::dynamic_modules::v3::{
    DynamicModuleFilter, DynamicModuleFilterPerRoute,
};
use envoy_types::pb::envoy::extensions::filters::http::ext_authz::v3::BufferSettings;
use envoy_types::pb::google::protobuf::StringValue;

use super::names::{ENFORCER_MODULE, ENFORCER_MODULE_FILTER};
use super::util::any;

/// Envoy finds `libgateway_module.so` by name (in
/// `ENVOY_DYNAMIC_MODULES_SEARCH_PATH`, else the system's library paths);
/// it stays loaded for Envoy's life.
fn module() -> DynamicModuleConfig {
    DynamicModuleConfig { name: ENFORCER_MODULE.to_string(), do_not_close: true, ..Default::default() }
}

/// The listener's filter (default off: secured routes turn it on).
pub fn filter() -> DynamicModuleFilter {
    DynamicModuleFilter {
        dynamic_module_config: Some(module()),
        filter_name: ENFORCER_MODULE_FILTER.to_string(),
        ..Default::default()
    }
}

/// A secured route's settings: the context extensions the ext_authz filter
/// would send, and how much of the request body the enforcer reads (as
/// ext_authz's `with_request_body`), as JSON in a fixed order (the context's
/// keys sorted), so the same route always has the same bytes and version:
/// `{"context":{...},"body":{"maxBytes":1048576,"allowPartial":false}}`,
/// read by enforcer/module/src/filter.rs (`Route::parse`).
pub fn per_route(ext: &HashMap<String, String>, body: Option<&BufferSettings>) -> DynamicModuleFilterPerRoute {
    let context: BTreeMap<&String, &String> = ext.iter().collect();
    let mut settings = serde_json::json!({ "context": context });
    if let Some(b) = body {
        settings["body"] =
            serde_json::json!({ "maxBytes": b.max_request_bytes, "allowPartial": b.allow_partial_message });
    }
    DynamicModuleFilterPerRoute {
        dynamic_module_config: Some(module()),
        filter_name: ENFORCER_MODULE_FILTER.to_string(),
        filter_config: Some(any(&StringValue { value: settings.to_string() })),
        ..Default::default()
    }
}
