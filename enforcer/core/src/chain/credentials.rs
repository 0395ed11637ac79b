//! Credentials stop at the gateway: the API's API-key headers and query
//! parameters, the internal key, the authorization header (unless
//! `enableOutboundAuthHeader`) and the client-certificate header (unless
//! `enableOutboundCertificateHeader`) are removed before upstream. Resources
//! with security disabled pass everything on, as in Choreo Connect.

use std::borrow::Cow;

use futures::FutureExt;
use futures::future::BoxFuture;

use super::{Context, Filter, Outcome};
use crate::decision::AuthType;
use crate::request::without_query_params;

/// The credentials filter.
#[derive(Debug)]
pub struct Credentials;

fn strip(cx: &mut Context<'_>) {
    let Some(a) = &cx.authed else { return };
    if a.auth_type == AuthType::Unsecured {
        return;
    }
    let (api, s) = (cx.api, cx.settings);
    cx.remove.extend(api.api_key_headers.iter().cloned());
    cx.remove.push(s.internal_key_header.clone());
    if !s.outbound_auth_header {
        cx.remove.push(api.auth_header.clone().unwrap_or_else(|| s.auth_header.clone()));
    }
    if !s.outbound_cert_header {
        cx.remove.push(s.cert_header.clone());
    }
    let path = match &a.api_key_query {
        Some(q) => Some(q.clone()),
        None if !api.api_key_queries.is_empty() && cx.input.path.contains('?') => {
            Some(without_query_params(cx.input.path, &api.api_key_queries)).filter(|p| p != cx.input.path)
        }
        None => None,
    };
    if let Some(p) = path {
        cx.set.push((Cow::Borrowed(":path"), p));
    }
}

