//! Unit tests of the ADS state machine: requests in, responses out, no network.

use std::collections::BTreeMap;
use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::rpc::Status;
use pretty_assertions::assert_eq;

use crate::snapshot::{Resource, ResourceMap, ResourceType, Snapshot};
use crate::stream::{Event, Mode, Outcome, Response, Stream};

use ResourceType::{Cluster as CDS, Endpoint as EDS, Listener as LDS, Route as RDS, ScopedRoute as SRDS};

/// A snapshot from `(type, name, content)` triples.
fn snap(items: &[(ResourceType, &str, &str)]) -> Snapshot {
    let mut maps: [ResourceMap; 5] = Default::default();
    for (ty, name, content) in items {
        maps[ty.index()].insert(Arc::from(*name), Arc::new(Resource::from_bytes(*name, content.as_bytes().to_vec())));
    }
    Snapshot::new(maps.map(Arc::new))
}

fn base() -> Snapshot {
    snap(&[
        (CDS, "a", "cluster-a"),
        (CDS, "b", "cluster-b"),
        (EDS, "a", "eps-a"),
        (LDS, "http", "listener"),
        (SRDS, "s1", "scope-1"),
        (RDS, "r1", "routes-1 -> a,b"),
    ])
}

/// [`base`] plus a cluster `c` (with endpoints) that the route now uses.
fn base_with_cluster_c() -> Snapshot {
    snap(&[
        (CDS, "a", "cluster-a"),
        (CDS, "b", "cluster-b"),
        (CDS, "c", "cluster-c"),
        (EDS, "a", "eps-a"),
        (EDS, "c", "eps-c"),
        (LDS, "http", "listener"),
        (SRDS, "s1", "scope-1"),
        (RDS, "r1", "routes-1 -> a,b,c"),
    ])
}

fn sotw_req(ty: ResourceType, names: &[&str], version: &str, nonce: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        version_info: version.into(),
        resource_names: names.iter().map(|s| s.to_string()).collect(),
        type_url: ty.type_url().into(),
        response_nonce: nonce.into(),
        ..Default::default()
    }
}

fn nack_req(ty: ResourceType, names: &[&str], version: &str, nonce: &str, msg: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        error_detail: Some(Status { code: 13, message: msg.into(), details: vec![] }),
        ..sotw_req(ty, names, version, nonce)
    }
}

fn sotw(out: &Outcome) -> Vec<&DiscoveryResponse> {
    out.responses
        .iter()
        .map(|r| match r {
            Response::Sotw(r) => r,
            Response::Delta(_) => panic!("delta response on a sotw stream"),
        })
        .collect()
}

fn delta(out: &Outcome) -> Vec<&DeltaDiscoveryResponse> {
    out.responses
        .iter()
        .map(|r| match r {
            Response::Delta(r) => r,
            Response::Sotw(_) => panic!("sotw response on a delta stream"),
        })
        .collect()
}

fn names_of(r: &DiscoveryResponse) -> Vec<String> {
    let ty = ResourceType::from_type_url(&r.type_url).expect("known type");
    r.resources
        .iter()
        .map(|a| {
            assert_eq!(a.type_url, ty.type_url());
            String::from_utf8(a.value.clone()).expect("utf8 test content")
        })
        .collect()
}

fn only(out: &Outcome) -> &DiscoveryResponse {
    let rs = sotw(out);
    assert_eq!(rs.len(), 1, "expected exactly one response, got {rs:?}");
    rs[0]
}

fn ack(s: &mut Stream, r: &DiscoveryResponse, names: &[&str]) -> Outcome {
    let ty = ResourceType::from_type_url(&r.type_url).expect("known type");
    s.on_sotw_request(&sotw_req(ty, names, &r.version_info, &r.nonce), 0)
}

