//! The HTTP and HTTPS listeners and their filter chain (ARCHITECTURE.md).

use envoy_types::pb::envoy::config::accesslog::v3::{AccessLog, access_log};
use envoy_types::pb::envoy::config::common::mutation_rules::v3::{HeaderMutation as Mutation, header_mutation::Action};
use envoy_types::pb::envoy::config::core::v3::{
    Address, ApiVersion, CidrRange, GrpcService, HttpProtocolOptions, SocketAddress, TransportSocket,
    TypedExtensionConfig, address, grpc_service, socket_address, transport_socket,
};
use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener, filter};
use envoy_types::pb::envoy::extensions::access_loggers::grpc::v3::{
    CommonGrpcAccessLogConfig, HttpGrpcAccessLogConfig,
};
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::Cors;
use envoy_types::pb::envoy::extensions::filters::http::ext_authz::v3::{BufferSettings, ExtAuthz, ext_authz};
use envoy_types::pb::envoy::extensions::filters::http::header_mutation::v3::{
    HeaderMutation as FilterHeaderMutation, Mutations,
};
use envoy_types::pb::envoy::extensions::filters::http::local_ratelimit::v3::LocalRateLimit;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router as RouterFilter;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, ScopedRds, ScopedRoutes, http_connection_manager, http_filter, scoped_routes,
};
use envoy_types::pb::envoy::extensions::http::early_header_mutation::header_mutation::v3::HeaderMutation;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, DownstreamTlsContext, common_tls_context,
};
use envoy_types::pb::envoy::r#type::v3::{HttpStatus, StatusCode};
use gateway_config::Config;

use super::local_reply::local_reply_config;
use super::names::*;
use super::tls::{Params, common_context, file};
use super::util::{ads, any, bool_value, secs, set_header, u32_value};

fn http_filters(c: &Config) -> Vec<HttpFilter> {
    let r = &c.router;
    let authz = ExtAuthz {
        services: Some(ext_authz::Services::GrpcService(GrpcService {
            target_specifier: Some(grpc_service::TargetSpecifier::EnvoyGrpc(grpc_service::EnvoyGrpc {
                cluster_name: CLUSTER_EXT_AUTHZ.to_string(),
                ..Default::default()
            })),
            timeout: Some(secs(r.enforcer_response_timeout_in_seconds)),
            ..Default::default()
        })),
        transport_api_version: ApiVersion::V3 as i32,
        failure_mode_allow: false,
        clear_route_cache: true,
        include_peer_certificate: true,
        status_on_error: Some(HttpStatus { code: StatusCode::InternalServerError as i32 }),
        with_request_body: r.payload_passing_to_enforcer.pass_request_payload.then_some(BufferSettings {
            max_request_bytes: r.payload_passing_to_enforcer.max_request_bytes,
            allow_partial_message: r.payload_passing_to_enforcer.allow_partial_message,
            pack_as_bytes: r.payload_passing_to_enforcer.pack_as_bytes,
        }),
        ..Default::default()
    };
    let typed = |name: &str, a| HttpFilter {
        name: name.to_string(),
        config_type: Some(http_filter::ConfigType::TypedConfig(a)),
        ..Default::default()
    };
    // Off unless a route enables it with a bucket (the JWKS route).
    let local_ratelimit = LocalRateLimit { stat_prefix: "http_local_rate_limiter".to_string(), ..Default::default() };
    // Off unless a route or virtual host configures them: Envoy then does
    // not even create them for a request (measured with callgrind: an
    // ext_authz filter that a route disables still costs about 12,500
    // instructions per request, ARCHITECTURE.md "The open route"). Every
    // route that goes to the enforcer carries ext_authz check settings (its
    // context extensions), which turn it on; the virtual host of such a
    // route turns on the client-address header (scope.rs).
    let off = |name: &str, a| HttpFilter { disabled: true, ..typed(name, a) };
    // The enforcer: over gRPC (ext_authz), or inside Envoy as its dynamic
    // module; in both, off unless the route carries the enforcer's settings.
    let enforcer = if r.enforcer_in_module() {
        off(FILTER_ENFORCER_MODULE, any(&super::module::filter()))
    } else {
        off(FILTER_EXT_AUTHZ, any(&authz))
    };
    vec![
        typed(FILTER_CORS, any(&Cors::default())),
        off(FILTER_LOCAL_RATELIMIT, any(&local_ratelimit)),
        off(FILTER_HEADER_MUTATION, any(&FilterHeaderMutation::default())),
        enforcer,
        off(FILTER_LUA, super::mediation::lua_filter()),
        typed(FILTER_ROUTER, any(&RouterFilter { suppress_envoy_headers: true, ..Default::default() })),
    ]
}

