//! JSON in and out of the management API.

/// A JSON request body that must be an object (serde would also build a
/// struct from an array).
pub fn json_object<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    match serde_json::from_slice::<serde_json::Value>(body).map_err(|e| e.to_string())? {
        v @ serde_json::Value::Object(_) => serde_json::from_value(v).map_err(|e| e.to_string()),
        _ => Err("expected a JSON object".into()),
    }
}

/// Marks a response whose error body is deliberately not JSON (the empty
/// 401 of `/oauth2/token`, as Choreo Connect answers it).
#[derive(Debug, Clone, Copy)]
pub struct KeepBody;
