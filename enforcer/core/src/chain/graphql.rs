//! GraphQL APIs: the request's query is parsed once, before the chain
//! ([`prepare`]): it must parse and validate against the schema (400
//! `900422` otherwise), and each root field it selects must be an operation
//! of the API (404 otherwise). The chain then authenticates for the
//! operations together (open only when every one is), checks each one's
//! scopes, and this filter applies the caller's subscription policy's
//! depth and complexity limits (400 `900820` / `900821`) before the
//! operations' rate limits are counted.

use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::Value;

use super::{Context, Filter, Outcome};
use crate::apis::{Api, Operation, Resource};
use crate::deny::Deny;
use crate::graphql::{Analysis, GraphqlError, GraphqlRequest, GraphqlSchema, analyse, check_limits};
use crate::request::{Input, query_param};
use crate::throttle::PolicyKind;

/// The operations a GraphQL request touches, and its analysis.
#[derive(Debug)]
pub struct GraphqlCall<'r> {
    /// Each root field's resource and operation, in the order of the query.
    pub ops: Vec<(&'r Resource, &'r Operation)>,
    /// Depth and complexity.
    pub analysis: Analysis,
}

impl<'r> GraphqlCall<'r> {
    /// The operation the authenticators use: the first one with security,
    /// else the first (all open).
    pub fn lead(&self) -> Option<(&'r Resource, &'r Operation)> {
        self.ops.iter().find(|(_, o)| !o.disable_security).or(self.ops.first()).map(|(r, o)| (*r, *o))
    }

    /// The resource for analytics and logs: the root fields, comma-separated.
    pub fn resource(&self) -> String {
        self.ops.iter().map(|(r, _)| r.path.as_str()).collect::<Vec<_>>().join(",")
    }
}

/// The query of a request: `GET ?query=&operationName=&variables=`, else
/// the body (JSON `{query, operationName, variables}` or
/// `application/graphql`).
fn request(input: &Input<'_>) -> Result<GraphqlRequest, GraphqlError> {
    let in_url = ["query", "operationName", "variables"].iter().any(|p| query_param(input.path, p).is_some());
    if input.method.eq_ignore_ascii_case("GET") {
        // The query is in the URL; a body some servers would also read is
        // refused, so the backend runs exactly what was checked.
        if !input.body.is_empty() {
            return Err(GraphqlError::Body(GET_WITH_BODY));
        }
        let query = query_param(input.path, "query").unwrap_or_default();
        if query.trim().is_empty() {
            return Err(GraphqlError::Body(crate::graphql::EMPTY_QUERY_DESCRIPTION));
        }
        let variables = match query_param(input.path, "variables") {
            Some(v) => {
                serde_json::from_str(&v).map_err(|_| GraphqlError::Body(crate::graphql::BAD_BODY_DESCRIPTION))?
            }
            None => Value::Null,
        };
        return Ok(GraphqlRequest {
            query,
            operation_name: query_param(input.path, "operationName").filter(|n| !n.is_empty()),
            variables,
        });
    }
    // Some servers prefer the URL's parameters to the body's: a POST with
    // both could run another query than the one checked here.
    if in_url {
        return Err(GraphqlError::Body(POST_WITH_URL_PARAMETERS));
    }
    let body = std::str::from_utf8(input.body).map_err(|_| GraphqlError::Body(crate::graphql::BAD_BODY_DESCRIPTION))?;
    GraphqlRequest::from_body(input.header("content-type"), body)
}

/// Why a GET with a body is refused.
pub const GET_WITH_BODY: &str = "A GET request carries the GraphQL query in its URL and no body";
/// Why a POST with GraphQL parameters in its URL is refused.
pub const POST_WITH_URL_PARAMETERS: &str =
    "A POST request carries the GraphQL query, operationName and variables in its body, not its URL";
/// Why a mutation or subscription sent with GET is refused.
pub const ONLY_QUERIES_WITH_GET: &str = "Only queries can be sent with GET; send mutations and subscriptions with POST";

/// Why a WebSocket upgrade to a GraphQL API is refused.
pub const NO_SUBSCRIPTIONS_OVER_WEBSOCKET: &str = "GraphQL over WebSocket (subscriptions) is not supported \
     by this gateway, as in Choreo Connect: send queries and mutations with POST or GET";

/// Parses and resolves a request to a GraphQL API (not OPTIONS).
pub fn prepare<'r>(api: &'r Api, schema: &GraphqlSchema, input: &Input<'_>) -> Result<GraphqlCall<'r>, Deny> {
    if input.header("upgrade").is_some_and(|u| u.eq_ignore_ascii_case("websocket")) {
        return Err(Deny::from(GraphqlError::Body(NO_SUBSCRIPTIONS_OVER_WEBSOCKET).denial()));
    }
    let req = request(input).map_err(|e| Deny::from(e.denial()))?;
    let analysis = analyse(schema, &req.query, req.operation_name.as_deref(), &req.variables)
        .map_err(|e| Deny::from(e.denial()))?;
    if input.method.eq_ignore_ascii_case("GET") && analysis.operation_type.as_str() != "QUERY" {
        return Err(Deny::from(GraphqlError::Body(ONLY_QUERIES_WITH_GET).denial()));
    }
    let verb = analysis.operation_type.as_str();
    let mut ops = Vec::with_capacity(analysis.root_fields.len());
    for f in &analysis.root_fields {
        let found = api.resources.get(f.as_str()).and_then(|r| r.operation(verb).map(|o| (r, o)));
        match found {
            Some(x) => ops.push(x),
            None => return Err(Deny::not_found()),
        }
    }
    // Only introspection: no operation of the API (Choreo Connect: 404).
    if ops.is_empty() {
        return Err(Deny::not_found());
    }
    Ok(GraphqlCall { ops, analysis })
}

/// The depth and complexity limits of the caller's subscription policy:
/// the token's `tierInfo` (API Manager's tokens carry them), else the
/// catalogue's policy of that name. 0: no limit.
fn limits(cx: &Context<'_>) -> (u32, u32) {
    let Some(a) = &cx.authed else { return (0, 0) };
    if a.tier.is_empty() {
        return (0, 0);
    }
    let info = a.token.as_ref().and_then(|t| t.tier_info(&a.tier));
    let policy = cx.throttle.policy(PolicyKind::Subscription, &a.tier);
    let depth = info.and_then(|i| i.graphql_max_depth).or_else(|| policy.map(|p| p.raw.graphql_max_depth)).unwrap_or(0);
    let complexity = info
        .and_then(|i| i.graphql_max_complexity)
        .or_else(|| policy.map(|p| p.raw.graphql_max_complexity))
        .unwrap_or(0);
    (depth, complexity)
}

/// The query analysis filter.
#[derive(Debug)]
pub struct QueryAnalysis;

impl Filter for QueryAnalysis {
    fn name(&self) -> &'static str {
        "graphql"
    }

    fn run<'a, 'r>(&'a self, cx: &'a mut Context<'r>) -> BoxFuture<'a, Outcome>
    where
        'r: 'a,
    {
        let outcome = match &cx.graphql {
            None => Outcome::Next,
            Some(g) => {
                let (depth, complexity) = limits(cx);
                match check_limits(&g.analysis, depth, complexity) {
                    Ok(()) => Outcome::Next,
                    Err(d) => Outcome::Refuse(d.into()),
                }
            }
        };
        std::future::ready(outcome).boxed()
    }
}
