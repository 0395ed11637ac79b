//! `test-interceptor --listen 127.0.0.1:8090 [--threads N]`: see the crate
//! docs. Logs go to stderr (`RUST_LOG` filters them, default `info`); Ctrl-C
//! stops it.

use anyhow::Context;
use clap::Parser;
use tracing_subscriber::EnvFilter;

/// A scriptable Choreo Connect interceptor service (handle-request /
/// handle-response, manager API under /interceptor/).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Address to listen on (HTTP/1.1 and h2c).
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: std::net::SocketAddr,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
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
        let listener =
            tokio::net::TcpListener::bind(cli.listen).await.with_context(|| format!("listen on {}", cli.listen))?;
        let address = listener.local_addr().unwrap_or(cli.listen);
        tracing::info!(%address, "test interceptor listening");
        tokio::select! {
            _ = test_interceptor::serve(listener, test_interceptor::State::new()) => {}
            r = tokio::signal::ctrl_c() => {
                r.context("waiting for Ctrl-C")?;
                tracing::info!("stopping");
            }
        }
        Ok(())
    })
}
