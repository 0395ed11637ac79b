//! A whole ext_authz CheckRequest from arbitrary protobuf bytes, decided by
//! both configured engines: must never panic, and a configured engine always
//! answers.
//!
//! With `ENFORCER_FUZZ_SEEDS=DIR` the target first writes seed requests (every
//! route and method, with and without credentials) into DIR, which
//! scripts/fuzz.sh points at the corpus.
#![no_main]

use envoy_types::pb::envoy::service::auth::v3::{CheckRequest, check_response};
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(
    init: {
        let f = enforcer_fuzz::fixture();
        if let Some(dir) = std::env::var_os("ENFORCER_FUZZ_SEEDS") {
            enforcer_fuzz::write_seeds(f, &dir.to_string_lossy());
        }
    },
    |data: &[u8]| {
        let Ok(req) = CheckRequest::decode(data) else { return };
        let f = enforcer_fuzz::fixture();
        for engine in &f.engines {
            let resp = f.rt.block_on(enforcer::authz::check(engine, &req)).expect("a configured engine answers");
            assert!(resp.status.is_some() && resp.dynamic_metadata.is_some());
            match resp.http_response {
                Some(check_response::HttpResponse::OkResponse(_)) => {
                    assert_eq!(resp.status.as_ref().map(|s| s.code), Some(0));
                }
                Some(check_response::HttpResponse::DeniedResponse(d)) => {
                    assert!(d.status.is_some_and(|s| (100..600).contains(&s.code)), "{d:?}");
                }
                other => panic!("no HTTP response: {other:?}"),
            }
        }
    }
);
