//! The router's TLS contexts: one builder for the listener's
//! (downstream) and the backends' (upstream) common context, so both read
//! `[router.keystore]`, versions and ciphers the same way.

use envoy_types::pb::envoy::config::core::v3::{DataSource, data_source};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CommonTlsContext, TlsCertificate, TlsParameters, common_tls_context,
};
use gateway_config::model::Keystore;

/// Envoy's spelling of a `TLS1_2`-style version from config.
pub fn tls_version(v: &str) -> i32 {
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::tls_parameters::TlsProtocol;
    (match v.to_ascii_uppercase().as_str() {
        "TLS1_0" => TlsProtocol::TlSv10,
        "TLS1_1" => TlsProtocol::TlSv11,
        "TLS1_2" => TlsProtocol::TlSv12,
        "TLS1_3" => TlsProtocol::TlSv13,
        _ => TlsProtocol::TlsAuto,
    }) as i32
}

/// `ciphers` from config: comma- or colon-separated.
pub fn cipher_list(ciphers: &str) -> Vec<String> {
    ciphers.split([',', ':']).map(str::trim).filter(|c| !c.is_empty()).map(String::from).collect()
}

/// A PEM file on the router.
pub fn file(path: &str) -> DataSource {
    DataSource { specifier: Some(data_source::Specifier::Filename(path.to_string())), ..Default::default() }
}

/// Protocol versions and ciphers of one side, as config spells them.
pub struct Params<'a> {
    /// `minimumProtocolVersion`
    pub min: &'a str,
    /// `maximumProtocolVersion`
    pub max: &'a str,
    /// `ciphers`
    pub ciphers: &'a str,
}

/// The common TLS context: `params`, the router's certificate from
/// `keystore` (presented to clients, and to backends that ask for one),
/// `alpn`, and how the peer is verified.
pub fn common_context(
    params: Params<'_>,
    keystore: &Keystore,
    alpn: Vec<String>,
    validation: Option<common_tls_context::ValidationContextType>,
) -> CommonTlsContext {
    CommonTlsContext {
        tls_params: Some(TlsParameters {
            tls_minimum_protocol_version: tls_version(params.min),
            tls_maximum_protocol_version: tls_version(params.max),
            cipher_suites: cipher_list(params.ciphers),
            ..Default::default()
        }),
        tls_certificates: vec![TlsCertificate {
            certificate_chain: Some(file(&keystore.cert_path)),
            private_key: Some(file(&keystore.key_path)),
            ..Default::default()
        }],
        alpn_protocols: alpn,
        validation_context_type: validation,
        ..Default::default()
    }
}
