//! The deploy status over hand-built router reports.

use std::collections::BTreeMap;

use gateway_model::Deployment;
use gateway_xds::stream::{Mode, Nack, NodeInfo, Sent, StreamStatus, TypeStatus};

use super::*;

fn placed(envs: &[&str]) -> Vec<Deployment> {
    envs.iter().map(|e| Deployment { environment: e.to_string(), vhost: "localhost".into() }).collect()
}

fn sent(version: &str) -> Sent {
    Sent { version: version.into(), nonce: "1".into(), resources: 1, removed: 0, bytes: 10, at_ms: 0 }
}

/// A router of `env` converging to `snapshot`; `nacked` is the version its last NACK refused.
fn router(id: u64, env: &str, instance: &str, snapshot: &str, in_sync: bool, nacked: Option<&str>) -> StreamReport {
    let mut lds = TypeStatus { subscribed: true, last_sent: Some(sent("v2")), ..Default::default() };
    if let Some(v) = nacked {
        lds.last_nack = Some(Nack {
            version: v.into(),
            nonce: "1".into(),
            message: "duplicate listener".into(),
            resources: Vec::new(),
            at_ms: 0,
        });
    }
    StreamReport {
        id,
        peer: "127.0.0.1:1".into(),
        connected_at_ms: 0,
        status: StreamStatus {
            mode: Mode::Delta,
            node: Some(NodeInfo { id: env.into(), instance: instance.into(), ..Default::default() }),
            snapshot: snapshot.into(),
            in_sync,
            types: BTreeMap::from([("lds", lds)]),
        },
    }
}

fn fingerprints(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn no_router_is_vacuously_applied() {
    let (overall, envs) = deploy_status(&placed(&["Default"]), &fingerprints(&[("Default", "f1")]), &[]);
    assert_eq!(overall, Applied::Applied);
    assert_eq!(
        envs,
        vec![EnvironmentStatus { environment: "Default".into(), state: Applied::Applied, routers: vec![] }]
    );
}

#[test]
fn a_router_behind_or_out_of_sync_is_pending() {
    let fp = fingerprints(&[("Default", "f2"), ("Prod", "p1")]);
    let routers = [
        router(1, "Default", "r1", "f2", true, None),
        router(2, "Default", "r2", "f1", true, None),
        router(3, "Prod", "r3", "p1", false, None),
        router(4, "Other", "r4", "x", true, None),
    ];
    let (overall, envs) = deploy_status(&placed(&["Default", "Prod"]), &fp, &routers);
    assert_eq!(overall, Applied::Pending);
    type Shown<'a> = (&'a str, Applied, Vec<(&'a str, bool)>);
    let shown: Vec<Shown<'_>> = envs
        .iter()
        .map(|e| {
            (e.environment.as_str(), e.state, e.routers.iter().map(|r| (r.instance.as_str(), r.applied)).collect())
        })
        .collect();
    assert_eq!(
        shown,
        vec![
            ("Default", Applied::Pending, vec![("r1", true), ("r2", false)]),
            ("Prod", Applied::Pending, vec![("r3", false)]),
        ],
        "routers of other environments are not counted"
    );
}

#[test]
fn a_nack_of_the_version_sent_is_rejected_and_wins() {
    let fp = fingerprints(&[("Default", "f2"), ("Prod", "p1")]);
    let routers = [
        router(1, "Prod", "r1", "p0", true, None),
        router(2, "Default", "r2", "f2", false, Some("v2")),
        // A NACK of an older version than the one sent since is history.
        router(3, "Default", "r3", "f2", true, Some("v1")),
    ];
    let (overall, envs) = deploy_status(&placed(&["Prod", "Default"]), &fp, &routers);
    assert_eq!(overall, Applied::Rejected);
    assert_eq!(envs[0].environment, "Default");
    assert_eq!(envs[0].state, Applied::Rejected);
    assert_eq!(envs[0].routers[0].rejected, Some(Rejection { ty: "lds".into(), message: "duplicate listener".into() }));
    assert_eq!(envs[0].routers[1].rejected, None);
    assert!(envs[0].routers[1].applied);
    assert_eq!(envs[1].state, Applied::Pending);
    let json = serde_json::to_value(&envs[0].routers[0]).expect("JSON");
    assert_eq!(
        json,
        serde_json::json!({"instance": "r2", "applied": false, "rejected": {"type": "lds", "message": "duplicate listener"}})
    );
}

#[test]
fn stream_numbers_are_shared_and_reports_replace() {
    let s = Status::default();
    assert_eq!((s.next_stream_id(), s.next_stream_id()), (1, 2));
    s.report(router(7, "Default", "a", "f", true, None));
    s.report(router(7, "Default", "b", "f", true, None));
    assert_eq!(s.streams().len(), 1);
    assert_eq!(s.streams()[0].status.node.as_ref().map(|n| n.instance.as_str()), Some("b"));
    s.forget(7);
    assert!(s.streams().is_empty());
    s.count_nack();
    assert_eq!(s.nacks(), 1);
}
