//! The APIs of the enforcer's label, indexed for the request path: API by
//! (vhost, base path, version), resource by path template, operation by method.

use std::collections::HashMap;
use std::sync::Arc;

use gateway_proto::api as pa;

/// An API from the adapter that cannot be used (the adapter gets it as the NACK).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("API {api}: {reason}")]
pub struct ApiError {
    /// `name:version`.
    pub api: String,
    /// What is wrong.
    pub reason: String,
}

/// Mutual TLS requirement of an API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mtls {
    /// Not used.
    Off,
    /// A certificate is used if given.
    Optional,
    /// A certificate is required.
    Mandatory,
}

/// Where an API key is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyLocation {
    /// A request header (lower-cased name).
    Header(String),
    /// A query parameter.
    Query(String),
}

/// One operation (method) of a resource.
#[derive(Debug)]
pub struct Operation {
    /// Upper-case method.
    pub method: String,
    /// Security disabled.
    pub disable_security: bool,
    /// The JWT authenticator applies: no security requirement, or one naming an `oauth2` scheme.
    pub jwt: bool,
    /// API-key locations of the requirements that apply.
    pub api_keys: Vec<KeyLocation>,
    /// Scopes of the first requirement that lists any (any one suffices).
    pub scopes: Vec<String>,
    /// Throttling tier.
    pub tier: String,
    /// Request-flow policies the enforcer carries out, in order.
    pub policies: Vec<crate::mediation::RequestPolicy>,
    /// A mocked API's examples for this operation.
    pub mock: Option<pa::MockedApiConfig>,
}

/// A path template with its operations.
#[derive(Debug)]
pub struct Resource {
    /// The template, e.g. `/pets/{id}`.
    pub path: String,
    /// Operations in definition order.
    pub operations: Vec<Operation>,
    /// `Allow` header for OPTIONS answers: `OPTIONS, GET, ...`.
    pub allow: String,
}

impl Resource {
    /// The operation for `method`.
    pub fn operation(&self, method: &str) -> Option<&Operation> {
        self.operations.iter().find(|o| o.method.eq_ignore_ascii_case(method))
    }
}

/// A client certificate of an mTLS API.
#[derive(Debug, Clone)]
pub struct ClientCert {
    /// Alias.
    pub alias: String,
    /// Throttling tier.
    pub tier: String,
    /// DER.
    pub der: Vec<u8>,
}

/// An API as the request path sees it.
#[derive(Debug)]
pub struct Api {
    /// What the adapter sent, less what is indexed below (resources,
    /// security schemes, certificates, the GraphQL schema): the API's
    /// identity, for analytics, throttling keys and the admin API.
    pub raw: pa::Api,
    /// Resources by path template.
    pub resources: HashMap<String, Resource>,
    /// Resource paths in definition order (the admin API lists them so).
    pub paths: Vec<String>,
    /// Lower-cased header names of the API's `apiKey` header schemes (removed before upstream).
    pub api_key_headers: Vec<String>,
    /// Query parameter names of the API's `apiKey` query schemes (removed before upstream).
    pub api_key_queries: Vec<String>,
    /// Lower-cased custom authorization header, if the API has one.
    pub auth_header: Option<String>,
    /// Mutual TLS.
    pub mtls: Mtls,
    /// Application-level security is required even with mandatory mTLS.
    pub application_security: bool,
    /// Client certificates (mTLS).
    pub client_certs: Vec<ClientCert>,
    /// Lifecycle state is BLOCKED.
    pub blocked: bool,
    /// Lifecycle state is PROTOTYPED: no authentication.
    pub prototyped: bool,
    /// A GraphQL API's schema (its resources are then its operations: path
    /// = root field, method = QUERY, MUTATION or SUBSCRIPTION).
    pub graphql: Option<crate::graphql::GraphqlSchema>,
    /// A GraphQL API's one route, for OPTIONS answers.
    pub graphql_endpoint: Resource,
}

