//! Errors and warnings of configuration loading.

use std::fmt;

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The file is not valid TOML.
    #[error("{source_name}: not valid TOML: {message}")]
    Syntax {
        /// The file, as given to the loader.
        source_name: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A key has a value of the wrong type or out of range.
    #[error("{key}: {}{reason}", value.as_ref().map(|v| format!("invalid value {v:?}: ")).unwrap_or_default())]
    Invalid {
        /// Dotted path of the key, e.g. `router.listenerPort`.
        key: String,
        /// The offending value, when it is not already part of `reason`.
        value: Option<String>,
        /// What is wrong and what is expected.
        reason: String,
    },
}

/// A problem that does not stop loading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Warning {
    /// A key the gateway does not know; it is ignored.
    UnknownKey {
        /// Dotted path of the key.
        key: String,
    },
    /// A key written in another case than its documented spelling.
    KeyCase {
        /// As written.
        given: String,
        /// As documented.
        canonical: String,
    },
    /// A section this gateway accepts (so Choreo Connect configurations load
    /// unchanged) but does not act on, set to something else than its default.
    NotUsed {
        /// Dotted path of the section.
        key: String,
        /// What applies instead.
        instead: &'static str,
    },
    /// Choreo Connect's well-known default credentials are in use.
    DefaultCredentials {
        /// Dotted path of the user entry.
        key: String,
        /// The user name.
        username: String,
    },
    /// A `CC_*` variable that names no configuration key; it is ignored.
    UnknownOverride {
        /// The variable.
        variable: String,
    },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::UnknownKey { key } => write!(f, "{key}: unknown key, ignored"),
            Warning::KeyCase { given, canonical } => {
                write!(f, "{given}: read as {canonical} (keys are case-insensitive)")
            }
            Warning::NotUsed { key, instead } => write!(f, "{key}: accepted but not used by this gateway; {instead}"),
            Warning::DefaultCredentials { key, username } => write!(
                f,
                "{key}: the well-known default credentials ({username}/{username}) are in use; \
                 set your own password (README: Hardening)"
            ),
            Warning::UnknownOverride { variable } => {
                write!(f, "{variable}: names no configuration key, ignored")
            }
        }
    }
}
