//! Names a request inside an intercepted tunnel: a git smart-HTTP route, a REST path under the
//! API prefix, or something else. Knows hosts and paths, not policy.

use ghapp_core::config::GitHubHost;
use ghapp_gitproto::route::{GitRoute, parse as git_route};

/// Where GitHub is, as the sandbox names it and as the proxy reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hosts {
    /// `host:port` of git.
    pub git: String,
    /// `host:port` of the REST API.
    pub api: String,
    /// `/api/v3` on GHES, empty on github.com.
    pub api_prefix: String,
    /// `/graphql` on github.com, `/api/graphql` on GHES.
    pub graphql: String,
    /// `host:port` of the LFS storage hosts (`lfs_storage_hosts`): served for granted URLs.
    pub storage: Vec<String>,
}

impl Hosts {
    pub(crate) fn new(github: &GitHubHost) -> Hosts {
        Hosts {
            git: with_port(github.git_host()),
            api: with_port(github.api_authority()),
            api_prefix: github.api_prefix().to_owned(),
            graphql: github.graphql_path(),
            storage: Vec::new(),
        }
    }

    /// These hosts, and the LFS storage hosts `storage` (`HOST[:PORT]`).
    pub(crate) fn with_storage(mut self, storage: &[String]) -> Hosts {
        self.storage = storage.iter().map(|h| with_port(h)).collect();
        self
    }

    /// The hosts the proxy terminates TLS for (its CA is made for these names): GitHub's, and
    /// the LFS storage hosts.
    pub(crate) fn intercepted(&self) -> Vec<String> {
        let mut v = vec![self.git.clone()];
        if self.api != self.git {
            v.push(self.api.clone());
        }
        v.extend(
            self.storage
                .iter()
                .filter(|h| !v.contains(h))
                .cloned()
                .collect::<Vec<_>>(),
        );
        v
    }

    /// Whether `host` is GitHub's (git or the API): requests there carry the sandbox's token.
    pub(crate) fn intercepts(&self, host: &str) -> bool {
        host == self.git || host == self.api
    }

    /// Whether `host` is an LFS storage host: only URLs a batch answer granted pass there.
    pub(crate) fn is_storage(&self, host: &str) -> bool {
        self.storage.iter().any(|h| h == host)
    }
}

/// `HOST[:PORT]` (an IPv6 host in brackets) read with http's `Authority`: the host
/// lower-cased, without brackets, and the port (443 when absent). `None`: not an authority
/// (credentials in it, a bad port, nothing at all).
pub(crate) fn split_authority(s: &str) -> Option<(String, u16)> {
    let a: http::uri::Authority = s.parse().ok()?;
    if a.as_str().contains('@') || a.host().is_empty() {
        return None;
    }
    // http reads a port it cannot use (`:99999`) as no port: read it here.
    let port = match a.as_str().strip_prefix(a.host())?.strip_prefix(':') {
        Some(p) => p.parse::<u16>().ok()?,
        None => 443,
    };
    let host = a.host().trim_start_matches('[').trim_end_matches(']');
    Some((host.to_ascii_lowercase(), port))
}

/// The host of `HOST[:PORT]`, lower-cased, an IPv6 address without brackets.
pub(crate) fn host_of(s: &str) -> String {
    split_authority(s).map_or_else(|| s.to_ascii_lowercase(), |(h, _)| h)
}

/// `HOST:PORT`, lower-cased, with the port (443 when absent): one spelling per endpoint, so
/// `github.com` and `GitHub.com:443` compare equal.
pub(crate) fn with_port(s: &str) -> String {
    match split_authority(s) {
        Some((h, p)) if h.contains(':') => format!("[{h}]:{p}"),
        Some((h, p)) => format!("{h}:{p}"),
        None => s.to_ascii_lowercase(),
    }
}

/// What a request is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    Git(GitRoute),
    /// A path under the API prefix (the prefix removed).
    Rest(String),
    /// The GraphQL endpoint.
    Graphql,
    /// Git LFS (`/OWNER/REPO.git/info/lfs/...` on the git host): the batch or locks API,
    /// or `None` for another path there.
    Lfs(Option<ghapp_gitproto::lfs::LfsRoute>),
    Other,
}

