//! Throttling, in Choreo Connect's order and with its codes, after the caller
//! is authenticated and subscribed:
//!
//! 1. blocking conditions (403 900805; applied even when counting is off);
//! 2. the API's tier (900800), else the operation's (900802), each an
//!    advanced policy whose first matching conditional group decides the
//!    limit and gets its own counter;
//! 3. the subscription's tier from the token (900804): its burst control
//!    first, then its quota, enforced when `stopOnQuotaReach` (the token's
//!    `tierInfo` wins over the catalogue), else counted only;
//! 4. the application's tier (900803, per application and user);
//! 5. every custom policy, one counter per value of its key template (900806).
//!
//! Tier names resolve through the catalogue the adapter pushes
//! (crate::throttle), then as `<n>Per<Unit>` names
//! (common/config/src/policies.rs); the adapter refuses projects naming an
//! unknown tier, and an unknown name here (a token's) is not counted.
//! Counting is ratelimit.rs: a throttled request consumes nothing anywhere.

use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use gateway_config::policies::{Tier, tier};

use super::{Context, Filter, Outcome};
use crate::deny::Deny;
use crate::lease::Refused;
use crate::ratelimit::{Hit, Level, Quota, rate_limit_headers};
use crate::request::query_param;
use crate::throttle::{Facts, Policy, PolicyKind, Requester};

/// The filter.
pub struct Throttling;

/// A tier name resolved at a level.
enum Resolved<'a> {
    /// A policy of the catalogue.
    Policy(&'a Arc<Policy>),
    /// A generated `<n>Per<Unit>` name or a built-in name the catalogue lacks.
    Generated(Option<Quota>),
}

fn resolve<'a>(cx: &Context<'a>, kind: PolicyKind, name: &str, level: Level) -> Option<Resolved<'a>> {
    if name.is_empty() {
        return None;
    }
    if let Some(p) = cx.throttle.policy(kind, name) {
        return Some(Resolved::Policy(p));
    }
    match tier(name) {
        Some(Tier::Unlimited) => Some(Resolved::Generated(None)),
        Some(Tier::Quota { limit, window_secs }) => Some(Resolved::Generated(Some(Quota { limit, window_secs }))),
        None => {
            tracing::warn!(tier = %name, api = %cx.api.raw.title, ?level, "unknown throttling tier: not counted");
            None
        }
    }
}

