//! apictl: put API projects on the gateway.
//!
//! ```text
//! apictl init <name> --oas <file>                 a new project (also: apictl project init)
//! apictl project validate <dir|zip>               offline, with the adapter's own parser
//! apictl env add <name> --adapter <url>           apictl env remove <name> | apictl env list
//! apictl login <env> -u <user> [-p <pw> | --password-stdin]    apictl logout <env>
//! apictl project push <dir|zip> -e <env> [--override] [--wait]
//! apictl project list -e <env> [-q type:http] [-l N]
//! apictl project delete -n <name> -v <version> -e <env> [--vhost h] [-g env...]
//! WSO2 aliases: apictl mg add env | mg remove env | mg login | mg logout | mg deploy api -f |
//!               mg undeploy api | mg get apis
//! apictl import policy rate-limiting -f <file|dir> -e <env> [-u]
//! apictl export policy rate-limiting -n <name> -e <env> [-t <type>] [--format yaml|json] [--dir d]
//! apictl get policies rate-limiting -e <env> [-q type:sub] [--format json]
//! apictl delete policy rate-limiting -n <name> -t <sub|app|advanced|custom> -e <env>
//! apictl add blocking-condition -e <env> --type <IP|IPRANGE|API|...> --value <v> | --start-ip a --end-ip b
//! apictl get blocking-conditions -e <env>       apictl delete blocking-condition --id <id> -e <env>
//! ```
//!
//! Exit codes: 0 done; 1 refused by the adapter or invalid project; 2 usage;
//! 3 the adapter cannot be reached (connection, TLS); 4 local settings
//! (unknown environment, not logged in, unreadable file).

mod policy;
mod project;
mod store;

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::{Value, json};

use crate::store::{Env, Settings};

const BASE_PATH: &str = "/api/mgw/adapter/0.1";

#[derive(Debug, Parser)]
#[command(
    name = "apictl",
    version,
    about = "Put API projects and rate-limiting policies on the gateway",
    after_help = EXIT_CODES
)]
struct Cli {
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Output::Text)]
    output: Output,
    /// Trust this CA certificate (PEM) for the adapter's TLS certificate.
    #[arg(long, global = true)]
    ca_cert: Option<PathBuf>,
    /// Do not verify the adapter's TLS certificate (development certificates only).
    #[arg(long, short = 'k', global = true)]
    insecure: bool,
    #[command(subcommand)]
    command: Command,
}

const EXIT_CODES: &str = "Exit codes: 0 done; 1 refused by the adapter or invalid project; 2 usage; \
3 the adapter cannot be reached; 4 local settings (unknown environment, not logged in, unreadable file).";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a project from an OpenAPI definition.
    Init(InitArgs),
    /// API projects: init, validate, push, list, delete.
    #[command(subcommand)]
    Project(ProjectCmd),
    /// Environments (adapters).
    #[command(subcommand)]
    Env(EnvCmd),
    /// Log in to an environment (keeps a token).
    Login(LoginArgs),
    /// Forget the token of an environment.
    Logout {
        /// Environment.
        env: String,
    },
    /// WSO2 apictl's `mg` commands.
    #[command(subcommand)]
    Mg(MgCmd),
    /// Import rate-limiting policies (import policy rate-limiting).
    #[command(subcommand)]
    Import(policy::ImportCmd),
    /// Export a rate-limiting policy to a file (export policy rate-limiting).
    #[command(subcommand)]
    Export(policy::ExportCmd),
    /// List rate-limiting policies or blocking conditions.
    #[command(subcommand)]
    Get(policy::GetCmd),
    /// Delete a rate-limiting policy or a blocking condition.
    #[command(subcommand)]
    Delete(policy::DeleteCmd),
    /// Add a blocking condition.
    #[command(subcommand)]
    Add(policy::AddCmd),
}

#[derive(Debug, Args)]
struct InitArgs {
    /// Folder of the new project.
    name: PathBuf,
    /// OpenAPI definition (YAML or JSON).
    #[arg(long)]
    oas: PathBuf,
    /// API context (default: /<name in lower case>).
    #[arg(long)]
    context: Option<String>,
}

#[derive(Debug, Subcommand)]
enum ProjectCmd {
    /// Create a project from an OpenAPI definition.
    Init(InitArgs),
    /// Check a project offline with the adapter's parser.
    Validate {
        /// Project folder or zip.
        path: PathBuf,
    },
    /// Deploy a project.
    Push(PushArgs),
    /// List deployed APIs.
    List(ListArgs),
    /// Undeploy an API.
    Delete(DeleteArgs),
}

