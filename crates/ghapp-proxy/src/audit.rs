//! One JSON line per request, and Prometheus counters. Tokens appear only as fingerprints.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;

#[derive(Debug, Default, Clone, Serialize)]
pub struct RefUpdate {
    pub old: String,
    pub new: String,
    #[serde(rename = "ref")]
    pub refname: String,
}

/// What one request did.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub ts: String,
    pub sandbox: String,
    pub method: String,
    pub host: String,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repo: Option<String>,
    /// `git-upload-pack`, `git-receive-pack`, `rest`, `connect`, `other`.
    pub service: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ref_updates: Vec<RefUpdate>,
    /// `allow` or `deny`.
    pub decision: String,
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
}

pub struct Audit {
    file: Option<Mutex<std::fs::File>>,
    metrics: Mutex<BTreeMap<String, u64>>,
}

impl Audit {
    pub fn open(path: Option<&Path>) -> std::io::Result<Audit> {
        let file = match path {
            Some(p) => {
                if let Some(dir) = p.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                Some(Mutex::new(
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .mode(0o600)
                        .open(p)?,
                ))
            }
            None => None,
        };
        Ok(Audit {
            file,
            metrics: Mutex::new(BTreeMap::new()),
        })
    }

    pub fn record(&self, e: &Event) {
        {
            let mut m = self.metrics.lock().unwrap_or_else(|e| e.into_inner());
            *m.entry(format!(
                "ghapp_proxy_requests_total{{sandbox=\"{}\",service=\"{}\",decision=\"{}\"}}",
                e.sandbox, e.service, e.decision
            ))
            .or_default() += 1;
            *m.entry(format!(
                "ghapp_proxy_bytes_total{{sandbox=\"{}\",direction=\"in\"}}",
                e.sandbox
            ))
            .or_default() += e.bytes_in;
            *m.entry(format!(
                "ghapp_proxy_bytes_total{{sandbox=\"{}\",direction=\"out\"}}",
                e.sandbox
            ))
            .or_default() += e.bytes_out;
        }
        tracing::info!(
            sandbox = %e.sandbox, method = %e.method, path = %e.path, decision = %e.decision,
            reason = %e.reason, status = e.status, token = e.token.as_deref().unwrap_or("-"),
            "request"
        );
        if let Some(f) = &self.file
            && let Ok(mut line) = serde_json::to_vec(e)
        {
            line.push(b'\n');
            let mut f = f.lock().unwrap_or_else(|e| e.into_inner());
            let _ = f.write_all(&line);
        }
    }

    pub fn count(&self, name: &str) {
        let mut m = self.metrics.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry(name.to_owned()).or_default() += 1;
    }

    /// Prometheus text exposition.
    pub fn metrics_text(&self) -> String {
        let m = self.metrics.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::from(
            "# HELP ghapp_proxy_requests_total Requests by sandbox, service and decision.\n# TYPE ghapp_proxy_requests_total counter\n# HELP ghapp_proxy_bytes_total Body bytes by sandbox and direction.\n# TYPE ghapp_proxy_bytes_total counter\n",
        );
        for (k, v) in m.iter() {
            out.push_str(&format!("{k} {v}\n"));
        }
        out
    }
}

/// Collects an event while a request streams; records it when dropped (the end of the
/// response body, or an abort).
pub struct Pending {
    pub event: Event,
    pub start: Instant,
    pub bytes_in: Arc<AtomicU64>,
    pub bytes_out: u64,
    pub audit: Arc<Audit>,
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.event.bytes_in = self.bytes_in.load(Ordering::Relaxed);
        self.event.bytes_out = self.bytes_out;
        self.event.latency_ms = self.start.elapsed().as_millis() as u64;
        self.audit.record(&self.event);
    }
}
