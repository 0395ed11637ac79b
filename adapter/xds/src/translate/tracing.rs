//! `[tracing]`: the router's tracer, as in Choreo Connect. With `enabled`
//! and `type` zipkin or otlp, the adapter adds the cluster `wso2_cc_trace`
//! (the collector at `host:port`) and the connection manager traces every
//! request with service name `choreo_connect_router`.
//!
//! `[tracing.configProperties]` (strings, as in Choreo Connect): `host`,
//! `port`, `endpoint` (zipkin: the collector path, `/api/v2/spans`; otlp over
//! HTTP: `/v1/traces`), `maxPathLength` (256), `connectionTimeout` (otlp, in
//! seconds, 20). Not in Choreo Connect: `protocol` for otlp, `grpc` (the
//! default, OTLP/gRPC as Choreo Connect) or `http` (OTLP/HTTP protobuf).

use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
use envoy_types::pb::envoy::config::core::v3::{
    Address, GrpcService, Http2ProtocolOptions, HttpService, HttpUri, SocketAddress, address, grpc_service, http_uri,
    socket_address,
};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use envoy_types::pb::envoy::config::trace::v3::{OpenTelemetryConfig, ZipkinConfig, tracing, zipkin_config};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::HttpProtocolOptions;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::http_protocol_options::{
    ExplicitHttpConfig, UpstreamProtocolOptions, explicit_http_config::ProtocolConfig,
};
use gateway_config::Config;

use super::util::{any, secs, u32_value};

/// The collector's cluster (Choreo Connect's name).
pub const CLUSTER_TRACE: &str = "wso2_cc_trace";
/// The router's service name in traces.
pub const ROUTER_SERVICE_NAME: &str = "choreo_connect_router";

/// What the router exports to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exporter {
    /// Zipkin v2 JSON over HTTP.
    Zipkin,
    /// OTLP over gRPC.
    OtlpGrpc,
    /// OTLP over HTTP (protobuf).
    OtlpHttp,
}

/// `[tracing]` as the router uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    /// The protocol.
    pub exporter: Exporter,
    /// Collector host.
    pub host: String,
    /// Collector port.
    pub port: u16,
    /// Collector path (zipkin, otlp over HTTP).
    pub endpoint: String,
    /// Longest path tag.
    pub max_path_length: u32,
    /// Export timeout, seconds.
    pub timeout_s: u32,
}

/// A `configProperties` value.
pub fn property(c: &Config, key: &str) -> Option<String> {
    c.tracing.property(key)
}

/// The router's tracing, when `[tracing]` enables it for zipkin or otlp
/// (values are checked when the configuration is loaded).
pub fn trace(c: &Config) -> Option<Trace> {
    if !c.tracing.enabled {
        return None;
    }
    let exporter = match c.tracing.kind.to_ascii_lowercase().as_str() {
        "zipkin" => Exporter::Zipkin,
        "otlp" if property(c, "protocol").is_some_and(|p| p.eq_ignore_ascii_case("http")) => Exporter::OtlpHttp,
        "otlp" => Exporter::OtlpGrpc,
        _ => return None,
    };
    let default_endpoint = if exporter == Exporter::Zipkin { "/api/v2/spans" } else { "/v1/traces" };
    Some(Trace {
        host: property(c, "host").unwrap_or_else(|| "jaeger".into()),
        port: property(c, "port").and_then(|p| p.parse().ok()).unwrap_or(9411),
        endpoint: property(c, "endpoint").filter(|e| !e.is_empty()).unwrap_or_else(|| default_endpoint.into()),
        max_path_length: property(c, "maxPathLength").and_then(|p| p.parse().ok()).unwrap_or(256),
        timeout_s: property(c, "connectionTimeout").and_then(|p| p.parse().ok()).unwrap_or(20),
        exporter,
    })
}

/// The collector's cluster.
pub fn cluster(t: &Trace) -> Cluster {
    let mut c = Cluster {
        name: CLUSTER_TRACE.to_string(),
        connect_timeout: Some(secs(5)),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(cluster::DiscoveryType::StrictDns as i32)),
        load_assignment: Some(ClusterLoadAssignment {
            cluster_name: CLUSTER_TRACE.to_string(),
            endpoints: vec![LocalityLbEndpoints {
                lb_endpoints: vec![LbEndpoint {
                    host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(
                        envoy_types::pb::envoy::config::endpoint::v3::Endpoint {
                            address: Some(Address {
                                address: Some(address::Address::SocketAddress(SocketAddress {
                                    address: t.host.clone(),
                                    port_specifier: Some(socket_address::PortSpecifier::PortValue(u32::from(t.port))),
                                    ..Default::default()
                                })),
                            }),
                            ..Default::default()
                        },
                    )),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    if t.exporter == Exporter::OtlpGrpc {
        let opts = HttpProtocolOptions {
            upstream_protocol_options: Some(UpstreamProtocolOptions::ExplicitHttpConfig(ExplicitHttpConfig {
                protocol_config: Some(ProtocolConfig::Http2ProtocolOptions(Http2ProtocolOptions::default())),
            })),
            ..Default::default()
        };
        c.typed_extension_protocol_options
            .insert("envoy.extensions.upstreams.http.v3.HttpProtocolOptions".to_string(), any(&opts));
    }
    c
}

/// The connection manager's tracing.
pub fn hcm_tracing(t: &Trace) -> http_connection_manager::Tracing {
    let provider = match t.exporter {
        Exporter::Zipkin => tracing::Http {
            name: "envoy.tracers.zipkin".to_string(),
            config_type: Some(tracing::http::ConfigType::TypedConfig(any(&ZipkinConfig {
                collector_cluster: CLUSTER_TRACE.to_string(),
                collector_endpoint: t.endpoint.clone(),
                collector_endpoint_version: zipkin_config::CollectorEndpointVersion::HttpJson as i32,
                trace_id_128bit: true,
                ..Default::default()
            }))),
        },
        Exporter::OtlpGrpc | Exporter::OtlpHttp => {
            let mut otel = OpenTelemetryConfig { service_name: ROUTER_SERVICE_NAME.to_string(), ..Default::default() };
            if t.exporter == Exporter::OtlpGrpc {
                otel.grpc_service = Some(GrpcService {
                    target_specifier: Some(grpc_service::TargetSpecifier::EnvoyGrpc(grpc_service::EnvoyGrpc {
                        cluster_name: CLUSTER_TRACE.to_string(),
                        ..Default::default()
                    })),
                    timeout: Some(secs(t.timeout_s)),
                    ..Default::default()
                });
            } else {
                otel.http_service = Some(HttpService {
                    http_uri: Some(HttpUri {
                        uri: format!("http://{}:{}{}", t.host, t.port, t.endpoint),
                        timeout: Some(secs(t.timeout_s)),
                        http_upstream_type: Some(http_uri::HttpUpstreamType::Cluster(CLUSTER_TRACE.to_string())),
                    }),
                    ..Default::default()
                });
            }
            tracing::Http {
                name: "envoy.tracers.opentelemetry".to_string(),
                config_type: Some(tracing::http::ConfigType::TypedConfig(any(&otel))),
            }
        }
    };
    http_connection_manager::Tracing {
        max_path_tag_length: Some(u32_value(t.max_path_length)),
        provider: Some(provider),
        ..Default::default()
    }
}
