//! The throttling data the adapter pushes (proto/wso2/discovery/throttle.proto):
//! the policy catalogue and the blocking conditions, checked once on arrival
//! and kept in the form the throttling filter (chain/throttling.rs) reads.
//!
//! * **Policies** by level: subscription, application, advanced (API and
//!   resource tiers, with conditional groups) and custom (key templates).
//!   A name the catalogue lacks still resolves when it is a `<n>Per<Unit>`
//!   name (common/config/src/policies.rs), as the adapter accepts those.
//! * **Conditional groups** (advanced policies): the first group whose
//!   conditions all hold decides the limit and gets its own counter; IP
//!   conditions always apply, header, query-parameter and JWT-claim ones only
//!   when `[enforcer.throttling]` switches them on (API Manager's
//!   `enable_*_based_throttling`); a group with a condition switched off never
//!   matches. Header, query and claim values are regular expressions
//!   searched in the value (Java's `find()`, as API Manager).
//! * **Blocking conditions**: API, application, user, subscription, IP and IP
//!   range (the last two invertible), each enabled or not.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use gateway_proto::throttle as pt;
use regex::Regex;

use crate::ratelimit::Quota;

/// Why the throttling data was refused (the text is the NACK's message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("throttling {what} {name:?}: {reason}")]
pub struct ThrottleDataError {
    /// `policy` or `blocking condition`.
    pub what: &'static str,
    /// Its name or id.
    pub name: String,
    /// What is wrong.
    pub reason: String,
}

pub use gateway_config::policies::PolicyKind;

/// What a condition tests.
#[derive(Debug, Clone)]
pub enum Test {
    /// The client IP is this address.
    Ip(IpAddr),
    /// The client IP is in this inclusive range.
    IpRange(IpAddr, IpAddr),
    /// The header (lower-cased name) holds a match of the expression.
    Header(String, Regex),
    /// The query parameter holds a match.
    Query(String, Regex),
    /// The token's claim holds a match.
    Claim(String, Regex),
}

/// One condition of a conditional group.
#[derive(Debug, Clone)]
pub struct Condition {
    /// What it tests.
    pub test: Test,
    /// Holds when the test fails.
    pub invert: bool,
}

/// A conditional group: its own limit for the requests all its conditions match.
#[derive(Debug, Clone)]
pub struct Group {
    /// The limit (`None`: Unlimited).
    pub limit: Option<Quota>,
    /// Conditions, all of which must hold.
    pub conditions: Vec<Condition>,
}

/// A policy of the catalogue.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Its level.
    pub kind: PolicyKind,
    /// Its name.
    pub name: Arc<str>,
    /// The limit when no group matches (`None`: Unlimited).
    pub default_limit: Option<Quota>,
    /// Subscription policies: refuse once the quota is spent (else count only).
    pub stop_on_quota_reach: bool,
    /// Subscription policies: burst control.
    pub burst: Option<Quota>,
    /// Advanced policies: conditional groups, in order.
    pub groups: Vec<Group>,
    /// Custom policies: the counter's key template.
    pub key_template: String,
    /// As deployed (for the admin API).
    pub raw: pt::Policy,
}

/// A blocking condition's subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    /// An API: its context, with or without `/<version>`.
    Api(String),
    /// An application: `owner:name`.
    Application(String),
    /// A user: the token's subject (`user` or `user@tenant`).
    User(String),
    /// A subscription: `<context>:<version>:<owner>-<app>:<keyType>`.
    Subscription(String),
    /// A client IP (or every other one, inverted).
    Ip {
        /// The address.
        ip: IpAddr,
        /// Blocks every address but this one.
        invert: bool,
    },
    /// A client IP range (or everything outside it, inverted).
    IpRange {
        /// First address.
        start: IpAddr,
        /// Last address.
        end: IpAddr,
        /// Blocks every address outside the range.
        invert: bool,
    },
}

/// A blocking condition.
#[derive(Debug, Clone)]
pub struct Blocking {
    /// Its id.
    pub id: String,
    /// What it blocks.
    pub block: Block,
    /// As deployed (for the admin API).
    pub raw: pt::BlockingCondition,
}

/// The catalogue and the blocking conditions in use.
#[derive(Debug, Clone, Default)]
pub struct ThrottleData {
    policies: HashMap<(PolicyKind, String), Arc<Policy>>,
    /// Custom policies, in the catalogue's order.
    pub custom: Vec<Arc<Policy>>,
    /// Enabled blocking conditions.
    pub blocking: Vec<Blocking>,
    /// Every blocking condition, enabled or not (for the admin API).
    pub all_blocking: Vec<pt::BlockingCondition>,
}

