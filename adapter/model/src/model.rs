//! The typed API model: what a project means once every precedence rule,
//! extension and clamp of Choreo Connect has been applied.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

pub use crate::mediation::{
    Includes, Interceptor, Mediation, MockConfig, MockContent, MockResponse, OpaPolicy, PolicyAction,
};

/// Organization of APIs whose api.yaml names none (Choreo Connect's super tenant).
pub const DEFAULT_ORGANIZATION: &str = "carbon.super";

/// The API types of Choreo Connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ApiType {
    /// REST
    Http,
    /// SOAP pass-through
    Soap,
    /// WebSocket
    Ws,
    /// GraphQL
    Graphql,
}

impl fmt::Display for ApiType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ApiType::Http => "HTTP",
            ApiType::Soap => "SOAP",
            ApiType::Ws => "WS",
            ApiType::Graphql => "GRAPHQL",
        })
    }
}

/// HTTP methods a resource can declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    /// GET
    Get,
    /// POST
    Post,
    /// PUT
    Put,
    /// DELETE
    Delete,
    /// PATCH
    Patch,
    /// HEAD
    Head,
    /// OPTIONS
    Options,
    /// TRACE
    Trace,
    /// CONNECT
    Connect,
}

impl Method {
    /// Parses a lower- or upper-case OpenAPI operation key.
    pub fn from_key(key: &str) -> Option<Method> {
        Some(match key.to_ascii_lowercase().as_str() {
            "get" => Method::Get,
            "post" => Method::Post,
            "put" => Method::Put,
            "delete" => Method::Delete,
            "patch" => Method::Patch,
            "head" => Method::Head,
            "options" => Method::Options,
            "trace" => Method::Trace,
            "connect" => Method::Connect,
            _ => return None,
        })
    }

    /// The method as sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Patch => "PATCH",
            Method::Head => "HEAD",
            Method::Options => "OPTIONS",
            Method::Trace => "TRACE",
            Method::Connect => "CONNECT",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A deployed API.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Api {
    /// UUID from api.yaml `id`, or the SHA-1 of `name:version`.
    pub id: String,
    /// api.yaml `name`.
    pub name: String,
    /// api.yaml `version`.
    pub version: String,
    /// api.yaml `organizationId`, default [`DEFAULT_ORGANIZATION`].
    pub organization: String,
    /// api.yaml `type`.
    pub api_type: ApiType,
    /// The path prefix the gateway serves the API on.
    pub base_path: String,
    /// Also serve the API without the version segment of the base path.
    pub is_default_version: bool,
    /// The base path without the version, for default-version routing (`None`
    /// when not a default version or when it cannot be derived).
    pub versionless_base_path: Option<String>,
    /// Upper-cased api.yaml `lifeCycleStatus`.
    pub lifecycle_status: String,
    /// API-level throttling tier.
    pub tier: Option<String>,
    /// Custom authorization header of the API.
    pub auth_header: Option<String>,
    /// Choreo Connect's API-level flag (root `x-wso2-disable-security: true`
    /// or `x-auth-type: None`), reported as is. It decides nothing: each
    /// operation's `disable_security` is resolved with the root as a default
    /// that path items and operations override.
    pub disable_security: bool,
    /// Security schemes the API declares, by name.
    pub security_schemes: BTreeMap<String, SecurityScheme>,
    /// API-level security requirements (any one of them suffices).
    pub security: Vec<SecurityRequirement>,
    /// Mutual TLS: `mandatory`, `optional` or `not_defined`.
    pub mutual_ssl: String,
    /// `oauth_basic_auth_api_key_mandatory` in api.yaml `securityScheme`.
    pub application_security: bool,
    /// The CORS policy.
    pub cors: ApiCors,
    /// Production endpoints of the API.
    pub production: Option<Box<EndpointCluster>>,
    /// Sandbox endpoints of the API.
    pub sandbox: Option<Box<EndpointCluster>>,
    /// Named endpoint lists from `x-wso2-endpoints`.
    pub named_endpoints: BTreeMap<String, EndpointCluster>,
    /// The API's resources in the order of the definition.
    pub resources: Vec<Resource>,
    /// Upstream CA certificates (PEM) by endpoint URL, from `Endpoint-certificates/`.
    pub endpoint_certificates: BTreeMap<String, String>,
    /// Certificates of `Endpoint-certificates/` no URL refers to, concatenated:
    /// trusted for every https endpoint without a certificate of its own.
    pub default_certificate: Option<String>,
    /// Client certificates of a mutual-TLS API (`Client-certificates/`).
    pub client_certificates: Vec<ClientCertificate>,
    /// `endpointImplementationType: MOCKED_OAS`: the enforcer answers from
    /// the operations' examples; no endpoint is called.
    pub mocked: bool,
    /// `x-wso2-pass-request-payload-to-enforcer` (effective only with
    /// `[router.payloadPassingToEnforcer] passRequestPayload`).
    pub pass_request_payload: Option<bool>,
    /// CA certificates (PEM, concatenated) of `Endpoint-certificates/interceptors/`,
    /// trusted by the https interceptor services of this API.
    pub interceptor_certificates: Option<String>,
    /// A GraphQL API's schema, complexities and operations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub graphql: Option<crate::graphql::GraphqlApi>,
}

/// A client certificate allowed to call a mutual-TLS API.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientCertificate {
    /// `alias` in `client_certificates.yaml` (else the file name).
    pub alias: String,
    /// `tierName`: throttling tier of callers with this certificate.
    pub tier: String,
    /// The certificate (PEM).
    pub pem: String,
}

