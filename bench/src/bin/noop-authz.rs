//! A do-nothing ext_authz server, built only for `make bench`: it allows every
//! request (status OK plus one `x-user` header, the shape the measurements in
//! ext-authz-limits.md used). It is the ceiling the enforcer is compared
//! with: the cost of Envoy's ext_authz hop with zero work behind it. Never
//! part of the product.
//!
//! noop-authz --listen 127.0.0.1:8081 [--cert mg.pem --key mg.key --ca ca.pem]

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use envoy_types::pb::envoy::config::core::v3::{HeaderValue, HeaderValueOption, header_value_option};
use envoy_types::pb::envoy::service::auth::v3::authorization_server::{Authorization, AuthorizationServer};
use envoy_types::pb::envoy::service::auth::v3::{CheckRequest, CheckResponse, OkHttpResponse, check_response};
use envoy_types::pb::google::rpc::Status;

#[derive(Debug, Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long)]
    listen: SocketAddr,
    /// Server certificate (PEM); with --key and --ca: mutual TLS like the enforcer.
    #[arg(long, requires_all = ["key", "ca"])]
    cert: Option<PathBuf>,
    /// Server private key (PEM).
    #[arg(long)]
    key: Option<PathBuf>,
    /// CA of client certificates (PEM).
    #[arg(long)]
    ca: Option<PathBuf>,
}

struct Noop;

#[tonic::async_trait]
impl Authorization for Noop {
    async fn check(&self, _req: tonic::Request<CheckRequest>) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
        Ok(tonic::Response::new(CheckResponse {
            status: Some(Status { code: 0, ..Default::default() }),
            http_response: Some(check_response::HttpResponse::OkResponse(OkHttpResponse {
                headers: vec![HeaderValueOption {
                    header: Some(HeaderValue { key: "x-user".into(), value: "bench".into(), ..Default::default() }),
                    append_action: header_value_option::HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
                    ..Default::default()
                }],
                ..Default::default()
            })),
            ..Default::default()
        }))
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    // Two workers, like the enforcer on this machine.
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(async move {
        let mut builder = tonic::transport::Server::builder();
        if let (Some(cert), Some(key), Some(ca)) = (&args.cert, &args.key, &args.ca) {
            builder = builder.tls_config(gateway_tls::grpc::server(cert, key, Some(ca.as_path()))?)?;
        }
        builder
            .http2_keepalive_interval(Some(std::time::Duration::from_secs(30)))
            .tcp_nodelay(true)
            .add_service(AuthorizationServer::new(Noop))
            .serve(args.listen)
            .await
            .context("serve")
    })
}
