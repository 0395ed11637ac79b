//! The files of a project, in memory, whatever they came from (a directory
//! read by the caller, or a zip).

use std::collections::BTreeMap;
use std::io::{Cursor, Read};

use crate::problem::{Problem, Problems};

/// Limits applied when a zip is opened, against zip bombs and path tricks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZipLimits {
    /// Maximum number of entries.
    pub max_entries: usize,
    /// Maximum total uncompressed size in bytes.
    pub max_total_bytes: u64,
    /// Maximum uncompressed/compressed ratio of one entry.
    pub max_ratio: u64,
}

impl Default for ZipLimits {
    fn default() -> Self {
        ZipLimits { max_entries: 5_000, max_total_bytes: 200 * 1024 * 1024, max_ratio: 200 }
    }
}

/// A project's files by path relative to the project root (`/`-separated).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProjectFiles {
    files: BTreeMap<String, Vec<u8>>,
}

impl ProjectFiles {
    /// An empty project.
    pub fn new() -> ProjectFiles {
        ProjectFiles::default()
    }

    /// Adds a file (the path is normalised to `/` separators).
    pub fn insert(&mut self, path: impl Into<String>, content: impl Into<Vec<u8>>) {
        let path: String = path.into().replace('\\', "/");
        self.files.insert(path.trim_start_matches("./").to_string(), content.into());
    }

    /// A file's content.
    pub fn get(&self, path: &str) -> Option<&[u8]> {
        self.files.get(path).map(Vec::as_slice)
    }

    /// All paths, sorted.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(String::as_str)
    }

    /// Files whose path starts with `dir` (e.g. `Endpoint-certificates/`).
    pub fn under<'a>(&'a self, dir: &'a str) -> impl Iterator<Item = (&'a str, &'a [u8])> + 'a {
        self.files.iter().filter(move |(p, _)| p.starts_with(dir)).map(|(p, c)| (p.as_str(), c.as_slice()))
    }

    /// Number of files.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// True when there are no files.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Re-roots the project at the folder holding `api.yaml`/`api.json`, as
    /// apictl zips a project inside its own folder. Files outside that folder
    /// are dropped.
    pub fn rooted(self) -> ProjectFiles {
        let root = self
            .files
            .keys()
            .filter(|p| {
                let name = p.rsplit('/').next().unwrap_or(p);
                name == "api.yaml" || name == "api.json"
            })
            .filter(|p| !p.split('/').any(|seg| seg == "Definitions"))
            .map(|p| match p.rfind('/') {
                Some(i) => p[..=i].to_string(),
                None => String::new(),
            })
            .min_by_key(|prefix| prefix.matches('/').count());
        match root {
            Some(prefix) if !prefix.is_empty() => ProjectFiles {
                files: self
                    .files
                    .into_iter()
                    .filter_map(|(p, c)| p.strip_prefix(&prefix).map(|rest| (rest.to_string(), c)))
                    .collect(),
            },
            _ => self,
        }
    }

    /// Reads a zip held in memory, refusing anything over `limits`, entry
    /// names with `..` or an absolute path, symbolic links and names that are
    /// not UTF-8.
    pub fn from_zip(bytes: &[u8], limits: ZipLimits) -> Result<ProjectFiles, Problems> {
        let bad = |reason: String| Problems::one(Problem::new("", "", reason));
        let mut archive =
            zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| bad(format!("not a valid zip file: {e}")))?;
        if archive.len() > limits.max_entries {
            return Err(bad(format!(
                "the zip has {} entries, more than the limit of {}",
                archive.len(),
                limits.max_entries
            )));
        }
        let mut out = ProjectFiles::new();
        let mut total: u64 = 0;
        for i in 0..archive.len() {
            let mut entry = archive.by_index(i).map_err(|e| bad(format!("unreadable zip entry {i}: {e}")))?;
            let raw_name = entry.name_raw().to_vec();
            let name =
                String::from_utf8(raw_name).map_err(|_| bad(format!("zip entry {i} has a name that is not UTF-8")))?;
            if entry.is_symlink() {
                return Err(bad(format!("zip entry {name:?} is a symbolic link, which is not allowed")));
            }
            if name.starts_with('/') || name.contains('\\') || name.split('/').any(|s| s == "..") || name.contains(':')
            {
                return Err(bad(format!("zip entry {name:?} has an unsafe path (absolute, `..` or a drive)")));
            }
            if entry.is_dir() {
                continue;
            }
            let size = entry.size();
            let compressed = entry.compressed_size().max(1);
            if size / compressed > limits.max_ratio && size > 1024 * 1024 {
                return Err(bad(format!(
                    "zip entry {name:?} expands {}x, more than the limit of {}x",
                    size / compressed,
                    limits.max_ratio
                )));
            }
            total = total.saturating_add(size);
            if total > limits.max_total_bytes {
                return Err(bad(format!("the zip expands to more than the limit of {} bytes", limits.max_total_bytes)));
            }
            // Never trust the declared size: read at most one byte more than it.
            let mut content = Vec::with_capacity(size.min(16 * 1024 * 1024) as usize);
            (&mut entry)
                .take(size + 1)
                .read_to_end(&mut content)
                .map_err(|e| bad(format!("zip entry {name:?} could not be read: {e}")))?;
            if content.len() as u64 > size {
                return Err(bad(format!("zip entry {name:?} is larger than its declared size")));
            }
            out.insert(name, content);
        }
        Ok(out.rooted())
    }
}
