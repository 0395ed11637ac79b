//! TLS for the gateway's own HTTPS servers (adapter management API, enforcer
//! admin API): server configuration from PEM files and an axum server loop.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info};

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

/// Serves `app` over TLS on `listener` until the task is dropped.
pub async fn serve_tls(name: &'static str, listener: TcpListener, acceptor: TlsAcceptor, app: axum::Router) {
    let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    info!(address = %addr, name, "HTTPS server listening");
    loop {
        let (tcp, peer): (_, SocketAddr) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                debug!(error = %e, "accept failed");
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(t) => t,
                Err(e) => {
                    debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
            };
            let service = hyper_util::service::TowerToHyperService::new(app);
            if let Err(e) = auto::Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(tls), service).await
            {
                debug!(%peer, error = %e, "connection ended with an error");
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