/// Names the request for `path` on `host` (the tunnel's host).
pub(crate) fn route(hosts: &Hosts, host: &str, path: &str) -> Route {
    if host == hosts.api && path == hosts.graphql {
        return Route::Graphql;
    }
    // `/{owner}/{repo}/info/lfs…` on the git host (not a REST path that happens to hold it).
    if host == hosts.git && is_lfs_path(path) {
        return Route::Lfs(ghapp_gitproto::lfs::parse(path));
    }
    if host == hosts.api
        && let Some(p) = path.strip_prefix(hosts.api_prefix.as_str())
        && (hosts.api_prefix.is_empty() || p.is_empty() || p.starts_with('/'))
    {
        return Route::Rest(p.to_owned());
    }
    if host == hosts.git
        && let Some(g) = git_route(path)
    {
        return Route::Git(g);
    }
    Route::Other
}

/// `/{owner}/{repo}/info/lfs…`: the third and fourth segments (no allocation: every request on
/// the git host asks).
fn is_lfs_path(path: &str) -> bool {
    let mut segs = path.trim_start_matches('/').split('/');
    segs.nth(2) == Some("info") && segs.next() == Some("lfs")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        let h = Hosts::new(
            &GitHubHost::new(Some("https://api.github.com"), Some("github.com")).unwrap(),
        );
        assert_eq!(h.git, "github.com:443");
        assert_eq!(h.api, "api.github.com:443");
        assert_eq!(h.api_prefix, "");
        assert_eq!(h.intercepted().len(), 2);
        let h = Hosts::new(
            &GitHubHost::new(
                Some("https://127.0.0.1:8443/api/v3"),
                Some("127.0.0.1:8443"),
            )
            .unwrap(),
        );
        assert_eq!(h.git, "127.0.0.1:8443");
        assert_eq!(h.api, "127.0.0.1:8443");
        assert_eq!(h.api_prefix, "/api/v3");
        assert_eq!(h.intercepted(), vec!["127.0.0.1:8443".to_string()]);
    }

    #[test]
    fn authorities() {
        assert_eq!(with_port("GitHub.com"), "github.com:443");
        assert_eq!(with_port("github.com:443"), "github.com:443");
        assert_eq!(with_port("127.0.0.1:8443"), "127.0.0.1:8443");
        assert_eq!(with_port("[::1]:8443"), "[::1]:8443");
        assert_eq!(with_port("[::1]"), "[::1]:443");
        assert_eq!(host_of("[::1]:8443"), "::1");
        assert_eq!(host_of("Ghe.Example:8443"), "ghe.example");
        assert_eq!(split_authority("user@host:1"), None);
        assert_eq!(split_authority("host:99999"), None);
        assert_eq!(split_authority(""), None);
    }

    #[test]
    fn routes() {
        let gh = Hosts::new(
            &GitHubHost::new(Some("https://api.github.com"), Some("github.com")).unwrap(),
        );
        assert!(matches!(
            route(&gh, "github.com:443", "/o/r.git/info/refs"),
            Route::Git(_)
        ));
        assert_eq!(
            route(&gh, "api.github.com:443", "/repos/o/r"),
            Route::Rest("/repos/o/r".into())
        );
        assert_eq!(
            route(&gh, "github.com:443", "/o/r/info/lfs"),
            Route::Lfs(None)
        );
        assert_eq!(
            route(&gh, "github.com:443", "/o/r/info/lfs/x"),
            Route::Lfs(None)
        );
        assert!(matches!(
            route(&gh, "github.com:443", "/o/r.git/info/lfs/objects/batch"),
            Route::Lfs(Some(_))
        ));
        assert_eq!(
            route(&gh, "api.github.com:443", "/o/r.git/info/lfs/objects/batch"),
            Route::Rest("/o/r.git/info/lfs/objects/batch".into()),
            "LFS is on the git host (on the API host this is a REST path, refused there)"
        );
        assert_eq!(
            route(&gh, "github.com:443", "/o/../info/refs"),
            Route::Other
        );
        let ghes =
            Hosts::new(&GitHubHost::new(Some("https://h:8443/api/v3"), Some("h:8443")).unwrap());
        assert_eq!(
            route(&ghes, "h:8443", "/api/v3/repos/o/r/contents/info/lfs/x"),
            Route::Rest("/repos/o/r/contents/info/lfs/x".into()),
            "a REST path holding info/lfs is REST"
        );
        assert_eq!(
            route(&ghes, "h:8443", "/api/v3/repos/o/r"),
            Route::Rest("/repos/o/r".into())
        );
        // /api/v3x is not under the prefix; it is not a git route either.
        assert_eq!(route(&ghes, "h:8443", "/api/v3x/repos"), Route::Other);
        assert!(matches!(
            route(&ghes, "h:8443", "/o/r.git/git-upload-pack"),
            Route::Git(_)
        ));
    }
}
