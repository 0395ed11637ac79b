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
