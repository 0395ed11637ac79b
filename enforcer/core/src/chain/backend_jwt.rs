//! The backend JWT (`[enforcer.jwtGenerator]`): who called, signed by the
//! gateway, in `X-JWT-Assertion` (or the configured header). Cached per token
//! and API, reused while it has at least the clock skew left.

use std::borrow::Cow;
use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;

use super::{Context, Filter, Outcome};
use crate::cache::SKEW_SECS;
use crate::deny::Deny;

/// The backend-JWT filter.
#[derive(Debug)]
pub struct BackendJwt;

fn assertion(cx: &mut Context<'_>) -> Outcome {
    let (Some(bj), Some(a)) = (&cx.settings.backend_jwt, &cx.authed) else { return Outcome::Next };
    let Some(tok) = &a.token else { return Outcome::Next };
    let key = (tok.id.clone(), format!("{}:{}", cx.api.raw.base_path, cx.api.raw.version).into_boxed_str());
    let now = crate::now_secs();
    let cached = cx.memory.backend_jwts.get(&key, now).filter(|(_, exp)| exp - now >= SKEW_SECS).map(|(j, _)| j);
    let jwt = match cached {
        Some(j) => j,
        None => {
            let key_type = cx.key_type.map(|k| k.as_str()).unwrap_or_default();
            match crate::backend_jwt::generate(bj, cx.api, tok, key_type, &a.app_name, &a.app_id, &a.tier, &a.raw) {
                Ok(j) => {
                    let j: Arc<str> = j.into();
                    cx.memory.backend_jwts.insert(key, (Arc::clone(&j), now + bj.ttl), now + bj.ttl, now);
                    j
                }
                Err(e) => {
                    tracing::warn!(error = %e, "backend JWT could not be generated");
                    return Outcome::Refuse(Deny::unclassified("Unclassified Authentication Failure"));
                }
            }
        }
    };
    cx.set.push((Cow::Owned(bj.header.clone()), jwt.to_string()));
    Outcome::Next
}

