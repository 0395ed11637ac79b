//! Authentication, in Choreo Connect's order and rules: an unsecured or
//! prototyped resource needs nothing (a BLOCKED API is refused all the same);
//! mutual TLS comes first when the API uses it; then the first of internal
//! key, JWT and API key that finds its credential decides. Subscriptions and
//! scopes are checked by the authenticator that validated the token. If no
//! authenticator could even try, 401/900901.

mod api_key;
mod internal_key;
mod jwt;
mod mtls;
mod validate;

use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;

pub use jwt::bearer_token;

use super::{Authed, Context, Filter, Outcome};
use crate::apis::Mtls;
use crate::decision::{AuthType, KeyType};
use crate::deny::Deny;
use crate::token::TokenInfo;

/// The authentication filter.
#[derive(Debug)]
pub struct Authentication;

/// The outcome of one authenticator that found its credential.
enum Attempt {
    Ok(Authed),
    Fail(Deny),
}

impl Filter for Authentication {
    fn name(&self) -> &'static str {
        "authentication"
    }

    fn challenges(&self) -> bool {
        true
    }

    fn run<'a, 'r>(&'a self, cx: &'a mut Context<'r>) -> BoxFuture<'a, Outcome>
    where
        'r: 'a,
    {
        async move {
            match authenticate(cx).await {
                Ok(a) => {
                    cx.authed = Some(a);
                    Outcome::Next
                }
                Err(d) => Outcome::Refuse(d),
            }
        }
        .boxed()
    }
}

/// The key type of a caller without a token: production when the route has
/// a production cluster.
fn default_key_type(cx: &Context<'_>) -> KeyType {
    if cx.input.cluster(KeyType::Production).is_some() { KeyType::Production } else { KeyType::Sandbox }
}

fn anonymous(cx: &Context<'_>, auth_type: AuthType) -> Authed {
    Authed {
        token: None,
        auth_type,
        key_type: default_key_type(cx).as_str().to_string(),
        app_name: String::new(),
        app_id: String::new(),
        app_owner: String::new(),
        tier: String::new(),
        raw: String::new(),
        api_key_query: None,
    }
}

async fn authenticate(cx: &Context<'_>) -> Result<Authed, Deny> {
    let api = cx.api;
    // After the CORS filter every request has its operation.
    let Some(op) = cx.op else { return Err(Deny::not_found()) };
    if api.prototyped || op.disable_security {
        if api.blocked {
            return Err(Deny::api_blocked());
        }
        return Ok(anonymous(cx, AuthType::Unsecured));
    }

    let mut mtls_ok = false;
    if api.mtls != Mtls::Off {
        mtls_ok = mtls::verify(cx);
        if !mtls_ok && api.mtls == Mtls::Mandatory {
            return Err(Deny::missing_credentials());
        }
    }
    if mtls_ok && api.mtls == Mtls::Mandatory && !api.application_security {
        return Ok(anonymous(cx, AuthType::Mtls));
    }

    let mut first_error: Option<Deny> = None;
    for kind in [AuthType::InternalKey, AuthType::Jwt, AuthType::ApiKey] {
        let attempt = match kind {
            AuthType::InternalKey => internal_key::attempt(cx).await,
            AuthType::Jwt => jwt::attempt(cx).await,
            _ => api_key::attempt(cx).await,
        };
        match attempt {
            None => {}
            Some(Attempt::Ok(a)) => return Ok(a),
            Some(Attempt::Fail(d)) => {
                first_error.get_or_insert(d);
            }
        }
    }
    Err(first_error.unwrap_or_else(Deny::missing_credentials))
}

/// A caller let in by a validated token.
fn authed(info: &Arc<TokenInfo>, auth_type: AuthType, raw: &str) -> Authed {
    let app = info.application.as_deref();
    Authed {
        token: Some(Arc::clone(info)),
        auth_type,
        key_type: info.key_type().to_string(),
        app_name: app.map(|a| a.name.to_string()).unwrap_or_default(),
        app_id: app.map(|a| a.uuid.to_string()).unwrap_or_default(),
        app_owner: app.map(|a| a.owner.to_string()).unwrap_or_default(),
        tier: String::new(),
        raw: raw.to_string(),
        api_key_query: None,
    }
}