#[derive(Debug, Args)]
struct PushArgs {
    /// Project folder or zip.
    #[arg(required_unless_present = "file")]
    path: Option<PathBuf>,
    /// Project folder or zip (WSO2's -f).
    #[arg(short = 'f', long = "file", hide = true)]
    file: Option<PathBuf>,
    /// Environment.
    #[arg(short, long)]
    env: String,
    /// Replace the API if it is deployed.
    #[arg(long = "override", short = 'O', visible_alias = "overwrite")]
    replace: bool,
    /// Return once every connected router applied the change (or fail with its error).
    #[arg(long)]
    wait: bool,
    /// How long --wait waits, seconds.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
}

#[derive(Debug, Args)]
struct ListArgs {
    /// Environment.
    #[arg(short, long)]
    env: String,
    /// Filter, e.g. type:http or type:ws.
    #[arg(short, long)]
    query: Option<String>,
    /// At most this many.
    #[arg(short, long)]
    limit: Option<u64>,
}

#[derive(Debug, Args)]
struct DeleteArgs {
    /// API name.
    #[arg(short, long)]
    name: String,
    /// API version.
    #[arg(short, long)]
    version: String,
    /// Environment.
    #[arg(short, long)]
    env: String,
    /// Only this virtual host.
    #[arg(long, short = 't')]
    vhost: Option<String>,
    /// Only these gateway environments (labels).
    #[arg(long = "gateway-env", short = 'g')]
    gateway_envs: Vec<String>,
}

#[derive(Debug, Subcommand)]
enum EnvCmd {
    /// Add (or replace) an environment.
    Add {
        /// Name.
        name: String,
        /// The adapter's management API, e.g. https://localhost:9843.
        #[arg(long, short = 'a')]
        adapter: String,
    },
    /// Remove an environment (and its token).
    Remove {
        /// Name.
        name: String,
    },
    /// List environments.
    List,
}

#[derive(Debug, Args)]
struct LoginArgs {
    /// Environment.
    env: String,
    /// User.
    #[arg(short, long)]
    username: String,
    /// Password (prefer --password-stdin).
    #[arg(short, long, conflicts_with = "password_stdin")]
    password: Option<String>,
    /// Read the password from standard input.
    #[arg(long)]
    password_stdin: bool,
}

#[derive(Debug, Subcommand)]
enum MgCmd {
    /// mg add env <name> --adapter <url>
    #[command(subcommand)]
    Add(MgAdd),
    /// mg remove env <name>
    #[command(subcommand)]
    Remove(MgRemove),
    /// mg login <env> -u <user>
    Login(LoginArgs),
    /// mg logout <env>
    Logout {
        /// Environment.
        env: String,
    },
    /// mg deploy api -f <project> -e <env> [-o]
    #[command(subcommand)]
    Deploy(MgDeploy),
    /// mg undeploy api -n <name> -v <version> -e <env>
    #[command(subcommand)]
    Undeploy(MgUndeploy),
    /// mg get apis -e <env>
    #[command(subcommand)]
    Get(MgGet),
}

#[derive(Debug, Subcommand)]
enum MgAdd {
    /// Add an environment.
    Env {
        /// Name.
        name: String,
        /// The adapter's URL.
        #[arg(long, short = 'a')]
        adapter: String,
    },
}

