use crate::{ConfigError, Warning, load};

/// The environment every test starts from: the default user's password
/// (`$env{adapter_admin_pwd}`) is set, as the shipped compose file does.
fn no_env() -> Vec<(&'static str, &'static str)> {
    vec![("adapter_admin_pwd", "s3cret")]
}

#[test]
fn empty_file_gives_choreo_connect_defaults() {
    let l = load("", "config.toml", vec![("adapter_admin_pwd", "s3cret")]).expect("empty config is valid");
    let c = l.config;
    assert_eq!(c.router.listener_port, 9090);
    assert_eq!(c.router.secured_listener_port, 9095);
    assert_eq!(c.router.system_host, "localhost");
    assert_eq!(c.router.upstream.timeouts.route_timeout_in_seconds, 60);
    assert_eq!(c.router.upstream.retry.max_retry_count, 5);
    assert_eq!(c.router.upstream.retry.status_codes, vec![504]);
    assert_eq!(c.router.upstream.dns.dns_refresh_rate, 5000);
    assert_eq!(c.router.connection_timeout.idle_timeout_in_seconds, 3600);
    assert_eq!(c.adapter.artifacts_directory, "/home/wso2/artifacts");
    assert_eq!(c.adapter.vhost_mapping.len(), 1);
    assert_eq!(c.adapter.vhost_mapping[0].environment, "Default");
    assert_eq!(c.adapter.vhost_mapping[0].vhost, "localhost");
    assert_eq!(c.adapter.server.port, "9843");
    assert!(c.router.cors.enabled);
    assert_eq!(c.router.cors.allow_origins, vec!["*"]);
    // The default user's password comes from $env{adapter_admin_pwd}.
    assert_eq!(c.adapter.server.users[0].password, "s3cret");
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
}

#[test]
fn an_unset_env_reference_is_refused_with_its_key() {
    // Choreo Connect would use "$env{adapter_admin_pwd}" as the password.
    let err = load("", "config.toml", Vec::new()).expect_err("unset variable").to_string();
    assert_eq!(
        err,
        "adapter.server.users[0].password: $env{adapter_admin_pwd} is not set: set the environment variable \
         (the reference would otherwise be used literally)"
    );
    let err =
        load("[router]\nsystemHost = \"$env{HOST}.example.com\"\n", "config.toml", vec![("adapter_admin_pwd", "x")])
            .expect_err("unset")
            .to_string();
    assert!(err.starts_with("router.systemHost: $env{HOST} is not set"), "{err}");
    // With the management API off, its users are never used.
    let text = "[adapter.server]\nenabled = false\n";
    assert!(load(text, "config.toml", Vec::new()).is_ok());
}

#[test]
fn empty_passwords_are_refused_and_default_credentials_warned() {
    let text = "[[adapter.server.users]]\nusername = \"ops\"\npassword = \"\"\n";
    let err = load(text, "config.toml", no_env()).expect_err("empty password").to_string();
    assert_eq!(err, "adapter.server.users[0].password: must not be empty");
    let text = "[[adapter.server.users]]\nusername = \"admin\"\npassword = \"$env{PW}\"\n";
    let l = load(text, "config.toml", vec![("PW", "admin")]).expect("valid");
    assert_eq!(
        l.warnings,
        vec![Warning::DefaultCredentials { key: "adapter.server.users[0]".into(), username: "admin".into() }]
    );
    assert!(l.warnings[0].to_string().contains("well-known default credentials"), "{}", l.warnings[0]);
}

#[test]
fn values_from_the_file_are_used() {
    let text = r#"
[adapter]
artifactsDirectory = "/tmp/artifacts"

[[adapter.vhostMapping]]
environment = "Default"
vhost = "gw.example.com"

[[adapter.vhostMapping]]
environment = "dev"
vhost = "dev.example.com"

[router]
listenerPort = 8080
systemHost = "sys.example.com"

[router.upstream.timeouts]
routeTimeoutInSeconds = 30

[router.upstream.dns]
dNSRefreshRate = 1000
"#;
    let c = load(text, "config.toml", no_env()).expect("valid").config;
    assert_eq!(c.adapter.artifacts_directory, "/tmp/artifacts");
    assert_eq!(c.adapter.vhost_mapping.len(), 2);
    assert_eq!(c.adapter.vhost_mapping[1].vhost, "dev.example.com");
    assert_eq!(c.router.listener_port, 8080);
    assert_eq!(c.router.secured_listener_port, 9095, "untouched keys keep defaults");
    assert_eq!(c.router.system_host, "sys.example.com");
    assert_eq!(c.router.upstream.timeouts.route_timeout_in_seconds, 30);
    assert_eq!(c.router.upstream.dns.dns_refresh_rate, 1000);
}

