//! The decision pipeline: an ordered chain of filters, as Choreo Connect's
//! enforcer is built (CORS, then authentication, then what follows it).
//!
//! Each filter is a small unit: it reads the request and what earlier
//! filters found ([`Context`]), may add to it, and either lets the request go
//! on or refuses it ([`Outcome`]). The first refusal is the answer; a request
//! that passes every filter is let through with the headers they set and
//! removed. Adding a filter (throttling, policies, GraphQL analysis) means
//! one new module and one line in [`CHAIN`] (as throttling was).

pub mod authentication;
pub mod backend_jwt;
pub mod cors;
pub mod credentials;
pub mod graphql;
pub mod mediation;
pub mod routing;
#[cfg(test)]
pub(crate) mod test_support;
pub mod throttling;

use std::sync::Arc;

use futures::future::BoxFuture;

use crate::apis::{Api, Mtls, Operation, Resource};
use crate::decision::{AuthInfo, AuthType, Decision, KeyType, SetHeaders};
use crate::deny::{Deny, www_authenticate};
use crate::memory::Memory;
use crate::request::Input;
use crate::settings::Settings;
use crate::throttle::ThrottleData;
use crate::token::TokenInfo;

static EMPTY_THROTTLE: std::sync::LazyLock<ThrottleData> = std::sync::LazyLock::new(ThrottleData::default);

/// `WWW-Authenticate` challenge of the JWT authenticator.
pub const BEARER_CHALLENGE: &str = "Bearer realm=\"Choreo Connect\"";
/// `WWW-Authenticate` challenge of the mTLS authenticator.
pub const MTLS_CHALLENGE: &str = "Mutual SSL realm=\"Choreo Connect\"";
/// Header with the cluster the enforcer picked.
pub const CLUSTER_HEADER: &str = "x-wso2-cluster-header";

/// The filters, in order.
pub static CHAIN: &[&dyn Filter] = &[
    &cors::Cors,
    &authentication::Authentication,
    &routing::Routing,
    &credentials::Credentials,
    &graphql::QueryAnalysis,
    &throttling::Throttling,
    &backend_jwt::BackendJwt,
    &mediation::Mediation,
];

/// What a filter says about a request.
#[derive(Debug)]
pub enum Outcome {
    /// On to the next filter.
    Next,
    /// Answer with this.
    Refuse(Deny),
}

/// One step of the decision.
pub trait Filter: Send + Sync {
    /// Its name, for logs.
    fn name(&self) -> &'static str;

    /// Whether its refusals carry `WWW-Authenticate` (Choreo Connect adds the
    /// challenges to every failure of its authentication filter).
    fn challenges(&self) -> bool {
        false
    }

    /// Looks at the request.
    fn run<'a, 'r>(&'a self, cx: &'a mut Context<'r>) -> BoxFuture<'a, Outcome>
    where
        'r: 'a;
}

/// A caller the authentication filter let in.
#[derive(Debug, Clone)]
pub struct Authed {
    /// The validated token, unless unsecured or by certificate alone.
    pub token: Option<Arc<TokenInfo>>,
    /// The authenticator.
    pub auth_type: AuthType,
    /// The `keytype` the credentials name (checked by the routing filter).
    pub key_type: String,
    /// Application name.
    pub app_name: String,
    /// Application UUID.
    pub app_id: String,
    /// Application owner.
    pub app_owner: String,
    /// Subscription tier.
    pub tier: String,
    /// The credential as presented.
    pub raw: String,
    /// The path without the API key's query parameter, when it was there.
    pub api_key_query: Option<String>,
}

/// A request on its way through the chain.
pub struct Context<'r> {
    /// Revoked tokens and caches.
    pub memory: &'r Memory,
    /// The configuration.
    pub settings: &'r Settings,
    /// The request.
    pub input: Input<'r>,
    /// The API the route names.
    pub api: &'r Api,
    /// The resource the route names.
    pub resource: &'r Resource,
    /// The operation of the request's method (none: an OPTIONS the resource does not declare).
    pub op: Option<&'r Operation>,
    /// The API and resource (the caller's part is filled in on the way out).
    pub info: AuthInfo,
    /// Set by the authentication filter.
    pub authed: Option<Authed>,
    /// Set by the routing filter.
    pub key_type: Option<KeyType>,
    /// Headers to set upstream.
    pub set: SetHeaders,
    /// Headers to remove upstream.
    pub remove: Vec<String>,
    /// Headers added to the response sent to the client (rate-limit headers).
    pub respond: Vec<(&'static str, String)>,
    /// Throttling policies and blocking conditions.
    pub throttle: &'r ThrottleData,
    /// A GraphQL request's operations (each with its scopes and tier) and
    /// its analysis; `resource` and `op` are then the lead operation's.
    pub graphql: Option<graphql::GraphqlCall<'r>>,
}

impl<'r> Context<'r> {
    /// A request about to enter the chain.
    pub fn new(
        memory: &'r Memory,
        settings: &'r Settings,
        input: Input<'r>,
        api: &'r Api,
        resource: &'r Resource,
        op: Option<&'r Operation>,
        info: AuthInfo,
    ) -> Context<'r> {
        Context {
            memory,
            settings,
            input,
            api,
            resource,
            op,
            info,
            authed: None,
            key_type: None,
            set: Vec::new(),
            remove: Vec::new(),
            respond: Vec::new(),
            throttle: &EMPTY_THROTTLE,
            graphql: None,
        }
    }

    /// The `WWW-Authenticate` value for this API's authenticators.
    pub fn www_authenticate(&self) -> String {
        if self.api.mtls == Mtls::Off {
            www_authenticate(&[BEARER_CHALLENGE])
        } else {
            www_authenticate(&[MTLS_CHALLENGE, BEARER_CHALLENGE])
        }
    }
}

/// Runs the chain on a request.
pub async fn run(cx: &mut Context<'_>) -> Decision {
    for filter in CHAIN {
        if let Outcome::Refuse(d) = filter.run(cx).await {
            let www = filter.challenges().then(|| cx.www_authenticate());
            tracing::debug!(filter = filter.name(), code = d.code, "refused");
            return Decision::deny(d, www, std::mem::take(&mut cx.info));
        }
    }
    let mut info = std::mem::take(&mut cx.info);
    if let Some(a) = cx.authed.take() {
        info.auth_type = Some(a.auth_type);
        info.app_name = a.app_name;
        info.app_id = a.app_id;
        info.app_owner = a.app_owner;
        info.tier = a.tier;
        info.token = a.raw;
        info.user = match (&a.token, a.auth_type) {
            (Some(t), _) => t.sub.to_string(),
            (None, AuthType::Unsecured) => "anonymous".into(),
            (None, _) => String::new(),
        };
    }
    info.key_type = cx.key_type;
    Decision::Allow {
        set: std::mem::take(&mut cx.set),
        remove: std::mem::take(&mut cx.remove),
        respond: std::mem::take(&mut cx.respond),
        info,
    }
}
