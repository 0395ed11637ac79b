//! The backend JWT (Choreo Connect's claims; README.md): who called, signed by the gateway, sent to
//! the backend in `X-JWT-Assertion`.

use serde_json::{Map, Value, json};

use crate::apis::Api;
use crate::settings::BackendJwtSettings;
use crate::signer::SignerError;
use crate::token::TokenInfo;

/// Claims of the incoming token that are not copied.
const NOT_COPIED: &[&str] =
    &["iss", "sub", "aud", "exp", "nbf", "iat", "jti", "application", "tierInfo", "subscribedAPIs"];

/// Builds and signs the backend JWT for a request.
#[allow(clippy::too_many_arguments)]
pub fn generate(
    s: &BackendJwtSettings,
    api: &Api,
    tok: &TokenInfo,
    key_type: &str,
    app_name: &str,
    app_id: &str,
    tier: &str,
    raw_token: &str,
) -> Result<String, SignerError> {
    let now = crate::now_secs();
    let d = &s.dialect;
    let mut claims = Map::new();
    // Custom claims first: every claim of the caller's token but the standard ones.
    if let Ok(jwt) = crate::token::parse(raw_token) {
        for (k, v) in jwt.claims {
            if !NOT_COPIED.contains(&k.as_str()) {
                claims.insert(k, v);
            }
        }
    }
    let mut put = |k: &str, v: Value| {
        claims.insert(format!("{d}{k}"), v);
    };
    let app = tok.application.as_deref();
    let non_empty = |s: &str| (!s.is_empty()).then(|| Value::String(s.to_string()));
    if let Some(v) = app.and_then(|a| non_empty(&a.owner)) {
        put("subscriber", v);
    }
    if let Some(v) = non_empty(app_id) {
        put("applicationid", v.clone());
        put("applicationUUId", v);
    }
    if let Some(v) = non_empty(app_name) {
        put("applicationname", v);
    }
    if let Some(v) = app.and_then(|a| non_empty(&a.tier)) {
        put("applicationtier", v);
    }
    if let Some(v) = non_empty(&api.raw.title) {
        put("apiname", v);
    }
    put("apicontext", Value::String(api.raw.base_path.clone()));
    put("version", Value::String(api.raw.version.clone()));
    if let Some(v) = non_empty(tier) {
        put("tier", v);
    }
    put("keytype", Value::String(if key_type.is_empty() { "PRODUCTION".into() } else { key_type.to_string() }));
    put("usertype", Value::String("Application_User".into()));
    put("enduserTenantId", Value::String("0".into()));
    if let Some(v) = non_empty(&tok.sub) {
        put("enduser", v);
    }
    claims.insert("iss".into(), json!("wso2.org/products/am"));
    claims.insert("iat".into(), json!(now));
    claims.insert("exp".into(), json!(now + s.ttl));
    claims.insert("jti".into(), json!(uuid_v4()));
    if !tok.sub.is_empty() {
        claims.insert("sub".into(), json!(&*tok.sub));
    }
    let body = Value::Object(claims).to_string();
    match &s.signer {
        Some(signer) => {
            let header = json!({"typ": "JWT", "alg": s.alg.jws_name(), "kid": signer.kid}).to_string();
            signer.sign(s.alg, &header, &body)
        }
        None => {
            use base64::Engine;
            let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            Ok(format!("{}.{}.", e.encode(r#"{"typ":"JWT","alg":"none"}"#), e.encode(body)))
        }
    }
}

/// A random UUID (version 4).
pub fn uuid_v4() -> String {
    let mut b = [0u8; 16];
    let _ = aws_lc_rs::rand::fill(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}
