//! Token validation shared by the authenticators: the cache, revocation, the
//! kind of credential, the issuer's keys, the time claims.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::cache::{self, Kind, SKEW_SECS};
use crate::memory::Memory;
use crate::settings::{Issuer, Settings};
use crate::token::{self, TokenInfo};

/// Why a token was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(super) enum TokenError {
    /// Not a JWT.
    #[error("not a JWT")]
    Parse,
    /// Revoked.
    #[error("revoked")]
    Revoked,
    /// Another kind of credential (an API key as a bearer token, ...).
    #[error("another kind of credential")]
    WrongType,
    /// Unknown issuer, no `exp`, not yet valid.
    #[error("invalid")]
    Invalid,
    /// The issuer has no keys to check it with.
    #[error("no keys")]
    NoKeys,
    /// The signature does not verify.
    #[error("bad signature")]
    Signature,
    /// Expired.
    #[error("expired")]
    Expired,
}

/// The `token_type` claim.
fn token_type(claims: &Map<String, Value>) -> Option<&str> {
    claims.get("token_type").and_then(Value::as_str)
}

/// Validates a token of `kind` with the keys of `issuer_fixed`, or of the
/// issuer its `iss` names; uses and fills the cache. A cache hit still
/// checks revocation.
pub(super) async fn validate(
    memory: &Memory,
    kind: Kind,
    raw: &str,
    issuer_fixed: Option<&Arc<Issuer>>,
    s: &Settings,
) -> Result<Arc<TokenInfo>, TokenError> {
    let now = crate::now_secs();
    let cache = memory.cache.load();
    let key = cache::key(kind, raw);
    if let Some(hit) = cache.get(&key, now) {
        if memory.is_revoked(&hit.id) {
            return Err(TokenError::Revoked);
        }
        return Ok(hit);
    }
    let jwt = token::parse(raw).map_err(|_| TokenError::Parse)?;
    let id = jwt.claims.get("jti").and_then(Value::as_str).filter(|x| !x.is_empty()).unwrap_or(jwt.signature);
    if memory.is_revoked(id) {
        return Err(TokenError::Revoked);
    }
    let wrong_type = match kind {
        Kind::ApiKey => token_type(&jwt.claims) == Some("InternalKey"),
        Kind::InternalKey => token_type(&jwt.claims) != Some("InternalKey"),
        // API keys and internal keys are JWTs of configured issuers too:
        // never accept one as an OAuth token.
        Kind::Jwt => token_type(&jwt.claims)
            .is_some_and(|t| t.eq_ignore_ascii_case("apiKey") || t.eq_ignore_ascii_case("InternalKey")),
    };
    if wrong_type {
        return Err(TokenError::WrongType);
    }
    let issuer = match issuer_fixed {
        Some(i) => Arc::clone(i),
        None => {
            let iss = jwt.claims.get("iss").and_then(Value::as_str).unwrap_or("");
            s.issuers.get(iss).cloned().ok_or(TokenError::Invalid)?
        }
    };
    // Signature: the JWKS key named by `kid`, else the issuer's certificates.
    let verified = match (&jwt.kid, &issuer.jwks) {
        (Some(kid), Some(jwks)) => match jwks.key(kid).await {
            Some(k) => k.verify(&jwt.alg, jwt.signing_input, jwt.signature),
            None if !issuer.certs.is_empty() => {
                issuer.certs.iter().any(|k| k.verify(&jwt.alg, jwt.signing_input, jwt.signature))
            }
            None => false,
        },
        (None, Some(jwks)) if issuer.certs.is_empty() => {
            jwks.keys().iter().any(|k| k.verify(&jwt.alg, jwt.signing_input, jwt.signature))
        }
        _ => {
            if issuer.certs.is_empty() {
                return Err(TokenError::NoKeys);
            }
            issuer.certs.iter().any(|k| k.verify(&jwt.alg, jwt.signing_input, jwt.signature))
        }
    };
    if !verified {
        return Err(TokenError::Signature);
    }
    match token::time_claim(&jwt.claims, "exp") {
        Some(exp) if exp + SKEW_SECS <= now => return Err(TokenError::Expired),
        None if kind == Kind::Jwt => return Err(TokenError::Invalid),
        _ => {}
    }
    if let Some(nbf) = token::time_claim(&jwt.claims, "nbf")
        && nbf - SKEW_SECS > now
    {
        return Err(TokenError::Invalid);
    }
    let mut claims: Map<String, Value> = jwt.claims;
    token::map_claims(&mut claims, &issuer.claim_mapping);
    let info =
        Arc::new(TokenInfo::from_claims(jwt.signature, &claims, Arc::clone(&issuer.name), &issuer.consumer_key_claim));
    cache.insert(key, Arc::clone(&info));
    Ok(info)
}