/// The client's address as Envoy determined it (after `use_remote_address`
/// and the trusted hops), for the enforcer; any client-sent value is
/// overwritten. Set on the virtual hosts whose routes go to the enforcer.
pub fn client_ip_mutation() -> Mutations {
    Mutations {
        request_mutations: vec![Mutation {
            action: Some(Action::Append(set_header(HEADER_CLIENT_IP, "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"))),
        }],
        ..Default::default()
    }
}

/// Request headers no client may send: identity headers the gateway sets
/// (the backend JWT's header; the client-certificate header when the
/// certificate comes from the TLS handshake), method overrides and the
/// cluster header. Removed
/// before routing, so neither the enforcer nor a backend ever sees a
/// client's value.
pub fn client_headers_removed(c: &Config) -> Vec<String> {
    let mut out = vec![c.enforcer.jwt_generator.header.to_ascii_lowercase()];
    let mtls = &c.enforcer.security.mutual_ssl;
    if mtls.enable_client_validation {
        out.push(mtls.certificate_header.to_ascii_lowercase());
    }
    out.extend(METHOD_OVERRIDE_HEADERS.iter().map(|h| h.to_string()));
    // The cluster header selects sandbox and dynamic-endpoint routes: only
    // the enforcer and the interceptor filter set it, never a client (an
    // open operation with an interceptor has no enforcer to overwrite it).
    out.push(HEADER_CLUSTER.to_string());
    out.dedup();
    out
}

fn codec(c: &Config) -> i32 {
    use http_connection_manager::CodecType;
    (match c.router.listener_codec_type.to_ascii_uppercase().as_str() {
        "HTTP1" => CodecType::Http1,
        "HTTP2" => CodecType::Http2,
        _ => CodecType::Auto,
    }) as i32
}

