//! Where things are: the git host derived from the API URL, and the default cache directory.

use std::path::PathBuf;

use crate::error::{Error, Result};

/// The default cache dir: the runtime dir (tmpfs, cleared at logout) when there is one, else
/// the user cache dir (`directories` has no runtime dir without `XDG_RUNTIME_DIR`). With no
/// home directory at all: a directory named for this user's uid in the temporary directory,
/// which the cache uses only if this user owns it and no one else can write it.
pub fn default_cache_dir() -> PathBuf {
    match directories::ProjectDirs::from("", "", "ghapp") {
        Some(d) => d
            .runtime_dir()
            .map(|r| r.join("tokens"))
            .unwrap_or_else(|| d.cache_dir().join("tokens")),
        None => std::env::temp_dir().join(format!(
            "ghapp-tokens-{}",
            rustix::process::geteuid().as_raw()
        )),
    }
}

/// Where a GitHub is, derived once: the REST base (`https://api.github.com`, or
/// `https://HOST[:PORT]/api/v3` on GitHub Enterprise Server) and the host git talks to
/// (`github.com`, or `HOST[:PORT]`, the port only when it is not 443).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitHubHost {
    api_url: String,
    git_host: String,
}

impl GitHubHost {
    /// github.com.
    pub fn dotcom() -> GitHubHost {
        GitHubHost {
            api_url: super::DEFAULT_API_URL.to_owned(),
            git_host: "github.com".to_owned(),
        }
    }

    /// From a REST base, the git host derived from it: `api.github.com` -> `github.com`;
    /// `https://HOST[:PORT]/api/v3` -> `HOST[:PORT]`.
    pub fn from_api_url(api_url: &str) -> Result<GitHubHost> {
        let api_url = normalize_api_url(api_url);
        let git_host = git_host_of(&api_url)?;
        Ok(GitHubHost { api_url, git_host })
    }

    /// From a REST base (github.com's when `None`) and, when the git host is not the one the
    /// base implies (a GHES behind another name), that host.
    pub fn new(api_url: Option<&str>, git_host: Option<&str>) -> Result<GitHubHost> {
        let mut h = Self::from_api_url(api_url.unwrap_or(super::DEFAULT_API_URL))?;
        if let Some(g) = git_host {
            h.git_host = g.trim().to_owned();
        }
        Ok(h)
    }

    /// From the host git talks to, as `gh` derives the REST base: `github.com` ->
    /// `https://api.github.com`, anything else -> `https://HOST/api/v3`.
    pub fn from_git_host(git_host: &str) -> GitHubHost {
        let git_host = git_host.to_ascii_lowercase();
        if git_host == "github.com" {
            return Self::dotcom();
        }
        GitHubHost {
            api_url: format!("https://{git_host}/api/v3"),
            git_host,
        }
    }

    /// The REST base, without a trailing slash.
    pub fn api_url(&self) -> &str {
        &self.api_url
    }

    /// `HOST[:PORT]` that git talks to.
    pub fn git_host(&self) -> &str {
        &self.git_host
    }

    /// `HOST[:PORT]` of the REST base.
    pub fn api_authority(&self) -> &str {
        let rest = self
            .api_url
            .split_once("://")
            .map_or(&*self.api_url, |x| x.1);
        rest.split('/').next().unwrap_or(rest)
    }

    /// The path of the REST base: `/api/v3` on GHES, empty on github.com.
    pub fn api_prefix(&self) -> &str {
        let rest = self
            .api_url
            .split_once("://")
            .map_or(&*self.api_url, |x| x.1);
        rest.find('/').map_or("", |i| &rest[i..])
    }

    /// The path of the GraphQL endpoint: `/graphql` on github.com, `/api/graphql` on GHES
    /// (beside, not under, `/api/v3`).
    pub fn graphql_path(&self) -> String {
        let prefix = self.api_prefix();
        format!("{}/graphql", prefix.strip_suffix("/v3").unwrap_or(prefix))
    }

    /// Whether git talks to `host` here (ASCII case ignored).
    pub fn serves(&self, host: &str) -> bool {
        self.git_host.eq_ignore_ascii_case(host)
    }
}