#[test]
fn keys_match_case_insensitively_with_a_warning() {
    let text = "[Router]\nlistenerport = 7000\n[Router.Upstream.DNS]\ndnsrefreshrate = 100\n";
    let l = load(text, "config.toml", no_env()).expect("valid");
    assert_eq!(l.config.router.listener_port, 7000);
    assert_eq!(l.config.router.upstream.dns.dns_refresh_rate, 100);
    assert!(
        l.warnings
            .iter()
            .any(|w| matches!(w, Warning::KeyCase { canonical, .. } if canonical == "router.listenerPort"))
    );
}

#[test]
fn unknown_keys_are_warned_about_and_ignored() {
    let text = "[router]\nlistenerPort = 9091\nnoSuchKey = 1\n[router.cors]\nallowOrigin = [\"x\"]\n";
    let l = load(text, "config.toml", no_env()).expect("valid");
    let unknown = l
        .warnings
        .iter()
        .filter_map(|w| match w {
            Warning::UnknownKey { key } => Some(key.clone()),
            _ => None,
        })
        .collect::<std::collections::BTreeSet<_>>();
    assert_eq!(unknown, ["router.cors.allowOrigin".to_string(), "router.noSuchKey".to_string()].into());
}

#[test]
fn a_wrong_type_names_the_key_and_the_value() {
    let err = load("[router]\nlistenerPort = \"abc\"\n", "config.toml", no_env()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("router.listenerPort: "), "{msg}");
    assert!(msg.contains("abc"), "{msg}");
}

#[test]
fn an_out_of_range_port_is_refused() {
    let err = load("[router]\nlistenerPort = 70000\n", "config.toml", no_env()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("router.listenerPort: "), "{msg}");
    assert!(msg.contains("70000"), "{msg}");
}

#[test]
fn a_bad_enum_value_is_refused_with_the_allowed_values() {
    let err = load("[router.upstream.tls]\nminimumProtocolVersion = \"SSL3\"\n", "c.toml", no_env()).unwrap_err();
    assert_eq!(
        err,
        ConfigError::Invalid {
            key: "router.upstream.tls.minimumProtocolVersion".into(),
            value: Some("SSL3".into()),
            reason: "expected one of TLS_AUTO, TLS1_0, TLS1_1, TLS1_2, TLS1_3".into(),
        }
    );
}

#[test]
fn syntax_errors_name_the_file_and_line() {
    let err = load("[router\nlistenerPort = 1\n", "/etc/gw/config.toml", no_env()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("/etc/gw/config.toml: not valid TOML"), "{msg}");
    assert!(msg.contains("line 1"), "{msg}");
}

#[test]
fn env_references_are_substituted_in_adapter_and_router() {
    let text = r#"
[adapter]
artifactsDirectory = "$env{ART}/apis-root"
[[adapter.server.users]]
username = "admin"
password = "$env{PW}"
[router]
systemHost = "sys.$env{DOMAIN}"
[enforcer.management]
password = "$env{ENF}"
"#;
    let env = vec![("ART", "/data"), ("PW", "s3cret"), ("DOMAIN", "example.com"), ("ENF", "x")];
    let text = &format!("{text}\n");
    let c = load(text, "config.toml", env).expect("valid").config;
    assert_eq!(c.adapter.artifacts_directory, "/data/apis-root");
    assert_eq!(c.adapter.server.users[0].password, "s3cret");
    assert_eq!(c.router.system_host, "sys.example.com");
    // [enforcer] is resolved by the enforcer itself.
    assert_eq!(c.enforcer.management.password, "$env{ENF}");
}

