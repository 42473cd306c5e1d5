//! One JSON line per request, and Prometheus counters. Tokens appear only as fingerprints.
//!
//! With an audit file the event is written there once (the log says it only at debug level);
//! the file is reopened on `SIGHUP` (for logrotate) and rotated to `PATH.1` past
//! `audit_max_bytes`.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;

use crate::respond::{Body, Refusal};

pub(crate) mod metrics;
pub(crate) mod telemetry;

/// What a request was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Service {
    GitUploadPack,
    GitReceivePack,
    /// A git route whose service is not known (refused).
    Git,
    Rest,
    Graphql,
    Lfs,
    Connect,
    /// The token exchange service (`[sts]`).
    Exchange,
    #[default]
    Other,
}

impl Service {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Service::GitUploadPack => "git-upload-pack",
            Service::GitReceivePack => "git-receive-pack",
            Service::Git => "git",
            Service::Rest => "rest",
            Service::Graphql => "graphql",
            Service::Lfs => "lfs",
            Service::Connect => "connect",
            Service::Exchange => "exchange",
            Service::Other => "other",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Decision {
    Allow,
    #[default]
    Deny,
    /// Held for a human (a learning sandbox's pull request).
    Held,
    /// Recorded as a proposal, not done (a sandbox in observe mode).
    Proposed,
}

impl Decision {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
            Decision::Held => "held",
            Decision::Proposed => "proposed",
        }
    }
}

#[derive(Debug, Default, Clone, Serialize)]
pub(crate) struct RefUpdate {
    pub old: String,
    pub new: String,
    #[serde(rename = "ref")]
    pub refname: String,
}

/// What one request did.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Event {
    pub ts: String,
    pub sandbox: String,
    /// The client's address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    pub method: String,
    pub host: String,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repo: Option<String>,
    pub service: Service,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ref_updates: Vec<RefUpdate>,
    pub decision: Decision,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    pub bytes_in: u64,
    pub bytes_out: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_status: Option<u16>,
    pub status: u16,
    pub latency_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// A push's inspection: what it found (accepted pushes) and the bytes sent on to GitHub.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub push: Option<PushSummary>,
    /// The proposal an observe-mode push or pull request was recorded as.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proposal: Option<i64>,
    /// A token exchange: who asked, under which policy, for what.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exchange: Option<Exchange>,
}

/// What a token exchange was: the OIDC token's issuer and subject (once verified), the policy
/// read (`OWNER/REPO/PATH@BLOB`), the scope and the permissions minted.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Exchange {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub issuer: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub subject: String,
    pub identity: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub policy: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub permissions: String,
}

/// What push inspection saw.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct PushSummary {
    /// `accepted` or the rule that refused it (`force`, `protected_paths`, `max_file_bytes`,
    /// `max_push_bytes`, `secret_scan`, `pack`, `inspection`).
    pub verdict: String,
    /// New commits (not yet at GitHub).
    pub commits: u64,
    /// Paths the push adds, changes or deletes (its net change, per ref).
    pub changed_paths: u64,
    pub pack_bytes: u64,
    /// Bytes of the pack sent on to GitHub: all of it for an accepted push, less (never the
    /// trailer) for a refused one.
    pub pack_bytes_upstream: u64,
}

pub(crate) struct Audit {
    file: Option<Mutex<AuditFile>>,
    pub metrics: metrics::Metrics,
    /// OpenTelemetry's exporters (off unless configured).
    pub telemetry: telemetry::Telemetry,
}

struct AuditFile {
    path: PathBuf,
    file: std::fs::File,
    size: u64,
    max: Option<u64>,
}

impl AuditFile {
    fn open(path: &Path, max: Option<u64>) -> std::io::Result<AuditFile> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        let size = file.metadata()?.len();
        Ok(AuditFile {
            path: path.to_owned(),
            file,
            size,
            max,
        })
    }

    fn write(&mut self, line: &[u8]) -> std::io::Result<()> {
        if let Some(max) = self.max
            && self.size > 0
            && self.size + line.len() as u64 > max
        {
            let mut old = self.path.clone().into_os_string();
            old.push(".1");
            std::fs::rename(&self.path, &old)?;
            *self = AuditFile::open(&self.path, self.max)?;
        }
        self.file.write_all(line)?;
        self.size += line.len() as u64;
        Ok(())
    }
}