/// The connection manager shared by both listeners.
pub fn http_connection_manager(c: &Config) -> HttpConnectionManager {
    let t = &c.router.connection_timeout;
    let scope_key = scoped_routes::ScopeKeyBuilder {
        fragments: vec![scoped_routes::scope_key_builder::FragmentBuilder {
            r#type: Some(scoped_routes::scope_key_builder::fragment_builder::Type::HeaderValueExtractor(
                scoped_routes::scope_key_builder::fragment_builder::HeaderValueExtractor {
                    name: HEADER_ROUTE_SCOPE.to_string(),
                    element_separator: "/".to_string(),
                    extract_type: Some(
                        scoped_routes::scope_key_builder::fragment_builder::header_value_extractor::ExtractType::Index(
                            1,
                        ),
                    ),
                },
            )),
        }],
    };
    // Before routing: the path without its query string, whose first segment
    // picks the route scope (overwriting anything a client sent), and the
    // headers no client may send removed.
    // `:path` only: `%PATH%` would prefer a client's `x-envoy-original-path`.
    let mut mutations =
        vec![Mutation { action: Some(Action::Append(set_header(HEADER_ROUTE_SCOPE, "%PATH(NQ:PATH)%"))) }];
    mutations.extend(client_headers_removed(c).into_iter().map(|h| Mutation { action: Some(Action::Remove(h)) }));
    let scope_header = HeaderMutation { mutations };
    HttpConnectionManager {
        codec_type: codec(c),
        stat_prefix: STAT_PREFIX.to_string(),
        route_specifier: Some(http_connection_manager::RouteSpecifier::ScopedRoutes(ScopedRoutes {
            name: SCOPED_ROUTES.to_string(),
            scope_key_builder: Some(scope_key),
            rds_config_source: Some(ads()),
            config_specifier: Some(scoped_routes::ConfigSpecifier::ScopedRds(ScopedRds {
                scoped_rds_config_source: Some(ads()),
                ..Default::default()
            })),
        })),
        early_header_mutation_extensions: vec![TypedExtensionConfig {
            name: "envoy.http.early_header_mutation.header_mutation".to_string(),
            typed_config: Some(any(&scope_header)),
        }],
        http_filters: http_filters(c),
        local_reply_config: Some(local_reply_config(c.adapter.soap_error_in_xml_enabled)),
        use_remote_address: Some(bool_value(c.router.use_remote_address)),
        xff_num_trusted_hops: c.router.xff_num_trusted_hops,
        // No client is "internal": Envoy then strips every x-envoy-* control
        // header (retries, timeouts, original path, ...) that a client sends.
        // An empty list would mean Envoy's default (RFC 1918, RFC 4193 and
        // loopback are internal), so the list names the unspecified addresses,
        // which never open a connection.
        internal_address_config: Some(http_connection_manager::InternalAddressConfig {
            unix_sockets: false,
            cidr_ranges: ["0.0.0.0", "::"]
                .iter()
                .map(|a| CidrRange {
                    address_prefix: a.to_string(),
                    prefix_len: Some(u32_value(if a.contains(':') { 128 } else { 32 })),
                })
                .collect(),
        }),
        stream_idle_timeout: Some(secs(t.stream_idle_timeout_in_seconds)),
        request_timeout: Some(secs(t.request_timeout_in_seconds)),
        request_headers_timeout: Some(secs(t.request_headers_timeout_in_seconds)),
        common_http_protocol_options: Some(HttpProtocolOptions {
            idle_timeout: Some(secs(t.idle_timeout_in_seconds)),
            ..Default::default()
        }),
        access_log: access_logs(c),
        tracing: super::tracing::trace(c).map(|t| super::tracing::hcm_tracing(&t)),
        // Paths are matched as Envoy normalises them (RFC 3986: dot segments
        // resolved, percent-encoded unreserved characters decoded, `//`
        // merged); a path with an escaped slash (`%2F`, `%5C`) is refused with
        // 400 rather than matched as one segment and decoded by a backend.
        normalize_path: Some(bool_value(true)),
        merge_slashes: true,
        path_with_escaped_slashes_action: http_connection_manager::PathWithEscapedSlashesAction::RejectRequest as i32,
        strip_port_mode: Some(http_connection_manager::StripPortMode::StripAnyHostPort(true)),
        // The enforcer module reads the client's TLS certificate (mutual
        // TLS APIs) from the header Envoy sets for it, as ext_authz gets it
        // with `include_peer_certificate`. SANITIZE_SET drops any value a
        // client sends; the module removes the header before upstream.
        forward_client_cert_details: if c.router.enforcer_in_module() {
            http_connection_manager::ForwardClientCertDetails::SanitizeSet as i32
        } else {
            http_connection_manager::ForwardClientCertDetails::Sanitize as i32
        },
        set_current_client_cert_details: c
            .router
            .enforcer_in_module()
            .then(|| http_connection_manager::SetCurrentClientCertDetails { cert: true, ..Default::default() }),
        ..Default::default()
    }
}

