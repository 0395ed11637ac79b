//! GraphQL APIs: `Definitions/schema.graphql` (must parse),
//! `Definitions/graphql-complexity.yaml` (optional field complexities) and
//! api.yaml `operations[]` (one per root field: `target`, `verb` QUERY,
//! MUTATION or SUBSCRIPTION, `authType`, `scopes`, `throttlingPolicy`).
//!
//! The router sends every request on the API's base path to the enforcer
//! with its body; the enforcer parses the query, finds the operations it
//! touches and applies their security, scopes and tiers, and the depth and
//! complexity limits of the caller's subscription policy.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::files::ProjectFiles;
use crate::problem::{Ctx, Problem};
use crate::value::{field, get_ci, kind, opt_object, opt_string, opt_string_list, opt_u64, parse_document};

/// Where the schema is read from.
pub const SCHEMA_FILE: &str = "Definitions/schema.graphql";
const COMPLEXITY_FILES: &[&str] = &[
    "Definitions/graphql-complexity.yaml",
    "Definitions/graphql-complexity.yml",
    "Definitions/graphql-complexity.json",
];

/// What a GraphQL API adds to an [`crate::Api`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphqlApi {
    /// The schema (SDL), as deployed.
    pub schema: String,
    /// Field complexities from `graphql-complexity.yaml`.
    pub complexity: Vec<FieldComplexity>,
    /// api.yaml `operations[]`.
    pub operations: Vec<GraphqlOperation>,
}

/// One entry of `graphql-complexity.yaml`'s `data.list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldComplexity {
    /// The object or interface type.
    #[serde(rename = "type")]
    pub type_name: String,
    /// The field.
    pub field: String,
    /// `complexityValue`.
    pub value: u32,
}

/// One operation (a root field) of a GraphQL API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphqlOperation {
    /// The root field.
    pub target: String,
    /// `QUERY`, `MUTATION` or `SUBSCRIPTION`.
    pub verb: String,
    /// `authType: None`.
    pub disable_security: bool,
    /// Scopes, any one of which suffices.
    pub scopes: Vec<String>,
    /// `throttlingPolicy`.
    pub tier: Option<String>,
}

const VERBS: &[(&str, &str)] = &[("QUERY", "query"), ("MUTATION", "mutation"), ("SUBSCRIPTION", "subscription")];

/// Reads the schema, the complexities and the operations; each problem names
/// the file and field.
pub(crate) fn read_graphql(
    files: &ProjectFiles,
    yaml_name: &str,
    yaml_doc: &Value,
    problems: &mut Vec<Problem>,
    tiers: &crate::policy::KnownTiers,
) -> Option<GraphqlApi> {
    let before = problems.len();
    let Some(bytes) = files.get(SCHEMA_FILE) else {
        problems.push(Problem::new(SCHEMA_FILE, "", "missing: a GraphQL API needs its schema (SDL)"));
        return None;
    };
    let schema = match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => {
            problems.push(Problem::new(SCHEMA_FILE, "", "not UTF-8 text"));
            return None;
        }
    };
    let roots = match root_fields(&schema) {
        Ok(r) => r,
        Err(why) => {
            problems.push(Problem::new(SCHEMA_FILE, "", format!("the schema does not parse: {why}")));
            return None;
        }
    };
    let complexity = match COMPLEXITY_FILES.iter().find(|n| files.get(n).is_some()) {
        Some(name) => read_complexity(files, name, problems),
        None => Vec::new(),
    };
    let mut ctx = Ctx::new(yaml_name, problems).with_tiers(tiers);
    let data = yaml_doc.as_object().and_then(|o| get_ci(o, "data")).and_then(Value::as_object);
    let operations = data.map(|d| read_operations(&mut ctx, d, &roots)).unwrap_or_default();
    (problems.len() == before).then_some(GraphqlApi { schema, complexity, operations })
}

/// Root fields per verb: `(verb, field)`.
type Roots = BTreeSet<(String, String)>;

fn root_fields(sdl: &str) -> Result<Roots, String> {
    use async_graphql_parser::types::{TypeKind, TypeSystemDefinition};
    let doc = async_graphql_parser::parse_schema(sdl).map_err(|e| e.to_string())?;
    let mut names: Vec<(String, String)> = VERBS.iter().map(|(v, _)| (v.to_string(), capitalise(v))).collect();
    for d in &doc.definitions {
        if let TypeSystemDefinition::Schema(s) = d {
            let s = &s.node;
            for (verb, t) in [("QUERY", &s.query), ("MUTATION", &s.mutation), ("SUBSCRIPTION", &s.subscription)] {
                if let Some(t) = t {
                    for n in names.iter_mut().filter(|(v, _)| v == verb) {
                        n.1 = t.node.to_string();
                    }
                }
            }
        }
    }
    let mut out = Roots::new();
    for d in &doc.definitions {
        let TypeSystemDefinition::Type(t) = d else { continue };
        let t = &t.node;
        let TypeKind::Object(o) = &t.kind else { continue };
        for (verb, type_name) in &names {
            if t.name.node.as_str() == type_name {
                for f in &o.fields {
                    out.insert((verb.clone(), f.node.name.node.to_string()));
                }
            }
        }
    }
    if !out.iter().any(|(v, _)| v == "QUERY") {
        return Err(format!("no query type (`{}`) with fields", names[0].1));
    }
    Ok(out)
}

