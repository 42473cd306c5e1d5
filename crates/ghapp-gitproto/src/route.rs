//! Git smart-HTTP routes (git's `Documentation/gitprotocol-http.adoc`):
//! `/{owner}/{repo}[.git]/info/refs`, `…/git-upload-pack`, `…/git-receive-pack`.

use crate::credential::valid_name;

/// The part after the repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    InfoRefs,
    UploadPack,
    ReceivePack,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitRoute {
    pub owner: String,
    pub repo: String,
    pub endpoint: Endpoint,
}

impl GitRoute {
    /// Whether `method` is the one git's smart HTTP uses for this endpoint: `GET info/refs`,
    /// `POST git-upload-pack`, `POST git-receive-pack`. Methods are case-sensitive (RFC 9110),
    /// so `get` or `PUT` never reach the push check's blind side.
    pub fn method_allowed(&self, method: &str) -> bool {
        match self.endpoint {
            Endpoint::InfoRefs => method == "GET",
            Endpoint::UploadPack | Endpoint::ReceivePack => method == "POST",
        }
    }

    /// The path to send upstream, built from what was decided on (owner, repository,
    /// endpoint), never from the request's own spelling.
    pub fn upstream_path(&self) -> String {
        let endpoint = match self.endpoint {
            Endpoint::InfoRefs => "info/refs",
            Endpoint::UploadPack => "git-upload-pack",
            Endpoint::ReceivePack => "git-receive-pack",
        };
        format!("/{}/{}.git/{endpoint}", self.owner, self.repo)
    }

    /// The service a request is for: the endpoint, or `?service=` on `info/refs`.
    pub fn service(&self, query: &str) -> Option<&'static str> {
        match self.endpoint {
            Endpoint::UploadPack => Some("git-upload-pack"),
            Endpoint::ReceivePack => Some("git-receive-pack"),
            Endpoint::InfoRefs => match query.split('&').find_map(|kv| kv.strip_prefix("service="))
            {
                Some("git-upload-pack") => Some("git-upload-pack"),
                Some("git-receive-pack") => Some("git-receive-pack"),
                _ => None,
            },
        }
    }
}

/// Parses a request path. Owner and repository must be GitHub names (so `..`, empty segments
/// and percent-encoded slashes are refused); `.git` is optional.
pub fn parse(path: &str) -> Option<GitRoute> {
    let rest = path.strip_prefix('/')?;
    let mut parts = rest.splitn(3, '/');
    let owner = parts.next()?;
    let repo = parts.next()?;
    let endpoint = match parts.next()? {
        "info/refs" => Endpoint::InfoRefs,
        "git-upload-pack" => Endpoint::UploadPack,
        "git-receive-pack" => Endpoint::ReceivePack,
        _ => return None,
    };
    let repo = repo.strip_suffix(".git").unwrap_or(repo);
    (valid_name(owner) && valid_name(repo)).then(|| GitRoute {
        owner: owner.to_owned(),
        repo: repo.to_owned(),
        endpoint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn routes() {
        let r = parse("/o/r.git/info/refs").unwrap();
        assert_eq!(
            (r.owner.as_str(), r.repo.as_str(), r.endpoint),
            ("o", "r", Endpoint::InfoRefs)
        );
        assert_eq!(
            r.service("service=git-receive-pack"),
            Some("git-receive-pack")
        );
        assert_eq!(r.service(""), None);
        assert_eq!(r.upstream_path(), "/o/r.git/info/refs");
        assert!(r.method_allowed("GET"));
        for m in ["POST", "PUT", "get", "HEAD", "OPTIONS", "TRACE"] {
            assert!(!r.method_allowed(m), "{m}");
        }
        let rp = parse("/o/r/git-receive-pack").unwrap();
        assert!(rp.method_allowed("POST"));
        for m in ["GET", "PUT", "post", "PATCH", "DELETE"] {
            assert!(!rp.method_allowed(m), "{m}");
        }
        assert_eq!(
            parse("/o/r/git-upload-pack").unwrap().endpoint,
            Endpoint::UploadPack
        );
        for bad in [
            "/o/../info/refs",
            "/o/r/info/lfs",
            "/o/r%2fx/info/refs",
            "o/r/info/refs",
            "/o//info/refs",
            "/o/r",
        ] {
            assert!(parse(bad).is_none(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn never_panics(p in "\\PC{0,60}") {
            let _ = parse(&p);
        }
    }
}
