//! HTTP answers as the tests read them, and raw HTTP/1.1 over TCP for
//! requests no client would send.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::wait::patience;

/// An HTTP response, read fully.
#[derive(Debug, Clone)]
pub struct Resp {
    /// Status code.
    pub status: u16,
    /// Headers (lower-case names; repeated headers joined with `, `).
    pub headers: BTreeMap<String, String>,
    /// Body text.
    pub body: String,
}

impl Resp {
    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// A header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// For backend echoes: the path the backend saw.
    pub fn upstream_path(&self) -> String {
        self.json()["path"].as_str().unwrap_or_default().to_string()
    }
}

/// Sends `request` bytes over plain TCP to `addr` and parses the HTTP/1.1
/// response (content-length, chunked, or until the connection closes).
pub async fn raw_http(addr: &str, request: &[u8]) -> Result<Resp, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.map_err(|e| format!("{addr}: {e}"))?;
    s.write_all(request).await.map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    tokio::time::timeout(patience(), s.read_to_end(&mut buf))
        .await
        .map_err(|_| "no complete answer in time".to_string())?
        .map_err(|e| e.to_string())?;
    parse_http_response(&buf)
}

fn parse_http_response(buf: &[u8]) -> Result<Resp, String> {
    let text = String::from_utf8_lossy(buf);
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| format!("no header end in {text:?}"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            headers
                .entry(k.trim().to_ascii_lowercase())
                .and_modify(|e| {
                    e.push_str(", ");
                    e.push_str(v.trim());
                })
                .or_insert_with(|| v.trim().to_string());
        }
    }
    let body = if headers.get("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, after)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).map_err(|e| format!("bad chunk size {size:?}: {e}"))?;
            if n == 0 {
                break;
            }
            out.push_str(after.get(..n).ok_or("short chunk")?);
            rest = after.get(n + 2..).unwrap_or("");
        }
        out
    } else {
        body.to_string()
    };
    Ok(Resp { status, headers, body })
}
