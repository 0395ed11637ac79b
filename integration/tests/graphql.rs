//! GraphQL APIs through the real router, adapter and enforcer, with a real
//! GraphQL server (async-graphql, tools/protocols) as the backend (Choreo
//! Connect's `graphql/*` test cases, ported): operations allowed and refused
//! by security and scope, depth and complexity limits from the subscription
//! policy with exact bodies, invalid queries (900422), per-operation
//! throttling, and the schema checked at deploy.

use integration::tokens::{now, unique};
use integration::{Gateway, IDP_ISSUER, Resp, XdsMode};
use serde_json::{Value, json};
use test_protocols::GraphqlServer;
use test_protocols::graphql::SCHEMA_SDL;

const OPERATIONS: &str = r#"  operations:
    - {target: hero, verb: QUERY, authType: None}
    - {target: human, verb: QUERY}
    - {target: droid, verb: QUERY, scopes: [droids, admin]}
    - {target: allHumans, verb: QUERY}
    - {target: reviews, verb: QUERY, throttlingPolicy: 3PerDay}
    - {target: createReview, verb: MUTATION, scopes: [writer]}
"#;

const COMPLEXITY: &str = "type: graphql-complexity\nversion: v4.1.0\ndata:\n  list:\n    - {type: Human, field: starships, complexityValue: 10}\n";

fn api_yaml(backend: &str) -> String {
    format!(
        "type: api\nversion: v4.1.0\ndata:\n  name: StarWars\n  version: 1.0.0\n  context: /gql\n  type: GRAPHQL\n  securityScheme: [oauth2, api_key]\n{OPERATIONS}  endpointConfig:\n    endpoint_type: http\n    production_endpoints:\n      url: {backend}/graphql\n"
    )
}

/// Gold limits depth to 4 and complexity to 12 in this catalogue.
const GOLD_GRAPHQL: &str = "type: throttling policy
subtype: subscription policy
version: v4.1.0
data:
  policyName: GoldGraphQL
  type: SubscriptionThrottlePolicy
  graphQLMaxComplexity: 12
  graphQLMaxDepth: 4
  defaultLimit:
    type: REQUESTCOUNTLIMIT
    requestCount: {timeUnit: min, unitTime: 1, requestCount: 1000}
  stopOnQuotaReach: true
";

async fn gateway(backend: &GraphqlServer) -> Gateway {
    Gateway::builder(XdsMode::Delta)
        .with_enforcer()
        .policy_file("gold-graphql.yaml", GOLD_GRAPHQL)
        .project(
            "starwars",
            &[
                ("api.yaml", &api_yaml(&backend.url())),
                ("Definitions/schema.graphql", SCHEMA_SDL),
                ("Definitions/graphql-complexity.yaml", COMPLEXITY),
            ],
        )
        .start()
        .await
}

fn token(gw: &Gateway, scope: &str, tier: &str) -> String {
    let claims = json!({
        "iss": IDP_ISSUER, "sub": "alice", "azp": "c1", "exp": now() + 600, "iat": now(),
        "jti": format!("gql-{}", unique()), "scope": scope,
        "application": {"id": 1, "uuid": "app-1", "name": "Rebels", "owner": "alice"},
        "subscribedAPIs": [{"name": "StarWars", "version": "1.0.0", "context": "/gql/1.0.0", "subscriptionTier": tier}],
    });
    format!("Bearer {}", gw.idp().idp.sign(&claims))
}

async fn post(gw: &Gateway, query: &str, auth: Option<&str>) -> Resp {
    let mut headers = vec![("content-type", "application/json")];
    if let Some(a) = auth {
        headers.push(("authorization", a));
    }
    let body = json!({"query": query, "variables": null}).to_string();
    gw.request_with_body("POST", "localhost", "/gql/1.0.0", &headers, &body).await.expect("request")
}

