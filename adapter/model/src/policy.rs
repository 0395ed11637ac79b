//! Throttling policies in apictl's export format (`type: throttling policy`,
//! `apictl export/import policy rate-limiting`), the built-in policies of API
//! Manager, and blocking conditions in API Manager's admin API format
//! (`/throttling/deny-policies`).
//!
//! What a gateway cannot do is refused with the field named, never dropped:
//! Siddhi queries, bandwidth and event-count quotas, calendar months and years.

use std::collections::BTreeSet;
use std::sync::Arc;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::problem::{Problem, Problems};
use crate::value::parse_document;

pub use gateway_config::policies::PolicyKind;

/// API Manager's `data.type` of a policy of `kind`.
fn dto_type(kind: PolicyKind) -> &'static str {
    match kind {
        PolicyKind::Subscription => "SubscriptionThrottlePolicy",
        PolicyKind::Application => "ApplicationThrottlePolicy",
        PolicyKind::Advanced => "AdvancedThrottlePolicy",
        PolicyKind::Custom => "CustomRule",
    }
}

/// `requestCount` requests per `unitTime` × `timeUnit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Limit {
    /// Requests per window.
    pub request_count: u64,
    /// `sec`, `min`, `hour` or `day`.
    pub time_unit: String,
    /// Units per window.
    pub unit_time: u64,
}

impl Limit {
    /// The window, seconds.
    pub fn window_seconds(&self) -> u64 {
        unit_seconds(&self.time_unit).unwrap_or(60).saturating_mul(self.unit_time.max(1))
    }
}

fn unit_seconds(unit: &str) -> Option<u64> {
    match unit.trim().to_ascii_lowercase().as_str() {
        "s" | "sec" | "second" | "seconds" => Some(1),
        "m" | "min" | "minute" | "minutes" => Some(60),
        "h" | "hour" | "hours" => Some(3600),
        "d" | "day" | "days" => Some(86_400),
        _ => None,
    }
}

/// One condition of a conditional group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `ip`, `iprange`, `header`, `query`, `claim`.
    pub kind: String,
    /// Holds when the test fails.
    #[serde(default)]
    pub invert: bool,
    /// Header, query parameter or claim name.
    #[serde(default)]
    pub name: String,
    /// The IP, or the regular expression.
    #[serde(default)]
    pub value: String,
    /// IP range start.
    #[serde(default)]
    pub start_ip: String,
    /// IP range end.
    #[serde(default)]
    pub end_ip: String,
}

/// A conditional group of an advanced policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConditionalGroup {
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// The group's limit (`None`: Unlimited).
    pub limit: Option<Limit>,
    /// All must hold.
    pub conditions: Vec<Condition>,
}

/// A throttling policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThrottlePolicy {
    /// Level.
    pub kind: PolicyKind,
    /// Name (tiers name it).
    pub name: String,
    /// Display name.
    #[serde(default)]
    pub display_name: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// The limit (`None`: Unlimited).
    pub default_limit: Option<Limit>,
    /// Subscription: refuse once spent (else count only).
    #[serde(default)]
    pub stop_on_quota_reach: bool,
    /// Subscription: burst control (`rateLimitCount` per `rateLimitTimeUnit`).
    #[serde(default)]
    pub burst: Option<Limit>,
    /// Advanced: conditional groups.
    #[serde(default)]
    pub conditional_groups: Vec<ConditionalGroup>,
    /// Custom: key template.
    #[serde(default)]
    pub key_template: String,
    /// Subscription: GraphQL query depth limit (0: none).
    #[serde(default)]
    pub graphql_max_depth: u32,
    /// Subscription: GraphQL query complexity limit (0: none).
    #[serde(default)]
    pub graphql_max_complexity: u32,
    /// Built into the gateway (API Manager's defaults): cannot be removed.
    #[serde(default)]
    pub builtin: bool,
}

