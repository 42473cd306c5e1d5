//! The sandbox table: the sandboxes (identity and policy) and egress, as one value swapped
//! whole by the control plane (SIGHUP, the state store). Each request in an open tunnel reads
//! its sandbox from the current value.

use std::sync::{Arc, PoisonError, RwLock};

use crate::config::{self, ProxyConfig, SandboxConfig};
use crate::egress;
use crate::sandbox::Sandbox;

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

/// The sandbox table as it is now: read by every request, swapped whole by the control plane
/// (a SIGHUP reload, a change in the state store).
#[derive(Debug)]
pub(crate) struct Snapshot(RwLock<Arc<Live>>);

impl Snapshot {
    pub(crate) fn new(live: Live) -> Snapshot {
        Snapshot(RwLock::new(Arc::new(live)))
    }

    pub(crate) fn get(&self) -> Arc<Live> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn set(&self, live: Live) -> Arc<Live> {
        let live = Arc::new(live);
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = live.clone();
        live
    }
}
