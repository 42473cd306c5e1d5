//! What a token is asked for, and its cache key: plain data and pure functions, shared by the
//! lean helper (which answers from the cache) and the broker (which mints).

use std::collections::BTreeMap;

use crate::cache::TokenKey;
use crate::config::AppConfig;

/// The permissions the helper asks for by default: a ceiling (see
/// [`TokenRequest::fit_permissions`]).
pub fn default_permissions() -> BTreeMap<String, String> {
    [
        ("contents", "write"),
        ("metadata", "read"),
        ("pull_requests", "write"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// What a caller wants a token for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// The owner, for installation discovery (`None` only with an explicit installation id).
    pub owner: Option<String>,
    /// Repository names under that owner; empty: all of the installation's repositories.
    pub repositories: Vec<String>,
    /// Permission name -> `read` | `write`; empty: the installation's own.
    pub permissions: BTreeMap<String, String>,
    /// Treat `permissions` as a ceiling rather than a demand: when the installation grants less
    /// (a read-only installation and the default `contents: write`), mint what it does grant
    /// instead of failing with 422. Explicit requests (`ghapp token --permission`) leave it off.
    pub fit_permissions: bool,
}

impl TokenRequest {
    /// A token for one repository with the default permissions.
    pub fn for_repo(owner: &str, repo: &str) -> Self {
        Self {
            owner: Some(owner.to_owned()),
            repositories: vec![repo.to_owned()],
            permissions: default_permissions(),
            fit_permissions: true,
        }
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
        let perms: Vec<String> = self
            .permissions
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if perms.is_empty() {
            repos
        } else {
            format!("{repos} with {}", perms.join(", "))
        }
    }
}

/// The cache key of a request to an app. Cheap and synchronous: the helper's warm path uses it.
pub fn token_key(app: &AppConfig, req: &TokenRequest) -> TokenKey {
    let mut permissions = req.permissions.clone();
    if req.fit_permissions {
        // A ceiling and a demand of the same permissions are different requests.
        permissions.insert("~fit".into(), "1".into());
    }
    TokenKey::new(
        &app.api_url,
        &app.ident.issuer(),
        app.installation_id,
        req.repositories.iter().cloned(),
        permissions,
    )
}

/// Orders GitHub's permission levels: none/unknown 0, `read` 1, `write` 2, `admin` 3.
pub fn level_rank(level: &str) -> u8 {
    match level {
        "read" => 1,
        "write" => 2,
        "admin" => 3,
        _ => 0,
    }
}

/// The requested permissions cut down to what `granted` allows: `write` becomes `read` where
/// only read is granted; permissions not granted at all are dropped.
pub fn fit_permissions(
    wanted: &BTreeMap<String, String>,
    granted: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let rank = level_rank;
    wanted
        .iter()
        .filter_map(|(name, level)| {
            let g = granted.get(name)?;
            let lvl = if rank(g) >= rank(level) { level } else { g };
            (rank(lvl) > 0).then(|| (name.clone(), lvl.clone()))
        })
        .collect()
}
