//! API projects in `<artifactsDirectory>/apis`: each directory or `.zip`
//! there is a project. All are deployed at start-up; after that the folder is
//! watched (file-system events, plus a periodic rescan as a safety net) and
//! projects added, changed or removed are applied without a restart.
//!
//! A project that fails to parse, or collides with another, is refused with
//! its problems logged and reported; what it deployed before keeps serving.

use std::collections::BTreeMap;
use std::fs;
use std::hash::Hasher;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use deployment::source;
use gateway_model::{ParseOptions, Problem, Problems, ProjectFiles, ZipLimits, parse_project};
use notify::{RecursiveMode, Watcher};
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use crate::hub::Hub;

/// Safety-net rescan interval (events can be missed on some file systems).
const RESCAN_INTERVAL: Duration = Duration::from_secs(10);
/// The next rescan waits at least this many times as long as the last one
/// took, so the safety net costs at most about 1 % of a core however large
/// the folder (10,000 projects take a second or more to fingerprint).
const RESCAN_COST_FACTOR: u32 = 100;
/// Quiet time after a file-system event before the changed entries are
/// read, so a project being copied is read once, when complete. (A project
/// caught half-written is refused and read again on the next event; what
/// it deployed before keeps serving meanwhile.)
const DEBOUNCE: Duration = Duration::from_millis(50);
/// Upper bounds for a project directory.
const MAX_FILES: usize = 5_000;
const MAX_BYTES: u64 = 200 * 1024 * 1024;

/// The state of one entry of the folder, for the status endpoint.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EntryStatus {
    /// `deployed` or `refused`.
    pub state: &'static str,
    /// API name and version, when deployed.
    pub api: Option<String>,
    /// Problems, when refused.
    pub problems: Vec<String>,
}

/// Reports on the folder's entries.
#[derive(Default)]
pub struct Report {
    entries: Mutex<BTreeMap<String, EntryStatus>>,
}

impl Report {
    /// Every entry's state.
    pub fn entries(&self) -> BTreeMap<String, EntryStatus> {
        self.entries.lock().clone()
    }
}

/// A fingerprint of an entry: paths, sizes and modification times.
fn fingerprint(path: &Path) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(meta) = fs::metadata(&p) else { continue };
        h.write(p.as_os_str().as_encoded_bytes());
        h.write_u64(meta.len());
        if let Ok(m) = meta.modified()
            && let Ok(d) = m.duration_since(std::time::UNIX_EPOCH)
        {
            h.write_u128(d.as_nanos());
        }
        if meta.is_dir()
            && let Ok(rd) = fs::read_dir(&p)
        {
            let mut children: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
            children.sort();
            stack.extend(children.into_iter().rev());
        }
    }
    h.finish()
}

/// The entries of the folder: name → fingerprint. Names starting with `.`
/// are skipped, as are files other than `.zip`.
pub fn scan(dir: &Path) -> std::io::Result<BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        let is_dir = fs::metadata(&path).map(|m| m.is_dir()).unwrap_or(false);
        if is_dir || name.ends_with(".zip") {
            out.insert(name, fingerprint(&path));
        }
    }
    Ok(out)
}

fn read_dir_project(root: &Path) -> Result<ProjectFiles, Problems> {
    let bad = |reason: String| Problems::one(Problem::new("", "", reason));
    let mut files = ProjectFiles::new();
    let mut total = 0u64;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let rd = fs::read_dir(&dir).map_err(|e| bad(format!("cannot read {}: {e}", dir.display())))?;
        for entry in rd {
            let entry = entry.map_err(|e| bad(format!("cannot read {}: {e}", dir.display())))?;
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with('.') {
                continue;
            }
            let path = entry.path();
            let meta = fs::metadata(&path).map_err(|e| bad(format!("cannot read {}: {e}", path.display())))?;
            if meta.is_dir() {
                stack.push(path);
                continue;
            }
            total += meta.len();
            if files.len() >= MAX_FILES || total > MAX_BYTES {
                return Err(bad(format!("the project is larger than {MAX_FILES} files or {MAX_BYTES} bytes")));
            }
            let rel = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().replace('\\', "/");
            let content = fs::read(&path).map_err(|e| bad(format!("cannot read {rel}: {e}")))?;
            files.insert(rel, content);
        }
    }
    Ok(files.rooted())
}