#[derive(Debug, Subcommand)]
enum MgRemove {
    /// Remove an environment.
    Env {
        /// Name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum MgDeploy {
    /// Deploy an API project.
    Api(MgDeployArgs),
}

#[derive(Debug, Args)]
struct MgDeployArgs {
    /// Project folder or zip.
    #[arg(short = 'f', long = "file")]
    file: PathBuf,
    /// Environment.
    #[arg(short, long)]
    env: String,
    /// Replace the API if it is deployed.
    #[arg(short = 'o', long = "override")]
    replace: bool,
    /// Accepted for compatibility (nothing to clean up).
    #[arg(long)]
    skip_cleanup: bool,
}

#[derive(Debug, Subcommand)]
enum MgUndeploy {
    /// Undeploy an API.
    Api(DeleteArgs),
}

#[derive(Debug, Subcommand)]
enum MgGet {
    /// List APIs.
    Apis(ListArgs),
}

/// A failure, with the exit code it maps to.
#[derive(Debug)]
struct Failure {
    code: u8,
    message: String,
    detail: Value,
}

impl Failure {
    fn local(message: impl Into<String>) -> Failure {
        Failure { code: 4, message: message.into(), detail: Value::Null }
    }
    fn refused(message: impl Into<String>, detail: Value) -> Failure {
        Failure { code: 1, message: message.into(), detail }
    }
    fn unreachable(message: impl Into<String>) -> Failure {
        Failure { code: 3, message: message.into(), detail: Value::Null }
    }
    fn usage(message: impl Into<String>) -> Failure {
        Failure { code: 2, message: message.into(), detail: Value::Null }
    }
}

impl From<store::StoreError> for Failure {
    fn from(e: store::StoreError) -> Failure {
        Failure::local(e.to_string())
    }
}

type Outcome = Result<(String, Value), Failure>;

/// An HTTP client for one environment.
struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

fn describe_send_error(e: &reqwest::Error, url: &str) -> String {
    let mut msg = format!("cannot reach {url}: {e}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(&format!(": {s}"));
        source = s.source();
    }
    if msg.contains("certificate") || msg.contains("UnknownIssuer") {
        msg.push_str(" (give the adapter's CA with --ca-cert, or --insecure for development certificates)");
    }
    msg
}

impl Client {
    fn new(cli: &Cli, settings: &Settings, env_name: &str, need_token: bool) -> Result<Client, Failure> {
        let env = settings.environment(env_name)?.ok_or_else(|| {
            Failure::local(format!(
                "unknown environment {env_name:?}: add it with `apictl env add {env_name} --adapter <url>`"
            ))
        })?;
        let token = settings.token(env_name)?;
        if need_token && token.is_none() {
            return Err(Failure::local(format!(
                "not logged in to {env_name}: run `apictl login {env_name} -u <user>`"
            )));
        }
        let mut b = reqwest::Client::builder().timeout(Duration::from_secs(120)).no_proxy();
        if let Some(ca) = &cli.ca_cert {
            let pem = std::fs::read(ca).map_err(|e| Failure::local(format!("{}: {e}", ca.display())))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| Failure::local(format!("{}: not a PEM certificate: {e}", ca.display())))?;
            b = b.add_root_certificate(cert);
        }
        if cli.insecure {
            b = b.danger_accept_invalid_certs(true);
        }
        let http = b.build().map_err(|e| Failure::local(e.to_string()))?;
        Ok(Client { http, base: format!("{}{BASE_PATH}", env.adapter.trim_end_matches('/')), token })
    }

