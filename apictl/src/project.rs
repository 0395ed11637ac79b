//! API projects on disk: a new project from an OpenAPI file, zipping a
//! project folder for upload, and validating offline with the adapter's own
//! parser (the same rules, the same `file: field: reason` messages).

use std::io::Write as _;
use std::path::Path;

use gateway_model::{ParseOptions, ProjectFiles, ZipLimits, parse_project};
use serde_norway::Value;

/// Why a project could not be created, read or packed.
#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    /// A file operation failed.
    #[error("{path}: {reason}")]
    Io {
        /// The file or folder.
        path: String,
        /// The error.
        reason: String,
    },
    /// The project has problems.
    #[error("{0} problem(s) in the project")]
    Invalid(usize, Vec<String>),
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> ProjectError + '_ {
    move |e| ProjectError::Io { path: path.display().to_string(), reason: e.to_string() }
}

/// Creates `dir` as a project for the API the OpenAPI file `oas` describes
/// (name and version from its `info`), as WSO2's `apictl init` does:
/// `api.yaml`, `Definitions/swagger.yaml` and an empty `Docs/`.
pub fn init(dir: &Path, oas: &Path, context: Option<&str>) -> Result<(String, String), ProjectError> {
    if dir.exists() {
        return Err(ProjectError::Io { path: dir.display().to_string(), reason: "already exists".into() });
    }
    let text = std::fs::read_to_string(oas).map_err(io(oas))?;
    let doc: Value = serde_norway::from_str(&text).map_err(|e| ProjectError::Io {
        path: oas.display().to_string(),
        reason: format!("not a YAML or JSON OpenAPI document: {e}"),
    })?;
    let info = |k: &str| doc.get("info").and_then(|i| i.get(k)).and_then(Value::as_str).map(str::to_string);
    let bad = |reason: &str| ProjectError::Io { path: oas.display().to_string(), reason: reason.into() };
    let title = info("title").ok_or_else(|| bad("info.title is missing"))?;
    let version = info("version").ok_or_else(|| bad("info.version is missing"))?;
    let name: String = title.chars().filter(|c| c.is_ascii_alphanumeric() || "_-.".contains(*c)).collect();
    if name.is_empty() {
        return Err(bad("info.title has no usable character for an API name"));
    }
    let context = context.map(str::to_string).unwrap_or_else(|| format!("/{}", name.to_lowercase()));
    let endpoint = doc
        .get("servers")
        .and_then(|s| s.get(0))
        .and_then(|s| s.get("url"))
        .and_then(Value::as_str)
        .unwrap_or("http://localhost:8080");
    let api_yaml = format!(
        "type: api\nversion: v4.2.0\ndata:\n  name: {name}\n  version: \"{version}\"\n  context: {context}\n  type: HTTP\n  \
         lifeCycleStatus: CREATED\n  endpointConfig:\n    endpoint_type: http\n    production_endpoints:\n      url: {endpoint}\n"
    );
    // OpenAPI 3 `servers` would set the base path from the server URL's path
    // (Choreo Connect's rule); their URL moved to api.yaml as the endpoint,
    // so the API is served at the context chosen here.
    let mut doc = doc;
    let definition = match doc.as_mapping_mut() {
        Some(m) if m.contains_key("openapi") && m.contains_key("servers") => {
            m.remove("servers");
            serde_norway::to_string(&doc).map_err(|e| bad(&e.to_string()))?
        }
        _ => text,
    };
    std::fs::create_dir_all(dir.join("Definitions")).map_err(io(dir))?;
    std::fs::create_dir_all(dir.join("Docs")).map_err(io(dir))?;
    std::fs::write(dir.join("api.yaml"), api_yaml).map_err(io(dir))?;
    std::fs::write(dir.join("Definitions/swagger.yaml"), definition).map_err(io(dir))?;
    Ok((name, version))
}

