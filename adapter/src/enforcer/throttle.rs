//! The throttling catalogue: API Manager's built-in policies, policies
//! deployed in apictl's export format (over the management API, kept in
//! `[adapter.throttling] filePath`, or as files in
//! `<artifactsDirectory>/throttling-policies`), and blocking conditions
//! (management API, kept in the same file). Pushed to every enforcer as one
//! `ThrottleData` resource (proto/wso2/discovery/throttle.proto).
//!
//! A deployed policy of the same level and name as a built-in one replaces
//! it; removing it brings the built-in one back. The file is rewritten
//! atomically before a change is published, so what an enforcer counts with
//! is always what a restart restores.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gateway_model::policy::{BlockingCondition, KnownTiers, Limit, PolicyKind, ThrottlePolicy, builtin_policies};
use gateway_proto::throttle as pt;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::resources::{ResourceSet, any};

/// Where a deployed policy came from.
pub const SOURCE_API: &str = "api";

/// Why a catalogue change was refused.
#[derive(Debug, thiserror::Error)]
pub enum ThrottleError {
    /// The file cannot be read or written.
    #[error("throttling file {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// A policy of that level and name exists (import without overwrite).
    #[error("{kind} Policy with name {name} already exists")]
    Exists {
        /// Level title.
        kind: &'static str,
        /// Name.
        name: String,
    },
    /// No such policy or condition.
    #[error("{0}")]
    NotFound(String),
    /// The change is not allowed (a built-in policy, one in use, one from the artifacts folder).
    #[error("{0}")]
    Refused(String),
}

/// One deployed policy and where it came from (`api`, or `artifacts:<file>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Deployed {
    source: String,
    policy: ThrottlePolicy,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FileFormat {
    #[serde(default)]
    policies: Vec<ThrottlePolicy>,
    #[serde(default)]
    blocking_conditions: Vec<BlockingCondition>,
}

type PolicyKey = (PolicyKind, String);

fn key(kind: PolicyKind, name: &str) -> PolicyKey {
    (kind, name.to_ascii_lowercase())
}

/// The catalogue's content.
#[derive(Debug, Clone, Default)]
struct Content {
    deployed: BTreeMap<PolicyKey, Deployed>,
    blocking: BTreeMap<String, BlockingCondition>,
}

impl Content {
    /// Built-in policies overlaid with the deployed ones.
    fn policies(&self) -> Vec<ThrottlePolicy> {
        let mut all: BTreeMap<PolicyKey, ThrottlePolicy> =
            builtin_policies().into_iter().map(|p| (key(p.kind, &p.name), p)).collect();
        for (k, d) in &self.deployed {
            all.insert(k.clone(), d.policy.clone());
        }
        all.into_values().collect()
    }

    fn file(&self) -> FileFormat {
        FileFormat {
            policies: self.deployed.values().filter(|d| d.source == SOURCE_API).map(|d| d.policy.clone()).collect(),
            blocking_conditions: self.blocking.values().cloned().collect(),
        }
    }
}

fn limit(l: Option<&Limit>) -> Option<pt::Limit> {
    l.map(|l| pt::Limit { request_count: l.request_count, window_seconds: l.window_seconds() })
}

/// A policy as the enforcer receives it.
pub fn policy_resource(p: &ThrottlePolicy) -> pt::Policy {
    pt::Policy {
        kind: p.kind.as_str().into(),
        name: p.name.clone(),
        description: p.description.clone(),
        default_limit: limit(p.default_limit.as_ref()),
        stop_on_quota_reach: p.stop_on_quota_reach,
        burst: limit(p.burst.as_ref()),
        graphql_max_depth: p.graphql_max_depth,
        graphql_max_complexity: p.graphql_max_complexity,
        conditional_groups: p
            .conditional_groups
            .iter()
            .map(|g| pt::ConditionalGroup {
                description: g.description.clone(),
                limit: limit(g.limit.as_ref()),
                conditions: g
                    .conditions
                    .iter()
                    .map(|c| pt::Condition {
                        kind: c.kind.clone(),
                        invert: c.invert,
                        name: c.name.clone(),
                        value: c.value.clone(),
                        start_ip: c.start_ip.clone(),
                        end_ip: c.end_ip.clone(),
                    })
                    .collect(),
            })
            .collect(),
        key_template: p.key_template.clone(),
        display_name: p.display_name.clone(),
    }
}