impl Event {
    /// A refused request, until the verdict says otherwise.
    pub(crate) fn new(
        sandbox: &str,
        source: Option<String>,
        method: &str,
        host: &str,
        path: &str,
    ) -> Event {
        Event {
            ts: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            sandbox: sandbox.to_owned(),
            source,
            method: method.to_owned(),
            host: host.to_owned(),
            path: path.to_owned(),
            repo: None,
            service: Service::Other,
            ref_updates: vec![],
            decision: Decision::Deny,
            reason: String::new(),
            bytes_in: 0,
            bytes_out: 0,
            upstream_status: None,
            status: 0,
            latency_ms: 0,
            token: None,
            push: None,
            proposal: None,
            exchange: None,
        }
    }
}

impl Audit {
    /// Opens (appends to) the audit file at `path`, 0600; rotated past `max` bytes.
    pub(crate) fn open(path: Option<&Path>, max: Option<u64>) -> std::io::Result<Audit> {
        let file = path
            .map(|p| AuditFile::open(p, max).map(Mutex::new))
            .transpose()?;
        Ok(Audit {
            file,
            metrics: metrics::Metrics::default(),
            telemetry: telemetry::Telemetry::off(),
        })
    }

    /// With OpenTelemetry's exporters: each recorded event ends its request's span.
    pub(crate) fn with_telemetry(self, telemetry: telemetry::Telemetry) -> Audit {
        Audit { telemetry, ..self }
    }

    /// Reopens the audit file at its path (after logrotate moved it away).
    pub(crate) fn reopen(&self) -> std::io::Result<()> {
        if let Some(f) = &self.file {
            let mut f = f.lock().unwrap_or_else(|e| e.into_inner());
            *f = AuditFile::open(&f.path, f.max)?;
        }
        Ok(())
    }

    pub(crate) fn record(&self, e: &Event) {
        self.record_in(e, None);
    }

    /// Records `e`, ending the request's span `cx` (OpenTelemetry) with it.
    pub(crate) fn record_in(&self, e: &Event, cx: Option<&opentelemetry::Context>) {
        self.telemetry.finish(cx, e);
        self.metrics.request(&e.sandbox, e.service, e.decision);
        self.metrics.bytes(&e.sandbox, e.bytes_in, e.bytes_out);
        // A path, a ref name or a reason may quote what a sandbox sent, a credential too:
        // whatever the scanner knows is redacted from the log and the file alike.
        let redact = ghapp_gitproto::secrets::redact;
        macro_rules! log {
            ($level:ident) => {
                tracing::$level!(
                    sandbox = %e.sandbox, method = %e.method, path = %redact(&e.path),
                    decision = e.decision.as_str(), reason = %redact(&e.reason), status = e.status,
                    token = e.token.as_deref().unwrap_or("-"), "request"
                )
            };
        }
        match &self.file {
            Some(f) => {
                log!(debug);
                if let Ok(line) = serde_json::to_string(e) {
                    let mut line = redact(&line).into_owned().into_bytes();
                    line.push(b'\n');
                    let mut f = f.lock().unwrap_or_else(|e| e.into_inner());
                    if let Err(err) = f.write(&line) {
                        tracing::error!("cannot write the audit log {}: {err}", f.path.display());
                    }
                }
            }
            None => log!(info),
        }
    }

    /// The Prometheus text exposition.
    pub(crate) fn metrics_text(&self) -> String {
        self.metrics.encode()
    }
}

/// What one run of the pipeline came to: assembled from what its stages returned, and made
/// into the audit event once ([`Event::of`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct Outcome {
    pub service: Service,
    pub repo: Option<String>,
    pub ref_updates: Vec<RefUpdate>,
    pub decision: Decision,
    pub reason: String,
    /// The status the client sees.
    pub status: u16,
    pub upstream_status: Option<u16>,
    /// The token's fingerprint, when one was sent.
    pub token: Option<String>,
    pub push: Option<PushSummary>,
    pub proposal: Option<i64>,
}

impl Outcome {
    /// A request the proxy answered itself with `r`.
    pub(crate) fn refused(service: Service, repo: Option<String>, r: &Refusal) -> Outcome {
        Outcome {
            service,
            repo,
            decision: Decision::Deny,
            reason: r.message.clone(),
            status: r.status.as_u16(),
            ..Outcome::default()
        }
    }
}

/// Where a request came from and what it asked, as the audit names it.
#[derive(Debug, Clone)]
pub(crate) struct Head {
    pub sandbox: String,
    pub source: Option<String>,
    pub method: String,
    pub host: String,
    pub path: String,
}

