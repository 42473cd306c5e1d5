//! The control plane: what changes the data plane's world, and the listeners people and
//! GitHub use to change it.
//!
//! - `sync`: the sandbox table swapped whole ([`crate::live::Snapshot`]): a SIGHUP reload of
//!   the file, a change in the state store (each replica polls its generation every second);
//!   a sandbox gone is cut off (tunnels closed, tokens revoked).
//! - `admin`, `page`: the admin API and the approvals page, on `admin_listen`.
//! - `approvals`: a person's decision on a held pull request.
//! - `webhook`: GitHub's deliveries, on `webhook_listen`.
//! - `health`: `/metrics`, `/healthz`, `/readyz`, on `metrics_listen`.

pub(crate) mod admin;
mod approvals;
mod health;
mod page;
mod sync;
pub(crate) mod webhook;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use crate::pipeline::DataPlane;
use crate::store::Store;

pub(crate) struct ControlPlane {
    pub data: Arc<DataPlane>,
    /// The file SIGHUP reloads the sandboxes from (`None`: a proxy built from a value).
    config_path: Option<PathBuf>,
    /// Signed-in sessions of the approvals page.
    sessions: page::Sessions,
    /// Webhook deliveries this replica has acted on.
    deliveries: Mutex<HashSet<String>>,
    /// What bounds unverified deliveries.
    hooks: webhook::Hooks,
    /// Wrong admin tokens on the approvals page, per source.
    signins: crate::limits::Failures,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("config_path", &self.config_path)
            .finish_non_exhaustive()
    }
}

impl ControlPlane {
    pub(crate) fn new(data: Arc<DataPlane>, config_path: Option<PathBuf>) -> ControlPlane {
        ControlPlane {
            sessions: page::Sessions::new(data.cfg.admin_token.as_ref()),
            data,
            config_path,
            deliveries: Mutex::default(),
            hooks: webhook::Hooks::default(),
            signins: crate::limits::Failures::new(page::SIGNIN_FAILURES_PER_MINUTE),
        }
    }

    pub(crate) fn store(&self) -> Option<&Store> {
        self.data.store.get()
    }

    /// Marks `delivery` applied on this replica; false when it was already.
    pub(crate) fn applied(&self, delivery: &str) -> bool {
        let mut seen = self
            .deliveries
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if seen.len() > 10_000 {
            seen.clear();
        }
        seen.insert(delivery.to_owned())
    }
}
