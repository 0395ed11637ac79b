//! Projects deployed over the REST API, kept on disk so that they survive a
//! restart, even `kill -9` right after `POST /apis` answered (Choreo
//! Connect loses them).
//!
//! Files, flat in `[adapter.store] location`:
//! * `<hash of the content>.zip`: an uploaded project, as received; one zip
//!   can back several records (a project deployed to several vhosts);
//! * `<hash of the source>.json`: one deployed API on one vhost: its source,
//!   its zip and its environments there (which can shrink with
//!   `DELETE /apis?environments=`).
//!
//! Both are written with [`write_atomic`]; a record is written after its zip
//! and is the commit point. One change may touch several records (a deploy
//! to two vhosts): [`Store::apply`] writes them in turn and, if one fails,
//! puts the earlier ones back, so the change is all or nothing on disk too.
//! (A crash between two records of one change leaves the first written:
//! the client got no answer, each vhost holds a whole deployment, and the
//! retry completes it.) Why files and not an embedded database: one file per
//! API and vhost is the unit of change, a crash leaves the old or the new
//! file, a corrupt file spoils only its API, and an operator can read, back
//! up or remove them with ordinary tools. On start, zips no record refers to
//! and temporary files are removed.
//!
//! Every method does blocking file I/O (fsync): call it off the async workers.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

/// One change to the store.
#[derive(Debug, Clone)]
pub enum Change {
    /// `source` is deployed from `zip` at `deployments` (replacing what it was).
    Put {
        /// The source.
        source: String,
        /// The project, as uploaded.
        zip: Arc<[u8]>,
        /// Where.
        deployments: Vec<Placement>,
    },
    /// `source` now deploys at `deployments`, from the zip it has.
    Move {
        /// The source.
        source: String,
        /// Where.
        deployments: Vec<Placement>,
    },
    /// `source` is gone.
    Remove {
        /// The source.
        source: String,
    },
}

/// The store; `None` folder keeps nothing (in-memory deploys only).
#[derive(Debug)]
pub struct Store {
    dir: Option<PathBuf>,
    /// The records on disk, by source.
    records: Mutex<BTreeMap<String, Entry>>,
}

fn hex(v: u128) -> String {
    format!("{v:032x}")
}

fn zip_name(zip: &[u8]) -> String {
    format!("{}.zip", hex(xxh3_128(zip)))
}

