//! The deployment rules, on APIs parsed from a minimal project.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use gateway_model::{Api, Deployment, ParseOptions, Project, ProjectFiles, parse_project};

use super::*;

/// An API parsed once; the tests vary its identity and paths.
static TEMPLATE: LazyLock<Api> = LazyLock::new(|| {
    let mut files = ProjectFiles::new();
    files.insert(
        "api.yaml",
        "type: api\nversion: v4.2.0\ndata:\n  name: Pets\n  version: 1.0.0\n  context: /pets\n  type: HTTP\n  \
         endpointConfig:\n    endpoint_type: http\n    production_endpoints:\n      url: http://backend:8080\n"
            .as_bytes(),
    );
    files.insert(
        "Definitions/swagger.yaml",
        "openapi: 3.0.1\ninfo: { title: Pets, version: 1.0.0 }\npaths:\n  /pets:\n    get: {}\n".as_bytes(),
    );
    parse_project(&files, &ParseOptions::default()).expect("the template project parses").api
});

fn api(name: &str, version: &str, base_path: &str) -> Api {
    let mut a = TEMPLATE.clone();
    a.id = format!("id-{name}-{version}");
    a.name = name.into();
    a.version = version.into();
    a.base_path = base_path.into();
    a.versionless_base_path = None;
    a
}

fn at(places: &[(&str, &str)]) -> Vec<Deployment> {
    places.iter().map(|(e, v)| Deployment { environment: e.to_string(), vhost: v.to_string() }).collect()
}

fn project(api: &Api, places: &[(&str, &str)]) -> Project {
    Project { api: api.clone(), deployments: at(places), skipped_environments: Vec::new() }
}

/// Effects as (op, environment, vhost, api id), to compare.
fn shown(effects: &[Effect]) -> Vec<(&'static str, String, String, String)> {
    effects
        .iter()
        .map(|e| match e {
            Effect::Upsert { environment, vhost, api } => {
                ("upsert", environment.clone(), vhost.clone(), api.id.clone())
            }
            Effect::Remove { environment, vhost, api_id } => {
                ("remove", environment.clone(), vhost.clone(), api_id.clone())
            }
        })
        .collect()
}

fn e(op: &'static str, env: &str, vhost: &str, id: &str) -> (&'static str, String, String, String) {
    (op, env.into(), vhost.into(), id.into())
}

/// Deploys an upload the way the management API does: checked, then per vhost.
fn upload(d: &mut Deployments, a: &Api, places: &[(&str, &str)], replace: bool) -> Result<Vec<Effect>, Refusal> {
    let split = parts(a, &at(places));
    d.check_upload(a, &split, replace)?;
    let mut effects = Vec::new();
    for p in split {
        let part = Project { api: a.clone(), deployments: p.deployments, skipped_environments: Vec::new() };
        effects.extend(d.deploy(&p.source, part).expect("checked"));
    }
    Ok(effects)
}

#[test]
fn sources_are_named_by_origin_and_vhost() {
    let a = api("Pets", "1.0.0", "/pets");
    assert_eq!(source::artifacts("pets.zip"), "artifacts:pets.zip");
    assert_eq!(source::rest(&a, "example.com"), format!("rest:{}:id-Pets-1.0.0@example.com", a.organization));
    assert!(source::is_rest(&source::rest(&a, "x")));
    assert!(!source::is_rest(&source::artifacts("x")));
}

#[test]
fn a_project_splits_into_one_part_per_vhost() {
    let a = api("Pets", "1.0.0", "/pets");
    let split = parts(&a, &at(&[("Default", "b.com"), ("Prod", "a.com"), ("Stage", "b.com")]));
    let shown: Vec<(&str, Vec<&str>)> = split
        .iter()
        .map(|p| (p.vhost.as_str(), p.deployments.iter().map(|d| d.environment.as_str()).collect()))
        .collect();
    assert_eq!(shown, vec![("a.com", vec!["Prod"]), ("b.com", vec!["Default", "Stage"])]);
    assert_eq!(split[0].source, source::rest(&a, "a.com"));
}

