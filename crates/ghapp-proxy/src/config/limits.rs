//! `[limits]`: what keeps one sandbox, or one flood of connections, from taking the proxy down
//! (the gates that enforce them are the proxy's `limits` module).

use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;

/// The configured limits (`[limits]` in the proxy's file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Open connections in all.
    pub max_connections: usize,
    /// Open connections from one source address.
    pub max_connections_per_source: usize,
    /// Connections that have not yet opened a tunnel with valid credentials.
    pub max_unauthenticated: usize,
    /// Open tunnels of one sandbox.
    pub max_tunnels_per_sandbox: usize,
    /// Open connections on each side listener (admin API and page, webhooks, metrics).
    pub max_side_connections: usize,
    /// For a request head, a TLS handshake, and a connection to authenticate.
    pub header_timeout: Duration,
    /// A connection (or tunnel) with no byte in either direction is closed after this.
    pub idle_timeout: Duration,
    /// Reading a body the proxy buffers (a push's command section, an inspected REST body).
    pub body_timeout: Duration,
    /// Bytes held in partial command sections and REST bodies, in all.
    pub max_buffered_bytes: usize,
    /// Wrong proxy credentials from one source address in a minute before it is refused
    /// without a check for the rest of that minute.
    pub login_failures_per_minute: u32,
    /// What one inspected push's objects may inflate to, in all (each object's size as its
    /// header or delta declares it, counted before it is inflated): zlib lets a small pack
    /// declare far more work than it carries.
    pub max_inflated_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            max_connections_per_source: 1024,
            max_unauthenticated: 256,
            max_tunnels_per_sandbox: 256,
            max_side_connections: 256,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            body_timeout: Duration::from_secs(60),
            max_buffered_bytes: 64 << 20,
            login_failures_per_minute: 20,
            max_inflated_bytes: 4 << 30,
        }
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct FileLimits {
    max_connections: Option<usize>,
    max_connections_per_source: Option<usize>,
    max_unauthenticated: Option<usize>,
    max_tunnels_per_sandbox: Option<usize>,
    max_side_connections: Option<usize>,
    header_timeout: Option<String>,
    idle_timeout: Option<String>,
    body_timeout: Option<String>,
    max_buffered_bytes: Option<usize>,
    login_failures_per_minute: Option<u32>,
    max_inflated_bytes: Option<u64>,
}

impl FileLimits {
    pub(super) fn build(self, origin: &str) -> Result<Limits, ConfigError> {
        let d = Limits::default();
        let dur = |v: Option<String>, key: &str, def| -> Result<Duration, ConfigError> {
            match v {
                None => Ok(def),
                Some(s) => humantime::parse_duration(&s)
                    .ok()
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| {
                        ConfigError(format!(
                            "proxy config {origin}: [limits] {key} = {s:?} is not a duration: use e.g. \"30s\" or \"5m\""
                        ))
                    }),
            }
        };
        let count = |v: Option<usize>, key: &str, def: usize| -> Result<usize, ConfigError> {
            match v {
                Some(0) => Err(ConfigError(format!(
                    "proxy config {origin}: [limits] {key} must be at least 1"
                ))),
                Some(n) => Ok(n),
                None => Ok(def),
            }
        };
        Ok(Limits {
            max_connections: count(self.max_connections, "max_connections", d.max_connections)?,
            max_connections_per_source: count(
                self.max_connections_per_source,
                "max_connections_per_source",
                d.max_connections_per_source,
            )?,
            max_unauthenticated: count(
                self.max_unauthenticated,
                "max_unauthenticated",
                d.max_unauthenticated,
            )?,
            max_tunnels_per_sandbox: count(
                self.max_tunnels_per_sandbox,
                "max_tunnels_per_sandbox",
                d.max_tunnels_per_sandbox,
            )?,
            max_side_connections: count(
                self.max_side_connections,
                "max_side_connections",
                d.max_side_connections,
            )?,
            header_timeout: dur(self.header_timeout, "header_timeout", d.header_timeout)?,
            idle_timeout: dur(self.idle_timeout, "idle_timeout", d.idle_timeout)?,
            body_timeout: dur(self.body_timeout, "body_timeout", d.body_timeout)?,
            max_buffered_bytes: count(
                self.max_buffered_bytes,
                "max_buffered_bytes",
                d.max_buffered_bytes,
            )?,
            login_failures_per_minute: self
                .login_failures_per_minute
                .unwrap_or(d.login_failures_per_minute),
            max_inflated_bytes: count(
                self.max_inflated_bytes.map(|b| b as usize),
                "max_inflated_bytes",
                d.max_inflated_bytes as usize,
            )? as u64,
        })
    }
}
