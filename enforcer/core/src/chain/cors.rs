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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::test_support::{Fx, assert_next, refused};
    use crate::testkit::{Req, jwt, pets_with};

    #[tokio::test]
    async fn options_without_an_operation_is_answered_204_with_allow() {
        let fx = Fx::new();
        for method in ["OPTIONS", "options"] {
            let r = Req::new(method, "/pets");
            let mut cx = fx.cx(&r);
            assert!(cx.op.is_none(), "/pets declares no OPTIONS");
            let d = refused(Cors.run(&mut cx).await);
            assert_eq!((d.status, d.code, d.message, d.description.as_ref()), (204, "", "", ""));
            assert_eq!(d.headers, vec![("allow", "OPTIONS, GET, POST".to_string())]);
            assert!(d.empty_body);
            assert_eq!(d.body(), "");
            assert_eq!(d.challenge, crate::deny::Challenge::None);
            assert!(cx.set.is_empty() && cx.remove.is_empty() && cx.authed.is_none() && cx.key_type.is_none());
        }
        // The methods of the resource in definition order, OPTIONS first.
        let fx = Fx::api(pets_with(|a| {
            a.resources[0]
                .methods
                .insert(0, gateway_proto::api::Operation { method: "delete".into(), ..Default::default() });
        }));
        let r = Req::new("OPTIONS", "/pets");
        let d = refused(Cors.run(&mut fx.cx(&r)).await);
        assert_eq!(d.headers, vec![("allow", "OPTIONS, DELETE, GET, POST".to_string())]);
    }

    #[tokio::test]
    async fn a_declared_method_goes_on_untouched() {
        let fx = Fx::new();
        let token = jwt(serde_json::json!({}));
        for r in [
            Req::get("/pets"),
            Req::new("POST", "/pets").bearer(&token),
            Req::get("/open"),
            // A declared OPTIONS is a method like any other.
            Req::new("OPTIONS", "/cors"),
        ] {
            let mut cx = fx.cx(&r);
            assert_next(Cors.run(&mut cx).await);
            assert!(cx.set.is_empty() && cx.remove.is_empty(), "{} {}", r.method, r.template);
            assert!(cx.authed.is_none() && cx.key_type.is_none());
        }
    }

    #[test]
    fn its_refusals_carry_no_challenge() {
        assert_eq!(Cors.name(), "cors");
        assert!(!Cors.challenges());
    }
}
