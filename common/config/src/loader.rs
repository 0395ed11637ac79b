//! From `config.toml` text and an environment to a validated [`Config`].
//!
//! The steps, in order:
//! 1. parse the TOML;
//! 2. rewrite keys to their canonical spelling (Choreo Connect matches keys
//!    case-insensitively);
//! 3. replace `$env{NAME}` in string values of the sections the adapter resolves;
//! 4. apply `CC_<SECTION>_<FIELD>...` environment overrides;
//! 5. deserialise into the typed structs, collecting unknown keys as warnings;
//! 6. validate values.
//!
//! The schema used by steps 2 and 4 is the serialised default [`Config`], so
//! it cannot drift from the structs.

use std::collections::BTreeMap;

use serde::de::IntoDeserializer;
use toml::{Table, Value};

use crate::error::{ConfigError, Warning};
use crate::model::Config;
use crate::validate;

/// Sections whose `$env{}` references the adapter resolves. The others are
/// passed through for the enforcer, which resolves them itself.
const RESOLVED_SECTIONS: &[&str] = &["adapter", "router", "controlPlane", "globalAdapter"];

/// `CC_<SECTION>` prefixes and the table each one overrides.
const OVERRIDE_SECTIONS: &[(&str, &str)] = &[
    ("ADAPTER", "adapter"),
    ("ROUTER", "router"),
    ("ENFORCER", "enforcer"),
    ("CONTROLPLANE", "controlPlane"),
    ("GLOBALADAPTER", "globalAdapter"),
    ("ANALYTICS", "analytics"),
];

/// A loaded configuration and what was noticed on the way.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The typed, validated configuration.
    pub config: Config,
    /// Problems that did not stop loading (unknown keys, default credentials, ...).
    pub warnings: Vec<Warning>,
}

/// Loads a configuration.
///
/// `source` names the file in messages. `env` is the process environment as
/// name/value pairs (injected so tests never touch the real environment).
pub fn load<'a, I>(text: &str, source: &str, env: I) -> Result<Loaded, ConfigError>
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let env: BTreeMap<&str, &str> = env.into_iter().collect();
    let mut warnings = Vec::new();

    let mut doc: Table = toml::from_str(text).map_err(|e| ConfigError::Syntax {
        source_name: source.to_string(),
        message: e.to_string().trim_end().to_string(),
    })?;

    let schema = match Value::try_from(Config::default()) {
        Ok(Value::Table(t)) => t,
        // The defaults always serialise to a table; anything else is a bug here.
        _ => Table::new(),
    };

    canonicalize_table(&mut doc, &schema, "", &mut warnings)?;
    alias_connection_timeouts(&mut doc, &schema, &mut warnings)?;
    // Start from the defaults so that `$env{}` in a default value (such as the
    // default user's password) is resolved too, as Choreo Connect does.
    let mut doc = merge_onto(schema.clone(), doc);

    let mut unresolved = Vec::new();
    for section in RESOLVED_SECTIONS {
        if let Some(v) = doc.get_mut(*section) {
            substitute_env(v, section, &env, &mut unresolved);
        }
    }

    apply_overrides(&mut doc, &schema, &env, &mut warnings)?;

    let mut unknown = Vec::new();
    let mut record = |path: serde_ignored::Path<'_>| unknown.push(path.to_string());
    let de = serde_ignored::Deserializer::new(Value::Table(doc).into_deserializer(), &mut record);
    let config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        ConfigError::Invalid { key, value: None, reason: e.into_inner().to_string() }
    })?;
    for key in unknown {
        warnings.push(Warning::UnknownKey { key });
    }
    // An unset variable would leave `$env{NAME}` as the value: a password
    // anyone can read in the documentation, or a path that does not exist.
    // The users of a disabled management API are never used.
    let unused = |key: &str| !config.adapter.server.enabled && key.starts_with("adapter.server.users");
    if let Some((key, variable)) = unresolved.into_iter().find(|(k, _)| !unused(k)) {
        return Err(ConfigError::Invalid {
            key,
            value: None,
            reason: format!(
                "$env{{{variable}}} is not set: set the environment variable (the reference would otherwise be used literally)"
            ),
        });
    }

    validate::validate(&config)?;
    warnings.extend(validate::not_used(&config));
    warnings.extend(validate::default_credentials(&config));
    Ok(Loaded { config, warnings })
}

