//! `adapter`: the gateway's control plane. See `adapter --help` and the README.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use tracing::{error, warn};

/// Exit code for bad configuration (EX_USAGE).
const EXIT_CONFIG: u8 = 64;

/// The gateway's control plane: loads API projects and serves Envoy over ADS.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// The config.toml (Choreo Connect format). Default: $MGW_HOME/conf/config.toml,
    /// or conf/config.toml when MGW_HOME is not set.
    #[arg(long, env = "ADAPTER_CONFIG")]
    config: Option<PathBuf>,

    /// Check the configuration, print the problems and exit (0 when valid).
    #[arg(long)]
    validate: bool,

    /// Ask the running adapter on this host for its gRPC health and exit 0
    /// when it serves (the container health check; no curl in the image).
    #[arg(long)]
    health_check: bool,

    /// Write development certificates into this folder (keystore/mg.{pem,key},
    /// truststore/mg.pem) unless they exist, and exit: the one-shot step of
    /// `docker compose up`. Not for production.
    #[arg(long, value_name = "DIR")]
    dev_certs: Option<PathBuf>,

    /// The name the xDS server's certificate carries, for --health-check.
    #[arg(long, env = "ADAPTER_SERVER_NAME", default_value = "adapter")]
    server_name: String,

    /// Address of the ADS gRPC server (Envoy's `xds_cluster`).
    #[arg(long, env = "ADAPTER_XDS_ADDRESS", default_value = "0.0.0.0:18000")]
    xds_address: SocketAddr,

    /// Log format, `text` or `json`, instead of log_config.toml's LogFormat.
    /// Levels: log_config.toml's logLevel and [[pkg]], or RUST_LOG.
    #[arg(long, env = "LOG_FORMAT")]
    log_format: Option<String>,
}

/// `$MGW_HOME/conf/<file>`, or `conf/<file>` when MGW_HOME is not set.
fn conf_file(file: &str) -> PathBuf {
    match std::env::var("MGW_HOME") {
        Ok(home) if !home.trim().is_empty() => PathBuf::from(home).join("conf").join(file),
        _ => PathBuf::from("conf").join(file),
    }
}

fn config_path(cli: &Cli) -> PathBuf {
    if let Some(p) = &cli.config {
        return p.clone();
    }
    conf_file("config.toml")
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log_config =
        match gateway_runtime::logging::init_from_file(&conf_file("log_config.toml"), cli.log_format.as_deref()) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_CONFIG);
            }
        };
    if let Some(dir) = &cli.dev_certs {
        return match gateway_tls::dev::write(dir) {
            Ok(true) => {
                println!("development certificates written to {}", dir.display());
                ExitCode::SUCCESS
            }
            Ok(false) => {
                println!("development certificates in {}: present", dir.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let path = config_path(&cli);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            error!("cannot read the configuration {}: {e}", path.display());
            eprintln!("error: cannot read the configuration {}: {e}", path.display());
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let env: Vec<(String, String)> = std::env::vars().collect();
    let loaded = match gateway_config::load(
        &text,
        &path.display().to_string(),
        env.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    ) {
        Ok(l) => l,
        Err(e) => {
            error!("invalid configuration: {e}");
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    for w in &loaded.warnings {
        warn!("{}: {w}", path.display());
    }
    if cli.validate {
        for w in &loaded.warnings {
            println!("warning: {w}");
        }
        println!("{}: valid", path.display());
        return ExitCode::SUCCESS;
    }
    if cli.health_check {
        let probe = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map(|rt| rt.block_on(adapter::health_check(&loaded.config, cli.xds_address.port(), &cli.server_name)));
        return match probe {
            Ok(Ok(())) => ExitCode::SUCCESS,
            Ok(Err(e)) => {
                eprintln!("unhealthy: {e}");
                ExitCode::FAILURE
            }
            Err(e) => {
                eprintln!("unhealthy: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let mut config = loaded.config;
    config.access_logs = log_config.access_logs;
    let parse_opts = adapter::parse_options(&config, env.into_iter());
    let opts = adapter::Options { xds_address: cli.xds_address };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build().context("tokio runtime") {
        Ok(r) => r,
        Err(e) => {
            error!("{e:#}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(adapter::run(config, opts, parse_opts, gateway_runtime::shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