impl Filter for BackendJwt {
    fn name(&self) -> &'static str {
        "backend JWT"
    }

    fn challenges(&self) -> bool {
        true
    }

    fn run<'a, 'r>(&'a self, cx: &'a mut Context<'r>) -> BoxFuture<'a, Outcome>
    where
        'r: 'a,
    {
        std::future::ready(assertion(cx)).boxed()
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use jsonwebtoken::Algorithm;
    use serde_json::{Value, json};

    use super::*;
    use crate::chain::test_support::{Fx, assert_next, caller, token_caller};
    use crate::decision::{AuthType, KeyType, SetHeaders};
    use crate::testkit::{BASE, Req, VERSION, decode_backend_jwt, jwt, now, payload, subs_jwt, with_backend_jwt};

    /// The one header set, verified with the signer's public key: (name, header, claims, raw).
    #[track_caller]
    fn verified(set: &SetHeaders) -> (String, jsonwebtoken::Header, Value, String) {
        let [(name, raw)] = set.as_slice() else { panic!("one header expected: {set:?}") };
        let data = decode_backend_jwt(raw, Algorithm::RS256).expect("a backend JWT signed by the configured key");
        (name.to_string(), data.header, data.claims, raw.clone())
    }

    async fn run(fx: &Fx, r: &Req, a: Option<crate::chain::Authed>, key_type: Option<KeyType>) -> SetHeaders {
        let mut cx = fx.cx(r);
        cx.authed = a;
        cx.key_type = key_type;
        assert_next(BackendJwt.run(&mut cx).await);
        assert!(cx.remove.is_empty());
        cx.set
    }

    #[tokio::test]
    async fn a_signed_jwt_describes_the_caller_in_the_configured_header() {
        let fx = Fx::config(|c, dir| with_backend_jwt(c, dir, 900));
        let r = Req::get("/pets");
        let token = subs_jwt(json!({"department": "pets"}));
        let mut a = token_caller(&token, AuthType::Jwt, "Subs");
        (a.app_name, a.app_id, a.tier) = ("PetApp".into(), "app-uuid-1".into(), "Gold".into());
        let set = run(&fx, &r, Some(a), Some(KeyType::Sandbox)).await;
        let (name, h, c, _) = verified(&set);
        assert_eq!(name, "x-jwt-assertion");
        assert_eq!(h.alg, Algorithm::RS256);
        let jwks: Value =
            serde_json::from_str(&fx.settings.backend_jwt.as_ref().expect("backend JWT").jwks).expect("JWKS");
        assert_eq!(h.kid.as_deref(), jwks["keys"][0]["kid"].as_str());
        assert!(h.kid.is_some());
        let d = |k: &str| c[format!("http://wso2.org/claims/{k}")].clone();
        assert_eq!(c["iss"], "wso2.org/products/am");
        assert_eq!(c["sub"], "alice");
        let iat = c["iat"].as_i64().expect("iat");
        assert_eq!(c["exp"].as_i64().expect("exp") - iat, 900);
        assert!((iat - now()).abs() <= 5, "{iat}");
        assert_ne!(c["jti"], payload(&token)["jti"]);
        assert_eq!(d("apiname"), "Pets");
        assert_eq!(d("apicontext"), BASE);
        assert_eq!(d("version"), VERSION);
        assert_eq!(d("keytype"), "SANDBOX", "the key type the routing filter chose");
        assert_eq!(d("applicationname"), "PetApp");
        assert_eq!(d("applicationid"), "app-uuid-1");
        assert_eq!(d("tier"), "Gold");
        assert_eq!(d("subscriber"), "bob");
        assert_eq!(d("applicationtier"), "10PerMin");
        assert_eq!(d("enduser"), "alice");
        assert_eq!(c["department"], "pets", "custom claims are copied");
        assert!(c.get("aud").is_none() && c.get("subscribedAPIs").is_none(), "{c}");

        // Another header name, no key type chosen: PRODUCTION.
        let fx = Fx::config(|c, dir| {
            with_backend_jwt(c, dir, 900);
            c.jwt_generator.as_mut().expect("generator").header = "X-Backend-Token".into();
        });
        let set = run(&fx, &r, Some(token_caller(&jwt(json!({})), AuthType::Jwt, "IdP")), None).await;
        let (name, _, c, _) = verified(&set);
        assert_eq!(name, "x-backend-token");
        assert_eq!(c["http://wso2.org/claims/keytype"], "PRODUCTION");
    }

    #[tokio::test]
    async fn the_jwt_is_cached_in_memory_and_reused() {
        let fx = Fx::config(|c, dir| with_backend_jwt(c, dir, 900));
        let r = Req::get("/pets");
        let token = jwt(json!({}));
        let a = token_caller(&token, AuthType::Jwt, "IdP");
        let first = run(&fx, &r, Some(a.clone()), Some(KeyType::Production)).await;
        let (_, _, c, raw) = verified(&first);
        let key = (Box::<str>::from(payload(&token)["jti"].as_str().expect("jti")), format!("{BASE}:{VERSION}").into());
        let (cached, exp) = fx.memory.backend_jwts.get(&key, now()).expect("cached under (token id, API)");
        assert_eq!(&*cached, raw.as_str());
        assert_eq!(exp, c["exp"].as_i64().expect("exp"));

        // A second request with the same token: the same JWT, from memory.
        let second = run(&fx, &r, Some(a.clone()), Some(KeyType::Production)).await;
        assert_eq!(second, first);

        // What memory holds is what is sent.
        fx.memory.backend_jwts.insert(key.clone(), (Arc::from("cached.backend.jwt"), now() + 600), now() + 600, now());
        let set = run(&fx, &r, Some(a.clone()), Some(KeyType::Production)).await;
        assert_eq!(set, vec![(Cow::Owned("x-jwt-assertion".to_string()), "cached.backend.jwt".to_string())]);

        // Unless it has less than the clock skew left: a new one, cached in its place.
        fx.memory.backend_jwts.insert(
            key.clone(),
            (Arc::from("stale.backend.jwt"), now() + SKEW_SECS - 1),
            now() + SKEW_SECS - 1,
            now(),
        );
        let set = run(&fx, &r, Some(a), Some(KeyType::Production)).await;
        let (_, _, _, fresh) = verified(&set);
        assert_ne!(fresh, raw);
        assert_eq!(fx.memory.backend_jwts.get(&key, now()).map(|(j, _)| j.to_string()), Some(fresh));

        // Another token: another JWT.
        let other = run(&fx, &r, Some(token_caller(&jwt(json!({})), AuthType::Jwt, "IdP")), None).await;
        assert_ne!(verified(&other).3, raw);
    }

    #[tokio::test]
    async fn signing_algorithm_none_sends_an_unsigned_jwt() {
        let fx = Fx::config(|c, dir| {
            with_backend_jwt(c, dir, 900);
            c.jwt_generator.as_mut().expect("generator").signing_algorithm = "NONE".into();
        });
        let token = jwt(json!({}));
        let set = run(&fx, &Req::get("/pets"), Some(token_caller(&token, AuthType::Jwt, "IdP")), None).await;
        let [(name, raw)] = set.as_slice() else { panic!("one header expected: {set:?}") };
        assert_eq!(name, "x-jwt-assertion");
        let (head, rest) = raw.split_once('.').expect("three parts");
        assert!(rest.ends_with('.'), "no signature: {raw}");
        let head = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(head).expect("base64");
        assert_eq!(serde_json::from_slice::<Value>(&head).expect("json"), json!({"typ": "JWT", "alg": "none"}));
        assert_eq!(payload(raw)["sub"], "alice");
    }

    #[tokio::test]
    async fn nothing_is_set_without_a_generator_a_caller_or_a_token() {
        let r = Req::get("/pets");
        let token = jwt(json!({}));
        // No generator configured.
        let fx = Fx::new();
        assert!(fx.settings.backend_jwt.is_none());
        let set = run(&fx, &r, Some(token_caller(&token, AuthType::Jwt, "IdP")), Some(KeyType::Production)).await;
        assert!(set.is_empty(), "{set:?}");
        // A generator that is not enabled.
        let fx = Fx::config(|c, dir| {
            with_backend_jwt(c, dir, 900);
            c.jwt_generator.as_mut().expect("generator").enabled = false;
        });
        let set = run(&fx, &r, Some(token_caller(&token, AuthType::Jwt, "IdP")), Some(KeyType::Production)).await;
        assert!(set.is_empty(), "{set:?}");
        // Configured, but no token to describe (mTLS alone, unsecured) or no caller.
        let fx = Fx::config(|c, dir| with_backend_jwt(c, dir, 900));
        for a in [Some(caller(AuthType::Mtls, "PRODUCTION")), Some(caller(AuthType::Unsecured, "PRODUCTION")), None] {
            let set = run(&fx, &r, a, Some(KeyType::Production)).await;
            assert!(set.is_empty(), "{set:?}");
        }
        assert_eq!(fx.memory.backend_jwts.len(), 0, "nothing cached");
        assert!(BackendJwt.challenges());
    }
}