fn operation(
    api: &pa::Api,
    schemes: &HashMap<&str, &pa::SecurityScheme>,
    op: &pa::Operation,
) -> Result<Operation, String> {
    let reqs: &[pa::SecurityList] = if op.has_security { &op.security } else { &api.security };
    let kind = |name: &str| schemes.get(name).map(|s| s.r#type.as_str()).unwrap_or("");
    let jwt = reqs.is_empty() || reqs.iter().any(|r| r.scope_list.keys().any(|n| kind(n) == "oauth2"));
    let mut api_keys = Vec::new();
    for r in reqs {
        let mut names: Vec<&String> = r.scope_list.keys().collect();
        names.sort();
        for n in names {
            if let Some(s) = schemes.get(n.as_str()).filter(|s| s.r#type.eq_ignore_ascii_case("apiKey")) {
                let loc = if s.r#in.eq_ignore_ascii_case("query") {
                    KeyLocation::Query(s.name.clone())
                } else {
                    KeyLocation::Header(s.name.to_ascii_lowercase())
                };
                if !api_keys.contains(&loc) {
                    api_keys.push(loc);
                }
            }
        }
    }
    let scopes = reqs
        .iter()
        .flat_map(|r| {
            let mut v: Vec<(&String, &pa::Scopes)> = r.scope_list.iter().collect();
            v.sort_by(|a, b| a.0.cmp(b.0));
            v.into_iter().map(|(_, s)| s)
        })
        .find(|s| !s.scopes.is_empty())
        .map(|s| s.scopes.clone())
        .unwrap_or_default();
    let policies = op
        .request_policies
        .iter()
        .map(crate::mediation::RequestPolicy::new)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{} operation policy: {e}", op.method))?;
    Ok(Operation {
        method: op.method.to_ascii_uppercase(),
        disable_security: op.disable_security,
        jwt,
        api_keys,
        scopes,
        tier: op.tier.clone(),
        policies,
        mock: if api.is_mocked_api { Some(op.mocked_api_config.clone().unwrap_or_default()) } else { None },
    })
}

fn client_certs(api: &pa::Api) -> Result<Vec<ClientCert>, String> {
    let mut out = Vec::new();
    for c in &api.client_certificates {
        let mut found = false;
        for pem in x509_parser::pem::Pem::iter_from_buffer(&c.content) {
            let pem = pem.map_err(|e| format!("client certificate {:?}: not PEM: {e}", c.alias))?;
            out.push(ClientCert { alias: c.alias.clone(), tier: c.tier.clone(), der: pem.contents });
            found = true;
        }
        if !found {
            return Err(format!("client certificate {:?}: no certificate", c.alias));
        }
    }
    Ok(out)
}

impl Api {
    /// Indexes an API from the adapter. Errors name the API and what is wrong.
    pub fn new(mut raw: pa::Api) -> Result<Api, ApiError> {
        let schemes: HashMap<&str, &pa::SecurityScheme> =
            raw.security_scheme.iter().map(|s| (s.definition_name.as_str(), s)).collect();
        let mut resources = HashMap::new();
        let mut paths = Vec::with_capacity(raw.resources.len());
        for r in &raw.resources {
            let operations: Vec<Operation> = r
                .methods
                .iter()
                .map(|o| operation(&raw, &schemes, o))
                .collect::<Result<_, _>>()
                .map_err(|reason| ApiError { api: format!("{}:{}", raw.title, raw.version), reason })?;
            let mut allow = String::from("OPTIONS");
            for o in &operations {
                if o.method != "OPTIONS" {
                    allow.push_str(", ");
                    allow.push_str(&o.method);
                }
            }
            if !resources.contains_key(&r.path) {
                paths.push(r.path.clone());
            }
            resources.insert(r.path.clone(), Resource { path: r.path.clone(), operations, allow });
        }
        let mut api_key_headers = Vec::new();
        let mut api_key_queries = Vec::new();
        for s in raw.security_scheme.iter().filter(|s| s.r#type.eq_ignore_ascii_case("apiKey")) {
            if s.r#in.eq_ignore_ascii_case("query") {
                api_key_queries.push(s.name.clone());
            } else {
                api_key_headers.push(s.name.to_ascii_lowercase());
            }
        }
        let mtls = match raw.mutual_ssl.to_ascii_lowercase().as_str() {
            "mandatory" => Mtls::Mandatory,
            "optional" => Mtls::Optional,
            _ => Mtls::Off,
        };
        let client_certs =
            client_certs(&raw).map_err(|reason| ApiError { api: format!("{}:{}", raw.title, raw.version), reason })?;
        let graphql = if raw.api_type.eq_ignore_ascii_case("GRAPHQL") {
            let complexity: Vec<crate::graphql::FieldComplexity> = raw
                .graphql_complexity
                .iter()
                .map(|c| crate::graphql::FieldComplexity {
                    type_name: c.r#type.clone(),
                    field: c.field.clone(),
                    value: c.complexity_value,
                })
                .collect();
            let schema = crate::graphql::GraphqlSchema::parse(&raw.graphql_schema, &complexity).map_err(|e| {
                ApiError { api: format!("{}:{}", raw.title, raw.version), reason: format!("GraphQL schema: {e}") }
            })?;
            Some(schema)
        } else {
            None
        };
        // Indexed above: the request path never reads them again.
        drop(schemes);
        raw.resources = Vec::new();
        raw.security_scheme = Vec::new();
        raw.security = Vec::new();
        raw.client_certificates = Vec::new();
        raw.graphql_schema = String::new();
        raw.graphql_complexity = Vec::new();
        Ok(Api {
            resources,
            paths,
            api_key_headers,
            api_key_queries,
            auth_header: Some(raw.authorization_header.to_ascii_lowercase()).filter(|h| !h.is_empty()),
            mtls,
            application_security: raw.application_security,
            client_certs,
            blocked: raw.api_lifecycle_state.eq_ignore_ascii_case("BLOCKED"),
            prototyped: raw.api_lifecycle_state.eq_ignore_ascii_case("PROTOTYPED"),
            graphql,
            graphql_endpoint: Resource {
                path: String::new(),
                operations: Vec::new(),
                allow: "OPTIONS, POST, GET".into(),
            },
            raw,
        })
    }
}