/// Choreo Connect documents `[router.connectionTimeout]`, but its parser
/// reads `[router.connection.timeouts]`: accept that spelling too.
fn alias_connection_timeouts(doc: &mut Table, schema: &Table, warnings: &mut Vec<Warning>) -> Result<(), ConfigError> {
    let Some(Value::Table(router)) = doc.get_mut("router") else { return Ok(()) };
    let Some(conn_key) = router.keys().find(|k| k.eq_ignore_ascii_case("connection")).cloned() else { return Ok(()) };
    let Some(Value::Table(conn)) = router.get_mut(&conn_key) else { return Ok(()) };
    let Some(t_key) = conn.keys().find(|k| k.eq_ignore_ascii_case("timeouts")).cloned() else { return Ok(()) };
    let Some(Value::Table(mut timeouts)) = conn.remove(&t_key) else { return Ok(()) };
    if conn.is_empty() {
        router.remove(&conn_key);
    }
    if router.contains_key("connectionTimeout") {
        return Err(ConfigError::Invalid {
            key: "router.connection.timeouts".into(),
            value: None,
            reason: "given together with [router.connectionTimeout]; keep one".into(),
        });
    }
    if let Some(Value::Table(router_schema)) = schema.get("router")
        && let Some(Value::Table(s)) = router_schema.get("connectionTimeout")
    {
        canonicalize_table(&mut timeouts, s, "router.connectionTimeout", warnings)?;
    }
    router.insert("connectionTimeout".into(), Value::Table(timeouts));
    warnings.push(Warning::KeyCase {
        given: "router.connection.timeouts".into(),
        canonical: "router.connectionTimeout".into(),
    });
    Ok(())
}

