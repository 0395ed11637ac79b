//! What the enforcer decides: let through (with header changes) or answer,
//! and who the caller was.

use std::borrow::Cow;

use crate::deny::Deny;

/// Which cluster a caller's credentials select (Choreo Connect's `keytype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyType {
    /// The production endpoints.
    Production,
    /// The sandbox endpoints.
    Sandbox,
}

impl KeyType {
    /// From a `keytype` claim (any case).
    pub fn parse(s: &str) -> Option<KeyType> {
        if s.eq_ignore_ascii_case("PRODUCTION") {
            Some(KeyType::Production)
        } else if s.eq_ignore_ascii_case("SANDBOX") {
            Some(KeyType::Sandbox)
        } else {
            None
        }
    }

    /// `PRODUCTION` or `SANDBOX`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Production => "PRODUCTION",
            KeyType::Sandbox => "SANDBOX",
        }
    }
}

/// Which authenticator let the caller in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthType {
    /// An OAuth2 JWT.
    Jwt,
    /// An API key.
    ApiKey,
    /// An internal key.
    InternalKey,
    /// A client certificate alone (mandatory mutual TLS without application security).
    Mtls,
    /// Security disabled, or a prototyped API.
    Unsecured,
}

impl AuthType {
    /// Choreo Connect's names (analytics, backend JWT).
    pub fn as_str(self) -> &'static str {
        match self {
            AuthType::Jwt => "JWT",
            AuthType::ApiKey => "API Key",
            AuthType::InternalKey => "Internal Key",
            AuthType::Mtls => "mtls",
            AuthType::Unsecured => "Unsecured",
        }
    }
}

/// Who was let in (or what was known when refusing), for headers, metadata and analytics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuthInfo {
    /// API UUID.
    pub api_id: String,
    /// API name.
    pub api_name: String,
    /// API version.
    pub api_version: String,
    /// API base path.
    pub api_context: String,
    /// API type.
    pub api_type: String,
    /// Resource template.
    pub resource: String,
    /// The authenticator that let the caller in.
    pub auth_type: Option<AuthType>,
    /// Application name.
    pub app_name: String,
    /// Application UUID.
    pub app_id: String,
    /// Application owner.
    pub app_owner: String,
    /// The cluster the credentials selected.
    pub key_type: Option<KeyType>,
    /// End user (`sub`; `anonymous` when unsecured).
    pub user: String,
    /// Subscription tier.
    pub tier: String,
    /// The credential as presented (a JWT, API key or internal key), for
    /// the interceptors' `authenticationContext`; empty when unsecured.
    pub token: String,
    /// Admitted past a spent subscription quota that does not stop on
    /// quota reach (`stopOnQuotaReach: false`): counted, reported in analytics.
    pub quota_exceeded: bool,
}

impl AuthInfo {
    /// The authenticator's name ("" when none let the caller in).
    pub fn auth_type_str(&self) -> &'static str {
        self.auth_type.map(AuthType::as_str).unwrap_or("")
    }

    /// `PRODUCTION`, `SANDBOX`, or "" when no cluster was chosen.
    pub fn key_type_str(&self) -> &'static str {
        self.key_type.map(KeyType::as_str).unwrap_or("")
    }
}

/// Request headers the enforcer sets (overwriting), by name.
pub type SetHeaders = Vec<(Cow<'static, str>, String)>;

/// What Envoy is told.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Forward, with these header changes.
    Allow {
        /// Headers set (overwriting).
        set: SetHeaders,
        /// Headers removed.
        remove: Vec<String>,
        /// Headers added to the client's response (rate-limit headers).
        respond: Vec<(&'static str, String)>,
        /// Who.
        info: AuthInfo,
    },
    /// Answer directly.
    Deny {
        /// Why.
        deny: Deny,
        /// `WWW-Authenticate` value, for authentication failures.
        www_authenticate: Option<String>,
        /// What was known when refusing (API, resource), for analytics.
        info: AuthInfo,
    },
}

impl Decision {
    /// A denial.
    pub fn deny(deny: Deny, www_authenticate: Option<String>, info: AuthInfo) -> Decision {
        Decision::Deny { deny, www_authenticate, info }
    }
}