/// Brings a state-of-the-world stream through Envoy's start-up sequence.
fn synced_sotw(snapshot: Snapshot) -> Stream {
    let mut s = Stream::new(Mode::Sotw, snapshot);
    let cds = only(&s.on_sotw_request(&sotw_req(CDS, &[], "", ""), 0)).clone();
    // Endpoints asked for are answered even before the clusters' ACK.
    let eds = only(&s.on_sotw_request(&sotw_req(EDS, &["a"], "", ""), 0)).clone();
    assert_eq!(names_of(&eds), vec!["eps-a"]);
    assert!(sotw(&ack(&mut s, &cds, &[])).is_empty());
    assert!(sotw(&ack(&mut s, &eds, &["a"])).is_empty());
    let lds = only(&s.on_sotw_request(&sotw_req(LDS, &[], "", ""), 0)).clone();
    assert!(sotw(&ack(&mut s, &lds, &[])).is_empty());
    let srds = only(&s.on_sotw_request(&sotw_req(SRDS, &[], "", ""), 0)).clone();
    assert!(sotw(&ack(&mut s, &srds, &[])).is_empty());
    let rds = only(&s.on_sotw_request(&sotw_req(RDS, &["r1"], "", ""), 0)).clone();
    assert!(sotw(&ack(&mut s, &rds, &["r1"])).is_empty());
    assert!(s.in_sync());
    s
}

#[test]
fn sotw_start_up_sends_each_type_once_in_order() {
    let mut s = Stream::new(Mode::Sotw, base());
    let cds = only(&s.on_sotw_request(&sotw_req(CDS, &[], "", ""), 0)).clone();
    assert_eq!(names_of(&cds), vec!["cluster-a", "cluster-b"]);
    assert_eq!(cds.version_info, base().version(CDS), "a full CDS set carries the set's content version");
    // Envoy asks for endpoints before it acknowledges the clusters (it may
    // wait for them to warm before acknowledging): they are sent at once.
    let eds = only(&s.on_sotw_request(&sotw_req(EDS, &["a"], "", ""), 0)).clone();
    assert_eq!(eds.type_url, EDS.type_url());
    let out = ack(&mut s, &cds, &[]);
    assert_eq!(out.events, vec![Event::Ack { ty: CDS, version: cds.version_info.clone() }]);
    assert!(out.responses.is_empty());
    assert!(sotw(&ack(&mut s, &eds, &["a"])).is_empty());
    let lds = only(&s.on_sotw_request(&sotw_req(LDS, &[], "", ""), 0)).clone();
    assert_eq!(names_of(&lds), vec!["listener"]);
    assert!(s.status().types["lds"].last_sent.is_some());
    assert!(!s.in_sync(), "LDS in flight");
    assert!(sotw(&ack(&mut s, &lds, &[])).is_empty());
    assert!(s.in_sync());
}

#[test]
fn an_ack_is_never_answered_and_stale_nonces_are_ignored() {
    let mut s = synced_sotw(base());
    // The same ACK again, and requests quoting old nonces: nothing.
    assert!(sotw(&s.on_sotw_request(&sotw_req(CDS, &[], base().version(CDS), "1"), 0)).is_empty());
    assert!(sotw(&s.on_sotw_request(&sotw_req(RDS, &["r1"], "x", "999"), 0)).is_empty());
    // Republishing identical content sends nothing.
    assert!(s.on_snapshot(base(), 0).responses.is_empty());
    assert!(s.in_sync());
}

#[test]
fn a_route_change_sends_only_the_changed_route_configuration() {
    let mut s = synced_sotw(snap(&[
        (CDS, "a", "cluster-a"),
        (CDS, "b", "cluster-b"),
        (EDS, "a", "eps-a"),
        (LDS, "http", "listener"),
        (SRDS, "s1", "scope-1"),
        (SRDS, "s2", "scope-2"),
        (RDS, "r1", "routes-1"),
    ]));
    // Envoy subscribes to the second scope's routes.
    let r2 = snap(&[
        (CDS, "a", "cluster-a"),
        (CDS, "b", "cluster-b"),
        (EDS, "a", "eps-a"),
        (LDS, "http", "listener"),
        (SRDS, "s1", "scope-1"),
        (SRDS, "s2", "scope-2"),
        (RDS, "r1", "routes-1"),
        (RDS, "r2", "routes-2"),
    ]);
    assert!(s.on_snapshot(r2.clone(), 0).responses.is_empty(), "r2 is not subscribed yet");
    let last_rds = s.status().types["rds"].last_sent.clone().expect("sent");
    let out = s.on_sotw_request(&sotw_req(RDS, &["r1", "r2"], &last_rds.version, &last_rds.nonce), 0);
    let resp = only(&out).clone();
    assert_eq!(names_of(&resp), vec!["routes-2"], "only the newly subscribed configuration");
    assert!(sotw(&ack(&mut s, &resp, &["r1", "r2"])).is_empty());

    // Change r2 only.
    let changed = snap(&[
        (CDS, "a", "cluster-a"),
        (CDS, "b", "cluster-b"),
        (EDS, "a", "eps-a"),
        (LDS, "http", "listener"),
        (SRDS, "s1", "scope-1"),
        (SRDS, "s2", "scope-2"),
        (RDS, "r1", "routes-1"),
        (RDS, "r2", "routes-2 v2"),
    ]);
    let out = s.on_snapshot(changed, 0);
    let resp = only(&out).clone();
    assert_eq!(resp.type_url, RDS.type_url());
    assert_eq!(names_of(&resp), vec!["routes-2 v2"]);
    assert!(sotw(&ack(&mut s, &resp, &["r1", "r2"])).is_empty());
    assert!(s.in_sync());
}

