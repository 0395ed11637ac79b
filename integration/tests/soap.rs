//! SOAP APIs through the real router, adapter and enforcer (Choreo Connect's
//! `soap/SOAPApisTestCase`, ported): pass-through `POST /*` with
//! `SOAPAction` kept, and with `[adapter] soapErrorInXMLEnabled` every
//! gateway error of a SOAP request as a SOAP 1.1 or 1.2 fault (router local
//! replies and enforcer denials), the others JSON as before.

use integration::{Gateway, IDP_ISSUER, XdsMode, api_yaml, free_port, tokens::now};
use serde_json::json;
use test_protocols::SoapServer;

const SOAP11: &str = "http://schemas.xmlsoap.org/soap/envelope/";
const SOAP12: &str = "http://www.w3.org/2003/05/soap-envelope";
const ENVELOPE11: &str = "<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\"><soapenv:Body><m:CheckPhoneNumber xmlns:m=\"urn:phone\"><m:PhoneNumber>18006785432</m:PhoneNumber></m:CheckPhoneNumber></soapenv:Body></soapenv:Envelope>";

fn definition(endpoint: &str, timeout_ms: Option<u32>) -> String {
    let timeout =
        timeout_ms.map(|t| format!("\n  advanceEndpointConfig:\n    timeoutInMillis: {t}")).unwrap_or_default();
    format!(
        "openapi: 3.0.1\ninfo: {{title: PhoneVerify, version: 1.0.0}}\nx-wso2-basePath: /soap/1.0.0\n\
         x-wso2-production-endpoints:\n  urls: [{endpoint}]{timeout}\npaths:\n  /*:\n    post: {{}}\n"
    )
}

fn project(endpoint: &str, timeout_ms: Option<u32>) -> Vec<(String, String)> {
    vec![
        (
            "api.yaml".to_string(),
            api_yaml("PhoneVerify", "1.0.0", "/soap", endpoint).replace("type: HTTP", "type: SOAP"),
        ),
        ("Definitions/swagger.yaml".to_string(), definition(endpoint, timeout_ms)),
    ]
}

async fn gateway(soap_faults: bool, projects: &[(&str, Vec<(String, String)>)]) -> Gateway {
    // `[adapter] soapErrorInXMLEnabled`, through its environment override
    // (the test configuration has its own [adapter] table).
    let mut b = Gateway::builder(XdsMode::Delta)
        .with_enforcer()
        .adapter_env("CC_ADAPTER_SOAPERRORINXMLENABLED", &soap_faults.to_string());
    for (name, files) in projects {
        let files: Vec<(&str, &str)> = files.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        b = b.project(name, &files);
    }
    b.start().await
}

fn token(gw: &Gateway) -> String {
    let claims = json!({
        "iss": IDP_ISSUER, "sub": "alice", "azp": "c1", "exp": now() + 600, "iat": now(), "jti": "soap-1",
        "application": {"id": 1, "uuid": "app-1", "name": "PhoneApp", "owner": "alice"},
        "subscribedAPIs": [{"name": "PhoneVerify", "version": "1.0.0", "context": "/soap/1.0.0", "subscriptionTier": "Gold"}],
    });
    format!("Bearer {}", gw.idp().idp.sign(&claims))
}

const V11: &[(&str, &str)] = &[("content-type", "text/xml"), ("soapaction", "urn:phone#CheckPhoneNumber")];
const V12: &[(&str, &str)] = &[("content-type", "application/soap+xml")];

