//! JWT parsing and claim extraction on arbitrary input: must never panic.
//!
//! Each input is tried three ways: as a whole token, as the (base64url-encoded)
//! payload of a token with a valid header, and as the header of a token with a
//! valid payload, so the fuzzer reaches the JSON handling without having to
//! discover base64 first.
#![no_main]

use std::sync::Arc;

use base64::Engine;
use enforcer_core::token::{self, TokenInfo};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

fn claims(c: &Map<String, Value>, signature: &str) {
    let issuer: Arc<str> = "fuzz".into();
    for consumer_key_claim in ["", "azp", "sub"] {
        let info = TokenInfo::from_claims(signature, c, Arc::clone(&issuer), consumer_key_claim);
        let _ = info.key_type();
        if c.get("jti").and_then(Value::as_str).is_none_or(str::is_empty) {
            assert_eq!(&*info.id, signature, "no jti: the id is the signature");
        }
    }
    let _ = token::scopes_of(c.get("scope"));
    let _ = token::scopes_of(c.get("scp"));
    for name in ["exp", "nbf", "iat"] {
        let _ = token::time_claim(c, name);
    }
    let mut mapped = c.clone();
    token::map_claims(&mut mapped, &[("scp".into(), "scope".into()), ("client_id".into(), "azp".into())]);
    let _ = TokenInfo::from_claims(signature, &mapped, issuer, "azp");
}

fn token(raw: &str) {
    let looks = token::looks_like_jwt(raw);
    let Ok(jwt) = token::parse(raw) else { return };
    assert!(looks, "a parsed token has three parts: {raw:?}");
    assert_eq!(format!("{}.{}", jwt.signing_input, jwt.signature), raw);
    claims(&jwt.claims, jwt.signature);
}

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        token(s);
    }
    let header = B64.encode(r#"{"alg":"RS256","kid":"k"}"#);
    token(&format!("{header}.{}.c2ln", B64.encode(data)));
    token(&format!("{}.{}.c2ln", B64.encode(data), B64.encode(r#"{"sub":"a"}"#)));
    if let Ok(c) = serde_json::from_slice::<Map<String, Value>>(data) {
        claims(&c, "sig");
    }
});