#[test]
fn a_nack_is_recorded_and_the_rejected_version_is_not_resent() {
    let mut s = synced_sotw(base());
    let bad = snap(&[
        (CDS, "a", "cluster-a"),
        (CDS, "b", "cluster-b"),
        (EDS, "a", "eps-a"),
        (LDS, "http", "listener"),
        (SRDS, "s1", "scope-1"),
        (RDS, "r1", "routes-1 BAD"),
    ]);
    let resp = only(&s.on_snapshot(bad.clone(), 10)).clone();
    let out = s.on_sotw_request(&nack_req(RDS, &["r1"], base().version(RDS), &resp.nonce, "missing ]: [unclosed"), 11);
    assert!(out.responses.is_empty(), "no resend after a NACK");
    assert_eq!(
        out.events,
        vec![Event::Nack {
            ty: RDS,
            version: resp.version_info.clone(),
            message: "missing ]: [unclosed".into(),
            resources: vec!["r1".into()],
        }]
    );
    let st = s.status();
    let rds = &st.types["rds"];
    assert_eq!(rds.nacks, 1);
    let nack = rds.last_nack.as_ref().expect("recorded");
    assert_eq!(nack.message, "missing ]: [unclosed");
    assert_eq!(nack.at_ms, 11);
    assert_eq!(rds.last_acked.as_ref().map(|a| a.version.as_str()), Some(base().version(RDS)));
    // Envoy re-requests (it always does after a NACK), and the same snapshot is published again: still nothing.
    assert!(s.on_sotw_request(&sotw_req(RDS, &["r1"], base().version(RDS), &resp.nonce), 12).responses.is_empty());
    assert!(s.on_snapshot(bad, 13).responses.is_empty());
    // A fix goes out.
    let fixed = snap(&[
        (CDS, "a", "cluster-a"),
        (CDS, "b", "cluster-b"),
        (EDS, "a", "eps-a"),
        (LDS, "http", "listener"),
        (SRDS, "s1", "scope-1"),
        (RDS, "r1", "routes-1 fixed"),
    ]);
    let resp = only(&s.on_snapshot(fixed, 14)).clone();
    assert_eq!(names_of(&resp), vec!["routes-1 fixed"]);
    assert!(sotw(&ack(&mut s, &resp, &["r1"])).is_empty());
    assert!(s.in_sync());
}

#[test]
fn a_rejected_wildcard_set_is_not_resent_until_it_changes() {
    let mut s = synced_sotw(base());
    let bad = snap(&[
        (CDS, "a", "cluster-a"),
        (CDS, "b", "cluster-b"),
        (CDS, "c", "cluster-c BAD"),
        (EDS, "a", "eps-a"),
        (LDS, "http", "listener"),
        (SRDS, "s1", "scope-1"),
        (RDS, "r1", "routes-1 -> a,b"),
    ]);
    let resp = only(&s.on_snapshot(bad.clone(), 0)).clone();
    assert_eq!(resp.type_url, CDS.type_url());
    let out = s.on_sotw_request(&nack_req(CDS, &[], base().version(CDS), &resp.nonce, "bad cluster"), 0);
    assert!(out.responses.is_empty());
    assert!(s.on_snapshot(bad, 0).responses.is_empty());
}