impl Store {
    /// Opens (creating) the folder; `None` stores nothing. Nothing is read
    /// until [`Store::load`].
    pub fn open(dir: Option<&Path>) -> Result<Store, StoreError> {
        if let Some(d) = dir {
            std::fs::create_dir_all(d)
                .map_err(|e| StoreError::Io { path: d.display().to_string(), reason: e.to_string() })?;
        }
        Ok(Store { dir: dir.map(Path::to_path_buf), records: Mutex::new(BTreeMap::new()) })
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

    fn write_entry(dir: &Path, entry: &Entry) -> Result<(), StoreError> {
        let path = Self::entry_path(dir, &entry.source);
        let bytes = serde_json::to_vec_pretty(entry)
            .map_err(|e| StoreError::Io { path: path.display().to_string(), reason: e.to_string() })?;
        write_atomic(&path, &bytes).map_err(Self::io(&path))
    }

    /// Sets the record of `source` to `entry` (none: removed), on disk and in the index.
    fn set(&self, dir: &Path, source: &str, entry: Option<Entry>) -> Result<(), StoreError> {
        match &entry {
            Some(e) => Self::write_entry(dir, e)?,
            None => {
                let path = Self::entry_path(dir, source);
                remove_durably(&path).map_err(Self::io(&path))?;
            }
        }
        let mut records = self.records.lock();
        match entry {
            Some(e) => records.insert(source.to_string(), e),
            None => records.remove(source),
        };
        Ok(())
    }

    /// Applies `changes` in order, durably. If one fails, those before it
    /// are undone and the error is returned: the store is as it was.
    pub fn apply(&self, changes: &[Change]) -> Result<(), StoreError> {
        let Some(dir) = &self.dir else { return Ok(()) };
        gateway_runtime::delay_point("store-write");
        let mut undo: Vec<(String, Option<Entry>)> = Vec::new();
        let mut written_zips = Vec::new();
        let result = (|| {
            for change in changes {
                let (source, next) = match change {
                    Change::Put { source, zip, deployments } => {
                        let name = zip_name(zip);
                        let path = dir.join(&name);
                        if !path.exists() {
                            write_atomic(&path, zip).map_err(Self::io(&path))?;
                            written_zips.push(path);
                        }
                        (source, Some(Entry { source: source.clone(), zip: name, deployments: deployments.clone() }))
                    }
                    Change::Move { source, deployments } => {
                        let Some(old) = self.records.lock().get(source).cloned() else { continue };
                        (source, Some(Entry { deployments: deployments.clone(), ..old }))
                    }
                    Change::Remove { source } => (source, None),
                };
                let previous = self.records.lock().get(source.as_str()).cloned();
                self.set(dir, source, next)?;
                undo.push((source.clone(), previous));
            }
            Ok(())
        })();
        let replaced: BTreeSet<String> = undo.iter().filter_map(|(_, p)| p.as_ref().map(|e| e.zip.clone())).collect();
        if result.is_err() {
            for (source, previous) in undo.into_iter().rev() {
                if let Err(e) = self.set(dir, &source, previous) {
                    tracing::error!(error = %e, %source, "could not undo a store change");
                }
            }
            for z in written_zips {
                let _ = remove_durably(&z);
            }
            return result;
        }
        self.remove_unused_zips(dir, replaced)
    }

    /// Removes those of `candidates` (zips) that no record refers to.
    fn remove_unused_zips(&self, dir: &Path, candidates: BTreeSet<String>) -> Result<(), StoreError> {
        let used: BTreeSet<String> = self.records.lock().values().map(|e| e.zip.clone()).collect();
        for n in candidates.difference(&used) {
            let p = dir.join(n);
            remove_durably(&p).map_err(Self::io(&p))?;
        }
        Ok(())
    }

    /// The environments and vhosts `source` is recorded at.
    pub fn placements(&self, source: &str) -> Option<Vec<Placement>> {
        self.records.lock().get(source).map(|e| e.deployments.clone())
    }

    /// Everything stored, and the entries that could not be read. Removes
    /// unreferenced zips and temporary files (unless a record is damaged:
    /// then every zip stays, one may be its project).
    pub fn load(&self) -> Result<(Vec<Stored>, Vec<Corrupt>), StoreError> {
        let Some(dir) = &self.dir else { return Ok((Vec::new(), Vec::new())) };
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map_err(Self::io(dir))?
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().to_string()))
            .collect();
        names.sort();
        let mut stored = Vec::new();
        let mut corrupt = Vec::new();
        let mut records = BTreeMap::new();
        for name in names.iter().filter(|n| n.ends_with(".json") && !n.starts_with('.')) {
            let path = dir.join(name);
            let entry = match Self::read_entry(&path) {
                Ok(e) => e,
                Err(reason) => {
                    corrupt.push(Corrupt { file: path.display().to_string(), reason });
                    continue;
                }
            };
            match std::fs::read(dir.join(&entry.zip)) {
                Ok(zip) if zip_name(&zip) == entry.zip => {
                    stored.push(Stored { source: entry.source.clone(), zip, deployments: entry.deployments.clone() });
                    records.insert(entry.source.clone(), entry);
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
        *self.records.lock() = records;
        for name in names.iter().filter(|n| n.starts_with('.') && n.ends_with(".tmp")) {
            let p = dir.join(name);
            remove_durably(&p).map_err(Self::io(&p))?;
        }
        if corrupt.is_empty() {
            let zips = names.iter().filter(|n| n.ends_with(".zip") && !n.starts_with('.')).cloned().collect();
            self.remove_unused_zips(dir, zips)?;
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

    fn put(source: &str, zip: &[u8], at: &[Placement]) -> Change {
        Change::Put { source: source.into(), zip: zip.into(), deployments: at.to_vec() }
    }

    fn files(dir: &Path) -> BTreeSet<String> {
        std::fs::read_dir(dir)
            .expect("ls")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into())
            .collect()
    }

    #[test]
    fn put_replace_move_remove_and_reload() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::open(Some(dir.path())).expect("open");
        // One project on two vhosts: two records, one zip.
        store
            .apply(&[
                put("rest:a@localhost", b"zip-1", &[at("Default", "localhost")]),
                put("rest:a@us", b"zip-1", &[at("Default", "us")]),
            ])
            .expect("put");
        store.apply(&[put("rest:b@localhost", b"zip-b", &[at("Default", "localhost")])]).expect("put b");
        assert_eq!(files(dir.path()).len(), 5, "three records and two zips");
        // Replaced on one vhost: the zip stays while the other vhost uses it.
        store.apply(&[put("rest:a@localhost", b"zip-2", &[at("Default", "localhost")])]).expect("again");
        assert_eq!(files(dir.path()).len(), 6, "zip-1 still backs rest:a@us");
        store.apply(&[Change::Move { source: "rest:a@us".into(), deployments: vec![at("Prod", "us")] }]).expect("move");
        assert_eq!(store.placements("rest:a@us"), Some(vec![at("Prod", "us")]));
        store.apply(&[Change::Remove { source: "rest:a@us".into() }]).expect("remove");
        assert_eq!(files(dir.path()).len(), 4, "zip-1 went with its last record");
        let reopened = Store::open(Some(dir.path())).expect("reopen");
        let (stored, corrupt) = reopened.load().expect("load");
        assert!(corrupt.is_empty(), "{corrupt:?}");
        let got: Vec<(&str, &[u8])> = stored.iter().map(|s| (s.source.as_str(), s.zip.as_slice())).collect();
        assert_eq!(got.len(), 2);
        assert!(
            got.contains(&("rest:a@localhost", b"zip-2".as_slice()))
                && got.contains(&("rest:b@localhost", b"zip-b".as_slice()))
        );
    }

    #[test]
    fn a_change_that_fails_half_way_leaves_the_store_as_it_was() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::open(Some(dir.path())).expect("open");
        store.apply(&[put("rest:a@x", b"zip-old", &[at("Default", "x")])]).expect("put");
        let before: BTreeMap<String, Vec<u8>> = files(dir.path())
            .into_iter()
            .map(|f| (f.clone(), std::fs::read(dir.path().join(&f)).expect("read")))
            .collect();
        // The second record cannot be written: a directory stands where its file goes.
        std::fs::create_dir(Store::entry_path(dir.path(), "rest:a@y")).expect("obstacle");
        let err = store
            .apply(&[
                put("rest:a@x", b"zip-new", &[at("Default", "x")]),
                put("rest:a@y", b"zip-new", &[at("Default", "y")]),
            ])
            .expect_err("second write fails");
        assert!(err.to_string().contains("API store"), "{err}");
        std::fs::remove_dir(Store::entry_path(dir.path(), "rest:a@y")).expect("obstacle away");
        let after: BTreeMap<String, Vec<u8>> = files(dir.path())
            .into_iter()
            .map(|f| (f.clone(), std::fs::read(dir.path().join(&f)).expect("read")))
            .collect();
        assert_eq!(before, after, "the first record is back and the new zip gone");
        assert_eq!(store.placements("rest:a@x"), Some(vec![at("Default", "x")]));
    }

    #[test]
    fn a_damaged_entry_is_reported_and_the_others_load() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::open(Some(dir.path())).expect("open");
        for (s, z) in [("rest:a", b"zip-a"), ("rest:b", b"zip-b"), ("rest:c", b"zip-c")] {
            store.apply(&[put(s, z, &[at("Default", "localhost")])]).expect("put");
        }
        // b's record is garbage; c's zip is damaged; a leftover temp file and an orphan zip.
        std::fs::write(Store::entry_path(dir.path(), "rest:b"), b"{not json").expect("damage");
        std::fs::write(dir.path().join(zip_name(b"zip-c")), b"zip-X").expect("damage");
        std::fs::write(dir.path().join(".x.json.tmp"), b"half").expect("tmp");
        std::fs::write(dir.path().join("0000.zip"), b"orphan").expect("orphan");
        let store = Store::open(Some(dir.path())).expect("reopen");
        let (stored, corrupt) = store.load().expect("load");
        assert_eq!(stored.iter().map(|s| s.source.as_str()).collect::<Vec<_>>(), ["rest:a"]);
        assert_eq!(corrupt.len(), 2, "{corrupt:?}");
        assert!(corrupt.iter().any(|c| c.reason.contains("not a deployment record")));
        assert!(corrupt.iter().any(|c| c.reason.contains("damaged")));
        assert!(!dir.path().join(".x.json.tmp").exists(), "temporary files go");
        assert!(dir.path().join("0000.zip").exists(), "zips stay while a record is damaged");
        // Once the damaged records are gone, unreferenced zips are cleaned up.
        std::fs::remove_file(Store::entry_path(dir.path(), "rest:b")).expect("rm");
        std::fs::remove_file(Store::entry_path(dir.path(), "rest:c")).expect("rm c");
        let (stored, corrupt) = Store::open(Some(dir.path())).expect("reopen").load().expect("load");
        assert_eq!((stored.len(), corrupt.len()), (1, 0));
        assert!(!dir.path().join("0000.zip").exists());
    }

    #[test]
    fn without_a_folder_nothing_is_kept() {
        let store = Store::open(None).expect("open");
        store.apply(&[put("rest:a", b"zip", &[])]).expect("put");
        assert!(store.load().expect("load").0.is_empty());
    }
}
