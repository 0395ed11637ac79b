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
