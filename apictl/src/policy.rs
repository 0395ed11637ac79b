//! Rate-limiting (throttling) policies and blocking conditions on the
//! adapter's management API, with WSO2 apictl's command names:
//!
//! ```text
//! apictl import policy rate-limiting -f <file|dir> -e <env> [-u]
//! apictl export policy rate-limiting -n <name> -e <env> [-t sub|app|advanced|custom] [--format yaml|json] [--dir d]
//! apictl get policies rate-limiting -e <env> [-q type:sub] [--format json]
//! apictl delete policy rate-limiting -n <name> -t <type> -e <env>
//! apictl add blocking-condition -e <env> --type IP|IPRANGE|API|APPLICATION|USER|SUBSCRIPTION
//!       (--value <v> | --start-ip a --end-ip b) [--invert] [--disabled]
//! apictl get blocking-conditions -e <env>
//! apictl delete blocking-condition --id <id> -e <env>
//! ```
//!
//! Policy files are apictl's export format (`type: throttling policy`,
//! `subtype`, `data`), YAML or JSON; the adapter checks them.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};

use crate::store::Settings;
use crate::{Cli, Client, Failure, Outcome, refusal, with_query};

#[derive(Debug, Subcommand)]
pub(crate) enum ImportCmd {
    /// import policy rate-limiting -f <file|dir> -e <env> [-u]
    #[command(subcommand)]
    Policy(ImportPolicy),
}