/// Subscription validation from the token's claims: the API must be among
/// `subscribedAPIs` (its tier becomes the caller's), and a BLOCKED API is
/// refused after that, as Choreo Connect orders it.
fn subscription(cx: &Context<'_>, info: &TokenInfo, a: &mut Authed) -> Result<(), Deny> {
    let Some(subs) = &info.subscribed else {
        return Err(Deny::not_subscribed(
            "User is NOT authorized to access the Resource. API Subscription validation failed.",
        ));
    };
    let Some(sub) = subs.iter().find(|x| *x.name == cx.api.raw.title && *x.version == cx.api.raw.version) else {
        return Err(Deny::not_subscribed("Resource forbidden "));
    };
    a.tier = sub.tier.to_string();
    if cx.api.blocked {
        return Err(Deny::api_blocked());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::chain::test_support::{Fx, assert_401, assert_refused};
    use crate::deny::Challenge;
    use crate::testkit::{
        BASE, BLOCKED, KEYS, MISSING, REVOKED, Req, VERSION, api_key, internal_key, jti_of, jwt, mtls_api, pets_with,
        revoked, subs_jwt, subscription,
    };

    // Helpers for the authenticators' own tests (`attempt` of each module).

    /// The caller an authenticator let in.
    #[track_caller]
    pub(super) fn accepted(a: Option<Attempt>) -> Authed {
        match a {
            Some(Attempt::Ok(a)) => a,
            Some(Attempt::Fail(d)) => panic!("expected a caller, got {} {}: {}", d.status, d.code, d.description),
            None => panic!("expected a caller, the authenticator did not try"),
        }
    }

    /// Why an authenticator refused.
    #[track_caller]
    pub(super) fn failed(a: Option<Attempt>) -> Deny {
        match a {
            Some(Attempt::Fail(d)) => d,
            Some(Attempt::Ok(a)) => panic!("expected a refusal, got {:?} {}", a.auth_type, a.raw),
            None => panic!("expected a refusal, the authenticator did not try"),
        }
    }

    /// The authenticator found no credential of its kind.
    #[track_caller]
    pub(super) fn not_tried(a: Option<Attempt>) {
        match a {
            None => {}
            Some(Attempt::Ok(a)) => panic!("expected no attempt, got {:?} {}", a.auth_type, a.raw),
            Some(Attempt::Fail(d)) => panic!("expected no attempt, got {} {}: {}", d.status, d.code, d.description),
        }
    }

    /// Refused by an authenticator with this status, code and description.
    #[track_caller]
    pub(super) fn assert_failed(a: Option<Attempt>, status: u16, code: &str, description: &str) -> Deny {
        let d = failed(a);
        assert_eq!((d.status, d.code, d.description.as_ref()), (status, code, description), "message {:?}", d.message);
        d
    }

    /// Runs the filter on `r`; the outcome and the context after it.
    async fn run<'a>(fx: &'a Fx, r: &'a Req) -> (Outcome, Context<'a>) {
        let mut cx = fx.cx(r);
        let o = Authentication.run(&mut cx).await;
        // Authentication only ever says who the caller is.
        assert!(cx.set.is_empty() && cx.remove.is_empty() && cx.key_type.is_none());
        (o, cx)
    }

    /// The filter let the caller of `r` in.
    async fn let_in(fx: &Fx, r: &Req) -> Authed {
        let (o, cx) = run(fx, r).await;
        crate::chain::test_support::assert_next(o);
        cx.authed.expect("the caller")
    }

    /// The filter refused `r` with 401 / 900901 and this description, and set no caller.
    async fn refused_401(fx: &Fx, r: &Req, description: &str) -> Deny {
        let (o, cx) = run(fx, r).await;
        assert!(cx.authed.is_none());
        let d = assert_401(o, description);
        assert_eq!(d.challenge, Challenge::Auth);
        d
    }

    #[tokio::test]
    async fn no_credentials_on_a_secured_operation_is_401_900901() {
        let fx = Fx::new();
        assert!(Authentication.challenges());
        for r in [
            Req::get("/pets"),
            Req::new("POST", "/pets"),
            Req::get("/keyonly"),
            Req::new("OPTIONS", "/cors"),
            // Values no authenticator can even try.
            Req::get("/pets").header("authorization", "Basic YWxpY2U6cHc="),
            Req::get("/pets").header("authorization", "Bearer opaque-token"),
            Req::get("/pets").header("apikey", "not-a-jwt"),
            Req::get("/pets").header("internal-key", "not-a-jwt"),
        ] {
            refused_401(&fx, &r, MISSING).await;
        }
    }

    #[tokio::test]
    async fn a_request_without_an_operation_is_404() {
        let fx = Fx::new();
        let r = Req::new("OPTIONS", "/pets");
        let (o, cx) = run(&fx, &r).await;
        let d = assert_refused(o, 404, "404", "The requested resource is not available.");
        assert_eq!(d.message, "Not Found");
        assert!(cx.authed.is_none());
    }

    #[tokio::test]
    async fn security_disabled_lets_anyone_in_unsecured() {
        let fx = Fx::new();
        for r in [
            Req::get("/open"),
            // Credentials are not looked at.
            Req::get("/open").header("authorization", "Bearer aaa.bbb.ccc"),
            Req::get("/open").header("internal-key", "x.y.z"),
        ] {
            let a = let_in(&fx, &r).await;
            assert_eq!(a.auth_type, AuthType::Unsecured);
            assert!(a.token.is_none());
            assert_eq!(a.key_type, "PRODUCTION");
            assert_eq!((a.app_name.as_str(), a.app_id.as_str(), a.tier.as_str(), a.raw.as_str()), ("", "", "", ""));
            assert_eq!(a.api_key_query, None);
        }
        // Without a production cluster the caller is a sandbox one.
        let a = let_in(&fx, &Req::get("/open").ext("prodClusterName", "")).await;
        assert_eq!((a.auth_type, a.key_type.as_str()), (AuthType::Unsecured, "SANDBOX"));
    }

    #[tokio::test]
    async fn a_prototyped_api_needs_nothing_and_a_blocked_one_is_503() {
        let fx = Fx::api(pets_with(|a| a.api_lifecycle_state = "PROTOTYPED".into()));
        let a = let_in(&fx, &Req::new("POST", "/pets")).await;
        assert_eq!((a.auth_type, a.key_type.as_str()), (AuthType::Unsecured, "PRODUCTION"));

        let fx = Fx::api(pets_with(|a| a.api_lifecycle_state = "BLOCKED".into()));
        let r = Req::get("/open");
        let (o, cx) = run(&fx, &r).await;
        let d = assert_refused(o, 503, "700700", BLOCKED);
        assert_eq!(d.message, "API blocked");
        assert!(cx.authed.is_none());
        // Without subscription validation a token still gets through a blocked API.
        let a = let_in(&fx, &Req::get("/pets").bearer(&jwt(json!({})))).await;
        assert_eq!(a.auth_type, AuthType::Jwt);
        // With it, the subscription is checked first, then the state.
        let (o, _) = run(&fx, &Req::get("/pets").bearer(&subs_jwt(json!({})))).await;
        assert_refused(o, 503, "700700", BLOCKED);
    }

    #[tokio::test]
    async fn a_valid_jwt_is_a_jwt_caller_with_its_token() {
        let fx = Fx::new();
        let token = jwt(json!({"scope": "read write", "keytype": "SANDBOX"}));
        let a = let_in(&fx, &Req::get("/pets").bearer(&token)).await;
        assert_eq!(a.auth_type, AuthType::Jwt);
        let t = a.token.as_ref().expect("the token");
        assert_eq!((&*t.id, &*t.sub, &*t.issuer), (jti_of(&token).as_str(), "alice", "IdP"));
        assert_eq!(&*t.scopes, &["read".into(), "write".into()] as &[Box<str>]);
        assert_eq!(a.raw, token);
        assert_eq!(a.key_type, "SANDBOX");
        // No subscription validation: an anonymous application.
        assert_eq!((a.app_name.as_str(), a.tier.as_str(), a.app_id.as_str()), ("anon:IdP", "Unlimited", ""));
        assert_eq!(a.api_key_query, None);
    }

    #[tokio::test]
    async fn a_subscribed_application_is_the_caller_with_the_subscriptions_tier() {
        let fx = Fx::new();
        let a = let_in(&fx, &Req::get("/pets").bearer(&subs_jwt(json!({})))).await;
        assert_eq!(a.auth_type, AuthType::Jwt);
        assert_eq!(
            (a.app_name.as_str(), a.app_id.as_str(), a.app_owner.as_str(), a.tier.as_str()),
            ("PetApp", "app-uuid-1", "bob", "Gold")
        );
        assert_eq!(a.key_type, "PRODUCTION");

        for (claims, description) in [
            (json!({"subscribedAPIs": [subscription("Pets", "2.0.0", BASE)]}), "Resource forbidden "),
            (json!({"subscribedAPIs": [subscription("Cats", VERSION, BASE)]}), "Resource forbidden "),
            (json!({"subscribedAPIs": []}), "Resource forbidden "),
            (
                json!({"subscribedAPIs": null}),
                "User is NOT authorized to access the Resource. API Subscription validation failed.",
            ),
        ] {
            let r = Req::get("/pets").bearer(&subs_jwt(claims));
            let (o, cx) = run(&fx, &r).await;
            let d = assert_refused(o, 403, "900908", description);
            assert_eq!(d.message, "Resource forbidden ");
            assert!(cx.authed.is_none());
        }
    }

    #[tokio::test]
    async fn a_revoked_token_is_refused() {
        let fx = Fx::new();
        let token = jwt(json!({}));
        let key = api_key(json!({}));
        let ik = internal_key(json!({}));
        // Each is accepted (and cached) before it is revoked.
        let_in(&fx, &Req::get("/pets").bearer(&token)).await;
        let_in(&fx, &Req::get("/pets").header("apikey", &key)).await;
        let_in(&fx, &Req::get("/pets").header("internal-key", &ik)).await;
        fx.memory.set_revoked(revoked(&[&jti_of(&token), &jti_of(&key), &jti_of(&ik)]));
        refused_401(&fx, &Req::get("/pets").bearer(&token), REVOKED).await;
        refused_401(&fx, &Req::get("/pets").header("apikey", &key), crate::testkit::BAD).await;
        refused_401(&fx, &Req::get("/pets").header("internal-key", &ik), crate::testkit::BAD).await;
        // Revoked before it was ever seen.
        let fresh = jwt(json!({}));
        fx.memory.set_revoked(revoked(&[&jti_of(&fresh)]));
        refused_401(&fx, &Req::get("/pets").bearer(&fresh), REVOKED).await;
        // The others work again once the list no longer holds them.
        let_in(&fx, &Req::get("/pets").bearer(&token)).await;
        // A token still in the cache is checked against the list all the same
        // (the list replaced without the cache being told, as in a race).
        fx.memory.revoked.store(Arc::new(revoked(&[&jti_of(&token)])));
        refused_401(&fx, &Req::get("/pets").bearer(&token), REVOKED).await;
    }

    #[tokio::test]
    async fn mandatory_mtls_needs_the_apis_certificate() {
        let fx = Fx::api(mtls_api("mandatory", false));
        for r in [
            Req::get("/pets"),
            Req::get("/pets").peer_cert(&KEYS.other_client),
            // A token does not replace the certificate.
            Req::get("/pets").bearer(&jwt(json!({}))),
            Req::get("/pets").peer_cert(&KEYS.other_client).bearer(&jwt(json!({}))),
        ] {
            refused_401(&fx, &r, MISSING).await;
        }
        let a = let_in(&fx, &Req::get("/pets").peer_cert(&KEYS.client)).await;
        assert_eq!((a.auth_type, a.key_type.as_str()), (AuthType::Mtls, "PRODUCTION"));
        assert!(a.token.is_none() && a.raw.is_empty() && a.app_name.is_empty());
        // Scopes are an application-level matter.
        let a = let_in(&fx, &Req::new("POST", "/pets").peer_cert(&KEYS.client)).await;
        assert_eq!(a.auth_type, AuthType::Mtls);
        let a = let_in(&fx, &Req::get("/pets").peer_cert(&KEYS.client).ext("prodClusterName", "")).await;
        assert_eq!((a.auth_type, a.key_type.as_str()), (AuthType::Mtls, "SANDBOX"));
    }

    #[tokio::test]
    async fn mtls_with_application_security_or_optional_needs_a_token() {
        let fx = Fx::api(mtls_api("mandatory", true));
        refused_401(&fx, &Req::get("/pets").peer_cert(&KEYS.client), MISSING).await;
        refused_401(&fx, &Req::get("/pets").bearer(&jwt(json!({}))), MISSING).await;
        let a = let_in(&fx, &Req::get("/pets").peer_cert(&KEYS.client).bearer(&jwt(json!({})))).await;
        assert_eq!(a.auth_type, AuthType::Jwt);

        let fx = Fx::api(mtls_api("optional", false));
        refused_401(&fx, &Req::get("/pets").peer_cert(&KEYS.client), MISSING).await;
        for r in [Req::get("/pets"), Req::get("/pets").peer_cert(&KEYS.other_client)] {
            let a = let_in(&fx, &r.bearer(&jwt(json!({})))).await;
            assert_eq!(a.auth_type, AuthType::Jwt);
        }
    }

    #[tokio::test]
    async fn an_api_key_in_the_header_or_the_query_is_an_api_key_caller() {
        let fx = Fx::new();
        let key = api_key(json!({}));
        let a = let_in(&fx, &Req::get("/pets").header("apikey", &key)).await;
        assert_eq!(a.auth_type, AuthType::ApiKey);
        assert_eq!((a.raw.as_str(), a.app_name.as_str(), a.tier.as_str()), (key.as_str(), "PetApp", "Gold"));
        assert_eq!(a.api_key_query, None);
        assert_eq!(a.token.as_ref().map(|t| &*t.sub), Some("alice@carbon.super"));

        let r = Req::get("/pets").path(&format!("{BASE}/pets?apikey={key}&x=1"));
        let a = let_in(&fx, &r).await;
        assert_eq!(a.auth_type, AuthType::ApiKey);
        assert_eq!(a.raw, key);
        assert_eq!(a.api_key_query.as_deref(), Some(format!("{BASE}/pets?x=1").as_str()));
    }

    #[tokio::test]
    async fn an_internal_key_is_an_internal_key_caller() {
        let fx = Fx::new();
        let ik = internal_key(json!({}));
        let a = let_in(&fx, &Req::get("/pets").header("internal-key", &ik)).await;
        assert_eq!(a.auth_type, AuthType::InternalKey);
        assert_eq!(
            (a.raw.as_str(), a.app_name.as_str(), a.tier.as_str(), a.key_type.as_str()),
            (ik.as_str(), "internal-key-app", "Unlimited", "PRODUCTION")
        );
        assert_eq!(a.token.as_ref().map(|t| &*t.sub), Some("admin"));
    }

    #[tokio::test]
    async fn the_first_authenticator_that_succeeds_wins_and_the_first_error_is_reported() {
        let fx = Fx::new();
        let (token, key, ik) = (jwt(json!({})), api_key(json!({})), internal_key(json!({})));
        // Internal key, then JWT, then API key.
        let r = Req::get("/pets").bearer(&token).header("apikey", &key).header("internal-key", &ik);
        assert_eq!(let_in(&fx, &r).await.auth_type, AuthType::InternalKey);
        let r = Req::get("/pets").bearer(&token).header("apikey", &key);
        assert_eq!(let_in(&fx, &r).await.auth_type, AuthType::Jwt);
        // A failure does not stop the others.
        let r =
            Req::get("/pets").header("internal-key", "a.b.c").bearer(&jwt(json!({"exp": 1}))).header("apikey", &key);
        assert_eq!(let_in(&fx, &r).await.auth_type, AuthType::ApiKey);
        // All fail: the first failure is the answer.
        let r = Req::get("/pets").header("internal-key", "a.b.c").bearer("x.y.z");
        refused_401(
            &fx,
            &r,
            "Internal key authentication failed.. Make sure you have provided the correct security credentials",
        )
        .await;
        let r = Req::get("/pets").bearer("x.y.z").header("apikey", &api_key(json!({"exp": 1})));
        refused_401(&fx, &r, crate::testkit::NOT_JWT).await;
    }
}
