//! Components talk over mutual TLS by default: the adapter's xDS server and
//! the enforcer's ext_authz server refuse clients without a certificate
//! signed by the configured CA, and accept those with one.

use envoy_types::pb::envoy::service::auth::v3::CheckRequest;
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use gateway_proto::service::DiscoveryRequest;
use gateway_proto::service::enforcer_discovery_service_client::EnforcerDiscoveryServiceClient;
use integration::{Gateway, XdsMode};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

fn tls(gw: &Gateway, with_identity: bool) -> ClientTlsConfig {
    let mut t = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&gw.certs.ca_pem)).domain_name("localhost");
    if with_identity {
        let key = std::fs::read(&gw.certs.key_path).expect("key");
        t = t.identity(Identity::from_pem(&gw.certs.cert_pem, key));
    }
    t
}

async fn config_stream(url: String, tls: Option<ClientTlsConfig>) -> Result<(), String> {
    let mut ep = Endpoint::from_shared(url)
        .map_err(|e| e.to_string())?
        .connect_timeout(std::time::Duration::from_secs(2))
        .timeout(std::time::Duration::from_secs(2));
    if let Some(t) = tls {
        ep = ep.tls_config(t).map_err(|e| e.to_string())?;
    }
    let channel = ep.connect().await.map_err(|e| format!("connect: {e:?}"))?;
    let mut c = EnforcerDiscoveryServiceClient::new(channel);
    let first = DiscoveryRequest {
        node_id: "Default".into(),
        type_url: gateway_proto::CONFIG_TYPE_URL.into(),
        ..Default::default()
    };
    let mut inbound =
        c.stream_config(tokio_stream::iter(vec![first])).await.map_err(|e| format!("call: {e}"))?.into_inner();
    let resp = inbound.message().await.map_err(|e| format!("stream: {e}"))?.ok_or("no response")?;
    if resp.resources.len() == 1 { Ok(()) } else { Err(format!("{} resources", resp.resources.len())) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adapter_and_enforcer_require_client_certificates() {
    let gw = Gateway::builder(XdsMode::Delta).with_enforcer().start().await;
    let xds = format!("https://127.0.0.1:{}", gw.ports.xds);
    config_stream(xds.clone(), Some(tls(&gw, true))).await.expect("a client with a certificate is served");
    assert!(config_stream(xds.clone(), Some(tls(&gw, false))).await.is_err(), "no client certificate");
    assert!(config_stream(format!("http://127.0.0.1:{}", gw.ports.xds), None).await.is_err(), "plain text");

    let authz = format!("https://127.0.0.1:{}", gw.ports.enforcer);
    let check = |with: bool| {
        let authz = authz.clone();
        let t = tls(&gw, with);
        async move {
            let ch = Endpoint::from_shared(authz)
                .map_err(|e| e.to_string())?
                .timeout(std::time::Duration::from_secs(2))
                .tls_config(t)
                .map_err(|e| e.to_string())?;
            let ch = ch.connect().await.map_err(|e| format!("connect: {e:?}"))?;
            AuthorizationClient::new(ch).check(CheckRequest::default()).await.map(|_| ()).map_err(|e| e.to_string())
        }
    };
    check(true).await.expect("the router's certificate is accepted");
    assert!(check(false).await.is_err(), "a client without a certificate is refused");
    // And Envoy holds TLS transport sockets for the adapter and the enforcer.
    let dump = gw.config_dump(Some("static_clusters")).await.to_string();
    for cluster in ["xds_cluster", "ext-authz", "access-logger"] {
        assert!(dump.contains(cluster), "{cluster} missing");
    }
    assert!(dump.matches("UpstreamTlsContext").count() >= 4, "TLS on every component cluster");
}

/// With TLS between components turned off (Envoy's TLS blocks dropped, the
/// adapter's xDS and the enforcer's gRPC in plain text) the gateway works the
/// same; TLS clients are then refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_text_between_components_when_configured() {
    let b = test_backend::Backend::start("b").await.expect("backend");
    let oas = "openapi: 3.0.1\ninfo: {title: Plain, version: v1}\npaths:\n  /x:\n    get: {}\n";
    let gw = Gateway::builder(XdsMode::Delta)
        .with_enforcer()
        .plaintext_components()
        .project(
            "plain",
            &[
                ("api.yaml", &integration::api_yaml("Plain", "v1", "/plain", &b.url())),
                ("Definitions/swagger.yaml", oas),
            ],
        )
        .start()
        .await;
    let r = gw.request("GET", "localhost", "/plain/v1/x", &[]).await.expect("request");
    assert_eq!(r.status, 401, "the enforcer answers: {}", r.body);
    let t = gw
        .request("POST", "localhost", "/testkey", &[("authorization", "Basic YWRtaW46YWRtaW4=")])
        .await
        .expect("testkey");
    assert_eq!(t.status, 200, "{}", t.body);
    let bearer = format!("Bearer {}", t.body.trim());
    let r = gw.request("GET", "localhost", "/plain/v1/x", &[("authorization", &bearer)]).await.expect("request");
    assert_eq!(r.status, 200, "{}", r.body);
    let dump = gw.config_dump(Some("static_clusters")).await;
    // With `resource=static_clusters`, each entry of `configs` is one StaticCluster.
    let clusters = dump["configs"].as_array().cloned().unwrap_or_default();
    for name in ["xds_cluster", "ext-authz", "access-logger"] {
        let c =
            clusters.iter().find(|c| c["cluster"]["name"] == name).unwrap_or_else(|| panic!("{name} missing: {dump}"));
        assert!(c["cluster"]["transport_socket"].is_null(), "{name} has no TLS: {c}");
    }
    config_stream(format!("http://127.0.0.1:{}", gw.ports.xds), None).await.expect("plain-text xDS client served");
    assert!(
        config_stream(format!("https://127.0.0.1:{}", gw.ports.xds), Some(tls(&gw, true))).await.is_err(),
        "TLS client refused by a plain-text server"
    );
}
