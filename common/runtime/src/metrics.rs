//! Prometheus metrics: a process keeps its metrics in a
//! [`prometheus_client`] registry and serves them on `GET /metrics`.
//!
//! The text is OpenMetrics 1.0 (what `prometheus_client` writes), which
//! Prometheus negotiates and scrapes; names follow Prometheus conventions
//! (base units, `_total` for counters) and every label takes a bounded set of
//! values.

use std::sync::Arc;

use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use tokio::net::TcpListener;

pub use prometheus_client;

/// The `Content-Type` of the text [`prometheus_client::encoding::text::encode`] writes.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Renders the metrics of a process: called on every scrape, so gauges that
/// describe current state can be refreshed before they are encoded.
pub type Render = Arc<dyn Fn() -> Result<String, std::fmt::Error> + Send + Sync>;

/// Latency buckets in seconds, from 100 µs to 10 s (checks, snapshot builds,
/// push to ACK).
pub fn latency_buckets() -> impl Iterator<Item = f64> {
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0].into_iter()
}

/// Serves `GET /metrics` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, render: Render) -> std::io::Result<()> {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let render = Arc::clone(&render);
            async move {
                match render() {
                    Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
                    Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "metrics could not be encoded\n").into_response(),
                }
            }
        }),
    );
    axum::serve(listener, app).await
}

/// Encodes `registry` as OpenMetrics text.
pub fn encode(registry: &prometheus_client::registry::Registry) -> Result<String, std::fmt::Error> {
    let mut out = String::with_capacity(4096);
    prometheus_client::encoding::text::encode(&mut out, registry)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::histogram::Histogram;
    use prometheus_client::registry::{Registry, Unit};

    use super::*;

    #[tokio::test]
    async fn serves_the_registry_as_openmetrics_text() {
        let mut registry = Registry::default();
        let checks = Family::<Vec<(String, String)>, Counter>::default();
        registry.register("checks", "Checks", checks.clone());
        let latency = Histogram::new(latency_buckets());
        registry.register_with_unit("check_duration", "Check latency", Unit::Seconds, latency.clone());
        checks.get_or_create(&vec![("decision".into(), "allow".into())]).inc_by(3);
        latency.observe(0.002);
        let registry = Arc::new(registry);
        let r = Arc::clone(&registry);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let server = tokio::spawn(serve(listener, Arc::new(move || encode(&r))));
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.expect("write");
        let mut body = String::new();
        stream.read_to_string(&mut body).await.expect("read");
        server.abort();
        assert!(body.starts_with("HTTP/1.1 200"), "{body}");
        assert!(body.contains(CONTENT_TYPE), "{body}");
        assert!(body.contains("checks_total{decision=\"allow\"} 3\n"), "{body}");
        assert!(body.contains("# UNIT check_duration_seconds seconds\n"), "{body}");
        assert!(body.contains("check_duration_seconds_bucket{le=\"0.0025\"} 1\n"), "{body}");
        assert!(body.contains("check_duration_seconds_count 1\n"), "{body}");
        assert!(body.trim_end().ends_with("# EOF"), "{body}");
    }
}
