//! Operating the enforcer: revocation, failure of the enforcer, a refused
//! configuration, the admin API, analytics events and mutual TLS.

use std::time::{Duration, Instant};

use integration::tokens::now;
use integration::{Gateway, IDP_ISSUER, Resp, XdsMode, api_yaml, eventually};
use serde_json::{Value, json};
use test_backend::Backend;

use integration::fixtures::{PETS_OAS as OAS, pets_claims as claims};

fn pets(b: &Backend) -> [(&'static str, String); 2] {
    [("api.yaml", api_yaml("Pets", "1.0", "/pets", &b.url())), ("Definitions/swagger.yaml", OAS.to_string())]
}

async fn builder(b: &Backend) -> integration::GatewayBuilder {
    let files = pets(b);
    Gateway::builder(XdsMode::Delta)
        .with_enforcer()
        .project("pets", &[(files[0].0, files[0].1.as_str()), (files[1].0, files[1].1.as_str())])
}

async fn call(gw: &Gateway, token: &str) -> Resp {
    gw.request("GET", "localhost", "/pets/1.0/pets", &[("authorization", &format!("Bearer {token}"))])
        .await
        .expect("request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_tokens_are_refused_within_a_second_and_stay_revoked() {
    let b = Backend::start("b").await.expect("backend");
    let mut gw = builder(&b).await.start().await;
    let t1 = gw.idp().idp.sign(&claims("revoke-me-1"));
    let t2 = gw.idp().idp.sign(&claims("revoke-me-2"));
    assert_eq!(call(&gw, &t1).await.status, 200, "cached before revocation");
    assert_eq!(call(&gw, &t2).await.status, 200);

    // Through the adapter's management API.
    let start = Instant::now();
    let r = gw.mgmt("POST", "/revoked_tokens", Some(json!({"token": t1}))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let refused = eventually("the revoked token to be refused", || async {
        let r = call(&gw, &t1).await;
        if r.status == 401 { Ok(r) } else { Err(format!("status {}", r.status)) }
    })
    .await;
    assert!(start.elapsed() < Duration::from_secs(1), "took {:?}", start.elapsed());
    assert_eq!(
        refused.json()["error_description"],
        "Invalid JWT token. Make sure you have provided the correct security credentials"
    );

    // Through the enforcer's admin API (by jti): in force when it answers.
    let admin = [("authorization", "Basic YWRtaW46YWRtaW4=")];
    let r = gw.enforcer_https("POST", "/revoked_tokens", &admin, &json!({"jti": "revoke-me-2"}).to_string()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(call(&gw, &t2).await.status, 401);
    let listed = gw.enforcer_https("GET", "/revoked_tokens", &admin, "").await;
    assert_eq!(listed.json()["count"], 2, "{}", listed.body);

    // Bad input changes nothing.
    let r = gw.mgmt("POST", "/revoked_tokens", Some(json!({"token": "not-a-jwt"}))).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.json()["message"].as_str().unwrap_or("").contains("token"), "{}", r.body);

    // Survives restarts of both the adapter and the enforcer.
    gw.kill_adapter();
    gw.kill_enforcer();
    gw.start_adapter().await;
    gw.start_enforcer().await;
    assert_eq!(call(&gw, &t1).await.status, 401);
    assert_eq!(call(&gw, &t2).await.status, 401);
    let t3 = gw.idp().idp.sign(&claims("still-fine"));
    assert_eq!(call(&gw, &t3).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_without_expiry_stays_revoked_until_removed() {
    let b = Backend::start("b").await.expect("backend");
    let api = api_yaml("Pets", "1.0", "/pets", &b.url())
        .replace("  type: HTTP\n", "  type: HTTP\n  securityScheme: [api_key]\n");
    let mut gw = Gateway::builder(XdsMode::Delta)
        .with_enforcer()
        .project("pets", &[("api.yaml", &api), ("Definitions/swagger.yaml", OAS)])
        .start()
        .await;
    let key = |jti: &str, exp: Value| {
        let mut c = json!({
            "iss": "https://localhost:9443/apikey", "sub": "carol", "jti": jti, "iat": now(), "token_type": "apiKey",
            "keytype": "PRODUCTION", "application": {"id": 3, "uuid": "app-3", "name": "KeyApp", "owner": "carol"},
            "subscribedAPIs": [{"name": "Pets", "version": "1.0", "context": "/pets/1.0", "subscriptionTier": "Unlimited"}],
        });
        if !exp.is_null() {
            c["exp"] = exp;
        }
        gw.idp().apim.sign_without_kid(&c)
    };
    let forever = key("forever-1", Value::Null);
    // One reading of the clock: two could straddle a second (CI failed so).
    let float_whole = now() + 600;
    let float_exp = key("float-1", json!(float_whole as f64 + 0.75));
    async fn with_key(gw: &Gateway, k: &str) -> Result<Resp, String> {
        gw.request("GET", "localhost", "/pets/1.0/pets", &[("apikey", k)]).await
    }
    assert_eq!(with_key(&gw, &forever).await.expect("request").status, 200);

    // No exp: kept until removed (expiryTime 0), not for 30 days.
    let r = gw.mgmt("POST", "/revoked_tokens", Some(json!({"token": forever}))).await;
    assert_eq!((r.status, r.json()["expiryTime"].clone()), (200, json!(0)), "{}", r.body);
    // A float exp counts, rounded down.
    let r = gw.mgmt("POST", "/revoked_tokens", Some(json!({"token": float_exp}))).await;
    assert_eq!((r.status, r.json()["expiryTime"].clone()), (200, json!(float_whole)), "{}", r.body);
    eventually("the key to be refused", || async {
        let r = with_key(&gw, &forever).await?;
        if r.status == 401 { Ok(()) } else { Err(format!("status {}", r.status)) }
    })
    .await;
    assert_eq!(with_key(&gw, &float_exp).await.expect("request").status, 401);
    let listed = gw.mgmt("GET", "/revoked_tokens", None).await.json();
    assert!(
        listed["list"].as_array().expect("list").contains(&json!({"jti": "forever-1", "expiryTime": 0})),
        "{listed}"
    );

    // Restarts change nothing; removing the revocation does.
    gw.kill_adapter();
    gw.start_adapter().await;
    assert_eq!(with_key(&gw, &forever).await.expect("request").status, 401);
    let r = gw.mgmt("DELETE", "/revoked_tokens?jti=forever-1", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    eventually("the key to work again", || async {
        let r = with_key(&gw, &forever).await?;
        if r.status == 200 { Ok(()) } else { Err(format!("status {}", r.status)) }
    })
    .await;
    let r = gw.mgmt("DELETE", "/revoked_tokens?jti=forever-1", None).await;
    assert_eq!((r.status, r.json()["code"].clone()), (404, json!(404)), "{}", r.body);
    assert_eq!(with_key(&gw, &float_exp).await.expect("request").status, 401, "the other stays revoked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_enforcer_requests_fail_closed_and_recover() {
    let b = Backend::start("b").await.expect("backend");
    let mut gw = builder(&b).await.start().await;
    let t = gw.idp().idp.sign(&claims("k"));
    assert_eq!(call(&gw, &t).await.status, 200);
    if gw.enforcer_in_module() {
        // The router decides itself (its module): with the enforcer service
        // and the adapter both gone, it keeps deciding from what it holds.
        gw.kill_enforcer();
        gw.kill_adapter();
        assert_eq!(call(&gw, &t).await.status, 200);
        assert_eq!(gw.get("/pets/1.0/pets").await.expect("request").status, 401);
        assert_eq!(b.hits(), 2);
        return;
    }
    gw.kill_enforcer();
    let r = call(&gw, &t).await;
    assert_eq!(r.status, 500, "{}", r.body);
    assert_eq!(
        r.json(),
        json!({"code": "102500", "message": "Unclassified Validation Failure", "description": "Error during validating the request"})
    );
    assert_eq!(b.hits(), 1, "nothing reached the backend while the enforcer was down");
    gw.start_enforcer().await;
    eventually("the enforcer to answer again", || async {
        let r = call(&gw, &t).await;
        if r.status == 200 { Ok(()) } else { Err(format!("status {}", r.status)) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configuration_the_enforcer_cannot_use_is_refused_and_nothing_is_allowed() {
    let b = Backend::start("b").await.expect("backend");
    let files = pets(&b);
    let mut gw = Gateway::builder(XdsMode::Delta)
        .manual()
        .config("[[enforcer.security.tokenService]]\nname = \"Broken\"\nissuer = \"https://broken\"\ncertificateFilePath = \"{dir}/missing.pem\"\n")
        .with_enforcer()
        .project("pets", &[(files[0].0, files[0].1.as_str()), (files[1].0, files[1].1.as_str())])
        .start()
        .await;
    gw.start_adapter().await;
    gw.spawn_enforcer().await;
    let nack = eventually("the enforcer to refuse the configuration", || async {
        let s = gw.xds_status().await;
        let config = s["enforcers"].as_array().into_iter().flatten().find(|e| e["kind"] == "config").cloned();
        match config.and_then(|c| c["nack"].as_str().map(String::from)) {
            Some(n) => Ok(n),
            None => Err("no NACK yet".to_string()),
        }
    })
    .await;
    assert!(nack.contains("missing.pem") && nack.contains("tokenService[4].certificateFilePath"), "{nack}");
    gw.start_envoy().await;
    let t = gw.idp().idp.sign(&claims("k"));
    let r = call(&gw, &t).await;
    assert_eq!((r.status, r.json()["code"].clone()), (500, json!("102500")), "{}", r.body);
    assert_eq!(b.hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_needs_credentials_and_reports_apis() {
    let b = Backend::start("b").await.expect("backend");
    let gw = builder(&b).await.start().await;
    let r = gw.enforcer_https("GET", "/apis", &[], "").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json(), json!({"error": true, "message": "No Authorization header provided"}));
    let bad = [("authorization", "Basic YWRtaW46eA==")];
    let r = gw.enforcer_https("GET", "/apis", &bad, "").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["message"], "Username/ password invalid. User is not authorized to invoke the resource.");
    let admin = [("authorization", "Basic YWRtaW46YWRtaW4=")];
    let r = gw.enforcer_https("GET", "/apis", &admin, "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v = r.json();
    assert_eq!(v["count"], 1);
    assert_eq!(v["list"][0]["apiName"], "Pets");
    assert_eq!(v["list"][0]["context"], "/pets/1.0");
    assert_eq!(v["list"][0]["apiVersion"], "1.0");
    let r = gw.enforcer_https("GET", "/api/info?context=/pets/1.0&version=1.0", &admin, "").await;
    assert_eq!((r.status, r.json()["name"].clone()), (200, json!("Pets")));
    let r = gw.enforcer_https("GET", "/api/info?context=/pets/1.0", &admin, "").await;
    assert_eq!(r.status, 400);
    let r = gw.enforcer_https("DELETE", "/apis", &admin, "").await;
    assert_eq!((r.status, r.json()["message"].clone()), (501, json!("Request Method not implemented.")));
    let r = gw.enforcer_https("GET", "/nothing", &admin, "").await;
    assert_eq!((r.status, r.json()["message"].clone()), (404, json!("Requested Resource Not Found")));
    let r = gw.enforcer_https("GET", "/applications", &admin, "").await;
    assert_eq!(r.status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analytics_events_are_written_for_allowed_and_denied_requests() {
    let b = Backend::start("b").await.expect("backend");
    let gw = builder(&b)
        .await
        .config("[analytics]\nenabled = true\n[analytics.adapter]\nbufferFlushInterval = \"100ms\"\n[analytics.enforcer.configProperties]\nsink = \"{dir}/analytics.jsonl\"\n")
        .start()
        .await;
    let t = gw.idp().idp.sign(&claims("a1"));
    assert_eq!(call(&gw, &t).await.status, 200);
    assert_eq!(gw.get("/pets/1.0/pets").await.expect("request").status, 401);
    let path = gw.dir.path().join("analytics.jsonl");
    let events: Vec<Value> = eventually("two analytics events", || async {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let evs: Vec<Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        if evs.len() >= 2 { Ok(evs) } else { Err(format!("{} events: {text}", evs.len())) }
    })
    .await;
    let ok = events.iter().find(|e| e["responseCode"] == 200).expect("allowed event");
    assert_eq!(ok["apiName"], "Pets");
    assert_eq!(ok["apiVersion"], "1.0");
    assert_eq!(ok["resource"], "/pets");
    assert_eq!(ok["applicationName"], "PetApp");
    assert_eq!(ok["keyType"], "PRODUCTION");
    assert_eq!(ok["userName"], "alice");
    assert_eq!(ok["method"], "GET");
    assert_eq!(ok["path"], "/pets/1.0/pets", "the client's path, not the upstream one");
    assert!(ok["upstreamLatencyMs"].as_f64().is_some() && ok["totalLatencyMs"].as_f64().is_some(), "{ok}");
    assert!(!ok["correlationId"].as_str().unwrap_or("").is_empty(), "{ok}");
    let denied = events.iter().find(|e| e["responseCode"] == 401).expect("denied event");
    assert_eq!(denied["apiName"], "Pets");
    assert_eq!(denied["errorCode"], "900901");
    assert_eq!(denied["deniedByEnforcer"], true);
}

/// A CA and client certificates it signs: (CA PEM, [(certificate PEM, certificate + key PEM)]).
fn client_certs(names: &[&str]) -> (String, Vec<(String, String)>) {
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "Test client CA");
    ca_params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::DigitalSignature];
    let ca = ca_params.self_signed(&ca_key).expect("CA");
    let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
    let clients = names
        .iter()
        .map(|n| {
            let key = rcgen::KeyPair::generate().expect("key");
            let mut params = rcgen::CertificateParams::new(vec![n.to_string()]).expect("params");
            params.distinguished_name.push(rcgen::DnType::CommonName, *n);
            params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
            let cert = params.signed_by(&key, &issuer).expect("client certificate");
            (cert.pem(), format!("{}{}", cert.pem(), key.serialize_pem()))
        })
        .collect();
    (ca.pem(), clients)
}

async fn tls_get(gw: &Gateway, path: &str, identity: Option<&str>, headers: &[(&str, &str)]) -> Result<Resp, String> {
    let mut cb = reqwest::Client::builder()
        .no_proxy()
        .add_root_certificate(reqwest::Certificate::from_pem(gw.certs.ca_pem.as_bytes()).expect("ca"));
    if let Some(id) = identity {
        cb = cb.identity(reqwest::Identity::from_pem(id.as_bytes()).map_err(|e| format!("identity: {e:?}"))?);
    }
    let client = cb.build().expect("client");
    let mut rb = client.get(format!("https://localhost:{}{path}", gw.ports.https));
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    let r = rb.send().await.map_err(|e| format!("{e:?}"))?;
    let status = r.status().as_u16();
    let headers =
        r.headers().iter().map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string())).collect();
    Ok(Resp { status, headers, body: r.text().await.unwrap_or_default() })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_mandatory_and_optional() {
    let b = Backend::start("b").await.expect("backend");
    let (ca, clients) = client_certs(&["partner", "stranger"]);
    let (partner, partner_id) = clients[0].clone();
    let stranger_id = clients[1].1.clone();
    let trust = tempfile::tempdir().expect("dir");
    let bundle = trust.path().join("clients-ca.pem");
    std::fs::write(&bundle, ca).expect("CA file");
    let yaml = |name: &str, ctx: &str, schemes: &str| {
        api_yaml(name, "1.0", ctx, &b.url())
            .replace("  type: HTTP\n", &format!("  type: HTTP\n  securityScheme: [{schemes}]\n"))
    };
    let index = "data:\n  - alias: partner\n    certificate: partner.crt\n    tierName: Gold\n";
    let oas = |t: &str| OAS.replace("Pets", t);
    let gw = Gateway::builder(XdsMode::Delta)
        .with_enforcer()
        .config(&format!(
            "[router.downstream.tls]\nmTLSAPIsEnabled = true\ntrustedCertPath = \"{}\"\n",
            bundle.display()
        ))
        .project(
            "strict",
            &[
                ("api.yaml", &yaml("Strict", "/strict", "mutualssl, mutualssl_mandatory")),
                ("Definitions/swagger.yaml", &oas("Strict")),
                ("Client-certificates/client_certificates.yaml", index),
                ("Client-certificates/partner.crt", &partner),
            ],
        )
        .project(
            "relaxed",
            &[
                ("api.yaml", &yaml("Relaxed", "/relaxed", "mutualssl, oauth2")),
                ("Definitions/swagger.yaml", &oas("Relaxed")),
                ("Client-certificates/client_certificates.yaml", index),
                ("Client-certificates/partner.crt", &partner),
            ],
        )
        .start()
        .await;
    // Mandatory: the listed certificate is enough; none, or another, is refused.
    let r = tls_get(&gw, "/strict/1.0/pets", Some(&partner_id), &[]).await.expect("request");
    assert_eq!(r.status, 200, "{}\n{}", r.body, gw.enforcer_log());
    let r = tls_get(&gw, "/strict/1.0/pets", None, &[]).await.expect("request");
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(
        r.header("www-authenticate").unwrap_or("").starts_with("Mutual SSL realm=\"Choreo Connect\""),
        "{:?}",
        r.headers
    );
    let r = tls_get(&gw, "/strict/1.0/pets", Some(&stranger_id), &[]).await.expect("request");
    assert_eq!(r.status, 401, "{}", r.body);
    // Optional: a token is still needed; the certificate alone is not.
    let token = gw.idp().idp.sign(&json!({
        "iss": IDP_ISSUER, "sub": "a", "exp": now() + 600, "jti": "m1",
        "subscribedAPIs": [{"name": "Relaxed", "version": "1.0"}],
    }));
    let auth = format!("Bearer {token}");
    let r = tls_get(&gw, "/relaxed/1.0/pets", None, &[("authorization", &auth)]).await.expect("request");
    assert_eq!(r.status, 200, "{}", r.body);
    let r = tls_get(&gw, "/relaxed/1.0/pets", Some(&partner_id), &[("authorization", &auth)]).await.expect("request");
    assert_eq!(r.status, 200, "{}", r.body);
    let r = tls_get(&gw, "/relaxed/1.0/pets", Some(&partner_id), &[]).await.expect("request");
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(b.hits(), 3);
}
