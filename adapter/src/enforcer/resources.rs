//! What the enforcer is sent: its configuration (from `config.toml`) and one
//! `Api` per deployed API and virtual host (proto/wso2/discovery/api.proto).

use gateway_config::Config;
use gateway_model::{Api, MockConfig, PolicyAction, SecurityRequirement};
use gateway_proto::{api as pa, config as pc};
use prost::Message;
use std::sync::Arc;

use prost_types::Any;
use serde::Serialize;

/// A set of resources of one type, as sent in one response. Resources are
/// shared with the builder that keeps them, so publishing a set of 10,000
/// APIs after one changed copies pointers, not bytes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ResourceSet {
    /// Content hash of the set.
    pub version: String,
    /// The resources.
    pub resources: Vec<Arc<Any>>,
}

/// The content hash of one resource (type URL and bytes).
pub fn resource_hash(r: &Any) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(r.type_url.as_bytes());
    h.update(&(r.value.len() as u64).to_le_bytes());
    h.update(&r.value);
    h.digest()
}

impl ResourceSet {
    /// A set whose version is the hash of its resources' type URLs and bytes.
    pub fn new(resources: Vec<Any>) -> ResourceSet {
        ResourceSet::shared(resources.into_iter().map(|r| (resource_hash(&r), Arc::new(r))).collect())
    }

    /// A set of shared resources with their [`resource_hash`]es (in order).
    pub fn shared(resources: Vec<(u64, Arc<Any>)>) -> ResourceSet {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        for (hash, _) in &resources {
            h.update(&hash.to_le_bytes());
        }
        ResourceSet {
            version: format!("{:016x}", h.digest()),
            resources: resources.into_iter().map(|(_, r)| r).collect(),
        }
    }
}

/// Wraps a message in an `Any`.
pub fn any<M: Message>(type_url: &str, m: &M) -> Any {
    Any { type_url: type_url.to_string(), value: m.encode_to_vec() }
}

fn toml_map(t: &toml::Table) -> std::collections::HashMap<String, String> {
    t.iter()
        .map(|(k, v)| {
            let s = match v {
                toml::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), s)
        })
        .collect()
}

fn throttling_config(t: &gateway_config::enforcer::Throttling) -> pc::Throttling {
    pc::Throttling {
        enabled: t.enabled,
        backend: t.backend.clone(),
        accuracy: t.accuracy,
        failure_mode: t.failure_mode.clone(),
        replicas: t.replicas,
        enable_header_conditions: t.enable_header_conditions,
        enable_query_param_conditions: t.enable_query_param_conditions,
        enable_jwt_claim_conditions: t.enable_jwt_claim_conditions,
        redis_url: t.redis.url.clone(),
        redis_key_prefix: t.redis.key_prefix.clone(),
        redis_timeout_millis: t.redis.timeout_millis,
        header_retry_after: t.headers.retry_after,
        header_x_rate_limit: t.headers.x_rate_limit,
        header_ietf: t.headers.ietf,
    }
}

