//! The management API as its OpenAPI document says
//! (adapter/resources/management-api.yaml), checked by Schemathesis against
//! the real adapter: no 5xx; every status, content type, header and body as
//! documented; invalid input refused, valid input accepted; unsupported
//! methods 405; every operation but /oauth2/token refuses a request without
//! credentials. scripts/schemathesis.sh installs the pinned Schemathesis
//! (PyPI) into .tools/ when it is missing and runs three passes (Basic,
//! Bearer, anonymous) with a fixed seed and a bounded number of examples
//! (`SCHEMATHESIS_EXAMPLES`, default 20 per operation and phase).

use std::process::Command;

use integration::{Gateway, XdsMode, workspace_root};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_management_api_matches_its_openapi_document() {
    let gw = Gateway::builder(XdsMode::Delta).without_envoy().start().await;
    let examples = std::env::var("SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| "20".into());
    let root = workspace_root();
    let gw_url = format!("https://localhost:{}", gw.ports.mgmt);
    let ca = gw.certs.ca_path.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("bash")
            .arg(root.join("scripts/schemathesis.sh"))
            .arg(gw_url)
            .arg(ca)
            .arg("admin:admin")
            .env("MAX_EXAMPLES", examples)
            .current_dir(&root)
            .output()
    })
    .await
    .expect("task")
    .expect("run scripts/schemathesis.sh");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "schemathesis found problems:\n{text}\n--- adapter ---\n{}", gw.adapter_log());
    assert!(text.contains("passed"), "{text}");
}
