//! What is deployed where, and the rules that keep deployments apart: pure
//! data, no locks, no I/O, no Envoy.
//!
//! A *source* is where a project came from: an entry of the artifacts folder
//! ([`source::artifacts`]) or a REST upload, one per vhost
//! ([`source::rest`]). Deploying a source replaces what it deployed before,
//! as one change: either all of it applies or, on a conflict, none of it.
//! Each change returns the [`Effect`]s the translated gateway state must
//! undergo (the adapter applies them to its xDS state).
//!
//! The rules, as Choreo Connect has them:
//! * an API's identity is (organization, vhost, API id): the same API can be
//!   deployed on several vhosts, by separate uploads;
//! * a REST upload without override is refused on a vhost that already has
//!   the API ([`Refusal::Exists`]); with override it replaces it there only;
//! * no two sources serve the same base path (or versionless base path) on a
//!   vhost, and no two sources deploy the same API id on a vhost
//!   ([`Refusal::Conflicts`]);
//! * the REST API never undeploys what the artifacts folder deployed
//!   ([`Refusal::NotOurs`]); an undeploy narrows by vhost and environments.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use gateway_model::{Api, Deployment, Problem, Problems, Project};

/// Source names.
pub mod source {
    use gateway_model::Api;

    /// Prefix of the sources of the artifacts folder.
    pub const ARTIFACTS_PREFIX: &str = "artifacts:";
    /// Prefix of the sources of REST uploads.
    pub const REST_PREFIX: &str = "rest:";

    /// The source of the artifacts folder's entry `entry`.
    pub fn artifacts(entry: &str) -> String {
        format!("{ARTIFACTS_PREFIX}{entry}")
    }

    /// The source an uploaded API is deployed as on `vhost`.
    pub fn rest(api: &Api, vhost: &str) -> String {
        format!("{REST_PREFIX}{}:{}@{vhost}", api.organization, api.id)
    }

    /// Whether `source` is a REST upload.
    pub fn is_rest(source: &str) -> bool {
        source.starts_with(REST_PREFIX)
    }
}

/// An API deployed from a source.
#[derive(Debug, Clone)]
pub struct Deployed {
    /// The API.
    pub api: Arc<Api>,
    /// Where it is deployed.
    pub deployments: Vec<Deployment>,
}

/// A change the translated state must undergo.
#[derive(Debug, Clone)]
pub enum Effect {
    /// Serve `api` on `vhost` of `environment` (adding or replacing it).
    Upsert {
        /// Gateway environment (label).
        environment: String,
        /// Virtual host.
        vhost: String,
        /// The API.
        api: Arc<Api>,
    },
    /// Stop serving API `api_id` on `vhost` of `environment`.
    Remove {
        /// Gateway environment (label).
        environment: String,
        /// Virtual host.
        vhost: String,
        /// The API's id.
        api_id: String,
    },
}

/// Why a REST change is refused (answered with 409 by the management API).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The API is already on these vhosts and the upload did not ask to override.
    #[error("{name} {version} is deployed on vhost {}; deploy with override to replace it", vhosts.join(", "))]
    Exists {
        /// API name.
        name: String,
        /// API version.
        version: String,
        /// The vhosts that have it.
        vhosts: Vec<String>,
    },
    /// Another source owns the API or one of its base paths on a vhost.
    #[error("{}", .0.join("; "))]
    Conflicts(Vec<String>),
    /// The API comes from the artifacts folder.
    #[error("{name} {version} comes from {from}: remove it from the artifacts folder instead")]
    NotOurs {
        /// API name.
        name: String,
        /// API version.
        version: String,
        /// Its source.
        from: String,
    },
}

/// One vhost's part of an uploaded project: its source and deployments there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The vhost.
    pub vhost: String,
    /// The source it is deployed as ([`source::rest`]).
    pub source: String,
    /// Its deployments (one per environment).
    pub deployments: Vec<Deployment>,
}

/// A project's deployments, by vhost (sorted by vhost).
pub fn parts(api: &Api, deployments: &[Deployment]) -> Vec<Part> {
    let mut by_vhost: BTreeMap<&str, Vec<Deployment>> = BTreeMap::new();
    for d in deployments {
        by_vhost.entry(d.vhost.as_str()).or_default().push(d.clone());
    }
    by_vhost
        .into_iter()
        .map(|(vhost, deployments)| Part { vhost: vhost.to_string(), source: source::rest(api, vhost), deployments })
        .collect()
}

/// Which deployments an undeploy takes away: all, or those on a vhost and/or
/// in some environments.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Only on this vhost.
    pub vhost: Option<String>,
    /// Only in these environments.
    pub environments: Option<BTreeSet<String>>,
}

impl Selection {
    fn matches(&self, d: &Deployment) -> bool {
        self.vhost.as_deref().is_none_or(|v| v == d.vhost)
            && self.environments.as_ref().is_none_or(|e| e.contains(&d.environment))
    }
}

