//! The operator's HTTP listener on `metrics_addr`: `/metrics` (Prometheus text format),
//! `/healthz` (the process answers: its runtime schedules tasks) and `/readyz` (every owned
//! shard READY, store and scheduler loaded), for Prometheus, systemd, Kubernetes and load
//! balancer probes.
//!
//! The port is bound when the bot is built, so that a taken port fails `guildkeep run` at
//! once and tests learn the port picked for `127.0.0.1:0`; serving starts once the metrics
//! exist. Not here: what the metrics are (`mod.rs`, `snapshot.rs`).

use std::{net::SocketAddr, sync::Arc};

use axum::{extract::State, http::StatusCode, response::IntoResponse, routing::get, Router};
use tokio::net::TcpListener;

use super::Metrics;

/// `prometheus-client` writes OpenMetrics text (counters' `# HELP` without `_total`, a final
/// `# EOF`); Prometheus parses it as such when told so.
const TEXT_FORMAT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A bound, not yet serving, listener.
pub struct MetricsListener {
    listener: TcpListener,
}

impl MetricsListener {
    pub async fn bind(addr: SocketAddr) -> std::io::Result<Self> {
        Ok(Self {
            listener: TcpListener::bind(addr).await?,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `stop` completes.
    pub fn serve(
        self,
        metrics: Arc<Metrics>,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let app = Router::new()
            .route("/metrics", get(scrape))
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/readyz", get(ready))
            .with_state(metrics);
        tokio::spawn(async move {
            if let Err(e) = axum::serve(self.listener, app)
                .with_graceful_shutdown(stop)
                .await
            {
                tracing::error!(error = %e, "the metrics listener failed");
            }
        })
    }
}

async fn scrape(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    match tokio::task::spawn_blocking(move || metrics.encode()).await {
        Ok(text) => (
            StatusCode::OK,
            [(axum::http::header::CONTENT_TYPE, TEXT_FORMAT)],
            text,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "encoding the metrics failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

async fn ready(State(metrics): State<Arc<Metrics>>) -> (StatusCode, &'static str) {
    if metrics.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}
