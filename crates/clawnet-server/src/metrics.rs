//! `/metrics`: Prometheus text from the process-wide recorder.

use std::sync::OnceLock;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::AppState;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Install the Prometheus recorder once per process (several servers in
/// one test process share it). `None` if another recorder was installed.
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| PrometheusBuilder::new().install_recorder().ok())
        .as_ref()
}

/// The chat send latency histogram (request decoded → ACK built), created
/// once after the recorder is installed.
pub fn send_seconds() -> &'static metrics::Histogram {
    static H: OnceLock<metrics::Histogram> = OnceLock::new();
    H.get_or_init(|| {
        handle();
        metrics::histogram!("clawnet_send_seconds")
    })
}

/// `GET /metrics`.
pub async fn render(State(app): State<AppState>) -> impl IntoResponse {
    app.hub.export_metrics().await;
    let body = handle().map(PrometheusHandle::render).unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}