fn with<'a>(base: &[(&'a str, &'a str)], more: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    base.iter().chain(more).copied().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soap_requests_pass_through_with_their_soap_action_in_both_versions() {
    let soap = SoapServer::start().await.expect("SOAP responder");
    let gw = gateway(true, &[("phone", project(&soap.url(), None))]).await;
    let auth = token(&gw);

    let r = gw
        .request_with_body(
            "POST",
            "localhost",
            "/soap/1.0.0/phoneverify11",
            &with(V11, &[("authorization", &auth)]),
            ENVELOPE11,
        )
        .await
        .expect("request");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("text/xml; charset=utf-8"));
    assert!(r.body.contains(SOAP11), "{}", r.body);
    assert!(r.body.contains("<action>urn:phone#CheckPhoneNumber</action>"), "{}", r.body);
    let seen = soap.requests();
    let last = seen.last().expect("the backend was called");
    assert_eq!(last.path, "/phoneverify11");
    assert_eq!(last.soap_action.as_deref(), Some("urn:phone#CheckPhoneNumber"));
    assert_eq!(last.body, ENVELOPE11, "the envelope reaches the backend unchanged");
    assert!(last.headers.iter().all(|(k, _)| !k.eq_ignore_ascii_case("authorization")), "{:?}", last.headers);

    let v12 = "application/soap+xml; charset=utf-8; action=\"urn:phone#Check12\"";
    let r = gw
        .request_with_body(
            "POST",
            "localhost",
            "/soap/1.0.0/phoneverify12",
            &[("content-type", v12), ("authorization", &auth)],
            &ENVELOPE11.replace(SOAP11, SOAP12),
        )
        .await
        .expect("request");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.header("content-type").is_some_and(|c| c.starts_with("application/soap+xml")), "{:?}", r.headers);
    assert!(r.body.contains("<action>urn:phone#Check12</action>"), "{}", r.body);
    assert_eq!(soap.requests().last().map(|q| q.content_type.clone()), Some(Some(v12.to_string())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforcer_denials_are_soap_faults_of_the_request_s_version() {
    let soap = SoapServer::start().await.expect("SOAP responder");
    let gw = gateway(true, &[("phone", project(&soap.url(), None))]).await;

    // 401: no credentials.
    let r =
        gw.request_with_body("POST", "localhost", "/soap/1.0.0/phoneverify11", V11, ENVELOPE11).await.expect("request");
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("text/xml"));
    assert_eq!(
        r.body,
        "<SOAP-ENV:Envelope xmlns:SOAP-ENV=\"http://schemas.xmlsoap.org/soap/envelope/\"><SOAP-ENV:Header/>\
         <SOAP-ENV:Body><SOAP-ENV:Fault><faultcode>Server</faultcode><faultstring>Invalid Credentials</faultstring>\
         <detail>900901:Make sure you have provided the correct security credentials</detail></SOAP-ENV:Fault></SOAP-ENV:Body>\
         </SOAP-ENV:Envelope>"
    );
    assert!(r.header("www-authenticate").is_some(), "the challenge stays: {:?}", r.headers);

    // 401: a bad token, SOAP 1.2 (Choreo Connect's asserted fault).
    let r = gw
        .request_with_body(
            "POST",
            "localhost",
            "/soap/1.0.0/phoneverify12",
            &with(V12, &[("authorization", "Bearer aaa.bbb.ccc")]),
            ENVELOPE11,
        )
        .await
        .expect("request");
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("application/soap+xml"));
    assert!(r.body.starts_with("<env:Envelope xmlns:env=\"http://www.w3.org/2003/05/soap-envelope\">"), "{}", r.body);
    assert!(
        r.body.contains(
            "<env:Fault><env:Code><env:Value>env:Receiver</env:Value></env:Code><env:Reason>\
             <env:Text xml:lang=\"en-US\">Invalid Credentials</env:Text></env:Reason><env:Detail>900901:"
        ),
        "{}",
        r.body
    );
    assert_eq!(soap.requests().len(), 0, "no denied request reached the backend");

    // Not SOAP (JSON, or a content type with parameters where SOAP 1.1 needs
    // exactly text/xml): Choreo Connect's JSON body.
    for headers in [
        &[("content-type", "application/json")][..],
        &[("content-type", "text/xml; charset=utf-8"), ("soapaction", "x")],
    ] {
        let r = gw.request_with_body("POST", "localhost", "/soap/1.0.0/x", headers, "{}").await.expect("request");
        assert_eq!(r.status, 401, "{}", r.body);
        assert_eq!(r.header("content-type"), Some("application/json"), "{headers:?}");
        assert_eq!(r.json()["code"], "900901", "{}", r.body);
    }
    // text/xml without SOAPAction is not SOAP 1.1 either.
    let r = gw
        .request_with_body("POST", "localhost", "/soap/1.0.0/x", &[("content-type", "text/xml")], ENVELOPE11)
        .await
        .expect("request");
    assert_eq!(r.header("content-type"), Some("application/json"), "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_errors_are_soap_faults_404_503_504_and_500_when_the_enforcer_is_gone() {
    let soap = SoapServer::start().await.expect("SOAP responder");
    let slow = test_backend::Backend::start("slow").await.expect("backend");
    let dead = format!("http://127.0.0.1:{}", free_port());
    let mut slow_project = project(&slow.url(), Some(300));
    for (_, text) in &mut slow_project {
        *text = text.replace("PhoneVerify", "SlowPhone").replace("/soap", "/slowsoap");
    }
    let mut dead_project = project(&dead, None);
    for (_, text) in &mut dead_project {
        *text = text.replace("PhoneVerify", "DeadPhone").replace("/soap", "/deadsoap");
    }
    let mut gw =
        gateway(true, &[("phone", project(&soap.url(), None)), ("slow", slow_project), ("dead", dead_project)]).await;
    let claims = |name: &str, context: &str| {
        json!({
            "iss": IDP_ISSUER, "sub": "alice", "azp": "c1", "exp": now() + 600, "iat": now(), "jti": format!("soap-{name}"),
            "application": {"id": 1, "uuid": "app-1", "name": "PhoneApp", "owner": "alice"},
            "subscribedAPIs": [{"name": name, "version": "1.0.0", "context": context, "subscriptionTier": "Unlimited"}],
        })
    };

    // 404: no route (router), both versions, Choreo Connect's exact faults.
    let r = gw.request_with_body("POST", "localhost", "/soap11ex404", V11, ENVELOPE11).await.expect("request");
    assert_eq!(r.status, 404);
    assert_eq!(r.header("content-type"), Some("text/xml"));
    assert_eq!(
        r.body,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\">\
         <soapenv:Body><soapenv:Fault><faultcode>soapenv:Server</faultcode><faultstring>Not Found</faultstring>\
         <detail>404:The requested resource is not available.</detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>"
    );
    let r = gw.request_with_body("POST", "localhost", "/soap12ex404", V12, ENVELOPE11).await.expect("request");
    assert_eq!(r.status, 404);
    assert_eq!(r.header("content-type"), Some("application/soap+xml"));
    assert_eq!(
        r.body,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><soapenv:Envelope xmlns:soapenv=\"http://www.w3.org/2003/05/soap-envelope/\">\
         <soapenv:Body><soapenv:Fault><faultcode>soapenv:Receiver</faultcode><faultstring>Not Found</faultstring>\
         <detail>404:The requested resource is not available.</detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>"
    );
    // A JSON request to the same place keeps the JSON error.
    let r = gw
        .request_with_body("POST", "localhost", "/soap11ex404", &[("content-type", "application/json")], "{}")
        .await
        .expect("request");
    assert_eq!((r.status, r.json()["code"].as_str()), (404, Some("404")), "{}", r.body);

    // 503: the backend is down (UF).
    let auth = format!("Bearer {}", gw.idp().idp.sign(&claims("DeadPhone", "/deadsoap/1.0.0")));
    let r = gw
        .request_with_body(
            "POST",
            "localhost",
            "/deadsoap/1.0.0/x",
            &with(V11, &[("authorization", &auth)]),
            ENVELOPE11,
        )
        .await
        .expect("request");
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("text/xml"));
    assert!(
        r.body.contains(
            "<faultcode>soapenv:Server</faultcode><faultstring>Upstream connection failed</faultstring><detail>102503:"
        ),
        "{}",
        r.body
    );
    let r = gw
        .request_with_body(
            "POST",
            "localhost",
            "/deadsoap/1.0.0/x",
            &with(V12, &[("authorization", &auth)]),
            ENVELOPE11,
        )
        .await
        .expect("request");
    assert_eq!((r.status, r.header("content-type")), (503, Some("application/soap+xml")), "{}", r.body);
    assert!(r.body.contains("<faultcode>soapenv:Receiver</faultcode><faultstring>Upstream connection failed</faultstring><detail>102503:"), "{}", r.body);

    // 504: the backend is too slow (UT), SOAP 1.2.
    let auth = format!("Bearer {}", gw.idp().idp.sign(&claims("SlowPhone", "/slowsoap/1.0.0")));
    let r = gw
        .request_with_body(
            "POST",
            "localhost",
            "/slowsoap/1.0.0/x",
            &with(V12, &[("authorization", &auth), ("x-backend-delay-ms", "3000")]),
            ENVELOPE11,
        )
        .await
        .expect("request");
    assert_eq!(r.status, 504, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("application/soap+xml"));
    assert!(
        r.body.contains("<faultcode>soapenv:Receiver</faultcode><faultstring>Upstream connection timeout</faultstring><detail>102504:"),
        "{}",
        r.body
    );
    let r = gw
        .request_with_body(
            "POST",
            "localhost",
            "/slowsoap/1.0.0/x",
            &with(V11, &[("authorization", &auth), ("x-backend-delay-ms", "3000")]),
            ENVELOPE11,
        )
        .await
        .expect("request");
    assert_eq!((r.status, r.header("content-type")), (504, Some("text/xml")), "{}", r.body);
    assert!(
        r.body.contains(
            "<faultcode>soapenv:Server</faultcode><faultstring>Upstream connection timeout</faultstring><detail>102504:"
        ),
        "{}",
        r.body
    );

    // 500: the enforcer is gone (UAEX), fail closed, as a fault. With the
    // enforcer in the router (its module) there is no hop to lose.
    if gw.enforcer_in_module() {
        return;
    }
    gw.kill_enforcer();
    let auth = token(&gw);
    let r = gw
        .request_with_body("POST", "localhost", "/soap/1.0.0/x", &with(V11, &[("authorization", &auth)]), ENVELOPE11)
        .await
        .expect("request");
    assert_eq!(r.status, 500, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("text/xml"));
    assert!(
        r.body.contains(
            "<faultstring>Unclassified Validation Failure</faultstring><detail>102500:Error during validating the request</detail>"
        ),
        "{}",
        r.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_switch_soap_requests_get_json_errors() {
    let soap = SoapServer::start().await.expect("SOAP responder");
    let gw = gateway(false, &[("phone", project(&soap.url(), None))]).await;
    let r = gw.request_with_body("POST", "localhost", "/soap/1.0.0/x", V11, ENVELOPE11).await.expect("request");
    assert_eq!((r.status, r.header("content-type")), (401, Some("application/json")), "{}", r.body);
    let r = gw.request_with_body("POST", "localhost", "/nothing-here", V12, ENVELOPE11).await.expect("request");
    assert_eq!((r.status, r.header("content-type")), (404, Some("application/json")), "{}", r.body);
    let dump = gw.config_dump(Some("dynamic_listeners")).await.to_string();
    assert!(!dump.contains("soapenv"), "no SOAP mappers without the switch");
}