/// Reads one entry (a directory or a zip).
pub fn read_entry(path: &Path) -> Result<ProjectFiles, Problems> {
    if fs::metadata(path).map(|m| m.is_dir()).unwrap_or(false) {
        read_dir_project(path)
    } else {
        let bytes = fs::read(path).map_err(|e| Problems::one(Problem::new("", "", format!("cannot read: {e}"))))?;
        ProjectFiles::from_zip(&bytes, ZipLimits::default())
    }
}

/// Reads and parses entries, in parallel on all cores.
fn parse_all(
    dir: &Path,
    names: &[String],
    opts: &ParseOptions,
) -> Vec<(String, Result<gateway_model::Project, Problems>)> {
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).max(1);
    let chunk = names.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = names
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|name| {
                            let parsed = read_entry(&dir.join(name)).and_then(|files| parse_project(&files, opts));
                            (name.clone(), parsed)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect()
    })
}

/// Applies parsed entries in one change. The caller holds the change lock.
fn apply(
    hub: &Hub,
    report: &Report,
    parsed: Vec<(String, Result<gateway_model::Project, Problems>)>,
    removed: &[String],
) {
    let started = std::time::Instant::now();
    let results = hub.update(|state| {
        let mut results = Vec::new();
        for name in removed {
            if state.undeploy(&source::artifacts(name)) {
                info!(project = %name, "API project removed from the artifacts folder: undeployed");
            }
        }
        for (name, parsed) in parsed {
            let source = source::artifacts(&name);
            let outcome = match parsed {
                Ok(project) => {
                    let label = format!("{} {}", project.api.name, project.api.version);
                    let skipped = project.skipped_environments.clone();
                    let deployments = project.deployments.clone();
                    state.deploy(&source, project).map(|()| (label, deployments, skipped))
                }
                Err(p) => Err(p),
            };
            results.push((name, outcome));
        }
        results
    });
    tracing::debug!(applied_ms = started.elapsed().as_secs_f64() * 1000.0, "change applied and published");
    let mut entries = report.entries.lock();
    for name in removed {
        entries.remove(name);
    }
    for (name, outcome) in results {
        match outcome {
            Ok((api, deployments, skipped)) => {
                let targets: Vec<String> =
                    deployments.iter().map(|d| format!("{}@{}", d.environment, d.vhost)).collect();
                info!(project = %name, api = %api, deployments = ?targets, "API project deployed");
                if !skipped.is_empty() {
                    warn!(project = %name, environments = ?skipped, "environments not in [[adapter.vhostMapping]] were skipped");
                }
                entries.insert(name, EntryStatus { state: "deployed", api: Some(api), problems: Vec::new() });
            }
            Err(problems) => {
                let list: Vec<String> = problems.0.iter().map(ToString::to_string).collect();
                error!(project = %name, problems = %problems, "API project refused; what it deployed before keeps serving");
                entries.insert(name, EntryStatus { state: "refused", api: None, problems: list });
            }
        }
    }
}

/// Deploys every project of `dir` (the `apis` folder). Returns the
/// fingerprints. The caller holds the change lock.
pub fn load_all(hub: &Hub, report: &Report, dir: &Path, opts: &ParseOptions) -> BTreeMap<String, u64> {
    let started = std::time::Instant::now();
    let found = match scan(dir) {
        Ok(f) => f,
        Err(e) => {
            warn!(dir = %dir.display(), error = %e, "artifacts folder not readable; starting with no mounted APIs");
            return BTreeMap::new();
        }
    };
    let names: Vec<String> = found.keys().cloned().collect();
    let scanned_in = started.elapsed();
    let parsed = parse_all(dir, &names, opts);
    let parsed_in = started.elapsed() - scanned_in;
    apply(hub, report, parsed, &[]);
    info!(
        dir = %dir.display(),
        projects = names.len(),
        scan_ms = scanned_in.as_millis() as u64,
        parse_ms = parsed_in.as_millis() as u64,
        total_ms = started.elapsed().as_millis() as u64,
        "artifacts loaded"
    );
    found
}

/// The entry (first path component below `dir`) a changed path belongs to.
fn entry_of(dir: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(dir).ok()?;
    let first = rel.components().next()?.as_os_str().to_string_lossy().to_string();
    Some(first)
}

/// What to look at after file-system events.
enum Pending {
    /// Only these entries changed.
    Entries(std::collections::BTreeSet<String>),
    /// Anything may have changed (events were lost, or the periodic check).
    All,
}

impl Pending {
    fn merge(&mut self, other: Pending) {
        match (&mut *self, other) {
            (Pending::All, _) => {}
            (_, Pending::All) => *self = Pending::All,
            (Pending::Entries(a), Pending::Entries(b)) => a.extend(b),
        }
    }
}