/// Every API of the label.
#[derive(Debug, Default)]
pub struct ApiIndex {
    by_base: HashMap<String, Vec<Arc<Api>>>,
    count: usize,
}

impl ApiIndex {
    /// Builds the index. Errors name the API.
    pub fn new(apis: Vec<pa::Api>) -> Result<ApiIndex, ApiError> {
        let mut by_base: HashMap<String, Vec<Arc<Api>>> = HashMap::new();
        let count = apis.len();
        for raw in apis {
            let api = Api::new(raw)?;
            by_base.entry(api.raw.base_path.clone()).or_default().push(Arc::new(api));
        }
        Ok(ApiIndex { by_base, count })
    }

    /// The API deployed on `vhost` at `base_path` with `version`.
    pub fn find(&self, vhost: &str, base_path: &str, version: &str) -> Option<&Arc<Api>> {
        self.by_base.get(base_path)?.iter().find(|a| a.raw.vhost == vhost && a.raw.version == version)
    }

    /// Every API.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Api>> {
        self.by_base.values().flatten()
    }

    /// Number of APIs.
    pub fn len(&self) -> usize {
        self.count
    }

    /// No APIs.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scopes(pairs: &[(&str, &[&str])]) -> pa::SecurityList {
        pa::SecurityList {
            scope_list: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), pa::Scopes { scopes: v.iter().map(|s| s.to_string()).collect() }))
                .collect(),
        }
    }

    #[test]
    fn operations_know_their_authenticators_and_scopes() {
        let raw = pa::Api {
            title: "Pets".into(),
            version: "1.0".into(),
            base_path: "/pets/1.0".into(),
            vhost: "localhost".into(),
            security_scheme: vec![
                pa::SecurityScheme { definition_name: "default".into(), r#type: "oauth2".into(), ..Default::default() },
                pa::SecurityScheme {
                    definition_name: "api_key_header".into(),
                    r#type: "apiKey".into(),
                    name: "ApiKey".into(),
                    r#in: "header".into(),
                },
                pa::SecurityScheme {
                    definition_name: "api_key_query".into(),
                    r#type: "apiKey".into(),
                    name: "apikey".into(),
                    r#in: "query".into(),
                },
            ],
            security: vec![scopes(&[("default", &[])])],
            resources: vec![pa::Resource {
                path: "/pets".into(),
                methods: vec![
                    pa::Operation { method: "GET".into(), ..Default::default() },
                    pa::Operation {
                        method: "POST".into(),
                        has_security: true,
                        security: vec![
                            scopes(&[("default", &["write"])]),
                            scopes(&[("api_key_header", &[]), ("api_key_query", &[])]),
                        ],
                        ..Default::default()
                    },
                    pa::Operation {
                        method: "PUT".into(),
                        has_security: true,
                        security: vec![scopes(&[("api_key_query", &[])])],
                        ..Default::default()
                    },
                ],
            }],
            ..Default::default()
        };
        let idx = ApiIndex::new(vec![raw]).expect("index");
        let api = idx.find("localhost", "/pets/1.0", "1.0").expect("api");
        assert!(idx.find("other", "/pets/1.0", "1.0").is_none());
        let r = &api.resources["/pets"];
        assert_eq!(r.allow, "OPTIONS, GET, POST, PUT");
        let get = r.operation("get").expect("get");
        assert!(get.jwt && get.api_keys.is_empty() && get.scopes.is_empty());
        let post = r.operation("POST").expect("post");
        assert!(post.jwt);
        assert_eq!(post.scopes, vec!["write"]);
        assert_eq!(post.api_keys, vec![KeyLocation::Header("apikey".into()), KeyLocation::Query("apikey".into())]);
        let put = r.operation("PUT").expect("put");
        assert!(!put.jwt, "only an API key applies");
        assert_eq!(api.api_key_headers, vec!["apikey"]);
        assert_eq!(api.api_key_queries, vec!["apikey"]);
    }
}