/// The enforcer's configuration.
pub fn config_resource(c: &Config) -> pc::Config {
    let e = &c.enforcer;
    pc::Config {
        security: Some(pc::Security {
            token_service: e
                .security
                .token_service
                .iter()
                .map(|t| pc::Issuer {
                    name: t.name.clone(),
                    issuer: t.issuer.clone(),
                    certificate_alias: t.certificate_alias.clone(),
                    jwks_url: t.jwks_url.clone(),
                    validate_subscription: t.validate_subscription,
                    consumer_key_claim: t.consumer_key_claim.clone(),
                    certificate_file_path: t.certificate_file_path.clone(),
                    claim_mapping: t
                        .claim_mapping
                        .iter()
                        .map(|m| pc::ClaimMapping {
                            remote_claim: m.remote_claim.clone(),
                            local_claim: m.local_claim.clone(),
                        })
                        .collect(),
                })
                .collect(),
            auth_header: Some(pc::AuthHeader {
                enable_outbound_auth_header: e.security.auth_header.enable_outbound_auth_header,
                authorization_header: e.security.auth_header.authorization_header.clone(),
                test_console_header_name: e.security.auth_header.test_console_header_name.clone(),
            }),
            mutual_ssl: Some(pc::MutualSsl {
                certificate_header: e.security.mutual_ssl.certificate_header.clone(),
                enable_client_validation: e.security.mutual_ssl.enable_client_validation,
                client_certificate_encode: e.security.mutual_ssl.client_certificate_encode,
                enable_outbound_certificate_header: e.security.mutual_ssl.enable_outbound_certificate_header,
            }),
        }),
        jwt_generator: Some(pc::JwtGenerator {
            enabled: e.jwt_generator.enabled,
            encoding: e.jwt_generator.encoding.clone(),
            claim_dialect: e.jwt_generator.claim_dialect.clone(),
            header: e.jwt_generator.header.clone(),
            signing_algorithm: e.jwt_generator.signing_algorithm.clone(),
            token_ttl: e.jwt_generator.token_ttl as i64,
            use_kid_property: e.jwt_generator.use_kid_property,
            keypair: e
                .jwt_generator
                .keypair
                .iter()
                .map(|k| pc::Keypair {
                    public_certificate_path: k.public_certificate_path.clone(),
                    private_key_path: k.private_key_path.clone(),
                    use_for_signing: k.use_for_signing,
                })
                .collect(),
        }),
        jwt_issuer: Some(pc::JwtIssuer {
            enabled: e.jwt_issuer.enabled,
            issuer: e.jwt_issuer.issuer.clone(),
            encoding: e.jwt_issuer.encoding.clone(),
            signing_algorithm: e.jwt_issuer.signing_algorithm.clone(),
            public_certificate_path: e.jwt_issuer.public_certificate_path.clone(),
            private_key_path: e.jwt_issuer.private_key_path.clone(),
            validity_period: e.jwt_issuer.validity_period as i64,
            jwt_user: e
                .jwt_issuer
                .jwt_user
                .iter()
                .map(|u| pc::User { username: u.username.clone(), password: u.password.clone() })
                .collect(),
        }),
        cache: Some(pc::Cache {
            enabled: e.cache.enabled,
            maximum_size: e.cache.maximum_size,
            expiry_time: e.cache.expiry_time,
        }),
        management: Some(pc::Management {
            username: e.management.username.clone(),
            password: e.management.password.clone(),
        }),
        rest_server: Some(pc::RestServer { enabled: e.rest_server.enabled }),
        analytics: Some(pc::Analytics {
            enabled: c.analytics.enabled,
            r#type: c.analytics.kind.clone(),
            config_properties: toml_map(&c.analytics.enforcer.config_properties),
        }),
        tracing: Some(pc::Tracing {
            enabled: c.tracing.enabled,
            r#type: c.tracing.kind.clone(),
            config_properties: toml_map(&c.tracing.config_properties),
        }),
        truststore_location: e.truststore.location.clone(),
        throttling: Some(throttling_config(&e.throttling)),
        soap_error_in_xml_enabled: c.adapter.soap_error_in_xml_enabled,
    }
}

fn security_lists(reqs: &[SecurityRequirement]) -> Vec<pa::SecurityList> {
    reqs.iter()
        .map(|req| pa::SecurityList {
            scope_list: req.iter().map(|(k, v)| (k.clone(), pa::Scopes { scopes: v.clone() })).collect(),
        })
        .collect()
}

/// The resource name of an API on a virtual host.
pub fn api_resource_name(api: &Api, vhost: &str) -> String {
    format!("{vhost}:{}:{}", api.base_path, api.version)
}