/// The access log of `log_config.toml`'s `[accessLogs]` (a file, with
/// Choreo Connect's format operators plus `%REQ_WITHOUT_QUERY(...)%`), then
/// the enforcer's access-log service when analytics is on.
fn access_logs(c: &Config) -> Vec<AccessLog> {
    let mut out = Vec::new();
    let a = &c.access_logs;
    if a.enable {
        use envoy_types::pb::envoy::config::core::v3::{
            DataSource, SubstitutionFormatString, data_source, substitution_format_string,
        };
        use envoy_types::pb::envoy::extensions::access_loggers::file::v3::{FileAccessLog, file_access_log};
        use envoy_types::pb::envoy::extensions::formatter::req_without_query::v3::ReqWithoutQuery;
        let file = FileAccessLog {
            path: a.logfile.clone(),
            access_log_format: Some(file_access_log::AccessLogFormat::LogFormat(SubstitutionFormatString {
                format: Some(substitution_format_string::Format::TextFormatSource(DataSource {
                    specifier: Some(data_source::Specifier::InlineString(a.format.clone())),
                    ..Default::default()
                })),
                formatters: vec![TypedExtensionConfig {
                    name: "envoy.formatter.req_without_query".to_string(),
                    typed_config: Some(any(&ReqWithoutQuery {})),
                }],
                ..Default::default()
            })),
        };
        out.push(AccessLog {
            name: "envoy.access_loggers.file".to_string(),
            config_type: Some(access_log::ConfigType::TypedConfig(any(&file))),
            ..Default::default()
        });
    }
    if !c.analytics.enabled {
        return out;
    }
    let a = &c.analytics.adapter;
    let dur = |s: &str| {
        let d = gateway_config::enforcer::go_duration(s).unwrap_or(std::time::Duration::from_secs(1));
        envoy_types::pb::google::protobuf::Duration { seconds: d.as_secs() as i64, nanos: d.subsec_nanos() as i32 }
    };
    let cfg = HttpGrpcAccessLogConfig {
        common_config: Some(CommonGrpcAccessLogConfig {
            log_name: "mgw_access_logs".to_string(),
            grpc_service: Some(GrpcService {
                target_specifier: Some(grpc_service::TargetSpecifier::EnvoyGrpc(grpc_service::EnvoyGrpc {
                    cluster_name: CLUSTER_ACCESS_LOGGER.to_string(),
                    ..Default::default()
                })),
                timeout: Some(dur(&a.grpc_request_timeout)),
                ..Default::default()
            }),
            transport_api_version: ApiVersion::V3 as i32,
            buffer_flush_interval: Some(dur(&a.buffer_flush_interval)),
            buffer_size_bytes: Some(u32_value(a.buffer_size_bytes)),
            ..Default::default()
        }),
        // The client's path without query, set before routing (analytics reports it).
        additional_request_headers_to_log: vec![HEADER_ROUTE_SCOPE.to_string()],
        ..Default::default()
    };
    out.push(AccessLog {
        name: "envoy.access_loggers.http_grpc".to_string(),
        config_type: Some(access_log::ConfigType::TypedConfig(any(&cfg))),
        ..Default::default()
    });
    out
}

fn listener(
    name: &str,
    host: &str,
    port: u16,
    hcm: &HttpConnectionManager,
    tls: Option<TransportSocket>,
    c: &Config,
) -> Listener {
    Listener {
        name: name.to_string(),
        address: Some(Address {
            address: Some(address::Address::SocketAddress(SocketAddress {
                address: host.to_string(),
                port_specifier: Some(socket_address::PortSpecifier::PortValue(u32::from(port))),
                ..Default::default()
            })),
        }),
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: "envoy.filters.network.http_connection_manager".to_string(),
                config_type: Some(filter::ConfigType::TypedConfig(any(hcm))),
            }],
            transport_socket: tls,
            ..Default::default()
        }],
        per_connection_buffer_limit_bytes: Some(u32_value(c.router.per_connection_buffer_limit_bytes)),
        ..Default::default()
    }
}

fn downstream_tls(c: &Config) -> TransportSocket {
    let r = &c.router;
    let t = &r.downstream.tls;
    let validation = t.mtls_apis_enabled.then(|| {
        common_tls_context::ValidationContextType::ValidationContext(CertificateValidationContext {
            trusted_ca: Some(file(&t.trusted_cert_path)),
            ..Default::default()
        })
    });
    let alpn = match r.listener_codec_type.to_ascii_uppercase().as_str() {
        "HTTP1" => vec!["http/1.1".to_string()],
        "HTTP2" => vec!["h2".to_string()],
        _ => vec!["h2".to_string(), "http/1.1".to_string()],
    };
    let params = Params { min: &t.minimum_protocol_version, max: &t.maximum_protocol_version, ciphers: &t.ciphers };
    let ctx = DownstreamTlsContext {
        common_tls_context: Some(common_context(params, &r.keystore, alpn, validation)),
        require_client_certificate: Some(bool_value(false)),
        ..Default::default()
    };
    TransportSocket {
        name: "envoy.transport_sockets.tls".to_string(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(any(&ctx))),
    }
}

/// The listeners: `HTTPListener` and `HTTPSListener` (a port of 0 leaves one out).
pub fn listeners(c: &Config) -> Vec<Listener> {
    let r = &c.router;
    let hcm = http_connection_manager(c);
    let mut out = Vec::new();
    if r.secured_listener_port > 0 {
        out.push(listener(
            LISTENER_HTTPS,
            &r.secured_listener_host,
            r.secured_listener_port,
            &hcm,
            Some(downstream_tls(c)),
            c,
        ));
    }
    if r.listener_port > 0 {
        out.push(listener(LISTENER_HTTP, &r.listener_host, r.listener_port, &hcm, None, c));
    }
    out
}