impl Filter for Credentials {
    fn name(&self) -> &'static str {
        "credentials"
    }

    fn run<'a, 'r>(&'a self, cx: &'a mut Context<'r>) -> BoxFuture<'a, Outcome>
    where
        'r: 'a,
    {
        strip(cx);
        std::future::ready(Outcome::Next).boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::test_support::{Fx, assert_next, caller};
    use crate::testkit::{BASE, REMOVED_BY_DEFAULT, Req, auth_header, mutual_ssl, pets_with};

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// Runs the filter on `r` with the caller `a`: (set, removed).
    async fn run(fx: &Fx, r: &Req, a: Option<crate::chain::Authed>) -> (crate::decision::SetHeaders, Vec<String>) {
        let mut cx = fx.cx(r);
        cx.authed = a;
        assert_next(Credentials.run(&mut cx).await);
        assert!(cx.key_type.is_none(), "the credentials filter does not route");
        (cx.set, cx.remove)
    }

    #[tokio::test]
    async fn credentials_are_removed_for_every_authenticated_caller() {
        let fx = Fx::new();
        let r = Req::get("/pets");
        for auth_type in [AuthType::Jwt, AuthType::ApiKey, AuthType::InternalKey, AuthType::Mtls] {
            let (set, remove) = run(&fx, &r, Some(caller(auth_type, "PRODUCTION"))).await;
            assert_eq!(remove, strings(&REMOVED_BY_DEFAULT), "{auth_type:?}");
            assert!(set.is_empty(), "{auth_type:?}: {set:?}");
        }
    }

    #[tokio::test]
    async fn every_api_key_header_of_the_api_and_the_configured_names_are_removed() {
        let api = pets_with(|a| {
            a.security_scheme.push(gateway_proto::api::SecurityScheme {
                definition_name: "other_key".into(),
                r#type: "APIKEY".into(),
                name: "X-Other-Key".into(),
                r#in: "header".into(),
            });
            a.authorization_header = "X-Token".into();
        });
        let fx = Fx::build(
            |c, _| {
                auth_header(c).test_console_header_name = "X-Test-Key".into();
                mutual_ssl(c).certificate_header = "X-Client-Cert".into();
            },
            api,
        );
        let (_, remove) = run(&fx, &Req::get("/pets"), Some(caller(AuthType::Jwt, "PRODUCTION"))).await;
        assert_eq!(remove, strings(&["apikey", "x-other-key", "x-test-key", "x-token", "x-client-cert"]));
    }

    #[tokio::test]
    async fn outbound_headers_are_kept_when_enabled() {
        let r = Req::get("/pets");
        let fx = Fx::config(|c, _| auth_header(c).enable_outbound_auth_header = true);
        let (_, remove) = run(&fx, &r, Some(caller(AuthType::Jwt, "PRODUCTION"))).await;
        assert_eq!(remove, strings(&["apikey", "internal-key", "x-wso2-client-certificate"]));

        let fx = Fx::config(|c, _| mutual_ssl(c).enable_outbound_certificate_header = true);
        let (_, remove) = run(&fx, &r, Some(caller(AuthType::Mtls, "PRODUCTION"))).await;
        assert_eq!(remove, strings(&["apikey", "internal-key", "authorization"]));

        let fx = Fx::config(|c, _| {
            auth_header(c).enable_outbound_auth_header = true;
            mutual_ssl(c).enable_outbound_certificate_header = true;
        });
        let (_, remove) = run(&fx, &r, Some(caller(AuthType::ApiKey, "PRODUCTION"))).await;
        assert_eq!(remove, strings(&["apikey", "internal-key"]));
    }

    #[tokio::test]
    async fn the_api_key_query_is_taken_off_the_path() {
        let fx = Fx::new();
        // What the API-key authenticator found.
        let r = Req::get("/pets").path(&format!("{BASE}/pets?x=1&apikey=a.b.c"));
        let mut a = caller(AuthType::ApiKey, "PRODUCTION");
        a.api_key_query = Some(format!("{BASE}/pets?x=1"));
        let (set, remove) = run(&fx, &r, Some(a)).await;
        assert_eq!(set, vec![(Cow::Borrowed(":path"), format!("{BASE}/pets?x=1"))]);
        assert_eq!(remove, strings(&REMOVED_BY_DEFAULT));

        // Another authenticator let the caller in: the API's key parameters go all the same.
        for (path, stripped) in [
            (format!("{BASE}/pets?apikey=k&y=2"), format!("{BASE}/pets?y=2")),
            (format!("{BASE}/pets?apikey=k"), format!("{BASE}/pets")),
            (format!("{BASE}/pets?x=1&apikey=k&apikey=j&y=2"), format!("{BASE}/pets?x=1&y=2")),
        ] {
            let r = Req::get("/pets").path(&path);
            let (set, _) = run(&fx, &r, Some(caller(AuthType::Jwt, "PRODUCTION"))).await;
            assert_eq!(set, vec![(Cow::Borrowed(":path"), stripped)], "{path}");
        }

        // Nothing to take off: the path stays.
        for path in [format!("{BASE}/pets"), format!("{BASE}/pets?x=1&key=apikey")] {
            let r = Req::get("/pets").path(&path);
            let (set, _) = run(&fx, &r, Some(caller(AuthType::Jwt, "PRODUCTION"))).await;
            assert!(set.is_empty(), "{path}: {set:?}");
        }

        // An API without query keys leaves the query alone.
        let fx = Fx::api(pets_with(|a| a.security_scheme.retain(|s| s.r#in != "query")));
        let r = Req::get("/pets").path(&format!("{BASE}/pets?apikey=k"));
        let (set, remove) = run(&fx, &r, Some(caller(AuthType::Jwt, "PRODUCTION"))).await;
        assert!(set.is_empty(), "{set:?}");
        assert_eq!(remove, strings(&REMOVED_BY_DEFAULT));
    }

    #[tokio::test]
    async fn unsecured_callers_and_no_caller_keep_everything() {
        let fx = Fx::new();
        let r = Req::get("/open").path(&format!("{BASE}/open?apikey=k")).header("authorization", "Bearer a.b.c");
        let (set, remove) = run(&fx, &r, Some(caller(AuthType::Unsecured, "PRODUCTION"))).await;
        assert!(set.is_empty() && remove.is_empty(), "{set:?} {remove:?}");
        let mut a = caller(AuthType::Unsecured, "PRODUCTION");
        a.api_key_query = Some(format!("{BASE}/open"));
        let (set, remove) = run(&fx, &r, Some(a)).await;
        assert!(set.is_empty() && remove.is_empty(), "{set:?} {remove:?}");
        let (set, remove) = run(&fx, &r, None).await;
        assert!(set.is_empty() && remove.is_empty(), "{set:?} {remove:?}");
    }
}
