//! Projects deployed over the REST API, kept on disk so that they survive a
//! restart, even `kill -9` right after `POST /apis` answered (Choreo
//! Connect loses them).
//!
//! Files, flat in `[adapter.store] location`:
//! * `<hash of the content>.zip`: an uploaded project, as received;
//! * `<hash of the source>.json`: one deployed API: its source, its zip and
//!   where it is deployed (environments and vhosts, which can shrink with
//!   `DELETE /apis?vhost=`).
//!
//! Both are written with [`write_atomic`]; the `.json` is written last and
//! is the commit point. Why files and not an embedded database: one file per
//! API is the unit of change, a crash leaves the old or the new file, a
//! corrupt file spoils only its API, and an operator can read, back up or
//! remove them with ordinary tools. On start, zips no `.json` refers to and
//! temporary files are removed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_128;

use crate::fsutil::{remove_durably, write_atomic};

/// Why the store could not read or write.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file operation failed.
    #[error("API store {path}: {reason}")]
    Io {
        /// The file or folder.
        path: String,
        /// The error.
        reason: String,
    },
}

/// Where an API is deployed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Placement {
    /// Gateway environment (label).
    pub environment: String,
    /// Virtual host.
    pub vhost: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    source: String,
    zip: String,
    deployments: Vec<Placement>,
}

/// A stored deployment.
#[derive(Debug)]
pub struct Stored {
    /// The source it was deployed as.
    pub source: String,
    /// The project zip.
    pub zip: Vec<u8>,
    /// Where it is deployed.
    pub deployments: Vec<Placement>,
}

/// An entry that could not be read back: reported, skipped, left on disk.
#[derive(Debug, Clone, Serialize)]
pub struct Corrupt {
    /// The file.
    pub file: String,
    /// What is wrong.
    pub reason: String,
}

/// The store; `None` folder keeps nothing (in-memory deploys only).
#[derive(Debug, Clone)]
pub struct Store {
    dir: Option<PathBuf>,
}

fn hex(v: u128) -> String {
    format!("{v:032x}")
}

impl Store {
    /// Opens (creating) the folder; `None` stores nothing.
    pub fn open(dir: Option<&Path>) -> Result<Store, StoreError> {
        if let Some(d) = dir {
            std::fs::create_dir_all(d)
                .map_err(|e| StoreError::Io { path: d.display().to_string(), reason: e.to_string() })?;
        }
        Ok(Store { dir: dir.map(Path::to_path_buf) })
    }

