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