#[test]
fn removed_clusters_stay_until_the_routes_no_longer_use_them() {
    let mut s = synced_sotw(base());
    // The API behind cluster b and its routes go away.
    let next = snap(&[
        (CDS, "a", "cluster-a"),
        (EDS, "a", "eps-a"),
        (LDS, "http", "listener"),
        (SRDS, "s1", "scope-1"),
        (RDS, "r1", "routes-1 -> a"),
    ]);
    // Clusters first: nothing to add, b must stay, so CDS is unchanged and the routes go first.
    let rds = only(&s.on_snapshot(next.clone(), 0)).clone();
    assert_eq!(rds.type_url, RDS.type_url());
    assert_eq!(names_of(&rds), vec!["routes-1 -> a"]);
    // Once the routes are acknowledged, the cluster can go.
    let cds = only(&ack(&mut s, &rds, &["r1"])).clone();
    assert_eq!(cds.type_url, CDS.type_url());
    assert_eq!(names_of(&cds), vec!["cluster-a"]);
    assert_eq!(cds.version_info, next.version(CDS));
    assert!(sotw(&ack(&mut s, &cds, &[])).is_empty());
    assert!(s.in_sync());
}

#[test]
fn a_new_cluster_arrives_before_the_routes_that_use_it() {
    let mut s = synced_sotw(base());
    let next = base_with_cluster_c();
    let cds = only(&s.on_snapshot(next, 0)).clone();
    assert_eq!(cds.type_url, CDS.type_url());
    assert_eq!(names_of(&cds), vec!["cluster-a", "cluster-b", "cluster-c"]);
    // The CDS ACK comes first here: routes must still wait for c's endpoints.
    assert!(sotw(&ack(&mut s, &cds, &[])).is_empty());
    // Envoy asks for c's endpoints, quoting the last (answered) EDS nonce.
    let last_eds = s.status().types["eds"].last_sent.clone().expect("sent");
    let eds = only(&s.on_sotw_request(&sotw_req(EDS, &["a", "c"], &last_eds.version, &last_eds.nonce), 0)).clone();
    assert_eq!(names_of(&eds), vec!["eps-c"]);
    let rds = only(&ack(&mut s, &eds, &["a", "c"])).clone();
    assert_eq!(names_of(&rds), vec!["routes-1 -> a,b,c"]);
    assert!(sotw(&ack(&mut s, &rds, &["r1"])).is_empty());
    assert!(s.in_sync());
}

#[test]
fn a_stale_request_does_not_change_the_subscription() {
    let mut s = synced_sotw(base());
    let next = snap(&[
        (CDS, "a", "cluster-a"),
        (CDS, "b", "cluster-b"),
        (EDS, "a", "eps-a"),
        (LDS, "http", "listener"),
        (SRDS, "s1", "scope-1"),
        (RDS, "r1", "routes-1 v2"),
        (RDS, "r2", "routes-2"),
    ]);
    let rds = only(&s.on_snapshot(next, 0)).clone();
    // A request quoting an older nonce asks for r2: ignored as stale.
    assert!(sotw(&s.on_sotw_request(&sotw_req(RDS, &["r1", "r2"], "old", "1"), 0)).is_empty());
    // The ACK of the latest response with the same names is honoured.
    let out = ack(&mut s, &rds, &["r1", "r2"]);
    assert_eq!(names_of(only(&out)), vec!["routes-2"]);
}

#[test]
fn sotw_reconnect_with_the_current_version_sends_no_wildcard_type_again() {
    let mut s = Stream::new(Mode::Sotw, base());
    let out = s.on_sotw_request(&sotw_req(CDS, &[], base().version(CDS), ""), 0);
    assert!(out.responses.is_empty(), "client already holds this exact set");
    // Endpoints cannot be trusted from a version string alone: sent again.
    let eds = only(&s.on_sotw_request(&sotw_req(EDS, &["a"], base().version(EDS), ""), 0)).clone();
    assert_eq!(names_of(&eds), vec!["eps-a"]);
    assert!(sotw(&ack(&mut s, &eds, &["a"])).is_empty());
    let out = s.on_sotw_request(&sotw_req(LDS, &[], "stale-version", ""), 0);
    assert_eq!(names_of(only(&out)), vec!["listener"]);
}

fn delta_req(ty: ResourceType, sub: &[&str], unsub: &[&str], nonce: &str) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        type_url: ty.type_url().into(),
        resource_names_subscribe: sub.iter().map(|s| s.to_string()).collect(),
        resource_names_unsubscribe: unsub.iter().map(|s| s.to_string()).collect(),
        response_nonce: nonce.into(),
        ..Default::default()
    }
}

