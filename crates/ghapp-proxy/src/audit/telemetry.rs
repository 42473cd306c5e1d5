//! OpenTelemetry: traces and metrics over OTLP/HTTP, off unless the standard variables name an
//! endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT`, or `_TRACES_ENDPOINT` / `_METRICS_ENDPOINT`).
//!
//! - A server span per request inside a tunnel (`ghapp.request`), its parent the sandbox's
//!   `traceparent` when it sent one, with what the audit event says: sandbox, repository,
//!   route, decision, reason, statuses. Child spans: `ghapp.token` (cache or mint),
//!   `ghapp.inspect` (a push read before GitHub sees it), `ghapp.upstream` (GitHub's answer),
//!   `ghapp.approval` (a pull request held). The token exchange's requests too (service
//!   `exchange`; children `ghapp.policy`, `ghapp.oidc`, `ghapp.token`). No token, secret or
//!   body is an attribute: the token's fingerprint is not either, and a path or reason passes
//!   the secret scanner's redaction first, as in the audit file.
//! - Metrics: `ghapp.proxy.requests` (sandbox, service, decision) and
//!   `ghapp.proxy.request.duration` (seconds, by service).
//!
//! The rest is the SDK's: `OTEL_EXPORTER_OTLP_HEADERS` (an API key there is never logged),
//! `_TIMEOUT`, `OTEL_SERVICE_NAME` (default `ghapp-proxy`), `OTEL_RESOURCE_ATTRIBUTES`,
//! `OTEL_BSP_*`, `OTEL_METRIC_EXPORT_INTERVAL`. `OTEL_EXPORTER_OTLP_PROTOCOL` is
//! `http/protobuf` (the default) or `http/json`; `OTEL_EXPORTER_OTLP_CERTIFICATE` adds a CA to
//! trust; `OTEL_SDK_DISABLED=true`, `OTEL_TRACES_EXPORTER=none` and
//! `OTEL_METRICS_EXPORTER=none` turn parts off. The exporters run on threads of their own,
//! never on the proxy's runtime.

use std::future::Future;
use std::time::Duration;

use opentelemetry::metrics::{Counter, Histogram, MeterProvider as _};
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{
    FutureExt, SpanKind, Status, TraceContextExt, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};

use super::Event;

const SCOPE: &str = "ghapp-proxy";

/// The exporters, when configured.
pub(crate) struct Telemetry {
    traces: Option<(SdkTracerProvider, SdkTracer)>,
    metrics: Option<(SdkMeterProvider, Counter<u64>, Histogram<f64>)>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("traces", &self.traces.is_some())
            .field("metrics", &self.metrics.is_some())
            .finish()
    }
}

/// A variable's value, when set and not empty.
fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The protocol `OTEL_EXPORTER_OTLP_{SIGNAL_}PROTOCOL` names (http/protobuf by default).
fn protocol(signal: &str) -> Result<Protocol, String> {
    let key = format!("OTEL_EXPORTER_OTLP_{signal}_PROTOCOL");
    let (name, v) = match var(&key) {
        Some(v) => (key, v),
        None => match var("OTEL_EXPORTER_OTLP_PROTOCOL") {
            Some(v) => ("OTEL_EXPORTER_OTLP_PROTOCOL".into(), v),
            None => return Ok(Protocol::HttpBinary),
        },
    };
    match v.trim() {
        "http/protobuf" => Ok(Protocol::HttpBinary),
        "http/json" => Ok(Protocol::HttpJson),
        other => Err(format!(
            "{name} = {other:?}: the proxy exports over HTTP: use http/protobuf or http/json"
        )),
    }
}

/// Whether a signal is wanted: an endpoint names where, and neither the SDK nor the signal is
/// turned off.
fn wanted(signal: &str, exporter_var: &str) -> bool {
    let off = |k: &str| var(k).is_some_and(|v| v.eq_ignore_ascii_case("none"));
    !var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
        && !off(exporter_var)
        && (var("OTEL_EXPORTER_OTLP_ENDPOINT").is_some()
            || var(&format!("OTEL_EXPORTER_OTLP_{signal}_ENDPOINT")).is_some())
}

