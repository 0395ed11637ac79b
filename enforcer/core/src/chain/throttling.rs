//! Throttling: the API's tier, else the resource's (Choreo Connect's order
//! and codes, 900800 and 900802), counted in memory (ratelimit.rs) after the
//! caller is authenticated and subscribed. Tier names resolve through
//! common/config/src/policies.rs; the adapter refuses projects naming an
//! unknown one, so an unknown name here (an older adapter) is not counted.
//! Subscription, application and custom levels, blocking conditions and the
//! shared (Redis) backend come next.

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

/// The counters a request is checked against: the API's tier when it has
/// one, else the operation's.
pub fn hits(cx: &Context<'_>) -> Vec<Hit> {
    let raw = &cx.api.raw;
    if !raw.tier.is_empty() {
        return match quota(&raw.tier) {
            Some(q) => vec![Hit { level: Level::Api, key: format!("{}:{}", raw.base_path, raw.version), quota: q }],
            None => {
                tracing::warn!(tier = %raw.tier, api = %raw.title, "unknown throttling tier: not counted");
                Vec::new()
            }
        };
    }
    match cx.op.filter(|op| !op.tier.is_empty()) {
        Some(op) => match quota(&op.tier) {
            Some(q) => vec![Hit {
                level: Level::Resource,
                key: format!("{}{}:{}", raw.base_path, cx.resource.path, op.method.to_ascii_uppercase()),
                quota: q,
            }],
            None => {
                tracing::warn!(tier = %op.tier, api = %raw.title, "unknown throttling tier: not counted");
                Vec::new()
            }
        },
        None => Vec::new(),
    }
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
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
            match cx.memory.limiter.check_and_count(&hits, now()) {
                Ok(()) => Outcome::Next,
                Err(t) => Outcome::Refuse(t.deny()),
            }
        }
        .boxed()
    }
}
