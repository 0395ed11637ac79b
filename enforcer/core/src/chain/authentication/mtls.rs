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