impl Event {
    /// The event of a request: its head and its outcome (bytes and time are filled in when
    /// it is recorded).
    pub(crate) fn of(head: &Head, o: Outcome) -> Event {
        let mut e = Event::new(
            &head.sandbox,
            head.source.clone(),
            &head.method,
            &head.host,
            &head.path,
        );
        e.service = o.service;
        e.repo = o.repo;
        e.ref_updates = o.ref_updates;
        e.decision = o.decision;
        e.reason = o.reason;
        e.status = o.status;
        e.upstream_status = o.upstream_status;
        e.token = o.token;
        e.push = o.push;
        e.proposal = o.proposal;
        e
    }
}

/// The bytes a request moved, counted as they pass, and when it began.
#[derive(Debug, Clone)]
pub(crate) struct Meter {
    pub start: Instant,
    pub bytes_in: Arc<AtomicU64>,
    pub bytes_out: Arc<AtomicU64>,
    /// The budgets' slots the request holds, given back when its answer has been streamed.
    pub slots: Arc<Mutex<Vec<tokio::sync::OwnedSemaphorePermit>>>,
}

impl Meter {
    pub(crate) fn new() -> Meter {
        Meter {
            start: Instant::now(),
            bytes_in: Arc::new(AtomicU64::new(0)),
            bytes_out: Arc::new(AtomicU64::new(0)),
            slots: Arc::default(),
        }
    }

    pub(crate) fn read(&self, n: u64) {
        self.bytes_in.fetch_add(n, Ordering::Relaxed);
    }
}

/// An event waiting for its answer to be streamed: recorded when dropped (the end of the
/// response body, or an abort), with the bytes counted meanwhile.
pub(crate) struct Pending {
    event: Event,
    meter: Meter,
    audit: Arc<Audit>,
    /// The request's span (OpenTelemetry), ended with the event.
    cx: Option<opentelemetry::Context>,
}

impl Pending {
    pub(crate) fn new(event: Event, meter: Meter, audit: Arc<Audit>) -> Pending {
        Pending {
            event,
            meter,
            audit,
            cx: None,
        }
    }

    /// Ends the request's span `cx` when the event is recorded.
    pub(crate) fn traced(mut self, cx: Option<opentelemetry::Context>) -> Pending {
        self.cx = cx;
        self
    }

    /// `resp` with its body counted and this event recorded when the body has been sent.
    pub(crate) fn attach(self, resp: hyper::Response<Body>) -> hyper::Response<Body> {
        use futures_util::StreamExt;
        use http_body_util::BodyExt;
        let (parts, body) = resp.into_parts();
        let counter = self.meter.bytes_out.clone();
        let mut me = Some(self);
        let frames = http_body_util::BodyStream::new(body).map(move |frame| {
            if let Ok(f) = &frame
                && let Some(d) = f.data_ref()
            {
                counter.fetch_add(d.len() as u64, Ordering::Relaxed);
            }
            if frame.is_err() {
                me.take();
            }
            frame
        });
        hyper::Response::from_parts(
            parts,
            BodyExt::boxed(http_body_util::StreamBody::new(frames)),
        )
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.event.bytes_in = self.meter.bytes_in.load(Ordering::Relaxed);
        self.event.bytes_out = self.meter.bytes_out.load(Ordering::Relaxed);
        self.event.latency_ms = self.meter.start.elapsed().as_millis() as u64;
        self.meter
            .slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.audit.record_in(&self.event, self.cx.as_ref());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(path: &str) -> Event {
        Event::new("a", Some("127.0.0.1".into()), "GET", "h", path)
    }

    #[test]
    fn rotates_past_the_limit_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let a = Audit::open(Some(&path), Some(400)).unwrap();
        for i in 0..6 {
            a.record(&event(&format!("/p/{i}")));
        }
        let cur = std::fs::read_to_string(&path).unwrap();
        let old = std::fs::read_to_string(dir.path().join("audit.jsonl.1")).unwrap();
        assert!(cur.len() <= 400 && old.len() <= 400, "{cur}\n{old}");
        assert!(cur.contains("/p/5"));
        // Each event once, in one of the two files.
        let all = format!("{old}{cur}");
        assert_eq!(all.matches("\"path\":\"/p/4\"").count(), 1);
        // logrotate moved the file away: SIGHUP reopens at the path.
        std::fs::rename(&path, dir.path().join("moved")).unwrap();
        a.reopen().unwrap();
        a.record(&event("/after"));
        assert!(std::fs::read_to_string(&path).unwrap().contains("/after"));
    }
}
