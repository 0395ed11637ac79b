//! The adapter binary's configuration handling.

use std::process::Command;

use integration::workspace_bin;

fn validate(config: &str) -> (i32, String) {
    validate_with(config, &[("adapter_admin_pwd", "s3cret")])
}

fn validate_with(config: &str, env: &[(&str, &str)]) -> (i32, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("config.toml");
    std::fs::write(&path, config).expect("write config");
    let out = Command::new(workspace_bin("adapter"))
        .arg("--config")
        .arg(&path)
        .arg("--validate")
        .env("NO_COLOR", "1")
        .env_remove("adapter_admin_pwd")
        .envs(env.iter().copied())
        .output()
        .expect("run adapter");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn validate_accepts_a_good_config_and_warns_about_unknown_keys() {
    let (code, out) = validate("[router]\nlistenerPort = 9091\nlistenerPortt = 1\n");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(": valid"), "{out}");
    assert!(out.contains("router.listenerPortt: unknown key, ignored"), "{out}");
}

#[test]
fn validate_refuses_a_bad_value_naming_key_value_and_reason() {
    let (code, out) = validate("[router.upstream.tls]\nmaximumProtocolVersion = \"TLS9\"\n");
    assert_eq!(code, 64, "{out}");
    assert!(
        out.contains("router.upstream.tls.maximumProtocolVersion: invalid value \"TLS9\": expected one of TLS_AUTO, TLS1_0, TLS1_1, TLS1_2, TLS1_3"),
        "{out}"
    );
    let (code, out) = validate("[router]\nlistenerPort = \"ninety\"\n");
    assert_eq!(code, 64, "{out}");
    assert!(out.contains("router.listenerPort"), "{out}");
    let (code, out) = validate("[router\n");
    assert_eq!(code, 64, "{out}");
    assert!(out.contains("not valid TOML"), "{out}");
}

#[test]
fn unset_variables_empty_passwords_and_default_credentials() {
    // The default user's password is $env{adapter_admin_pwd}: unset, the
    // adapter refuses to start rather than use the reference as a password.
    let (code, out) = validate_with("", &[]);
    assert_eq!(code, 64, "{out}");
    assert!(
        out.contains(
            "adapter.server.users[0].password: $env{adapter_admin_pwd} is not set: set the environment variable"
        ),
        "{out}"
    );
    let (code, out) = validate("[[adapter.server.users]]\nusername = \"ops\"\npassword = \"\"\n");
    assert_eq!(code, 64, "{out}");
    assert!(out.contains("adapter.server.users[0].password: must not be empty"), "{out}");
    // Choreo Connect's admin/admin: accepted, with a warning at every start.
    let (code, out) = validate_with("", &[("adapter_admin_pwd", "admin")]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("adapter.server.users[0]: the well-known default credentials (admin/admin) are in use"),
        "{out}"
    );
}

#[test]
fn a_missing_config_file_is_an_error() {
    let out = Command::new(workspace_bin("adapter"))
        .arg("--config")
        .arg("/nonexistent/config.toml")
        .arg("--validate")
        .output()
        .expect("run adapter");
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read the configuration /nonexistent/config.toml"));
}