#[derive(Debug, Subcommand)]
pub(crate) enum ImportPolicy {
    /// Import rate-limiting policies (files of `export policy rate-limiting`, YAML or JSON).
    RateLimiting(ImportArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// Policy file, or a folder: every .yaml, .yml and .json file in it (stops at the first failure).
    #[arg(short = 'f', long = "file")]
    file: PathBuf,
    /// Environment.
    #[arg(short, long, visible_alias = "environment")]
    env: String,
    /// Replace a policy of the same name and type.
    #[arg(short = 'u', long = "update")]
    update: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ExportCmd {
    /// export policy rate-limiting -n <name> -e <env>
    #[command(subcommand)]
    Policy(ExportPolicy),
}

#[derive(Debug, Subcommand)]
pub(crate) enum ExportPolicy {
    /// Write a rate-limiting policy to <Type>-<name>.yaml (or .json).
    RateLimiting(ExportArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    /// Policy name.
    #[arg(short, long)]
    name: String,
    /// Environment.
    #[arg(short, long, visible_alias = "environment")]
    env: String,
    /// Policy type (needed when policies of two types share the name).
    #[arg(short = 't', long = "type", value_name = "TYPE", value_enum, ignore_case = true)]
    kind: Option<PolicyType>,
    /// File format.
    #[arg(long, value_enum, ignore_case = true, default_value_t = FileFormat::Yaml)]
    format: FileFormat,
    /// Folder to write the file in (default: the current folder).
    #[arg(long)]
    dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum GetCmd {
    /// get policies rate-limiting -e <env>
    #[command(subcommand)]
    Policies(GetPolicies),
    /// List blocking conditions.
    BlockingConditions(EnvArgs),
}

#[derive(Debug, Subcommand)]
pub(crate) enum GetPolicies {
    /// List rate-limiting policies.
    RateLimiting(GetPoliciesArgs),
}

#[derive(Debug, Args)]
pub(crate) struct GetPoliciesArgs {
    /// Environment.
    #[arg(short, long, visible_alias = "environment")]
    env: String,
    /// Filter: type:sub, type:app, type:advanced or type:custom.
    #[arg(short, long)]
    query: Option<String>,
    /// table, or json (the adapter's answer as it is).
    #[arg(long, value_enum, ignore_case = true, default_value_t = ListFormat::Table)]
    format: ListFormat,
}

#[derive(Debug, Args)]
pub(crate) struct EnvArgs {
    /// Environment.
    #[arg(short, long, visible_alias = "environment")]
    env: String,
}

#[derive(Debug, Subcommand)]
pub(crate) enum DeleteCmd {
    /// delete policy rate-limiting -n <name> -t <type> -e <env>
    #[command(subcommand)]
    Policy(DeletePolicy),
    /// Delete a blocking condition.
    BlockingCondition(DeleteBlockingArgs),
}

#[derive(Debug, Subcommand)]
pub(crate) enum DeletePolicy {
    /// Delete a rate-limiting policy.
    RateLimiting(DeletePolicyArgs),
}

#[derive(Debug, Args)]
pub(crate) struct DeletePolicyArgs {
    /// Policy name.
    #[arg(short, long)]
    name: String,
    /// Policy type.
    #[arg(short = 't', long = "type", value_name = "TYPE", value_enum, ignore_case = true)]
    kind: PolicyType,
    /// Environment.
    #[arg(short, long, visible_alias = "environment")]
    env: String,
}

#[derive(Debug, Args)]
pub(crate) struct DeleteBlockingArgs {
    /// The condition's id (`get blocking-conditions`).
    #[arg(long)]
    id: String,
    /// Environment.
    #[arg(short, long, visible_alias = "environment")]
    env: String,
}

#[derive(Debug, Subcommand)]
pub(crate) enum AddCmd {
    /// Block requests by API, application, user, subscription, IP or IP range.
    BlockingCondition(AddBlockingArgs),
}

#[derive(Debug, Args)]
pub(crate) struct AddBlockingArgs {
    /// Environment.
    #[arg(short, long, visible_alias = "environment")]
    env: String,
    /// What to block.
    #[arg(short = 't', long = "type", value_name = "TYPE", value_enum, ignore_case = true)]
    kind: ConditionType,
    /// The subject: an IP (IP), an API context (API, e.g. /pets/1.0.0), <owner>:<application>
    /// (APPLICATION), a user (USER), <context>:<version>:<owner>-<application>:<keyType> (SUBSCRIPTION).
    #[arg(long)]
    value: Option<String>,
    /// IPRANGE: the first address.
    #[arg(long)]
    start_ip: Option<String>,
    /// IPRANGE: the last address.
    #[arg(long)]
    end_ip: Option<String>,
    /// IP, IPRANGE: block every other address instead.
    #[arg(long)]
    invert: bool,
    /// Add it switched off.
    #[arg(long)]
    disabled: bool,
}

/// A policy type as API Manager's admin API names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum PolicyType {
    /// Subscription policies.
    #[value(alias = "subscription")]
    Sub,
    /// Application policies.
    #[value(alias = "application")]
    App,
    /// Advanced (API and resource) policies.
    #[value(alias = "api")]
    Advanced,
    /// Custom rules.
    #[value(alias = "global")]
    Custom,
}

impl PolicyType {
    fn param(self) -> &'static str {
        match self {
            PolicyType::Sub => "sub",
            PolicyType::App => "app",
            PolicyType::Advanced => "advanced",
            PolicyType::Custom => "custom",
        }
    }

    fn title(self) -> &'static str {
        match self {
            PolicyType::Sub => "Subscription",
            PolicyType::App => "Application",
            PolicyType::Advanced => "Advanced",
            PolicyType::Custom => "Custom",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum FileFormat {
    Yaml,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ListFormat {
    Table,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ConditionType {
    #[value(name = "IP")]
    Ip,
    #[value(name = "IPRANGE")]
    IpRange,
    #[value(name = "API")]
    Api,
    #[value(name = "APPLICATION")]
    Application,
    #[value(name = "USER")]
    User,
    #[value(name = "SUBSCRIPTION")]
    Subscription,
}

impl ConditionType {
    fn as_str(self) -> &'static str {
        match self {
            ConditionType::Ip => "IP",
            ConditionType::IpRange => "IPRANGE",
            ConditionType::Api => "API",
            ConditionType::Application => "APPLICATION",
            ConditionType::User => "USER",
            ConditionType::Subscription => "SUBSCRIPTION",
        }
    }
}

/// `url` with `segments` appended, each percent-encoded.
fn with_segments(url: &str, segments: &[&str]) -> Result<String, Failure> {
    let mut u = reqwest::Url::parse(url).map_err(|e| Failure::local(format!("{url}: {e}")))?;
    u.path_segments_mut().map_err(|()| Failure::local(format!("{url}: not a base URL")))?.extend(segments);
    Ok(u.to_string())
}

/// A plain-text table: columns as wide as their widest cell, the last one unpadded.
pub(crate) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            if i > 0 {
                l.push_str("  ");
            }
            l.push_str(cell);
            l.extend(std::iter::repeat_n(' ', w.saturating_sub(cell.chars().count())));
        }
        l.trim_end().to_string()
    };
    let mut out = line(&mut headers.iter().copied());
    for row in rows {
        out.push('\n');
        out.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    out
}

/// One line of a cell (descriptions may span lines).
fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.split_whitespace().collect::<Vec<_>>().join(" "),
        other => other.to_string(),
    }
}

fn list_items(body: &Value) -> impl Iterator<Item = &Value> {
    body.get("list").and_then(Value::as_array).into_iter().flatten()
}

/// `get policies rate-limiting` as a table.
pub(crate) fn policies_table(body: &Value) -> String {
    let rows: Vec<Vec<String>> = list_items(body)
        .map(|p| {
            vec![
                cell(&p["policyName"]),
                cell(&p["type"]),
                cell(&p["description"]),
                p["builtin"].as_bool().unwrap_or(false).to_string(),
            ]
        })
        .collect();
    format!(
        "Rate-limiting policies: {}\n{}",
        body.get("count").cloned().unwrap_or_else(|| json!(rows.len())),
        table(&["NAME", "TYPE", "DESCRIPTION", "BUILTIN"], &rows)
    )
}

/// A blocking condition's `conditionValue` in one cell: a string as it is,
/// `10.0.0.1`, `10.0.0.0-10.0.0.255`, with ` (inverted)` when inverted.
pub(crate) fn condition_value(v: &Value) -> String {
    let Some(o) = v.as_object() else { return cell(v) };
    let s = |k: &str| o.get(k).and_then(Value::as_str);
    let base = match (s("fixedIp"), s("startingIp"), s("endingIp")) {
        (Some(ip), _, _) => ip.to_string(),
        (None, Some(a), Some(b)) => format!("{a}-{b}"),
        _ => v.to_string(),
    };
    if o.get("invert").and_then(Value::as_bool) == Some(true) { format!("{base} (inverted)") } else { base }
}

/// `get blocking-conditions` as a table.
pub(crate) fn blocking_table(body: &Value) -> String {
    let rows: Vec<Vec<String>> = list_items(body)
        .map(|c| {
            vec![
                cell(&c["conditionId"]),
                cell(&c["conditionType"]),
                condition_value(&c["conditionValue"]),
                c["conditionStatus"].as_bool().unwrap_or(false).to_string(),
            ]
        })
        .collect();
    format!(
        "Blocking conditions: {}\n{}",
        body.get("count").cloned().unwrap_or_else(|| json!(rows.len())),
        table(&["ID", "TYPE", "VALUE", "ENABLED"], &rows)
    )
}

/// The files `import policy rate-limiting -f` sends: the file itself, or
/// every .yaml, .yml and .json file of a folder, by name.
pub(crate) fn policy_files(path: &Path) -> Result<Vec<PathBuf>, Failure> {
    let meta = std::fs::metadata(path).map_err(|e| Failure::local(format!("{}: {e}", path.display())))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let entries = std::fs::read_dir(path).map_err(|e| Failure::local(format!("{}: {e}", path.display())))?;
    let mut files = Vec::new();
    for entry in entries {
        let p = entry.map_err(|e| Failure::local(format!("{}: {e}", path.display())))?.path();
        let ext = p.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
        if p.is_file() && matches!(ext.as_deref(), Some("yaml" | "yml" | "json")) {
            files.push(p);
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(Failure::local(format!("{}: no .yaml, .yml or .json file in the folder", path.display())));
    }
    Ok(files)
}

/// The file `export policy rate-limiting` writes, as apictl names it:
/// `<Subscription|Application|Advanced|Custom>-<name>.<yaml|json>`. The
/// type comes from the exported document's `subtype`, else from `-t`.
pub(crate) fn export_file_name(doc: &Value, requested: Option<PolicyType>, name: &str, format: FileFormat) -> String {
    let from_doc = match doc.get("subtype").and_then(Value::as_str).map(str::trim) {
        Some("subscription policy") => Some(PolicyType::Sub),
        Some("application policy") => Some(PolicyType::App),
        Some("advanced policy") => Some(PolicyType::Advanced),
        Some("custom rule" | "custom policy") => Some(PolicyType::Custom),
        _ => None,
    };
    let title = from_doc.or(requested).map_or("Policy", PolicyType::title);
    let name = doc.get("data").and_then(|d| d.get("policyName")).and_then(Value::as_str).unwrap_or(name);
    let safe: String =
        name.chars().map(|c| if c.is_control() || "/\\:*?\"<>|".contains(c) { '_' } else { c }).collect();
    let ext = match format {
        FileFormat::Yaml => "yaml",
        FileFormat::Json => "json",
    };
    format!("{title}-{safe}.{ext}")
}

/// The body of `POST /throttling/deny-policies` for `add blocking-condition`.
pub(crate) fn blocking_body(a: &AddBlockingArgs) -> Result<Value, Failure> {
    let kind = a.kind.as_str();
    let ip_kind = matches!(a.kind, ConditionType::Ip | ConditionType::IpRange);
    if a.invert && !ip_kind {
        return Err(Failure::usage(format!("--invert is for IP and IPRANGE conditions, not {kind}")));
    }
    if a.kind != ConditionType::IpRange && (a.start_ip.is_some() || a.end_ip.is_some()) {
        return Err(Failure::usage(format!("--start-ip and --end-ip are for IPRANGE conditions, not {kind}")));
    }
    let value = match a.kind {
        ConditionType::IpRange => {
            if a.value.is_some() {
                return Err(Failure::usage("an IPRANGE condition takes --start-ip and --end-ip, not --value"));
            }
            let (Some(start), Some(end)) = (&a.start_ip, &a.end_ip) else {
                return Err(Failure::usage("an IPRANGE condition needs --start-ip and --end-ip"));
            };
            json!({"startingIp": start, "endingIp": end, "invert": a.invert})
        }
        _ => {
            let Some(v) = a.value.as_deref() else {
                return Err(Failure::usage(format!("a {kind} condition needs --value")));
            };
            if a.kind == ConditionType::Ip { json!({"fixedIp": v, "invert": a.invert}) } else { json!(v) }
        }
    };
    Ok(json!({"conditionType": kind, "conditionValue": value, "conditionStatus": !a.disabled}))
}

async fn import_one(c: &Client, url: &str, file: &Path) -> Result<Value, Failure> {
    let bytes = std::fs::read(file).map_err(|e| Failure::local(format!("{}: {e}", file.display())))?;
    let file_name = file.file_name().map_or_else(|| "policy.yaml".into(), |n| n.to_string_lossy().to_string());
    let part = reqwest::multipart::Part::bytes(bytes)
        .file_name(file_name)
        .mime_str("application/octet-stream")
        .map_err(|e| Failure::local(e.to_string()))?;
    let form = reqwest::multipart::Form::new().part("file", part);
    let (status, body, text) = c.send(c.http.post(url).multipart(form), url).await?;
    match status {
        200 | 201 => Ok(body),
        _ => Err(refusal(status, &body, &text)),
    }
}

/// `import policy rate-limiting -f <file|dir> -e <env> [-u]`
pub(crate) async fn import(cli: &Cli, s: &Settings, a: &ImportArgs) -> Outcome {
    let files = policy_files(&a.file)?;
    let c = Client::new(cli, s, &a.env, true)?;
    let mut url = c.url("/throttling/policies/import");
    if a.update {
        url.push_str("?overwrite=true");
    }
    let mut lines = Vec::new();
    let mut imported = Vec::new();
    for file in &files {
        match import_one(&c, &url, file).await {
            Ok(body) => {
                lines.push(
                    body.get("message")
                        .and_then(Value::as_str)
                        .map_or_else(|| format!("Imported {}.", file.display()), str::to_string),
                );
                imported.push(json!({"file": file, "answer": body}));
            }
            Err(mut f) => {
                let mut msg = format!("{}: {}", file.display(), f.message);
                if !imported.is_empty() {
                    msg.push_str(&format!(
                        "\n(imported before it: {}; the rest of the folder was not sent)",
                        imported.iter().filter_map(|i| i["file"].as_str()).collect::<Vec<_>>().join(", ")
                    ));
                }
                f.message = msg;
                f.detail = json!({"file": file, "error": f.detail, "imported": imported});
                return Err(f);
            }
        }
    }
    Ok((lines.join("\n"), json!({"imported": imported})))
}

/// `export policy rate-limiting -n <name> -e <env> [-t <type>] [--format yaml|json] [--dir <d>]`
pub(crate) async fn export(cli: &Cli, s: &Settings, a: &ExportArgs) -> Outcome {
    let c = Client::new(cli, s, &a.env, true)?;
    let mut q = vec![("name", a.name.clone())];
    if let Some(t) = a.kind {
        q.push(("type", t.param().to_string()));
    }
    let url = with_query(&c.url("/throttling/policies/export"), &q)?;
    let (status, body, text) = c.send(c.http.get(&url), &url).await?;
    if status != 200 {
        return Err(refusal(status, &body, &text));
    }
    if !body.is_object() {
        return Err(Failure::refused(format!("the adapter's answer is not a JSON object: {}", text.trim()), body));
    }
    let content = match a.format {
        FileFormat::Yaml => serde_norway::to_string(&body).map_err(|e| Failure::local(e.to_string()))?,
        FileFormat::Json => {
            let mut j = serde_json::to_string_pretty(&body).map_err(|e| Failure::local(e.to_string()))?;
            j.push('\n');
            j
        }
    };
    let file = export_file_name(&body, a.kind, &a.name, a.format);
    let path = match &a.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| Failure::local(format!("{}: {e}", dir.display())))?;
            dir.join(file)
        }
        None => PathBuf::from(file),
    };
    std::fs::write(&path, content).map_err(|e| Failure::local(format!("{}: {e}", path.display())))?;
    Ok((
        format!("Successfully exported rate-limiting policy {} to {}", a.name, path.display()),
        json!({"path": path, "policy": body}),
    ))
}