    fn io(path: &Path) -> impl Fn(std::io::Error) -> StoreError + '_ {
        move |e| StoreError::Io { path: path.display().to_string(), reason: e.to_string() }
    }

    fn entry_path(dir: &Path, source: &str) -> PathBuf {
        dir.join(format!("{}.json", hex(xxh3_128(source.as_bytes()))))
    }

    fn read_entry(path: &Path) -> Result<Entry, String> {
        let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
        serde_json::from_slice(&bytes).map_err(|e| format!("not a deployment record: {e}"))
    }

    /// Records that `source` is deployed from `zip` at `deployments`,
    /// replacing what it was before. Durable when it returns.
    pub fn put(&self, source: &str, zip: &[u8], deployments: &[Placement]) -> Result<(), StoreError> {
        let Some(dir) = &self.dir else { return Ok(()) };
        let zip_name = format!("{}.zip", hex(xxh3_128(zip)));
        let zip_path = dir.join(&zip_name);
        if !zip_path.exists() {
            write_atomic(&zip_path, zip).map_err(Self::io(&zip_path))?;
        }
        self.put_entry(dir, source, zip_name, deployments)
    }

    /// Changes where `source` is deployed, keeping its zip. False when it is not stored.
    pub fn set_deployments(&self, source: &str, deployments: &[Placement]) -> Result<bool, StoreError> {
        let Some(dir) = &self.dir else { return Ok(true) };
        let path = Self::entry_path(dir, source);
        let Ok(old) = Self::read_entry(&path) else { return Ok(false) };
        self.put_entry(dir, source, old.zip, deployments)?;
        Ok(true)
    }

    fn put_entry(&self, dir: &Path, source: &str, zip: String, deployments: &[Placement]) -> Result<(), StoreError> {
        let path = Self::entry_path(dir, source);
        let old = Self::read_entry(&path).ok();
        let entry = Entry { source: source.to_string(), zip: zip.clone(), deployments: deployments.to_vec() };
        let bytes = serde_json::to_vec_pretty(&entry)
            .map_err(|e| StoreError::Io { path: path.display().to_string(), reason: e.to_string() })?;
        write_atomic(&path, &bytes).map_err(Self::io(&path))?;
        // The previous zip of this source, if no longer used (a zip's content
        // names one API, so no other source refers to it).
        if let Some(old) = old
            && old.zip != zip
        {
            let p = dir.join(&old.zip);
            remove_durably(&p).map_err(Self::io(&p))?;
        }
        Ok(())
    }

    /// Forgets `source`. False when it was not stored.
    pub fn remove(&self, source: &str) -> Result<bool, StoreError> {
        let Some(dir) = &self.dir else { return Ok(true) };
        let path = Self::entry_path(dir, source);
        let Ok(old) = Self::read_entry(&path) else { return Ok(false) };
        remove_durably(&path).map_err(Self::io(&path))?;
        let p = dir.join(&old.zip);
        remove_durably(&p).map_err(Self::io(&p))?;
        Ok(true)
    }

    /// Everything stored, and the entries that could not be read. Removes
    /// unreferenced zips and temporary files.
    pub fn load(&self) -> Result<(Vec<Stored>, Vec<Corrupt>), StoreError> {
        let Some(dir) = &self.dir else { return Ok((Vec::new(), Vec::new())) };
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map_err(Self::io(dir))?
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().to_string()))
            .collect();
        names.sort();
        let mut stored = Vec::new();
        let mut corrupt = Vec::new();
        let mut referenced = BTreeSet::new();
        for name in names.iter().filter(|n| n.ends_with(".json") && !n.starts_with('.')) {
            let path = dir.join(name);
            let entry = match Self::read_entry(&path) {
                Ok(e) => e,
                Err(reason) => {
                    corrupt.push(Corrupt { file: path.display().to_string(), reason });
                    continue;
                }
            };
            referenced.insert(entry.zip.clone());
            match std::fs::read(dir.join(&entry.zip)) {
                Ok(zip) if format!("{}.zip", hex(xxh3_128(&zip))) == entry.zip => {
                    stored.push(Stored { source: entry.source, zip, deployments: entry.deployments });
                }
                Ok(_) => corrupt.push(Corrupt {
                    file: dir.join(&entry.zip).display().to_string(),
                    reason: "content does not match its name (damaged)".into(),
                }),
                Err(e) => corrupt.push(Corrupt {
                    file: path.display().to_string(),
                    reason: format!("its project {} cannot be read: {e}", entry.zip),
                }),
            }
        }
        for name in &names {
            // With a damaged record, keep every zip: one may be its project.
            let unreferenced_zip = name.ends_with(".zip") && !referenced.contains(name) && corrupt.is_empty();
            let temporary = name.starts_with('.') && name.ends_with(".tmp");
            if unreferenced_zip || temporary {
                let p = dir.join(name);
                remove_durably(&p).map_err(Self::io(&p))?;
            }
        }
        Ok((stored, corrupt))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(env: &str, vhost: &str) -> Placement {
        Placement { environment: env.into(), vhost: vhost.into() }
    }

    #[test]
    fn put_replace_shrink_remove_and_reload() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::open(Some(dir.path())).expect("open");
        store.put("rest:a", b"zip-1", &[at("Default", "localhost"), at("Default", "us.example.com")]).expect("put");
        store.put("rest:b", b"zip-b", &[at("Default", "localhost")]).expect("put b");
        // Replaced: the old zip goes.
        store.put("rest:a", b"zip-2", &[at("Default", "localhost"), at("Default", "us.example.com")]).expect("again");
        assert!(store.set_deployments("rest:a", &[at("Default", "us.example.com")]).expect("shrink"));
        assert!(!store.set_deployments("rest:none", &[]).expect("unknown"));
        let (stored, corrupt) = store.load().expect("load");
        assert!(corrupt.is_empty(), "{corrupt:?}");
        assert_eq!(stored.len(), 2);
        let a = stored.iter().find(|s| s.source == "rest:a").expect("a");
        assert_eq!(
            (a.zip.as_slice(), a.deployments.as_slice()),
            (b"zip-2".as_slice(), &[at("Default", "us.example.com")][..])
        );
        let files = std::fs::read_dir(dir.path()).expect("ls").count();
        assert_eq!(files, 4, "two records and two zips, no leftovers");
        assert!(store.remove("rest:b").expect("remove"));
        assert!(!store.remove("rest:b").expect("again"));
        assert_eq!(store.load().expect("load").0.len(), 1);
    }

    #[test]
    fn a_damaged_entry_is_reported_and_the_others_load() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::open(Some(dir.path())).expect("open");
        store.put("rest:a", b"zip-a", &[at("Default", "localhost")]).expect("put");
        store.put("rest:b", b"zip-b", &[at("Default", "localhost")]).expect("put");
        store.put("rest:c", b"zip-c", &[at("Default", "localhost")]).expect("put");
        // b's record is garbage; c's zip is damaged; a leftover temp file and an orphan zip.
        std::fs::write(Store::entry_path(dir.path(), "rest:b"), b"{not json").expect("damage");
        std::fs::write(dir.path().join(format!("{}.zip", hex(xxh3_128(b"zip-c")))), b"zip-X").expect("damage");
        std::fs::write(dir.path().join(".x.json.tmp"), b"half").expect("tmp");
        std::fs::write(dir.path().join("0000.zip"), b"orphan").expect("orphan");
        let (stored, corrupt) = store.load().expect("load");
        assert_eq!(stored.iter().map(|s| s.source.as_str()).collect::<Vec<_>>(), ["rest:a"]);
        assert_eq!(corrupt.len(), 2, "{corrupt:?}");
        assert!(corrupt.iter().any(|c| c.reason.contains("not a deployment record")));
        assert!(corrupt.iter().any(|c| c.reason.contains("damaged")));
        assert!(!dir.path().join(".x.json.tmp").exists(), "temporary files go");
        assert!(dir.path().join("0000.zip").exists(), "zips stay while a record is damaged");
        // Once the damaged records are gone, unreferenced zips are cleaned up.
        std::fs::remove_file(Store::entry_path(dir.path(), "rest:b")).expect("rm");
        store.remove("rest:c").expect("rm c");
        let (stored, corrupt) = store.load().expect("load");
        assert_eq!((stored.len(), corrupt.len()), (1, 0));
        assert!(!dir.path().join("0000.zip").exists());
    }

    #[test]
    fn without_a_folder_nothing_is_kept() {
        let store = Store::open(None).expect("open");
        store.put("rest:a", b"zip", &[]).expect("put");
        assert!(store.load().expect("load").0.is_empty());
    }
}
