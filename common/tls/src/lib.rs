//! TLS for the gateway's own HTTPS servers (adapter management API, enforcer
//! admin API): server configuration from PEM files and an axum server loop
//! with limits against idle and slow clients ([`ServeLimits`]).

use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

/// Why a key pair could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file is missing or unreadable, or not PEM.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// rustls refused the pair.
    #[error("certificate {cert} and key {key} do not form a usable pair: {reason}")]
    Pair {
        /// Certificate file.
        cert: String,
        /// Key file.
        key: String,
        /// rustls' reason.
        reason: String,
    },
}

/// A TLS server configuration for the certificate chain and key at these paths.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let file_err = |p: &Path, reason: String| TlsError::File { path: p.display().to_string(), reason };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| file_err(cert, format!("cannot read certificates: {e}")))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_err(cert, format!("not a PEM certificate chain: {e}")))?;
    if certs.is_empty() {
        return Err(file_err(cert, "no certificate in the file".into()));
    }
    let key_der =
        PrivateKeyDer::from_pem_file(key).map_err(|e| file_err(key, format!("no usable private key: {e}")))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Pair {
            cert: cert.display().to_string(),
            key: key.display().to_string(),
            reason: e.to_string(),
        })?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| TlsError::Pair {
            cert: cert.display().to_string(),
            key: key.display().to_string(),
            reason: e.to_string(),
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// What one HTTPS server allows its clients, so that idle or slow sockets
/// cannot exhaust it (or the process's file descriptors, which its other
/// servers need too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeLimits {
    /// Connections served at once; more wait in the listen backlog until
    /// one ends.
    pub max_connections: usize,
    /// Time for a client to complete the TLS handshake.
    pub handshake_timeout: Duration,
    /// Time for a client to send a request's headers (HTTP/1.1), counted
    /// from the first byte, and for an idle keep-alive connection to start
    /// the next request.
    pub header_read_timeout: Duration,
    /// A connection with no bytes read or written for this long is closed
    /// (after the request in progress, if any).
    pub idle_timeout: Duration,
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits {
            max_connections: 1024,
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// The process's soft limit of open files (Linux: `/proc/self/limits`).
fn open_files_limit() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..].split_whitespace().next()?.parse().ok()
}

/// An I/O stream that records when it last moved bytes.
struct Activity<S> {
    inner: S,
    last: Arc<AtomicU64>,
    epoch: Instant,
}

