//! Deploying over the management API as WSO2's `apictl mg` does (README.md, "Management API"):
//! tokens, deploy, override, conflicts, bad projects and uploads (400 with
//! the reason, nothing changed), list, undeploy, durability across `kill -9`,
//! concurrent deploys. The real adapter and Envoy; a Rust backend.

use integration::{Gateway, XdsMode, api_yaml, eventually, zip_project};
use serde_json::json;
use test_backend::Backend;

const BASIC: &str = "Basic YWRtaW46YWRtaW4=";

fn oas(title: &str, paths: &[&str]) -> String {
    let mut s =
        format!("openapi: 3.0.1\ninfo: {{title: {title}, version: '1.0'}}\nx-wso2-disable-security: true\npaths:\n");
    for p in paths {
        s.push_str(&format!("  {p}:\n    get: {{}}\n"));
    }
    s
}

fn project(name: &str, context: &str, backend: &str, paths: &[&str]) -> Vec<u8> {
    zip_project(
        &format!("{name}-1.0"),
        &[("api.yaml", &api_yaml(name, "1.0", context, backend)), ("Definitions/swagger.yaml", &oas(name, paths))],
    )
}

async fn status(gw: &Gateway, path: &str) -> u16 {
    gw.get(path).await.map(|r| r.status).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_override_conflict_list_undeploy() {
    let b = Backend::start("b").await.expect("backend");
    let gw = Gateway::builder(XdsMode::Delta).start().await;

    // Tokens: right credentials → a token; wrong → 401 with no body.
    let token = gw.mgmt_token().await;
    let bearer = format!("Bearer {token}");
    let r = gw.mgmt_as("POST", "/oauth2/token", None, Some(json!({"username": "admin", "password": "x"}))).await;
    assert_eq!((r.status, r.body.as_str()), (401, ""));
    // No or wrong credentials on the API → 401.
    assert_eq!(gw.mgmt_as("GET", "/apis", None, None).await.status, 401);
    assert_eq!(gw.mgmt_as("GET", "/apis", Some("Bearer abc.def.ghi"), None).await.status, 401);
    assert_eq!(gw.mgmt_as("GET", "/apis", Some("Basic YWRtaW46eA=="), None).await.status, 401);
    // A refused upload is read before the 401, so the client gets the answer, not a reset.
    for _ in 0..10 {
        let big = vec![b'x'; 300 * 1024];
        let r = gw.mgmt_raw("POST", "/throttling/policies/import", &[("content-type", "application/yaml")], big).await;
        assert_eq!(r.status, 401, "{}", r.body);
    }

    // Deploy (Bearer, as apictl mg deploy): served by Envoy.
    let r = gw.deploy_zip(project("Pets", "/pets", &b.url(), &["/list"]), false, &bearer).await;
    assert_eq!(r.status, 200, "{}", r.body);
    eventually("the deployed API to be served", || async {
        if status(&gw, "/pets/1.0/list").await == 200 { Ok(()) } else { Err("not yet".to_string()) }
    })
    .await;

    // Again without override: 409, and nothing changes.
    let r = gw.deploy_zip(project("Pets", "/pets", &b.url(), &["/list", "/new"]), false, &bearer).await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(r.json()["message"], "API already exists");
    assert_eq!(status(&gw, "/pets/1.0/new").await, 404);
    // With override (Basic, as older apictl builds send): the new resource is served.
    let r = gw.deploy_zip(project("Pets", "/pets", &b.url(), &["/list", "/new"]), true, BASIC).await;
    assert_eq!(r.status, 200, "{}", r.body);
    eventually("the overriding version to be served", || async {
        if status(&gw, "/pets/1.0/new").await == 200 { Ok(()) } else { Err("not yet".to_string()) }
    })
    .await;

    // Another API on the same base path: 409 naming the owner.
    let r = gw.deploy_zip(project("Other", "/pets", &b.url(), &["/x"]), false, &bearer).await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.json()["description"].as_str().unwrap_or("").contains("/pets/1.0"), "{}", r.body);

    // A second API, and the list with query and limit.
    let r = gw.deploy_zip(project("Shop", "/shop", &b.url(), &["/items"]), false, &bearer).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = gw.mgmt_as("GET", "/apis?query=type:http", Some(&bearer), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!((v["total"].clone(), v["count"].clone()), (json!(2), json!(2)), "{v}");
    let pets = v["list"].as_array().expect("list").iter().find(|i| i["apiName"] == "Pets").expect("Pets").clone();
    assert_eq!(
        pets,
        json!({"apiName": "Pets", "version": "1.0", "apiType": "HTTP", "context": "/pets/1.0",
               "gateway-envs": ["Default"], "vhost": "localhost"})
    );
    let v = gw.mgmt_as("GET", "/apis?limit=1", Some(&bearer), None).await.json();
    assert_eq!((v["total"].clone(), v["count"].clone()), (json!(2), json!(1)), "{v}");
    let v = gw.mgmt_as("GET", "/apis?query=type:ws", Some(&bearer), None).await.json();
    assert_eq!((v["total"].clone(), v["count"].clone()), (json!(2), json!(0)), "total counts every API: {v}");
    assert_eq!(gw.mgmt_as("GET", "/apis?limit=0", Some(&bearer), None).await.status, 400);
    assert_eq!(gw.mgmt_as("GET", "/apis?query=color:red", Some(&bearer), None).await.status, 400);

    // Undeploy: gone from Envoy; unknown → 404; missing parameters → 400.
    let r = gw.mgmt_as("DELETE", "/apis?apiName=Pets&version=1.0", Some(&bearer), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    eventually("the undeployed API to be gone", || async {
        if status(&gw, "/pets/1.0/list").await == 404 { Ok(()) } else { Err("still served".to_string()) }
    })
    .await;
    assert_eq!(status(&gw, "/shop/1.0/items").await, 200, "the other API stays");
    let r = gw.mgmt_as("DELETE", "/apis?apiName=Pets&version=1.0", Some(&bearer), None).await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(gw.mgmt_as("DELETE", "/apis?apiName=Pets", Some(&bearer), None).await.status, 400);
    let r = gw.mgmt_as("DELETE", "/apis?apiName=Shop&version=1.0&vhost=other.example.com", Some(&bearer), None).await;
    assert_eq!(r.status, 404, "no deployment on that vhost: {}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_projects_and_uploads_are_400_with_the_reason_and_change_nothing() {
    let b = Backend::start("b").await.expect("backend");
    let gw = Gateway::builder(XdsMode::Delta)
        .config("[adapter.server.upload]\nmaxZipBytes = 100000\nmaxEntries = 4\nmaxCompressionRatio = 50\n")
        .start()
        .await;
    let r = gw.deploy_zip(project("Pets", "/pets", &b.url(), &["/list"]), false, BASIC).await;
    assert_eq!(r.status, 200, "{}", r.body);
    eventually("served", || async {
        if status(&gw, "/pets/1.0/list").await == 200 { Ok(()) } else { Err("not yet".to_string()) }
    })
    .await;
    let before = gw.config_dump(Some("dynamic_active_clusters")).await;

    // A project with problems: every one is listed with file and field.
    let bad_oas = "openapi: 3.0.1\ninfo: {title: Pets, version: '1.0'}\npaths:\n  /list:\n    get: {x-wso2-disable-security: maybe}\n  /other:\n    get: {x-wso2-disable-security: perhaps}\n";
    let zip = zip_project(
        "Pets-1.0",
        &[("api.yaml", &api_yaml("Pets", "1.0", "/pets", "not a url")), ("Definitions/swagger.yaml", bad_oas)],
    );
    let r = gw.deploy_zip(zip, true, BASIC).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let v = r.json();
    assert_eq!(v["code"], 400);
    let problems: Vec<String> = v["error"]
        .as_array()
        .expect("error list")
        .iter()
        .map(|e| e["message"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(
        problems.iter().any(|p| p.contains("Definitions/swagger.yaml") && p.contains("x-wso2-disable-security")),
        "{problems:?}"
    );
    assert!(problems.iter().any(|p| p.contains("paths./other.get")), "every problem is listed: {problems:?}");

    // Bad uploads, each with its reason.
    let zeros = "0".repeat(2 * 1024 * 1024);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("not a zip", b"hello".to_vec(), "not a valid zip"),
        ("too large", vec![b'x'; 100_001], "larger than the limit of 100000 bytes"),
        ("path escape", zip_project("..", &[("api.yaml", "x")]), "unsafe path"),
        ("absolute name", integration::stored_zip(&[(b"/etc/api.yaml", b"x")]), "unsafe path"),
        ("name not UTF-8", integration::stored_zip(&[(b"P/api\xff.yaml", b"x")]), "not UTF-8"),
        ("symbolic link", integration::symlink_zip("P/api.yaml", "/etc/passwd"), "symbolic link"),
        ("zip bomb", zip_project("P", &[("big.txt", &zeros)]), "more than the limit of 50x"),
        (
            "too many entries",
            zip_project("P", &[("a", "1"), ("b", "2"), ("c", "3"), ("d", "4"), ("e", "5")]),
            "more than the limit of 4",
        ),
    ];
    for (what, body, reason) in cases {
        let r = gw.deploy_zip(body, true, BASIC).await;
        assert_eq!(r.status, 400, "{what}: {}", r.body);
        assert!(r.body.contains(reason), "{what}: {}", r.body);
    }
    // No file part at all.
    let r = gw.mgmt_as("POST", "/apis", Some(BASIC), None).await;
    assert_eq!(r.status, 400, "{}", r.body);

    // Nothing changed: the API is served and Envoy holds the same clusters.
    assert_eq!(status(&gw, "/pets/1.0/list").await, 200);
    assert_eq!(gw.config_dump(Some("dynamic_active_clusters")).await, before);
    let v = gw.mgmt_as("GET", "/apis", Some(BASIC), None).await.json();
    assert_eq!(v["total"], 1, "{v}");
}

/// `project` deployed to `vhost` (deployment_environments.yaml).
fn project_on(name: &str, backend: &str, paths: &[&str], vhost: &str) -> Vec<u8> {
    let envs = format!(
        "type: deployment_environments\ndata:\n  - deploymentEnvironment: Default\n    deploymentVhost: {vhost}\n"
    );
    zip_project(
        &format!("{name}-1.0"),
        &[
            ("api.yaml", &api_yaml(name, "1.0", "/pets", backend)),
            ("Definitions/swagger.yaml", &oas(name, paths)),
            ("deployment_environments.yaml", &envs),
        ],
    )
}

async fn on(gw: &Gateway, vhost: &str, path: &str) -> (u16, String) {
    match gw.request("GET", vhost, path, &[]).await {
        Ok(r) if r.status == 200 => (200, r.json()["backend"].as_str().unwrap_or("").to_string()),
        Ok(r) => (r.status, String::new()),
        Err(_) => (0, String::new()),
    }
}

/// Choreo Connect deploys per vhost: the same API (name and version) on two
/// vhosts are two deployments, each overridden and undeployed on its own,
/// listed once per vhost, and kept so across restarts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_api_on_two_vhosts_lives_two_lives() {
    let (a, b) = (Backend::start("a").await.expect("backend"), Backend::start("b").await.expect("backend"));
    let mut gw = Gateway::builder(XdsMode::Delta).start().await;
    let r = gw.deploy_zip(project_on("Pets", &a.url(), &["/list"], "a.example.com"), false, BASIC).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Another vhost, no override: beside the first.
    let r = gw.deploy_zip(project_on("Pets", &b.url(), &["/list"], "b.example.com"), false, BASIC).await;
    assert_eq!(r.status, 200, "{}", r.body);
    eventually("both served", || async {
        let got = (on(&gw, "a.example.com", "/pets/1.0/list").await, on(&gw, "b.example.com", "/pets/1.0/list").await);
        if got == ((200, "a".into()), (200, "b".into())) { Ok(()) } else { Err(format!("{got:?}")) }
    })
    .await;
    let v = gw.mgmt("GET", "/apis", None).await.json();
    let vhosts: Vec<&str> = v["list"].as_array().expect("list").iter().filter_map(|i| i["vhost"].as_str()).collect();
    assert_eq!((v["total"].clone(), vhosts), (json!(2), vec!["a.example.com", "b.example.com"]), "{v}");
    // Again on b without override: 409 naming b; a is not in the way.
    let r = gw.deploy_zip(project_on("Pets", &b.url(), &["/list", "/new"], "b.example.com"), false, BASIC).await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.json()["description"].as_str().unwrap_or("").contains("vhost b.example.com"), "{}", r.body);
    // Override on b: b changes, a stays as it was.
    let r = gw.deploy_zip(project_on("Pets", &b.url(), &["/list", "/new"], "b.example.com"), true, BASIC).await;
    assert_eq!(r.status, 200, "{}", r.body);
    eventually("b's new resource", || async {
        let got = on(&gw, "b.example.com", "/pets/1.0/new").await;
        if got.0 == 200 { Ok(()) } else { Err(format!("{got:?}")) }
    })
    .await;
    assert_eq!(on(&gw, "a.example.com", "/pets/1.0/new").await.0, 404, "a untouched");
    assert_eq!(on(&gw, "a.example.com", "/pets/1.0/list").await, (200, "a".into()));
    // Undeploy from one vhost only; then restart: what is left stays.
    let r = gw.mgmt("DELETE", "/apis?apiName=Pets&version=1.0&vhost=b.example.com", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    eventually("b undeployed", || async {
        let got = on(&gw, "b.example.com", "/pets/1.0/list").await;
        if got.0 == 404 { Ok(()) } else { Err(format!("{got:?}")) }
    })
    .await;
    gw.kill_adapter();
    gw.start_adapter().await;
    let v = gw.mgmt("GET", "/apis", None).await.json();
    assert_eq!((v["total"].clone(), v["list"][0]["vhost"].clone()), (json!(1), json!("a.example.com")), "{v}");
    assert_eq!(on(&gw, "a.example.com", "/pets/1.0/list").await, (200, "a".into()));
    assert_eq!(on(&gw, "b.example.com", "/pets/1.0/list").await.0, 404);
    // Without a vhost, from everywhere.
    let r = gw.deploy_zip(project_on("Pets", &b.url(), &["/list"], "b.example.com"), false, BASIC).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = gw.mgmt("DELETE", "/apis?apiName=Pets&version=1.0", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(gw.mgmt("GET", "/apis", None).await.json()["total"], 0);
}

/// A project whose environments are all unknown here is accepted and
/// deployed nowhere (as Choreo Connect answers it): nothing is kept that
/// could neither be listed nor undeployed, and the corrected project needs
/// no override.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_for_unknown_environments_leaves_no_trace() {
    let b = Backend::start("b").await.expect("backend");
    let mut gw = Gateway::builder(XdsMode::Delta).without_envoy().start().await;
    let envs = "type: deployment_environments\ndata:\n  - deploymentEnvironment: Nowhere\n    deploymentVhost: x\n";
    let ghost = zip_project(
        "Ghost-1.0",
        &[
            ("api.yaml", &api_yaml("Ghost", "1.0", "/ghost", &b.url())),
            ("Definitions/swagger.yaml", &oas("Ghost", &["/a"])),
            ("deployment_environments.yaml", envs),
        ],
    );
    let r = gw.deploy_zip(ghost, false, BASIC).await;
    assert_eq!((r.status, r.json()["deployments"].clone()), (200, json!([])), "{}", r.body);
    assert_eq!(gw.mgmt("GET", "/apis", None).await.json()["total"], 0);
    gw.kill_adapter();
    gw.start_adapter().await;
    assert_eq!(gw.mgmt("GET", "/apis", None).await.json()["total"], 0, "nothing stored");
    let r = gw.deploy_zip(project("Ghost", "/ghost", &b.url(), &["/a"]), false, BASIC).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(gw.mgmt("GET", "/apis", None).await.json()["total"], 1);
}

/// Disk writes (deploys, revocations) run off the async workers and outside
/// the state's lock: with every write made slow, the management API, the
/// routers' configuration and the other endpoints do not wait for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_disk_writes_hold_up_nothing_else() {
    let b = Backend::start("b").await.expect("backend");
    let gw = Gateway::builder(XdsMode::Delta)
        .adapter_env("GATEWAY_DELAY", "store-write=3000,revocation-write=3000")
        .start()
        .await;
    let deploying = {
        let (url, client) = (gw.mgmt_url("/apis"), gw.client().clone());
        let zip = project("Pets", "/pets", &b.url(), &["/list"]);
        tokio::spawn(async move {
            let form = reqwest::multipart::Form::new()
                .part("file", reqwest::multipart::Part::bytes(zip).file_name("pets.zip"));
            client.post(url).header("authorization", BASIC).multipart(form).send().await.map(|r| r.status().as_u16())
        })
    };
    let revoking = {
        let (url, client) = (gw.mgmt_url("/revoked_tokens"), gw.client().clone());
        tokio::spawn(async move {
            client
                .post(url)
                .header("authorization", BASIC)
                .json(&json!({"jti": "slow-1"}))
                .send()
                .await
                .map(|r| r.status().as_u16())
        })
    };
    // While both are on the (slow) disk: everything else answers at once.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let t = std::time::Instant::now();
    for path in ["/apis", "/xds", "/artifacts", "/revoked_tokens", "/apis?limit=1"] {
        let r = gw.mgmt("GET", path, None).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
    }
    assert_eq!(status(&gw, "/health").await, 200);
    assert!(t.elapsed() < std::time::Duration::from_millis(1500), "reads waited for the disk: {:?}", t.elapsed());
    assert!(!deploying.is_finished(), "the deploy is still writing");
    // And the writes complete, each whole.
    assert_eq!(deploying.await.expect("task").expect("deploy"), 200);
    assert_eq!(revoking.await.expect("task").expect("revoke"), 200);
    assert_eq!(gw.mgmt("GET", "/apis", None).await.json()["total"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answered_deploy_survives_kill_9_of_the_adapter() {
    let b = Backend::start("b").await.expect("backend");
    let mut gw = Gateway::builder(XdsMode::Delta).start().await;
    let r = gw.deploy_zip(project("Pets", "/pets", &b.url(), &["/list"]), false, BASIC).await;
    assert_eq!(r.status, 200, "{}", r.body);
    eventually("served", || async {
        if status(&gw, "/pets/1.0/list").await == 200 { Ok(()) } else { Err("not yet".to_string()) }
    })
    .await;
    // Right after the 200: SIGKILL, then a new adapter. Envoy serves the API
    // throughout: the restarted adapter restores it before it serves xDS, so
    // Envoy never gets a configuration without it.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let (stop, url) = (std::sync::Arc::clone(&stop), format!("http://127.0.0.1:{}/pets/1.0/list", gw.ports.http));
        tokio::spawn(async move {
            let client = reqwest::Client::builder().no_proxy().build().expect("client");
            let (mut ok, mut other) = (0u32, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                match client.get(&url).header("host", "localhost").send().await {
                    Ok(r) if r.status() == 200 => ok += 1,
                    Ok(r) => other.push(r.status().as_u16()),
                    Err(_) => other.push(0),
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            (ok, other)
        })
    };
    gw.kill_adapter();
    gw.start_adapter().await;
    eventually("Envoy to resync with the restarted adapter", || async {
        let s = gw.xds_status().await;
        if s["streams"][0]["inSync"] == true { Ok(()) } else { Err(s.to_string()) }
    })
    .await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (ok, other) = poller.await.expect("poller");
    assert!(ok > 0 && other.is_empty(), "{ok} answers 200, others: {other:?}");
    let v = gw.mgmt_as("GET", "/apis", Some(BASIC), None).await.json();
    assert_eq!(v["total"], 1, "{v}");
    // An undeploy survives too.
    let r = gw.mgmt_as("DELETE", "/apis?apiName=Pets&version=1.0", Some(BASIC), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    gw.kill_adapter();
    gw.start_adapter().await;
    let v = gw.mgmt_as("GET", "/apis", Some(BASIC), None).await.json();
    assert_eq!(v["total"], 0, "{v}");
    eventually("the restarted adapter to withdraw the undeployed API", || async {
        if status(&gw, "/pets/1.0/list").await == 404 { Ok(()) } else { Err("still served".to_string()) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_stored_entry_is_reported_and_the_others_are_restored() {
    let b = Backend::start("b").await.expect("backend");
    let mut gw = Gateway::builder(XdsMode::Delta).start().await;
    for (name, ctx) in [("Pets", "/pets"), ("Shop", "/shop")] {
        let r = gw.deploy_zip(project(name, ctx, &b.url(), &["/list"]), false, BASIC).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    gw.kill_adapter();
    // Damage one record.
    let store = gw.dir.path().join("store");
    let damaged = std::fs::read_dir(&store)
        .expect("store")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "json"))
        .expect("a record");
    std::fs::write(&damaged, "{ damaged").expect("damage");
    gw.start_adapter().await;
    let v = gw.artifacts_status().await;
    let not_restored = v["storeNotRestored"].as_array().cloned().unwrap_or_default();
    assert_eq!(not_restored.len(), 1, "{v}");
    let total = gw.mgmt_as("GET", "/apis", Some(BASIC), None).await.json()["total"].as_u64().unwrap_or(0);
    assert_eq!(total, 1, "the other API is restored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_deploys_are_all_kept() {
    let b = Backend::start("b").await.expect("backend");
    let gw = Gateway::builder(XdsMode::Delta).start().await;
    let token = gw.mgmt_token().await;
    let bearer = format!("Bearer {token}");
    let mut calls = Vec::new();
    for i in 0..50 {
        let zip = project(&format!("Api{i}"), &format!("/api{i}"), &b.url(), &["/x"]);
        calls.push(gw.deploy_zip(zip, false, &bearer));
    }
    for r in futures::future::join_all(calls).await {
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let v = gw.mgmt_as("GET", "/apis", Some(&bearer), None).await.json();
    assert_eq!(v["total"], 50, "{v}");
    eventually("all 50 served", || async {
        for i in 0..50 {
            let s = status(&gw, &format!("/api{i}/1.0/x")).await;
            if s != 200 {
                return Err(format!("api{i} answers {s}"));
            }
        }
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_tokens_are_refused() {
    let gw = Gateway::builder(XdsMode::Delta).adapter_env("CC_ADAPTER_SERVER_TOKENTTL", "1s").start().await;
    let bearer = format!("Bearer {}", gw.mgmt_token().await);
    assert_eq!(gw.mgmt_as("GET", "/apis", Some(&bearer), None).await.status, 200);
    eventually("the token to expire", || async {
        match gw.mgmt_as("GET", "/apis", Some(&bearer), None).await.status {
            401 => Ok(()),
            s => Err(format!("{s}")),
        }
    })
    .await;
}

/// The requests WSO2's apictl (Go) sends, byte for byte in shape:
/// `mg login` JSON, `mg deploy api` multipart from Go's mime/multipart with a
/// Bearer token and `?override=true`, `mg get apis` with empty-free query,
/// `mg undeploy api` with empty `vhost` and `environments`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_shaped_as_wso2_apictl_sends_them() {
    let b = Backend::start("b").await.expect("backend");
    let gw = Gateway::builder(XdsMode::Delta).start().await;
    let login = gw
        .mgmt_raw(
            "POST",
            "/oauth2/token",
            &[("content-type", "application/json"), ("user-agent", "Go-http-client/1.1")],
            br#"{"username":"admin","password":"admin"}"#.to_vec(),
        )
        .await;
    assert_eq!(login.status, 200, "{}", login.body);
    let bearer = format!("Bearer {}", login.json()["accessToken"].as_str().expect("token"));

    let boundary = "1f7a0e5b9c2d4e8fa3b6c1d0e9f87a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"PetStore.zip\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend(project("PetStore", "/petstore", &b.url(), &["/pets"]));
    body.extend(format!("\r\n--{boundary}--\r\n").into_bytes());
    let content_type = format!("multipart/form-data; boundary={boundary}");
    let headers = [("authorization", bearer.as_str()), ("content-type", content_type.as_str())];
    let r = gw.mgmt_raw("POST", "/apis?override=true", &headers, body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    eventually("served", || async {
        if status(&gw, "/petstore/1.0/pets").await == 200 { Ok(()) } else { Err("not yet".to_string()) }
    })
    .await;

    let r =
        gw.mgmt_raw("GET", "/apis?query=type%3Ahttp&limit=10", &[("authorization", bearer.as_str())], Vec::new()).await;
    assert_eq!((r.status, r.json()["count"].clone()), (200, json!(1)), "{}", r.body);
    let r = gw
        .mgmt_raw(
            "DELETE",
            "/apis?apiName=PetStore&environments=&version=1.0&vhost=",
            &[("authorization", bearer.as_str())],
            Vec::new(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_status_says_when_every_router_applied_it() {
    let b = Backend::start("b").await.expect("backend");
    let gw = Gateway::builder(XdsMode::Delta).start().await;
    let r = gw.mgmt_as("GET", "/apis/status?apiName=Pets&version=1.0", Some(BASIC), None).await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = gw.deploy_zip(project("Pets", "/pets", &b.url(), &["/list"]), false, BASIC).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = eventually("the router to apply it", || async {
        let v = gw.mgmt_as("GET", "/apis/status?apiName=Pets&version=1.0", Some(BASIC), None).await.json();
        if v["state"] == "applied" { Ok(v) } else { Err(v.to_string()) }
    })
    .await;
    assert_eq!(v["environments"][0]["routers"][0]["instance"], "test-router", "{v}");
    assert_eq!(v["deployments"], json!([{"environment": "Default", "vhost": "localhost"}]));
    // Applied means served.
    assert_eq!(status(&gw, "/pets/1.0/list").await, 200);
}