/// API Manager's default policies, as every environment has them.
pub fn builtin_policies() -> Vec<ThrottlePolicy> {
    let p = |kind: PolicyKind, name: &str, count: u64, description: &str| ThrottlePolicy {
        kind,
        name: name.into(),
        display_name: name.into(),
        description: description.into(),
        default_limit: (count > 0).then(|| Limit { request_count: count, time_unit: "min".into(), unit_time: 1 }),
        stop_on_quota_reach: true,
        burst: None,
        conditional_groups: Vec::new(),
        key_template: String::new(),
        graphql_max_depth: 0,
        graphql_max_complexity: 0,
        builtin: true,
    };
    use PolicyKind::*;
    vec![
        p(Advanced, "10KPerMin", 10_000, "Allows 10000 requests per minute"),
        p(Advanced, "20KPerMin", 20_000, "Allows 20000 requests per minute"),
        p(Advanced, "50KPerMin", 50_000, "Allows 50000 requests per minute"),
        p(Advanced, "Unlimited", 0, "Allows unlimited requests"),
        p(Application, "10PerMin", 10, "Allows 10 request per minute"),
        p(Application, "20PerMin", 20, "Allows 20 request per minute"),
        p(Application, "50PerMin", 50, "Allows 50 request per minute"),
        p(Application, "Unlimited", 0, "Allows unlimited requests"),
        p(Subscription, "Gold", 5000, "Allows 5000 requests per minute"),
        p(Subscription, "Silver", 2000, "Allows 2000 requests per minute"),
        p(Subscription, "Bronze", 1000, "Allows 1000 requests per minute"),
        p(Subscription, "Unauthenticated", 500, "Allows 500 request per minute"),
        p(Subscription, "Unlimited", 0, "Allows unlimited requests"),
    ]
}

/// Names of the advanced policies deployed beyond the built-in and
/// `<n>Per<Unit>` names, which API projects may name as tiers (lower-cased).
/// Shared between the catalogue, which updates it, and project parsing.
#[derive(Debug, Clone, Default)]
pub struct KnownTiers(Arc<RwLock<BTreeSet<String>>>);

impl KnownTiers {
    /// Whether `name` is a deployed advanced policy.
    pub fn contains(&self, name: &str) -> bool {
        self.0.read().contains(&name.to_ascii_lowercase())
    }

    /// Replaces the names.
    pub fn set(&self, names: impl IntoIterator<Item = String>) {
        *self.0.write() = names.into_iter().map(|n| n.to_ascii_lowercase()).collect();
    }
}

struct Reader<'a> {
    file: &'a str,
    problems: Vec<Problem>,
}