fn resource_set(c: &Content) -> ResourceSet {
    let data = pt::ThrottleData {
        policies: c.policies().iter().map(policy_resource).collect(),
        blocking_conditions: c
            .blocking
            .values()
            .map(|b| pt::BlockingCondition {
                id: b.condition_id.clone(),
                kind: b.condition_type.clone(),
                value: b.value.clone(),
                start_ip: b.starting_ip.clone(),
                end_ip: b.ending_ip.clone(),
                invert: b.invert,
                enabled: b.condition_status,
            })
            .collect(),
    };
    ResourceSet::new(vec![any(gateway_proto::THROTTLE_DATA_TYPE_URL, &data)])
}

/// The catalogue, shared by the management API, the artifacts folder and
/// the enforcer streams.
pub struct Catalogue {
    content: Mutex<Content>,
    writes: Mutex<()>,
    file: Option<PathBuf>,
    tx: watch::Sender<Arc<ResourceSet>>,
    known: KnownTiers,
}

impl Default for Catalogue {
    fn default() -> Self {
        Catalogue::new(None, KnownTiers::default())
    }
}

impl Catalogue {
    /// An empty catalogue (built-in policies only) kept in `file`.
    pub fn new(file: Option<&Path>, known: KnownTiers) -> Catalogue {
        let content = Content::default();
        Catalogue {
            tx: watch::Sender::new(Arc::new(resource_set(&content))),
            content: Mutex::new(content),
            writes: Mutex::new(()),
            file: file.map(Path::to_path_buf),
            known,
        }
    }

