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

/// Sources and what they deployed.
#[derive(Debug, Default)]
pub struct Registry {
    sources: BTreeMap<String, Deployed>,
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

    /// Problems deploying `api` at `deployments` would cause with what other sources deployed.
    fn conflicts(&self, source: &str, api: &Api, deployments: &[Deployment]) -> Vec<Problem> {
        let mut out = Vec::new();
        let paths = routable_paths(api);
        for (other_source, other) in self.sources.iter().filter(|(s, _)| s.as_str() != source) {
            let shared_vhosts: BTreeSet<&str> = deployments
                .iter()
                .filter(|d| other.deployments.iter().any(|o| o.vhost == d.vhost))
                .map(|d| d.vhost.as_str())
                .collect();
            if shared_vhosts.is_empty() {
                continue;
            }
            if other.api.id == api.id {
                out.push(Problem::new(
                    "",
                    "",
                    format!(
                        "API {} {} is already deployed from {other_source} on vhost {}",
                        api.name,
                        api.version,
                        shared_vhosts.into_iter().collect::<Vec<_>>().join(", ")
                    ),
                ));
                continue;
            }
            let other_paths = routable_paths(&other.api);
            if let Some(p) = paths.iter().find(|p| other_paths.contains(*p)) {
                out.push(Problem::new(
                    "",
                    "",
                    format!(
                        "An API exists with the same basepath {p} on vhost {}: {} {} (from {other_source})",
                        shared_vhosts.into_iter().collect::<Vec<_>>().join(", "),
                        other.api.name,
                        other.api.version
                    ),
                ));
            }
        }
        out
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
        if let Some(old) = self.registry.sources.get(source) {
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
        self.registry.sources.insert(source.to_string(), Deployed { api, deployments: project.deployments });
        Ok(())
    }

    /// Removes everything `source` deployed. Returns false when it had nothing.
    pub fn undeploy(&mut self, source: &str) -> bool {
        let Some(old) = self.registry.sources.remove(source) else { return false };
        for d in &old.deployments {
            self.gateway.remove(&d.environment, &ApiKey { vhost: d.vhost.clone(), id: old.api.id.clone() });
        }
        true
    }
}
