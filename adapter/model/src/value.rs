//! YAML or JSON documents as `serde_json::Value`, and typed field access that
//! reports the field path on a wrong type.

use serde_json::{Map, Value};

use crate::problem::{Ctx, join};

/// Parses a YAML or JSON document (JSON when it starts with `{` or `[`).
pub(crate) fn parse_document(bytes: &[u8]) -> Result<Value, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8 text ({e})"))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        return serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"));
    }
    let yaml: serde_norway::Value = serde_norway::from_str(text).map_err(|e| format!("not valid YAML: {e}"))?;
    yaml_to_json(yaml)
}

fn yaml_to_json(v: serde_norway::Value) -> Result<Value, String> {
    use serde_norway::Value as Y;
    Ok(match v {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                serde_json::Number::from_f64(f)
                    .map(Value::Number)
                    .ok_or_else(|| format!("the number {n} has no JSON representation"))?
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(yaml_to_json).collect::<Result<_, _>>()?),
        Y::Mapping(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                let key = match k {
                    Y::String(s) => s,
                    Y::Number(n) => n.to_string(),
                    Y::Bool(b) => b.to_string(),
                    Y::Null => "null".to_string(),
                    other => return Err(format!("unsupported mapping key {other:?}")),
                };
                out.insert(key, yaml_to_json(v)?);
            }
            Value::Object(out)
        }
        Y::Tagged(t) => yaml_to_json(t.value)?,
    })
}

/// The JSON type of a value, for messages.
pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Looks a key up case-insensitively (an exact match wins), as Choreo
/// Connect's Go decoder does for api.yaml.
pub(crate) fn get_ci<'v>(obj: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    obj.get(key).or_else(|| obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v))
}

/// A string field. Numbers and booleans are accepted and written as text
/// (YAML turns an unquoted `version: 1.0` into a number). Null means absent.
pub(crate) fn opt_string(ctx: &mut Ctx<'_>, v: Option<&Value>, path: &str) -> Option<String> {
    match v {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::Bool(b)) => Some(b.to_string()),
        Some(other) => {
            ctx.err(path, format!("expected a string, found {}", kind(other)));
            None
        }
    }
}

/// A boolean field. The strings `true`/`false` are accepted.
pub(crate) fn opt_bool(ctx: &mut Ctx<'_>, v: Option<&Value>, path: &str) -> Option<bool> {
    match v {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Some(true),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Some(false),
        Some(other) => {
            ctx.err(path, format!("expected true or false, found {}", describe(other)));
            None
        }
    }
}

/// A non-negative integer field (numeric strings are accepted).
pub(crate) fn opt_u64(ctx: &mut Ctx<'_>, v: Option<&Value>, path: &str) -> Option<u64> {
    match v {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => match n.as_u64() {
            Some(u) => Some(u),
            None => match n.as_f64() {
                Some(f) if f >= 0.0 && f.fract() == 0.0 && f < 1e15 => Some(f as u64),
                _ => {
                    ctx.err(path, format!("expected a non-negative integer, found {n}"));
                    None
                }
            },
        },
        Some(Value::String(s)) => match s.trim().parse::<u64>() {
            Ok(u) => Some(u),
            Err(_) => {
                ctx.err(path, format!("expected a non-negative integer, found {s:?}"));
                None
            }
        },
        Some(other) => {
            ctx.err(path, format!("expected a non-negative integer, found {}", kind(other)));
            None
        }
    }
}

/// A list of strings (a single string is accepted as a list of one).
pub(crate) fn opt_string_list(ctx: &mut Ctx<'_>, v: Option<&Value>, path: &str) -> Option<Vec<String>> {
    match v {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(vec![s.clone()]),
        Some(Value::Array(items)) => {
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                if let Some(s) = opt_string(ctx, Some(item), &format!("{path}[{i}]")) {
                    out.push(s);
                }
            }
            Some(out)
        }
        Some(other) => {
            ctx.err(path, format!("expected a list of strings, found {}", kind(other)));
            None
        }
    }
}

/// An object field.
pub(crate) fn opt_object<'v>(ctx: &mut Ctx<'_>, v: Option<&'v Value>, path: &str) -> Option<&'v Map<String, Value>> {
    match v {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => Some(m),
        Some(other) => {
            ctx.err(path, format!("expected an object, found {}", kind(other)));
            None
        }
    }
}

/// A short description of a value for messages.
pub(crate) fn describe(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => kind(other).to_string(),
    }
}

/// `path.key`
pub(crate) fn field(path: &str, key: &str) -> String {
    join(path, key)
}