    async fn send(&self, rb: reqwest::RequestBuilder, url: &str) -> Result<(u16, Value, String), Failure> {
        let rb = match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        };
        let r = rb.send().await.map_err(|e| Failure::unreachable(describe_send_error(&e, url)))?;
        let status = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok((status, json, text))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// `url` with the query parameters `q`, encoded.
fn with_query(url: &str, q: &[(&str, String)]) -> Result<String, Failure> {
    let mut u = reqwest::Url::parse(url).map_err(|e| Failure::local(format!("{url}: {e}")))?;
    if !q.is_empty() {
        u.query_pairs_mut().extend_pairs(q.iter().map(|(k, v)| (*k, v.as_str())));
    }
    Ok(u.to_string())
}

/// The adapter's error as one line, with every listed problem after it.
fn refusal(status: u16, body: &Value, text: &str) -> Failure {
    let mut msg = match body.get("message").and_then(Value::as_str) {
        Some(m) => format!("{status} {m}"),
        None if status == 401 => "401 Unauthorized: log in again (`apictl login <env> -u <user>`)".into(),
        None => format!("{status} {}", text.trim()),
    };
    if let Some(d) = body.get("description").and_then(Value::as_str) {
        msg.push_str(&format!(": {d}"));
    }
    for e in body.get("error").and_then(Value::as_array).into_iter().flatten() {
        if let Some(m) = e.get("message").and_then(Value::as_str) {
            msg.push_str(&format!("\n  - {m}"));
        }
    }
    Failure::refused(msg, body.clone())
}

async fn login(cli: &Cli, s: &Settings, a: &LoginArgs) -> Outcome {
    let password = match (&a.password, a.password_stdin) {
        (Some(p), _) => p.clone(),
        (None, true) => {
            let mut p = String::new();
            std::io::stdin().read_to_string(&mut p).map_err(|e| Failure::local(format!("standard input: {e}")))?;
            p.trim_end_matches(['\n', '\r']).to_string()
        }
        (None, false) => return Err(Failure::local("give the password with --password-stdin (or -p)")),
    };
    let c = Client::new(cli, s, &a.env, false)?;
    let c = Client { token: None, ..c };
    let url = c.url("/oauth2/token");
    let (status, body, text) =
        c.send(c.http.post(&url).json(&json!({"username": a.username, "password": password})), &url).await?;
    if status != 200 {
        return Err(if status == 401 {
            Failure::refused("401 wrong user name or password", body)
        } else {
            refusal(status, &body, &text)
        });
    }
    let token = body
        .get("accessToken")
        .and_then(Value::as_str)
        .ok_or_else(|| Failure::refused("no accessToken in the answer", body.clone()))?;
    s.save_token(&a.env, token)?;
    Ok((format!("Logged in to {} as {}.", a.env, a.username), json!({"env": a.env, "username": a.username})))
}

async fn push(
    cli: &Cli,
    s: &Settings,
    path: &std::path::Path,
    env: &str,
    replace: bool,
    wait: Option<Duration>,
) -> Outcome {
    let zip = project::zip_bytes(path).map_err(|e| Failure::local(e.to_string()))?;
    let c = Client::new(cli, s, env, true)?;
    let mut url = c.url("/apis");
    if replace {
        url.push_str("?override=true");
    }
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| "project".into());
    let file_name = if name.ends_with(".zip") { name } else { format!("{name}.zip") };
    let part = reqwest::multipart::Part::bytes(zip)
        .file_name(file_name)
        .mime_str("application/octet-stream")
        .map_err(|e| Failure::local(e.to_string()))?;
    let form = reqwest::multipart::Form::new().part("file", part);
    let (status, body, text) = c.send(c.http.post(&url).multipart(form), &url).await?;
    match status {
        200 => {}
        409 if body.get("message").and_then(Value::as_str) == Some("API already exists") => {
            return Err(refusal(status, &body, &text));
        }
        _ => return Err(refusal(status, &body, &text)),
    }
    let api = format!(
        "{} {}",
        body.get("apiName").and_then(Value::as_str).unwrap_or("API"),
        body.get("version").and_then(Value::as_str).unwrap_or("")
    );
    if let Some(limit) = wait {
        let routers = wait_applied(&c, &body, limit).await?;
        return Ok((
            format!("Deployed {api}; applied by {routers} router(s)."),
            json!({"deployed": body, "appliedBy": routers}),
        ));
    }
    Ok((format!("Successfully deployed {api} to the gateway."), body))
}

