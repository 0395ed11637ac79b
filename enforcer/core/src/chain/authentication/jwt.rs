//! The JWT authenticator: `Authorization: Bearer <JWT>` (or the API's custom
//! header), an issuer of `[[enforcer.security.tokenService]]`, its
//! subscription rules and the resource's scopes.

use super::validate::{TokenError, validate};
use super::{Attempt, authed, subscription};
use crate::cache::Kind;
use crate::chain::Context;
use crate::decision::AuthType;
use crate::deny::Deny;
use crate::token::{self, TokenInfo};

pub(super) async fn attempt(cx: &Context<'_>) -> Option<Attempt> {
    let op = cx.op?;
    if !op.jwt {
        return None;
    }
    let s = cx.settings;
    let header = cx.api.auth_header.as_deref().unwrap_or(&s.auth_header);
    let raw = bearer_token(cx.input.header(header)?)?;
    let info = match validate(cx.memory, Kind::Jwt, raw, None, s).await {
        Ok(i) => i,
        Err(TokenError::Parse) => return Some(Attempt::Fail(Deny::not_a_jwt())),
        Err(TokenError::Revoked) => return Some(Attempt::Fail(Deny::revoked())),
        Err(TokenError::NoKeys) => {
            return Some(Attempt::Fail(Deny::unclassified("Unclassified Authentication Failure")));
        }
        Err(_) => return Some(Attempt::Fail(Deny::bad_token())),
    };
    let issuer = s.issuers.values().find(|i| i.name == info.issuer);
    let mut a = authed(&info, AuthType::Jwt, raw);
    if issuer.is_some_and(|i| i.validate_subscription) {
        if let Err(d) = subscription(cx, &info, &mut a) {
            return Some(Attempt::Fail(d));
        }
    } else {
        a.app_name = format!("anon:{}", info.issuer);
        a.tier = "Unlimited".into();
    }
    if let Some(d) = scopes(cx, &info) {
        return Some(Attempt::Fail(d));
    }
    Some(Attempt::Ok(a))
}

/// The token must hold one of the scopes of the resource's first security
/// requirement that lists any.
fn scopes(cx: &Context<'_>, info: &TokenInfo) -> Option<Deny> {
    // Any one of `scopes` suffices; none asked, none needed.
    let holds = |scopes: &[String]| scopes.is_empty() || scopes.iter().any(|s| info.scopes.iter().any(|t| **t == **s));
    // A GraphQL request: every operation it touches, each with its own scopes.
    if let Some(g) = &cx.graphql {
        return g
            .ops
            .iter()
            .find(|(_, o)| !o.disable_security && !holds(&o.scopes))
            .map(|(r, _)| Deny::scopes(&r.path));
    }
    let op = cx.op?;
    (!holds(&op.scopes)).then(|| Deny::scopes(&cx.resource.path))
}