/// What an undeploy does to one source.
#[derive(Debug, Clone)]
pub struct Undeploy {
    /// The source.
    pub source: String,
    /// Its API.
    pub api: Arc<Api>,
    /// The deployments that stay (none: the source goes).
    pub kept: Vec<Deployment>,
    /// How many go.
    pub removed: usize,
}

/// One deployed API on one vhost, as `GET /apis` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// API name.
    pub name: String,
    /// API version.
    pub version: String,
    /// API type (`HTTP`, `WS`, ...).
    pub api_type: String,
    /// Base path.
    pub context: String,
    /// The vhost.
    pub vhost: String,
    /// Environments it is deployed in, in deployment order.
    pub environments: Vec<String>,
}

/// Sources and what they deployed, indexed for the collision checks.
#[derive(Debug, Default)]
pub struct Deployments {
    sources: BTreeMap<String, Deployed>,
    /// vhost → routable base path → source.
    paths: BTreeMap<String, BTreeMap<String, String>>,
    /// vhost → API id → source.
    ids: BTreeMap<String, BTreeMap<String, String>>,
}

fn routable_paths(api: &Api) -> BTreeSet<String> {
    let mut s = BTreeSet::new();
    s.insert(api.base_path.clone());
    if let Some(v) = &api.versionless_base_path {
        s.insert(v.clone());
    }
    s
}

impl Deployments {
    /// What `source` deployed.
    pub fn get(&self, source: &str) -> Option<&Deployed> {
        self.sources.get(source)
    }

    /// All sources, by name.
    pub fn sources(&self) -> impl Iterator<Item = (&str, &Deployed)> {
        self.sources.iter().map(|(s, d)| (s.as_str(), d))
    }

    /// Problems deploying `api` at `deployments` would cause with what other
    /// sources deployed (same API, or a base path another API owns, on a vhost).
    fn conflicts(&self, source: &str, api: &Api, deployments: &[Deployment]) -> Vec<Problem> {
        let mut out = Vec::new();
        let vhosts: BTreeSet<&str> = deployments.iter().map(|d| d.vhost.as_str()).collect();
        for vhost in vhosts {
            if let Some(other) = self.ids.get(vhost).and_then(|m| m.get(&api.id)).filter(|o| o.as_str() != source) {
                out.push(Problem::new(
                    "",
                    "",
                    format!("API {} {} is already deployed from {other} on vhost {vhost}", api.name, api.version),
                ));
                continue;
            }
            for p in routable_paths(api) {
                if let Some(other_source) =
                    self.paths.get(vhost).and_then(|m| m.get(&p)).filter(|o| o.as_str() != source)
                {
                    let other = self
                        .sources
                        .get(other_source)
                        .map(|d| format!("{} {}", d.api.name, d.api.version))
                        .unwrap_or_default();
                    out.push(Problem::new(
                        "",
                        "",
                        format!(
                            "An API exists with the same basepath {p} on vhost {vhost}: {other} (from {other_source})"
                        ),
                    ));
                    break;
                }
            }
        }
        out
    }

    fn index(&mut self, source: &str, d: &Deployed) {
        for dep in &d.deployments {
            self.ids.entry(dep.vhost.clone()).or_default().insert(d.api.id.clone(), source.to_string());
            for p in routable_paths(&d.api) {
                self.paths.entry(dep.vhost.clone()).or_default().insert(p, source.to_string());
            }
        }
    }

    fn unindex(&mut self, source: &str, d: &Deployed) {
        for dep in &d.deployments {
            if let Some(m) = self.ids.get_mut(&dep.vhost)
                && m.get(&d.api.id).is_some_and(|s| s == source)
            {
                m.remove(&d.api.id);
            }
            if let Some(m) = self.paths.get_mut(&dep.vhost) {
                for p in routable_paths(&d.api) {
                    if m.get(&p).is_some_and(|s| s == source) {
                        m.remove(&p);
                    }
                }
            }
        }
    }

    /// Whether `api` can be deployed at `deployments` as `source` (nothing changes).
    pub fn check(&self, source: &str, api: &Api, deployments: &[Deployment]) -> Result<(), Problems> {
        let problems = self.conflicts(source, api, deployments);
        if problems.is_empty() { Ok(()) } else { Err(Problems(problems)) }
    }

