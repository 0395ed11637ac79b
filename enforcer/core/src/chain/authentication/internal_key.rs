//! The internal-key authenticator: a JWT in the test-console header
//! (`Internal-Key`), `token_type: InternalKey`, signed by `APIM Publisher`,
//! naming the API by context and version.

use super::validate::{TokenError, validate};
use super::{Attempt, authed};
use crate::cache::Kind;
use crate::chain::Context;
use crate::decision::AuthType;
use crate::deny::Deny;
use crate::token;

pub(super) async fn attempt(cx: &Context<'_>) -> Option<Attempt> {
    let s = cx.settings;
    let raw = cx.input.header(&s.internal_key_header)?.trim();
    if !token::looks_like_jwt(raw) {
        return None;
    }
    let Some(issuer) = &s.internal_key_issuer else { return Some(Attempt::Fail(Deny::bad_token())) };
    let info = match validate(cx.memory, Kind::InternalKey, raw, Some(issuer), s).await {
        Ok(i) => i,
        Err(TokenError::Parse) => {
            return Some(Attempt::Fail(Deny::authentication_failed("Internal key authentication failed.")));
        }
        Err(TokenError::WrongType) => return Some(Attempt::Fail(Deny::missing_credentials())),
        Err(_) => return Some(Attempt::Fail(Deny::bad_token())),
    };
    let subs = info.subscribed.as_deref().unwrap_or(&[]);
    if !subs.iter().any(|x| *x.context == cx.api.raw.base_path && *x.version == cx.api.raw.version) {
        return Some(Attempt::Fail(Deny::not_subscribed("Resource forbidden ")));
    }
    if cx.api.blocked {
        return Some(Attempt::Fail(Deny::api_blocked()));
    }
    let mut a = authed(&info, AuthType::InternalKey, raw);
    a.app_name = "internal-key-app".into();
    a.tier = "Unlimited".into();
    Some(Attempt::Ok(a))
}