/// `get policies rate-limiting -e <env> [-q type:<t>] [--format json]`
pub(crate) async fn list(cli: &Cli, s: &Settings, a: &GetPoliciesArgs) -> Outcome {
    let c = Client::new(cli, s, &a.env, true)?;
    let q: Vec<(&str, String)> = a.query.iter().map(|v| ("query", v.clone())).collect();
    let url = with_query(&c.url("/throttling/policies/search"), &q)?;
    let (status, body, text) = c.send(c.http.get(&url), &url).await?;
    if status != 200 {
        return Err(refusal(status, &body, &text));
    }
    let out = match a.format {
        ListFormat::Table => policies_table(&body),
        ListFormat::Json => serde_json::to_string_pretty(&body).unwrap_or_default(),
    };
    Ok((out, body))
}

/// `delete policy rate-limiting -n <name> -t <type> -e <env>`
pub(crate) async fn delete(cli: &Cli, s: &Settings, a: &DeletePolicyArgs) -> Outcome {
    let c = Client::new(cli, s, &a.env, true)?;
    let url = with_segments(&c.url("/throttling/policies"), &[a.kind.param(), &a.name])?;
    let (status, body, text) = c.send(c.http.delete(&url), &url).await?;
    if status != 200 && status != 204 {
        return Err(refusal(status, &body, &text));
    }
    let msg = body
        .get("message")
        .and_then(Value::as_str)
        .map_or_else(|| format!("{} policy {} deleted", a.kind.title(), a.name), str::to_string);
    Ok((format!("{msg}."), json!({"policyName": a.name, "type": a.kind.param()})))
}

