//! Operation policies the enforcer carries out, after everything else
//! passed (Choreo Connect's MediationPolicyFilter is last): ADD_QUERY and
//! the query handling of REWRITE_RESOURCE_PATH rewrite `:path`; OPA asks a
//! server or evaluates embedded Rego; a mocked API answers from its examples.

use std::borrow::Cow;

use futures::FutureExt;
use futures::future::BoxFuture;

use super::{Context, Filter, Outcome};
use crate::deny::Deny;
use crate::mediation::{
    InputFacts, MockAnswer, OpaOutcome, RequestPolicy, evaluate, input_document, mock_answer, rewrite_query,
    transport_headers,
};

/// The mediation filter.
#[derive(Debug)]
pub struct Mediation;

async fn mediate(cx: &mut Context<'_>) -> Outcome {
    let Some(op) = cx.op else { return Outcome::Next };
    if op.policies.is_empty() && op.mock.is_none() {
        return Outcome::Next;
    }
    let current = cx.set.iter().rev().find(|(k, _)| k == ":path").map(|(_, v)| v.clone());
    let current = current.unwrap_or_else(|| cx.input.path.to_string());
    if let Some(p) = rewrite_query(&current, &op.policies) {
        cx.set.retain(|(k, _)| k != ":path");
        cx.set.push((Cow::Borrowed(":path"), p));
    }
    for p in &op.policies {
        let RequestPolicy::Opa(opa) = p else { continue };
        let hidden: Vec<&str> = cx.remove.iter().map(String::as_str).collect();
        let auth = match (&cx.authed, opa.send_access_token) {
            (Some(a), true) => {
                Some((a.raw.as_str(), a.auth_type.as_str(), cx.key_type.map(|k| k.as_str()).unwrap_or("")))
            }
            _ => None,
        };
        let facts = InputFacts {
            headers: transport_headers(cx.input.headers, &hidden),
            origin: cx.input.client_ip(),
            method: cx.input.method,
            path: cx.input.path,
            api_context: [
                ("apiName", cx.api.raw.title.as_str()),
                ("apiVersion", cx.api.raw.version.as_str()),
                ("orgId", cx.api.raw.organization_id.as_str()),
                ("vhost", cx.api.raw.vhost.as_str()),
                ("pathTemplate", cx.resource.path.as_str()),
                ("prodClusterName", cx.input.ext("prodClusterName")),
                ("sandClusterName", cx.input.ext("sandClusterName")),
            ],
            auth,
        };
        let doc = input_document(&facts);
        match evaluate(opa, doc).await {
            OpaOutcome::Allow => {}
            OpaOutcome::Deny => return Outcome::Refuse(Deny::opa_denied()),
            OpaOutcome::RequestFailed(why) => {
                tracing::warn!(api = %cx.api.raw.title, resource = %cx.resource.path, %why, "OPA policy could not be evaluated");
                return Outcome::Refuse(Deny::opa_request_failed());
            }
            OpaOutcome::BadResponse(why) => {
                tracing::warn!(api = %cx.api.raw.title, resource = %cx.resource.path, %why, "OPA policy gave no decision");
                return Outcome::Refuse(Deny::opa_bad_response());
            }
        }
    }
    if let Some(cfg) = &op.mock {
        return Outcome::Refuse(match mock_answer(cfg, cx.input.header("prefer"), cx.input.header("accept")) {
            MockAnswer::Example(status, headers, body) => {
                let mut headers = headers;
                headers.extend(cx.respond.drain(..).map(|(k, v)| (k.to_string(), v)));
                Deny::mock(status, headers, body)
            }
            MockAnswer::BadRequest(d) => Deny::mock_bad_request(d),
            MockAnswer::NotImplemented(d) => Deny::mock_not_implemented(d),
        });
    }
    Outcome::Next
}

impl Filter for Mediation {
    fn name(&self) -> &'static str {
        "mediation"
    }

    fn run<'a, 'r>(&'a self, cx: &'a mut Context<'r>) -> BoxFuture<'a, Outcome>
    where
        'r: 'a,
    {
        mediate(cx).boxed()
    }
}
