//! CORS, first in the chain as in Choreo Connect: an OPTIONS on a resource
//! that does not declare OPTIONS is answered here, 204 with `Allow: OPTIONS,
//! <methods of the resource>` and no CORS headers (preflights from allowed
//! origins never get here: Envoy's CORS filter answers them). It never
//! reaches a backend. A declared OPTIONS goes on like any method.

use futures::FutureExt;
use futures::future::BoxFuture;

use super::{Context, Filter, Outcome};
use crate::deny::Deny;

/// The CORS filter.
#[derive(Debug)]
pub struct Cors;

impl Filter for Cors {
    fn name(&self) -> &'static str {
        "cors"
    }

    fn run<'a, 'r>(&'a self, cx: &'a mut Context<'r>) -> BoxFuture<'a, Outcome>
    where
        'r: 'a,
    {
        let outcome = match cx.op {
            None => Outcome::Refuse(Deny::options(cx.resource.allow.clone())),
            Some(_) => Outcome::Next,
        };
        std::future::ready(outcome).boxed()
    }
}