/// The git host of a REST base, read with http's `Uri` (no IDNA tables on the helper's warm
/// path: host names here are ASCII).
fn git_host_of(api_url: &str) -> Result<String> {
    let bad = |why: &str| {
        Error::Config(format!(
            "API URL {api_url:?} {why}: use https://api.github.com or https://HOST/api/v3"
        ))
    };
    let uri: http::Uri = api_url.parse().map_err(|_| bad("is not a URL"))?;
    match uri.scheme_str() {
        Some(s) if s.eq_ignore_ascii_case("https") => {}
        Some(_) => {
            return Err(Error::Config(format!(
                "API URL {api_url:?} is not https: ghapp sends a signed JWT and tokens, so only https is allowed"
            )));
        }
        None => return Err(bad("is not a URL")),
    }
    let authority = uri.authority().ok_or_else(|| bad("has no valid host"))?;
    if authority.as_str().contains('@') {
        return Err(bad("holds credentials"));
    }
    let host = authority.host();
    // http reads a port it cannot use (`:99999`) as no port: read it here.
    let port = match authority
        .as_str()
        .strip_prefix(host)
        .and_then(|r| r.strip_prefix(':'))
    {
        Some(p) => Some(p.parse::<u16>().map_err(|_| bad("has a bad port"))?),
        None => None,
    };
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'[' | b']' | b':'));
    if !host_ok {
        return Err(bad("has no valid host"));
    }
    let host = host.to_ascii_lowercase();
    if host == "api.github.com" {
        return Ok("github.com".into());
    }
    let host = host.strip_prefix("api.").unwrap_or(&host);
    Ok(match port {
        Some(p) if p != 443 => format!("{host}:{p}"),
        _ => host.to_owned(),
    })
}

pub(crate) fn normalize_api_url(s: &str) -> String {
    s.trim().trim_end_matches('/').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_once() {
        let git = |api: &str| GitHubHost::from_api_url(api).map(|h| h.git_host().to_owned());
        assert_eq!(git("https://api.github.com").unwrap(), "github.com");
        assert_eq!(git("https://ghe.corp/api/v3").unwrap(), "ghe.corp");
        assert_eq!(
            git("https://127.0.0.1:8443/api/v3").unwrap(),
            "127.0.0.1:8443"
        );
        assert_eq!(git("https://GHE.corp:443/api/v3/").unwrap(), "ghe.corp");
        for bad in [
            "http://ghe.corp/api/v3",
            "not a url",
            "https://u:p@ghe.corp/api/v3",
            "https://ghe.corp:x/api/v3",
            "https:///api/v3",
        ] {
            assert!(git(bad).is_err(), "{bad}");
        }

        let h = GitHubHost::from_api_url("https://127.0.0.1:8443/api/v3/").unwrap();
        assert_eq!(h.api_url(), "https://127.0.0.1:8443/api/v3");
        assert_eq!(h.api_authority(), "127.0.0.1:8443");
        assert_eq!(h.api_prefix(), "/api/v3");
        assert_eq!(h.graphql_path(), "/api/graphql");
        let h = GitHubHost::dotcom();
        assert_eq!(h.graphql_path(), "/graphql");
        assert_eq!((h.api_authority(), h.api_prefix()), ("api.github.com", ""));
        assert!(h.serves("GitHub.com"));

        // From the git host, as gh derives it.
        assert_eq!(
            GitHubHost::from_git_host("github.com"),
            GitHubHost::dotcom()
        );
        let h = GitHubHost::from_git_host("ghe.corp");
        assert_eq!(h.api_url(), "https://ghe.corp/api/v3");
        assert_eq!(GitHubHost::from_api_url(h.api_url()).unwrap(), h);

        // A git host named apart from the API's.
        let h = GitHubHost::new(Some("https://api.ghe.corp/api/v3"), Some("git.ghe.corp")).unwrap();
        assert_eq!(
            (h.api_url(), h.git_host()),
            ("https://api.ghe.corp/api/v3", "git.ghe.corp")
        );
    }
}