#[test]
fn cc_overrides_set_typed_values() {
    let env = vec![
        ("CC_ROUTER_LISTENERPORT", "9191"),
        ("CC_ROUTER_USEREMOTEADDRESS", "false"),
        ("CC_ROUTER_UPSTREAM_RETRY_STATUSCODES", "502, 503"),
        ("CC_ROUTER_CORS_ALLOWORIGINS", "https://a.example, https://b.example"),
        ("CC_ADAPTER_SERVER_PORT", "9444"),
        ("CC_ADAPTER_VHOSTMAPPING_0_VHOST", "api.example.com"),
        ("CC_ADAPTER_VHOSTMAPPING_1_ENVIRONMENT", "stage"),
        ("CC_ADAPTER_VHOSTMAPPING_1_VHOST", "stage.example.com"),
        ("PATH", "/usr/bin"),
        ("adapter_admin_pwd", "s3cret"),
    ];
    let l = load("[router]\nlistenerPort = 1\n", "config.toml", env).expect("valid");
    let c = l.config;
    assert_eq!(c.router.listener_port, 9191, "environment wins over the file");
    assert!(!c.router.use_remote_address, "the default is true");
    assert_eq!(c.router.upstream.retry.status_codes, vec![502, 503]);
    assert_eq!(c.router.cors.allow_origins, vec!["https://a.example", "https://b.example"]);
    assert_eq!(c.adapter.server.port, "9444");
    assert_eq!(c.adapter.vhost_mapping[0].vhost, "api.example.com");
    assert_eq!(c.adapter.vhost_mapping[1].environment, "stage");
    assert_eq!(c.adapter.vhost_mapping[1].vhost, "stage.example.com");
}

#[test]
fn a_bad_override_names_the_variable_key_and_value() {
    let err = load("", "config.toml", vec![("CC_ROUTER_LISTENERPORT", "ninety")]).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("router.listenerPort"), "{msg}");
    assert!(msg.contains("CC_ROUTER_LISTENERPORT"), "{msg}");
    assert!(msg.contains("ninety"), "{msg}");
    assert!(msg.contains("expected an integer"), "{msg}");
}

#[test]
fn an_override_naming_no_key_is_warned_about() {
    let l = load("", "config.toml", vec![("CC_ROUTER_NOSUCHTHING", "1"), ("adapter_admin_pwd", "x")]).expect("valid");
    assert!(l.warnings.contains(&Warning::UnknownOverride { variable: "CC_ROUTER_NOSUCHTHING".into() }));
}

#[test]
fn route_timeout_above_the_maximum_is_refused() {
    let text = "[router.upstream.timeouts]\nrouteTimeoutInSeconds = 90\nmaxRouteTimeoutInSeconds = 60\n";
    let msg = load(text, "config.toml", no_env()).unwrap_err().to_string();
    assert_eq!(
        msg,
        "router.upstream.timeouts.routeTimeoutInSeconds: invalid value \"90\": exceeds maxRouteTimeoutInSeconds (60)"
    );
}

#[test]
fn duplicate_environment_mapping_is_refused() {
    let text = "[[adapter.vhostMapping]]\nenvironment=\"Default\"\nvhost=\"a\"\n[[adapter.vhostMapping]]\nenvironment=\"Default\"\nvhost=\"b\"\n";
    let msg = load(text, "config.toml", no_env()).unwrap_err().to_string();
    assert!(msg.starts_with("adapter.vhostMapping[1].environment"), "{msg}");
}

#[test]
fn choreo_connects_connection_timeouts_table_is_accepted() {
    let l = load("[router.connection.timeouts]\nidleTimeoutInSeconds = 120\n", "config.toml", no_env()).expect("valid");
    assert_eq!(l.config.router.connection_timeout.idle_timeout_in_seconds, 120);
    assert_eq!(l.config.router.connection_timeout.stream_idle_timeout_in_seconds, 300);
    assert!(l.warnings.iter().all(|w| !matches!(w, Warning::UnknownKey { .. })), "{:?}", l.warnings);
    let err = load(
        "[router.connection.timeouts]\nidleTimeoutInSeconds = 1\n[router.connectionTimeout]\nidleTimeoutInSeconds = 2\n",
        "c",
        no_env(),
    );
    assert!(err.is_err());
}