impl Reader<'_> {
    fn err(&mut self, field: &str, reason: impl Into<String>) {
        self.problems.push(Problem::new(self.file, field, reason));
    }

    fn text(&mut self, v: &Value, field: &str) -> String {
        match v.get(field.rsplit('.').next().unwrap_or(field)) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.trim().to_string(),
            Some(other) => {
                self.err(field, format!("expected a string, found {other}"));
                String::new()
            }
        }
    }

    fn count(&mut self, v: Option<&Value>, field: &str) -> Option<u64> {
        match v {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) if n.as_u64().is_some() => n.as_u64(),
            Some(Value::String(s)) if s.trim().parse::<u64>().is_ok() => s.trim().parse().ok(),
            Some(other) => {
                self.err(field, format!("expected a whole number of 0 or more, found {other}"));
                None
            }
        }
    }

    fn bool(&mut self, v: Option<&Value>, field: &str) -> bool {
        match v {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                self.err(field, format!("expected true or false, found {other}"));
                false
            }
        }
    }

    /// A limit object (`{type, requestCount: {timeUnit, unitTime, requestCount}}`).
    fn limit(&mut self, v: Option<&Value>, field: &str) -> Option<Limit> {
        let v = v.filter(|v| !v.is_null())?;
        let kind = v.get("type").and_then(Value::as_str).unwrap_or("REQUESTCOUNTLIMIT");
        if kind != "REQUESTCOUNTLIMIT" {
            let what = match kind {
                "BANDWIDTHLIMIT" => {
                    "bandwidth quotas are not supported (the gateway's checks never see response sizes)"
                }
                "EVENTCOUNTLIMIT" => "event-count quotas are not supported",
                _ => "expected REQUESTCOUNTLIMIT",
            };
            self.err(&format!("{field}.type"), format!("{kind}: {what}"));
            return None;
        }
        let Some(rc) = v.get("requestCount").filter(|r| r.is_object()) else {
            self.err(&format!("{field}.requestCount"), "missing: {timeUnit, unitTime, requestCount}");
            return None;
        };
        let at = |k: &str| format!("{field}.requestCount.{k}");
        let count = self.count(rc.get("requestCount"), &at("requestCount"));
        let unit_time = self.count(rc.get("unitTime"), &at("unitTime")).unwrap_or(1);
        let unit = rc.get("timeUnit").and_then(Value::as_str).unwrap_or("").trim().to_string();
        if unit_seconds(&unit).is_none() {
            let why = if ["month", "year", "months", "years"].contains(&unit.to_ascii_lowercase().as_str()) {
                "calendar months and years are not supported: use a number of days"
            } else {
                "expected sec, min, hour or day"
            };
            self.err(&at("timeUnit"), format!("{unit:?}: {why}"));
            return None;
        }
        if unit_time == 0 {
            self.err(&at("unitTime"), "must be at least 1");
            return None;
        }
        Some(Limit { request_count: count?, time_unit: unit, unit_time })
    }

    fn condition(&mut self, c: &Value, field: &str) -> Option<Condition> {
        let kind = c.get("type").and_then(Value::as_str).unwrap_or("");
        let invert = self.bool(c.get("invertCondition"), &format!("{field}.invertCondition"));
        let part = |k: &str| c.get(k).cloned().unwrap_or(Value::Null);
        let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").trim().to_string();
        let out = match kind {
            "IPCONDITION" => {
                let ip = part("ipCondition");
                match s(&ip, "ipConditionType").as_str() {
                    "IPSPECIFIC" => Condition {
                        kind: "ip".into(),
                        invert,
                        name: String::new(),
                        value: s(&ip, "specificIP"),
                        start_ip: String::new(),
                        end_ip: String::new(),
                    },
                    "IPRANGE" => Condition {
                        kind: "iprange".into(),
                        invert,
                        name: String::new(),
                        value: String::new(),
                        start_ip: s(&ip, "startingIP"),
                        end_ip: s(&ip, "endingIP"),
                    },
                    other => {
                        self.err(
                            &format!("{field}.ipCondition.ipConditionType"),
                            format!("{other:?}: expected IPSPECIFIC or IPRANGE"),
                        );
                        return None;
                    }
                }
            }
            "HEADERCONDITION" => {
                let h = part("headerCondition");
                Condition {
                    kind: "header".into(),
                    invert,
                    name: s(&h, "headerName"),
                    value: s(&h, "headerValue"),
                    start_ip: String::new(),
                    end_ip: String::new(),
                }
            }
            "QUERYPARAMETERCONDITION" => {
                let q = part("queryParameterCondition");
                Condition {
                    kind: "query".into(),
                    invert,
                    name: s(&q, "parameterName"),
                    value: s(&q, "parameterValue"),
                    start_ip: String::new(),
                    end_ip: String::new(),
                }
            }
            "JWTCLAIMSCONDITION" => {
                let j = part("jwtClaimsCondition");
                Condition {
                    kind: "claim".into(),
                    invert,
                    name: s(&j, "claimUrl"),
                    value: s(&j, "attribute"),
                    start_ip: String::new(),
                    end_ip: String::new(),
                }
            }
            other => {
                self.err(
                    &format!("{field}.type"),
                    format!("{other:?}: expected IPCONDITION, HEADERCONDITION, QUERYPARAMETERCONDITION or JWTCLAIMSCONDITION"),
                );
                return None;
            }
        };
        match out.kind.as_str() {
            "ip" if out.value.parse::<std::net::IpAddr>().is_err() => {
                self.err(&format!("{field}.ipCondition.specificIP"), format!("{:?} is not an IP address", out.value));
                return None;
            }
            "iprange" => {
                for (k, v) in [("startingIP", &out.start_ip), ("endingIP", &out.end_ip)] {
                    if v.parse::<std::net::IpAddr>().is_err() {
                        self.err(&format!("{field}.ipCondition.{k}"), format!("{v:?} is not an IP address"));
                        return None;
                    }
                }
            }
            "header" | "query" | "claim" => {
                if out.name.is_empty() {
                    self.err(field, "the header, parameter or claim name is empty");
                    return None;
                }
                if let Err(e) = regex::Regex::new(&out.value) {
                    self.err(field, format!("{:?} is not a regular expression: {e}", out.value));
                    return None;
                }
            }
            _ => {}
        }
        Some(out)
    }
}