/// The requester as blocking and conditions see it.
#[derive(Debug, Clone, Copy)]
pub struct Requester<'a> {
    /// Client IP, when it parses.
    pub ip: Option<IpAddr>,
    /// API context (base path) and version.
    pub api: (&'a str, &'a str),
    /// Application `owner`, `name`; empty when unauthenticated.
    pub app: (&'a str, &'a str),
    /// The token's subject ("" without a token).
    pub user: &'a str,
    /// `PRODUCTION` or `SANDBOX`.
    pub key_type: &'a str,
}

fn quota(l: Option<&pt::Limit>) -> Option<Quota> {
    l.map(|l| Quota { limit: l.request_count, window_secs: l.window_seconds.max(1) })
}

/// An address, IPv4-mapped IPv6 (a dual-stack listener's view of an IPv4
/// client) as IPv4, so that `::ffff:10.0.0.1` and `10.0.0.1` are the same.
pub fn ip(s: &str) -> Option<IpAddr> {
    s.trim().parse::<IpAddr>().ok().map(|a| a.to_canonical())
}

/// An address as a number on one line, IPv4 as IPv4-mapped IPv6.
fn ordinal(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn in_range(a: IpAddr, start: IpAddr, end: IpAddr) -> bool {
    (ordinal(start)..=ordinal(end)).contains(&ordinal(a))
}

impl ThrottleData {
    /// Checks and loads what the adapter sent.
    pub fn from_proto(d: &pt::ThrottleData) -> Result<ThrottleData, ThrottleDataError> {
        let mut out = ThrottleData::default();
        for p in &d.policies {
            let err = |reason: String| ThrottleDataError { what: "policy", name: p.name.clone(), reason };
            let kind = PolicyKind::from_protocol(&p.kind).ok_or_else(|| err(format!("unknown kind {:?}", p.kind)))?;
            let mut groups = Vec::with_capacity(p.conditional_groups.len());
            for (gi, g) in p.conditional_groups.iter().enumerate() {
                let mut conditions = Vec::with_capacity(g.conditions.len());
                for (ci, c) in g.conditions.iter().enumerate() {
                    let at = |what: &str| err(format!("conditionalGroups[{gi}].conditions[{ci}]: {what}"));
                    let re = || {
                        Regex::new(&c.value).map_err(|e| at(&format!("{:?} is not a regular expression: {e}", c.value)))
                    };
                    let test = match c.kind.as_str() {
                        "ip" => {
                            Test::Ip(ip(&c.value).ok_or_else(|| at(&format!("{:?} is not an IP address", c.value)))?)
                        }
                        "iprange" => {
                            let (s, e) = (ip(&c.start_ip), ip(&c.end_ip));
                            match (s, e) {
                                (Some(s), Some(e)) => Test::IpRange(s, e),
                                _ => return Err(at("startingIP and endingIP must be IP addresses")),
                            }
                        }
                        "header" => Test::Header(c.name.to_ascii_lowercase(), re()?),
                        "query" => Test::Query(c.name.clone(), re()?),
                        "claim" => Test::Claim(c.name.clone(), re()?),
                        other => return Err(at(&format!("unknown condition kind {other:?}"))),
                    };
                    conditions.push(Condition { test, invert: c.invert });
                }
                groups.push(Group { limit: quota(g.limit.as_ref()), conditions });
            }
            let policy = Arc::new(Policy {
                kind,
                name: p.name.as_str().into(),
                default_limit: quota(p.default_limit.as_ref()),
                stop_on_quota_reach: p.stop_on_quota_reach,
                burst: quota(p.burst.as_ref()).filter(|q| q.limit > 0),
                groups,
                key_template: p.key_template.clone(),
                raw: p.clone(),
            });
            if kind == PolicyKind::Custom {
                if policy.key_template.trim().is_empty() {
                    return Err(err("a custom policy needs a keyTemplate".into()));
                }
                out.custom.push(Arc::clone(&policy));
            }
            out.policies.insert((kind, p.name.to_ascii_lowercase()), policy);
        }
        for b in &d.blocking_conditions {
            let err = |reason: &str| ThrottleDataError {
                what: "blocking condition",
                name: b.id.clone(),
                reason: reason.to_string(),
            };
            let v = b.value.trim().to_string();
            let block = match b.kind.as_str() {
                "API" => Block::Api(v),
                "APPLICATION" => Block::Application(v),
                "USER" => Block::User(v),
                "SUBSCRIPTION" => Block::Subscription(v),
                "IP" => Block::Ip { ip: ip(&v).ok_or_else(|| err("not an IP address"))?, invert: b.invert },
                "IPRANGE" => match (ip(&b.start_ip), ip(&b.end_ip)) {
                    (Some(start), Some(end)) => Block::IpRange { start, end, invert: b.invert },
                    _ => return Err(err("startingIp and endingIp must be IP addresses")),
                },
                other => return Err(err(&format!("unknown condition type {other:?}"))),
            };
            if b.enabled {
                out.blocking.push(Blocking { id: b.id.clone(), block, raw: b.clone() });
            }
            out.all_blocking.push(b.clone());
        }
        Ok(out)
    }

    /// The policy of `kind` called `name` (any case).
    pub fn policy(&self, kind: PolicyKind, name: &str) -> Option<&Arc<Policy>> {
        self.policies.get(&(kind, name.to_ascii_lowercase()))
    }

    /// Every policy of `kind`, by name.
    pub fn policies(&self, kind: PolicyKind) -> Vec<&Arc<Policy>> {
        let mut v: Vec<&Arc<Policy>> = self.policies.iter().filter(|((k, _), _)| *k == kind).map(|(_, p)| p).collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// The first enabled blocking condition that holds for `r`.
    pub fn blocked(&self, r: &Requester<'_>) -> Option<&Blocking> {
        self.blocking.iter().find(|b| match &b.block {
            Block::Api(v) => {
                let (ctx, ver) = r.api;
                v == ctx || v.strip_prefix(ctx).and_then(|rest| rest.strip_prefix('/')).is_some_and(|x| x == ver)
            }
            Block::Application(v) => !r.app.1.is_empty() && v.split_once(':') == Some((r.app.0, r.app.1)),
            Block::User(v) => {
                !r.user.is_empty() && (v == r.user || v.strip_suffix("@carbon.super").is_some_and(|u| u == r.user))
            }
            Block::Subscription(v) => {
                !r.app.1.is_empty() && *v == format!("{}:{}:{}-{}:{}", r.api.0, r.api.1, r.app.0, r.app.1, r.key_type)
            }
            // An address that cannot be read is blocked by an inverted condition
            // ("everyone but ..."), never let through by one.
            Block::Ip { ip, invert } => r.ip.map_or(*invert, |a| (a == *ip) != *invert),
            Block::IpRange { start, end, invert } => r.ip.map_or(*invert, |a| in_range(a, *start, *end) != *invert),
        })
    }
}

/// What conditions can look at.
pub struct Facts<'a> {
    /// Client IP, when it parses.
    pub ip: Option<IpAddr>,
    /// Request headers (lower-cased names).
    pub header: &'a dyn Fn(&str) -> Option<&'a str>,
    /// A query parameter's decoded value.
    pub query: &'a dyn Fn(&str) -> Option<String>,
    /// A claim of the caller's token, as text.
    pub claim: &'a dyn Fn(&str) -> Option<&'a str>,
    /// `[enforcer.throttling]` switches: header, query, claim conditions.
    pub enabled: (bool, bool, bool),
}

impl Condition {
    /// Whether the condition holds; `None` when its kind is switched off.
    fn holds(&self, f: &Facts<'_>) -> Option<bool> {
        let found = |v: Option<&str>, re: &Regex| v.is_some_and(|v| re.is_match(v));
        let raw = match &self.test {
            Test::Ip(a) => f.ip.is_some_and(|x| x == *a),
            Test::IpRange(s, e) => f.ip.is_some_and(|x| in_range(x, *s, *e)),
            Test::Header(n, re) => f.enabled.0.then(|| found((f.header)(n), re))?,
            Test::Query(n, re) => f.enabled.1.then(|| found((f.query)(n).as_deref(), re))?,
            Test::Claim(n, re) => f.enabled.2.then(|| found((f.claim)(n), re))?,
        };
        Some(raw != self.invert)
    }
}

impl Policy {
    /// The limit for a request and the suffix of its counter: the first
    /// conditional group that matches (`_<n>`, counted from 1), else the
    /// default limit (no suffix).
    pub fn limit_for(&self, f: &Facts<'_>) -> (Option<Quota>, Option<usize>) {
        for (i, g) in self.groups.iter().enumerate() {
            if g.conditions.iter().all(|c| c.holds(f) == Some(true)) {
                return (g.limit, Some(i + 1));
            }
        }
        (self.default_limit, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(n: u64, w: u64) -> Option<pt::Limit> {
        Some(pt::Limit { request_count: n, window_seconds: w })
    }

    fn cond(kind: &str, name: &str, value: &str, invert: bool) -> pt::Condition {
        pt::Condition { kind: kind.into(), invert, name: name.into(), value: value.into(), ..Default::default() }
    }

    fn advanced() -> ThrottleData {
        ThrottleData::from_proto(&pt::ThrottleData {
            policies: vec![pt::Policy {
                kind: "advanced".into(),
                name: "Tiered".into(),
                default_limit: limit(100, 60),
                conditional_groups: vec![
                    pt::ConditionalGroup {
                        limit: limit(1, 60),
                        conditions: vec![cond("ip", "", "10.0.0.7", false)],
                        ..Default::default()
                    },
                    pt::ConditionalGroup {
                        limit: limit(2, 60),
                        conditions: vec![cond("header", "X-Plan", "^free$", false), cond("query", "debug", ".", true)],
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }],
            blocking_conditions: vec![],
        })
        .expect("valid")
    }

    fn facts<'a>(
        ip: &str,
        header: &'a dyn Fn(&str) -> Option<&'a str>,
        query: &'a dyn Fn(&str) -> Option<String>,
        on: bool,
    ) -> Facts<'a> {
        Facts { ip: ip.parse().ok(), header, query, claim: &|_| None, enabled: (on, on, on) }
    }

    #[test]
    fn the_first_matching_group_decides_and_switched_off_conditions_never_match() {
        let d = advanced();
        let p = d.policy(PolicyKind::Advanced, "tiered").expect("found in any case");
        let free = |n: &str| (n == "x-plan").then_some("free");
        let none = |_: &str| None::<String>;
        let debug = |n: &str| (n == "debug").then(|| "1".to_string());
        assert_eq!(
            p.limit_for(&facts("10.0.0.7", &free, &none, true)),
            (Some(Quota { limit: 1, window_secs: 60 }), Some(1))
        );
        assert_eq!(
            p.limit_for(&facts("10.0.0.8", &free, &none, true)),
            (Some(Quota { limit: 2, window_secs: 60 }), Some(2))
        );
        // The inverted query condition fails when the parameter is there.
        assert_eq!(p.limit_for(&facts("10.0.0.8", &free, &debug, true)).1, None);
        // Header conditions switched off: the group never matches.
        assert_eq!(
            p.limit_for(&facts("10.0.0.8", &free, &none, false)),
            (Some(Quota { limit: 100, window_secs: 60 }), None)
        );
    }

    #[test]
    fn blocking_conditions_of_each_kind() {
        let b = |kind: &str, value: &str, invert: bool| pt::BlockingCondition {
            id: kind.into(),
            kind: kind.into(),
            value: value.into(),
            invert,
            enabled: true,
            ..Default::default()
        };
        let mut range = b("IPRANGE", "", true);
        range.start_ip = "192.168.0.0".into();
        range.end_ip = "192.168.0.255".into();
        let data = |c: pt::BlockingCondition| {
            ThrottleData::from_proto(&pt::ThrottleData { policies: vec![], blocking_conditions: vec![c] })
                .expect("valid")
        };
        let r = Requester {
            ip: "192.168.0.9".parse().ok(),
            api: ("/pets", "1.0.0"),
            app: ("alice", "shop"),
            user: "bob",
            key_type: "PRODUCTION",
        };
        for (c, blocked) in [
            (b("API", "/pets", false), true),
            (b("API", "/pets/1.0.0", false), true),
            (b("API", "/pets/2.0.0", false), false),
            (b("APPLICATION", "alice:shop", false), true),
            (b("USER", "bob@carbon.super", false), true),
            (b("SUBSCRIPTION", "/pets:1.0.0:alice-shop:PRODUCTION", false), true),
            (b("SUBSCRIPTION", "/pets:1.0.0:alice-shop:SANDBOX", false), false),
            (b("IP", "192.168.0.9", false), true),
            (b("IP", "192.168.0.9", true), false),
            (range.clone(), false),
        ] {
            assert_eq!(data(c.clone()).blocked(&r).is_some(), blocked, "{c:?}");
        }
        let outside = Requester { ip: "10.1.1.1".parse().ok(), ..r };
        let mapped = Requester { ip: ip("::ffff:192.168.0.9"), ..r };
        assert!(data(b("IP", "192.168.0.9", false)).blocked(&mapped).is_some(), "IPv4-mapped IPv6 is the IPv4 address");
        let unreadable = Requester { ip: None, ..r };
        assert!(
            data(b("IP", "192.168.0.9", true)).blocked(&unreadable).is_some(),
            "inverted: an unreadable address is blocked"
        );
        assert!(data(range).blocked(&outside).is_some(), "inverted range blocks what is outside");
        let mut off = b("USER", "bob", false);
        off.enabled = false;
        assert!(data(off).blocked(&r).is_none(), "a disabled condition blocks nothing");
    }

    #[test]
    fn bad_data_is_refused_with_its_name() {
        let bad = pt::ThrottleData {
            policies: vec![pt::Policy {
                kind: "advanced".into(),
                name: "P".into(),
                conditional_groups: vec![pt::ConditionalGroup {
                    conditions: vec![cond("header", "x", "(", false)],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            blocking_conditions: vec![],
        };
        let e = ThrottleData::from_proto(&bad).expect_err("bad regex");
        assert!(e.to_string().starts_with("throttling policy \"P\": conditionalGroups[0].conditions[0]"), "{e}");
    }
}
