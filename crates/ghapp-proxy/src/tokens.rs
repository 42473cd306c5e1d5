//! The sandboxes' tokens: one broker per `[[app]]` (a sandbox's owner picks the first app that
//! serves it), each sandbox's token narrowed to its repositories of one owner, cached until
//! shortly before it expires; the owners GitHub told the proxy the app was removed from.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use ghapp_core::broker::{Broker, TokenSource};
use ghapp_core::cache::CachedToken;
use hyper::StatusCode;

use crate::audit::Audit;
use crate::respond::Refusal;
use crate::sandbox::Sandbox;

/// Seconds a sandbox is told to wait when no token can be minted.
const MINT_RETRY_AFTER: u64 = 10;

pub(crate) struct Tokens {
    /// In the config's order.
    brokers: Vec<Broker>,
    /// Owners (lowercase) the app was removed from, by GitHub's `installation` event.
    removed: Mutex<HashSet<String>>,
    audit: Arc<Audit>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("apps", &self.brokers.len())
            .finish_non_exhaustive()
    }
}

impl Tokens {
    pub(crate) fn new(brokers: Vec<Broker>, audit: Arc<Audit>) -> Tokens {
        Tokens {
            brokers,
            removed: Mutex::default(),
            audit,
        }
    }

    /// The broker of the app that mints for `owner`.
    pub(crate) fn broker_for(&self, owner: &str) -> Option<&Broker> {
        self.brokers
            .iter()
            .find(|b| b.app().serves_owner(Some(owner)))
    }

    pub(crate) fn brokers(&self) -> &[Broker] {
        &self.brokers
    }

    /// Whether the app is installed on each of `sb`'s repositories: per repository, the
    /// installation, or why not (a misspelt repository is not installed).
    pub(crate) async fn installations(
        &self,
        sb: &Sandbox,
    ) -> Vec<(
        ghapp_gitproto::repo::RepoName,
        Result<u64, ghapp_core::Error>,
    )> {
        let mut out = Vec::new();
        for repo in &sb.cfg.repos {
            let owner = repo.owner();
            let found = match self.broker_for(owner) {
                None => Err(ghapp_core::Error::Config(format!(
                    "no [[app]] serves {owner}: add it to an app's owners"
                ))),
                Some(b) => {
                    let mut req = sb.token_request(owner);
                    req.repositories = vec![repo.repo().to_owned()];
                    b.installation_id(&req).await
                }
            };
            out.push((repo.clone(), found));
        }
        out
    }

    /// Marks `owner` removed (GitHub's `installation` `deleted` or `suspend`), or served again.
    pub(crate) fn set_removed(&self, owner: &str, removed: bool) {
        let mut set = self.removed.lock().unwrap_or_else(PoisonError::into_inner);
        if removed {
            set.insert(owner.to_ascii_lowercase());
        } else {
            set.remove(&owner.to_ascii_lowercase());
        }
    }

    /// The sandbox's token for `owner`: cached, or minted.
    pub(crate) async fn token(&self, sb: &Sandbox, owner: &str) -> Result<CachedToken, Refusal> {
        if self
            .removed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&owner.to_ascii_lowercase())
        {
            return Err(Refusal::text(
                StatusCode::FORBIDDEN,
                format!(
                    "the app was removed from {owner} (GitHub's installation event): ask an owner of {owner} to install it again"
                ),
            ));
        }
        let Some(broker) = self.broker_for(owner) else {
            return Err(Refusal::text(
                StatusCode::FORBIDDEN,
                format!("no app of this proxy serves {owner} (the [[app]] owners)"),
            ));
        };
        broker
            .token_with_source(&sb.token_request(owner))
            .await
            .map(|(t, source)| {
                match source {
                    TokenSource::Cache => self.audit.metrics.cache_hits.inc(),
                    TokenSource::Minted => self.audit.metrics.mints.inc(),
                };
                crate::audit::telemetry::note(
                    "ghapp.token.source",
                    match source {
                        TokenSource::Cache => "cache",
                        TokenSource::Minted => "minted",
                    },
                );
                t
            })
            .map_err(|e| {
                let (status, what) = match e {
                    ghapp_core::Error::Unreachable { .. } => {
                        (StatusCode::BAD_GATEWAY, "GitHub is unreachable")
                    }
                    _ => (StatusCode::SERVICE_UNAVAILABLE, "cannot mint a token"),
                };
                tracing::warn!("{what}: {e}");
                // Nothing the sandbox did: it may try again, and the proxy will mint again.
                Refusal::text(status, format!("{what}: {e}")).retry_after(MINT_RETRY_AFTER)
            })
    }

    /// Drops a token GitHub no longer accepts (revoked by an admin, by secret scanning, by
    /// `ghapp revoke`) from memory and disk, so no sandbox is handed it again.
    pub(crate) fn forget(&self, sb: &Sandbox, owner: &str, token: &CachedToken) {
        let req = sb.token_request(owner);
        let Some(broker) = self.broker_for(owner) else {
            return;
        };
        let forget = || broker.forget(&req, token.token.expose());
        match tokio::task::block_in_place(forget) {
            Ok(_) => tracing::warn!(
                "GitHub refused token {} (revoked?); it is dropped and the next request mints",
                token.token.fingerprint()
            ),
            Err(e) => tracing::warn!("cannot drop a refused token from the cache: {e}"),
        }
        self.audit.metrics.tokens_dropped.inc();
    }

    /// Drops the sandbox's cached token for `owner` from memory and disk, revoking it at
    /// GitHub first when `revoke`. Whether there was one (and, revoking, GitHub revoked it).
    pub(crate) async fn discard(&self, sb: &Sandbox, owner: &str, revoke: bool) -> bool {
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
}