/// Watches `dir` and applies changes until the task is dropped. Events name
/// the entries to re-read, so one change costs the same with 10 or 10,000
/// projects; a full rescan runs every few seconds as a safety net.
/// Scans the folder off the async workers and schedules the next safety-net
/// rescan after it (see [`RESCAN_COST_FACTOR`]).
async fn rescan(dir: &Path, next: &mut tokio::time::Instant) -> std::io::Result<BTreeMap<String, u64>> {
    let started = tokio::time::Instant::now();
    let d = dir.to_path_buf();
    let found = tokio::task::spawn_blocking(move || scan(&d))
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(format!("scan task failed: {e}"))));
    let took = started.elapsed();
    *next = tokio::time::Instant::now() + RESCAN_INTERVAL.max(took * RESCAN_COST_FACTOR);
    found
}

pub async fn watch(
    hub: Arc<Hub>,
    report: Arc<Report>,
    dir: PathBuf,
    opts: Arc<ParseOptions>,
    mut known: BTreeMap<String, u64>,
) {
    let (tx, mut rx) = mpsc::channel::<Pending>(1024);
    let watcher = {
        let tx = tx.clone();
        let base = dir.clone();
        notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            let pending = match res {
                Ok(ev) if !ev.need_rescan() => {
                    let names: std::collections::BTreeSet<String> =
                        ev.paths.iter().filter_map(|p| entry_of(&base, p)).collect();
                    if names.is_empty() {
                        return;
                    }
                    Pending::Entries(names)
                }
                _ => Pending::All,
            };
            if tx.try_send(pending).is_err() {
                // The queue is full: ask for a full rescan instead.
                let _ = tx.try_send(Pending::All);
            }
        })
    };
    let _watcher = match watcher {
        Ok(mut w) => match w.watch(&dir, RecursiveMode::Recursive) {
            Ok(()) => Some(w),
            Err(e) => {
                warn!(dir = %dir.display(), error = %e, "cannot watch the artifacts folder; falling back to rescans every {}s or more", RESCAN_INTERVAL.as_secs());
                None
            }
        },
        Err(e) => {
            warn!(error = %e, "no file-system watcher; falling back to periodic rescans");
            None
        }
    };
    let mut next_rescan = tokio::time::Instant::now() + RESCAN_INTERVAL;
    loop {
        let mut pending = tokio::select! {
            got = rx.recv() => match got {
                Some(p) => p,
                None => return,
            },
            _ = tokio::time::sleep_until(next_rescan) => Pending::All,
        };
        // Debounce: collect events until they stop for a moment.
        loop {
            match tokio::time::timeout(DEBOUNCE, rx.recv()).await {
                Ok(Some(p)) => pending.merge(p),
                Ok(None) => return,
                Err(_) => break,
            }
        }
        let (changed, removed) = match pending {
            // File-system work, off the async workers (it would stall the
            // xDS streams and the management API for as long as it takes).
            Pending::All => match rescan(&dir, &mut next_rescan).await {
                Ok(found) => {
                    let changed: Vec<String> =
                        found.iter().filter(|(n, fp)| known.get(*n) != Some(*fp)).map(|(n, _)| n.clone()).collect();
                    let removed: Vec<String> = known.keys().filter(|n| !found.contains_key(*n)).cloned().collect();
                    for (n, fp) in &found {
                        known.insert(n.clone(), *fp);
                    }
                    (changed, removed)
                }
                Err(e) => {
                    warn!(dir = %dir.display(), error = %e, "artifacts folder not readable; keeping what is deployed");
                    continue;
                }
            },
            Pending::Entries(names) => {
                let mut changed = Vec::new();
                let mut removed = Vec::new();
                for name in names {
                    if name.starts_with('.') {
                        continue;
                    }
                    let path = dir.join(&name);
                    let is_entry = fs::metadata(&path).map(|m| m.is_dir()).unwrap_or(false)
                        || (name.ends_with(".zip") && path.exists());
                    if is_entry {
                        let fp = fingerprint(&path);
                        if known.get(&name) != Some(&fp) {
                            known.insert(name.clone(), fp);
                            changed.push(name);
                        }
                    } else if known.contains_key(&name) {
                        removed.push(name);
                    }
                }
                (changed, removed)
            }
        };
        for n in &removed {
            known.remove(n);
        }
        if changed.is_empty() && removed.is_empty() {
            continue;
        }
        let (d, o) = (dir.clone(), Arc::clone(&opts));
        let names = changed.clone();
        let parsed = match tokio::task::spawn_blocking(move || parse_all(&d, &names, &o)).await {
            Ok(p) => p,
            Err(e) => {
                error!(error = %e, "parsing changed projects failed");
                continue;
            }
        };
        // One change at a time (see `Hub::changes`); the translation is CPU
        // work, off the async workers.
        let _change = hub.changes().lock().await;
        let (h, r) = (Arc::clone(&hub), Arc::clone(&report));
        if let Err(e) = tokio::task::spawn_blocking(move || apply(&h, &r, parsed, &removed)).await {
            error!(error = %e, "applying changed projects failed");
        }
    }
}

