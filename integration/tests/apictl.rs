//! The real `apictl` binary against the real adapter and Envoy: environments,
//! login, init → validate → push --wait → call, override, list, the WSO2
//! aliases, delete, and its errors and exit codes.

use std::io::Write as _;
use std::process::{Command, Stdio};

use integration::{Gateway, XdsMode, eventually, workspace_bin};
use test_backend::Backend;

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
    fn run_with(&self, args: &[&str], stdin: Option<&str>, trust: bool) -> Out {
        let mut cmd = Command::new(workspace_bin("apictl"));
        if trust {
            cmd.arg("--ca-cert").arg(&self.ca);
        }
        cmd.args(args)
            .env("APICTL_CONFIG_DIR", self.config.path())
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("run apictl");
        if let Some(text) = stdin {
            child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write stdin");
        }
        let out = child.wait_with_output().expect("apictl output");
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).to_string(),
        }
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.run_with(args, None, true);
        assert_eq!(o.code, 0, "apictl {args:?}\nstdout: {}\nstderr: {}", o.stdout, o.stderr);
        o.stdout
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_push_call_list_delete_through_the_cli() {
    let b = Backend::start("b").await.expect("backend");
    let gw = Gateway::builder(XdsMode::Delta).start().await;
    let cli = Cli { config: tempfile::tempdir().expect("dir"), ca: gw.certs.ca_path.clone() };
    let work = tempfile::tempdir().expect("work");
    let adapter = format!("https://127.0.0.1:{}", gw.ports.mgmt);

    // Environments and login.
    cli.ok(&["env", "add", "dev", "--adapter", &adapter]);
    assert!(cli.ok(&["env", "list"]).contains(&adapter));
    let o = cli.run_with(&["project", "list", "-e", "dev"], None, true);
    assert_eq!(o.code, 4, "not logged in: {}", o.stderr);
    assert!(o.stderr.contains("apictl login dev"), "{}", o.stderr);
    let o = cli.run_with(&["login", "dev", "-u", "admin", "--password-stdin"], Some("wrong\n"), true);
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(o.stderr.contains("wrong user name or password"), "{}", o.stderr);
    let o = cli.run_with(&["login", "dev", "-u", "admin", "--password-stdin"], Some("admin\n"), true);
    assert_eq!(o.code, 0, "{}", o.stderr);

    // Without trusting the adapter's CA: exit 3, with the hint.
    let o = cli.run_with(&["project", "list", "-e", "dev"], None, false);
    assert_eq!(o.code, 3, "{}", o.stderr);
    assert!(o.stderr.contains("--ca-cert"), "{}", o.stderr);
    // Unless told to skip verification (development certificates).
    let o = cli.run_with(&["--insecure", "project", "list", "-e", "dev"], None, false);
    assert_eq!(o.code, 0, "{}", o.stderr);

    // init → validate → push --wait → served at once.
    let oas = work.path().join("petstore.yaml");
    std::fs::write(
        &oas,
        format!(
            "openapi: 3.0.1\ninfo: {{title: PetStore, version: 1.0.0}}\nservers: [{{url: '{}'}}]\n\
             x-wso2-disable-security: true\npaths:\n  /pets:\n    get: {{}}\n",
            b.url()
        ),
    )
    .expect("oas");
    let project = work.path().join("PetStore");
    let project = project.to_str().expect("path");
    cli.ok(&["init", project, "--oas", oas.to_str().expect("path")]);
    assert!(cli.ok(&["project", "validate", project]).contains("valid project"));
    let out = cli.ok(&["project", "push", project, "-e", "dev", "--wait"]);
    assert!(out.contains("applied by 1 router"), "{out}");
    let r = gw.get("/petstore/1.0.0/pets").await.expect("request");
    assert_eq!(r.status, 200, "served as soon as push --wait returned: {}", r.body);

    // Again: refused without --override, accepted with it (WSO2 alias).
    let o = cli.run_with(&["project", "push", project, "-e", "dev"], None, true);
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(o.stderr.contains("API already exists"), "{}", o.stderr);
    cli.ok(&["mg", "deploy", "api", "-f", project, "-e", "dev", "-o"]);

    // List: text and JSON; WSO2 alias.
    assert!(cli.ok(&["mg", "get", "apis", "-e", "dev"]).contains("APIs total: 1 received: 1"));
    let json: serde_json::Value = serde_json::from_str(&cli.ok(&[
        "project",
        "list",
        "-e",
        "dev",
        "-q",
        "type:http",
        "-l",
        "5",
        "--output",
        "json",
    ]))
    .expect("json");
    assert_eq!(json["list"][0]["apiName"], "PetStore");

    // A bad project: every problem printed, exit 1, nothing deployed.
    let bad = work.path().join("Bad");
    std::fs::create_dir_all(bad.join("Definitions")).expect("dir");
    std::fs::write(bad.join("api.yaml"), "type: api\ndata:\n  name: Bad\n  version: '1'\n  context: /bad\n  endpointConfig: {endpoint_type: http, production_endpoints: {url: 'nope'}}\n").expect("api");
    std::fs::write(
        bad.join("Definitions/swagger.yaml"),
        "openapi: 3.0.1\ninfo: {title: Bad, version: '1'}\npaths:\n  /a:\n    get: {x-wso2-disable-security: maybe}\n",
    )
    .expect("oas");
    let bad = bad.to_str().expect("path");
    let o = cli.run_with(&["project", "validate", bad], None, true);
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(o.stderr.contains("x-wso2-disable-security"), "{}", o.stderr);
    let o = cli.run_with(&["project", "push", bad, "-e", "dev"], None, true);
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(o.stderr.contains("400") && o.stderr.contains("x-wso2-disable-security"), "{}", o.stderr);

    // Delete (WSO2 alias too), then gone from Envoy.
    cli.ok(&["project", "delete", "-n", "PetStore", "-v", "1.0.0", "-e", "dev"]);
    let o = cli.run_with(&["mg", "undeploy", "api", "-n", "PetStore", "-v", "1.0.0", "-e", "dev"], None, true);
    assert_eq!(o.code, 1, "already gone: {}", o.stderr);
    assert!(o.stderr.contains("404"), "{}", o.stderr);
    eventually("the API to be gone", || async {
        match gw.get("/petstore/1.0.0/pets").await {
            Ok(r) if r.status == 404 => Ok(()),
            other => Err(format!("{:?}", other.map(|r| r.status))),
        }
    })
    .await;

    // Unknown environment and logout.
    assert_eq!(cli.run_with(&["project", "list", "-e", "nope"], None, true).code, 4);
    cli.ok(&["logout", "dev"]);
    assert_eq!(cli.run_with(&["project", "list", "-e", "dev"], None, true).code, 4);
}

