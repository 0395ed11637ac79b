//! apictl's own settings: environments (adapter URLs) and login tokens,
//! under `$APICTL_CONFIG_DIR`, else `$XDG_CONFIG_HOME/apictl`, else
//! `~/.config/apictl`. Tokens are files readable only by the user.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Why the settings could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file operation failed.
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        reason: String,
    },
    /// No home folder to keep settings in.
    #[error("cannot find a configuration folder: set APICTL_CONFIG_DIR, XDG_CONFIG_HOME or HOME")]
    NoHome,
}

/// One environment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Env {
    /// The adapter's management API, e.g. `https://localhost:9843`.
    pub adapter: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct EnvFile {
    environments: BTreeMap<String, Env>,
}

/// The settings folder.
#[derive(Debug, Clone)]
pub struct Settings {
    dir: PathBuf,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> StoreError + '_ {
    move |e| StoreError::Io { path: path.display().to_string(), reason: e.to_string() }
}

/// Writes a file readable only by the user, replacing it atomically.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp).map_err(io(&tmp))?;
    f.write_all(bytes).and_then(|()| f.sync_all()).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

impl Settings {
    /// The settings folder from the environment.
    pub fn locate() -> Result<Settings, StoreError> {
        let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        let dir = var("APICTL_CONFIG_DIR")
            .or_else(|| var("XDG_CONFIG_HOME").map(|d| d.join("apictl")))
            .or_else(|| var("HOME").map(|h| h.join(".config").join("apictl")))
            .ok_or(StoreError::NoHome)?;
        Ok(Settings { dir })
    }

    fn env_path(&self) -> PathBuf {
        self.dir.join("environments.json")
    }

    fn token_path(&self, env: &str) -> PathBuf {
        self.dir.join("tokens").join(format!("{env}.token"))
    }

    fn read_envs(&self) -> Result<EnvFile, StoreError> {
        let path = self.env_path();
        match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| StoreError::Io { path: path.display().to_string(), reason: format!("not valid: {e}") }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(EnvFile::default()),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// Every environment.
    pub fn environments(&self) -> Result<BTreeMap<String, Env>, StoreError> {
        Ok(self.read_envs()?.environments)
    }

    /// One environment.
    pub fn environment(&self, name: &str) -> Result<Option<Env>, StoreError> {
        Ok(self.read_envs()?.environments.remove(name))
    }

    /// Adds or replaces an environment.
    pub fn add_environment(&self, name: &str, env: Env) -> Result<(), StoreError> {
        let mut f = self.read_envs()?;
        f.environments.insert(name.to_string(), env);
        let bytes = serde_json::to_vec_pretty(&f).unwrap_or_default();
        write_private(&self.env_path(), &bytes)
    }

    /// Removes an environment and its token. False when unknown.
    pub fn remove_environment(&self, name: &str) -> Result<bool, StoreError> {
        let mut f = self.read_envs()?;
        let known = f.environments.remove(name).is_some();
        let bytes = serde_json::to_vec_pretty(&f).unwrap_or_default();
        write_private(&self.env_path(), &bytes)?;
        self.remove_token(name)?;
        Ok(known)
    }

    /// Keeps the token of `env`.
    pub fn save_token(&self, env: &str, token: &str) -> Result<(), StoreError> {
        write_private(&self.token_path(env), token.as_bytes())
    }

    /// The token of `env`, if logged in.
    pub fn token(&self, env: &str) -> Result<Option<String>, StoreError> {
        let path = self.token_path(env);
        match std::fs::read_to_string(&path) {
            Ok(t) => Ok(Some(t.trim().to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// Forgets the token of `env`.
    pub fn remove_token(&self, env: &str) -> Result<(), StoreError> {
        let path = self.token_path(env);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(&path)(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environments_and_private_tokens() {
        let dir = tempfile::tempdir().expect("dir");
        let s = Settings { dir: dir.path().to_path_buf() };
        assert!(s.environments().expect("empty").is_empty());
        s.add_environment("dev", Env { adapter: "https://localhost:9843".into() }).expect("add");
        assert_eq!(s.environment("dev").expect("read"), Some(Env { adapter: "https://localhost:9843".into() }));
        s.save_token("dev", "t0k3n").expect("token");
        assert_eq!(s.token("dev").expect("token").as_deref(), Some("t0k3n"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(s.token_path("dev")).expect("meta").permissions().mode();
            assert_eq!(mode & 0o077, 0, "token readable only by the user: {mode:o}");
        }
        assert!(s.remove_environment("dev").expect("remove"));
        assert_eq!(s.token("dev").expect("token"), None);
        assert!(!s.remove_environment("dev").expect("again"));
    }
}