/// `add blocking-condition -e <env> --type <T> ...`
pub(crate) async fn add_blocking(cli: &Cli, s: &Settings, a: &AddBlockingArgs) -> Outcome {
    let payload = blocking_body(a)?;
    let c = Client::new(cli, s, &a.env, true)?;
    let url = c.url("/throttling/deny-policies");
    let (status, body, text) = c.send(c.http.post(&url).json(&payload), &url).await?;
    if status != 200 && status != 201 {
        return Err(refusal(status, &body, &text));
    }
    let id = body.get("conditionId").and_then(Value::as_str).unwrap_or("");
    Ok((
        format!(
            "Added blocking condition {id} ({} {}{}).",
            a.kind.as_str(),
            condition_value(&body["conditionValue"]),
            if a.disabled { ", disabled" } else { "" }
        ),
        body,
    ))
}

/// `get blocking-conditions -e <env>`
pub(crate) async fn list_blocking(cli: &Cli, s: &Settings, a: &EnvArgs) -> Outcome {
    let c = Client::new(cli, s, &a.env, true)?;
    let url = c.url("/throttling/deny-policies");
    let (status, body, text) = c.send(c.http.get(&url), &url).await?;
    if status != 200 {
        return Err(refusal(status, &body, &text));
    }
    Ok((blocking_table(&body), body))
}

