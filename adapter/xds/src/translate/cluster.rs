//! Upstream clusters and their endpoints (ARCHITECTURE.md, "Clusters").
//!
//! Endpoint lists whose hosts are all IP addresses become EDS clusters: a
//! change of address or port then sends only the small load assignment and
//! the cluster (and its connection pools) stays as it is. Lists with host
//! names become DNS clusters with the endpoints inline, refreshed as
//! `[router.upstream.dns]` says.

use std::collections::HashMap;

use envoy_types::pb::envoy::config::cluster::v3::{
    CircuitBreakers, Cluster, circuit_breakers::Thresholds, cluster::ClusterDiscoveryType, cluster::CustomClusterType,
    cluster::DiscoveryType, cluster::EdsClusterConfig, cluster::TransportSocketMatch,
};
use envoy_types::pb::envoy::config::core::v3::{
    Address, HealthCheck, Http2ProtocolOptions, Metadata, RoutingPriority, SocketAddress, TransportSocket, address,
    data_source, health_check, socket_address, transport_socket,
};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint as PbEndpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use envoy_types::pb::envoy::extensions::clusters::common::dns::v3::DnsLookupFamily;
use envoy_types::pb::envoy::extensions::clusters::dns::v3::DnsCluster;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, SubjectAltNameMatcher, UpstreamTlsContext, common_tls_context,
    subject_alt_name_matcher::SanType,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{
    HttpProtocolOptions, http_protocol_options::ExplicitHttpConfig, http_protocol_options::UpstreamProtocolOptions,
    http_protocol_options::explicit_http_config::ProtocolConfig,
};
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use gateway_config::Config;
use gateway_model::{Api, Endpoint, EndpointCluster, EndpointKind, Interceptor, is_ip};

use super::tls::{Params, common_context, file};
use super::util::{ads, any, millis, secs, string_exact, u32_value};

/// A cluster and, for EDS clusters, its load assignment.
pub struct ClusterOut {
    /// The cluster.
    pub cluster: Cluster,
    /// The endpoints, served over EDS, when the cluster is an EDS cluster.
    pub endpoints: Option<ClusterLoadAssignment>,
}

const TRANSPORT_SOCKET_MATCH: &str = "envoy.transport_socket_match";

fn lb_id_metadata(i: usize) -> Metadata {
    let mut s = HashMap::new();
    s.insert("lb_id".to_string(), Value { kind: Some(Kind::StringValue(i.to_string())) });
    let mut fm = HashMap::new();
    fm.insert(TRANSPORT_SOCKET_MATCH.to_string(), Struct { fields: s });
    Metadata { filter_metadata: fm, ..Default::default() }
}

fn lb_endpoint(e: &Endpoint, i: usize) -> LbEndpoint {
    LbEndpoint {
        host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(PbEndpoint {
            address: Some(Address {
                address: Some(address::Address::SocketAddress(SocketAddress {
                    address: e.host.clone(),
                    port_specifier: Some(socket_address::PortSpecifier::PortValue(u32::from(e.port))),
                    ..Default::default()
                })),
            }),
            hostname: e.host.clone(),
            ..Default::default()
        })),
        metadata: e.scheme.is_tls().then(|| lb_id_metadata(i)),
        ..Default::default()
    }
}

/// The endpoints of a list: failover lists put each endpoint at its own
/// priority, in order; load-balanced lists share priority 0.
pub fn load_assignment(name: &str, ec: &EndpointCluster) -> ClusterLoadAssignment {
    let endpoints = match ec.kind {
        EndpointKind::Failover => ec
            .endpoints
            .iter()
            .enumerate()
            .map(|(i, e)| LocalityLbEndpoints {
                lb_endpoints: vec![lb_endpoint(e, i)],
                priority: i as u32,
                ..Default::default()
            })
            .collect(),
        EndpointKind::LoadBalance => vec![LocalityLbEndpoints {
            lb_endpoints: ec.endpoints.iter().enumerate().map(|(i, e)| lb_endpoint(e, i)).collect(),
            ..Default::default()
        }],
    };
    ClusterLoadAssignment { cluster_name: name.to_string(), endpoints, ..Default::default() }
}

/// Which CA certificates (PEM) an endpoint is verified against; `None`: the
/// router's `[router.upstream.tls] trustedCertPath`.
type TrustFor<'a> = &'a dyn Fn(&Endpoint) -> Option<&'a String>;

fn upstream_tls(e: &Endpoint, ec: &EndpointCluster, trust: TrustFor<'_>, c: &Config) -> UpstreamTlsContext {
    let t = &c.router.upstream.tls;
    let validation = (!t.disable_ssl_verification).then(|| {
        let trusted_ca = match trust(e) {
            Some(pem) => envoy_types::pb::envoy::config::core::v3::DataSource {
                specifier: Some(data_source::Specifier::InlineString(pem.clone())),
                ..Default::default()
            },
            None => file(&t.trusted_cert_path),
        };
        let san = t.verify_host_name.then(|| SubjectAltNameMatcher {
            san_type: if is_ip(&e.host) { SanType::IpAddress } else { SanType::Dns } as i32,
            matcher: Some(string_exact(&e.host)),
            ..Default::default()
        });
        common_tls_context::ValidationContextType::ValidationContext(CertificateValidationContext {
            trusted_ca: Some(trusted_ca),
            match_typed_subject_alt_names: san.into_iter().collect(),
            ..Default::default()
        })
    });
    let params = Params { min: &t.minimum_protocol_version, max: &t.maximum_protocol_version, ciphers: &t.ciphers };
    let alpn = if ec.http2 { vec!["h2".into(), "http/1.1".into()] } else { Vec::new() };
    UpstreamTlsContext {
        // As in Choreo Connect, the router presents its certificate, so
        // backends that ask for a client certificate get one.
        common_tls_context: Some(common_context(params, &c.router.keystore, alpn, validation)),
        sni: if is_ip(&e.host) { String::new() } else { e.host.clone() },
        ..Default::default()
    }
}

