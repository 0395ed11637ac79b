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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::tests::{accepted, assert_failed, not_tried};
    use super::*;
    use crate::chain::test_support::Fx;
    use crate::testkit::{
        BAD, BASE, BLOCKED, KEYS, MISSING, Req, VERSION, api_key, auth_header, internal_key, internal_key_claims,
        jti_of, jwt, now, pets_with, revoked, sign, without_issuer,
    };

    #[tokio::test]
    async fn an_internal_key_for_the_api_is_accepted() {
        let fx = Fx::new();
        let ik = internal_key(json!({"keytype": "SANDBOX"}));
        for r in [
            Req::get("/pets").header("internal-key", &ik),
            Req::get("/pets").header("Internal-Key", &format!(" {ik} ")),
        ] {
            let a = accepted(attempt(&fx.cx(&r)).await);
            assert_eq!(a.auth_type, AuthType::InternalKey);
            assert_eq!(a.raw, ik, "trimmed");
            assert_eq!(a.key_type, "SANDBOX");
            assert_eq!((a.app_name.as_str(), a.tier.as_str()), ("internal-key-app", "Unlimited"));
            let t = a.token.as_ref().expect("token");
            assert_eq!((&*t.id, &*t.sub, &*t.issuer), (jti_of(&ik).as_str(), "admin", "APIM Publisher"));
        }
        // Whatever the resource's security says: even where only an API key applies.
        let r = Req::get("/keyonly").header("internal-key", &ik);
        assert_eq!(accepted(attempt(&fx.cx(&r)).await).auth_type, AuthType::InternalKey);
    }

    #[tokio::test]
    async fn the_configured_header_is_read() {
        let fx = Fx::config(|c, _| auth_header(c).test_console_header_name = "X-Test-Key".into());
        let ik = internal_key(json!({}));
        let r = Req::get("/pets").header("x-test-key", &ik);
        assert_eq!(accepted(attempt(&fx.cx(&r)).await).auth_type, AuthType::InternalKey);
        not_tried(attempt(&fx.cx(&Req::get("/pets").header("internal-key", &ik))).await);
    }

    #[tokio::test]
    async fn it_does_not_try_without_a_key() {
        let fx = Fx::new();
        for r in [
            Req::get("/pets"),
            Req::get("/pets").header("internal-key", ""),
            Req::get("/pets").header("internal-key", "opaque"),
            Req::get("/pets").bearer(&internal_key(json!({}))),
        ] {
            not_tried(attempt(&fx.cx(&r)).await);
        }
    }

    #[tokio::test]
    async fn a_key_that_does_not_validate_is_refused_with_its_reason() {
        let fx = Fx::new();
        for (key, description) in [
            (
                "x.y.z".to_string(),
                "Internal key authentication failed.. Make sure you have provided the correct security credentials",
            ),
            // Not an internal key at all.
            (api_key(json!({})), MISSING),
            (jwt(json!({})), MISSING),
            (sign(&KEYS.apikey, &internal_key_claims(json!({}))), BAD),
            (internal_key(json!({"exp": now() - 60})), BAD),
        ] {
            let r = Req::get("/pets").header("internal-key", &key);
            assert_failed(attempt(&fx.cx(&r)).await, 401, "900901", description);
        }
        let ik = internal_key(json!({}));
        fx.memory.set_revoked(revoked(&[&jti_of(&ik)]));
        let r = Req::get("/pets").header("internal-key", &ik);
        assert_failed(attempt(&fx.cx(&r)).await, 401, "900901", BAD);
        // No `APIM Publisher` to check it with.
        let fx = Fx::config(|c, _| without_issuer(c, "APIM Publisher"));
        let r = Req::get("/pets").header("internal-key", &internal_key(json!({})));
        assert_failed(attempt(&fx.cx(&r)).await, 401, "900901", BAD);
    }

    #[tokio::test]
    async fn the_key_must_name_the_api_and_the_api_must_not_be_blocked() {
        let fx = Fx::new();
        for subs in [
            json!([{"name": "Pets", "context": "/cats/1.0.0", "version": VERSION}]),
            json!([{"name": "Pets", "context": BASE, "version": "2.0.0"}]),
            json!([]),
            json!(null),
        ] {
            let r = Req::get("/pets").header("internal-key", &internal_key(json!({"subscribedAPIs": subs})));
            assert_failed(attempt(&fx.cx(&r)).await, 403, "900908", "Resource forbidden ");
        }
        // By context and version: the name does not matter.
        let subs = json!([{"name": "Renamed", "context": BASE, "version": VERSION}]);
        let r = Req::get("/pets").header("internal-key", &internal_key(json!({"subscribedAPIs": subs})));
        accepted(attempt(&fx.cx(&r)).await);

        let fx = Fx::api(pets_with(|a| a.api_lifecycle_state = "BLOCKED".into()));
        let r = Req::get("/pets").header("internal-key", &internal_key(json!({})));
        assert_failed(attempt(&fx.cx(&r)).await, 503, "700700", BLOCKED);
    }
}
