//! The HTTP client of remote OPA policies (`enforcer_core::mediation::OpaTransport`):
//! `POST <serverURL>/<policy>/<rule>` with the input document, bounded in
//! time (the connect timeout of the policy, 10 s in all) and in size (the
//! answer is read up to 1 MiB).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use enforcer_core::mediation::OpaTransport;
use futures::FutureExt;
use futures::future::BoxFuture;

/// Longest a decision may take, connection included.
const DEADLINE: Duration = Duration::from_secs(10);
/// Largest answer read.
const MAX_BODY: usize = 1 << 20;

/// One reqwest client per connect timeout (policies rarely differ).
#[derive(Debug, Default)]
pub struct OpaHttp {
    clients: parking_lot::Mutex<HashMap<Duration, reqwest::Client>>,
}

impl OpaHttp {
    fn client(&self, connect_timeout: Duration) -> Result<reqwest::Client, String> {
        let mut clients = self.clients.lock();
        if let Some(c) = clients.get(&connect_timeout) {
            return Ok(c.clone());
        }
        let c = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .timeout(DEADLINE)
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        clients.insert(connect_timeout, c.clone());
        Ok(c)
    }
}

impl OpaTransport for OpaHttp {
    fn post(
        &self,
        url: &str,
        token: &str,
        body: Vec<u8>,
        connect_timeout: Duration,
    ) -> BoxFuture<'static, Result<(u16, Vec<u8>), String>> {
        let client = match self.client(connect_timeout) {
            Ok(c) => c,
            Err(e) => return std::future::ready(Err(e)).boxed(),
        };
        let mut request = client.post(url).header("content-type", "application/json").body(body);
        if !token.is_empty() {
            request = request.bearer_auth(token);
        }
        async move {
            let mut resp = request.send().await.map_err(|e| e.to_string())?;
            let status = resp.status().as_u16();
            let mut out = Vec::new();
            while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
                if out.len() + chunk.len() > MAX_BODY {
                    return Err(format!("the OPA answer is larger than {MAX_BODY} bytes"));
                }
                out.extend_from_slice(&chunk);
            }
            Ok((status, out))
        }
        .boxed()
    }
}

/// Installs the client for every remote OPA policy.
pub fn install() {
    let _ = enforcer_core::mediation::OPA_TRANSPORT.set(Arc::new(OpaHttp::default()));
}
