//! Go's text/template for operation policy definitions (`.gotmpl`), with
//! the one helper Choreo Connect adds: `isParamExists . "name"`, true when
//! the parameter is given at all (`{{ if .name }}` is false for empty values).
//!
//! The engine is `gotmpl`, a port of Go's text/template with Go-compatible
//! output (missing keys render `<no value>`, as in Choreo Connect).

use std::collections::BTreeMap;

use gotmpl::{Template, ToValue, Value};

/// Renders `template` with the policy's parameters as `.`.
pub(crate) fn render(template: &str, params: &BTreeMap<String, String>) -> Result<String, String> {
    let t = Template::new("policy-def")
        .func("isParamExists", |args: &[Value]| {
            let found = match (args.first(), args.get(1).and_then(Value::as_str)) {
                (Some(Value::Map(m)), Some(key)) => m.contains_key(key),
                _ => false,
            };
            Ok(Value::Bool(found))
        })
        .parse(template)
        .map_err(|e| e.to_string())?;
    t.execute_to_string(&params.to_value()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn renders_parameters_and_the_exists_helper() {
        let t = "a: {{ .x }}\n{{- if isParamExists . \"y\" }}\nb: {{ .y }}\n{{- end }}";
        assert_eq!(render(t, &p(&[("x", "1"), ("y", "")])).unwrap(), "a: 1\nb: ");
        assert_eq!(render(t, &p(&[("x", "1")])).unwrap(), "a: 1");
        // A missing key renders as Go does.
        assert_eq!(render("{{ .nope }}", &p(&[])).unwrap(), "<no value>");
        assert!(render("{{ .x ", &p(&[])).is_err());
    }
}