    /// Opens the catalogue kept in `file` (none: memory only).
    pub fn open(file: Option<&Path>, known: KnownTiers) -> Result<Catalogue, ThrottleError> {
        let c = Catalogue::new(file, known);
        if let Some(path) = file {
            let err = |reason: String| ThrottleError::File { path: path.display().to_string(), reason };
            match std::fs::read(path) {
                Ok(bytes) => {
                    let f: FileFormat =
                        serde_json::from_slice(&bytes).map_err(|e| err(format!("not a throttling file: {e}")))?;
                    let mut content = Content::default();
                    for p in f.policies {
                        content
                            .deployed
                            .insert(key(p.kind, &p.name), Deployed { source: SOURCE_API.into(), policy: p });
                    }
                    content.blocking = f.blocking_conditions.into_iter().map(|b| (b.condition_id.clone(), b)).collect();
                    c.install(content);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(err(e.to_string())),
            }
        }
        Ok(c)
    }

    fn install(&self, content: Content) {
        let set = resource_set(&content);
        self.known.set(content.policies().into_iter().filter(|p| p.kind == PolicyKind::Advanced).map(|p| p.name));
        *self.content.lock() = content;
        self.tx.send_replace(Arc::new(set));
    }

    /// Applies `f` to a copy of the content; when it changed, saves it, then publishes it.
    fn change<R>(&self, f: impl FnOnce(&mut Content) -> Result<R, ThrottleError>) -> Result<R, ThrottleError> {
        let _writer = self.writes.lock();
        let before = self.content.lock().clone();
        let mut next = before.clone();
        let r = f(&mut next)?;
        if next.deployed != before.deployed || next.blocking != before.blocking {
            if next.file() != before.file() {
                self.save(&next.file())?;
            }
            self.install(next);
        }
        Ok(r)
    }

    fn save(&self, f: &FileFormat) -> Result<(), ThrottleError> {
        let Some(path) = &self.file else { return Ok(()) };
        let err = |reason: String| ThrottleError::File { path: path.display().to_string(), reason };
        let bytes = serde_json::to_vec_pretty(f).map_err(|e| err(e.to_string()))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| err(format!("cannot create {}: {e}", dir.display())))?;
        }
        crate::fsutil::write_atomic(path, &bytes).map_err(|e| err(e.to_string()))
    }

    /// Watches the enforcers' resource.
    pub fn subscribe(&self) -> watch::Receiver<Arc<ResourceSet>> {
        self.tx.subscribe()
    }

    /// The advanced policy names projects may use as tiers.
    pub fn known_tiers(&self) -> KnownTiers {
        self.known.clone()
    }

    /// Every policy (built-in and deployed) of `kind` (all when `None`).
    pub fn list(&self, kind: Option<PolicyKind>) -> Vec<ThrottlePolicy> {
        self.content.lock().policies().into_iter().filter(|p| kind.is_none_or(|k| p.kind == k)).collect()
    }

    /// The policy called `name` (any case), of `kind` or, without one, the
    /// first level that has it (apictl's `export policy rate-limiting` without `--type`).
    pub fn get(&self, kind: Option<PolicyKind>, name: &str) -> Option<ThrottlePolicy> {
        self.list(kind).into_iter().find(|p| p.name.eq_ignore_ascii_case(name))
    }

    /// Deploys `policy` from `source`. Without `overwrite`, a policy of the
    /// same level and name (built-in ones included) is a conflict. Returns
    /// whether it replaced one.
    pub fn import(&self, policy: ThrottlePolicy, source: &str, overwrite: bool) -> Result<bool, ThrottleError> {
        self.change(|c| {
            let k = key(policy.kind, &policy.name);
            let existed = c.deployed.contains_key(&k) || c.policies().iter().any(|p| key(p.kind, &p.name) == k);
            if existed && !overwrite {
                return Err(ThrottleError::Exists { kind: policy.kind.title(), name: policy.name.clone() });
            }
            if let Some(d) = c.deployed.get(&k)
                && d.source != source
                && d.source != SOURCE_API
            {
                return Err(ThrottleError::Refused(format!(
                    "{} policy {} comes from the artifacts folder ({}): change the file instead",
                    policy.kind.title(),
                    policy.name,
                    d.source
                )));
            }
            c.deployed
                .insert(k, Deployed { source: source.into(), policy: ThrottlePolicy { builtin: false, ..policy } });
            Ok(existed)
        })
    }

    /// Removes the deployed policy `kind`/`name`, unless `in_use` says an API
    /// names it (a route would lose its limit).
    pub fn remove(
        &self,
        kind: PolicyKind,
        name: &str,
        in_use: impl FnOnce(&str) -> Option<String>,
    ) -> Result<(), ThrottleError> {
        self.change(|c| {
            let k = key(kind, name);
            let Some(d) = c.deployed.get(&k) else {
                let builtin = builtin_policies().iter().any(|p| key(p.kind, &p.name) == k);
                return Err(if builtin {
                    ThrottleError::Refused(format!(
                        "{name} is a built-in {} policy: it cannot be removed",
                        kind.as_str()
                    ))
                } else {
                    ThrottleError::NotFound(format!("no {} policy named {name}", kind.as_str()))
                });
            };
            if d.source != SOURCE_API {
                return Err(ThrottleError::Refused(format!(
                    "{name} comes from the artifacts folder ({}): remove the file instead",
                    d.source
                )));
            }
            let builtin = builtin_policies().iter().any(|p| key(p.kind, &p.name) == k);
            if kind == PolicyKind::Advanced
                && !builtin
                && gateway_config::policies::tier(name).is_none()
                && let Some(api) = in_use(name)
            {
                return Err(ThrottleError::Refused(format!(
                    "advanced policy {name} is the tier of {api}: change or undeploy the API first"
                )));
            }
            c.deployed.remove(&k);
            Ok(())
        })
    }

    /// Makes the policies from the artifacts folder exactly `policies`
    /// (file name, policy). A policy a file names that the management API
    /// deployed too stays the API's (logged by the caller).
    pub fn sync_folder(&self, policies: Vec<(String, ThrottlePolicy)>) -> Result<(), ThrottleError> {
        self.change(|c| {
            c.deployed.retain(|_, d| d.source == SOURCE_API);
            for (file, p) in policies {
                let k = key(p.kind, &p.name);
                c.deployed.entry(k).or_insert_with(|| Deployed { source: format!("artifacts:{file}"), policy: p });
            }
            Ok(())
        })
    }

    /// Every blocking condition.
    pub fn blocking(&self) -> Vec<BlockingCondition> {
        self.content.lock().blocking.values().cloned().collect()
    }

    /// Adds a blocking condition; one with the same type and subject is a conflict.
    pub fn add_blocking(&self, b: BlockingCondition) -> Result<BlockingCondition, ThrottleError> {
        self.change(|c| {
            let same = |o: &BlockingCondition| {
                o.condition_type == b.condition_type
                    && o.value == b.value
                    && o.starting_ip == b.starting_ip
                    && o.ending_ip == b.ending_ip
                    && o.invert == b.invert
            };
            if let Some(o) = c.blocking.values().find(|o| same(o)) {
                return Err(ThrottleError::Refused(format!(
                    "a {} blocking condition for this value exists: {}",
                    b.condition_type, o.condition_id
                )));
            }
            c.blocking.insert(b.condition_id.clone(), b.clone());
            Ok(b)
        })
    }

    /// Turns a blocking condition on or off.
    pub fn set_blocking_status(&self, id: &str, status: bool) -> Result<BlockingCondition, ThrottleError> {
        self.change(|c| {
            let b =
                c.blocking.get_mut(id).ok_or_else(|| ThrottleError::NotFound(format!("no blocking condition {id}")))?;
            b.condition_status = status;
            Ok(b.clone())
        })
    }

    /// Removes a blocking condition.
    pub fn remove_blocking(&self, id: &str) -> Result<(), ThrottleError> {
        self.change(|c| {
            c.blocking
                .remove(id)
                .map(|_| ())
                .ok_or_else(|| ThrottleError::NotFound(format!("no blocking condition {id}")))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(kind: PolicyKind, name: &str, count: u64) -> ThrottlePolicy {
        let mut p = builtin_policies().into_iter().find(|p| p.kind == kind).expect("a built-in of each kind");
        p.name = name.into();
        p.builtin = false;
        p.default_limit = Some(Limit { request_count: count, time_unit: "min".into(), unit_time: 1 });
        p
    }

    #[test]
    fn deployed_policies_and_conditions_survive_a_reopen_and_built_ins_come_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("t.json");
        let c = Catalogue::open(Some(&file), KnownTiers::default()).expect("open");
        assert!(c.import(policy(PolicyKind::Advanced, "Mine", 7), SOURCE_API, false).is_ok());
        assert!(c.known_tiers().contains("mine"), "projects may name it now");
        assert!(matches!(
            c.import(policy(PolicyKind::Subscription, "Gold", 1), SOURCE_API, false),
            Err(ThrottleError::Exists { .. })
        ));
        assert_eq!(c.import(policy(PolicyKind::Subscription, "Gold", 1), SOURCE_API, true).ok(), Some(true));
        let b = gateway_model::policy::parse_blocking_condition(
            br#"{"conditionType":"USER","conditionValue":"bob"}"#,
            "b1".into(),
        )
        .expect("valid");
        c.add_blocking(b.clone()).expect("added");
        assert!(c.add_blocking(BlockingCondition { condition_id: "b2".into(), ..b }).is_err(), "duplicate");

        let again = Catalogue::open(Some(&file), KnownTiers::default()).expect("reopen");
        assert_eq!(
            again.get(Some(PolicyKind::Subscription), "gold").and_then(|p| p.default_limit).map(|l| l.request_count),
            Some(1)
        );
        assert!(again.get(Some(PolicyKind::Advanced), "Mine").is_some());
        assert_eq!(again.blocking().len(), 1);
        again.remove(PolicyKind::Subscription, "Gold", |_| None).expect("removed");
        assert_eq!(
            again.get(Some(PolicyKind::Subscription), "Gold").and_then(|p| p.default_limit).map(|l| l.request_count),
            Some(5000)
        );
        assert!(matches!(again.remove(PolicyKind::Subscription, "Gold", |_| None), Err(ThrottleError::Refused(_))));
        assert!(matches!(
            again.remove(PolicyKind::Advanced, "Mine", |_| Some("PetStore 1.0.0".into())),
            Err(ThrottleError::Refused(m)) if m.contains("PetStore")
        ));
    }

    #[test]
    fn folder_policies_are_replaced_as_a_set_and_not_saved() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("t.json");
        let c = Catalogue::open(Some(&file), KnownTiers::default()).expect("open");
        c.sync_folder(vec![("a.yaml".into(), policy(PolicyKind::Application, "FromFile", 3))]).expect("sync");
        assert!(c.get(Some(PolicyKind::Application), "FromFile").is_some());
        assert!(!file.exists(), "folder policies are not written to the file");
        assert!(matches!(c.remove(PolicyKind::Application, "FromFile", |_| None), Err(ThrottleError::Refused(_))));
        c.sync_folder(vec![]).expect("sync");
        assert!(c.get(Some(PolicyKind::Application), "FromFile").is_none());
    }
}