/// The exporters' HTTP client: the system's roots, `OTEL_EXPORTER_OTLP_CERTIFICATE` added, no
/// proxy, no redirects.
fn client(timeout: Duration) -> Result<reqwest::blocking::Client, String> {
    let ca = match var("OTEL_EXPORTER_OTLP_CERTIFICATE") {
        Some(p) => Some(
            ghapp_core::fsutil::read_bounded(std::path::Path::new(&p), 4 << 20)
                .map_err(|e| format!("OTEL_EXPORTER_OTLP_CERTIFICATE {p}: {e}"))?,
        ),
        None => None,
    };
    let tls = ghapp_core::client::tls_config_with(ca.as_deref()).map_err(|e| e.to_string())?;
    reqwest::blocking::Client::builder()
        .use_preconfigured_tls(tls)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .build()
        .map_err(|e| format!("cannot build the OTLP client: {e}"))
}

impl Telemetry {
    /// Nothing exported.
    pub(crate) fn off() -> Telemetry {
        Telemetry {
            traces: None,
            metrics: None,
        }
    }

    /// As the `OTEL_*` variables say. Call outside any async runtime (the exporters' client
    /// is blocking, on the exporters' own threads).
    pub(crate) fn from_env() -> Result<Telemetry, String> {
        let mut t = Telemetry::off();
        let traces = wanted("TRACES", "OTEL_TRACES_EXPORTER");
        let metrics = wanted("METRICS", "OTEL_METRICS_EXPORTER");
        if !traces && !metrics {
            return Ok(t);
        }
        let mut resource = opentelemetry_sdk::Resource::builder();
        if var("OTEL_SERVICE_NAME").is_none() {
            resource = resource.with_service_name(SCOPE);
        }
        let resource = resource.build();
        let timeout = Duration::from_secs(10);
        if traces {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(protocol("TRACES")?)
                .with_http_client(client(timeout)?)
                .build()
                .map_err(|e| format!("OpenTelemetry traces: {e}"))?;
            let provider = SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(resource.clone())
                .build();
            let tracer = provider.tracer(SCOPE);
            t.traces = Some((provider, tracer));
        }
        if metrics {
            let exporter = opentelemetry_otlp::MetricExporter::builder()
                .with_http()
                .with_protocol(protocol("METRICS")?)
                .with_http_client(client(timeout)?)
                .build()
                .map_err(|e| format!("OpenTelemetry metrics: {e}"))?;
            let provider = SdkMeterProvider::builder()
                .with_periodic_exporter(exporter)
                .with_resource(resource)
                .build();
            let meter = provider.meter(SCOPE);
            let requests = meter
                .u64_counter("ghapp.proxy.requests")
                .with_description("Requests inside tunnels, by sandbox, service and decision")
                .build();
            let duration = meter
                .f64_histogram("ghapp.proxy.request.duration")
                .with_unit("s")
                .with_description("How long requests took, answer streamed, by service")
                .build();
            t.metrics = Some((provider, requests, duration));
        }
        tracing::info!(
            traces = t.traces.is_some(),
            metrics = t.metrics.is_some(),
            "OpenTelemetry: exporting over OTLP/HTTP"
        );
        Ok(t)
    }

    /// The context a request runs in: a server span named for its method, child of the
    /// sandbox's `traceparent` when it sent a valid one. `None` without tracing.
    pub(crate) fn request(&self, method: &str, headers: &hyper::HeaderMap) -> Option<Context> {
        let (_, tracer) = self.traces.as_ref()?;
        let parent = TraceContextPropagator::new().extract(&Headers(headers));
        let span = tracer
            .span_builder(format!("{method} ghapp.request"))
            .with_kind(SpanKind::Server)
            .start_with_context(tracer, &parent);
        Some(parent.with_span(span))
    }