/// Parses one policy file in apictl's export format (YAML or JSON):
/// `{type: throttling policy, subtype, version, data: {...}}`. `file` names
/// it in problems.
pub fn parse_policy(file: &str, bytes: &[u8]) -> Result<ThrottlePolicy, Problems> {
    let mut r = Reader { file, problems: Vec::new() };
    let doc = parse_document(bytes).map_err(|e| Problems::one(Problem::new(file, "", e)))?;
    if doc.get("type").and_then(Value::as_str).map(str::trim) != Some("throttling policy") {
        r.err("type", "expected \"throttling policy\" (a file of apictl export policy rate-limiting)");
        return Err(Problems(r.problems));
    }
    let subtype = doc.get("subtype").and_then(Value::as_str).unwrap_or("").trim();
    let kind = match subtype {
        "subscription policy" => PolicyKind::Subscription,
        "application policy" => PolicyKind::Application,
        "advanced policy" => PolicyKind::Advanced,
        "custom rule" | "custom policy" => PolicyKind::Custom,
        other => {
            r.err(
                "subtype",
                format!("{other:?}: expected subscription policy, application policy, advanced policy or custom rule"),
            );
            return Err(Problems(r.problems));
        }
    };
    let Some(data) = doc.get("data").filter(|d| d.is_object()) else {
        r.err("data", "missing: the policy");
        return Err(Problems(r.problems));
    };
    let name = r.text(data, "data.policyName");
    if name.is_empty() {
        r.err("data.policyName", "must not be empty");
    } else if name.chars().any(|c| c.is_control() || c == '/' || c == '"') {
        r.err("data.policyName", format!("{name:?}: control characters, '/' and '\"' are not allowed"));
    }
    let display_name = match r.text(data, "data.displayName") {
        d if d.is_empty() => name.clone(),
        d => d,
    };
    let description = r.text(data, "data.description");
    let default_limit = r.limit(data.get("defaultLimit"), "data.defaultLimit");
    let mut p = ThrottlePolicy {
        kind,
        name,
        display_name,
        description,
        default_limit,
        stop_on_quota_reach: true,
        burst: None,
        conditional_groups: Vec::new(),
        key_template: String::new(),
        graphql_max_depth: 0,
        graphql_max_complexity: 0,
        builtin: false,
    };
    match kind {
        PolicyKind::Subscription => {
            if let Some(v) = data.get("stopOnQuotaReach").filter(|v| !v.is_null()) {
                p.stop_on_quota_reach = r.bool(Some(v), "data.stopOnQuotaReach");
            }
            for (key, slot) in
                [("graphQLMaxDepth", &mut p.graphql_max_depth), ("graphQLMaxComplexity", &mut p.graphql_max_complexity)]
            {
                let at = format!("data.{key}");
                if let Some(v) = r.count(data.get(key), &at) {
                    *slot = u32::try_from(v).unwrap_or(u32::MAX);
                }
            }
            let count = r.count(data.get("rateLimitCount"), "data.rateLimitCount").unwrap_or(0);
            if count > 0 {
                let unit = r.text(data, "data.rateLimitTimeUnit");
                match unit.as_str() {
                    "sec" | "min" => p.burst = Some(Limit { request_count: count, time_unit: unit, unit_time: 1 }),
                    other => {
                        r.err("data.rateLimitTimeUnit", format!("{other:?}: expected sec or min with rateLimitCount"))
                    }
                }
            }
        }
        PolicyKind::Advanced => {
            let groups = data.get("conditionalGroups").cloned().unwrap_or(Value::Null);
            for (gi, g) in groups.as_array().map(Vec::as_slice).unwrap_or(&[]).iter().enumerate() {
                let at = format!("data.conditionalGroups[{gi}]");
                let conds = g.get("conditions").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
                if conds.is_empty() {
                    r.err(&format!("{at}.conditions"), "a conditional group needs at least one condition");
                    continue;
                }
                let conditions: Vec<Condition> = conds
                    .iter()
                    .enumerate()
                    .filter_map(|(ci, c)| r.condition(c, &format!("{at}.conditions[{ci}]")))
                    .collect();
                let limit = r.limit(g.get("limit"), &format!("{at}.limit"));
                let description = g.get("description").and_then(Value::as_str).unwrap_or("").to_string();
                p.conditional_groups.push(ConditionalGroup { description, limit, conditions });
            }
        }
        PolicyKind::Custom => {
            p.key_template = r.text(data, "data.keyTemplate");
            if p.key_template.is_empty() {
                r.err("data.keyTemplate", "must not be empty: the counter's key, e.g. $userId:$apiContext");
            }
            if !r.text(data, "data.siddhiQuery").is_empty() {
                r.err(
                    "data.siddhiQuery",
                    "Siddhi queries cannot run in this gateway: remove siddhiQuery and give defaultLimit \
                     {type: REQUESTCOUNTLIMIT, requestCount: {timeUnit, unitTime, requestCount}}; the policy then \
                     applies to every request, counted per keyTemplate",
                );
            }
            if data.get("defaultLimit").is_none_or(Value::is_null) {
                r.err(
                    "data.defaultLimit",
                    "a custom policy needs a limit: {type: REQUESTCOUNTLIMIT, requestCount: {...}}",
                );
            }
        }
        PolicyKind::Application => {}
    }
    if r.problems.is_empty() { Ok(p) } else { Err(Problems(r.problems)) }
}

