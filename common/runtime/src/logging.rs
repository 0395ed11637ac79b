//! Logs on stdout, text or JSON, with a level that operators change while
//! the process runs (the adapter's `PUT /logging` and the enforcer's admin
//! `PUT /logging`).

use std::sync::OnceLock;

use parking_lot::Mutex;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, reload};

/// A level or filter directive that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// Not a level nor a directive.
    #[error("invalid log level {value:?}: {reason}")]
    Invalid {
        /// What was given.
        value: String,
        /// Why it is refused.
        reason: String,
    },
    /// `log_config.toml` cannot be read or is invalid.
    #[error("{0}")]
    File(String),
    /// Logging was not set up by [`init`] (a test process).
    #[error("the log level cannot be changed in this process")]
    NotReloadable,
}

struct Logging {
    handle: reload::Handle<EnvFilter, Registry>,
    current: Mutex<String>,
}

static LOGGING: OnceLock<Logging> = OnceLock::new();

/// A filter from a level (`debug`, Choreo Connect's `DEBG`, ...) or a
/// directive (`info,adapter::ads=debug`).
fn filter(value: &str) -> Result<(EnvFilter, String), LogError> {
    let invalid = |reason: String| LogError::Invalid { value: value.to_string(), reason };
    let directive = match gateway_config::log::level(value) {
        Some(l) => l.to_string(),
        None if value.trim().is_empty() => return Err(invalid("empty".into())),
        None => value.trim().to_string(),
    };
    let f = EnvFilter::try_new(&directive).map_err(|e| {
        invalid(format!("{e}; expected trace, debug, info, warn, error (DEBG, ERRO, ...) or a directive such as info,adapter::ads=debug"))
    })?;
    Ok((f, directive))
}

/// Installs the process's logger: `directive` (see [`set_level`]), JSON or
/// text lines on stdout. A bad directive falls back to `info` and says so.
pub fn init(directive: &str, json: bool) {
    let (f, current, problem) = match filter(directive) {
        Ok((f, d)) => (f, d, None),
        Err(e) => (EnvFilter::new("info"), "info".to_string(), Some(e)),
    };
    let (layer, handle) = reload::Layer::new(f);
    let registry = tracing_subscriber::registry().with(layer);
    let installed = if json {
        registry.with(tracing_subscriber::fmt::layer().json().with_target(true)).try_init()
    } else {
        registry.with(tracing_subscriber::fmt::layer().with_target(false)).try_init()
    };
    if installed.is_ok() {
        let _ = LOGGING.set(Logging { handle, current: Mutex::new(current) });
    }
    if let Some(e) = problem {
        tracing::warn!(error = %e, "log level: using info");
    }
}

/// Reads `log_config.toml` (`LOG_CONFIG_PATH`, else `default_path` when it
/// exists, else the defaults: INFO, TEXT) and installs the logger. `RUST_LOG`
/// replaces the file's levels and `format` (`LOG_FORMAT`: text or json) its
/// `LogFormat`. Returns the file, whose `[accessLogs]` the adapter uses.
pub fn init_from_file(
    default_path: &std::path::Path,
    format: Option<&str>,
) -> Result<gateway_config::log::LogConfig, LogError> {
    use gateway_config::log::LogConfig;
    let explicit = std::env::var_os("LOG_CONFIG_PATH").filter(|p| !p.is_empty()).map(std::path::PathBuf::from);
    let path = explicit.clone().unwrap_or_else(|| default_path.to_path_buf());
    let config = match std::fs::read_to_string(&path) {
        Ok(text) => LogConfig::parse(&text, &path.display().to_string())
            .map_err(|e| LogError::File(format!("{}: {e}", path.display())))?,
        Err(e) if explicit.is_some() || e.kind() != std::io::ErrorKind::NotFound => {
            return Err(LogError::File(format!("cannot read LOG_CONFIG_PATH {}: {e}", path.display())));
        }
        Err(_) => LogConfig::default(),
    };
    let json = match format.map(|f| f.trim().to_ascii_lowercase()) {
        Some(f) if f == "json" => true,
        Some(f) if f == "text" => false,
        Some(f) => return Err(LogError::File(format!("LOG_FORMAT={f}: expected text or json"))),
        None => config.json(),
    };
    let directive =
        std::env::var("RUST_LOG").ok().filter(|v| !v.trim().is_empty()).unwrap_or_else(|| config.directive());
    init(&directive, json);
    Ok(config)
}