    /// Ends the request's span with what its audit event says, and counts it.
    pub(crate) fn finish(&self, cx: Option<&Context>, e: &Event) {
        if let Some((_, requests, duration)) = &self.metrics {
            let service = KeyValue::new("ghapp.service", e.service.as_str());
            requests.add(
                1,
                &[
                    KeyValue::new("ghapp.sandbox", e.sandbox.clone()),
                    service.clone(),
                    KeyValue::new("ghapp.decision", e.decision.as_str()),
                ],
            );
            duration.record(e.latency_ms as f64 / 1000.0, &[service]);
        }
        let Some(cx) = cx else { return };
        let span = cx.span();
        let redact = ghapp_gitproto::secrets::redact;
        let mut attrs = vec![
            KeyValue::new("ghapp.sandbox", e.sandbox.clone()),
            KeyValue::new("ghapp.service", e.service.as_str()),
            KeyValue::new("ghapp.decision", e.decision.as_str()),
            KeyValue::new("http.request.method", e.method.clone()),
            KeyValue::new("server.address", e.host.clone()),
            KeyValue::new("url.path", redact(&e.path).into_owned()),
            KeyValue::new("http.response.status_code", i64::from(e.status)),
            KeyValue::new("ghapp.bytes_in", e.bytes_in as i64),
            KeyValue::new("ghapp.bytes_out", e.bytes_out as i64),
        ];
        if let Some(r) = &e.repo {
            attrs.push(KeyValue::new("ghapp.repo", r.clone()));
        }
        if !e.reason.is_empty() {
            attrs.push(KeyValue::new(
                "ghapp.reason",
                redact(&e.reason).chars().take(1024).collect::<String>(),
            ));
        }
        if let Some(s) = e.upstream_status {
            attrs.push(KeyValue::new("ghapp.upstream_status", i64::from(s)));
        }
        if let Some(s) = &e.source {
            attrs.push(KeyValue::new("client.address", s.clone()));
        }
        if let Some(p) = e.proposal {
            attrs.push(KeyValue::new("ghapp.proposal", p));
        }
        span.set_attributes(attrs);
        if e.status >= 500 {
            span.set_status(Status::error(format!("answered {}", e.status)));
        }
        span.end();
    }

    /// Sends what is pending and stops the exporters.
    pub(crate) fn shutdown(&self) {
        if let Some((p, _)) = &self.traces {
            let _ = p.shutdown_with_timeout(Duration::from_secs(5));
        }
        if let Some((p, ..)) = &self.metrics {
            let _ = p.shutdown_with_timeout(Duration::from_secs(5));
        }
    }
}

/// `f` in a child span `name` of the request's span (when there is one), ended when `f` is.
/// Inside, [`note`] adds attributes to it.
pub(crate) async fn child<F: Future>(tracer: &Telemetry, name: &'static str, f: F) -> F::Output {
    let parent = Context::current();
    let Some((_, t)) = &tracer.traces else {
        return f.await;
    };
    if !parent.has_active_span() {
        return f.await;
    }
    let span = t.start_with_context(name, &parent);
    let cx = parent.with_span(span);
    let out = f.with_context(cx.clone()).await;
    cx.span().end();
    out
}

/// An attribute on the current span (a child's, inside [`child`]); nothing without one.
pub(crate) fn note(key: &'static str, value: impl Into<opentelemetry::Value>) {
    let cx = Context::current();
    if cx.has_active_span() {
        cx.span().set_attribute(KeyValue::new(key, value));
    }
}

/// Runs `f` in `cx` (the request's context), when there is one.
pub(crate) async fn within<F: Future>(cx: Option<Context>, f: F) -> F::Output {
    match cx {
        Some(cx) => f.with_context(cx).await,
        None => f.await,
    }
}

/// A request's headers as the propagator reads them.
struct Headers<'a>(&'a hyper::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}