fn limit_json(l: Option<&Limit>) -> Value {
    match l {
        Some(l) => json!({
            "type": "REQUESTCOUNTLIMIT",
            "requestCount": {"timeUnit": l.time_unit, "unitTime": l.unit_time, "requestCount": l.request_count},
            "bandwidth": null, "eventCount": null,
        }),
        None => json!({
            "type": "REQUESTCOUNTLIMIT",
            "requestCount": {"timeUnit": "min", "unitTime": 1, "requestCount": 2_147_483_647},
            "bandwidth": null, "eventCount": null,
        }),
    }
}

/// The policy in apictl's export format (`apictl export policy rate-limiting`):
/// importing the document again gives the same policy.
pub fn export_document(p: &ThrottlePolicy) -> Value {
    let mut data = json!({
        "policyName": p.name,
        "displayName": if p.display_name.is_empty() { &p.name } else { &p.display_name },
        "description": p.description,
        "isDeployed": true,
        "type": dto_type(p.kind),
    });
    if p.kind != PolicyKind::Custom {
        data["defaultLimit"] = limit_json(p.default_limit.as_ref());
    }
    match p.kind {
        PolicyKind::Subscription => {
            data["rateLimitCount"] = json!(p.burst.as_ref().map_or(0, |b| b.request_count));
            data["rateLimitTimeUnit"] = json!(p.burst.as_ref().map(|b| b.time_unit.clone()));
            data["stopOnQuotaReach"] = json!(p.stop_on_quota_reach);
            data["graphQLMaxDepth"] = json!(p.graphql_max_depth);
            data["graphQLMaxComplexity"] = json!(p.graphql_max_complexity);
            data["billingPlan"] = json!("FREE");
            data["customAttributes"] = json!([]);
        }
        PolicyKind::Advanced => {
            data["conditionalGroups"] = p
                .conditional_groups
                .iter()
                .map(|g| {
                    let conditions: Vec<Value> = g
                        .conditions
                        .iter()
                        .map(|c| match c.kind.as_str() {
                            "ip" => json!({"type": "IPCONDITION", "invertCondition": c.invert,
                                "ipCondition": {"ipConditionType": "IPSPECIFIC", "specificIP": c.value}}),
                            "iprange" => json!({"type": "IPCONDITION", "invertCondition": c.invert,
                                "ipCondition": {"ipConditionType": "IPRANGE", "startingIP": c.start_ip, "endingIP": c.end_ip}}),
                            "header" => json!({"type": "HEADERCONDITION", "invertCondition": c.invert,
                                "headerCondition": {"headerName": c.name, "headerValue": c.value}}),
                            "query" => json!({"type": "QUERYPARAMETERCONDITION", "invertCondition": c.invert,
                                "queryParameterCondition": {"parameterName": c.name, "parameterValue": c.value}}),
                            _ => json!({"type": "JWTCLAIMSCONDITION", "invertCondition": c.invert,
                                "jwtClaimsCondition": {"claimUrl": c.name, "attribute": c.value}}),
                        })
                        .collect();
                    json!({"description": g.description, "conditions": conditions, "limit": limit_json(g.limit.as_ref())})
                })
                .collect();
        }
        PolicyKind::Custom => {
            data["keyTemplate"] = json!(p.key_template);
            data["defaultLimit"] = limit_json(p.default_limit.as_ref());
        }
        PolicyKind::Application => {}
    }
    json!({"type": "throttling policy", "subtype": p.kind.subtype(), "version": "v4.1.0", "data": data})
}

