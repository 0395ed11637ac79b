//! Problems found in a project: each names the file, the field and the reason.

use std::fmt;

/// One problem in an API project.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// The file inside the project, e.g. `Definitions/swagger.yaml`. Empty
    /// for problems of the project as a whole.
    pub file: String,
    /// The field, as a dotted path inside the file, e.g.
    /// `paths./pets/{id}.get.x-wso2-disable-security`. Empty for the whole file.
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

impl Problem {
    /// A problem at `file` / `field`.
    pub fn new(file: impl Into<String>, field: impl Into<String>, reason: impl Into<String>) -> Problem {
        Problem { file: file.into(), field: field.into(), reason: reason.into() }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.file.is_empty(), self.field.is_empty()) {
            (false, false) => write!(f, "{}: {}: {}", self.file, self.field, self.reason),
            (false, true) => write!(f, "{}: {}", self.file, self.reason),
            (true, false) => write!(f, "{}: {}", self.field, self.reason),
            (true, true) => f.write_str(&self.reason),
        }
    }
}

/// Every problem found in a project. A project with any problem is refused
/// as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    /// A single problem.
    pub fn one(p: Problem) -> Problems {
        Problems(vec![p])
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// Collects problems while a file is read.
pub(crate) struct Ctx<'a> {
    pub file: &'a str,
    pub problems: &'a mut Vec<Problem>,
    /// Advanced policies deployed in the catalogue, which tiers may name.
    pub tiers: Option<&'a crate::policy::KnownTiers>,
}

impl<'a> Ctx<'a> {
    pub fn new(file: &'a str, problems: &'a mut Vec<Problem>) -> Ctx<'a> {
        Ctx { file, problems, tiers: None }
    }

    /// The same collector, accepting the deployed policies' names as tiers.
    pub fn with_tiers(self, tiers: &'a crate::policy::KnownTiers) -> Ctx<'a> {
        Ctx { tiers: Some(tiers), ..self }
    }

    pub fn err(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.problems.push(Problem::new(self.file, field, reason));
    }

    /// The same collector for another file.
    pub fn for_file<'b>(&'b mut self, file: &'b str) -> Ctx<'b> {
        Ctx { file, problems: self.problems, tiers: self.tiers }
    }
}

/// Joins a dotted field path.
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}
