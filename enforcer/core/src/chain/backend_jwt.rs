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
    let cached = cx.memory.backend_jwts.get(&key).filter(|(_, exp)| exp - now >= SKEW_SECS).map(|(j, _)| j);
    let jwt = match cached {
        Some(j) => j,
        None => {
            let key_type = cx.key_type.map(|k| k.as_str()).unwrap_or_default();
            match crate::backend_jwt::generate(bj, cx.api, tok, key_type, &a.app_name, &a.app_id, &a.tier, &a.raw) {
                Ok(j) => {
                    let j: Arc<str> = j.into();
                    cx.memory.backend_jwts.insert(key, (Arc::clone(&j), now + bj.ttl));
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
