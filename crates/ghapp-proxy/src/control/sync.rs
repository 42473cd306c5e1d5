//! The sandbox table kept current: swapped whole on SIGHUP (the file read again) and whenever
//! the state store's generation moves (every replica polls it each second), the sandboxes gone
//! cut off; webhook deliveries another replica received applied here too.

use std::sync::Arc;
use std::time::Duration;

use super::ControlPlane;
use crate::config::ProxyConfig;
use crate::live::{Live, Stored};

/// How often each replica looks for changes in the state store.
const STORE_POLL: Duration = Duration::from_secs(1);

impl ControlPlane {
    /// Runs the control loops until the runtime ends: the store's generation polled, SIGHUP
    /// (the audit log reopened, the configuration reloaded).
    pub(crate) fn spawn_loops(self: &Arc<Self>) {
        if let Some(store) = self.store().cloned() {
            let me = self.clone();
            tokio::spawn(async move {
                let mut seen = store.generation().await.ok();
                loop {
                    tokio::time::sleep(STORE_POLL).await;
                    let now = store.generation().await.ok();
                    if now.is_some() && now != seen {
                        seen = now;
                        me.sync_store().await;
                        // Webhook deliveries another replica received.
                        let since = ghapp_core::jwt::unix_now() - 600;
                        for (id, summary) in store.deliveries_since(since).await.unwrap_or_default()
                        {
                            if me.applied(&id) {
                                me.apply_event(&summary).await;
                            }
                        }
                    }
                }
            });
        }
        if let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        {
            let me = self.clone();
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    match me.data.audit.reopen() {
                        Ok(()) => tracing::info!("SIGHUP: the audit log was reopened"),
                        Err(e) => tracing::error!("SIGHUP: cannot reopen the audit log: {e}"),
                    }
                    // Reading the file and the secrets it names blocks: off the runtime.
                    let me = me.clone();
                    let _ = tokio::task::spawn_blocking(move || me.reload()).await;
                }
            });
        }
    }

    /// Reads the config file again and swaps in its sandboxes and egress. Open tunnels stay
    /// open; their next request is decided on the new policy. A file that does not load keeps
    /// the old configuration, and says why.
    pub(crate) fn reload(&self) {
        let Some(path) = &self.config_path else {
            return;
        };
        let new = match ProxyConfig::load(path) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(
                    "SIGHUP: the configuration was not reloaded, the old one stays: {e}"
                );
                return;
            }
        };
        let cfg = &self.data.cfg;
        let differs = |a: &[ghapp_core::config::AppConfig], b: &[ghapp_core::config::AppConfig]| {
            a.len() != b.len()
                || a.iter().zip(b).any(|(x, y)| {
                    x.github != y.github
                        || x.ident != y.ident
                        || x.installation_id != y.installation_id
                        || x.owners != y.owners
                })
        };
        if differs(&new.apps, &cfg.apps) || new.upstream_ca_file != cfg.upstream_ca_file {
            tracing::warn!(
                "SIGHUP: [[app]] and upstream_ca_file changes take effect on restart; the sandboxes and egress are reloaded"
            );
        }
        let before: Vec<String> = self
            .data
            .live
            .get()
            .file
            .iter()
            .map(|s| s.name.clone())
            .collect();
        let after: Vec<String> = new.sandboxes.iter().map(|s| s.name.clone()).collect();
        let added: Vec<&str> = after
            .iter()
            .filter(|n| !before.contains(n))
            .map(String::as_str)
            .collect();
        let removed: Vec<&str> = before
            .iter()
            .filter(|n| !after.contains(n))
            .map(String::as_str)
            .collect();
        let stored = self.data.live.get().stored.clone();
        let live = self.data.live.set(Live::with(
            Arc::new(new.sandboxes.clone()),
            stored,
            new.egress,
            new.egress_allow,
            None,
        ));
        let names = |v: &[&str]| {
            if v.is_empty() {
                "none".to_owned()
            } else {
                v.join(", ")
            }
        };
        tracing::info!(
            "SIGHUP: the configuration was reloaded: {} sandboxes (added: {}; removed: {})",
            live.sandboxes.len(),
            names(&added),
            names(&removed)
        );
    }

    /// Reads the store's sandboxes again and swaps them in; the ones no longer active are cut
    /// off (tunnels closed, tokens revoked at GitHub and dropped). Returns the tokens revoked.
    /// Runs on every replica when the store's generation moves.
    pub(crate) async fn sync_store(&self) -> usize {
        let Some(store) = self.store() else {
            return 0;
        };
        let all = match store.all().await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("cannot read the sandboxes of the state store: {e}");
                return 0;
            }
        };
        let before = self.data.live.get();
        let mut stored = Stored::default();
        // What did not change since the last read is kept as it was compiled.
        let mut unchanged = std::collections::HashSet::new();
        for s in all {
            let active = s.disconnected_at.is_none();
            let cfg = match before.stored.unchanged(&s.name, &s.spec, active) {
                Some(c) => {
                    unchanged.insert(s.name.clone());
                    Ok(c.clone())
                }
                None => self.data.cfg.stored_sandbox(&s.name, &s.spec),
            };
            match cfg {
                Ok(c) => {
                    stored.specs.insert(s.name.clone(), (s.spec, active));
                    if active {
                        stored.active.push(c);
                    } else {
                        stored.disconnected.push(c);
                    }
                }
                Err(e) => tracing::warn!("a stored sandbox is not loaded: {e}"),
            }
        }
        let live = self.data.live.set(Live::with(
            before.file.clone(),
            Arc::new(stored),
            before.egress,
            before.egress_allow.clone(),
            Some((&before, &unchanged)),
        ));
        let mut revoked = 0;
        for old in &before.sandboxes {
            if live.sandbox(old.name()).is_none() {
                revoked += self.data.cut_off(old).await;
            }
        }
        revoked
    }
}
