//! The enforcer's state (configuration, APIs, revoked tokens, caches) and
//! the decision for one request: find the API and resource the route names,
//! then run the filter chain ([`crate::chain`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use arc_swap::{ArcSwap, ArcSwapOption};

use crate::apis::ApiIndex;
use crate::chain::{self, Context};
use crate::decision::{AuthInfo, Decision};
use crate::deny::Deny;
use crate::memory::{Memory, Revoked};
use crate::request::Input;
use crate::settings::Settings;
use crate::throttle::ThrottleData;

/// The enforcer's state: configuration, APIs, revoked tokens, caches.
pub struct Engine {
    /// The configuration (none until the first one arrives: every check fails).
    pub settings: ArcSwapOption<Settings>,
    /// The APIs of the label.
    pub apis: ArcSwap<ApiIndex>,
    /// Revoked tokens and caches, which the filters consult.
    pub memory: Memory,
    /// Throttling policies and blocking conditions.
    pub throttle: ArcSwap<ThrottleData>,
    /// Which of the adapter's data sets arrived at least once ([`Received`] bits).
    received: AtomicU8,
}

/// The data sets the enforcer needs before it decides anything.
#[derive(Debug, Clone, Copy)]
#[repr(u8)]
enum Received {
    Apis = 1,
    Revoked = 2,
    Throttle = 4,
}

/// The whole check failed: the enforcer cannot decide yet (it has not
/// received its configuration, its APIs and the revoked tokens).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the enforcer has not received its configuration, APIs, revoked tokens and throttling data yet")]
pub struct NotReady;

impl Default for Engine {
    fn default() -> Self {
        Engine::new()
    }
}

impl Engine {
    /// An engine with no configuration and no APIs.
    pub fn new() -> Engine {
        Engine {
            settings: ArcSwapOption::empty(),
            apis: ArcSwap::from_pointee(ApiIndex::default()),
            memory: Memory::new(),
            throttle: ArcSwap::from_pointee(ThrottleData::default()),
            received: AtomicU8::new(0),
        }
    }

    /// Installs the APIs of the label.
    pub fn set_apis(&self, index: ApiIndex) {
        self.apis.store(Arc::new(index));
        self.received.fetch_or(Received::Apis as u8, Ordering::Release);
    }

    /// Whether the configuration, the APIs, the revoked tokens and the
    /// throttling data have all arrived: before that no request is let
    /// through (a token revoked or a client blocked before a restart must not
    /// get in while the list is on its way).
    pub fn is_ready(&self) -> bool {
        let all = Received::Apis as u8 | Received::Revoked as u8 | Received::Throttle as u8;
        self.received.load(Ordering::Acquire) & all == all && self.settings.load().is_some()
    }

    /// Installs a configuration, with an empty token cache: tokens validated
    /// under the previous one (an issuer since removed, a key since replaced)
    /// must be validated again.
    pub fn set_settings(&self, s: Arc<Settings>) {
        self.memory.reset(s.cache);
        self.settings.store(Some(s));
    }

    /// Installs the revoked tokens and drops them from the caches.
    pub fn set_revoked(&self, revoked: Revoked) {
        self.memory.set_revoked(revoked);
        self.received.fetch_or(Received::Revoked as u8, Ordering::Release);
    }

    /// Installs the throttling policies and blocking conditions.
    pub fn set_throttle(&self, data: ThrottleData) {
        self.throttle.store(Arc::new(data));
        self.received.fetch_or(Received::Throttle as u8, Ordering::Release);
    }

    /// Decides on one request.
    pub async fn check(&self, input: Input<'_>) -> Result<Decision, NotReady> {
        let Some(settings) = self.settings.load_full() else { return Err(NotReady) };
        if !self.is_ready() {
            return Err(NotReady);
        }
        let apis = self.apis.load();
        let Some(api) = apis.find(input.ext("vHost"), input.ext("basePath"), input.ext("version")) else {
            return Ok(Decision::deny(Deny::not_found(), None, AuthInfo::default()));
        };
        let template = input.ext("path");
        let info = AuthInfo {
            api_id: api.raw.id.clone(),
            api_name: api.raw.title.clone(),
            api_version: api.raw.version.clone(),
            api_context: api.raw.base_path.clone(),
            api_type: api.raw.api_type.clone(),
            resource: template.to_string(),
            ..Default::default()
        };
        if let Some(schema) = &api.graphql {
            return Ok(self.check_graphql(api, schema, &settings, input, info).await);
        }
        let Some(resource) = api.resources.get(template) else {
            return Ok(Decision::deny(Deny::not_found(), None, info));
        };
        let op = resource.operation(input.method);
        // Only an OPTIONS may go on without an operation: the CORS filter answers it.
        if op.is_none() && !input.method.eq_ignore_ascii_case("OPTIONS") {
            return Ok(Decision::deny(Deny::not_found(), None, info));
        }
        let throttle = self.throttle.load();
        let mut cx = Context::new(&self.memory, &settings, input, api, resource, op, info);
        cx.throttle = &**throttle;
        Ok(chain::run(&mut cx).await)
    }

    /// A request to a GraphQL API: OPTIONS goes to the CORS filter; any
    /// other request's query is parsed and its operations resolved first
    /// (a bad query is refused before authentication, as in Choreo Connect).
    async fn check_graphql(
        &self,
        api: &crate::apis::Api,
        schema: &crate::graphql::GraphqlSchema,
        settings: &Settings,
        input: Input<'_>,
        mut info: AuthInfo,
    ) -> Decision {
        let throttle = self.throttle.load();
        if input.method.eq_ignore_ascii_case("OPTIONS") {
            let mut cx = Context::new(&self.memory, settings, input, api, &api.graphql_endpoint, None, info);
            cx.throttle = &**throttle;
            return chain::run(&mut cx).await;
        }
        let call = match chain::graphql::prepare(api, schema, &input) {
            Ok(c) => c,
            Err(d) => return Decision::deny(d, None, info),
        };
        info.resource = call.resource();
        let Some((resource, op)) = call.lead() else { return Decision::deny(Deny::not_found(), None, info) };
        let mut cx = Context::new(&self.memory, settings, input, api, resource, Some(op), info);
        cx.throttle = &**throttle;
        cx.graphql = Some(call);
        chain::run(&mut cx).await
    }
}