/// Waits until every connected router of the environments the deploy went
/// to applied it (`GET /apis/status`), or fails with a router's rejection.
async fn wait_applied(c: &Client, deployed: &Value, limit: Duration) -> Result<usize, Failure> {
    let q = [
        ("apiName", deployed.get("apiName").and_then(Value::as_str).unwrap_or_default().to_string()),
        ("version", deployed.get("version").and_then(Value::as_str).unwrap_or_default().to_string()),
    ];
    let url = with_query(&c.url("/apis/status"), &q)?;
    let start = Instant::now();
    loop {
        let (status, body, text) = c.send(c.http.get(&url), &url).await?;
        if status != 200 {
            return Err(refusal(status, &body, &text));
        }
        let routers: Vec<&Value> = body
            .get("environments")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .flat_map(|e| e.get("routers").and_then(Value::as_array).into_iter().flatten())
            .collect();
        match body.get("state").and_then(Value::as_str) {
            Some("applied") => return Ok(routers.len()),
            Some("rejected") => {
                let why: Vec<String> = routers
                    .iter()
                    .filter_map(|r| {
                        let rej = r.get("rejected").filter(|v| !v.is_null())?;
                        Some(format!(
                            "{} rejected the configuration ({}): {}",
                            r.get("instance").and_then(Value::as_str).unwrap_or("a router"),
                            rej.get("type").and_then(Value::as_str).unwrap_or(""),
                            rej.get("message").and_then(Value::as_str).unwrap_or("")
                        ))
                    })
                    .collect();
                return Err(Failure::refused(why.join("\n"), body.clone()));
            }
            _ => {}
        }
        if start.elapsed() > limit {
            let pending = routers.iter().filter(|r| r.get("applied") != Some(&Value::Bool(true))).count();
            return Err(Failure::refused(
                format!("{pending} router(s) did not apply the change within {limit:?}"),
                body,
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn list(cli: &Cli, s: &Settings, a: &ListArgs) -> Outcome {
    let c = Client::new(cli, s, &a.env, true)?;
    let mut q: Vec<(&str, String)> = Vec::new();
    if let Some(v) = &a.query {
        q.push(("query", v.clone()));
    }
    if let Some(l) = a.limit {
        q.push(("limit", l.to_string()));
    }
    let url = with_query(&c.url("/apis"), &q)?;
    let (status, body, text) = c.send(c.http.get(&url), &url).await?;
    if status != 200 {
        return Err(refusal(status, &body, &text));
    }
    let mut out = format!(
        "APIs total: {} received: {}\n{:<24} {:<10} {:<6} {:<28} {:<20} {}",
        body["total"], body["count"], "NAME", "VERSION", "TYPE", "CONTEXT", "VHOST", "GATEWAY ENVS"
    );
    for i in body["list"].as_array().into_iter().flatten() {
        let envs: Vec<&str> = i["gateway-envs"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        out.push_str(&format!(
            "\n{:<24} {:<10} {:<6} {:<28} {:<20} {}",
            i["apiName"].as_str().unwrap_or(""),
            i["version"].as_str().unwrap_or(""),
            i["apiType"].as_str().unwrap_or(""),
            i["context"].as_str().unwrap_or(""),
            i["vhost"].as_str().unwrap_or(""),
            envs.join(",")
        ));
    }
    Ok((out, body))
}

async fn delete(cli: &Cli, s: &Settings, a: &DeleteArgs) -> Outcome {
    let c = Client::new(cli, s, &a.env, true)?;
    let mut q = vec![("apiName", a.name.clone()), ("version", a.version.clone())];
    if let Some(v) = &a.vhost {
        q.push(("vhost", v.clone()));
    }
    if !a.gateway_envs.is_empty() {
        q.push(("environments", a.gateway_envs.join(":")));
    }
    let url = with_query(&c.url("/apis"), &q)?;
    let (status, body, text) = c.send(c.http.delete(&url), &url).await?;
    if status != 200 {
        return Err(refusal(status, &body, &text));
    }
    Ok((format!("API {} {} undeployed.", a.name, a.version), json!({"apiName": a.name, "version": a.version})))
}

fn init(a: &InitArgs) -> Outcome {
    let (name, version) =
        project::init(&a.name, &a.oas, a.context.as_deref()).map_err(|e| Failure::local(e.to_string()))?;
    Ok((
        format!(
            "Created project {} for {name} {version}. Check api.yaml (context, endpoints), then `apictl project push {} -e <env>`.",
            a.name.display(),
            a.name.display()
        ),
        json!({"path": a.name, "apiName": name, "version": version}),
    ))
}

fn validate(path: &std::path::Path) -> Outcome {
    match project::validate(path) {
        Ok((name, version)) => Ok((
            format!("{} is a valid project: {name} {version}.", path.display()),
            json!({"valid": true, "apiName": name, "version": version}),
        )),
        Err(project::ProjectError::Invalid(n, list)) => {
            let mut msg = format!("{} has {n} problem(s):", path.display());
            for p in &list {
                msg.push_str(&format!("\n  - {p}"));
            }
            Err(Failure::refused(msg, json!({"valid": false, "problems": list})))
        }
        Err(e) => Err(Failure::local(e.to_string())),
    }
}

fn add_env(s: &Settings, name: &str, adapter: &str) -> Outcome {
    let url = reqwest::Url::parse(adapter).map_err(|e| Failure::local(format!("--adapter {adapter:?}: {e}")))?;
    if url.scheme() != "https" {
        return Err(Failure::local(format!("--adapter {adapter:?}: the management API is HTTPS")));
    }
    s.add_environment(name, Env { adapter: adapter.trim_end_matches('/').to_string() })?;
    Ok((format!("Added environment {name} ({adapter})."), json!({"env": name, "adapter": adapter})))
}

async fn run(cli: &Cli) -> Outcome {
    let s = Settings::locate()?;
    match &cli.command {
        Command::Init(a) | Command::Project(ProjectCmd::Init(a)) => init(a),
        Command::Project(ProjectCmd::Validate { path }) => validate(path),
        Command::Project(ProjectCmd::Push(a)) => {
            let path =
                a.path.as_ref().or(a.file.as_ref()).ok_or_else(|| Failure::local("give the project folder or zip"))?;
            push(cli, &s, path, &a.env, a.replace, a.wait.then(|| Duration::from_secs(a.timeout))).await
        }
        Command::Project(ProjectCmd::List(a)) | Command::Mg(MgCmd::Get(MgGet::Apis(a))) => list(cli, &s, a).await,
        Command::Project(ProjectCmd::Delete(a)) | Command::Mg(MgCmd::Undeploy(MgUndeploy::Api(a))) => {
            delete(cli, &s, a).await
        }
        Command::Env(EnvCmd::Add { name, adapter }) | Command::Mg(MgCmd::Add(MgAdd::Env { name, adapter })) => {
            add_env(&s, name, adapter)
        }
        Command::Env(EnvCmd::Remove { name }) | Command::Mg(MgCmd::Remove(MgRemove::Env { name })) => {
            if s.remove_environment(name)? {
                Ok((format!("Removed environment {name}."), json!({"env": name})))
            } else {
                Err(Failure::local(format!("unknown environment {name:?}")))
            }
        }
        Command::Env(EnvCmd::List) => {
            let envs = s.environments()?;
            let text = envs.iter().map(|(n, e)| format!("{n:<16} {}", e.adapter)).collect::<Vec<_>>().join("\n");
            Ok((
                if text.is_empty() { "No environment yet: apictl env add <name> --adapter <url>".into() } else { text },
                json!(envs),
            ))
        }
        Command::Login(a) | Command::Mg(MgCmd::Login(a)) => login(cli, &s, a).await,
        Command::Logout { env } | Command::Mg(MgCmd::Logout { env }) => {
            s.remove_token(env)?;
            Ok((format!("Logged out of {env}."), json!({"env": env})))
        }
        Command::Mg(MgCmd::Deploy(MgDeploy::Api(a))) => push(cli, &s, &a.file, &a.env, a.replace, None).await,
        Command::Import(policy::ImportCmd::Policy(policy::ImportPolicy::RateLimiting(a))) => {
            policy::import(cli, &s, a).await
        }
        Command::Export(policy::ExportCmd::Policy(policy::ExportPolicy::RateLimiting(a))) => {
            policy::export(cli, &s, a).await
        }
        Command::Get(policy::GetCmd::Policies(policy::GetPolicies::RateLimiting(a))) => policy::list(cli, &s, a).await,
        Command::Get(policy::GetCmd::BlockingConditions(a)) => policy::list_blocking(cli, &s, a).await,
        Command::Delete(policy::DeleteCmd::Policy(policy::DeletePolicy::RateLimiting(a))) => {
            policy::delete(cli, &s, a).await
        }
        Command::Delete(policy::DeleteCmd::BlockingCondition(a)) => policy::delete_blocking(cli, &s, a).await,
        Command::Add(policy::AddCmd::BlockingCondition(a)) => policy::add_blocking(cli, &s, a).await,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("apictl: {e}");
            return ExitCode::from(4);
        }
    };
    match runtime.block_on(run(&cli)) {
        Ok((text, value)) => {
            match cli.output {
                Output::Text => println!("{text}"),
                Output::Json => println!("{}", serde_json::to_string_pretty(&value).unwrap_or_default()),
            }
            ExitCode::SUCCESS
        }
        Err(f) => {
            match cli.output {
                Output::Text => eprintln!("apictl: {}", f.message),
                Output::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&json!({"error": f.message, "exitCode": f.code, "detail": f.detail}))
                        .unwrap_or_default()
                ),
            }
            ExitCode::from(f.code)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }

    #[test]
    fn wso2_commands_parse() {
        use clap::Parser as _;
        for args in [
            &["apictl", "mg", "add", "env", "dev", "--adapter", "https://localhost:9843"][..],
            &["apictl", "mg", "login", "dev", "-u", "admin", "-p", "admin"],
            &["apictl", "mg", "deploy", "api", "-f", "p", "-e", "dev", "-o"],
            &["apictl", "mg", "undeploy", "api", "-n", "P", "-v", "1", "-e", "dev", "-t", "h", "-g", "Default"],
            &["apictl", "mg", "get", "apis", "-e", "dev", "-q", "type:http", "-l", "5"],
            &["apictl", "project", "push", "p", "-e", "dev", "--override", "--wait"],
        ] {
            super::Cli::try_parse_from(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        }
    }
}
