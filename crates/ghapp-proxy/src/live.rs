//! What SIGHUP reloads: the sandboxes (identity and policy) and egress, as one value swapped
//! whole. Each request in an open tunnel reads its sandbox from the current value.

use std::sync::Arc;

use crate::config::{self, ProxyConfig};
use crate::sandbox::Sandbox;
use crate::{Proxy, egress};

/// What a reload replaces: the sandboxes (identity and policy) and where tunnels may go.
#[derive(Debug)]
pub(crate) struct Live {
    pub sandboxes: Vec<Arc<Sandbox>>,
    pub egress: config::Egress,
    pub egress_allow: Vec<egress::Allow>,
}

impl Live {
    pub(crate) fn of(cfg: &ProxyConfig) -> Live {
        Live {
            sandboxes: cfg
                .sandboxes
                .iter()
                .map(|s| Arc::new(Sandbox::new(s.clone())))
                .collect(),
            egress: cfg.egress,
            egress_allow: cfg.egress_allow.clone(),
        }
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
        let live = Arc::new(Live::of(&new));
        let n = live.sandboxes.len();
        *self
            .live
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = live;
        tracing::info!("SIGHUP: the configuration was reloaded ({n} sandboxes)");
    }
}