#[test]
fn deploying_yields_upserts_and_a_redeploy_removes_only_what_moved() {
    let mut d = Deployments::default();
    let a = api("Pets", "1.0.0", "/pets");
    let fx = d.deploy("artifacts:pets", project(&a, &[("Default", "localhost"), ("Prod", "localhost")])).expect("ok");
    assert_eq!(shown(&fx), vec![e("upsert", "Default", "localhost", &a.id), e("upsert", "Prod", "localhost", &a.id)]);
    // The same source again, now in Default only: Prod goes, Default is replaced.
    let fx = d.deploy("artifacts:pets", project(&a, &[("Default", "localhost")])).expect("ok");
    assert_eq!(shown(&fx), vec![e("remove", "Prod", "localhost", &a.id), e("upsert", "Default", "localhost", &a.id)]);
    // The source now holds another API: the old one goes everywhere.
    let b = api("Pets", "2.0.0", "/pets/v2");
    let fx = d.deploy("artifacts:pets", project(&b, &[("Default", "localhost")])).expect("ok");
    assert_eq!(
        shown(&fx),
        vec![e("remove", "Default", "localhost", &a.id), e("upsert", "Default", "localhost", &b.id)]
    );
    assert_eq!(d.sources().count(), 1);
    assert_eq!(d.get("artifacts:pets").map(|x| x.api.version.as_str()), Some("2.0.0"));
}

#[test]
fn a_base_path_belongs_to_one_source_per_vhost() {
    let mut d = Deployments::default();
    d.deploy("artifacts:a", project(&api("A", "1", "/shop"), &[("Default", "localhost")])).expect("ok");
    let b = api("B", "1", "/shop");
    let err = d.deploy("artifacts:b", project(&b, &[("Default", "localhost")])).expect_err("same base path");
    assert_eq!(
        err.0.iter().map(ToString::to_string).collect::<Vec<_>>(),
        vec!["An API exists with the same basepath /shop on vhost localhost: A 1 (from artifacts:a)"]
    );
    assert!(d.get("artifacts:b").is_none(), "a refused deploy changes nothing");
    // Another vhost is another namespace.
    d.deploy("artifacts:b", project(&b, &[("Default", "other.com")])).expect("another vhost");
    // The versionless base path of a default version counts too.
    let mut c = api("C", "2", "/c/2");
    c.versionless_base_path = Some("/shop".into());
    assert!(d.check("artifacts:c", &c, &at(&[("Default", "localhost")])).is_err());
    assert!(d.check("artifacts:c", &c, &at(&[("Default", "third.com")])).is_ok());
}

#[test]
fn an_api_id_belongs_to_one_source_per_vhost() {
    let mut d = Deployments::default();
    let a = api("A", "1", "/a");
    d.deploy("artifacts:one", project(&a, &[("Default", "localhost")])).expect("ok");
    let err = d.deploy("artifacts:two", project(&a, &[("Default", "localhost")])).expect_err("same API");
    assert_eq!(err.to_string(), "API A 1 is already deployed from artifacts:one on vhost localhost");
}

#[test]
fn undeploying_a_source_frees_its_paths() {
    let mut d = Deployments::default();
    let a = api("A", "1", "/a");
    d.deploy("artifacts:a", project(&a, &[("Default", "localhost"), ("Prod", "x.com")])).expect("ok");
    let fx = d.undeploy("artifacts:a").expect("it had something");
    assert_eq!(shown(&fx), vec![e("remove", "Default", "localhost", &a.id), e("remove", "Prod", "x.com", &a.id)]);
    assert!(d.undeploy("artifacts:a").is_none());
    d.deploy("artifacts:b", project(&api("B", "1", "/a"), &[("Default", "localhost")])).expect("the path is free");
}

#[test]
fn an_upload_without_override_is_refused_where_the_api_exists() {
    let mut d = Deployments::default();
    let a = api("Pets", "1.0.0", "/pets");
    upload(&mut d, &a, &[("Default", "localhost")], false).expect("first upload");
    // Same vhost, no override: refused, naming the vhost.
    let err = upload(&mut d, &a, &[("Default", "localhost"), ("Default", "b.com")], false).expect_err("exists");
    assert_eq!(err, Refusal::Exists { name: "Pets".into(), version: "1.0.0".into(), vhosts: vec!["localhost".into()] });
    assert_eq!(err.to_string(), "Pets 1.0.0 is deployed on vhost localhost; deploy with override to replace it");
    assert!(d.get(&source::rest(&a, "b.com")).is_none(), "nothing of a refused upload is deployed");
    // Another vhost: stands beside the first.
    upload(&mut d, &a, &[("Default", "b.com")], false).expect("another vhost");
    assert_eq!(d.sources().count(), 2);
    // Override: replaces it on the upload's vhosts only.
    let fx = upload(&mut d, &a, &[("Prod", "localhost")], true).expect("override");
    assert_eq!(shown(&fx), vec![e("remove", "Default", "localhost", &a.id), e("upsert", "Prod", "localhost", &a.id)]);
    assert_eq!(d.placements("Pets", "1.0.0"), at(&[("Default", "b.com"), ("Prod", "localhost")]));
}

