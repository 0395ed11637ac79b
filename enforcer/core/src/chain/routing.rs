//! Key type → cluster: the caller's `keytype` (PRODUCTION by default)
//! selects the route's production or sandbox cluster, which Envoy routes to
//! through `x-wso2-cluster-header`. A key for endpoints the API does not have
//! is refused; so is a key type that is neither.

use std::borrow::Cow;

use futures::FutureExt;
use futures::future::BoxFuture;

use super::{CLUSTER_HEADER, Context, Filter, Outcome};
use crate::decision::{AuthType, KeyType};
use crate::deny::{CREDENTIALS_SUFFIX, Deny};

/// The routing filter.
#[derive(Debug)]
pub struct Routing;

fn route(cx: &mut Context<'_>) -> Outcome {
    let Some(a) = &cx.authed else { return Outcome::Next };
    let Some(key_type) = KeyType::parse(&a.key_type) else {
        return Outcome::Refuse(Deny::invalid_credentials(format!("Invalid key type.{CREDENTIALS_SUFFIX}")));
    };
    cx.key_type = Some(key_type);
    match cx.input.cluster(key_type) {
        Some(cluster) => cx.set.push((Cow::Borrowed(CLUSTER_HEADER), cluster.to_string())),
        // Without credentials the key type follows the clusters there are.
        None if matches!(a.auth_type, AuthType::Unsecured | AuthType::Mtls) => {}
        None => return Outcome::Refuse(Deny::no_endpoint(key_type == KeyType::Production)),
    }
    Outcome::Next
}

impl Filter for Routing {
    fn name(&self) -> &'static str {
        "routing"
    }

    fn challenges(&self) -> bool {
        true
    }

    fn run<'a, 'r>(&'a self, cx: &'a mut Context<'r>) -> BoxFuture<'a, Outcome>
    where
        'r: 'a,
    {
        std::future::ready(route(cx)).boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::test_support::{Fx, assert_401, assert_next, caller};
    use crate::testkit::{PROD, Req, SAND};

    fn cluster_header(cluster: &str) -> crate::decision::SetHeaders {
        vec![(Cow::Borrowed(CLUSTER_HEADER), cluster.to_string())]
    }

    #[tokio::test]
    async fn the_key_type_picks_the_cluster() {
        let fx = Fx::new();
        let r = Req::get("/pets");
        for (key_type, parsed, cluster) in [
            ("PRODUCTION", KeyType::Production, PROD),
            ("production", KeyType::Production, PROD),
            ("SANDBOX", KeyType::Sandbox, SAND),
            ("Sandbox", KeyType::Sandbox, SAND),
        ] {
            for auth_type in
                [AuthType::Jwt, AuthType::ApiKey, AuthType::InternalKey, AuthType::Mtls, AuthType::Unsecured]
            {
                let mut cx = fx.cx(&r);
                cx.authed = Some(caller(auth_type, key_type));
                assert_next(Routing.run(&mut cx).await);
                assert_eq!(cx.set, cluster_header(cluster), "{key_type} {auth_type:?}");
                assert_eq!(cx.key_type, Some(parsed));
                assert!(cx.remove.is_empty());
            }
        }
    }

    #[tokio::test]
    async fn an_unknown_key_type_is_invalid_credentials() {
        let fx = Fx::new();
        let r = Req::get("/pets");
        for key_type in ["", "DEV", "PRODUCTION ", "prod"] {
            let mut cx = fx.cx(&r);
            cx.authed = Some(caller(AuthType::Jwt, key_type));
            let d = assert_401(
                Routing.run(&mut cx).await,
                "Invalid key type.. Make sure you have provided the correct security credentials",
            );
            assert_eq!(d.challenge, crate::deny::Challenge::Auth);
            assert_eq!(cx.key_type, None, "{key_type:?}");
            assert!(cx.set.is_empty());
        }
    }

    #[tokio::test]
    async fn a_key_for_a_missing_cluster_is_refused() {
        let fx = Fx::new();
        let no_prod = Req::get("/pets").ext("prodClusterName", "");
        let no_sand = Req::get("/pets").ext("sandClusterName", "");
        for auth_type in [AuthType::Jwt, AuthType::ApiKey, AuthType::InternalKey] {
            let mut cx = fx.cx(&no_prod);
            cx.authed = Some(caller(auth_type, "PRODUCTION"));
            assert_401(Routing.run(&mut cx).await, "Production key offered to an API with no production endpoint");
            assert!(cx.set.is_empty(), "{auth_type:?}");

            let mut cx = fx.cx(&no_sand);
            cx.authed = Some(caller(auth_type, "SANDBOX"));
            assert_401(Routing.run(&mut cx).await, "Sandbox key offered to an API with no sandbox endpoint");
            assert!(cx.set.is_empty(), "{auth_type:?}");

            // The other cluster is still there for the other key type.
            let mut cx = fx.cx(&no_prod);
            cx.authed = Some(caller(auth_type, "SANDBOX"));
            assert_next(Routing.run(&mut cx).await);
            assert_eq!(cx.set, cluster_header(SAND));
        }
    }

    #[tokio::test]
    async fn callers_without_credentials_go_on_without_a_cluster() {
        let fx = Fx::new();
        let r = Req::get("/pets").ext("prodClusterName", "").ext("sandClusterName", "");
        for auth_type in [AuthType::Unsecured, AuthType::Mtls] {
            for (key_type, parsed) in [("PRODUCTION", KeyType::Production), ("SANDBOX", KeyType::Sandbox)] {
                let mut cx = fx.cx(&r);
                cx.authed = Some(caller(auth_type, key_type));
                assert_next(Routing.run(&mut cx).await);
                assert!(cx.set.is_empty(), "{auth_type:?} {key_type}: {:?}", cx.set);
                assert_eq!(cx.key_type, Some(parsed));
            }
        }
    }

    #[tokio::test]
    async fn without_a_caller_nothing_is_set() {
        let fx = Fx::new();
        let r = Req::get("/pets");
        let mut cx = fx.cx(&r);
        assert_next(Routing.run(&mut cx).await);
        assert!(cx.set.is_empty() && cx.remove.is_empty());
        assert_eq!(cx.key_type, None);
        assert!(Routing.challenges());
    }
}
