//! Names a request inside an intercepted tunnel: a git smart-HTTP route, a REST path under the
//! API prefix, or something else. Knows hosts and paths, not policy.

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
}

impl Hosts {
    pub(crate) fn new(api_url: &str, git_host: &str) -> Hosts {
        let rest = api_url.split_once("://").map(|x| x.1).unwrap_or(api_url);
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        Hosts {
            git: with_port(git_host),
            api: with_port(authority),
            api_prefix: path.trim_end_matches('/').to_owned(),
        }
    }

    /// The hosts the proxy terminates TLS for.
    pub(crate) fn intercepted(&self) -> Vec<String> {
        let mut v = vec![self.git.clone()];
        if self.api != self.git {
            v.push(self.api.clone());
        }
        v
    }

    pub(crate) fn intercepts(&self, host: &str) -> bool {
        host == self.git || host == self.api
    }
}

/// `HOST[:PORT]`, lower-cased, with the port (443 when absent).
pub(crate) fn with_port(h: &str) -> String {
    let h = h.to_ascii_lowercase();
    match h.rsplit_once(':') {
        Some((_, p)) if p.bytes().all(|b| b.is_ascii_digit()) && !p.is_empty() => h,
        _ => format!("{h}:443"),
    }
}

/// What a request is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    Git(GitRoute),
    /// A path under the API prefix (the prefix removed).
    Rest(String),
    Other,
}

/// Names the request for `path` on `host` (the tunnel's host).
pub(crate) fn route(hosts: &Hosts, host: &str, path: &str) -> Route {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        let h = Hosts::new("https://api.github.com", "github.com");
        assert_eq!(h.git, "github.com:443");
        assert_eq!(h.api, "api.github.com:443");
        assert_eq!(h.api_prefix, "");
        assert_eq!(h.intercepted().len(), 2);
        let h = Hosts::new("https://127.0.0.1:8443/api/v3", "127.0.0.1:8443");
        assert_eq!(h.git, "127.0.0.1:8443");
        assert_eq!(h.api, "127.0.0.1:8443");
        assert_eq!(h.api_prefix, "/api/v3");
        assert_eq!(h.intercepted(), vec!["127.0.0.1:8443".to_string()]);
    }

    #[test]
    fn routes() {
        let gh = Hosts::new("https://api.github.com", "github.com");
        assert!(matches!(
            route(&gh, "github.com:443", "/o/r.git/info/refs"),
            Route::Git(_)
        ));
        assert_eq!(
            route(&gh, "api.github.com:443", "/repos/o/r"),
            Route::Rest("/repos/o/r".into())
        );
        assert_eq!(route(&gh, "github.com:443", "/o/r/info/lfs"), Route::Other);
        assert_eq!(
            route(&gh, "github.com:443", "/o/../info/refs"),
            Route::Other
        );
        let ghes = Hosts::new("https://h:8443/api/v3", "h:8443");
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
