//! `test-protocols [--host 127.0.0.1] [--websocket-port N] ...`: starts the
//! WebSocket, GraphQL, SOAP, HTTP/2 and gRPC test backends (see the crate
//! docs) and prints one line per listener on stdout, `NAME HOST:PORT`:
//! `websocket`, `graphql`, `soap`, `http2`, `http2-tls`, `grpc`, `grpc-tls`.
//! Ports default to 0 (any free one). Logs go to stderr (`RUST_LOG` filters
//! them, default `info`); Ctrl-C or SIGTERM stops it.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use test_protocols::{Listen, Protocols, TlsIdentity};
use tracing_subscriber::EnvFilter;

/// Real WebSocket, GraphQL, SOAP, HTTP/2 and gRPC test backends.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Address every listener binds.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    host: IpAddr,
    /// WebSocket echo server port.
    #[arg(long, default_value_t = 0)]
    websocket_port: u16,
    /// GraphQL server port.
    #[arg(long, default_value_t = 0)]
    graphql_port: u16,
    /// SOAP responder port.
    #[arg(long, default_value_t = 0)]
    soap_port: u16,
    /// HTTP echo port (HTTP/1.1 and h2c).
    #[arg(long, default_value_t = 0)]
    http2_port: u16,
    /// HTTP echo port over TLS (ALPN h2, http/1.1).
    #[arg(long, default_value_t = 0)]
    http2_tls_port: u16,
    /// gRPC service port (h2c).
    #[arg(long, default_value_t = 0)]
    grpc_port: u16,
    /// gRPC service port over TLS.
    #[arg(long, default_value_t = 0)]
    grpc_tls_port: u16,
    /// Certificate chain (PEM) of the TLS listeners; default: a self-signed
    /// one for localhost, 127.0.0.1 and ::1, made at start.
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// Private key (PEM) of `--cert`.
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// Write the certificate the TLS listeners present (PEM) to this file,
    /// for clients to trust.
    #[arg(long)]
    cert_out: Option<PathBuf>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
}

fn identity(cli: &Cli) -> anyhow::Result<TlsIdentity> {
    match (&cli.cert, &cli.key) {
        (Some(cert), Some(key)) => {
            let read = |p: &PathBuf| std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()));
            Ok(TlsIdentity::from_pem(read(cert)?, read(key)?)?)
        }
        _ => Ok(TlsIdentity::self_signed()?),
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_writer(std::io::stderr).init();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(t) = cli.threads {
        anyhow::ensure!(t > 0, "--threads must be at least 1");
        rt.worker_threads(t);
    }
    let rt = rt.enable_all().build().context("tokio runtime")?;
    rt.block_on(async {
        let identity = identity(&cli)?;
        if let Some(path) = &cli.cert_out {
            std::fs::write(path, identity.cert_pem()).with_context(|| format!("writing {}", path.display()))?;
        }
        let at = |port| SocketAddr::new(cli.host, port);
        let listen = Listen {
            websocket: at(cli.websocket_port),
            graphql: at(cli.graphql_port),
            soap: at(cli.soap_port),
            http2: at(cli.http2_port),
            http2_tls: at(cli.http2_tls_port),
            grpc: at(cli.grpc_port),
            grpc_tls: at(cli.grpc_tls_port),
        };
        let servers = Protocols::start_on(&listen, &identity).await?;
        let mut out = std::io::stdout().lock();
        for (name, addr) in servers.addresses() {
            writeln!(out, "{name} {addr}")?;
        }
        out.flush()?;
        drop(out);
        tracing::info!("test protocols listening");
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("listening for SIGTERM")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
            _ = term.recv() => {}
        }
        tracing::info!("stopping");
        servers.stop();
        Ok(())
    })
}