impl<S> Activity<S> {
    fn touch(&self) {
        self.last.store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Activity<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.touch();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Activity<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.touch();
        }
        r
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Serves `app` over TLS on `listener` within `limits`, until the task is dropped.
pub async fn serve_tls(
    name: &'static str,
    listener: TcpListener,
    acceptor: TlsAcceptor,
    app: axum::Router,
    limits: ServeLimits,
) {
    let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    // A quarter of the process's file descriptors at most: the other
    // servers of the process (gRPC, xDS) must still be able to accept.
    let fd_share = open_files_limit().map(|n| (n / 4).max(1));
    let max_connections = limits.max_connections.min(fd_share.unwrap_or(usize::MAX)).max(1);
    if max_connections < limits.max_connections {
        warn!(
            name,
            configured = limits.max_connections,
            max_connections,
            "connection limit lowered to a quarter of the open-files limit"
        );
    }
    info!(address = %addr, name, max_connections, "HTTPS server listening");
    let slots = Arc::new(Semaphore::new(max_connections));
    loop {
        // A slot first: at the limit, new connections wait in the backlog.
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else { return };
        let (tcp, peer): (_, SocketAddr) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors and the like: do not spin.
                warn!(name, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let tls = match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp)).await {
                Ok(Ok(t)) => t,
                Ok(Err(e)) => {
                    debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let epoch = Instant::now();
            let last = Arc::new(AtomicU64::new(0));
            let io = Activity { inner: tls, last: Arc::clone(&last), epoch };
            let service = hyper_util::service::TowerToHyperService::new(app);
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
            builder
                .http2()
                .timer(TokioTimer::new())
                .keep_alive_interval(Some(Duration::from_secs(30)))
                .keep_alive_timeout(Duration::from_secs(10));
            let conn = builder.serve_connection(TokioIo::new(io), service);
            tokio::pin!(conn);
            let idle_for = || epoch.elapsed().saturating_sub(Duration::from_millis(last.load(Ordering::Relaxed)));
            let mut closing = false;
            loop {
                tokio::select! {
                    r = conn.as_mut() => {
                        if let Err(e) = r {
                            debug!(%peer, error = %e, "connection ended with an error");
                        }
                        return;
                    }
                    () = tokio::time::sleep(limits.idle_timeout.saturating_sub(idle_for())) => {
                        if idle_for() < limits.idle_timeout {
                            continue;
                        }
                        if closing {
                            debug!(%peer, "idle connection dropped");
                            return;
                        }
                        // Ends after the request in progress, if any; dropped
                        // if it stays idle for another idle_timeout.
                        debug!(%peer, "idle connection closed");
                        conn.as_mut().graceful_shutdown();
                        closing = true;
                        last.store(epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
                    }
                }
            }
        });
    }
}

/// The PEM certificates at `path`: a file, or every `.pem`/`.crt` file of a
/// directory (Choreo Connect's truststore layout), concatenated.
pub fn pem_bundle(path: &Path) -> Result<String, TlsError> {
    let err = |reason: String| TlsError::File { path: path.display().to_string(), reason };
    let mut files = Vec::new();
    if path.is_dir() {
        for entry in std::fs::read_dir(path).map_err(|e| err(e.to_string()))? {
            let p = entry.map_err(|e| err(e.to_string()))?.path();
            if p.extension().is_some_and(|x| x == "pem" || x == "crt") {
                files.push(p);
            }
        }
        files.sort();
    } else {
        files.push(path.to_path_buf());
    }
    let mut out = String::new();
    for f in &files {
        let text = std::fs::read_to_string(f).map_err(|e| err(format!("{}: {e}", f.display())))?;
        let n = CertificateDer::pem_slice_iter(text.as_bytes()).filter(|c| c.is_ok()).count();
        if n == 0 {
            return Err(err(format!("{}: no PEM certificate", f.display())));
        }
        out.push_str(&text);
        if !text.ends_with('\n') {
            out.push('\n');
        }
    }
    if out.is_empty() {
        return Err(err("no certificate files".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    struct Server {
        addr: SocketAddr,
        client: tokio_rustls::TlsConnector,
        _dir: tempfile::TempDir,
        task: tokio::task::JoinHandle<()>,
    }

    impl Drop for Server {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    async fn server(limits: ServeLimits) -> Server {
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        let dir = tempfile::tempdir().expect("dir");
        let (cp, kp) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&cp, cert.pem()).expect("cert");
        std::fs::write(&kp, key.serialize_pem()).expect("key");
        let config = server_config(&cp, &kp).expect("config");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let task = tokio::spawn(serve_tls("test", listener, TlsAcceptor::from(config), app, limits));
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.der().clone()).expect("root");
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Server { addr, client: tokio_rustls::TlsConnector::from(Arc::new(client)), _dir: dir, task }
    }

    /// Reads until the peer closes; how long that took (bounded by `limit`).
    async fn closed_within<S: AsyncRead + Unpin>(s: &mut S, limit: Duration) -> Option<Duration> {
        let start = Instant::now();
        let mut buf = [0u8; 1024];
        let r = tokio::time::timeout(limit, async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
        r.ok().map(|()| start.elapsed())
    }

    async fn get(s: &Server) -> Result<String, String> {
        let tcp = TcpStream::connect(s.addr).await.map_err(|e| e.to_string())?;
        let name = rustls_pki_types::ServerName::try_from("localhost").map_err(|e| e.to_string())?;
        let mut tls = s.client.connect(name, tcp).await.map_err(|e| e.to_string())?;
        tls.write_all(b"GET / HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
            .await
            .map_err(|e| e.to_string())?;
        let mut out = String::new();
        tls.read_to_string(&mut out).await.map_err(|e| e.to_string())?;
        Ok(out)
    }

    const QUICK: ServeLimits = ServeLimits {
        max_connections: 2,
        handshake_timeout: Duration::from_millis(300),
        header_read_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(600),
    };

    #[test]
    fn the_open_files_limit_is_read() {
        if std::path::Path::new("/proc/self/limits").exists() {
            assert!(open_files_limit().is_some_and(|n| n > 0));
        }
    }

    #[tokio::test]
    async fn a_client_that_never_handshakes_is_disconnected() {
        let s = server(QUICK).await;
        let mut idle = TcpStream::connect(s.addr).await.expect("connect");
        let took = closed_within(&mut idle, Duration::from_secs(10)).await;
        assert!(took.is_some(), "an idle socket must not be kept open");
    }

    #[tokio::test]
    async fn slow_headers_and_idle_keep_alive_are_disconnected() {
        let s = server(QUICK).await;
        let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
        // Headers trickled in, never finished.
        let tcp = TcpStream::connect(s.addr).await.expect("connect");
        let mut tls = s.client.connect(name.clone(), tcp).await.expect("handshake");
        tls.write_all(b"GET / HTTP/1.1\r\nhost: local").await.expect("write");
        assert!(closed_within(&mut tls, Duration::from_secs(10)).await.is_some(), "slow headers");
        // One request answered, then nothing.
        let tcp = TcpStream::connect(s.addr).await.expect("connect");
        let mut tls = s.client.connect(name, tcp).await.expect("handshake");
        tls.write_all(b"GET / HTTP/1.1\r\nhost: localhost\r\n\r\n").await.expect("write");
        let mut buf = [0u8; 512];
        let n = tls.read(&mut buf).await.expect("response");
        assert!(
            String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&buf[..n])
        );
        assert!(closed_within(&mut tls, Duration::from_secs(10)).await.is_some(), "idle keep-alive");
    }

    #[tokio::test]
    async fn at_the_connection_limit_idle_sockets_cannot_lock_out_clients() {
        let s = server(QUICK).await;
        // The limit taken by sockets that say nothing...
        let _a = TcpStream::connect(s.addr).await.expect("connect");
        let _b = TcpStream::connect(s.addr).await.expect("connect");
        // ...delays a real client only until their handshake time is up.
        let r = tokio::time::timeout(Duration::from_secs(10), get(&s)).await.expect("served in time").expect("request");
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        assert!(r.ends_with("ok"), "{r}");
    }
}

/// TLS of the gRPC channels between the components (tonic), from PEM files:
/// built here once for the adapter's servers and the enforcer's servers and client.
pub mod grpc {
    use std::path::Path;

    use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

    use super::{TlsError, pem_bundle};

    fn read(p: &Path) -> Result<Vec<u8>, TlsError> {
        std::fs::read(p).map_err(|e| TlsError::File { path: p.display().to_string(), reason: e.to_string() })
    }

    /// The certificate chain and key a component presents.
    pub fn identity(cert: &Path, key: &Path) -> Result<Identity, TlsError> {
        Ok(Identity::from_pem(read(cert)?, read(key)?))
    }

    /// The CAs in the PEM file or folder `path`.
    pub fn ca(path: &Path) -> Result<Certificate, TlsError> {
        Ok(Certificate::from_pem(pem_bundle(path)?))
    }

    /// A server presenting `cert`/`key`; with `client_ca`, clients must
    /// present a certificate issued by one of its CAs.
    pub fn server(cert: &Path, key: &Path, client_ca: Option<&Path>) -> Result<ServerTlsConfig, TlsError> {
        let tls = ServerTlsConfig::new().identity(identity(cert, key)?);
        Ok(match client_ca {
            Some(p) => tls.client_ca_root(ca(p)?),
            None => tls,
        })
    }

    /// A client trusting the CAs of `ca_path` and presenting `cert`/`key`.
    pub fn client(cert: &Path, key: &Path, ca_path: &Path) -> Result<ClientTlsConfig, TlsError> {
        Ok(ClientTlsConfig::new().ca_certificate(ca(ca_path)?).identity(identity(cert, key)?))
    }

    /// Why a health probe failed.
    #[derive(Debug, thiserror::Error)]
    pub enum ProbeError {
        /// The TLS files are unusable.
        #[error(transparent)]
        Tls(#[from] TlsError),
        /// No connection.
        #[error("{url}: {reason}")]
        Connect {
            /// The server.
            url: String,
            /// Why.
            reason: String,
        },
        /// The server answered, but not SERVING.
        #[error("{url}: {status}")]
        NotServing {
            /// The server.
            url: String,
            /// Its answer or the RPC error.
            status: String,
        },
    }

    /// `grpc.health.v1.Health/Check` of the server at `port` on the loopback
    /// address, as a container health check runs it from inside the
    /// container: with `tls`, over TLS with that client configuration (its
    /// server name must be one of the server certificate's names). Ok when
    /// the server is SERVING.
    pub async fn probe(
        port: u16,
        tls: Option<ClientTlsConfig>,
        timeout: std::time::Duration,
    ) -> Result<(), ProbeError> {
        use tonic_health::pb::health_check_response::ServingStatus;
        use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://127.0.0.1:{port}");
        let connect = |reason: String| ProbeError::Connect { url: url.clone(), reason };
        let mut endpoint = tonic::transport::Endpoint::from_shared(url.clone())
            .map_err(|e| connect(e.to_string()))?
            .connect_timeout(timeout)
            .timeout(timeout);
        if let Some(tls) = tls {
            endpoint = endpoint.tls_config(tls).map_err(|e| connect(e.to_string()))?;
        }
        let channel = endpoint.connect().await.map_err(|e| connect(format!("{e:?}")))?;
        let answer = HealthClient::new(channel).check(HealthCheckRequest { service: String::new() }).await;
        match answer.map(|r| r.into_inner().status) {
            Ok(s) if s == ServingStatus::Serving as i32 => Ok(()),
            Ok(s) => Err(ProbeError::NotServing { url, status: format!("status {s}") }),
            Err(e) => Err(ProbeError::NotServing { url, status: e.message().to_string() }),
        }
    }
}

/// Development certificates: a CA and one RSA certificate every component
/// presents (server and client), for `docker compose up` and `make run`.
/// Never for production: the CA key is thrown away, the names are fixed.
pub mod dev {
    use std::path::Path;

    use super::TlsError;

    /// The names the development certificate carries: the Compose service
    /// names, `localhost` and the loopback address.
    pub const NAMES: &[&str] = &["localhost", "127.0.0.1", "router", "adapter", "enforcer"];

    fn err(what: &str, e: impl std::fmt::Display) -> TlsError {
        TlsError::File { path: what.to_string(), reason: e.to_string() }
    }

    /// Writes `dir/keystore/mg.{pem,key}` (the certificate and its RSA key)
    /// and `dir/truststore/mg.pem` (the CA), as Choreo Connect lays out
    /// `/home/wso2/security`, unless `dir/keystore/mg.pem` exists. Returns
    /// whether it wrote them.
    pub fn write(dir: &Path) -> Result<bool, TlsError> {
        let (keystore, truststore) = (dir.join("keystore"), dir.join("truststore"));
        if keystore.join("mg.pem").exists() {
            return Ok(false);
        }
        let ca_key = rcgen::KeyPair::generate().map_err(|e| err("CA key", e))?;
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(|e| err("CA", e))?;
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, "Choreo Connect development CA");
        ca_params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
        let ca = ca_params.self_signed(&ca_key).map_err(|e| err("CA", e))?;
        let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
        // RSA: the enforcer signs /testkey tokens and backend JWTs (RS256) with it.
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).map_err(|e| err("RSA key", e))?;
        let mut params = rcgen::CertificateParams::new(NAMES.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .map_err(|e| err("certificate", e))?;
        params.distinguished_name.push(rcgen::DnType::CommonName, "localhost");
        params.extended_key_usages =
            vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth, rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &issuer).map_err(|e| err("certificate", e))?;
        for d in [&keystore, &truststore] {
            std::fs::create_dir_all(d).map_err(|e| err(&d.display().to_string(), e))?;
        }
        let write = |p: std::path::PathBuf, text: String| {
            std::fs::write(&p, text).map_err(|e| err(&p.display().to_string(), e))
        };
        write(truststore.join("mg.pem"), ca.pem())?;
        write(keystore.join("mg.key"), key.serialize_pem())?;
        // Last: its presence means the set is complete.
        write(keystore.join("mg.pem"), cert.pem())?;
        Ok(true)
    }
}