/// `push --wait` fails with the router's own words when Envoy rejects the
/// configuration (here an operator's cipher list BoringSSL does not know,
/// used by clusters of https endpoints).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_wait_reports_the_routers_rejection() {
    let gw = Gateway::builder(XdsMode::Delta)
        .config("[router.upstream.tls]\nciphers = \"ECDHE-RSA-AES128-GCM-SHA256:NOT-A-CIPHER\"\n")
        .start()
        .await;
    let cli = Cli { config: tempfile::tempdir().expect("dir"), ca: gw.certs.ca_path.clone() };
    let work = tempfile::tempdir().expect("work");
    cli.ok(&["env", "add", "dev", "--adapter", &format!("https://127.0.0.1:{}", gw.ports.mgmt)]);
    cli.ok(&["login", "dev", "-u", "admin", "-p", "admin"]);
    let oas = work.path().join("secure.yaml");
    std::fs::write(
        &oas,
        "openapi: 3.0.1\ninfo: {title: Secure, version: '1.0'}\nservers: [{url: 'https://127.0.0.1:1/x'}]\n\
         x-wso2-disable-security: true\npaths:\n  /s:\n    get: {}\n",
    )
    .expect("oas");
    let project = work.path().join("Secure");
    let project = project.to_str().expect("path");
    cli.ok(&["init", project, "--oas", oas.to_str().expect("path")]);
    let o = cli.run_with(&["project", "push", project, "-e", "dev", "--wait", "--timeout", "30"], None, true);
    assert_eq!(o.code, 1, "{}\n{}", o.stdout, o.stderr);
    assert!(o.stderr.contains("test-router rejected the configuration (cds)"), "{}", o.stderr);
    assert!(o.stderr.contains("NOT-A-CIPHER"), "Envoy's words: {}", o.stderr);
}