/// The token of a `Bearer` authorization value, as Choreo Connect reads it:
/// `bearer` (any case), exactly two whitespace-separated parts, the whole
/// value in three dot-separated parts; the token is what follows the first
/// whitespace character up to the next (so two spaces give an empty token).
/// `None` when the JWT authenticator cannot handle the value.
pub fn bearer_token(value: &str) -> Option<&str> {
    if !value.get(..6).is_some_and(|p| p.eq_ignore_ascii_case("bearer")) || !token::looks_like_jwt(value) {
        return None;
    }
    if !value.is_ascii() {
        // Rare: Unicode whitespace counts too.
        if value.split_whitespace().count() != 2 {
            return None;
        }
        return value.split(char::is_whitespace).nth(1);
    }
    // The same rules on bytes: this runs for every request with a token.
    let ws = |c: u8| c.is_ascii_whitespace() || c == 0x0b;
    let b = value.as_bytes();
    let first_ws = b.iter().position(|c| ws(*c))?;
    let second_start = first_ws + b[first_ws..].iter().position(|c| !ws(*c))?;
    let second_end = second_start + b[second_start..].iter().position(|c| ws(*c)).unwrap_or(b.len() - second_start);
    if b[second_end..].iter().any(|c| !ws(*c)) {
        return None;
    }
    let raw_end = first_ws + 1 + b[first_ws + 1..].iter().position(|c| ws(*c)).unwrap_or(b.len() - first_ws - 1);
    Some(&value[first_ws + 1..raw_end])
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::tests::{accepted, assert_failed, not_tried};
    use super::*;
    use crate::chain::test_support::Fx;
    use crate::testkit::{
        BAD, ISS_IDP, KEYS, NOT_JWT, REVOKED, Req, api_key, claims, internal_key, jti_of, jwt, now, pets_with, revoked,
        sign,
    };

    /// Choreo Connect's rule, written plainly: the reference for [`bearer_token`].
    fn bearer_reference(value: &str) -> Option<&str> {
        if !value.get(..6).is_some_and(|p| p.eq_ignore_ascii_case("bearer"))
            || value.split_whitespace().count() != 2
            || !token::looks_like_jwt(value)
        {
            return None;
        }
        Some(value.split(char::is_whitespace).nth(1).unwrap_or(""))
    }

    #[test]
    fn bearer_token_follows_choreo_connects_rule() {
        for v in [
            "Bearer a.b.c",
            "bearer a.b.c",
            "BEARER\ta.b.c",
            "Bearer  a.b.c",
            "Bearer a.b.c ",
            " Bearer a.b.c",
            "Bearer a.b.c d",
            "Bearer Bearer a.b.c",
            "Bearera.b.c x",
            "Bearer",
            "Bearer ",
            "Bearer a.b",
            "Bearer a.b.c.d",
            "Basic a.b.c",
            "Bearer\u{a0}a.b.c",
            "Bearer é.b.c",
            "Bearer a.b.c\u{2003}",
            "Bearer\x0ba.b.c",
            "",
        ] {
            assert_eq!(bearer_token(v), bearer_reference(v), "{v:?}");
        }
    }

    #[tokio::test]
    async fn it_does_not_try_without_a_bearer_jwt_where_it_applies() {
        let fx = Fx::new();
        let token = jwt(json!({}));
        for r in [
            Req::get("/pets"),
            Req::get("/pets").header("authorization", &format!("Basic {token}")),
            Req::get("/pets").header("authorization", "Bearer opaque"),
            Req::get("/pets").header("authorization", &format!("Bearer {token} extra")),
            Req::get("/pets").header("x-token", &format!("Bearer {token}")),
            // Only an API key applies to /keyonly.
            Req::get("/keyonly").bearer(&token),
        ] {
            not_tried(attempt(&fx.cx(&r)).await);
        }
        // No operation: nothing to authenticate for.
        let r = Req::new("OPTIONS", "/pets").bearer(&token);
        not_tried(attempt(&fx.cx(&r)).await);
    }

    #[tokio::test]
    async fn the_apis_own_authorization_header_replaces_the_configured_one() {
        let fx = Fx::api(pets_with(|a| a.authorization_header = "X-Token".into()));
        let token = jwt(json!({}));
        let r = Req::get("/pets").header("x-token", &format!("Bearer {token}"));
        let a = accepted(attempt(&fx.cx(&r)).await);
        assert_eq!((a.auth_type, a.raw.as_str()), (AuthType::Jwt, token.as_str()));
        not_tried(attempt(&fx.cx(&Req::get("/pets").bearer(&token))).await);
        // The configured header, when the API names none.
        let fx = Fx::config(|c, _| crate::testkit::auth_header(c).authorization_header = "X-Auth".into());
        let r = Req::get("/pets").header("x-auth", &format!("bearer {token}"));
        assert_eq!(accepted(attempt(&fx.cx(&r)).await).raw, token);
    }

    #[tokio::test]
    async fn a_token_that_does_not_validate_is_refused_with_its_reason() {
        let fx = Fx::new();
        for (token, description) in [
            ("x.y.z".to_string(), NOT_JWT),
            // Signed by a key the issuer does not have.
            (sign(&KEYS.apikey, &claims(ISS_IDP, json!({}))), BAD),
            (jwt(json!({"exp": now() - 60})), BAD),
            (jwt(json!({"nbf": now() + 600})), BAD),
            (jwt(json!({"exp": null})), BAD),
            (jwt(json!({"iss": "https://unknown.example.com"})), BAD),
            // API keys and internal keys are not OAuth tokens.
            (api_key(json!({})), BAD),
            (internal_key(json!({})), BAD),
            (jwt(json!({"token_type": "APIKEY"})), BAD),
        ] {
            let r = Req::get("/pets").bearer(&token);
            let d = assert_failed(attempt(&fx.cx(&r)).await, 401, "900901", description);
            assert_eq!(d.message, "Invalid Credentials");
        }
        let token = jwt(json!({}));
        fx.memory.set_revoked(revoked(&[&jti_of(&token)]));
        let r = Req::get("/pets").bearer(&token);
        assert_failed(attempt(&fx.cx(&r)).await, 401, "900901", REVOKED);
    }

    #[tokio::test]
    async fn the_token_needs_one_of_the_resources_scopes() {
        let fx = Fx::new();
        for scope in [json!(null), json!("read"), json!("writer admin"), json!(["read"])] {
            let r = Req::new("POST", "/pets").bearer(&jwt(json!({"scope": scope})));
            let d = assert_failed(
                attempt(&fx.cx(&r)).await,
                403,
                "900910",
                "User is NOT authorized to access the Resource: /pets. Scope validation failed.",
            );
            assert_eq!(d.message, "The access token does not allow you to access the requested resource");
        }
        for scope in [json!("write"), json!("read write"), json!(["admin", "write"])] {
            let r = Req::new("POST", "/pets").bearer(&jwt(json!({"scope": scope})));
            assert_eq!(accepted(attempt(&fx.cx(&r)).await).auth_type, AuthType::Jwt);
        }
        // No scopes required: none needed.
        let r = Req::get("/pets").bearer(&jwt(json!({})));
        assert_eq!(accepted(attempt(&fx.cx(&r)).await).auth_type, AuthType::Jwt);
    }
}
