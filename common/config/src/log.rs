//! `log_config.toml`, Choreo Connect's logging file (`LOG_CONFIG_PATH`):
//!
//! ```toml
//! logLevel = "INFO"          # DEBG | INFO | WARN | ERRO | FATL | PANC, or trace/debug/info/warn/error
//! LogFormat = "TEXT"         # TEXT | JSON
//! [[pkg]]                    # a module's own level, e.g. adapter::ads
//! name = "adapter::ads"
//! logLevel = "DEBG"
//! [accessLogs]               # the router's access log (Envoy's file access logger)
//! enable = false
//! logfile = "/dev/stdout"
//! format = "[%START_TIME%] ..."
//! ```
//!
//! Keys of Choreo Connect's file that do not apply here (`logfile`,
//! `[rotation]`: logs go to stdout, the platform keeps them; `[wireLogs]`)
//! are accepted and ignored.

use serde::Deserialize;

use crate::error::ConfigError;

/// Choreo Connect's default access log format.
pub const DEFAULT_ACCESS_LOG_FORMAT: &str = "[%START_TIME%] '%REQ(:METHOD)% %DYNAMIC_METADATA(envoy.filters.http.ext_authz:originalPath)% %REQ(:PATH)% %PROTOCOL%' %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% '%REQ(X-FORWARDED-FOR)%' '%REQ(USER-AGENT)%' '%REQ(X-REQUEST-ID)%' '%REQ(:AUTHORITY)%' '%UPSTREAM_HOST%'\n";

/// The parsed file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct LogConfig {
    /// The level of everything without its own.
    #[serde(rename = "logLevel")]
    pub log_level: String,
    /// `TEXT` or `JSON`.
    #[serde(rename = "LogFormat")]
    pub log_format: String,
    /// Per-module levels.
    pub pkg: Vec<Pkg>,
    /// `[accessLogs]`
    #[serde(rename = "accessLogs")]
    pub access_logs: AccessLogs,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            log_level: "INFO".into(),
            log_format: "TEXT".into(),
            pkg: Vec::new(),
            access_logs: AccessLogs::default(),
        }
    }
}

/// `[[pkg]]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(default)]
pub struct Pkg {
    /// Module path, e.g. `adapter::ads` or `enforcer`.
    pub name: String,
    /// Its level.
    #[serde(rename = "logLevel")]
    pub log_level: String,
}

/// `[accessLogs]`: Envoy's access log of every request.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct AccessLogs {
    /// Write it.
    pub enable: bool,
    /// Where (the router's file system; `/dev/stdout` in containers).
    pub logfile: String,
    /// Envoy's access log format (command operators such as `%START_TIME%`).
    pub format: String,
}

impl Default for AccessLogs {
    fn default() -> Self {
        AccessLogs { enable: false, logfile: "/dev/stdout".into(), format: DEFAULT_ACCESS_LOG_FORMAT.into() }
    }
}

/// A level in Choreo Connect's or in the usual spelling, as a `tracing`
/// level; `None` when it is neither.
pub fn level(value: &str) -> Option<&'static str> {
    Some(match value.trim().to_ascii_uppercase().as_str() {
        "TRACE" | "TRAC" => "trace",
        "DEBUG" | "DEBG" => "debug",
        "INFO" => "info",
        "WARN" | "WARNING" => "warn",
        "ERROR" | "ERRO" | "FATL" | "FATAL" | "PANC" | "PANIC" => "error",
        "OFF" => "off",
        _ => return None,
    })
}

impl LogConfig {
    /// Parses and checks the file; errors name the key and the value.
    pub fn parse(text: &str, source_name: &str) -> Result<LogConfig, ConfigError> {
        let c: LogConfig = toml::from_str(text)
            .map_err(|e| ConfigError::Syntax { source_name: source_name.into(), message: e.to_string() })?;
        let invalid = |key: String, value: &str, reason: &str| ConfigError::Invalid {
            key,
            value: Some(value.to_string()),
            reason: reason.to_string(),
        };
        const LEVELS: &str = "expected DEBG, INFO, WARN, ERRO, FATL, PANC (or trace, debug, info, warn, error, off)";
        level(&c.log_level).ok_or_else(|| invalid("logLevel".into(), &c.log_level, LEVELS))?;
        if !["TEXT", "JSON"].contains(&c.log_format.to_ascii_uppercase().as_str()) {
            return Err(invalid("LogFormat".into(), &c.log_format, "expected TEXT or JSON"));
        }
        for (i, p) in c.pkg.iter().enumerate() {
            if p.name.trim().is_empty() || p.name.contains([',', '=', ' ']) {
                return Err(invalid(format!("pkg[{i}].name"), &p.name, "expected a module path such as adapter::ads"));
            }
            level(&p.log_level).ok_or_else(|| invalid(format!("pkg[{i}].logLevel"), &p.log_level, LEVELS))?;
        }
        if c.access_logs.enable && c.access_logs.logfile.trim().is_empty() {
            return Err(invalid("accessLogs.logfile".into(), "", "must name a file when accessLogs.enable is true"));
        }
        Ok(c)
    }

    /// The filter directive: the level, then each module's (e.g.
    /// `info,adapter::ads=debug`).
    pub fn directive(&self) -> String {
        let mut out = level(&self.log_level).unwrap_or("info").to_string();
        for p in &self.pkg {
            out.push_str(&format!(",{}={}", p.name.trim(), level(&p.log_level).unwrap_or("info")));
        }
        out
    }

    /// JSON logs.
    pub fn json(&self) -> bool {
        self.log_format.eq_ignore_ascii_case("JSON")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choreo_connect_file_parses() {
        let c = LogConfig::parse(
            r#"
logfile = "logs/adapter.log"
logLevel = "DEBG"
LogFormat = "JSON"
[rotation]
MaxSize = 10
[[pkg]]
name = "adapter::ads"
logLevel = "ERRO"
[accessLogs]
enable = true
format = "%RESPONSE_CODE%\n"
"#,
            "log_config.toml",
        )
        .expect("valid");
        assert_eq!(c.directive(), "debug,adapter::ads=error");
        assert!(c.json());
        assert!(c.access_logs.enable);
        assert_eq!(c.access_logs.logfile, "/dev/stdout");
        assert_eq!(c.access_logs.format, "%RESPONSE_CODE%\n");
        assert_eq!(LogConfig::parse("", "f").expect("empty is valid"), LogConfig::default());
    }

    #[test]
    fn bad_values_name_the_key() {
        let e = LogConfig::parse("logLevel = \"LOUD\"", "f").expect_err("bad level");
        assert_eq!(
            e.to_string(),
            "logLevel: invalid value \"LOUD\": expected DEBG, INFO, WARN, ERRO, FATL, PANC (or trace, debug, info, warn, error, off)"
        );
        let e = LogConfig::parse("LogFormat = \"XML\"", "f").expect_err("bad format");
        assert!(e.to_string().starts_with("LogFormat: invalid value \"XML\""), "{e}");
        let e = LogConfig::parse("[[pkg]]\nname = \"a b\"\nlogLevel = \"INFO\"", "f").expect_err("bad name");
        assert!(e.to_string().starts_with("pkg[0].name"), "{e}");
        let e = LogConfig::parse("logLevel = 3", "log_config.toml").expect_err("bad type");
        assert!(e.to_string().starts_with("log_config.toml: not valid TOML"), "{e}");
    }
}