/// How often `<artifactsDirectory>/throttling-policies` is checked for changes.
const POLICY_POLL: Duration = Duration::from_secs(2);

/// The throttling policies of the artifacts folder
/// (`<artifactsDirectory>/throttling-policies`: files in apictl's export
/// format, `.yaml`, `.yml` or `.json`). A file that cannot be read is
/// refused with its problems logged and reported; the policy it held
/// before stays in force.
#[derive(Default)]
pub struct PolicyFolder {
    /// File name → (its fingerprint, its last good policy).
    last: BTreeMap<String, (u64, Option<gateway_model::policy::ThrottlePolicy>)>,
}

impl PolicyFolder {
    /// Reads the folder and makes its policies the catalogue's folder
    /// policies. Returns whether anything changed on disk.
    pub fn load(&mut self, hub: &Hub, report: &Report, dir: &Path) -> bool {
        let mut seen = BTreeMap::new();
        if let Ok(rd) = fs::read_dir(dir) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                let ext_ok = [".yaml", ".yml", ".json"].iter().any(|x| name.ends_with(x));
                if name.starts_with('.') || !ext_ok || !e.path().is_file() {
                    continue;
                }
                seen.insert(name, fingerprint(&e.path()));
            }
        }
        let unchanged =
            seen.len() == self.last.len() && seen.iter().all(|(n, fp)| self.last.get(n).is_some_and(|(f, _)| f == fp));
        if unchanged {
            return false;
        }
        let mut next = BTreeMap::new();
        for (name, fp) in seen {
            let entry = format!("throttling-policies/{name}");
            let previous = self.last.get(&name).and_then(|(_, p)| p.clone());
            let policy = match fs::read(dir.join(&name)) {
                Ok(bytes) => match gateway_model::policy::parse_policy(&name, &bytes) {
                    Ok(p) => {
                        report.entries.lock().insert(
                            entry,
                            EntryStatus {
                                state: "deployed",
                                api: Some(format!("{} policy {}", p.kind.as_str(), p.name)),
                                problems: vec![],
                            },
                        );
                        Some(p)
                    }
                    Err(problems) => {
                        let list: Vec<String> = problems.0.iter().map(ToString::to_string).collect();
                        warn!(file = %name, problems = %list.join("; "), "throttling policy refused; the previous version of the file stays in force");
                        report
                            .entries
                            .lock()
                            .insert(entry, EntryStatus { state: "refused", api: None, problems: list });
                        previous
                    }
                },
                Err(e) => {
                    warn!(file = %name, error = %e, "throttling policy file not readable");
                    previous
                }
            };
            next.insert(name, (fp, policy));
        }
        for gone in self.last.keys().filter(|n| !next.contains_key(*n)) {
            report.entries.lock().remove(&format!("throttling-policies/{gone}"));
        }
        self.last = next;
        let policies: Vec<(String, gateway_model::policy::ThrottlePolicy)> =
            self.last.iter().filter_map(|(n, (_, p))| p.clone().map(|p| (n.clone(), p))).collect();
        let count = policies.len();
        match hub.throttle.sync_folder(policies) {
            Ok(()) => {
                info!(dir = %dir.display(), policies = count, "throttling policies of the artifacts folder applied")
            }
            Err(e) => error!(error = %e, "applying the artifacts folder's throttling policies failed"),
        }
        true
    }

    /// Checks the folder every couple of seconds until the task is dropped.
    pub async fn watch(mut self, hub: Arc<Hub>, report: Arc<Report>, dir: PathBuf) {
        let mut tick = tokio::time::interval(POLICY_POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let (h, r, d) = (Arc::clone(&hub), Arc::clone(&report), dir.clone());
            match tokio::task::spawn_blocking(move || {
                self.load(&h, &r, &d);
                self
            })
            .await
            {
                Ok(s) => self = s,
                Err(e) => {
                    error!(error = %e, "reading the throttling policies folder failed");
                    return;
                }
            }
        }
    }
}
