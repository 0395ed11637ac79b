//! Mutual TLS: the client certificate (from the TLS handshake, or from the
//! configured header when a proxy in front terminates TLS) must be one of the
//! API's client certificates.

use percent_encoding::percent_decode_str;

use crate::chain::Context;

/// Whether the request carries one of the API's client certificates.
pub(super) fn verify(cx: &Context<'_>) -> bool {
    let s = cx.settings;
    let raw = if s.cert_from_tls {
        Some(cx.input.peer_cert)
            .filter(|x| !x.is_empty())
            .map(|x| percent_decode_str(x).decode_utf8_lossy().into_owned())
    } else {
        cx.input.header(&s.cert_header).map(|x| {
            if s.cert_header_encoded { percent_decode_str(x).decode_utf8_lossy().into_owned() } else { x.to_string() }
        })
    };
    let Some(pem) = raw.filter(|p| !p.trim().is_empty()) else { return false };
    let Ok((_, parsed)) = x509_parser::pem::parse_x509_pem(pem.as_bytes()) else { return false };
    cx.api.client_certs.iter().any(|cc| cc.der == parsed.contents)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::test_support::Fx;
    use crate::testkit::{KEYS, Req, mtls_api, mutual_ssl, url_encode};

    fn verifies(fx: &Fx, r: &Req) -> bool {
        verify(&fx.cx(r))
    }

    #[test]
    fn the_tls_peer_certificate_must_be_one_of_the_apis() {
        let fx = Fx::api(mtls_api("mandatory", false));
        assert!(verifies(&fx, &Req::get("/pets").peer_cert(&KEYS.client)));
        // Not URL-encoded works too.
        let mut r = Req::get("/pets");
        r.peer_cert = KEYS.client.clone();
        assert!(verifies(&fx, &r));
        assert!(!verifies(&fx, &Req::get("/pets").peer_cert(&KEYS.other_client)));
        assert!(!verifies(&fx, &Req::get("/pets")));
        r.peer_cert = "not%20a%20certificate".into();
        assert!(!verifies(&fx, &r));
        // The header is not read in this mode.
        assert!(!verifies(&fx, &Req::get("/pets").header("x-wso2-client-certificate", &KEYS.client)));
        // An API without client certificates accepts none.
        let fx = Fx::new();
        assert!(!verifies(&fx, &Req::get("/pets").peer_cert(&KEYS.client)));
    }

    #[test]
    fn the_certificate_can_come_from_the_configured_header() {
        let encoded = |c: &mut gateway_proto::config::Config| {
            let m = mutual_ssl(c);
            m.enable_client_validation = false;
            m.client_certificate_encode = true;
        };
        let fx = Fx::build(|c, _| encoded(c), mtls_api("mandatory", false));
        let header = |pem: &str| Req::get("/pets").header("X-WSO2-Client-Certificate", pem);
        assert!(verifies(&fx, &header(&url_encode(&KEYS.client))));
        assert!(!verifies(&fx, &header(&url_encode(&KEYS.other_client))));
        assert!(!verifies(&fx, &header("")));
        // The TLS peer certificate is not used in this mode.
        assert!(!verifies(&fx, &Req::get("/pets").peer_cert(&KEYS.client)));

        let fx = Fx::build(
            |c, _| {
                let m = mutual_ssl(c);
                m.enable_client_validation = false;
                m.certificate_header = "X-Client-Cert".into();
            },
            mtls_api("mandatory", false),
        );
        assert!(verifies(&fx, &Req::get("/pets").header("x-client-cert", &KEYS.client)));
        // Not decoded when the header is not said to be encoded.
        assert!(!verifies(&fx, &Req::get("/pets").header("x-client-cert", &url_encode(&KEYS.client))));
        assert!(!verifies(&fx, &Req::get("/pets").header("x-wso2-client-certificate", &KEYS.client)));
    }
}
