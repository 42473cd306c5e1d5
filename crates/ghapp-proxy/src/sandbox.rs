//! A sandbox: its identity (name and secret) and its policy, checked once from the
//! configuration and passed around as `Arc<Sandbox>`.

use std::sync::Arc;

use ghapp_core::broker::{Permissions, TokenRequest};
use ghapp_gitproto::policy::PushPolicy;
use ghapp_gitproto::repo::RepoName;

use crate::config::SandboxConfig;

/// Who is asking, in a tunnel: the sandbox, the client's address, the host it tunnelled to.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    pub sandbox: Arc<Sandbox>,
    pub source: std::net::IpAddr,
    /// `host:port` of the `CONNECT`.
    pub host: String,
}

impl Origin {
    /// How the audit names a request of this tunnel.
    pub(crate) fn head(&self, method: &str, path: &str) -> crate::audit::Head {
        crate::audit::Head {
            sandbox: self.sandbox.name().to_owned(),
            source: Some(self.source.to_string()),
            method: method.to_owned(),
            host: self.host.clone(),
            path: path.to_owned(),
        }
    }
}

#[derive(Debug)]
pub(crate) struct Sandbox {
    pub cfg: SandboxConfig,
    pub push: PushPolicy,
    /// `force`: the refs where a non-fast-forward update is allowed.
    pub force: PushPolicy,
    /// `protected_paths`, compiled.
    pub protected: globset::GlobSet,
    /// `significant.paths`, compiled.
    pub significant: globset::GlobSet,
}

impl Sandbox {
    pub(crate) fn new(cfg: SandboxConfig) -> Sandbox {
        Sandbox {
            push: PushPolicy::new(cfg.push.iter().cloned(), cfg.allow_delete),
            force: PushPolicy::new(cfg.rules.force.iter().cloned(), false),
            protected: globs(&cfg.rules.protected_paths),
            significant: globs(&cfg.significant.paths),
            cfg,
        }
    }

    /// Whether a push may not add, change or delete `path`.
    pub(crate) fn protects(&self, path: &str) -> bool {
        self.protected.is_match(path)
    }

    pub(crate) fn name(&self) -> &str {
        &self.cfg.name
    }

    /// The configured spelling of `owner/repo`, if it is one of the sandbox's repositories.
    pub(crate) fn repo(&self, owner: &str, repo: &str) -> Option<&RepoName> {
        let wanted = RepoName::new(owner, repo)?;
        self.cfg.repos.iter().find(|r| **r == wanted)
    }

    /// As [`Sandbox::repo`], or the reason it is refused.
    pub(crate) fn own_repo(&self, owner: &str, repo: &str) -> Result<RepoName, String> {
        self.repo(owner, repo).cloned().ok_or_else(|| {
            format!(
                "{owner}/{repo} is not among sandbox {}'s repositories",
                self.name()
            )
        })
    }

    /// Whether the sandbox may merge its own pull requests: `allow_merge`, in autonomous mode
    /// only (in the other modes a human decides what lands).
    pub(crate) fn may_merge(&self) -> bool {
        self.cfg.allow_merge && self.cfg.mode == crate::config::Mode::Autonomous
    }

    /// Whether the sandbox may push at all (some ref pattern is allowed).
    pub(crate) fn may_push(&self) -> bool {
        !self.push.patterns.is_empty()
    }

    /// One token per sandbox and owner: narrowed to the sandbox's repositories of that owner;
    /// read-only in observe mode (the fleet guide's observe mode).
    pub(crate) fn token_request(&self, owner: &str) -> TokenRequest {
        TokenRequest {
            owner: Some(owner.to_owned()),
            repositories: self
                .cfg
                .repos
                .iter()
                .filter(|r| r.is_owned_by(owner))
                .map(|r| r.repo().to_owned())
                .collect(),
            permissions: if self.cfg.mode == crate::config::Mode::Observe {
                Permissions::read_only_for_git()
            } else {
                Permissions::default_for_git()
            },
            fit: true,
        }
    }
}

/// Path globs compiled (checked when the configuration was read): `**` crosses directories,
/// `*` does not, compared ignoring case (so `.GitHub/Workflows` is no way around
/// `.github/workflows`).
fn globs(patterns: &[String]) -> globset::GlobSet {
    let mut set = globset::GlobSetBuilder::new();
    for g in patterns {
        if let Ok(g) = globset::GlobBuilder::new(g)
            .literal_separator(true)
            .case_insensitive(true)
            .build()
        {
            set.add(g);
        }
    }
    set.build().unwrap_or_else(|_| globset::GlobSet::empty())
}

/// What a proxy credential check found.
pub(crate) enum Login {
    Missing,
    /// Wrong name or secret: the name tried (shortened, control characters removed), for the
    /// audit.
    Wrong(String),
    Ok(Arc<Sandbox>),
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The sandbox the policy tables test: `agent-a` on `Octo-Org/Widgets`, pushing `agent/*`,
    /// no deletes, one configured REST route.
    pub(crate) fn sandbox() -> Sandbox {
        Sandbox::new(SandboxConfig {
            name: "agent-a".into(),
            secret: crate::config::Credential::Secret(ghapp_core::secret::ProxySecret::new(
                "0123456789abcdef",
            )),
            repos: vec![RepoName::parse("Octo-Org/Widgets").unwrap()],
            push: vec!["agent/*".into()],
            allow_delete: false,
            allow_merge: false,
            weight: 1,
            reviewers: Vec::new(),
            rest: vec![("POST".into(), "/repos/{owner}/{repo}/statuses/{sha}".into())],
            rules: crate::config::PushRules::default(),
            mode: crate::config::Mode::Autonomous,
            significant: crate::config::Significant::default(),
        })
    }
}