fn only_delta(out: &Outcome) -> DeltaDiscoveryResponse {
    let rs = delta(out);
    assert_eq!(rs.len(), 1, "expected exactly one response, got {rs:?}");
    rs[0].clone()
}

fn delta_names(r: &DeltaDiscoveryResponse) -> Vec<String> {
    r.resources.iter().map(|x| x.name.clone()).collect()
}

fn delta_ack(s: &mut Stream, r: &DeltaDiscoveryResponse) -> Outcome {
    let ty = ResourceType::from_type_url(&r.type_url).expect("known");
    s.on_delta_request(&delta_req(ty, &[], &[], &r.nonce), 0)
}

#[test]
fn delta_sends_only_changed_resources_and_removals() {
    let mut s = Stream::new(Mode::Delta, base());
    let cds = only_delta(&s.on_delta_request(&delta_req(CDS, &[], &[], ""), 0));
    assert_eq!(delta_names(&cds), vec!["a", "b"]);
    assert_eq!(*cds.resources[0].version, *base().resources(CDS)["a"].version);
    assert!(delta_ack(&mut s, &cds).responses.is_empty());
    let rds_req = s.on_delta_request(&delta_req(RDS, &["r1"], &[], ""), 0);
    assert!(rds_req.responses.is_empty(), "routes wait for the endpoints of EDS cluster a");
    let eds = only_delta(&s.on_delta_request(&delta_req(EDS, &["a"], &[], ""), 0));
    let rds = only_delta(&delta_ack(&mut s, &eds));
    assert_eq!(delta_names(&rds), vec!["r1"]);
    assert!(delta_ack(&mut s, &rds).responses.is_empty());

    // Cluster b changes, cluster c is new: only those two go out.
    let next = snap(&[
        (CDS, "a", "cluster-a"),
        (CDS, "b", "cluster-b v2"),
        (CDS, "c", "cluster-c"),
        (EDS, "a", "eps-a"),
        (LDS, "http", "listener"),
        (SRDS, "s1", "scope-1"),
        (RDS, "r1", "routes-1 -> a,b"),
    ]);
    let out = only_delta(&s.on_snapshot(next, 0));
    assert_eq!(delta_names(&out), vec!["b", "c"]);
    assert!(out.removed_resources.is_empty());
    assert!(delta_ack(&mut s, &out).responses.is_empty());

    // Route no longer uses c, and c goes: routes first, then the removal.
    let next = snap(&[
        (CDS, "a", "cluster-a"),
        (CDS, "b", "cluster-b v2"),
        (EDS, "a", "eps-a"),
        (LDS, "http", "listener"),
        (SRDS, "s1", "scope-1"),
        (RDS, "r1", "routes-1 -> a"),
    ]);
    let rds = only_delta(&s.on_snapshot(next, 0));
    assert_eq!(rds.type_url, RDS.type_url());
    let cds = only_delta(&delta_ack(&mut s, &rds));
    assert_eq!(cds.type_url, CDS.type_url());
    assert!(cds.resources.is_empty());
    assert_eq!(cds.removed_resources, vec!["c".to_string()]);
    assert!(delta_ack(&mut s, &cds).responses.is_empty());
    assert!(s.in_sync());
}

#[test]
fn delta_reconnect_honours_initial_resource_versions() {
    let snapshot = base();
    let mut s = Stream::new(Mode::Delta, snapshot.clone());
    let mut initial = BTreeMap::new();
    initial.insert("a".to_string(), snapshot.resources(CDS)["a"].version.to_string());
    initial.insert("b".to_string(), "old-version".to_string());
    initial.insert("gone".to_string(), "v".to_string());
    let req = DeltaDiscoveryRequest {
        initial_resource_versions: initial.into_iter().collect(),
        ..delta_req(CDS, &[], &[], "")
    };
    let out = only_delta(&s.on_delta_request(&req, 0));
    assert_eq!(delta_names(&out), vec!["b"], "a is current and is not resent");
    assert_eq!(out.removed_resources, vec!["gone".to_string()]);
}