/// A blocking condition (API Manager's deny policy).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockingCondition {
    /// Its id (`conditionId`).
    pub condition_id: String,
    /// `API`, `APPLICATION`, `USER`, `SUBSCRIPTION`, `IP`, `IPRANGE`.
    pub condition_type: String,
    /// The subject (API context, `owner:app`, user, subscription key, IP);
    /// empty for `IPRANGE`.
    #[serde(default)]
    pub value: String,
    /// `IPRANGE`: first address.
    #[serde(default)]
    pub starting_ip: String,
    /// `IPRANGE`: last address.
    #[serde(default)]
    pub ending_ip: String,
    /// `IP`, `IPRANGE`: block everything else instead.
    #[serde(default)]
    pub invert: bool,
    /// In force.
    pub condition_status: bool,
}

impl BlockingCondition {
    /// API Manager's `conditionValue`: a string, or `{fixedIp, invert}` /
    /// `{startingIp, endingIp, invert}` for IP conditions.
    pub fn condition_value(&self) -> Value {
        match self.condition_type.as_str() {
            "IP" => json!({"fixedIp": self.value, "invert": self.invert}),
            "IPRANGE" => json!({"startingIp": self.starting_ip, "endingIp": self.ending_ip, "invert": self.invert}),
            _ => json!(self.value),
        }
    }

    /// As API Manager's admin API answers it.
    pub fn to_json(&self) -> Value {
        json!({
            "conditionId": self.condition_id, "conditionType": self.condition_type,
            "conditionValue": self.condition_value(), "conditionStatus": self.condition_status,
        })
    }
}

