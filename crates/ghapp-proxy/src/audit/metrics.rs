//! The proxy's Prometheus metrics (text format 0.0.4 at `/metrics` on `metrics_listen`), with
//! prometheus-client: label values escaped, `HELP` and `TYPE` for every family.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::{Decision, Service};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    pub sandbox: String,
    pub service: ServiceLabel,
    pub decision: DecisionLabel,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct BytesLabels {
    pub sandbox: String,
    /// `in` (from the sandbox) or `out` (to it).
    pub direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ServiceLabels {
    pub service: ServiceLabel,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct KindLabels {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct LimitLabels {
    pub limit: &'static str,
}

/// [`Service`] as a label value (`git-upload-pack`, `rest`, ...).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub(crate) struct ServiceLabel(pub Service);

impl EncodeLabelValue for ServiceLabel {
    fn encode(
        &self,
        encoder: &mut prometheus_client::encoding::LabelValueEncoder,
    ) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.0.as_str(), encoder)
    }
}

/// [`Decision`] as a label value (`allow`, `deny`).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub(crate) struct DecisionLabel(pub Decision);

impl EncodeLabelValue for DecisionLabel {
    fn encode(
        &self,
        encoder: &mut prometheus_client::encoding::LabelValueEncoder,
    ) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.0.as_str(), encoder)
    }
}

fn latency_histogram() -> Histogram {
    // 5 ms to ~20 s.
    Histogram::new(exponential_buckets(0.005, 2.0, 13))
}

/// Every metric the proxy exports.
pub(crate) struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub bytes: Family<BytesLabels, Counter>,
    pub upstream_latency: Family<ServiceLabels, Histogram, fn() -> Histogram>,
    pub auth_failures: Family<KindLabels, Counter>,
    pub webhooks: Family<KindLabels, Counter>,
    pub exchanges: Family<KindLabels, Counter>,
    pub notifications: Family<KindLabels, Counter>,
    pub approvals: Family<KindLabels, Counter>,
    pub proposals: Family<KindLabels, Counter>,
    pub connections_refused: Family<LimitLabels, Counter>,
    pub accept_errors: Counter,
    pub mints: Counter,
    pub cache_hits: Counter,
    pub tokens_dropped: Counter,
    pub buffer_budget_exhausted: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let m = Metrics {
            requests: Family::default(),
            bytes: Family::default(),
            upstream_latency: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            auth_failures: Family::default(),
            webhooks: Family::default(),
            exchanges: Family::default(),
            notifications: Family::default(),
            approvals: Family::default(),
            proposals: Family::default(),
            connections_refused: Family::default(),
            accept_errors: Counter::default(),
            mints: Counter::default(),
            cache_hits: Counter::default(),
            tokens_dropped: Counter::default(),
            buffer_budget_exhausted: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "ghapp_proxy_requests",
            "Requests by sandbox, service and decision",
            m.requests.clone(),
        );
        registry.register(
            "ghapp_proxy_bytes",
            "Body bytes by sandbox and direction",
            m.bytes.clone(),
        );
        registry.register(
            "ghapp_proxy_upstream_latency_seconds",
            "Time from sending a request to GitHub to its response head, by service",
            m.upstream_latency.clone(),
        );
        registry.register(
            "ghapp_proxy_auth_failures",
            "CONNECTs without valid proxy credentials: missing, wrong, or rate_limited",
            m.auth_failures.clone(),
        );
        registry.register(
            "ghapp_proxy_approvals",
            "Learning sandboxes' pull requests: held, answered, approved, denied, closed",
            m.approvals.clone(),
        );
        registry.register(
            "ghapp_proxy_proposals",
            "Observe-mode sandboxes' pushes and pull requests recorded as proposals",
            m.proposals.clone(),
        );
        registry.register(
            "ghapp_proxy_webhooks",
            "GitHub webhook deliveries: accepted, redelivery (acted on before), bad_signature",
            m.webhooks.clone(),
        );
        registry.register(
            "ghapp_proxy_sts_exchanges",
            "Token exchanges: issued, or the check that refused them (token, algorithm, signature, expired, key, issuer, policy, subject, audience, claim, scope, permissions, request, github, rate_limited)",
            m.exchanges.clone(),
        );
        registry.register(
            "ghapp_proxy_notifications",
            "Notification deliveries: delivered, retried (an attempt failed, another follows), failed (no attempt left), dropped (the queue was full)",
            m.notifications.clone(),
        );
        registry.register(
            "ghapp_proxy_connections_refused",
            "Connections closed at accept, by the limit they hit",
            m.connections_refused.clone(),
        );
        registry.register(
            "ghapp_proxy_accept_errors",
            "Errors accepting connections (e.g. out of file descriptors)",
            m.accept_errors.clone(),
        );
        registry.register(
            "ghapp_proxy_mints",
            "Installation tokens minted",
            m.mints.clone(),
        );
        registry.register(
            "ghapp_proxy_token_cache_hits",
            "Requests served with a cached installation token",
            m.cache_hits.clone(),
        );
        registry.register(
            "ghapp_proxy_tokens_dropped",
            "Cached tokens dropped because GitHub refused them (revoked)",
            m.tokens_dropped.clone(),
        );
        registry.register(
            "ghapp_proxy_buffer_budget_exhausted",
            "Bodies refused because max_buffered_bytes was reached",
            m.buffer_budget_exhausted.clone(),
        );
        Metrics { registry, ..m }
    }
}