#[test]
fn delta_tells_once_that_a_named_resource_does_not_exist_and_handles_unsubscribe() {
    let mut s = Stream::new(Mode::Delta, base());
    let out = only_delta(&s.on_delta_request(&delta_req(RDS, &["r1", "nope"], &[], ""), 0));
    assert_eq!(delta_names(&out), vec!["r1"]);
    assert_eq!(out.removed_resources, vec!["nope".to_string()]);
    assert!(delta_ack(&mut s, &out).responses.is_empty());
    assert!(s.on_snapshot(base(), 0).responses.is_empty());
    // Unsubscribing drops it from what the client holds; resubscribing sends it again.
    assert!(s.on_delta_request(&delta_req(RDS, &[], &["r1"], ""), 0).responses.is_empty());
    let out = only_delta(&s.on_delta_request(&delta_req(RDS, &["r1"], &[], ""), 0));
    assert_eq!(delta_names(&out), vec!["r1"]);
}

#[test]
fn delta_nack_keeps_the_rejected_version_from_being_resent() {
    let mut s = Stream::new(Mode::Delta, base());
    let cds = only_delta(&s.on_delta_request(&delta_req(CDS, &[], &[], ""), 0));
    let req = DeltaDiscoveryRequest {
        error_detail: Some(Status { code: 13, message: "no".into(), details: vec![] }),
        ..delta_req(CDS, &[], &[], &cds.nonce)
    };
    let out = s.on_delta_request(&req, 0);
    assert!(out.responses.is_empty());
    assert!(matches!(out.events.as_slice(), [Event::Nack { ty: CDS, .. }]));
    assert!(s.on_snapshot(base(), 0).responses.is_empty());
    assert_eq!(s.status().types["cds"].nacks, 1);
}

#[test]
fn requests_for_unknown_types_are_ignored() {
    let mut s = Stream::new(Mode::Sotw, base());
    let req = DiscoveryRequest { type_url: "type.googleapis.com/envoy.other".into(), ..Default::default() };
    assert!(s.on_sotw_request(&req, 0).responses.is_empty());
}

#[test]
fn large_updates_are_split_and_continue_after_each_ack() {
    let mut items = vec![(CDS, "a", "cluster-a")];
    let names: Vec<String> = (0..10).map(|i| format!("r{i}")).collect();
    let content = "x".repeat(100);
    for n in &names {
        items.push((RDS, n.as_str(), content.as_str()));
    }
    let snapshot = snap(&items);
    for mode in [Mode::Sotw, Mode::Delta] {
        let mut s = Stream::new(mode, snapshot.clone()).with_max_response_bytes(250);
        let subscribe: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut received = 0;
        let mut out = match mode {
            Mode::Sotw => s.on_sotw_request(&sotw_req(RDS, &subscribe, "", ""), 0),
            Mode::Delta => s.on_delta_request(&delta_req(RDS, &subscribe, &[], ""), 0),
        };
        for _ in 0..10 {
            let Some(resp) = out.responses.first().cloned() else { break };
            out = match resp {
                Response::Sotw(r) => {
                    assert!(r.resources.len() <= 3, "{} resources in one response", r.resources.len());
                    received += r.resources.len();
                    s.on_sotw_request(&sotw_req(RDS, &subscribe, &r.version_info, &r.nonce), 0)
                }
                Response::Delta(r) => {
                    assert!(r.resources.len() <= 3, "{} resources in one response", r.resources.len());
                    received += r.resources.len();
                    s.on_delta_request(&delta_req(RDS, &[], &[], &r.nonce), 0)
                }
            };
        }
        assert_eq!(received, 10, "{mode:?}: every resource arrives, a few at a time");
        assert!(out.responses.is_empty());
        assert!(s.in_sync());
    }
}