#[test]
fn an_upload_never_overrides_another_source() {
    let mut d = Deployments::default();
    let a = api("Pets", "1.0.0", "/pets");
    d.deploy(&source::artifacts("pets"), project(&a, &[("Default", "localhost")])).expect("ok");
    let err = upload(&mut d, &a, &[("Default", "localhost")], true).expect_err("artifacts own it");
    let Refusal::Conflicts(problems) = &err else { panic!("{err:?}") };
    assert_eq!(
        problems,
        &vec!["API Pets 1.0.0 is already deployed from artifacts:pets on vhost localhost".to_string()]
    );
    let other = api("Shop", "1.0.0", "/pets");
    let err = upload(&mut d, &other, &[("Default", "localhost")], false).expect_err("base path taken");
    assert!(matches!(err, Refusal::Conflicts(_)), "{err:?}");
}

#[test]
fn an_undeploy_narrows_by_vhost_and_environment() {
    let mut d = Deployments::default();
    let a = api("Pets", "1.0.0", "/pets");
    upload(&mut d, &a, &[("Default", "localhost"), ("Prod", "localhost"), ("Default", "b.com")], false).expect("ok");

    // Nothing matches: an empty plan.
    let none = Selection { vhost: Some("c.com".into()), environments: None };
    assert!(d.plan_undeploy("Pets", "1.0.0", &none).expect("plan").is_empty());
    assert!(d.plan_undeploy("Pets", "9.9.9", &Selection::default()).expect("plan").is_empty());

    // One environment of one vhost: that source keeps the rest.
    let sel = Selection { vhost: Some("localhost".into()), environments: Some(BTreeSet::from(["Prod".to_string()])) };
    let plan = d.plan_undeploy("Pets", "1.0.0", &sel).expect("plan");
    assert_eq!(plan.len(), 1);
    assert_eq!((plan[0].removed, plan[0].kept.clone()), (1, at(&[("Default", "localhost")])));
    let fx = d.undeploy_planned(plan).expect("applies");
    assert_eq!(shown(&fx), vec![e("remove", "Prod", "localhost", &a.id), e("upsert", "Default", "localhost", &a.id)]);
    assert_eq!(d.placements("Pets", "1.0.0"), at(&[("Default", "b.com"), ("Default", "localhost")]));

    // Everything left.
    let plan = d.plan_undeploy("Pets", "1.0.0", &Selection::default()).expect("plan");
    assert_eq!(plan.iter().map(|u| u.removed).sum::<usize>(), 2);
    d.undeploy_planned(plan).expect("applies");
    assert_eq!(d.sources().count(), 0);
}

#[test]
fn the_rest_api_does_not_undeploy_the_artifacts_folder() {
    let mut d = Deployments::default();
    let a = api("Pets", "1.0.0", "/pets");
    d.deploy(&source::artifacts("pets"), project(&a, &[("Default", "localhost")])).expect("ok");
    let err = d.plan_undeploy("Pets", "1.0.0", &Selection::default()).expect_err("not ours");
    assert_eq!(err.to_string(), "Pets 1.0.0 comes from artifacts:pets: remove it from the artifacts folder instead");
    // Outside the selection it is not in the way.
    let sel = Selection { vhost: Some("b.com".into()), environments: None };
    assert!(d.plan_undeploy("Pets", "1.0.0", &sel).expect("plan").is_empty());
}

#[test]
fn the_listing_has_one_line_per_api_and_vhost() {
    let mut d = Deployments::default();
    let a = api("Pets", "1.0.0", "/pets");
    upload(&mut d, &a, &[("Default", "localhost"), ("Prod", "localhost"), ("Default", "b.com")], false).expect("ok");
    d.deploy(&source::artifacts("shop"), project(&api("Shop", "2", "/shop"), &[("Default", "localhost")])).expect("ok");
    let lines: Vec<(String, String, Vec<String>)> =
        d.listing().into_iter().map(|l| (l.name, l.vhost, l.environments)).collect();
    assert_eq!(
        lines,
        vec![
            ("Pets".into(), "b.com".into(), vec!["Default".into()]),
            ("Pets".into(), "localhost".into(), vec!["Default".into(), "Prod".into()]),
            ("Shop".into(), "localhost".into(), vec!["Default".into()]),
        ]
    );
    assert_eq!(d.listing()[0].context, "/pets");
    assert_eq!(d.listing()[0].api_type, "HTTP");
}
