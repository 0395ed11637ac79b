//! The check at load that the running Envoy is the one this module's ABI
//! declarations (abi.rs) were written for.
//!
//! Envoy's dynamic-module ABI belongs to one Envoy version, and Envoy itself
//! only warns when a module reports another ABI version. A module whose C
//! declarations do not match the running Envoy's would read and write the
//! wrong memory, so the module asks the running Envoy binary its version
//! (`/proc/self/exe --version`, once, when Envoy loads the module) and
//! refuses to load, saying why, when it is not [`ENVOY_RELEASE`]. The Envoy
//! pin (Makefile `ENVOY_VERSION`, the router image) and this constant move
//! together.

use std::process::{Command, Stdio};

/// The Envoy release (major.minor) the ABI declarations were written for.
pub const ENVOY_RELEASE: &str = "1.40";

/// The running Envoy's version (`1.40.0`), from its own `--version`.
pub fn running() -> Result<String, String> {
    let out = Command::new("/proc/self/exe")
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run the Envoy binary (/proc/self/exe --version): {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse(&text).map(str::to_string).ok_or_else(|| format!("cannot read Envoy's version from {:?}", text.trim()))
}

/// The version in Envoy's `--version` line:
/// `envoy  version: <commit>/1.40.0/Clean/RELEASE/BoringSSL`.
pub fn parse(text: &str) -> Option<&str> {
    let build = text.split(" version: ").nth(1)?;
    let version = build.split('/').nth(1)?;
    version.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())).then_some(version)
}

/// `Ok` when `version` is of [`ENVOY_RELEASE`], else the reason to refuse.
pub fn check(version: &str) -> Result<(), String> {
    let release = version.splitn(3, '.').take(2).collect::<Vec<_>>().join(".");
    if release == ENVOY_RELEASE {
        Ok(())
    } else {
        Err(format!(
            "this module is built for Envoy {ENVOY_RELEASE}.x (dynamic-module ABI {}), and the running Envoy is {version}: \
             run the Envoy the gateway pins, or a module built for {version}",
            crate::abi::ABI_VERSION.to_string_lossy()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_is_read_from_envoys_version_line() {
        let line = "\n/usr/local/bin/envoy  version: 9e5580933739775e8bce696a57a2e1bc99368f23/1.40.0/Clean/RELEASE/BoringSSL\n";
        assert_eq!(parse(line), Some("1.40.0"));
        assert_eq!(parse("envoy  version: abc/1.41.2-dev/Modified/DEBUG/BoringSSL"), None);
        assert_eq!(parse("nothing here"), None);
    }

    #[test]
    fn only_the_release_the_abi_was_written_for_is_accepted() {
        assert_eq!(check("1.40.0"), Ok(()));
        assert_eq!(check("1.40.3"), Ok(()));
        let e = check("1.41.0").expect_err("another release");
        assert!(
            e.starts_with(
                "this module is built for Envoy 1.40.x (dynamic-module ABI v0.2.0), and the running Envoy is 1.41.0"
            ),
            "{e}"
        );
        assert!(check("1.4.0").is_err());
        assert!(check("2.40.0").is_err());
    }
}