#[track_caller]
fn assert_error(r: &Resp, status: u16, code: &str, message: &str, description: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(
        r.json(),
        json!({"code": code, "error_message": message, "error_description": description}),
        "{}",
        r.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_are_allowed_and_refused_by_their_security_and_scopes() {
    let backend = GraphqlServer::start().await.expect("GraphQL server");
    let gw = gateway(&backend).await;

    // Open operation: no credentials; the backend's answer comes back.
    let r = post(&gw, "{ hero { name } }", None).await;
    assert_eq!(r.status, 200, "{}\n{}", r.body, gw.enforcer_log());
    assert_eq!(r.json(), json!({"data": {"hero": {"name": "R2-D2"}}}));
    let seen = backend.requests();
    assert_eq!(seen.last().map(|q| q.path.as_str()), Some("/graphql"), "the endpoint's path");

    // Secured operation: refused without, let in with a token.
    let r = post(&gw, "{ human(id: \"1000\") { name } }", None).await;
    assert_error(
        &r,
        401,
        "900901",
        "Invalid Credentials",
        "Make sure you have provided the correct security credentials",
    );
    let plain = token(&gw, "", "Unlimited");
    let r = post(&gw, "{ human(id: \"1000\") { name } }", Some(&plain)).await;
    assert_eq!((r.status, r.json()["data"]["human"]["name"].clone()), (200, json!("Luke Skywalker")), "{}", r.body);

    // Mixed open and secured: the secured one decides.
    let r = post(&gw, "{ hero { name } human(id: \"1000\") { name } }", None).await;
    assert_eq!(r.status, 401, "{}", r.body);

    // Scopes per operation: any one of droid's scopes; each operation checked.
    let r = post(&gw, "{ droid(id: \"2001\") { name } }", Some(&plain)).await;
    assert_error(
        &r,
        403,
        "900910",
        "The access token does not allow you to access the requested resource",
        "User is NOT authorized to access the Resource: droid. Scope validation failed.",
    );
    let admin = token(&gw, "admin", "Unlimited");
    let r = post(&gw, "{ droid(id: \"2001\") { name } human(id: \"1003\") { name } }", Some(&admin)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["data"], json!({"droid": {"name": "R2-D2"}, "human": {"name": "Leia Organa"}}));
    let mutation = "mutation { createReview(episode: JEDI, review: {stars: 5, commentary: \"Great\"}) { stars } }";
    let r = post(&gw, mutation, Some(&admin)).await;
    assert_eq!((r.status, r.json()["code"].clone()), (403, json!("900910")), "{}", r.body);
    let writer = token(&gw, "writer", "Unlimited");
    let r = post(&gw, mutation, Some(&writer)).await;
    assert_eq!(r.json(), json!({"data": {"createReview": {"stars": 5}}}), "{}", r.body);

    // API key (securityScheme api_key), and GET ?query=.
    let key = gw.idp().apim.sign_without_kid(&json!({
        "iss": "https://localhost:9443/apikey", "sub": "carol", "jti": format!("ak-{}", unique()), "iat": now(), "exp": now() + 600,
        "keytype": "PRODUCTION", "application": {"id": 3, "uuid": "app-3", "name": "KeyApp", "owner": "carol"},
        "subscribedAPIs": [{"name": "StarWars", "version": "1.0.0", "context": "/gql/1.0.0", "subscriptionTier": "Unlimited"}],
    }));
    let r = gw
        .request("GET", "localhost", "/gql/1.0.0?query=%7Bhuman(id%3A%221000%22)%7Bname%7D%7D", &[("apikey", &key)])
        .await
        .expect("request");
    assert_eq!((r.status, r.json()["data"]["human"]["name"].clone()), (200, json!("Luke Skywalker")), "{}", r.body);
    let last = backend.requests().pop().expect("seen");
    assert!(last.headers.iter().all(|(k, _)| k != "apikey" && k != "authorization"), "{:?}", last.headers);

    // CORS-less OPTIONS: the enforcer answers with Allow.
    let r = gw.request("OPTIONS", "localhost", "/gql/1.0.0", &[]).await.expect("request");
    assert_eq!((r.status, r.header("allow")), (204, Some("OPTIONS, POST, GET")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_queries_are_refused_with_900422_before_authentication() {
    let backend = GraphqlServer::start().await.expect("GraphQL server");
    let gw = gateway(&backend).await;
    let before = backend.requests().len();
    let r = post(&gw, "{ human(id: \"1000\") { name }", None).await;
    assert_error(&r, 400, "900422", "INVALID QUERY", "Invalid syntax");
    let r = post(&gw, "{ human(id: \"1000\") { age } }", None).await;
    assert_error(&r, 400, "900422", "INVALID QUERY", "Payload is invalid");
    let r = gw
        .request_with_body("POST", "localhost", "/gql/1.0.0", &[("content-type", "application/json")], "{\"q\": 1}")
        .await
        .expect("request");
    assert_error(&r, 400, "900422", "INVALID QUERY", "Invalid GraphQL query body structure");
    let r = post(&gw, "   ", None).await;
    assert_error(&r, 400, "900422", "INVALID QUERY", "Query cannot be empty");
    let r = gw
        .request_with_body("POST", "localhost", "/gql/1.0.0", &[("content-type", "text/plain")], "{ hero { name } }")
        .await
        .expect("request");
    assert_error(
        &r,
        400,
        "900422",
        "INVALID QUERY",
        "Invalid content type. Make sure the content type is application/json or application/graphql",
    );
    // GraphQL over WebSocket (subscriptions): refused, saying why.
    let r = gw
        .request(
            "GET",
            "localhost",
            "/gql/1.0.0",
            &[
                ("connection", "Upgrade"),
                ("upgrade", "websocket"),
                ("sec-websocket-version", "13"),
                ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
                ("sec-websocket-protocol", "graphql-transport-ws"),
            ],
        )
        .await
        .expect("request");
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["code"], "900422");
    assert!(r.json()["error_description"].as_str().is_some_and(|d| d.contains("not supported")), "{}", r.body);
    // A root field api.yaml does not list: 404.
    let r = post(&gw, "{ character(id: \"1000\") { name } }", None).await;
    assert_error(&r, 404, "404", "Not Found", "The requested resource is not available.");
    assert_eq!(backend.requests().len(), before, "no refused query reached the backend");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn depth_and_complexity_limits_come_from_the_subscription_policy() {
    let backend = GraphqlServer::start().await.expect("GraphQL server");
    let gw = gateway(&backend).await;
    let gold = token(&gw, "", "GoldGraphQL");
    // Depth 5 > 4.
    let deep = "{ human(id: \"1000\") { friends { friends { friends { name } } } } }";
    let r = post(&gw, deep, Some(&gold)).await;
    assert_error(&r, 400, "900820", "QUERY TOO DEEP", "[maximum query depth exceeded 5 > 4]");
    // Depth 4 goes through.
    let r = post(&gw, "{ human(id: \"1000\") { friends { friends { name } } } }", Some(&gold)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Complexity: starships costs 10 (graphql-complexity.yaml), + human + name... > 12.
    let r = post(&gw, "{ human(id: \"1000\") { name starships { name length } } }", Some(&gold)).await;
    assert_error(&r, 400, "900821", "QUERY TOO COMPLEX", "[maximum query complexity exceeded]");
    // Slicing arguments multiply: allHumans(first: 20) is far over 12.
    let r = post(&gw, "{ allHumans(first: 20) { name } }", Some(&gold)).await;
    assert_eq!((r.status, r.json()["code"].clone()), (400, json!("900821")), "{}", r.body);
    let r = post(&gw, "{ allHumans(first: 2) { name } }", Some(&gold)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Without limits (Unlimited), the same deep query passes.
    let r = post(&gw, deep, Some(&token(&gw, "", "Unlimited"))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // The enforcer's admin API shows the policy's limits.
    let admin = gw
        .enforcer_https(
            "GET",
            "/throttling_policies/subscription?name=GoldGraphQL",
            &[("authorization", "Basic YWRtaW46YWRtaW4=")],
            "",
        )
        .await;
    let v: Value = serde_json::from_str(&admin.body).unwrap_or(Value::Null);
    assert!(admin.body.contains("\"graphQLMaxDepth\":4"), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_operation_is_counted_against_its_own_tier() {
    let backend = GraphqlServer::start().await.expect("GraphQL server");
    let gw = gateway(&backend).await;
    let t = token(&gw, "", "Unlimited");
    let q = "{ reviews(episode: JEDI) { stars } }";
    for i in 0..3 {
        let r = post(&gw, q, Some(&t)).await;
        assert_eq!(r.status, 200, "request {i}: {}", r.body);
    }
    let r = post(&gw, q, Some(&t)).await;
    assert_eq!((r.status, r.json()["code"].clone()), (429, json!("900802")), "{}", r.body);
    // Another operation is not limited by reviews' tier.
    let r = post(&gw, "{ human(id: \"1000\") { name } }", Some(&t)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // A query touching reviews is refused as a whole.
    let r = post(&gw, "{ human(id: \"1000\") { name } reviews(episode: JEDI) { stars } }", Some(&t)).await;
    assert_eq!(r.status, 429, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_that_does_not_parse_is_refused_and_the_deployed_api_keeps_serving() {
    let backend = GraphqlServer::start().await.expect("GraphQL server");
    let gw = gateway(&backend).await;
    let zip = integration::zip_project(
        "starwars",
        &[("api.yaml", &api_yaml(&backend.url())), ("Definitions/schema.graphql", "type Query { hero: ")],
    );
    let r = gw.deploy_zip(zip, true, &format!("Bearer {}", gw.mgmt_token().await)).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body.contains("Definitions/schema.graphql") && r.body.contains("the schema does not parse"),
        "{}",
        r.body
    );
    let r = post(&gw, "{ hero { name } }", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
}