/// Builds the cluster `name` for an endpoint list of `api`.
pub fn cluster(name: &str, ec: &EndpointCluster, api: &Api, c: &Config) -> ClusterOut {
    let trust = |e: &Endpoint| api.endpoint_certificates.get(&e.url).or(api.default_certificate.as_ref());
    build(name, ec, &trust, c.router.cluster_timeout_in_seconds, c)
}

/// The cluster of an interceptor service of `api`: its connect timeout is
/// the interceptor's `clusterTimeout` (default `[router] clusterTimeoutInSeconds`);
/// https services are verified against the project's
/// `Endpoint-certificates/interceptors/`, else the router's trusted CAs.
pub fn interceptor_cluster(name: &str, i: &Interceptor, api: &Api, c: &Config) -> ClusterOut {
    let ec = EndpointCluster::plain(vec![i.service.clone()], EndpointKind::LoadBalance);
    let trust = |_: &Endpoint| api.interceptor_certificates.as_ref();
    build(name, &ec, &trust, i.cluster_timeout_s.unwrap_or(c.router.cluster_timeout_in_seconds), c)
}

fn build(name: &str, ec: &EndpointCluster, trust: TrustFor<'_>, connect_timeout_s: u32, c: &Config) -> ClusterOut {
    let r = &c.router;
    let eds = ec.endpoints.iter().all(|e| is_ip(&e.host));
    let assignment = load_assignment(name, ec);
    let mut cluster =
        Cluster { name: name.to_string(), connect_timeout: Some(secs(connect_timeout_s)), ..Default::default() };
    if eds {
        cluster.cluster_discovery_type = Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32));
        cluster.eds_cluster_config = Some(EdsClusterConfig { eds_config: Some(ads()), service_name: String::new() });
    } else {
        let dns = DnsCluster {
            dns_refresh_rate: Some(millis(r.upstream.dns.dns_refresh_rate)),
            respect_dns_ttl: r.upstream.dns.respect_dns_ttl,
            dns_lookup_family: DnsLookupFamily::V4Preferred as i32,
            ..Default::default()
        };
        cluster.cluster_discovery_type = Some(ClusterDiscoveryType::ClusterType(CustomClusterType {
            name: "envoy.cluster.dns".to_string(),
            typed_config: Some(any(&dns)),
        }));
        cluster.load_assignment = Some(assignment.clone());
    }

    // TLS per endpoint (a list may mix http and https endpoints, and each
    // https endpoint has its own SNI and trusted certificate).
    for (i, e) in ec.endpoints.iter().enumerate().filter(|(_, e)| e.scheme.is_tls()) {
        let mut m = HashMap::new();
        m.insert("lb_id".to_string(), Value { kind: Some(Kind::StringValue(i.to_string())) });
        cluster.transport_socket_matches.push(TransportSocketMatch {
            name: format!("ts{i}"),
            r#match: Some(Struct { fields: m }),
            transport_socket: Some(TransportSocket {
                name: "envoy.transport_sockets.tls".to_string(),
                config_type: Some(transport_socket::ConfigType::TypedConfig(any(&upstream_tls(e, ec, trust, c)))),
            }),
        });
    }

    if ec.http2 {
        let opts = HttpProtocolOptions {
            upstream_protocol_options: Some(UpstreamProtocolOptions::ExplicitHttpConfig(ExplicitHttpConfig {
                protocol_config: Some(ProtocolConfig::Http2ProtocolOptions(Http2ProtocolOptions {
                    hpack_table_size: Some(u32_value(r.upstream.http2.hpack_table_size)),
                    max_concurrent_streams: Some(u32_value(r.upstream.http2.max_concurrent_streams)),
                    ..Default::default()
                })),
            })),
            ..Default::default()
        };
        cluster
            .typed_extension_protocol_options
            .insert("envoy.extensions.upstreams.http.v3.HttpProtocolOptions".to_string(), any(&opts));
    }

    if ec.endpoints.len() > 1 {
        let h = &r.upstream.health;
        cluster.health_checks = vec![HealthCheck {
            timeout: Some(secs(h.timeout)),
            interval: Some(secs(h.interval)),
            unhealthy_threshold: Some(u32_value(h.unhealthy_threshold)),
            healthy_threshold: Some(u32_value(h.healthy_threshold)),
            health_checker: Some(health_check::HealthChecker::TcpHealthCheck(Default::default())),
            ..Default::default()
        }];
    }

    if let Some(cb) = &ec.circuit_breakers {
        cluster.circuit_breakers = Some(CircuitBreakers {
            thresholds: vec![Thresholds {
                priority: RoutingPriority::Default as i32,
                max_connections: cb.max_connections.map(u32_value),
                max_pending_requests: cb.max_pending_requests.map(u32_value),
                max_requests: cb.max_requests.map(u32_value),
                max_retries: cb.max_retries.map(u32_value),
                max_connection_pools: cb.max_connection_pools.map(u32_value),
                ..Default::default()
            }],
            ..Default::default()
        });
    }
    ClusterOut { cluster, endpoints: eds.then_some(assignment) }
}