/// Overlays `over` onto `base`: tables merge key by key, anything else
/// (values and arrays) is replaced.
fn merge_onto(mut base: Table, over: Table) -> Table {
    for (k, v) in over {
        match (base.remove(&k), v) {
            (Some(Value::Table(b)), Value::Table(o)) => {
                base.insert(k, Value::Table(merge_onto(b, o)));
            }
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
    base
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() { key.to_string() } else { format!("{prefix}.{key}") }
}

/// Renames keys that match a schema key case-insensitively to the schema's
/// spelling, recursively. Keys the schema does not know are left alone (serde
/// reports them as unknown later).
fn canonicalize_table(
    table: &mut Table,
    schema: &Table,
    prefix: &str,
    warnings: &mut Vec<Warning>,
) -> Result<(), ConfigError> {
    let keys: Vec<String> = table.keys().cloned().collect();
    for key in keys {
        let canonical = if schema.contains_key(&key) {
            key.clone()
        } else if let Some(k) = schema.keys().find(|k| k.eq_ignore_ascii_case(&key)) {
            k.clone()
        } else {
            continue;
        };
        if canonical != key {
            if table.contains_key(&canonical) {
                return Err(ConfigError::Invalid {
                    key: join(prefix, &key),
                    value: None,
                    reason: format!("the same key is also given as `{canonical}` (keys are case-insensitive)"),
                });
            }
            if let Some(v) = table.remove(&key) {
                table.insert(canonical.clone(), v);
            }
            warnings.push(Warning::KeyCase { given: join(prefix, &key), canonical: join(prefix, &canonical) });
        }
        let path = join(prefix, &canonical);
        match (table.get_mut(&canonical), schema.get(&canonical)) {
            (Some(Value::Table(t)), Some(Value::Table(s))) => canonicalize_table(t, s, &path, warnings)?,
            (Some(Value::Array(items)), Some(Value::Array(s))) => {
                if let Some(Value::Table(elem_schema)) = s.first() {
                    for (i, item) in items.iter_mut().enumerate() {
                        if let Value::Table(t) = item {
                            canonicalize_table(t, elem_schema, &format!("{path}[{i}]"), warnings)?;
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Replaces `$env{NAME}` in every string below `value`. An unset variable
/// leaves the text as it is (as Choreo Connect does) and is warned about.
fn substitute_env(value: &mut Value, path: &str, env: &BTreeMap<&str, &str>, unresolved: &mut Vec<(String, String)>) {
    match value {
        Value::String(s) => {
            if let Some(replaced) = resolve_env_refs(s, path, env, unresolved) {
                *s = replaced;
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                substitute_env(item, &format!("{path}[{i}]"), env, unresolved);
            }
        }
        Value::Table(t) => {
            for (k, v) in t.iter_mut() {
                substitute_env(v, &join(path, k), env, unresolved);
            }
        }
        _ => {}
    }
}

/// Returns the string with every resolvable `$env{NAME}` replaced, or `None`
/// when it holds no reference. Unset variables are added to `unresolved` as
/// (key, variable).
fn resolve_env_refs(
    s: &str,
    key: &str,
    env: &BTreeMap<&str, &str>,
    unresolved: &mut Vec<(String, String)>,
) -> Option<String> {
    if !s.contains("$env{") {
        return None;
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("$env{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 5..];
        match after.find('}') {
            Some(end) => {
                let name = &after[..end];
                match env.get(name) {
                    Some(v) => out.push_str(v),
                    None => {
                        unresolved.push((key.to_string(), name.to_string()));
                        out.push_str(&rest[start..start + 5 + end + 1]);
                    }
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    Some(out)
}

/// Applies `CC_<SECTION>_<KEY>[_<KEY>|_<INDEX>]...` variables. Keys are matched
/// case-insensitively against the schema; the value is converted to the type
/// of the key's default.
fn apply_overrides(
    doc: &mut Table,
    schema: &Table,
    env: &BTreeMap<&str, &str>,
    warnings: &mut Vec<Warning>,
) -> Result<(), ConfigError> {
    for (name, raw) in env {
        let Some(rest) = name.strip_prefix("CC_") else { continue };
        let mut parts = rest.split('_');
        let Some(section) = parts.next() else { continue };
        let Some((_, table_name)) = OVERRIDE_SECTIONS.iter().find(|(s, _)| s.eq_ignore_ascii_case(section)) else {
            warnings.push(Warning::UnknownOverride { variable: name.to_string() });
            continue;
        };
        let segments: Vec<&str> = parts.collect();
        if segments.is_empty() || segments.iter().any(|s| s.is_empty()) {
            warnings.push(Warning::UnknownOverride { variable: name.to_string() });
            continue;
        }
        let section_schema = match schema.get(*table_name) {
            Some(Value::Table(t)) => t,
            _ => continue,
        };
        let section_doc = doc.entry(table_name.to_string()).or_insert_with(|| Value::Table(Table::new()));
        let Value::Table(section_doc) = section_doc else {
            return Err(ConfigError::Invalid {
                key: table_name.to_string(),
                value: None,
                reason: "must be a table".into(),
            });
        };
        match set_override(section_doc, Some(section_schema), &segments, raw, name, table_name)? {
            true => {}
            false => warnings.push(Warning::UnknownOverride { variable: name.to_string() }),
        }
    }
    Ok(())
}

/// Walks `segments` down `doc` (guided by `schema`) and sets the final key.
/// Returns false when the path names no known key.
fn set_override(
    doc: &mut Table,
    schema: Option<&Table>,
    segments: &[&str],
    raw: &str,
    variable: &str,
    path: &str,
) -> Result<bool, ConfigError> {
    let Some((first, rest)) = segments.split_first() else { return Ok(false) };
    let key = schema
        .and_then(|s| s.keys().find(|k| k.eq_ignore_ascii_case(first)).cloned())
        .or_else(|| doc.keys().find(|k| k.eq_ignore_ascii_case(first)).cloned());
    let Some(key) = key else { return Ok(false) };
    let key_schema = schema.and_then(|s| s.get(&key));
    let path = join(path, &key);

    if rest.is_empty() {
        let template = key_schema.or_else(|| doc.get(&key));
        let value = convert(raw, template).map_err(|reason| ConfigError::Invalid {
            key: format!("{path} (from {variable})"),
            value: Some(raw.to_string()),
            reason,
        })?;
        doc.insert(key, value);
        return Ok(true);
    }

    // Descend: into a table, or into an array element by index.
    if !doc.contains_key(&key) {
        match key_schema {
            Some(Value::Table(_)) => {
                doc.insert(key.clone(), Value::Table(Table::new()));
            }
            Some(Value::Array(a)) => {
                doc.insert(key.clone(), Value::Array(a.clone()));
            }
            _ => return Ok(false),
        }
    }
    match doc.get_mut(&key) {
        Some(Value::Table(t)) => {
            let sub_schema = match key_schema {
                Some(Value::Table(s)) => Some(s),
                _ => None,
            };
            set_override(t, sub_schema, rest, raw, variable, &path)
        }
        Some(Value::Array(items)) => {
            let Ok(index) = rest[0].parse::<usize>() else { return Ok(false) };
            let elem_schema = match key_schema {
                Some(Value::Array(a)) => match a.first() {
                    Some(Value::Table(t)) => Some(t),
                    _ => None,
                },
                _ => None,
            };
            if index == items.len() {
                // Appending one element at a time is allowed, as for a TOML array.
                items.push(Value::Table(Table::new()));
            }
            match items.get_mut(index) {
                Some(Value::Table(t)) => {
                    set_override(t, elem_schema, &rest[1..], raw, variable, &format!("{path}[{index}]"))
                }
                _ => Ok(false),
            }
        }
        _ => Ok(false),
    }
}

/// Converts an environment string to the TOML type of `template`.
fn convert(raw: &str, template: Option<&Value>) -> Result<Value, String> {
    let raw_trimmed = raw.trim();
    Ok(match template {
        Some(Value::Integer(_)) => {
            Value::Integer(raw_trimmed.parse::<i64>().map_err(|_| "expected an integer".to_string())?)
        }
        Some(Value::Float(_)) => Value::Float(raw_trimmed.parse::<f64>().map_err(|_| "expected a number".to_string())?),
        Some(Value::Boolean(_)) => Value::Boolean(match raw_trimmed.to_ascii_lowercase().as_str() {
            "true" | "1" => true,
            "false" | "0" => false,
            _ => return Err("expected true or false".into()),
        }),
        Some(Value::Array(a)) => {
            let elem = a.first();
            let mut out = Vec::new();
            for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                out.push(convert(part, elem.or(Some(&Value::String(String::new()))))?);
            }
            Value::Array(out)
        }
        Some(Value::Table(_)) => return Err("names a table, not a value".into()),
        _ => Value::String(raw.to_string()),
    })
}