/// What the enforcer needs to know about `api` deployed on `vhost`.
pub fn api_resource(api: &Api, vhost: &str) -> pa::Api {
    pa::Api {
        id: api.id.clone(),
        title: api.name.clone(),
        version: api.version.clone(),
        api_type: api.api_type.to_string(),
        base_path: api.base_path.clone(),
        vhost: vhost.to_string(),
        organization_id: api.organization.clone(),
        api_lifecycle_state: api.lifecycle_status.clone(),
        tier: api.tier.clone().unwrap_or_default(),
        disable_security: api.disable_security,
        authorization_header: api.auth_header.clone().unwrap_or_default(),
        resources: match &api.graphql {
            Some(g) => graphql_resources(api, g),
            None => rest_resources(api),
        },
        graphql_schema: api.graphql.as_ref().map(|g| g.schema.clone()).unwrap_or_default(),
        graphql_complexity: api
            .graphql
            .iter()
            .flat_map(|g| &g.complexity)
            .map(|c| pa::GraphqlComplexity {
                r#type: c.type_name.clone(),
                field: c.field.clone(),
                complexity_value: c.value,
            })
            .collect(),
        security_scheme: api
            .security_schemes
            .iter()
            .map(|(name, s)| pa::SecurityScheme {
                definition_name: name.clone(),
                r#type: s.kind.clone(),
                name: s.name.clone(),
                r#in: s.location.clone(),
            })
            .collect(),
        security: security_lists(&api.security),
        // A mocked API answers both key types itself.
        has_production: api.mocked || api.production.is_some() || api.resources.iter().any(|r| r.production.is_some()),
        has_sandbox: api.mocked || api.sandbox.is_some() || api.resources.iter().any(|r| r.sandbox.is_some()),
        mutual_ssl: api.mutual_ssl.clone(),
        application_security: api.application_security,
        client_certificates: api
            .client_certificates
            .iter()
            .map(|c| pa::Certificate {
                alias: c.alias.clone(),
                tier: c.tier.clone(),
                content: c.pem.clone().into_bytes(),
            })
            .collect(),
        provider: String::new(),
        is_default_version: api.is_default_version,
        is_mocked_api: api.mocked,
    }
}

/// Resources of a REST, SOAP or WebSocket API.
fn rest_resources(api: &Api) -> Vec<pa::Resource> {
    api.resources
        .iter()
        .map(|r| pa::Resource {
            path: r.path.split('?').next().unwrap_or("").to_string(),
            methods: r
                .operations
                .iter()
                .map(|o| pa::Operation {
                    method: o.method.as_str().to_string(),
                    security: o.security.as_deref().map(security_lists).unwrap_or_default(),
                    has_security: o.security.is_some(),
                    tier: o.tier.clone().unwrap_or_default(),
                    disable_security: o.disable_security,
                    request_policies: o.mediation().request.iter().filter_map(enforcer_policy).collect(),
                    mocked_api_config: o.mediation().mock.as_ref().map(mock_config),
                })
                .collect(),
        })
        .collect()
}

/// A GraphQL API's operations as resources: path = root field, one method
/// per verb (a query and a mutation may share a field name).
fn graphql_resources(api: &Api, g: &gateway_model::graphql::GraphqlApi) -> Vec<pa::Resource> {
    let oauth2 = api.security_schemes.contains_key("default");
    let api_key = api.security_schemes.contains_key("api_key_header");
    let mut out: Vec<pa::Resource> = Vec::new();
    for o in &g.operations {
        let mut reqs = Vec::new();
        if !o.disable_security {
            if oauth2 || !api_key {
                reqs.push([("default".to_string(), o.scopes.clone())].into_iter().collect());
            }
            if api_key {
                for n in ["api_key_header", "api_key_query"] {
                    reqs.push([(n.to_string(), Vec::new())].into_iter().collect());
                }
            }
        }
        let op = pa::Operation {
            method: o.verb.clone(),
            security: security_lists(&reqs),
            has_security: true,
            tier: o.tier.clone().unwrap_or_default(),
            disable_security: o.disable_security,
            request_policies: Vec::new(),
            mocked_api_config: None,
        };
        match out.iter_mut().find(|r| r.path == o.target) {
            Some(r) => r.methods.push(op),
            None => out.push(pa::Resource { path: o.target.clone(), methods: vec![op] }),
        }
    }
    out
}