/// `delete blocking-condition --id <id> -e <env>`
pub(crate) async fn delete_blocking(cli: &Cli, s: &Settings, a: &DeleteBlockingArgs) -> Outcome {
    let c = Client::new(cli, s, &a.env, true)?;
    let url = with_segments(&c.url("/throttling/deny-policies"), &[&a.id])?;
    let (status, body, text) = c.send(c.http.delete(&url), &url).await?;
    if status != 200 && status != 204 {
        return Err(refusal(status, &body, &text));
    }
    Ok((format!("Deleted blocking condition {}.", a.id), json!({"conditionId": a.id})))
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;
    use serde_json::json;

    use super::*;
    use crate::{Cli, Command};

    fn parse(args: &[&str]) -> Command {
        let mut all = vec!["apictl"];
        all.extend_from_slice(args);
        Cli::try_parse_from(&all).unwrap_or_else(|e| panic!("{args:?}: {e}")).command
    }

    fn add_args(args: &[&str]) -> AddBlockingArgs {
        let mut all = vec!["add", "blocking-condition", "-e", "dev"];
        all.extend_from_slice(args);
        match parse(&all) {
            Command::Add(AddCmd::BlockingCondition(a)) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn wso2_policy_commands_parse() {
        match parse(&["import", "policy", "rate-limiting", "-f", "Tiered.yaml", "-e", "dev", "-u"]) {
            Command::Import(ImportCmd::Policy(ImportPolicy::RateLimiting(a))) => {
                assert_eq!(a.file, PathBuf::from("Tiered.yaml"));
                assert_eq!(a.env, "dev");
                assert!(a.update);
            }
            other => panic!("{other:?}"),
        }
        match parse(&["import", "policy", "rate-limiting", "--file", "d", "--environment", "dev"]) {
            Command::Import(ImportCmd::Policy(ImportPolicy::RateLimiting(a))) => assert!(!a.update),
            other => panic!("{other:?}"),
        }
        match parse(&["export", "policy", "rate-limiting", "-n", "Gold", "-e", "dev", "-t", "sub", "--format", "JSON"])
        {
            Command::Export(ExportCmd::Policy(ExportPolicy::RateLimiting(a))) => {
                assert_eq!((a.name.as_str(), a.kind, a.format), ("Gold", Some(PolicyType::Sub), FileFormat::Json));
                assert_eq!(a.dir, None);
            }
            other => panic!("{other:?}"),
        }
        match parse(&["export", "policy", "rate-limiting", "-n", "T", "-e", "dev", "--dir", "out"]) {
            Command::Export(ExportCmd::Policy(ExportPolicy::RateLimiting(a))) => {
                assert_eq!((a.kind, a.format), (None, FileFormat::Yaml), "YAML by default, like apictl");
                assert_eq!(a.dir, Some(PathBuf::from("out")));
            }
            other => panic!("{other:?}"),
        }
        match parse(&["get", "policies", "rate-limiting", "-e", "dev", "-q", "type:sub", "--format", "json"]) {
            Command::Get(GetCmd::Policies(GetPolicies::RateLimiting(a))) => {
                assert_eq!((a.query.as_deref(), a.format), (Some("type:sub"), ListFormat::Json));
            }
            other => panic!("{other:?}"),
        }
        match parse(&["delete", "policy", "rate-limiting", "-n", "Gold", "-t", "subscription", "-e", "dev"]) {
            Command::Delete(DeleteCmd::Policy(DeletePolicy::RateLimiting(a))) => assert_eq!(a.kind, PolicyType::Sub),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse(&["get", "blocking-conditions", "-e", "dev"]),
            Command::Get(GetCmd::BlockingConditions(_))
        ));
        match parse(&["delete", "blocking-condition", "--id", "abc", "-e", "dev"]) {
            Command::Delete(DeleteCmd::BlockingCondition(a)) => assert_eq!(a.id, "abc"),
            other => panic!("{other:?}"),
        }
        assert_eq!(add_args(&["--type", "ip", "--value", "10.0.0.1"]).kind, ConditionType::Ip, "any case");
    }

    #[test]
    fn usage_errors_are_refused_by_the_parser() {
        for args in [
            &["apictl", "delete", "policy", "rate-limiting", "-n", "Gold", "-e", "dev"][..], // no -t
            &["apictl", "delete", "policy", "rate-limiting", "-n", "Gold", "-t", "bronze", "-e", "dev"],
            &["apictl", "import", "policy", "rate-limiting", "-e", "dev"], // no -f
            &["apictl", "export", "policy", "rate-limiting", "-n", "G", "-e", "dev", "--format", "xml"],
            &["apictl", "add", "blocking-condition", "-e", "dev", "--type", "HEADER", "--value", "x"],
            &["apictl", "get", "policies", "rate-limiting"], // no -e
        ] {
            let e = Cli::try_parse_from(args).expect_err(&format!("{args:?} parsed"));
            assert_eq!(e.exit_code(), 2, "{args:?}");
        }
    }

    #[test]
    fn export_files_are_named_like_apictl() {
        let doc =
            |subtype: &str| json!({"type": "throttling policy", "subtype": subtype, "data": {"policyName": "Tiered"}});
        assert_eq!(export_file_name(&doc("advanced policy"), None, "tiered", FileFormat::Yaml), "Advanced-Tiered.yaml");
        assert_eq!(
            export_file_name(&doc("subscription policy"), None, "x", FileFormat::Json),
            "Subscription-Tiered.json"
        );
        assert_eq!(
            export_file_name(&doc("application policy"), None, "x", FileFormat::Yaml),
            "Application-Tiered.yaml"
        );
        assert_eq!(export_file_name(&doc("custom rule"), None, "x", FileFormat::Yaml), "Custom-Tiered.yaml");
        // No subtype: -t, then the name asked for; never a path separator.
        let bare = json!({"data": {}});
        assert_eq!(export_file_name(&bare, Some(PolicyType::App), "a/b", FileFormat::Yaml), "Application-a_b.yaml");
        assert_eq!(export_file_name(&bare, None, "Gold", FileFormat::Json), "Policy-Gold.json");
    }

    #[test]
    fn policies_are_listed_as_a_table() {
        let body = json!({"count": 2, "list": [
            {"policyName": "Gold", "displayName": "Gold", "description": "5000 a minute", "type": "sub", "builtin": true},
            {"policyName": "Tiered", "description": "Free plans\nget less", "type": "advanced", "builtin": false},
        ]});
        assert_eq!(
            policies_table(&body),
            "Rate-limiting policies: 2\n\
             NAME    TYPE      DESCRIPTION          BUILTIN\n\
             Gold    sub       5000 a minute        true\n\
             Tiered  advanced  Free plans get less  false"
        );
        assert_eq!(
            policies_table(&json!({"count": 0, "list": []})),
            "Rate-limiting policies: 0\nNAME  TYPE  DESCRIPTION  BUILTIN"
        );
    }

    #[test]
    fn blocking_conditions_are_listed_as_a_table() {
        let body = json!({"count": 3, "list": [
            {"conditionId": "1", "conditionType": "IP", "conditionValue": {"fixedIp": "10.1.1.1", "invert": false}, "conditionStatus": true},
            {"conditionId": "2", "conditionType": "IPRANGE",
             "conditionValue": {"startingIp": "10.0.0.0", "endingIp": "10.0.0.255", "invert": true}, "conditionStatus": true},
            {"conditionId": "3", "conditionType": "USER", "conditionValue": "bob", "conditionStatus": false},
        ]});
        assert_eq!(
            blocking_table(&body),
            "Blocking conditions: 3\n\
             ID  TYPE     VALUE                           ENABLED\n\
             1   IP       10.1.1.1                        true\n\
             2   IPRANGE  10.0.0.0-10.0.0.255 (inverted)  true\n\
             3   USER     bob                             false"
        );
    }

    #[test]
    fn blocking_condition_bodies() {
        assert_eq!(
            blocking_body(&add_args(&["--type", "IP", "--value", "10.1.1.1", "--invert"])).expect("body"),
            json!({"conditionType": "IP", "conditionValue": {"fixedIp": "10.1.1.1", "invert": true}, "conditionStatus": true})
        );
        assert_eq!(
            blocking_body(&add_args(&["--type", "IPRANGE", "--start-ip", "10.0.0.0", "--end-ip", "10.0.0.9"]))
                .expect("body"),
            json!({"conditionType": "IPRANGE",
                   "conditionValue": {"startingIp": "10.0.0.0", "endingIp": "10.0.0.9", "invert": false},
                   "conditionStatus": true})
        );
        assert_eq!(
            blocking_body(&add_args(&["--type", "APPLICATION", "--value", "admin:App", "--disabled"])).expect("body"),
            json!({"conditionType": "APPLICATION", "conditionValue": "admin:App", "conditionStatus": false})
        );
        for (args, says) in [
            (&["--type", "IPRANGE", "--start-ip", "10.0.0.0"][..], "--end-ip"),
            (&["--type", "IPRANGE", "--value", "10.0.0.0"], "not --value"),
            (&["--type", "USER"], "needs --value"),
            (&["--type", "USER", "--value", "bob", "--invert"], "--invert"),
            (&["--type", "IP", "--value", "10.0.0.1", "--start-ip", "10.0.0.0"], "--start-ip"),
        ] {
            let f = blocking_body(&add_args(args)).expect_err(&format!("{args:?}"));
            assert_eq!(f.code, 2, "{args:?}: a usage error");
            assert!(f.message.contains(says), "{args:?}: {}", f.message);
        }
    }

    #[test]
    fn a_folder_imports_its_yaml_and_json_files_in_order() {
        let dir = tempfile::tempdir().expect("dir");
        for f in ["b.yaml", "a.json", "c.yml", "notes.txt", "D.YAML"] {
            std::fs::write(dir.path().join(f), "x").expect("write");
        }
        std::fs::create_dir(dir.path().join("sub.yaml")).expect("dir");
        let names: Vec<String> = policy_files(dir.path())
            .expect("files")
            .iter()
            .map(|p| p.file_name().expect("name").to_string_lossy().to_string())
            .collect();
        assert_eq!(names, ["D.YAML", "a.json", "b.yaml", "c.yml"]);
        // A file is sent whatever its name; an empty folder or a missing path is a local error.
        let one = dir.path().join("notes.txt");
        assert_eq!(policy_files(&one).expect("file"), [one]);
        let empty = tempfile::tempdir().expect("dir");
        assert_eq!(policy_files(empty.path()).expect_err("empty").code, 4);
        assert_eq!(policy_files(&dir.path().join("missing.yaml")).expect_err("missing").code, 4);
    }

    #[test]
    fn path_segments_are_encoded() {
        let base = "https://127.0.0.1:9843/api/mgw/adapter/0.1/throttling/policies";
        assert_eq!(
            with_segments(base, &["advanced", "10K Per/Min"]).expect("url"),
            format!("{base}/advanced/10K%20Per%2FMin")
        );
    }
}
