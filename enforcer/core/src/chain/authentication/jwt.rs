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
    let op = cx.op?;
    if op.scopes.is_empty() || op.scopes.iter().any(|s| info.scopes.iter().any(|t| **t == **s)) {
        None
    } else {
        Some(Deny::scopes(&cx.resource.path))
    }
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
    use super::*;

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
}
