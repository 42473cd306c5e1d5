//! What SIGHUP reloads: the sandboxes (identity and policy) and egress, as one value swapped
//! whole. Each request in an open tunnel reads its sandbox from the current value.

use std::sync::Arc;

use crate::config::{self, ProxyConfig, SandboxConfig};
use crate::sandbox::Sandbox;
use crate::{Proxy, egress};

/// What a reload replaces: the sandboxes (identity and policy) and where tunnels may go.
#[derive(Debug)]
pub(crate) struct Live {
    /// The file's sandboxes, then the store's active ones.
    pub sandboxes: Vec<Arc<Sandbox>>,
    pub egress: config::Egress,
    pub egress_allow: Vec<egress::Allow>,
    /// The file's sandboxes (kept to rebuild when the store changes).
    pub file: Arc<Vec<SandboxConfig>>,
    /// The store's sandboxes, active and disconnected.
    pub stored: Arc<Stored>,
}

/// The sandboxes of the state store.
#[derive(Debug, Default)]
pub(crate) struct Stored {
    pub active: Vec<SandboxConfig>,
    /// Disconnected: a new tunnel with their credentials is told so.
    pub disconnected: Vec<SandboxConfig>,
}

impl Live {
    pub(crate) fn of(cfg: &ProxyConfig) -> Live {
        Live::with(
            Arc::new(cfg.sandboxes.clone()),
            Arc::default(),
            cfg.egress,
            cfg.egress_allow.clone(),
        )
    }

    /// The file's sandboxes and the store's active ones (a stored one never shadows the file's).
    pub(crate) fn with(
        file: Arc<Vec<SandboxConfig>>,
        stored: Arc<Stored>,
        egress: config::Egress,
        egress_allow: Vec<egress::Allow>,
    ) -> Live {
        let mut sandboxes: Vec<Arc<Sandbox>> = file
            .iter()
            .map(|s| Arc::new(Sandbox::new(s.clone())))
            .collect();
        for s in &stored.active {
            if !file.iter().any(|f| f.name == s.name) {
                sandboxes.push(Arc::new(Sandbox::new(s.clone())));
            }
        }
        Live {
            sandboxes,
            egress,
            egress_allow,
            file,
            stored,
        }
    }

    /// The disconnected sandbox these credentials are, if they are one.
    pub(crate) fn disconnected(&self, name: &str, secret: &str) -> bool {
        self.stored
            .disconnected
            .iter()
            .any(|s| s.name == name && s.secret.matches(secret))
    }

    pub(crate) fn sandbox(&self, name: &str) -> Option<&Arc<Sandbox>> {
        self.sandboxes.iter().find(|s| s.name() == name)
    }
}

impl Proxy {
    /// SIGHUP reloads the sandboxes, their policy and egress from `path` (with the overrides
    /// already applied to this proxy's listeners and CA kept).
    pub fn reload_from(mut self, path: &std::path::Path) -> Proxy {
        self.config_path = Some(path.to_owned());
        self
    }

    /// The reloadable part as it is now.
    pub(crate) fn live(&self) -> Arc<Live> {
        self.live
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
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
        let differs = |a: &[ghapp_core::config::AppConfig], b: &[ghapp_core::config::AppConfig]| {
            a.len() != b.len()
                || a.iter().zip(b).any(|(x, y)| {
                    x.github != y.github
                        || x.ident != y.ident
                        || x.installation_id != y.installation_id
                        || x.owners != y.owners
                })
        };
        if differs(&new.apps, &self.cfg.apps) || new.upstream_ca_file != self.cfg.upstream_ca_file {
            tracing::warn!(
                "SIGHUP: [[app]] and upstream_ca_file changes take effect on restart; the sandboxes and egress are reloaded"
            );
        }
        let stored = self.live().stored.clone();
        let live = Arc::new(Live::with(
            Arc::new(new.sandboxes.clone()),
            stored,
            new.egress,
            new.egress_allow,
        ));
        let n = live.sandboxes.len();
        *self
            .live
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = live;
        tracing::info!("SIGHUP: the configuration was reloaded ({n} sandboxes)");
    }
}

impl Proxy {
    /// Reads the store's sandboxes again and swaps them in; the ones no longer active are cut
    /// off (tunnels closed, tokens revoked at GitHub and dropped). Returns the tokens revoked.
    /// Runs on every replica when the store's generation moves.
    pub(crate) async fn sync_store(&self) -> usize {
        let Some(store) = self.store.get() else {
            return 0;
        };
        let all = match store.all().await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("cannot read the sandboxes of the state store: {e}");
                return 0;
            }
        };
        let mut stored = Stored::default();
        for s in all {
            match self.cfg.stored_sandbox(&s.name, &s.spec) {
                Ok(c) if s.disconnected_at.is_none() => stored.active.push(c),
                Ok(c) => stored.disconnected.push(c),
                Err(e) => tracing::warn!("a stored sandbox is not loaded: {e}"),
            }
        }
        let before = self.live();
        let live = Arc::new(Live::with(
            before.file.clone(),
            Arc::new(stored),
            before.egress,
            before.egress_allow.clone(),
        ));
        *self
            .live
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = live.clone();
        let mut revoked = 0;
        for old in &before.sandboxes {
            if live.sandbox(old.name()).is_none() {
                revoked += self.cut_off(old).await;
            }
        }
        revoked
    }

    /// A sandbox that is gone: its open tunnels closed, its cached tokens revoked at GitHub
    /// and dropped, its LFS grants forgotten. Returns the tokens revoked.
    pub(crate) async fn cut_off(&self, sb: &Sandbox) -> usize {
        if let Some(cut) = self
            .cuts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(sb.name())
        {
            cut.cancel();
        }
        self.lfs.forget(sb.name());
        let mut owners: Vec<&str> = sb.cfg.repos.iter().map(|r| r.owner()).collect();
        owners.sort_unstable_by_key(|o| o.to_ascii_lowercase());
        owners.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
        let mut revoked = 0;
        for owner in owners {
            if self.drop_token(sb, owner, true).await {
                revoked += 1;
            }
        }
        tracing::info!(
            "sandbox {} disconnected: tunnels closed, {revoked} token(s) revoked",
            sb.name()
        );
        revoked
    }

    /// Drops the sandbox's cached token for `owner` from memory and disk, revoking it at
    /// GitHub first when `revoke`. Whether there was one (and, revoking, GitHub revoked it).
    pub(crate) async fn drop_token(&self, sb: &Sandbox, owner: &str, revoke: bool) -> bool {
        let Some(broker) = self.broker_for(owner) else {
            return false;
        };
        let req = sb.token_request(owner);
        let Some(token) = broker.cached(&req) else {
            return false;
        };
        let mut done = true;
        if revoke {
            done = match broker.revoke(&token).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(
                        "sandbox {}: cannot revoke token {}: {e}",
                        sb.name(),
                        token.token.fingerprint()
                    );
                    false
                }
            };
        }
        let _ = broker.forget(&req, token.token.expose());
        done
    }

    /// The signal that closes `name`'s tunnels when it is cut off.
    pub(crate) fn cut_signal(&self, name: &str) -> tokio_util::sync::CancellationToken {
        self.cuts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(name.to_owned())
            .or_default()
            .clone()
    }
}
