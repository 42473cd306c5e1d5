//! The sandbox table: the sandboxes (identity and policy) and egress, as one value swapped
//! whole by the control plane (SIGHUP, the state store). Each request in an open tunnel reads
//! its sandbox from the current value.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use crate::config::{self, ProxyConfig, SandboxConfig};
use crate::egress;
use crate::sandbox::{Login, Sandbox};

/// What a reload replaces: the sandboxes (identity and policy) and where tunnels may go.
#[derive(Debug)]
pub(crate) struct Live {
    /// The file's sandboxes, then the store's active ones.
    pub sandboxes: Vec<Arc<Sandbox>>,
    /// Where each name is in `sandboxes`.
    index: HashMap<String, usize>,
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
    /// Each one's stored keys as read and whether it was active: an unchanged row is not read
    /// again ([`Stored::unchanged`]).
    pub specs: HashMap<String, (serde_json::Value, bool)>,
}

impl Stored {
    /// The configuration of `name` as read last time, when its stored keys (`spec`) and state
    /// are the same now.
    pub(crate) fn unchanged(
        &self,
        name: &str,
        spec: &serde_json::Value,
        active: bool,
    ) -> Option<&SandboxConfig> {
        let (was, was_active) = self.specs.get(name)?;
        if was != spec || *was_active != active {
            return None;
        }
        let list = if active {
            &self.active
        } else {
            &self.disconnected
        };
        list.iter().find(|c| c.name == name)
    }
}

impl Live {
    pub(crate) fn of(cfg: &ProxyConfig) -> Live {
        Live::with(
            Arc::new(cfg.sandboxes.clone()),
            Arc::default(),
            cfg.egress,
            cfg.egress_allow.clone(),
            None,
        )
    }

    /// The file's sandboxes and the store's active ones (a stored one never shadows the file's).
    /// A stored sandbox whose keys did not change since `before` keeps its compiled value (a
    /// fleet of thousands is not compiled again for each one added).
    pub(crate) fn with(
        file: Arc<Vec<SandboxConfig>>,
        stored: Arc<Stored>,
        egress: config::Egress,
        egress_allow: Vec<egress::Allow>,
        before: Option<(&Live, &std::collections::HashSet<String>)>,
    ) -> Live {
        let mut sandboxes: Vec<Arc<Sandbox>> = file
            .iter()
            .map(|s| Arc::new(Sandbox::new(s.clone())))
            .collect();
        let mut index: HashMap<String, usize> = sandboxes
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name().to_owned(), i))
            .collect();
        for s in &stored.active {
            if index.contains_key(&s.name) {
                continue;
            }
            let kept = before
                .filter(|(_, unchanged)| unchanged.contains(&s.name))
                .and_then(|(live, _)| live.sandbox(&s.name))
                .filter(|sb| !live_is_file(&file, sb.name()))
                .cloned();
            index.insert(s.name.clone(), sandboxes.len());
            sandboxes.push(kept.unwrap_or_else(|| Arc::new(Sandbox::new(s.clone()))));
        }
        Live {
            sandboxes,
            index,
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
        self.index.get(name).and_then(|i| self.sandboxes.get(*i))
    }

    /// Checks a `Proxy-Authorization` value: the sandbox its name names (the name is what the
    /// client sent, not a secret), its secret compared in constant time.
    pub(crate) fn login(&self, header: Option<&str>) -> Login {
        let Some(v) = header else {
            return Login::Missing;
        };
        let Some((name, secret)) = ghapp_gitproto::basic::parse(v) else {
            return Login::Wrong(String::new());
        };
        match self
            .sandbox(&name)
            .filter(|sb| sb.cfg.secret.matches(&secret))
        {
            Some(sb) => Login::Ok(sb.clone()),
            None => Login::Wrong(name.chars().filter(|c| !c.is_control()).take(64).collect()),
        }
    }
}

/// Whether the file names a sandbox `name` (the file's are always compiled afresh).
fn live_is_file(file: &[SandboxConfig], name: &str) -> bool {
    file.iter().any(|f| f.name == name)
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