/// The project at `path` as zip bytes: a `.zip` as it is, a folder zipped.
pub fn zip_bytes(path: &Path) -> Result<Vec<u8>, ProjectError> {
    let meta = std::fs::metadata(path).map_err(io(path))?;
    if !meta.is_dir() {
        return std::fs::read(path).map_err(io(path));
    }
    let root = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| "project".into());
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    let mut stack = vec![path.to_path_buf()];
    let mut files = Vec::new();
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).map_err(io(&dir))? {
            let entry = entry.map_err(io(&dir))?;
            let p = entry.path();
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with('.') {
                continue;
            }
            if std::fs::metadata(&p).map_err(io(&p))?.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files.sort();
    for f in files {
        let rel = f.strip_prefix(path).unwrap_or(&f).to_string_lossy().replace('\\', "/");
        let zip_err =
            |e: zip::result::ZipError| ProjectError::Io { path: f.display().to_string(), reason: e.to_string() };
        w.start_file(format!("{root}/{rel}"), opts).map_err(zip_err)?;
        let bytes = std::fs::read(&f).map_err(io(&f))?;
        w.write_all(&bytes).map_err(io(&f))?;
    }
    let out = w.finish().map_err(|e| ProjectError::Io { path: path.display().to_string(), reason: e.to_string() })?;
    Ok(out.into_inner())
}

/// Validates the project at `path` offline: `(name, version)` or every problem.
pub fn validate(path: &Path) -> Result<(String, String), ProjectError> {
    let zip = zip_bytes(path)?;
    let problems = |p: gateway_model::Problems| {
        let list: Vec<String> = p.0.iter().map(ToString::to_string).collect();
        ProjectError::Invalid(list.len(), list)
    };
    let files = ProjectFiles::from_zip(&zip, ZipLimits::default()).map_err(problems)?;
    let project = parse_project(&files, &ParseOptions::default()).map_err(problems)?;
    Ok((project.api.name, project.api.version))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OAS: &str = "openapi: 3.0.1\ninfo: {title: Pet Store, version: 1.0.0}\nservers: [{url: 'http://pets.internal:8080'}]\npaths:\n  /pets:\n    get: {}\n";

    #[test]
    fn init_then_validate_and_zip() {
        let dir = tempfile::tempdir().expect("dir");
        let oas = dir.path().join("oas.yaml");
        std::fs::write(&oas, OAS).expect("oas");
        let project = dir.path().join("PetStore");
        assert_eq!(init(&project, &oas, None).expect("init"), ("PetStore".to_string(), "1.0.0".to_string()));
        assert!(init(&project, &oas, None).is_err(), "existing folder refused");
        assert_eq!(validate(&project).expect("valid"), ("PetStore".to_string(), "1.0.0".to_string()));
        let zip = zip_bytes(&project).expect("zip");
        let files = ProjectFiles::from_zip(&zip, ZipLimits::default()).expect("readable zip");
        let api = parse_project(&files, &ParseOptions::default()).expect("parses").api;
        assert_eq!((api.name.as_str(), api.base_path.as_str()), ("PetStore", "/petstore/1.0.0"));
        let endpoint = &api.production.expect("production endpoints").endpoints[0];
        assert_eq!((endpoint.host.as_str(), endpoint.port), ("pets.internal", 8080));
    }

    #[test]
    fn validate_lists_every_problem() {
        let dir = tempfile::tempdir().expect("dir");
        let p = dir.path().join("Bad");
        std::fs::create_dir_all(p.join("Definitions")).expect("dir");
        std::fs::write(p.join("api.yaml"), "type: api\ndata:\n  name: Bad\n  version: '1'\n  context: /bad\n  endpointConfig: {endpoint_type: http, production_endpoints: {url: 'nope'}}\n").expect("api");
        std::fs::write(p.join("Definitions/swagger.yaml"), "openapi: 3.0.1\ninfo: {title: Bad, version: '1'}\npaths:\n  /a:\n    get: {x-wso2-disable-security: maybe}\n").expect("oas");
        match validate(&p) {
            Err(ProjectError::Invalid(n, list)) => {
                assert_eq!(n, list.len());
                assert!(list.iter().any(|m| m.contains("x-wso2-disable-security")), "{list:?}");
            }
            other => panic!("expected problems, got {other:?}"),
        }
    }
}