    /// Deploys `project` as what `source` provides, replacing its previous
    /// deployment. Refused as a whole (nothing changes) when it collides with
    /// another source.
    pub fn deploy(&mut self, source: &str, project: Project) -> Result<Vec<Effect>, Problems> {
        let api = Arc::new(project.api);
        self.check(source, &api, &project.deployments)?;
        let mut effects = Vec::new();
        let new_keys: BTreeSet<(&str, &str)> =
            project.deployments.iter().map(|d| (d.environment.as_str(), d.vhost.as_str())).collect();
        if let Some(old) = self.sources.remove(source) {
            self.unindex(source, &old);
            for d in &old.deployments {
                // Still served at the same place under the same id: the upsert replaces it.
                if !(new_keys.contains(&(d.environment.as_str(), d.vhost.as_str())) && old.api.id == api.id) {
                    effects.push(Effect::Remove {
                        environment: d.environment.clone(),
                        vhost: d.vhost.clone(),
                        api_id: old.api.id.clone(),
                    });
                }
            }
        }
        for d in &project.deployments {
            effects.push(Effect::Upsert {
                environment: d.environment.clone(),
                vhost: d.vhost.clone(),
                api: Arc::clone(&api),
            });
        }
        let deployed = Deployed { api, deployments: project.deployments };
        self.index(source, &deployed);
        self.sources.insert(source.to_string(), deployed);
        Ok(effects)
    }

    /// Removes everything `source` deployed. `None` when it had nothing.
    pub fn undeploy(&mut self, source: &str) -> Option<Vec<Effect>> {
        let old = self.sources.remove(source)?;
        self.unindex(source, &old);
        Some(
            old.deployments
                .iter()
                .map(|d| Effect::Remove {
                    environment: d.environment.clone(),
                    vhost: d.vhost.clone(),
                    api_id: old.api.id.clone(),
                })
                .collect(),
        )
    }

    /// Whether an uploaded `api` can be deployed as `parts` (nothing changes):
    /// without `replace`, on no vhost that already has it (Choreo Connect
    /// checks existence per vhost); and never over another API's base path or
    /// over an API of the artifacts folder.
    pub fn check_upload(&self, api: &Api, parts: &[Part], replace: bool) -> Result<(), Refusal> {
        let existing: Vec<String> =
            parts.iter().filter(|p| self.sources.contains_key(&p.source)).map(|p| p.vhost.clone()).collect();
        if !existing.is_empty() && !replace {
            return Err(Refusal::Exists { name: api.name.clone(), version: api.version.clone(), vhosts: existing });
        }
        let problems: Vec<String> = parts
            .iter()
            .filter_map(|p| self.check(&p.source, api, &p.deployments).err())
            .flat_map(|p| p.0.into_iter().map(|x| x.to_string()))
            .collect();
        if problems.is_empty() { Ok(()) } else { Err(Refusal::Conflicts(problems)) }
    }

    /// What undeploying API `name` `version` at `selection` does, per source
    /// (nothing changes). Empty when nothing matches.
    pub fn plan_undeploy(&self, name: &str, version: &str, selection: &Selection) -> Result<Vec<Undeploy>, Refusal> {
        let mut plan = Vec::new();
        for (source, d) in self.sources().filter(|(_, d)| d.api.name == name && d.api.version == version) {
            let (gone, kept): (Vec<Deployment>, Vec<Deployment>) =
                d.deployments.iter().cloned().partition(|p| selection.matches(p));
            if gone.is_empty() {
                continue;
            }
            if !source::is_rest(source) {
                return Err(Refusal::NotOurs {
                    name: name.to_string(),
                    version: version.to_string(),
                    from: source.to_string(),
                });
            }
            plan.push(Undeploy { source: source.to_string(), api: Arc::clone(&d.api), kept, removed: gone.len() });
        }
        Ok(plan)
    }

    /// Carries out a plan of [`Deployments::plan_undeploy`].
    pub fn undeploy_planned(&mut self, plan: Vec<Undeploy>) -> Result<Vec<Effect>, Problems> {
        let mut effects = Vec::new();
        for u in plan {
            if u.kept.is_empty() {
                effects.extend(self.undeploy(&u.source).unwrap_or_default());
            } else {
                let project = Project { api: (*u.api).clone(), deployments: u.kept, skipped_environments: Vec::new() };
                effects.extend(self.deploy(&u.source, project)?);
            }
        }
        Ok(effects)
    }

    /// Every deployed API per vhost, sorted by name, version and vhost.
    pub fn listing(&self) -> Vec<Listed> {
        let mut by_key: BTreeMap<(&str, &str, &str), Listed> = BTreeMap::new();
        for d in self.sources.values() {
            for dep in &d.deployments {
                let item = by_key.entry((&d.api.name, &d.api.version, &dep.vhost)).or_insert_with(|| Listed {
                    name: d.api.name.clone(),
                    version: d.api.version.clone(),
                    api_type: d.api.api_type.to_string(),
                    context: d.api.base_path.clone(),
                    vhost: dep.vhost.clone(),
                    environments: Vec::new(),
                });
                if !item.environments.contains(&dep.environment) {
                    item.environments.push(dep.environment.clone());
                }
            }
        }
        by_key.into_values().collect()
    }

    /// Where API `name` `version` is deployed, over every source.
    pub fn placements(&self, name: &str, version: &str) -> Vec<Deployment> {
        self.sources
            .values()
            .filter(|d| d.api.name == name && d.api.version == version)
            .flat_map(|d| d.deployments.iter().cloned())
            .collect()
    }
}

#[cfg(test)]
mod tests;