/// `$userId`, `$apiContext`, ... of a custom policy's key template.
fn render(template: &str, var: impl Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let end = if let Some(prop) = after.strip_prefix("customProperty.") {
            "customProperty.".len() + prop.find([':', '$', ' ', '/']).unwrap_or(prop.len())
        } else {
            after.find(|c: char| !c.is_ascii_alphanumeric()).unwrap_or(after.len())
        };
        if end == 0 {
            out.push('$');
        } else {
            out.push_str(&var(&after[..end]));
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// The counters a request is checked against, in Choreo Connect's order.
pub fn hits(cx: &Context<'_>) -> Vec<Hit> {
    let raw = &cx.api.raw;
    let token = cx.authed.as_ref().and_then(|a| a.token.as_deref());
    let input = &cx.input;
    let header = |n: &str| input.header(n);
    let query = |n: &str| query_param(input.path, n);
    let claim = |n: &str| token.and_then(|t| t.claim(n));
    let facts = Facts {
        ip: crate::throttle::ip(input.client_ip()),
        header: &header,
        query: &query,
        claim: &claim,
        enabled: cx.settings.throttling.conditions,
    };
    let mut out = Vec::with_capacity(4);
    let mut advanced = |level: Level, name: &str, key: String| match resolve(cx, PolicyKind::Advanced, name, level) {
        Some(Resolved::Policy(p)) => {
            let (quota, group) = p.limit_for(&facts);
            let key = match group {
                Some(g) => format!("{key}_{g}"),
                None => key,
            };
            out.push(Hit::new(level, key, quota, Arc::clone(&p.name)));
        }
        Some(Resolved::Generated(q)) => out.push(Hit::new(level, key, q, name.into())),
        None => {}
    };
    if !raw.tier.is_empty() {
        advanced(Level::Api, &raw.tier, format!("{}:{}", raw.base_path, raw.version));
    } else if let Some(g) = &cx.graphql {
        // Each operation of a GraphQL request is counted against its own tier.
        for (r, op) in &g.ops {
            advanced(Level::Resource, &op.tier, format!("{}/{}:{}", raw.base_path, r.path, op.method));
        }
    } else if let Some(op) = cx.op {
        let key = format!("{}{}:{}", raw.base_path, cx.resource.path, op.method.to_ascii_uppercase());
        advanced(Level::Resource, &op.tier, key);
    }
    if let Some(a) = &cx.authed {
        let app_id = if a.app_id.is_empty() { a.app_name.as_str() } else { a.app_id.as_str() };
        let sub_key = format!("{app_id}:{}:{}", raw.base_path, raw.version);
        let info = token.and_then(|t| t.tier_info(&a.tier));
        match resolve(cx, PolicyKind::Subscription, &a.tier, Level::Subscription) {
            Some(Resolved::Policy(p)) => {
                let spike = info
                    .filter(|i| i.spike_arrest_limit > 0)
                    .and_then(|i| Quota::new(i.spike_arrest_limit, 1, &i.spike_arrest_unit));
                if let Some(burst) = spike.or(p.burst) {
                    out.push(Hit::new(
                        Level::Subscription,
                        format!("{sub_key}:burst"),
                        Some(burst),
                        Arc::clone(&p.name),
                    ));
                }
                let mut hit = Hit::new(Level::Subscription, sub_key, p.default_limit, Arc::clone(&p.name));
                hit.enforce = info.and_then(|i| i.stop_on_quota_reach).unwrap_or(p.stop_on_quota_reach);
                out.push(hit);
            }
            Some(Resolved::Generated(q)) => {
                let mut hit = Hit::new(Level::Subscription, sub_key, q, a.tier.as_str().into());
                hit.enforce = info.and_then(|i| i.stop_on_quota_reach).unwrap_or(true);
                out.push(hit);
            }
            None => {}
        }
        if let Some(t) = token
            && let Some(app) = &t.application
        {
            let key = format!("{app_id}:{}", t.sub);
            match resolve(cx, PolicyKind::Application, &app.tier, Level::Application) {
                Some(Resolved::Policy(p)) => {
                    out.push(Hit::new(Level::Application, key, p.default_limit, Arc::clone(&p.name)));
                }
                Some(Resolved::Generated(q)) => out.push(Hit::new(Level::Application, key, q, (*app.tier).into())),
                None => {}
            }
        }
    }
    if !cx.throttle.custom.is_empty() {
        let (user, app_id) = match &cx.authed {
            Some(a) => (token.map(|t| t.sub.to_string()).unwrap_or_default(), a.app_id.clone()),
            None => (String::new(), String::new()),
        };
        // (A GraphQL request: its lead operation, keyed as its tier's counter is.)
        let resource_key = match &cx.graphql {
            Some(g) => g.lead().map(|(r, op)| format!("{}/{}:{}", raw.base_path, r.path, op.method)),
            None => cx.op.map(|op| format!("{}{}:{}", raw.base_path, cx.resource.path, op.method.to_ascii_uppercase())),
        };
        let var = |v: &str| -> String {
            match v {
                "userId" => user.clone(),
                "apiContext" => raw.base_path.clone(),
                "apiVersion" => raw.version.clone(),
                "appId" => app_id.clone(),
                "clientIp" => input.client_ip().to_string(),
                "resourceKey" => resource_key.clone().unwrap_or_default(),
                "appTenant" | "apiTenant" => "carbon.super".into(),
                other => match other.strip_prefix("customProperty.") {
                    // The token's claim first: a client must not override it with a header.
                    Some(p) => token
                        .and_then(|t| t.claim(p))
                        .or_else(|| input.header(&p.to_ascii_lowercase()))
                        .unwrap_or("")
                        .to_string(),
                    None => format!("${other}"),
                },
            }
        };
        for p in &cx.throttle.custom {
            let key = format!("custom:{}:{}", p.name, render(&p.key_template, var));
            out.push(Hit::new(Level::Custom, key, p.default_limit, Arc::clone(&p.name)));
        }
    }
    out
}

/// Whether a blocking condition holds for the request.
fn blocked(cx: &Context<'_>) -> Option<String> {
    let data = cx.throttle;
    if data.blocking.is_empty() {
        return None;
    }
    let raw = &cx.api.raw;
    let a = cx.authed.as_ref();
    let r = Requester {
        ip: crate::throttle::ip(cx.input.client_ip()),
        api: (&raw.base_path, &raw.version),
        app: a.map(|a| (a.app_owner.as_str(), a.app_name.as_str())).unwrap_or(("", "")),
        user: a.and_then(|a| a.token.as_deref()).map(|t| &*t.sub).unwrap_or(""),
        key_type: cx.key_type.map(|k| k.as_str()).unwrap_or("PRODUCTION"),
    };
    data.blocked(&r).map(|b| b.id.clone())
}

impl Filter for Throttling {
    fn name(&self) -> &'static str {
        "throttling"
    }

    fn run<'a, 'r>(&'a self, cx: &'a mut Context<'r>) -> BoxFuture<'a, Outcome>
    where
        'r: 'a,
    {
        async move {
            if let Some(id) = blocked(cx) {
                tracing::debug!(condition = %id, "blocked");
                return Outcome::Refuse(Deny::blocked());
            }
            let settings = &cx.settings.throttling;
            if !settings.enabled {
                return Outcome::Next;
            }
            let hits = hits(cx);
            let now = u64::try_from(crate::now_secs()).unwrap_or(0);
            let limiter = cx.memory.limiter.load_full();
            match limiter.check_and_count(&hits, now).await {
                Ok(admitted) => {
if admitted.over_quota {
                        tracing::debug!(api = %cx.api.raw.title, "subscription quota exceeded (stopOnQuotaReach is false): admitted");
                        cx.info.quota_exceeded = true;
                    }
                    cx.respond = rate_limit_headers(&admitted.usage, now, settings.headers);
                    Outcome::Next
                }
                Err(Refused::Throttled(t)) => {
                    let mut deny = t.deny();
                    if !settings.headers.retry_after {
                        deny.headers.retain(|(k, _)| *k != "retry-after");
                    }
                    deny.headers.extend(rate_limit_headers(std::slice::from_ref(&t.usage), now, settings.headers));
                    Outcome::Refuse(deny)
                }
                Err(Refused::Unavailable) => Outcome::Refuse(Deny::throttling_unavailable()),
            }
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn key_templates_substitute_every_variable() {
        let var = |v: &str| match v {
            "userId" => "alice".to_string(),
            "apiContext" => "/pets".to_string(),
            "customProperty.x-plan" => "free".to_string(),
            other => format!("<{other}>"),
        };
        assert_eq!(render("$userId:$apiContext", var), "alice:/pets");
        assert_eq!(render("$customProperty.x-plan:$appId", var), "free:<appId>");
        assert_eq!(render("cost $ 5", var), "cost $ 5");
    }
}
