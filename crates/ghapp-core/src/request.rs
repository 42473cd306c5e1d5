//! What a token is asked for, and its cache key: plain data and pure functions, shared by the
//! lean helper (which answers from the cache) and the broker (which mints).

use ghapp_gitproto::repo::RepoName;

use crate::cache::TokenKey;
use crate::config::{AppConfig, ExchangeConfig};
use crate::permissions::Permissions;

/// What a caller wants a token for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// The owner, for installation discovery (`None` only with an explicit installation id).
    pub owner: Option<String>,
    /// Repository names under that owner; empty: all of the installation's repositories.
    pub repositories: Vec<String>,
    /// Empty: the installation's own.
    pub permissions: Permissions,
    /// Treat `permissions` as a ceiling rather than a demand: when the installation grants less
    /// (a read-only installation and the default `contents: write`), mint what it does grant
    /// instead of failing with 422. Explicit requests (`ghapp token --permission`) leave it off.
    pub fit: bool,
}

impl TokenRequest {
    /// A token for one repository with the default permissions, as a ceiling.
    pub fn for_repo(repo: &RepoName) -> Self {
        Self {
            owner: Some(repo.owner().to_owned()),
            repositories: vec![repo.repo().to_owned()],
            permissions: Permissions::default_for_git(),
            fit: true,
        }
    }

    /// A token for one repository with exactly these permissions.
    pub fn exactly(repo: &RepoName, permissions: Permissions) -> Self {
        Self {
            permissions,
            fit: false,
            ..Self::for_repo(repo)
        }
    }

    /// Every repository of a configured installation, default permissions as a ceiling.
    pub fn whole_installation() -> Self {
        Self {
            owner: None,
            repositories: Vec::new(),
            permissions: Permissions::default_for_git(),
            fit: true,
        }
    }

    /// What a token granted `granted` lacks of this request (`contents: read, write asked`),
    /// for the note that a fitted token is narrower than asked; `None` when it has it all.
    pub fn shortfall(&self, granted: &Permissions) -> Option<String> {
        let short: Vec<String> = self
            .permissions
            .iter()
            .filter(|(name, level)| granted.get(name) < Some(*level))
            .map(|(name, level)| match granted.get(name) {
                Some(g) => format!("{name}: {g}, {level} asked"),
                None => format!("{name}: none, {level} asked"),
            })
            .collect();
        (!short.is_empty()).then(|| short.join("; "))
    }

    /// `owner/repo, … with name=level, …`, for messages.
    pub fn describe(&self) -> String {
        let owner = self.owner.as_deref().unwrap_or("?");
        let repos = if self.repositories.is_empty() {
            format!("{owner}/*")
        } else {
            self.repositories
                .iter()
                .map(|r| format!("{owner}/{r}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if self.permissions.is_empty() {
            repos
        } else {
            format!("{repos} with {}", self.permissions)
        }
    }
}

/// The cache key of a request to an app. Cheap and synchronous: the helper's warm path uses it.
pub fn token_key(app: &AppConfig, req: &TokenRequest) -> TokenKey {
    TokenKey {
        api_url: app.api_url().trim_end_matches('/').to_owned(),
        app: app.ident.issuer(),
        installation: app.installation_id,
        owner: req.owner.as_deref().map(str::to_ascii_lowercase),
        repositories: TokenKey::canonical_repos(&req.repositories),
        permissions: req.permissions.clone(),
        fit: req.fit,
    }
}

/// The cache key of a request to a token exchange: the service and policy stand for the app;
/// the policy, not the request, decides the permissions.
pub fn exchange_key(ex: &ExchangeConfig, req: &TokenRequest) -> TokenKey {
    TokenKey {
        api_url: ex.github.api_url().trim_end_matches('/').to_owned(),
        app: ex.issuer(),
        installation: None,
        owner: req.owner.as_deref().map(str::to_ascii_lowercase),
        repositories: TokenKey::canonical_repos(&req.repositories),
        permissions: Permissions::default(),
        fit: false,
    }
}
