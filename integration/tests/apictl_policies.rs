//! The real `apictl` binary against the real adapter: rate-limiting policies
//! with WSO2 apictl's commands (import, with and without `-u`, a folder,
//! get, export and re-import, delete), blocking conditions (add, get,
//! delete), and their errors and exit codes.

use std::path::Path;
use std::process::{Command, Stdio};

use integration::{Gateway, XdsMode, workspace_bin};
use serde_json::Value;

const TIERED: &str = "type: throttling policy
subtype: advanced policy
data:
  policyName: Tiered
  defaultLimit:
    type: REQUESTCOUNTLIMIT
    requestCount: {timeUnit: day, unitTime: 1, requestCount: 100}
";

const SILVER_JSON: &str = r#"{"type": "throttling policy", "subtype": "subscription policy",
  "data": {"policyName": "Silver2", "defaultLimit": {"type": "REQUESTCOUNTLIMIT",
  "requestCount": {"timeUnit": "min", "unitTime": 1, "requestCount": 50}}}}"#;

struct Cli {
    config: tempfile::TempDir,
    ca: std::path::PathBuf,
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Cli {
    /// Runs apictl (trusting the adapter's CA) in `cwd`.
    fn run_in(&self, cwd: &Path, args: &[&str]) -> Out {
        let out = Command::new(workspace_bin("apictl"))
            .arg("--ca-cert")
            .arg(&self.ca)
            .args(args)
            .current_dir(cwd)
            .env("APICTL_CONFIG_DIR", self.config.path())
            .stdin(Stdio::null())
            .output()
            .expect("run apictl");
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).to_string(),
        }
    }

    fn run(&self, args: &[&str]) -> Out {
        self.run_in(self.config.path(), args)
    }

    fn ok_in(&self, cwd: &Path, args: &[&str]) -> String {
        let o = self.run_in(cwd, args);
        assert_eq!(o.code, 0, "apictl {args:?}\nstdout: {}\nstderr: {}", o.stdout, o.stderr);
        o.stdout
    }

    fn ok(&self, args: &[&str]) -> String {
        self.ok_in(self.config.path(), args)
    }

    /// Fails with `code`; its standard error.
    fn fails(&self, code: i32, args: &[&str]) -> String {
        let o = self.run(args);
        assert_eq!(o.code, code, "apictl {args:?}\nstdout: {}\nstderr: {}", o.stdout, o.stderr);
        o.stderr
    }

    /// The names `get policies rate-limiting` lists for `query`.
    fn policy_names(&self, query: &str) -> Vec<String> {
        let out = self.ok(&["get", "policies", "rate-limiting", "-e", "dev", "-q", query, "--format", "json"]);
        let json: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        json["list"]
            .as_array()
            .expect("list")
            .iter()
            .filter_map(|p| p["policyName"].as_str().map(String::from))
            .collect()
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p.to_str().expect("path").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limiting_policies_and_blocking_conditions_through_the_cli() {
    let gw = Gateway::builder(XdsMode::Delta).start().await;
    let cli = Cli { config: tempfile::tempdir().expect("dir"), ca: gw.certs.ca_path.clone() };
    let work = tempfile::tempdir().expect("work");
    cli.ok(&["env", "add", "dev", "--adapter", &format!("https://127.0.0.1:{}", gw.ports.mgmt)]);
    let tiered = write(work.path(), "Tiered.yaml", TIERED);

    // Not logged in: a local error (4), naming the fix.
    let e = cli.fails(4, &["import", "policy", "rate-limiting", "-f", &tiered, "-e", "dev"]);
    assert!(e.contains("apictl login dev"), "{e}");
    cli.ok(&["login", "dev", "-u", "admin", "-p", "admin"]);

    // Import; again without -u: refused (1) with the adapter's description; with -u: replaced.
    let out = cli.ok(&["import", "policy", "rate-limiting", "-f", &tiered, "-e", "dev"]);
    assert!(out.contains("Successfully imported Advanced Throttling Policy : Tiered"), "{out}");
    let e = cli.fails(1, &["import", "policy", "rate-limiting", "-f", &tiered, "-e", "dev"]);
    assert!(e.contains("409") && e.contains("Advanced Policy with name Tiered already exists"), "{e}");
    let out = cli.ok(&["import", "policy", "rate-limiting", "-f", &tiered, "-e", "dev", "--update"]);
    assert!(out.contains("Successfully imported Advanced Throttling Policy : Tiered"), "{out}");

    // Listed: the table, and the adapter's JSON; filtered by type.
    let table = cli.ok(&["get", "policies", "rate-limiting", "-e", "dev", "-q", "type:advanced"]);
    let header = table.lines().nth(1).expect("header");
    assert!(header.starts_with("NAME") && header.contains("TYPE") && header.contains("BUILTIN"), "{table}");
    let row = table.lines().find(|l| l.starts_with("Tiered ")).unwrap_or_else(|| panic!("no Tiered row:\n{table}"));
    assert!(row.contains("advanced") && row.ends_with("false"), "not built in: {row}");
    assert!(cli.policy_names("type:advanced").contains(&"Tiered".to_string()));
    assert!(!cli.policy_names("type:sub").contains(&"Tiered".to_string()));
    let e = cli.fails(1, &["get", "policies", "rate-limiting", "-e", "dev", "-q", "type:gold"]);
    assert!(e.contains("400"), "{e}");

    // Export: Advanced-Tiered.yaml in the current folder (or --dir), which imports again.
    let out = cli.ok_in(work.path(), &["export", "policy", "rate-limiting", "-n", "Tiered", "-e", "dev"]);
    assert!(out.ends_with(" to Advanced-Tiered.yaml\n"), "{out}");
    let exported = work.path().join("Advanced-Tiered.yaml");
    let yaml = std::fs::read_to_string(&exported).expect("exported file");
    assert!(yaml.contains("type: throttling policy") && yaml.contains("subtype: advanced policy"), "{yaml}");
    assert!(yaml.contains("policyName: Tiered") && yaml.contains("requestCount: 100"), "{yaml}");
    let exported = exported.to_str().expect("path");
    let out = cli.ok(&["import", "policy", "rate-limiting", "-f", exported, "-e", "dev", "-u"]);
    assert!(out.contains("Tiered"), "{out}");
    let out_dir = work.path().join("out");
    let out_dir = out_dir.to_str().expect("path");
    let args = ["export", "policy", "rate-limiting", "-n", "Tiered", "-t", "advanced", "-e", "dev"];
    let out = cli.ok(&[&args[..], &["--format", "JSON", "--dir", out_dir]].concat());
    let path = Path::new(out_dir).join("Advanced-Tiered.json");
    assert!(out.contains(path.to_str().expect("path")), "{out}");
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("json file")).expect("json");
    assert_eq!(
        (json["type"].as_str(), json["data"]["policyName"].as_str()),
        (Some("throttling policy"), Some("Tiered"))
    );
    let e = cli.fails(1, &["export", "policy", "rate-limiting", "-n", "Nope", "-e", "dev"]);
    assert!(e.contains("404"), "{e}");

    // Delete: gone from the list; a second delete is refused with 404.
    let out = cli.ok(&["delete", "policy", "rate-limiting", "-n", "Tiered", "-t", "advanced", "-e", "dev"]);
    assert!(out.contains("Tiered"), "{out}");
    assert!(!cli.policy_names("type:advanced").contains(&"Tiered".to_string()));
    let e = cli.fails(1, &["delete", "policy", "rate-limiting", "-n", "Tiered", "-t", "advanced", "-e", "dev"]);
    assert!(e.contains("404"), "{e}");

    // A file that is not a policy: refused, naming the field.
    let bad = write(work.path(), "bad.yaml", "type: api\ndata:\n  policyName: X\n");
    let e = cli.fails(1, &["import", "policy", "rate-limiting", "-f", &bad, "-e", "dev"]);
    assert!(e.contains("400") && e.contains("bad.yaml: type:"), "{e}");

    // A folder: every .yaml, .yml and .json file, by name; stops at the first failure.
    let folder = work.path().join("policies");
    std::fs::create_dir(&folder).expect("dir");
    write(&folder, "a.yaml", TIERED);
    write(&folder, "b.json", SILVER_JSON);
    write(&folder, "README.md", "not a policy");
    let f = folder.to_str().expect("path");
    let out = cli.ok(&["import", "policy", "rate-limiting", "-f", f, "-e", "dev"]);
    assert!(out.contains("Advanced Throttling Policy : Tiered"), "{out}");
    assert!(out.contains("Subscription Throttling Policy : Silver2"), "{out}");
    assert!(cli.policy_names("type:sub").contains(&"Silver2".to_string()));
    write(&folder, "c.yml", "type: api\n");
    let e = cli.fails(1, &["import", "policy", "rate-limiting", "-f", f, "-e", "dev", "-u"]);
    assert!(e.contains("c.yml: 400") && e.contains("imported before it"), "{e}");
    cli.ok(&["delete", "policy", "rate-limiting", "-n", "Silver2", "-t", "sub", "-e", "dev"]);
    cli.ok(&["delete", "policy", "rate-limiting", "-n", "Tiered", "-t", "advanced", "-e", "dev"]);

    // Blocking conditions: add (IP, and an inverted range), list, delete.
    let out =
        cli.ok(&["add", "blocking-condition", "-e", "dev", "--type", "IP", "--value", "10.1.1.1", "--output", "json"]);
    let added: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let id = added["conditionId"].as_str().expect("conditionId").to_string();
    assert_eq!(added["conditionValue"]["fixedIp"], "10.1.1.1");
    let out = cli.ok(&[
        "add",
        "blocking-condition",
        "-e",
        "dev",
        "--type",
        "iprange",
        "--start-ip",
        "10.2.0.0",
        "--end-ip",
        "10.2.0.255",
        "--invert",
        "--disabled",
    ]);
    let range_id = out.split_whitespace().nth(3).expect("id").to_string();
    assert!(out.starts_with("Added blocking condition ") && out.contains("IPRANGE"), "{out}");
    let table = cli.ok(&["get", "blocking-conditions", "-e", "dev"]);
    assert!(table.lines().nth(1).expect("header").starts_with("ID"), "{table}");
    let row = table.lines().find(|l| l.starts_with(&id)).unwrap_or_else(|| panic!("no {id}:\n{table}"));
    assert!(row.contains("IP") && row.contains("10.1.1.1") && row.ends_with("true"), "{row}");
    let row = table.lines().find(|l| l.starts_with(&range_id)).unwrap_or_else(|| panic!("no {range_id}:\n{table}"));
    assert!(row.contains("10.2.0.0-10.2.0.255 (inverted)") && row.ends_with("false"), "{row}");
    let e = cli.fails(1, &["add", "blocking-condition", "-e", "dev", "--type", "IP", "--value", "not-an-ip"]);
    assert!(e.contains("400") && e.contains("not an IP address"), "{e}");
    let e = cli.fails(2, &["add", "blocking-condition", "-e", "dev", "--type", "IPRANGE", "--start-ip", "10.0.0.1"]);
    assert!(e.contains("--end-ip"), "{e}");
    cli.ok(&["delete", "blocking-condition", "--id", &id, "-e", "dev"]);
    cli.ok(&["delete", "blocking-condition", "--id", &range_id, "-e", "dev"]);
    let table = cli.ok(&["get", "blocking-conditions", "-e", "dev"]);
    assert!(!table.contains(&id) && !table.contains(&range_id), "{table}");
    assert!(table.starts_with("Blocking conditions: 0"), "{table}");
    let e = cli.fails(1, &["delete", "blocking-condition", "--id", &id, "-e", "dev"]);
    assert!(e.contains("404"), "{e}");
}
