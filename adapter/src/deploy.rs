//! Which project source deployed which API where, and the checks that keep
//! deployments from colliding.
//!
//! A *source* is where a project came from (an entry of the artifacts folder,
//! later a REST upload). Deploying a source replaces what it deployed before,
//! as one change: either all of it applies or, on a conflict, none of it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use gateway_model::{Api, Deployment, Problem, Problems, Project};
use gateway_xds::state::ApiKey;

use crate::hub::State;

/// An API deployed from a source.
#[derive(Debug, Clone)]
pub struct Deployed {
    /// The API.
    pub api: Arc<Api>,
    /// Where it is deployed.
    pub deployments: Vec<Deployment>,
}

/// Sources and what they deployed, indexed for the collision checks.
#[derive(Debug, Default)]
pub struct Registry {
    sources: BTreeMap<String, Deployed>,
    /// vhost → routable base path → source.
    paths: BTreeMap<String, BTreeMap<String, String>>,
    /// vhost → API id → source.
    ids: BTreeMap<String, BTreeMap<String, String>>,
}

impl Registry {
    /// What `source` deployed.
    pub fn get(&self, source: &str) -> Option<&Deployed> {
        self.sources.get(source)
    }

    /// All sources.
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
}

fn routable_paths(api: &Api) -> BTreeSet<String> {
    let mut s = BTreeSet::new();
    s.insert(api.base_path.clone());
    if let Some(v) = &api.versionless_base_path {
        s.insert(v.clone());
    }
    s
}

impl State {
    /// Whether `api` can be deployed at `deployments` as `source` (nothing changes).
    pub fn check_deploy(&self, source: &str, api: &Api, deployments: &[Deployment]) -> Result<(), Problems> {
        let problems = self.registry.conflicts(source, api, deployments);
        if problems.is_empty() { Ok(()) } else { Err(Problems(problems)) }
    }

    /// Deploys `project` as what `source` provides, replacing its previous
    /// deployment. Refused as a whole when it collides with another source.
    pub fn deploy(&mut self, source: &str, project: Project) -> Result<(), Problems> {
        let api = Arc::new(project.api);
        let problems = self.registry.conflicts(source, &api, &project.deployments);
        if !problems.is_empty() {
            return Err(Problems(problems));
        }
        let new_keys: BTreeSet<(String, ApiKey)> = project
            .deployments
            .iter()
            .map(|d| (d.environment.clone(), ApiKey { vhost: d.vhost.clone(), id: api.id.clone() }))
            .collect();
        if let Some(old) = self.registry.sources.remove(source) {
            self.registry.unindex(source, &old);
            for d in &old.deployments {
                let key = (d.environment.clone(), ApiKey { vhost: d.vhost.clone(), id: old.api.id.clone() });
                if !new_keys.contains(&key) {
                    self.gateway.remove(&key.0, &key.1);
                }
            }
        }
        for d in &project.deployments {
            self.gateway.upsert(&d.environment, &d.vhost, Arc::clone(&api));
        }
        let deployed = Deployed { api, deployments: project.deployments };
        self.registry.index(source, &deployed);
        self.registry.sources.insert(source.to_string(), deployed);
        Ok(())
    }

    /// Removes everything `source` deployed. Returns false when it had nothing.
    pub fn undeploy(&mut self, source: &str) -> bool {
        let Some(old) = self.registry.sources.remove(source) else { return false };
        self.registry.unindex(source, &old);
        for d in &old.deployments {
            self.gateway.remove(&d.environment, &ApiKey { vhost: d.vhost.clone(), id: old.api.id.clone() });
        }
        true
    }
}