/// Timing of one change against 10,000 resources per type (release build:
/// `cargo test --release -p gateway-xds scale -- --ignored --nocapture`).
#[test]
#[ignore = "timing, run by hand"]
fn scale_one_change_at_ten_thousand() {
    let n = 10_000;
    let mut maps: [ResourceMap; 5] = Default::default();
    for i in 0..n {
        for ty in [CDS, EDS, SRDS, RDS] {
            let name = format!("name-{i:05}");
            maps[ty.index()].insert(name.as_str().into(), Arc::new(Resource::from_bytes(name, vec![0u8; 200])));
        }
    }
    maps[LDS.index()].insert("l".into(), Arc::new(Resource::from_bytes("l", vec![1])));
    let arcs = maps.clone().map(Arc::new);
    let snap1 = Snapshot::new(arcs.clone());
    let mut s = Stream::new(Mode::Delta, snap1);
    let all: Vec<String> = (0..n).map(|i| format!("name-{i:05}")).collect();
    let all_ref: Vec<&str> = all.iter().map(String::as_str).collect();
    let mut pending: Vec<Response> = Vec::new();
    for (ty, names) in [(CDS, vec![]), (EDS, all_ref.clone()), (LDS, vec![]), (SRDS, vec![]), (RDS, all_ref.clone())] {
        pending.extend(s.on_delta_request(&delta_req(ty, &names, &[], ""), 0).responses);
    }
    for _ in 0..1000 {
        let Some(Response::Delta(r)) = pending.pop() else { break };
        let ty = ResourceType::from_type_url(&r.type_url).expect("type");
        pending.extend(s.on_delta_request(&delta_req(ty, &[], &[], &r.nonce), 0).responses);
    }
    assert!(s.in_sync(), "synced");
    let mut changed = maps.clone();
    changed[RDS.index()].insert("name-00042".into(), Arc::new(Resource::from_bytes("name-00042", vec![9u8; 200])));
    let mut arcs2 = arcs.clone();
    arcs2[RDS.index()] = Arc::new(changed[RDS.index()].clone());
    let started = std::time::Instant::now();
    let out = s.on_snapshot(Snapshot::new(arcs2), 0);
    let t = started.elapsed();
    assert_eq!(out.responses.len(), 1);
    let Response::Delta(r) = &out.responses[0] else { panic!("delta") };
    let started = std::time::Instant::now();
    let _ = s.on_delta_request(&delta_req(RDS, &[], &[], &r.nonce), 0);
    let t2 = started.elapsed();
    let started = std::time::Instant::now();
    let _ = s.status();
    eprintln!("on_snapshot {t:?}, ack {t2:?}, status {:?}", started.elapsed());
}

#[test]
fn an_empty_wildcard_type_is_answered_once_so_envoy_does_not_wait_for_its_fetch_timeout() {
    // No APIs: no clusters, but listeners. Envoy waits for a first CDS
    // response before it initializes; an empty one must come at once.
    let empty = snap(&[(LDS, "http", "listener")]);
    let mut s = Stream::new(Mode::Sotw, empty.clone());
    let out = s.on_sotw_request(&sotw_req(CDS, &[], "", ""), 0);
    let r = only(&out);
    assert_eq!(r.type_url, CDS.type_url());
    assert!(r.resources.is_empty());
    let nonce = r.nonce.clone();
    let version = r.version_info.clone();
    assert!(s.on_sotw_request(&sotw_req(CDS, &[], &version, &nonce), 1).responses.is_empty(), "ACK not answered");

    let mut d = Stream::new(Mode::Delta, empty);
    let r = only_delta(&d.on_delta_request(&delta_req(CDS, &[], &[], ""), 0));
    assert!(r.resources.is_empty() && r.removed_resources.is_empty());
    assert!(delta_ack(&mut d, &r).responses.is_empty(), "ACK not answered");
}

#[test]
fn endpoints_asked_for_while_clusters_are_in_flight_are_sent() {
    // Envoy may hold the ACK of new clusters until they are warm, and
    // warming needs their endpoints: EDS must not wait for that ACK.
    let mut s = synced_sotw(base());
    let next = base_with_cluster_c();
    let cds = only(&s.on_snapshot(next, 0)).clone();
    assert_eq!(cds.type_url, CDS.type_url());
    // No CDS ACK yet; Envoy asks for c's endpoints.
    let last_eds = s.status().types["eds"].last_sent.clone().expect("sent");
    let eds = only(&s.on_sotw_request(&sotw_req(EDS, &["a", "c"], &last_eds.version, &last_eds.nonce), 0)).clone();
    assert_eq!(names_of(&eds), vec!["eps-c"]);
    // Routes still wait for the clusters' ACK.
    assert!(sotw(&ack(&mut s, &eds, &["a", "c"])).is_empty());
    let rds = only(&ack(&mut s, &cds, &[])).clone();
    assert_eq!(names_of(&rds), vec!["routes-1 -> a,b,c"]);
    assert!(sotw(&ack(&mut s, &rds, &["r1"])).is_empty());
    assert!(s.in_sync());
}