/// Where an API's CORS policy comes from.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase", tag = "source")]
pub enum ApiCors {
    /// No `x-wso2-cors` (or disabled there): the gateway-wide `[router.cors]`.
    Global,
    /// `x-wso2-cors` was present but unusable: no CORS.
    None,
    /// The API's own policy.
    Api(CorsPolicy),
}

/// A CORS policy from `x-wso2-cors`.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CorsPolicy {
    /// Allowed origins; `*` is a wildcard.
    pub allow_origins: Vec<String>,
    /// Allowed methods.
    pub allow_methods: Vec<String>,
    /// Allowed headers.
    pub allow_headers: Vec<String>,
    /// Exposed headers.
    pub expose_headers: Vec<String>,
    /// Allow credentials.
    pub allow_credentials: bool,
}

/// A security scheme (OAS `securityDefinitions` / `components.securitySchemes`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecurityScheme {
    /// `oauth2`, `apiKey`, `http`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// For `apiKey`: the header or query parameter name.
    pub name: String,
    /// For `apiKey`: `header` or `query`.
    pub location: String,
}

/// One security requirement: scheme name → scopes.
pub type SecurityRequirement = BTreeMap<String, Vec<String>>;

/// A path of the API with its operations.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Resource {
    /// The path template as written in the definition, e.g. `/pets/{id}`.
    pub path: String,
    /// Operations in definition order.
    pub operations: Vec<Operation>,
    /// Resource-level production endpoints.
    pub production: Option<Box<EndpointCluster>>,
    /// Resource-level sandbox endpoints.
    pub sandbox: Option<Box<EndpointCluster>>,
    /// The backend path, when it is not the resource's own (a WebSocket
    /// topic's `x-uri-mapping`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_path: Option<String>,
}

/// One method of a resource.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Operation {
    /// The method.
    pub method: Method,
    /// Security disabled for this operation (resolved from operation, path and API level).
    pub disable_security: bool,
    /// Operation-level throttling tier.
    pub tier: Option<String>,
    /// Operation security; `None` means "as the API".
    pub security: Option<Vec<SecurityRequirement>>,
    /// Policies, interceptors and mock examples; `None` when there are none
    /// (most operations: boxed, it costs them one pointer). Set it with
    /// [`Mediation::boxed`], read it with [`Operation::mediation`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mediation: Option<Box<Mediation>>,
}

static NO_MEDIATION: Mediation = Mediation::EMPTY;

impl Operation {
    /// The operation's mediation (empty when it has none).
    pub fn mediation(&self) -> &Mediation {
        self.mediation.as_deref().unwrap_or(&NO_MEDIATION)
    }
}