#[test]
fn enforcer_sections_are_typed_with_choreo_connect_defaults() {
    let text = r#"
[[enforcer.security.tokenService]]
name = "Auth0"
issuer = "https://example.auth0.com/"
JWKSUrl = "https://example.auth0.com/.well-known/jwks.json"
validateSubscription = true
[[enforcer.security.tokenService.claimMapping]]
remoteClaim = "client_id"
localClaim = "azp"
[enforcer.jwtGenerator]
enabled = true
tokenTTL = 600
[analytics]
enabled = true
[analytics.enforcer.configProperties]
sink = "/tmp/analytics.jsonl"
"#;
    let c = load(text, "config.toml", no_env()).expect("valid").config;
    let ts = &c.enforcer.security.token_service;
    assert_eq!(ts.len(), 1, "a configured list replaces the default issuers");
    assert_eq!(ts[0].jwks_url, "https://example.auth0.com/.well-known/jwks.json", "keys are case-insensitive");
    assert_eq!(ts[0].claim_mapping[0].local_claim, "azp");
    assert!(c.enforcer.jwt_generator.enabled);
    assert_eq!(c.enforcer.jwt_generator.token_ttl, 600);
    assert_eq!(c.enforcer.jwt_generator.header, "X-JWT-Assertion");
    assert_eq!(c.enforcer.auth_service.port, 8081);
    assert_eq!(c.enforcer.security.auth_header.test_console_header_name, "Internal-Key");
    assert_eq!(c.enforcer.cache.maximum_size, 10_000);
    assert!(c.analytics.enabled);
    assert_eq!(
        c.analytics.enforcer.config_properties.get("sink").and_then(|v| v.as_str()),
        Some("/tmp/analytics.jsonl")
    );
    assert_eq!(c.analytics.enforcer.log_receiver.port, 18090);
    let d = crate::Config::default();
    assert_eq!(d.enforcer.security.token_service.len(), 4, "Choreo Connect's four default issuers");
    assert_eq!(d.enforcer.jwt_issuer.issuer, "https://localhost:9095/testkey");
}

#[test]
fn bad_enforcer_values_name_the_key() {
    let cases = [
        ("[enforcer.jwtGenerator]\nencoding = \"hex\"\n", "enforcer.jwtGenerator.encoding"),
        ("[enforcer.jwtIssuer]\nvalidityPeriod = 0\n", "enforcer.jwtIssuer.validityPeriod"),
        ("[[enforcer.security.tokenService]]\nname = \"x\"\n", "enforcer.security.tokenService[0].issuer"),
        (
            "[[enforcer.security.tokenService]]\nname = \"x\"\nissuer = \"i\"\njwksURL = \"ftp://x\"\n",
            "enforcer.security.tokenService[0].jwksURL",
        ),
        ("[enforcer.cache]\nmaximumSize = 0\n", "enforcer.cache.maximumSize"),
        ("[analytics.adapter]\nbufferFlushInterval = \"soon\"\n", "analytics.adapter.bufferFlushInterval"),
        ("[enforcer.throttling]\nbackend = \"memcached\"\n", "enforcer.throttling.backend"),
        ("[enforcer.throttling]\nbackend = \"redis\"\n", "enforcer.throttling.redis.url"),
        (
            "[enforcer.throttling]\nbackend = \"redis\"\n[enforcer.throttling.redis]\nurl = \"http://r:6379\"\n",
            "enforcer.throttling.redis.url",
        ),
        (
            "[enforcer.throttling]\nbackend = \"redis\"\n[enforcer.throttling.redis]\nurl = \"rediss://r:6379\"\n",
            "enforcer.throttling.redis.url",
        ),
        ("[enforcer.throttling]\nfailureMode = \"maybe\"\n", "enforcer.throttling.failureMode"),
        ("[enforcer.throttling]\naccuracy = 0.9\n", "enforcer.throttling.accuracy"),
    ];
    for (text, key) in cases {
        let err = load(text, "config.toml", no_env()).expect_err(text).to_string();
        assert!(err.contains(key), "{text}: {err}");
    }
}

#[test]
fn go_durations_parse() {
    use crate::enforcer::go_duration;
    use std::time::Duration;
    assert_eq!(go_duration("1s"), Some(Duration::from_secs(1)));
    assert_eq!(go_duration("500ms"), Some(Duration::from_millis(500)));
    assert_eq!(go_duration("1m30s"), Some(Duration::from_secs(90)));
    assert_eq!(go_duration("0"), Some(Duration::ZERO));
    for bad in ["", "s", "1", "1x", "-1s"] {
        assert_eq!(go_duration(bad), None, "{bad}");
    }
}