/// The level in force.
pub fn level() -> Option<String> {
    LOGGING.get().map(|l| l.current.lock().clone())
}

/// The spellings of a level the admin APIs take (exactly these: their
/// OpenAPI pattern lists them).
const API_LEVELS: &[&str] = &[
    "trace", "debug", "info", "warn", "error", "off", "TRACE", "DEBUG", "INFO", "WARN", "ERROR", "OFF", "DEBG", "ERRO",
    "FATL", "PANC",
];

/// A level or directive as the admin APIs take it: items separated by
/// commas, each a level or `module::path=level` (no spans, no fields), e.g.
/// `info,adapter::ads=DEBG`. Returned with the levels in `tracing`'s words.
pub fn api_directive(value: &str) -> Result<String, LogError> {
    let invalid = |reason: &str| LogError::Invalid {
        value: value.to_string(),
        reason: format!(
            "{reason}; expected a level (trace, debug, info, warn, error, off; DEBG, INFO, WARN, ERRO, FATL, PANC) or items such as info,adapter::ads=debug"
        ),
    };
    let level = |l: &str| if API_LEVELS.contains(&l) { gateway_config::log::level(l) } else { None };
    let ident = |s: &str| {
        let mut c = s.chars();
        c.next().is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
            && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
    };
    let mut out = Vec::new();
    for item in value.split(',') {
        match item.split_once('=') {
            None => out.push(level(item).ok_or_else(|| invalid("not a level"))?.to_string()),
            Some((target, l)) => {
                if !target.split("::").all(ident) {
                    return Err(invalid("not a module path"));
                }
                out.push(format!("{target}={}", level(l).ok_or_else(|| invalid("not a level"))?));
            }
        }
    }
    Ok(out.join(","))
}

/// Changes the level at once (see [`api_directive`]); returns the directive
/// now in force.
pub fn set_level(value: &str) -> Result<String, LogError> {
    let l = LOGGING.get().ok_or(LogError::NotReloadable)?;
    let (f, directive) = filter(&api_directive(value)?)?;
    l.handle.reload(f).map_err(|_| LogError::NotReloadable)?;
    *l.current.lock() = directive.clone();
    tracing::info!(level = %directive, "log level changed");
    Ok(directive)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_directives() {
        assert_eq!(filter("DEBG").expect("CC level").1, "debug");
        assert_eq!(filter("warn").expect("level").1, "warn");
        assert_eq!(filter("info,adapter::ads=debug").expect("directive").1, "info,adapter::ads=debug");
        let e = filter("info,=[").expect_err("bad directive").to_string();
        assert!(e.starts_with("invalid log level \"info,=[\""), "{e}");
        assert!(filter(" ").is_err());
    }

    #[test]
    fn the_admin_apis_take_levels_and_module_levels_only() {
        assert_eq!(api_directive("DEBG").expect("CC level"), "debug");
        assert_eq!(
            api_directive("info,adapter::ads=ERRO,enforcer=trace").expect("items"),
            "info,adapter::ads=error,enforcer=trace"
        );
        for bad in
            ["", "Debug", "adapter", "info,", "a b=info", "adapter::=info", "x=loud", "info,=[", "1x=info", "\u{10}"]
        {
            assert!(api_directive(bad).is_err(), "{bad:?} accepted");
        }
    }
}