/// Load balancing across the endpoints of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointKind {
    /// Round robin.
    LoadBalance,
    /// The first endpoint, then the next when it is unhealthy.
    Failover,
}

/// URL scheme of an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// http
    Http,
    /// https
    Https,
    /// ws
    Ws,
    /// wss
    Wss,
}

impl Scheme {
    /// True for https and wss.
    pub fn is_tls(self) -> bool {
        matches!(self, Scheme::Https | Scheme::Wss)
    }
}

/// One upstream endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    /// The URL as given (with `http://` prefixed when it had no scheme).
    pub url: String,
    /// Scheme.
    pub scheme: Scheme,
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// Port (the scheme's default when not given).
    pub port: u16,
    /// Path of the URL without a trailing `/` (may be empty).
    pub base_path: String,
}

/// An endpoint list with its settings.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointCluster {
    /// Endpoints in order (priority order for failover).
    pub endpoints: Vec<Endpoint>,
    /// Round robin or failover.
    pub kind: EndpointKind,
    /// Retries, already clamped to the router's limits.
    pub retry: Option<RetryConfig>,
    /// Route timeout in milliseconds, already clamped.
    pub timeout_ms: Option<u32>,
    /// Circuit breaker thresholds.
    pub circuit_breakers: Option<CircuitBreakers>,
    /// Basic credentials sent to the endpoints.
    pub basic_auth: Option<BasicAuth>,
    /// Talk HTTP/2 to the endpoints.
    pub http2: bool,
    /// For `x-wso2-endpoints` references: the name of the list.
    pub reference: Option<String>,
}

impl EndpointCluster {
    /// Endpoints with no settings of their own (no retries, timeout, circuit
    /// breakers, credentials, HTTP/2 or `x-wso2-endpoints` name).
    pub fn plain(endpoints: Vec<Endpoint>, kind: EndpointKind) -> EndpointCluster {
        EndpointCluster {
            endpoints,
            kind,
            retry: None,
            timeout_ms: None,
            circuit_breakers: None,
            basic_auth: None,
            http2: false,
            reference: None,
        }
    }

    /// The base path shared by the endpoints (empty when none).
    pub fn base_path(&self) -> &str {
        self.endpoints.first().map(|e| e.base_path.as_str()).unwrap_or("")
    }
}

/// `advanceEndpointConfig.retryConfig`
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryConfig {
    /// Retries (not counting the first attempt).
    pub count: u32,
    /// Status codes that are retried.
    pub status_codes: Vec<u32>,
}

/// `advanceEndpointConfig.circuitBreakers` (unset values are Envoy's defaults).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CircuitBreakers {
    /// Maximum connections.
    pub max_connections: Option<u32>,
    /// Maximum concurrent requests.
    pub max_requests: Option<u32>,
    /// Maximum pending requests.
    pub max_pending_requests: Option<u32>,
    /// Maximum concurrent retries.
    pub max_retries: Option<u32>,
    /// Maximum connection pools.
    pub max_connection_pools: Option<u32>,
}

/// Basic credentials for an endpoint list.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct BasicAuth {
    /// User name.
    pub username: String,
    /// Password.
    #[serde(skip_serializing)]
    pub password: String,
}

impl fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicAuth").field("username", &self.username).field("password", &"***").finish()
    }
}

/// Where an API is deployed: a gateway environment (label) and a vhost.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Deployment {
    /// The gateway environment, e.g. `Default`.
    pub environment: String,
    /// The virtual host.
    pub vhost: String,
}

/// A parsed project: the API and where it goes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Project {
    /// The API.
    pub api: Api,
    /// Deployments resolved against `[[adapter.vhostMapping]]`. Empty when
    /// every environment named in `deployment_environments.yaml` is unknown
    /// here (the project is accepted but deployed nowhere, as in Choreo Connect).
    pub deployments: Vec<Deployment>,
    /// Environments named by the project that this gateway does not know.
    pub skipped_environments: Vec<String>,
}