/// Parses a deny-policy body: `{conditionType, conditionValue, conditionStatus}`.
/// `id` becomes its `conditionId`.
pub fn parse_blocking_condition(bytes: &[u8], id: String) -> Result<BlockingCondition, Problems> {
    let bad = |field: &str, reason: String| Problems::one(Problem::new("", field, reason));
    let v: Value = serde_json::from_slice(bytes).map_err(|e| bad("", format!("request body is not JSON: {e}")))?;
    let Some(o) = v.as_object() else { return Err(bad("", "expected a JSON object".into())) };
    for k in o.keys() {
        if !["conditionType", "conditionValue", "conditionStatus", "conditionId"].contains(&k.as_str()) {
            return Err(bad(k, "unknown property (expected conditionType, conditionValue, conditionStatus)".into()));
        }
    }
    let kind = o.get("conditionType").and_then(Value::as_str).unwrap_or("").trim().to_ascii_uppercase();
    let status = match o.get("conditionStatus") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(other) => return Err(bad("conditionStatus", format!("expected true or false, found {other}"))),
    };
    let value = o.get("conditionValue").cloned().unwrap_or(Value::Null);
    let mut c = BlockingCondition {
        condition_id: id,
        condition_type: kind.clone(),
        value: String::new(),
        starting_ip: String::new(),
        ending_ip: String::new(),
        invert: false,
        condition_status: status,
    };
    let ip = |field: &str, v: Option<&Value>| -> Result<String, Problems> {
        let s = v.and_then(Value::as_str).unwrap_or("").trim().to_string();
        s.parse::<std::net::IpAddr>().map(|_| s.clone()).map_err(|_| bad(field, format!("{s:?} is not an IP address")))
    };
    let invert = |v: &Value| v.get("invert").and_then(Value::as_bool).unwrap_or(false);
    match kind.as_str() {
        "API" | "APPLICATION" | "USER" | "SUBSCRIPTION" => {
            let s = value.as_str().unwrap_or("").trim().to_string();
            if s.is_empty() {
                return Err(bad("conditionValue", format!("a {kind} condition needs a non-empty string")));
            }
            let parts = s.split(':').count();
            if kind == "APPLICATION" && parts != 2 {
                return Err(bad("conditionValue", format!("{s:?}: expected <owner>:<application name>")));
            }
            if kind == "SUBSCRIPTION" && parts < 4 {
                return Err(bad(
                    "conditionValue",
                    format!("{s:?}: expected <context>:<version>:<owner>-<application>:<keyType>"),
                ));
            }
            if kind == "API" && !s.starts_with('/') {
                return Err(bad("conditionValue", format!("{s:?}: expected the API's context, e.g. /pets/1.0.0")));
            }
            c.value = s;
        }
        "IP" => {
            let v = if value.is_string() { json!({"fixedIp": value}) } else { value.clone() };
            c.value = ip("conditionValue.fixedIp", v.get("fixedIp"))?;
            c.invert = invert(&v);
        }
        "IPRANGE" => {
            c.starting_ip = ip("conditionValue.startingIp", value.get("startingIp"))?;
            c.ending_ip = ip("conditionValue.endingIp", value.get("endingIp"))?;
            c.invert = invert(&value);
        }
        other => {
            return Err(bad(
                "conditionType",
                format!("{other:?}: expected API, APPLICATION, USER, SUBSCRIPTION, IP or IPRANGE"),
            ));
        }
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOLD_EXPORT: &str = "type: throttling policy
subtype: subscription policy
version: v4.1.0
data:
  policyId: 15797f4c-3742-4909-920c-13f164fd2b1c
  policyName: Silver2
  displayName: Silver2
  description: Allows 2000 requests per minute
  isDeployed: true
  type: SubscriptionThrottlePolicy
  graphQLMaxComplexity: 0
  graphQLMaxDepth: 0
  defaultLimit:
    type: REQUESTCOUNTLIMIT
    requestCount:
      timeUnit: min
      unitTime: 1
      requestCount: 2000
    bandwidth: null
    eventCount: null
  monetization: null
  rateLimitCount: 10
  rateLimitTimeUnit: sec
  subscriberCount: 0
  customAttributes: []
  stopOnQuotaReach: false
  billingPlan: FREE
  permissions: null
";

    #[test]
    fn an_apictl_export_is_read_and_written_back() {
        let p = parse_policy("Subscription-Silver2.yaml", GOLD_EXPORT.as_bytes()).expect("valid");
        assert_eq!(p.kind, PolicyKind::Subscription);
        assert_eq!(p.default_limit, Some(Limit { request_count: 2000, time_unit: "min".into(), unit_time: 1 }));
        assert_eq!(p.burst, Some(Limit { request_count: 10, time_unit: "sec".into(), unit_time: 1 }));
        assert!(!p.stop_on_quota_reach);
        let again = serde_json::to_vec(&export_document(&p)).expect("json");
        assert_eq!(parse_policy("x.json", &again).expect("round trip"), p);
    }

    #[test]
    fn advanced_policies_with_conditional_groups_round_trip() {
        let doc = r#"{"type":"throttling policy","subtype":"advanced policy","data":{"policyName":"Tiered",
            "defaultLimit":{"type":"REQUESTCOUNTLIMIT","requestCount":{"timeUnit":"min","unitTime":1,"requestCount":100}},
            "conditionalGroups":[{"description":"office","conditions":[
              {"type":"IPCONDITION","invertCondition":true,"ipCondition":{"ipConditionType":"IPRANGE","startingIP":"10.0.0.0","endingIP":"10.0.0.255"}},
              {"type":"HEADERCONDITION","headerCondition":{"headerName":"X-Plan","headerValue":"^free$"}}],
              "limit":{"type":"REQUESTCOUNTLIMIT","requestCount":{"timeUnit":"hour","unitTime":2,"requestCount":5}}}]}}"#;
        let p = parse_policy("a.json", doc.as_bytes()).expect("valid");
        assert_eq!(p.conditional_groups.len(), 1);
        assert_eq!(p.conditional_groups[0].conditions[0].kind, "iprange");
        assert!(p.conditional_groups[0].conditions[0].invert);
        assert_eq!(p.conditional_groups[0].limit.as_ref().map(Limit::window_seconds), Some(7200));
        let again = serde_json::to_vec(&export_document(&p)).expect("json");
        assert_eq!(parse_policy("x.json", &again).expect("round trip"), p);
    }

    #[test]
    fn what_cannot_be_enforced_is_refused_with_the_field() {
        let msg = |doc: &str| parse_policy("p.yaml", doc.as_bytes()).expect_err("refused").to_string();
        let m = msg(
            "type: throttling policy\nsubtype: custom rule\ndata:\n  policyName: C\n  keyTemplate: $userId\n  siddhiQuery: FROM RequestStream SELECT 1\n",
        );
        assert!(m.contains("p.yaml: data.siddhiQuery: Siddhi queries cannot run"), "{m}");
        let m = msg(
            "type: throttling policy\nsubtype: subscription policy\ndata:\n  policyName: B\n  defaultLimit:\n    type: BANDWIDTHLIMIT\n",
        );
        assert!(m.contains("data.defaultLimit.type: BANDWIDTHLIMIT: bandwidth quotas are not supported"), "{m}");
        let m = msg(
            "type: throttling policy\nsubtype: subscription policy\ndata:\n  policyName: M\n  defaultLimit:\n    requestCount: {timeUnit: month, unitTime: 1, requestCount: 5}\n",
        );
        assert!(m.contains("calendar months and years are not supported"), "{m}");
        let m = msg("type: api\n");
        assert!(m.contains("p.yaml: type: expected \"throttling policy\""), "{m}");
        let m = msg(
            "type: throttling policy\nsubtype: advanced policy\ndata:\n  policyName: A\n  conditionalGroups:\n  - conditions:\n    - type: HEADERCONDITION\n      headerCondition: {headerName: x, headerValue: '('}\n",
        );
        assert!(m.contains("data.conditionalGroups[0].conditions[0]: \"(\" is not a regular expression"), "{m}");
    }

    #[test]
    fn blocking_conditions_in_api_managers_format() {
        let c = parse_blocking_condition(
            br#"{"conditionType":"IP","conditionValue":{"fixedIp":"10.1.1.1","invert":true},"conditionStatus":true}"#,
            "1".into(),
        )
        .expect("valid");
        assert_eq!((c.value.as_str(), c.invert), ("10.1.1.1", true));
        assert_eq!(c.to_json()["conditionValue"], json!({"fixedIp": "10.1.1.1", "invert": true}));
        let c =
            parse_blocking_condition(br#"{"conditionType":"APPLICATION","conditionValue":"admin:shop"}"#, "2".into())
                .expect("valid");
        assert!(c.condition_status, "in force unless said otherwise");
        for (body, field) in [
            (r#"{"conditionType":"IP","conditionValue":{"fixedIp":"nope"}}"#, "conditionValue.fixedIp"),
            (r#"{"conditionType":"APPLICATION","conditionValue":"shop"}"#, "conditionValue"),
            (r#"{"conditionType":"TEAM","conditionValue":"x"}"#, "conditionType"),
            (r#"{"conditionType":"USER","conditionValue":"x","extra":1}"#, "extra"),
        ] {
            let e = parse_blocking_condition(body.as_bytes(), "3".into()).expect_err(body);
            assert_eq!(e.0[0].field, field, "{body}");
        }
    }
}
