//! `test-backend --listen 127.0.0.1:8080 --name sample`: see the crate docs.

use anyhow::Context;
use clap::Parser;

/// A fast HTTP backend that echoes requests as JSON.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: std::net::SocketAddr,
    /// Name reported in responses (`backend` field and `x-backend-name`).
    #[arg(long, default_value = "backend")]
    name: String,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt().with_target(false).init();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(t) = cli.threads {
        rt.worker_threads(t);
    }
    let rt = rt.enable_all().build().context("tokio runtime")?;
    rt.block_on(async {
        let listener =
            tokio::net::TcpListener::bind(cli.listen).await.with_context(|| format!("listen on {}", cli.listen))?;
        tracing::info!(address = %cli.listen, name = %cli.name, "test backend listening");
        tokio::select! {
            _ = test_backend::serve(listener, cli.name, Default::default()) => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        Ok(())
    })
}