/// The request-flow policies the enforcer carries out (the others are in
/// Envoy's routes: adapter/xds/src/translate/route.rs).
fn enforcer_policy(p: &PolicyAction) -> Option<pa::Policy> {
    let params = |kv: &[(&str, String)]| kv.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    Some(match p {
        PolicyAction::AddQuery { name, value } => pa::Policy {
            action: "ADD_QUERY".into(),
            parameters: params(&[("queryParamName", name.clone()), ("queryParamValue", value.clone())]),
        },
        // The path itself is rewritten by the route; the enforcer drops the
        // query string when it is not to be kept.
        PolicyAction::RewritePath { path, include_query } => pa::Policy {
            action: "REWRITE_RESOURCE_PATH".into(),
            parameters: params(&[("resourcePath", path.clone()), ("includeQueryParams", include_query.to_string())]),
        },
        PolicyAction::Opa(o) => {
            let mut kv = vec![
                ("serverURL", o.server_url.clone()),
                ("policy", o.policy.clone()),
                ("rule", o.rule.clone()),
                ("token", o.token.clone()),
                ("additionalProperties", o.additional_properties.join(",")),
                ("sendAccessToken", o.send_access_token.to_string()),
            ];
            for (k, v) in [
                ("maxOpenConnections", o.max_open_connections),
                ("maxPerRoute", o.max_per_route),
                ("connectionTimeout", o.connection_timeout_s),
            ] {
                if let Some(v) = v {
                    kv.push((k, v.to_string()));
                }
            }
            if let Some(rego) = &o.rego {
                kv.push(("rego", rego.clone()));
            }
            pa::Policy { action: "OPA".into(), parameters: params(&kv) }
        }
        PolicyAction::SetHeader { .. }
        | PolicyAction::RemoveHeader { .. }
        | PolicyAction::RewriteMethod { .. }
        | PolicyAction::CallInterceptor(_) => return None,
    })
}

fn mock_config(m: &MockConfig) -> pa::MockedApiConfig {
    pa::MockedApiConfig {
        responses: m
            .responses
            .iter()
            .map(|r| pa::MockedResponseConfig {
                code: r.code.clone(),
                headers: r
                    .headers
                    .iter()
                    .map(|(name, value)| pa::MockedHeaderConfig { name: name.clone(), value: value.clone() })
                    .collect(),
                content: r
                    .content
                    .iter()
                    .map(|c| pa::MockedContentConfig {
                        content_type: c.content_type.clone(),
                        examples: c
                            .examples
                            .iter()
                            .map(|(r, body)| pa::MockedContentExample { r#ref: r.clone(), body: body.clone() })
                            .collect(),
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// Which resources a stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Kind {
    /// The configuration.
    Config,
    /// The APIs of the enforcer's label.
    Apis,
    /// Revoked tokens.
    RevokedTokens,
    /// Throttling policies and blocking conditions.
    ThrottleData,
}

impl Kind {
    /// A short name, for metrics.
    pub fn short_name(self) -> &'static str {
        match self {
            Kind::Config => "config",
            Kind::Apis => "apis",
            Kind::RevokedTokens => "revoked_tokens",
            Kind::ThrottleData => "throttle_data",
        }
    }

    /// The type URL of its resources.
    pub fn type_url(self) -> &'static str {
        match self {
            Kind::Config => gateway_proto::CONFIG_TYPE_URL,
            Kind::Apis => gateway_proto::API_TYPE_URL,
            Kind::RevokedTokens => gateway_proto::REVOKED_TOKEN_TYPE_URL,
            Kind::ThrottleData => gateway_proto::THROTTLE_DATA_TYPE_URL,
        }
    }
}

#[cfg(test)]
mod tests {
    use gateway_model::{ParseOptions, ProjectFiles, parse_project};

    use super::*;

    #[test]
    fn graphql_operations_sharing_a_field_name_keep_each_verb() {
        let yaml = "type: api\nversion: v4.1.0\ndata:\n  name: G\n  version: v1\n  context: /g\n  type: GRAPHQL\n  \
                    endpointConfig:\n    production_endpoints: {url: \"http://127.0.0.1:1\"}\n  operations:\n    \
                    - {target: user, verb: QUERY, authType: None}\n    - {target: user, verb: MUTATION, scopes: [admin]}\n";
        let schema = "type Query { user: String }\ntype Mutation { user(name: String): String }\n";
        let mut files = ProjectFiles::new();
        files.insert("api.yaml", yaml);
        files.insert("Definitions/schema.graphql", schema);
        let api = parse_project(&files, &ParseOptions::default()).expect("valid").api;
        let r = api_resource(&api, "localhost");
        assert_eq!(r.resources.len(), 1, "{:?}", r.resources);
        let methods: Vec<(&str, bool)> =
            r.resources[0].methods.iter().map(|m| (m.method.as_str(), m.disable_security)).collect();
        assert_eq!(methods, vec![("QUERY", true), ("MUTATION", false)]);
        assert_eq!(r.resources[0].methods[1].security[0].scope_list["default"].scopes, vec!["admin"]);
        assert_eq!(r.graphql_schema, schema);
    }
}