fn capitalise(verb: &str) -> String {
    let lower = verb.to_ascii_lowercase();
    let mut c = lower.chars();
    c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
}

fn read_complexity(files: &ProjectFiles, name: &str, problems: &mut Vec<Problem>) -> Vec<FieldComplexity> {
    let Some(bytes) = files.get(name) else { return Vec::new() };
    let doc = match parse_document(bytes) {
        Ok(v) => v,
        Err(why) => {
            problems.push(Problem::new(name, "", why));
            return Vec::new();
        }
    };
    let mut ctx = Ctx::new(name, problems);
    let Some(top) = opt_object(&mut ctx, Some(&doc), "") else { return Vec::new() };
    let list = match top.get("data").and_then(Value::as_object).and_then(|d| get_ci(d, "list")) {
        Some(Value::Array(l)) => l,
        None | Some(Value::Null) => return Vec::new(),
        Some(other) => {
            ctx.err("data.list", format!("expected a list of {{type, field, complexityValue}}, found {}", kind(other)));
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for (i, e) in list.iter().enumerate() {
        let p = format!("data.list[{i}]");
        let Some(o) = opt_object(&mut ctx, Some(e), &p) else { continue };
        let t = opt_string(&mut ctx, get_ci(o, "type"), &field(&p, "type")).unwrap_or_default();
        let f = opt_string(&mut ctx, get_ci(o, "field"), &field(&p, "field")).unwrap_or_default();
        let v = opt_u64(&mut ctx, get_ci(o, "complexityValue"), &field(&p, "complexityValue"));
        if t.is_empty() || f.is_empty() {
            ctx.err(&p, "`type` and `field` are required");
            continue;
        }
        match v.map(u32::try_from) {
            Some(Ok(v)) => out.push(FieldComplexity { type_name: t, field: f, value: v }),
            Some(Err(_)) => ctx.err(field(&p, "complexityValue"), "too large"),
            None if get_ci(o, "complexityValue").is_none() => {
                ctx.err(field(&p, "complexityValue"), "missing: a non-negative integer")
            }
            None => {}
        }
    }
    out
}

fn read_operations(ctx: &mut Ctx<'_>, data: &Map<String, Value>, roots: &Roots) -> Vec<GraphqlOperation> {
    let list = match get_ci(data, "operations") {
        Some(Value::Array(l)) => l,
        None | Some(Value::Null) => return Vec::new(),
        Some(other) => {
            ctx.err("data.operations", format!("expected a list, found {}", kind(other)));
            return Vec::new();
        }
    };
    let mut out: Vec<GraphqlOperation> = Vec::new();
    for (i, e) in list.iter().enumerate() {
        let p = format!("data.operations[{i}]");
        let Some(o) = opt_object(ctx, Some(e), &p) else { continue };
        let target = opt_string(ctx, get_ci(o, "target"), &field(&p, "target")).unwrap_or_default();
        let verb = opt_string(ctx, get_ci(o, "verb"), &field(&p, "verb")).unwrap_or_default().to_ascii_uppercase();
        if !VERBS.iter().any(|(v, _)| *v == verb) {
            ctx.err(
                field(&p, "verb"),
                format!("{verb:?} is not a GraphQL operation type (QUERY, MUTATION, SUBSCRIPTION)"),
            );
            continue;
        }
        if !roots.contains(&(verb.clone(), target.clone())) {
            ctx.err(
                field(&p, "target"),
                format!("the schema's {} type has no field {target:?}", verb.to_ascii_lowercase()),
            );
            continue;
        }
        if out.iter().any(|x| x.target == target && x.verb == verb) {
            ctx.err(&p, format!("{verb} {target} is listed twice"));
            continue;
        }
        let auth = opt_string(ctx, get_ci(o, "authType"), &field(&p, "authType")).unwrap_or_default();
        let scopes = opt_string_list(ctx, get_ci(o, "scopes"), &field(&p, "scopes")).unwrap_or_default();
        let tier_field = field(&p, "throttlingPolicy");
        let tier = opt_string(ctx, get_ci(o, "throttlingPolicy"), &tier_field)
            .filter(|t| !t.is_empty())
            .and_then(|t| crate::known_tier(ctx, &tier_field, t));
        out.push(GraphqlOperation { target, verb, disable_security: auth == "None", scopes, tier });
    }
    out
}
