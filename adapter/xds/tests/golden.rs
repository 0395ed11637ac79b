//! Golden tests: API project → Envoy resources, as JSON.
//!
//! Each folder in `tests/golden/` holds a `project/` (an apictl project), an
//! optional `config.toml`, and `expected.json`: every resource the project
//! produces on the `Default` label, decoded with Envoy's own proto
//! definitions (from envoy-types) into the JSON Envoy's `config_dump` uses.
//! `tests/golden/listeners.json` holds the listeners of the default config.
//!
//! To review a change: run `make golden` (UPDATE_GOLDEN=1), then read
//! `git diff adapter/xds/tests/golden` before committing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use envoy_descriptors::{DynamicMessage, SerializeOptions};
use gateway_model::{ParseOptions, ProjectFiles, parse_project};
use gateway_xds::snapshot::ResourceType;
use gateway_xds::state::Gateway;
use serde_json::Value;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn message_name(ty: ResourceType) -> &'static str {
    ty.type_url().trim_start_matches("type.googleapis.com/")
}

/// Sorts object keys recursively, so JSON output is stable.
fn sorted(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let b: BTreeMap<String, Value> = m.into_iter().map(|(k, v)| (k, sorted(v))).collect();
            Value::Object(b.into_iter().collect())
        }
        Value::Array(a) => Value::Array(a.into_iter().map(sorted).collect()),
        other => other,
    }
}

fn to_json(ty: ResourceType, bytes: &[u8]) -> Value {
    let desc = envoy_descriptors::message(message_name(ty)).expect("message descriptor");
    let msg = DynamicMessage::decode(desc, bytes).expect("decodes as the Envoy message");
    let opts = SerializeOptions::new().use_proto_field_name(true).stringify_64_bit_integers(false);
    let mut ser = serde_json::Serializer::new(Vec::new());
    msg.serialize_with_options(&mut ser, &opts).expect("to JSON");
    sorted(serde_json::from_slice(&ser.into_inner()).expect("JSON"))
}

fn load_config(dir: &Path) -> gateway_config::Config {
    let text = std::fs::read_to_string(dir.join("config.toml")).unwrap_or_default();
    gateway_config::load(&text, "config.toml", [("adapter_admin_pwd", "golden")]).expect("golden config").config
}

fn read_project(dir: &Path) -> ProjectFiles {
    let mut files = ProjectFiles::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read project dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).expect("inside").to_string_lossy().replace('\\', "/");
                files.insert(rel, std::fs::read(&p).expect("read file"));
            }
        }
    }
    files
}

fn check(name: &str, actual: &Value) {
    let path = golden_dir().join(name);
    let rendered = serde_json::to_string_pretty(actual).expect("render") + "\n";
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &rendered).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} is missing: run `make golden` and review the diff", path.display()));
    if expected != rendered {
        let actual_path = path.with_extension("actual.json");
        std::fs::write(&actual_path, &rendered).expect("write actual");
        panic!(
            "{} differs from the translation (actual output in {}). If the change is intended, run `make golden` and review `git diff`.",
            path.display(),
            actual_path.display()
        );
    }
}

#[test]
fn projects_translate_to_the_golden_resources() {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(golden_dir())
        .expect("golden dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("project").is_dir())
        .collect();
    cases.sort();
    assert!(!cases.is_empty(), "no golden cases");
    for case in cases {
        let config = load_config(&case);
        let opts = ParseOptions {
            max_retry_count: config.router.upstream.retry.max_retry_count,
            default_retry_status_codes: config.router.upstream.retry.status_codes.clone(),
            max_route_timeout_ms: config.router.upstream.timeouts.max_route_timeout_in_seconds * 1000,
            vhost_mapping: config
                .adapter
                .vhost_mapping
                .iter()
                .map(|m| (m.environment.clone(), m.vhost.clone()))
                .collect(),
            env: Default::default(),
            known_tiers: Default::default(),
        };
        let project = parse_project(&read_project(&case.join("project")), &opts)
            .unwrap_or_else(|e| panic!("{}: {e}", case.display()));
        let mut gw = Gateway::new(Arc::new(config));
        for d in &project.deployments {
            gw.upsert(&d.environment, &d.vhost, Arc::new(project.api.clone()));
        }
        gw.set_ready();
        let snap = gw.snapshot("Default").expect("a consistent snapshot");
        let mut out = serde_json::Map::new();
        for ty in [ResourceType::Cluster, ResourceType::Endpoint, ResourceType::ScopedRoute, ResourceType::Route] {
            let items: Vec<Value> = snap.resources(ty).values().map(|r| to_json(ty, &r.body)).collect();
            out.insert(ty.short_name().to_string(), Value::Array(items));
        }
        let name = case.file_name().and_then(|n| n.to_str()).expect("case name");
        check(&format!("{name}/expected.json"), &Value::Object(out));
    }
}

#[test]
fn default_listeners_match_the_golden_file() {
    let config = gateway_config::load("", "config.toml", [("adapter_admin_pwd", "golden")]).expect("defaults").config;
    let mut gw = Gateway::new(Arc::new(config));
    let snap = gw.snapshot("Default").expect("a consistent snapshot");
    let listeners: Vec<Value> =
        snap.resources(ResourceType::Listener).values().map(|r| to_json(ResourceType::Listener, &r.body)).collect();
    check("listeners.json", &Value::Array(listeners));
}
