//! Projects changing while everything runs: added, changed, removed,
//! refused, rejected by Envoy; and the adapter dying and coming back.

use integration::{Gateway, XdsMode, api_yaml, eventually};
use test_backend::Backend;

fn oas(paths: &[&str]) -> String {
    let mut s = String::from("openapi: 3.0.1\ninfo: {title: x, version: v1}\nx-wso2-disable-security: true\npaths:\n");
    for p in paths {
        s.push_str(&format!("  {p}:\n    get: {{}}\n"));
    }
    s
}

fn zip(files: &[(&str, &str)]) -> Vec<u8> {
    let entries: Vec<(&[u8], &[u8])> = files.iter().map(|(n, c)| (n.as_bytes(), c.as_bytes())).collect();
    integration::stored_zip(&entries)
}

async fn cluster_names(gw: &Gateway) -> Vec<String> {
    let dump = gw.config_dump(Some("dynamic_active_clusters")).await;
    dump["configs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["cluster"]["name"].as_str().map(String::from))
        .collect()
}

async fn projects_change_while_running(mode: XdsMode) {
    let one = Backend::start("one").await.expect("backend");
    let two = Backend::start("two").await.expect("backend");
    let mut gw = Gateway::builder(mode).start().await;
    let envoy_pid = gw.envoy_pid();
    assert_eq!(gw.get("/shop/v1/items").await.expect("request").status, 404);

    // Added.
    gw.write_project(
        "shop",
        &[("api.yaml", &api_yaml("Shop", "v1", "/shop", &one.url())), ("Definitions/swagger.yaml", &oas(&["/items"]))],
    );
    let r = gw.wait_status("/shop/v1/items", 200).await;
    assert_eq!(r.header("x-backend-name"), Some("one"));
    assert!(gw.route_names().await.iter().any(|n| n == "Shop:v1 GET /shop/v1/items"));
    let cluster = "carbon.super_clusterProd_localhost_Shopv1".to_string();
    assert!(cluster_names(&gw).await.contains(&cluster));

    // Changed: a new resource and a new endpoint.
    gw.write_project(
        "shop",
        &[
            ("api.yaml", &api_yaml("Shop", "v1", "/shop", &two.url())),
            ("Definitions/swagger.yaml", &oas(&["/items", "/orders"])),
        ],
    );
    let r = gw.wait_status("/shop/v1/orders", 200).await;
    assert_eq!(r.header("x-backend-name"), Some("two"));
    eventually("the new endpoint for /items", || async {
        let r = gw.get("/shop/v1/items").await?;
        if r.header("x-backend-name") == Some("two") {
            Ok(())
        } else {
            Err(format!("{:?}", r.header("x-backend-name")))
        }
    })
    .await;

    // A zip project next to it.
    gw.write_zip(
        "zipped.zip",
        &zip(&[
            ("Zipped-v1/api.yaml", &api_yaml("Zipped", "v1", "/zipped", &one.url())),
            ("Zipped-v1/Definitions/swagger.yaml", &oas(&["/z"])),
        ]),
    );
    gw.wait_status("/zipped/v1/z", 200).await;

    // Removed: routes and cluster gone, the other project untouched.
    gw.remove_project("shop");
    gw.wait_status("/shop/v1/items", 404).await;
    eventually("the cluster to be removed", || async {
        let names = cluster_names(&gw).await;
        if names.contains(&cluster) { Err(format!("{names:?}")) } else { Ok(()) }
    })
    .await;
    assert_eq!(gw.get("/zipped/v1/z").await.expect("request").status, 200);
    assert_eq!(gw.envoy_pid(), envoy_pid, "Envoy was never restarted");
    assert!(gw.envoy_running());
    assert_eq!(gw.stat("runtime.deprecated_feature_use").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projects_change_while_running_state_of_the_world() {
    projects_change_while_running(XdsMode::Sotw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projects_change_while_running_delta() {
    projects_change_while_running(XdsMode::Delta).await;
}

/// APIs whose base paths share their first segment share one scope (one
/// route configuration), which the adapter rebuilds once per batch of
/// changes: loaded together at start, then changed and removed one by one,
/// each keeps its own routes and backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apis_sharing_a_first_segment_load_change_and_go_independently() {
    let one = Backend::start("one").await.expect("backend");
    let two = Backend::start("two").await.expect("backend");
    let (a, b, c) = (
        api_yaml("A", "v1", "/shop/a", &one.url()),
        api_yaml("B", "v1", "/shop/b", &one.url()),
        api_yaml("C", "v1", "/shop/c", &one.url()),
    );
    let items = oas(&["/items"]);
    let gw = Gateway::builder(XdsMode::Delta)
        .project("a", &[("api.yaml", &a), ("Definitions/swagger.yaml", &items)])
        .project("b", &[("api.yaml", &b), ("Definitions/swagger.yaml", &items)])
        .project("c", &[("api.yaml", &c), ("Definitions/swagger.yaml", &items)])
        .start()
        .await;
    for p in ["/shop/a/v1/items", "/shop/b/v1/items", "/shop/c/v1/items"] {
        let r = gw.wait_status(p, 200).await;
        assert_eq!(r.header("x-backend-name"), Some("one"), "{p}");
    }
    let scopes = gw.config_dump(Some("dynamic_scoped_route_configs")).await.to_string();
    assert_eq!(scopes.matches("\"routes/shop\"").count(), 1, "one scope for the three: {scopes}");

    // B moves to another backend and gains a resource; A and C are unchanged.
    let b2 = api_yaml("B", "v1", "/shop/b", &two.url());
    gw.write_project("b", &[("api.yaml", &b2), ("Definitions/swagger.yaml", &oas(&["/items", "/orders"]))]);
    let r = gw.wait_status("/shop/b/v1/orders", 200).await;
    assert_eq!(r.header("x-backend-name"), Some("two"));
    assert_eq!(gw.get("/shop/b/v1/items").await.expect("request").header("x-backend-name"), Some("two"));
    for p in ["/shop/a/v1/items", "/shop/c/v1/items"] {
        let r = gw.get(p).await.expect("request");
        assert_eq!((r.status, r.header("x-backend-name")), (200, Some("one")), "{p}");
    }
    assert_eq!(gw.get("/shop/a/v1/orders").await.expect("request").status, 404);

    // A goes: its routes go, B and C stay.
    gw.remove_project("a");
    gw.wait_status("/shop/a/v1/items", 404).await;
    assert_eq!(gw.get("/shop/b/v1/orders").await.expect("request").status, 200);
    assert_eq!(gw.get("/shop/c/v1/items").await.expect("request").status, 200);

    // The last two go: the scope goes with them.
    gw.remove_project("b");
    gw.remove_project("c");
    gw.wait_status("/shop/b/v1/items", 404).await;
    gw.wait_status("/shop/c/v1/items", 404).await;
    eventually("the scope to be removed", || async {
        let scopes = gw.config_dump(Some("dynamic_scoped_route_configs")).await.to_string();
        if scopes.contains("routes/shop") { Err(scopes) } else { Ok(()) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_project_is_refused_and_everything_else_keeps_serving() {
    let b = Backend::start("b").await.expect("backend");
    let good_yaml = api_yaml("Good", "v1", "/good", &b.url());
    let gw = Gateway::builder(XdsMode::Delta)
        .project("good", &[("api.yaml", &good_yaml), ("Definitions/swagger.yaml", &oas(&["/a"]))])
        .project(
            "broken",
            &[("api.yaml", &api_yaml("Broken", "v1", "/broken", &b.url())), ("Definitions/swagger.yaml", "openapi: [")],
        )
        .start()
        .await;
    gw.wait_status("/good/v1/a", 200).await;
    let status = gw.artifacts_status().await;
    assert_eq!(status["entries"]["good"]["state"], "deployed");
    assert_eq!(status["entries"]["broken"]["state"], "refused");
    let problem = status["entries"]["broken"]["problems"][0].as_str().unwrap_or_default().to_string();
    assert!(problem.starts_with("Definitions/swagger.yaml: not valid YAML"), "{problem}");

    // Break the deployed project: it is refused and its last good version keeps serving.
    gw.write_project(
        "good",
        &[(
            "Definitions/swagger.yaml",
            "openapi: 3.0.1\npaths:\n  /a:\n    get:\n      x-wso2-disable-security: maybe\n",
        )],
    );
    let status = eventually("the change to be refused", || async {
        let s = gw.artifacts_status().await;
        if s["entries"]["good"]["state"] == "refused" { Ok(s) } else { Err(s.to_string()) }
    })
    .await;
    assert_eq!(
        status["entries"]["good"]["problems"][0],
        "Definitions/swagger.yaml: paths./a.get.x-wso2-disable-security: expected true or false, found \"maybe\""
    );
    assert_eq!(gw.get("/good/v1/a").await.expect("request").status, 200);

    // A project claiming a base path another API owns on the vhost is refused.
    gw.write_project(
        "thief",
        &[("api.yaml", &api_yaml("Thief", "v1", "/good", &b.url())), ("Definitions/swagger.yaml", &oas(&["/b"]))],
    );
    let status = eventually("the conflict to be refused", || async {
        let s = gw.artifacts_status().await;
        if s["entries"]["thief"]["state"] == "refused" { Ok(s) } else { Err(s.to_string()) }
    })
    .await;
    let p = status["entries"]["thief"]["problems"][0].as_str().unwrap_or_default();
    assert!(p.starts_with("An API exists with the same basepath /good/v1 on vhost localhost"), "{p}");
    assert_eq!(gw.get("/good/v1/b").await.expect("request").status, 404);

    // Fixed: served again.
    gw.write_project("good", &[("Definitions/swagger.yaml", &oas(&["/a", "/c"]))]);
    gw.wait_status("/good/v1/c", 200).await;
}

async fn a_rejected_config_is_reported(mode: XdsMode) {
    // The adapter validates projects thoroughly, but some settings only
    // Envoy can judge: here an operator's cipher list that BoringSSL does
    // not know. Clusters of https endpoints are then rejected by Envoy.
    let b = Backend::start("b").await.expect("backend");
    let gw = Gateway::builder(mode)
        .config("[router.upstream.tls]\nciphers = \"ECDHE-RSA-AES128-GCM-SHA256:NOT-A-CIPHER\"\n")
        .project(
            "plain",
            &[("api.yaml", &api_yaml("Plain", "v1", "/plain", &b.url())), ("Definitions/swagger.yaml", &oas(&["/ok"]))],
        )
        .start()
        .await;
    gw.wait_status("/plain/v1/ok", 200).await;

    gw.write_project(
        "secure",
        &[
            ("api.yaml", &api_yaml("Secure", "v1", "/secure", "https://127.0.0.1:1/x")),
            ("Definitions/swagger.yaml", &oas(&["/s"])),
        ],
    );
    let status = eventually("the adapter to report the NACK", || async {
        let s = gw.xds_status().await;
        if s["streams"][0]["types"]["cds"]["lastNack"].is_object() { Ok(s) } else { Err(s.to_string()) }
    })
    .await;
    assert!(status["nacks"].as_u64().unwrap_or(0) >= 1);
    let cds = &status["streams"][0]["types"]["cds"];
    let message = cds["lastNack"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("NOT-A-CIPHER"), "Envoy's error text is reported: {message}");
    let resources: Vec<&str> =
        cds["lastNack"]["resources"].as_array().into_iter().flatten().filter_map(|v| v.as_str()).collect();
    assert!(resources.contains(&"carbon.super_clusterProd_localhost_Securev1"), "{resources:?}");
    assert!(gw.adapter_log().contains("Envoy rejected configuration (NACK)"), "logged");
    assert!(gw.stat("cluster_manager.cds.update_rejected").await >= 1);

    // The last good configuration keeps serving.
    for _ in 0..10 {
        assert_eq!(gw.get("/plain/v1/ok").await.expect("request").status, 200);
    }
    // The rejected version is not sent again in a loop.
    let sent = gw.xds_status().await["streams"][0]["types"]["cds"]["lastSent"]["nonce"].clone();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(gw.xds_status().await["streams"][0]["types"]["cds"]["lastSent"]["nonce"], sent);

    // Removing the offending project brings the stream back in sync.
    gw.remove_project("secure");
    eventually("the stream to be in sync", || async {
        let s = gw.xds_status().await;
        if s["streams"][0]["inSync"] == true { Ok(()) } else { Err(s.to_string()) }
    })
    .await;
    assert_eq!(gw.get("/plain/v1/ok").await.expect("request").status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_config_is_reported_state_of_the_world() {
    a_rejected_config_is_reported(XdsMode::Sotw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_config_is_reported_delta() {
    a_rejected_config_is_reported(XdsMode::Delta).await;
}

async fn adapter_restart(mode: XdsMode) {
    let b = Backend::start("b").await.expect("backend");
    let yaml = api_yaml("Keep", "v1", "/keep", &b.url());
    let mut gw = Gateway::builder(mode)
        .project("keep", &[("api.yaml", &yaml), ("Definitions/swagger.yaml", &oas(&["/a", "/b"]))])
        .start()
        .await;
    gw.wait_status("/keep/v1/a", 200).await;
    let envoy_pid = gw.envoy_pid();

    gw.kill_adapter();
    // Envoy keeps serving what it has.
    for _ in 0..20 {
        assert_eq!(gw.get("/keep/v1/a").await.expect("request").status, 200);
    }
    // Changed while the adapter is down...
    gw.write_project("keep", &[("Definitions/swagger.yaml", &oas(&["/a", "/c"]))]);
    assert_eq!(gw.get("/keep/v1/b").await.expect("request").status, 200, "nothing changes without the adapter");

    // ...and applied once it is back: Envoy reconnects and resyncs.
    gw.start_adapter().await;
    gw.wait_status("/keep/v1/c", 200).await;
    gw.wait_status("/keep/v1/b", 404).await;
    assert_eq!(gw.get("/keep/v1/a").await.expect("request").status, 200);
    assert_eq!(gw.envoy_pid(), envoy_pid, "the same Envoy, never restarted");
    eventually("the stream to be in sync", || async {
        let s = gw.xds_status().await;
        if s["streams"][0]["inSync"] == true { Ok(()) } else { Err(s.to_string()) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_keeps_serving_while_the_adapter_restarts_state_of_the_world() {
    adapter_restart(XdsMode::Sotw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_keeps_serving_while_the_adapter_restarts_delta() {
    adapter_restart(XdsMode::Delta).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_restart_sends_nothing_in_delta_mode() {
    let b = Backend::start("b").await.expect("backend");
    let yaml = api_yaml("Same", "v1", "/same", &b.url());
    let mut gw = Gateway::builder(XdsMode::Delta)
        .project("same", &[("api.yaml", &yaml), ("Definitions/swagger.yaml", &oas(&["/a"]))])
        .start()
        .await;
    gw.wait_status("/same/v1/a", 200).await;
    gw.kill_adapter();
    gw.start_adapter().await;
    let s = eventually("Envoy to reconnect", || async {
        let s = gw.xds_status().await;
        if s["streams"].as_array().is_some_and(|a| !a.is_empty())
            && s["streams"][0]["types"]["rds"]["subscribed"] == true
        {
            Ok(s)
        } else {
            Err(s.to_string())
        }
    })
    .await;
    // Content versions survive the restart: Envoy's initial versions match, nothing is resent.
    for ty in ["cds", "eds", "lds", "srds", "rds"] {
        assert!(s["streams"][0]["types"][ty]["lastSent"].is_null(), "{ty} was resent: {s}");
    }
    assert_eq!(gw.get("/same/v1/a").await.expect("request").status, 200);
}
