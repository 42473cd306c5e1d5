//! The metrics listener: `/metrics` (Prometheus), and health for orchestrators.

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

use super::ControlPlane;
use crate::respond::{Body, text};

impl ControlPlane {
    /// One request on `metrics_listen`.
    pub(crate) async fn health(&self, req: Request<Incoming>) -> Response<Body> {
        match req.uri().path() {
            "/metrics" => text(StatusCode::OK, &self.data.audit.metrics_text()),
            // Liveness: the runtime answers.
            "/healthz" => text(StatusCode::OK, "ok\n"),
            // Readiness: the state store answers too.
            "/readyz" => match self.store() {
                Some(store) => match store.generation().await {
                    Ok(_) => text(StatusCode::OK, "ready\n"),
                    Err(e) => text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        &format!("not ready: {e}\n"),
                    ),
                },
                None => text(StatusCode::OK, "ready\n"),
            },
            _ => text(
                StatusCode::NOT_FOUND,
                "metrics are at /metrics, health at /healthz and /readyz\n",
            ),
        }
    }
}
