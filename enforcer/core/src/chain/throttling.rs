//! Throttling, in Choreo Connect's order and with its codes, counted in
//! memory (ratelimit.rs) after the caller is authenticated and subscribed:
//! the API's tier (900800), else the operation's (900802); the
//! subscription's tier from the token (900804; API Manager's subscription
//! tiers stop on quota reach); the application's tier from the token
//! (900803, per application and user). Tier names resolve through
//! common/config/src/policies.rs; the adapter refuses projects naming an
//! unknown one, and an unknown name here (a token's, an older adapter's) is
//! not counted. Custom policies, blocking conditions, conditional groups,
//! burst control and the shared (Redis) backend come next.

use futures::FutureExt;
use futures::future::BoxFuture;
use gateway_config::policies::{Tier, tier};

use super::{Context, Filter, Outcome};
use crate::ratelimit::{Hit, Level, Quota};

/// The filter.
pub struct Throttling;

fn quota(name: &str) -> Option<Option<Quota>> {
    match tier(name)? {
        Tier::Unlimited => Some(None),
        Tier::Quota { limit, window_secs } => Some(Some(Quota { limit, window_secs })),
    }
}

fn push(out: &mut Vec<Hit>, level: Level, tier_name: &str, key: impl FnOnce() -> String, api: &str) {
    if tier_name.is_empty() {
        return;
    }
    match quota(tier_name) {
        Some(q) => out.push(Hit { level, key: key(), quota: q }),
        None => tracing::warn!(tier = %tier_name, api, ?level, "unknown throttling tier: not counted"),
    }
}

/// The counters a request is checked against, in Choreo Connect's order.
pub fn hits(cx: &Context<'_>) -> Vec<Hit> {
    let raw = &cx.api.raw;
    let mut out = Vec::with_capacity(3);
    if !raw.tier.is_empty() {
        push(&mut out, Level::Api, &raw.tier, || format!("{}:{}", raw.base_path, raw.version), &raw.title);
    } else if let Some(op) = cx.op {
        push(
            &mut out,
            Level::Resource,
            &op.tier,
            || format!("{}{}:{}", raw.base_path, cx.resource.path, op.method.to_ascii_uppercase()),
            &raw.title,
        );
    }
    if let Some(a) = &cx.authed {
        let app_id = if a.app_id.is_empty() { a.app_name.as_str() } else { a.app_id.as_str() };
        push(
            &mut out,
            Level::Subscription,
            &a.tier,
            || format!("{app_id}:{}:{}", raw.base_path, raw.version),
            &raw.title,
        );
        if let Some(t) = &a.token
            && let Some(app) = &t.application
        {
            push(&mut out, Level::Application, &app.tier, || format!("{app_id}:{}", t.sub), &raw.title);
        }
    }
    out
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
            let hits = hits(cx);
            match cx.memory.limiter.check_and_count(&hits, u64::try_from(crate::now_secs()).unwrap_or(0)) {
                Ok(()) => Outcome::Next,
                Err(t) => Outcome::Refuse(t.deny()),
            }
        }
        .boxed()
    }
}
