//! Fixtures several test files share: the Pets API's definition, the
//! claims of a token subscribed to it, and a plain Envoy's configuration
//! (tests and `make bench`).

use serde_json::{Value, json};

use crate::IDP_ISSUER;
use crate::tokens::now;

/// The Pets API: `GET /pets`, secured.
pub const PETS_OAS: &str = r#"
openapi: 3.0.1
info: { title: Pets, version: "1.0" }
paths:
  /pets:
    get: {}
"#;

/// Claims of a JWT from the IdP issuer ([`IDP_ISSUER`]) for alice's PetApp,
/// subscribed to Pets 1.0 (`/pets/1.0`), valid for ten minutes.
pub fn pets_claims(jti: &str) -> Value {
    json!({
        "iss": IDP_ISSUER, "sub": "alice", "azp": "c1", "exp": now() + 600, "iat": now(), "jti": jti,
        "application": {"id": 1, "uuid": "app-1", "name": "PetApp", "owner": "alice"},
        "subscribedAPIs": [{"name": "Pets", "version": "1.0", "context": "/pets/1.0", "subscriptionTier": "Gold"}],
    })
}

/// A plain Envoy routing everything on `listen` to `backend` (router only).
pub fn plain_envoy_config(listen: u16, backend: u16) -> String {
    plain_envoy_config_with(listen, backend, "", "", "")
}

/// A plain Envoy routing everything on `listen` to `backend`, with HCM
/// settings (`hcm`, lines at the HCM's indent), route settings (`route`,
/// `, key: value` inside the route action) and HTTP filters before the router
/// (`filters`, list items at the filters' indent) added.
pub fn plain_envoy_config_with(listen: u16, backend: u16, hcm: &str, route: &str, filters: &str) -> String {
    format!(
        r#"static_resources:
  listeners:
  - name: plain
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {listen} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: plain
{hcm}          route_config:
            virtual_hosts:
            - {{ name: all, domains: ["*"], routes: [ {{ match: {{ prefix: "/" }}, route: {{ cluster: backend{route} }} }} ] }}
          http_filters:
{filters}          - name: envoy.filters.http.router
            typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }}
  clusters:
  - name: backend
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: backend
      endpoints: [ {{ lb_endpoints: [ {{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {backend} }} }} }} }} ] }} ]
"#
    )
}

/// The enforcer module's do-nothing filter (`filter_name: noop`), loaded
/// from `module`, as an item of [`plain_envoy_config_with`]'s `filters`.
pub fn noop_module_filter(module: &std::path::Path) -> String {
    format!(
        r#"          - name: gateway.enforcer
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter
              dynamic_module_config: {{ name: gateway_module, module: {{ local: {{ filename: "{}" }} }} }}
              filter_name: noop
"#,
        module.display()
    )
}