impl Metrics {
    /// The text exposition.
    pub(crate) fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }

    pub(crate) fn request(&self, sandbox: &str, service: Service, decision: Decision) {
        self.requests
            .get_or_create(&RequestLabels {
                sandbox: sandbox.to_owned(),
                service: ServiceLabel(service),
                decision: DecisionLabel(decision),
            })
            .inc();
    }

    pub(crate) fn bytes(&self, sandbox: &str, bytes_in: u64, bytes_out: u64) {
        for (direction, n) in [("in", bytes_in), ("out", bytes_out)] {
            self.bytes
                .get_or_create(&BytesLabels {
                    sandbox: sandbox.to_owned(),
                    direction,
                })
                .inc_by(n);
        }
    }

    /// A learning sandbox's pull request: `held`, `answered` (asked again), `approved`,
    /// `denied`, `closed`.
    pub(crate) fn approval(&self, kind: &'static str) {
        self.approvals.get_or_create(&KindLabels { kind }).inc();
    }

    /// A proposal recorded: `push` or `pull_request`.
    pub(crate) fn proposal(&self, kind: &'static str) {
        self.proposals.get_or_create(&KindLabels { kind }).inc();
    }

    /// A webhook delivery: `accepted`, `redelivery` or `bad_signature`.
    pub(crate) fn webhook(&self, kind: &'static str) {
        self.webhooks.get_or_create(&KindLabels { kind }).inc();
    }

    /// A token exchange: `issued`, or the check that refused it.
    pub(crate) fn exchange(&self, kind: &'static str) {
        self.exchanges.get_or_create(&KindLabels { kind }).inc();
    }

    /// A notification delivery: `delivered`, `retried`, `failed` or `dropped`.
    pub(crate) fn notification(&self, kind: &'static str) {
        self.notifications.get_or_create(&KindLabels { kind }).inc();
    }

    pub(crate) fn auth_failure(&self, kind: &'static str) {
        self.auth_failures.get_or_create(&KindLabels { kind }).inc();
    }

    pub(crate) fn connection_refused(&self, limit: &'static str) {
        self.connections_refused
            .get_or_create(&LimitLabels { limit })
            .inc();
    }

    pub(crate) fn upstream_latency(&self, service: Service, seconds: f64) {
        self.upstream_latency
            .get_or_create(&ServiceLabels {
                service: ServiceLabel(service),
            })
            .observe(seconds);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_help_type_and_escaped_labels() {
        let m = Metrics::default();
        m.request("a\"b\\c\nd", Service::GitUploadPack, Decision::Allow);
        m.bytes("a", 3, 4);
        m.upstream_latency(Service::Rest, 0.012);
        m.auth_failure("missing");
        let text = m.encode();
        assert!(
            text.contains(
                "# HELP ghapp_proxy_requests_total Requests by sandbox, service and decision."
            ),
            "{text}"
        );
        assert!(
            text.contains("# TYPE ghapp_proxy_requests_total counter"),
            "{text}"
        );
        assert!(text.contains(r#"ghapp_proxy_requests_total{sandbox="a\"b\\c\nd",service="git-upload-pack",decision="allow"} 1"#), "{text}");
        assert!(
            text.contains(r#"ghapp_proxy_bytes_total{sandbox="a",direction="in"} 3"#),
            "{text}"
        );
        assert!(
            text.contains("# TYPE ghapp_proxy_upstream_latency_seconds histogram"),
            "{text}"
        );
        assert!(
            text.contains(
                r#"ghapp_proxy_upstream_latency_seconds_bucket{le="0.02",service="rest"} 1"#
            ) || text.contains(
                r#"ghapp_proxy_upstream_latency_seconds_bucket{service="rest",le="0.02"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"ghapp_proxy_auth_failures_total{kind="missing"} 1"#),
            "{text}"
        );
        // Every family has its HELP and TYPE, registered or not yet used.
        assert!(
            text.contains("# TYPE ghapp_proxy_mints_total counter"),
            "{text}"
        );
    }
}