#[test]
fn sections_accepted_but_not_used_are_warned_about() {
    let text = "[enforcer.authService]\nport = 9999\n[enforcer.authService.threadPool]\ncoreSize = 10\n";
    let l = load(text, "config.toml", no_env()).expect("valid");
    assert_eq!(l.warnings.len(), 1, "{:?}", l.warnings);
    let w = l.warnings[0].to_string();
    assert!(w.starts_with("enforcer.authService: accepted but not used by this gateway; "), "{w}");
    assert!(w.contains("--authz-address"), "{w}");
    // The defaults, written out, are not worth a warning.
    let l = load("[enforcer.authService]\nport = 8081\n", "config.toml", no_env()).expect("valid");
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
}

#[test]
fn throttling_keeps_choreo_connects_keys_and_warns_about_the_traffic_manager() {
    let l = load("", "config.toml", no_env()).expect("valid");
    let t = &l.config.enforcer.throttling;
    assert!(t.enabled, "on by default: a tier a project names is enforced");
    assert_eq!((t.backend.as_str(), t.failure_mode.as_str(), t.accuracy), ("memory", "local", 0.02));
    assert!(t.headers.retry_after && !t.headers.x_rate_limit && !t.headers.ietf);
    let text = "[enforcer.throttling]\nenableGlobalEventPublishing = true\nenableHeaderConditions = true\n\
                jmsConnectionProviderURL = \"amqp://tm:5672\"\n[enforcer.throttling.publisher]\nusername = \"admin\"\n";
    let l = load(text, "config.toml", no_env()).expect("valid");
    assert!(l.config.enforcer.throttling.enable_header_conditions);
    let w: Vec<String> = l.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].starts_with("enforcer.throttling.enableGlobalEventPublishing: accepted but not used"), "{w:?}");
    // A misspelt key is not swallowed.
    let l = load("[enforcer.throttling]\nenableHeaderCondition = true\n", "config.toml", no_env()).expect("valid");
    assert!(l.warnings.iter().any(|w| w.to_string().contains("enableHeaderCondition")), "{:?}", l.warnings);
}

#[test]
fn tracing_and_metrics_are_checked_when_enabled() {
    let err = |text: &str| load(text, "config.toml", no_env()).expect_err(text).to_string();
    assert_eq!(
        err("[tracing]\nenabled = true\ntype = \"azure\"\n"),
        "tracing.type: invalid value \"azure\": expected one of zipkin, otlp"
    );
    assert_eq!(
        err("[tracing]\nenabled = true\ntype = \"otlp\"\n[tracing.configProperties]\nport = \"70000\"\n"),
        "tracing.configProperties.port: invalid value \"70000\": expected a port number 1-65535"
    );
    assert_eq!(
        err("[tracing]\nenabled = true\ntype = \"otlp\"\n[tracing.configProperties]\nprotocol = \"udp\"\n"),
        "tracing.configProperties.protocol: invalid value \"udp\": expected one of grpc, http"
    );
    assert_eq!(
        err("[adapter.metrics]\ntype = \"statsd\"\n"),
        "adapter.metrics.type: invalid value \"statsd\": expected one of prometheus"
    );
    // Disabled tracing is not checked (Choreo Connect's azure settings may stay).
    let l = load("[tracing]\nenabled = false\ntype = \"azure\"\n", "config.toml", no_env()).expect("valid");
    assert!(!l.config.tracing.enabled);
    let l = load("[adapter.metrics]\nport = 19999\n", "config.toml", no_env()).expect("valid");
    assert_eq!((l.config.adapter.metrics.enabled, l.config.adapter.metrics.port), (true, 19999));
}

#[test]
fn java_custom_filters_are_refused_pointing_to_interceptors_and_rego() {
    let text = "[[enforcer.filters]]\nclassName = \"org.example.CustomFilter\"\nposition = 3\n[enforcer.filters.configProperties]\nfooKey = \"fooVal\"\n";
    let err = load(text, "config.toml", no_env()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("enforcer.filters[0].className: "), "{msg}");
    assert!(msg.contains("org.example.CustomFilter"), "{msg}");
    assert!(msg.contains("interceptor") && msg.contains("regoPolicy"), "{msg}");
}
