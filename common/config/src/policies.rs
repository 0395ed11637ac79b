//! Throttling tiers by name: API Manager's built-in policies, which Choreo
//! Connect users name in projects and tokens, and the `<n>Per<Unit>` names
//! (`5PerMin`, `10KPerMin`, Choreo's `10PerMinute` from `throttlingLimit`).
//! The levels of the policy catalogue ([`PolicyKind`]) are shared by the
//! adapter, which keeps the catalogue, and the enforcer, which counts with it.

/// A policy's level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyKind {
    /// Subscription (business plan): per application and API.
    Subscription,
    /// Application: per application and user.
    Application,
    /// Advanced: the tier of an API or a resource.
    Advanced,
    /// Custom: a key template over every request.
    Custom,
}

impl PolicyKind {
    /// `subscription`, `application`, `advanced`, `custom`.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyKind::Subscription => "subscription",
            PolicyKind::Application => "application",
            PolicyKind::Advanced => "advanced",
            PolicyKind::Custom => "custom",
        }
    }

    /// A kind as API Manager and apictl name it: `sub`/`subscription`,
    /// `app`/`application`, `advanced`/`api`, `custom`/`global`.
    pub fn parse(s: &str) -> Option<PolicyKind> {
        match s.trim().to_ascii_lowercase().as_str() {
            "sub" | "subscription" => Some(PolicyKind::Subscription),
            "app" | "application" => Some(PolicyKind::Application),
            "advanced" | "api" => Some(PolicyKind::Advanced),
            "custom" | "global" => Some(PolicyKind::Custom),
            _ => None,
        }
    }

    /// A kind exactly as the adapter sends it to the enforcer
    /// (proto/wso2/discovery/throttle.proto): [`PolicyKind::as_str`]'s names.
    pub fn from_protocol(s: &str) -> Option<PolicyKind> {
        [PolicyKind::Subscription, PolicyKind::Application, PolicyKind::Advanced, PolicyKind::Custom]
            .into_iter()
            .find(|k| k.as_str() == s)
    }

    /// apictl's `subtype` of the export file.
    pub fn subtype(self) -> &'static str {
        match self {
            PolicyKind::Subscription => "subscription policy",
            PolicyKind::Application => "application policy",
            PolicyKind::Advanced => "advanced policy",
            PolicyKind::Custom => "custom rule",
        }
    }

    /// The title used in messages (`Subscription`, ...).
    pub fn title(self) -> &'static str {
        match self {
            PolicyKind::Subscription => "Subscription",
            PolicyKind::Application => "Application",
            PolicyKind::Advanced => "Advanced",
            PolicyKind::Custom => "Custom",
        }
    }
}

/// What a tier allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// Not counted.
    Unlimited,
    /// At most `limit` requests per window of `window_secs` seconds.
    Quota {
        /// Requests per window.
        limit: u64,
        /// Window length, seconds.
        window_secs: u64,
    },
}

/// API Manager's built-in policies (advanced, subscription, application).
const BUILTIN: &[(&str, u64, u64)] = &[
    // Subscription tiers.
    ("Gold", 5000, 60),
    ("Silver", 2000, 60),
    ("Bronze", 1000, 60),
    ("Unauthenticated", 500, 60),
    // Advanced (API and resource) tiers.
    ("10KPerMin", 10_000, 60),
    ("20KPerMin", 20_000, 60),
    ("50KPerMin", 50_000, 60),
    // Application tiers.
    ("10PerMin", 10, 60),
    ("20PerMin", 20, 60),
    ("50PerMin", 50, 60),
];

/// The tier called `name`: a built-in policy, `Unlimited`, or a
/// `<count>[K]Per<Unit>` name (unit `Sec`, `Second`, `Min`, `Minute`,
/// `Hour`, `Day`; any case). `None` when the name means nothing.
pub fn tier(name: &str) -> Option<Tier> {
    let name = name.trim();
    if name.eq_ignore_ascii_case("Unlimited") {
        return Some(Tier::Unlimited);
    }
    if let Some((_, limit, window_secs)) = BUILTIN.iter().find(|(n, _, _)| n.eq_ignore_ascii_case(name)) {
        return Some(Tier::Quota { limit: *limit, window_secs: *window_secs });
    }
    let lower = name.to_ascii_lowercase();
    let (count, unit) = lower.split_once("per")?;
    let (digits, thousands) = match count.strip_suffix('k') {
        Some(d) => (d, 1000),
        None => (count, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let limit = digits.parse::<u64>().ok()?.checked_mul(thousands)?;
    let window_secs = match unit {
        "sec" | "second" => 1,
        "min" | "minute" => 60,
        "hour" => 3600,
        "day" => 86_400,
        _ => return None,
    };
    Some(Tier::Quota { limit, window_secs })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_and_generated_names() {
        assert_eq!(tier("Gold"), Some(Tier::Quota { limit: 5000, window_secs: 60 }));
        assert_eq!(tier("unlimited"), Some(Tier::Unlimited));
        assert_eq!(tier("10KPerMin"), Some(Tier::Quota { limit: 10_000, window_secs: 60 }));
        assert_eq!(tier("5PerMin"), Some(Tier::Quota { limit: 5, window_secs: 60 }));
        assert_eq!(tier("10PerMinute"), Some(Tier::Quota { limit: 10, window_secs: 60 }));
        assert_eq!(tier("3PerHour"), Some(Tier::Quota { limit: 3, window_secs: 3600 }));
        assert_eq!(tier("100PerDay"), Some(Tier::Quota { limit: 100, window_secs: 86_400 }));
        assert_eq!(tier("2PerSecond"), Some(Tier::Quota { limit: 2, window_secs: 1 }));
        for bad in ["Platinum", "PerMin", "5PerFortnight", "-1PerMin", "5 PerMin", "", "KPerMin"] {
            assert_eq!(tier(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn policy_kinds_by_api_manager_names_and_protocol_names() {
        assert_eq!(PolicyKind::parse(" Sub "), Some(PolicyKind::Subscription));
        assert_eq!(PolicyKind::parse("global"), Some(PolicyKind::Custom));
        assert_eq!(PolicyKind::from_protocol("advanced"), Some(PolicyKind::Advanced));
        assert_eq!(PolicyKind::from_protocol("sub"), None, "the protocol uses the full names only");
    }
}
