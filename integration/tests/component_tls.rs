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
