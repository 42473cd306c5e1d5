//! The sandbox's policy as pure functions, table-tested: no sockets, no clocks.
//!
//! - [`decide`]: from the sandbox, the named route and the request head to a [`Verdict`]
//!   (forward this upstream request with this body plan, or answer this refusal); one module
//!   per kind of request: `git`, `rest` (and pull requests' heads), `graphql`, `lfs`.
//! - [`write`]: every write to a repository, from any channel, described as ref moves and the
//!   content they land, and decided by one function with one set of rules.
//! - [`mutations`]: GraphQL's allowed mutations read into what they write.
//! - [`mode`]: the trust mode's verdict on an allowed write (forward, refuse, hold, propose).
//! - `describe`: what `GET /policy` answers.

pub(crate) mod codeowners;
mod describe;
mod git;
mod graphql;
mod lfs;
pub(crate) mod mode;
pub(crate) mod mutations;
pub(crate) mod nodes;
mod rest;
pub(crate) mod write;

use ghapp_gitproto::repo::RepoName;
use hyper::header::HeaderMap;
use hyper::{Method, StatusCode};

use crate::audit::Service;
use crate::respond::Refusal;
use crate::router::{Hosts, Route};
use crate::sandbox::Sandbox;

pub(crate) use describe::describe;
pub(crate) use git::{PushRefusal, push_refusal};
pub(crate) use graphql::{GraphqlPlan, graphql_body};
pub(crate) use lfs::lfs_batch;
pub(crate) use rest::{git_write, pull_head, pull_head_branch};

/// How the token travels upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    /// git: `Basic x-access-token:TOKEN`.
    Basic,
    /// REST and GraphQL: `Bearer TOKEN`.
    Bearer,
}

/// The decision on one request, with what the audit names it by.
#[derive(Debug)]
pub(crate) struct Verdict {
    pub service: Service,
    /// `owner/repo` as configured, once the request is known to be for one of the sandbox's.
    pub repo: Option<String>,
    pub action: Action,
}

#[derive(Debug)]
pub(crate) enum Action {
    Forward(Plan),
    Answer(Refusal),
}

/// An allowed request, as it goes upstream.
#[derive(Debug)]
pub(crate) struct Plan {
    /// The repository, as configured: its owner's token is injected.
    pub repo: RepoName,
    /// Built from what was decided on, never from the request's own spelling.
    pub url: reqwest::Url,
    pub scheme: Scheme,
    pub body: BodyPlan,
}

/// What happens to the request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BodyPlan {
    None,
    /// Streamed as it arrives.
    Stream,
    /// A push: the command section is read and decided ([`push`]) before the pack streams.
    Push,
    /// Read whole (bounded) and sent.
    Whole,
    /// `POST …/pulls`: read whole, `head` checked ([`pull_head`]), then sent.
    PullHead,
    /// `PATCH …/pulls/{number}`: read whole, sent only when the pull request's head is a
    /// branch of the sandbox's (asked of GitHub); a change of base is measured again.
    OwnPull(u64),
    /// `PUT …/pulls/{number}/merge`: the trust mode's to allow (autonomous with
    /// `allow_merge`), then as [`BodyPlan::OwnPull`].
    MergePull(u64),
    /// `POST /graphql`: read whole, decided ([`graphql_body`]), then sent.
    Graphql,
    /// `POST …/info/lfs/objects/batch`: read whole, its operation decided ([`lfs_batch`]),
    /// sent; the answer read for the storage hosts it grants.
    LfsBatch,
    /// A REST write to git data or contents (a sandbox's own `rest` route): read whole,
    /// described as the write it is ([`rest::git_write`]) and decided as every write is.
    GitWrite(ghapp_gitproto::rest::GitWrite),
}

pub(super) fn answer(service: Service, repo: Option<String>, r: Refusal) -> Verdict {
    Verdict {
        service,
        repo,
        action: Action::Answer(r),
    }
}

/// Decides a request inside the tunnel of `sb`.
pub(crate) fn decide(
    sb: &Sandbox,
    hosts: &Hosts,
    route: &Route,
    method: &Method,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Verdict {
    match route {
        Route::Git(g) => git::git(sb, hosts, g, method, query, headers),
        Route::Rest(path) => rest::rest(sb, hosts, path, method, query, headers),
        Route::Graphql => graphql::graphql(sb, hosts, method, headers),
        Route::Lfs(r) => lfs::lfs(sb, hosts, r.as_ref(), method, query, headers),
        Route::Other => answer(
            Service::Other,
            None,
            Refusal::text(
                StatusCode::FORBIDDEN,
                "only git's smart HTTP (clone, fetch, push) and the REST allow-list pass",
            ),
        ),
    }
}

/// The upstream URL for `origin` (`host:port`) and an already normalised `path`, checked to
/// be exactly that path once parsed: the URL parser must not resolve anything the policy did
/// not see.
pub(crate) fn upstream_url(origin: &str, path: &str, query: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(&format!("https://{origin}{path}{query}"))
        .map_err(|e| format!("the upstream URL for {path} does not parse: {e}"))?;
    if url.path() != path {
        return Err(format!(
            "the upstream URL would reach {} instead of {path}",
            url.path()
        ));
    }
    Ok(url)
}

/// Why a body (`what`) in a Content-Encoding cannot be decided on, if it is in one: the policy
/// reads bodies as they are sent, and forwards what it read.
pub(super) fn encoded(h: &HeaderMap, what: &str) -> Option<String> {
    content_encoding(h).map(|enc| {
        format!("{what} with Content-Encoding {enc} cannot be checked; send it unencoded")
    })
}

/// The request's Content-Encoding, unless there is none or it is `identity`.
fn content_encoding(h: &HeaderMap) -> Option<String> {
    let v: Vec<String> = h
        .get_all(hyper::header::CONTENT_ENCODING)
        .iter()
        .map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .trim()
                .to_ascii_lowercase()
        })
        .filter(|v| !v.is_empty() && v != "identity")
        .collect();
    (!v.is_empty()).then(|| v.join(", "))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::router::route;
    use crate::sandbox::tests::sandbox;

    /// The verdict for `METHOD host path?query`, as a short string: `forward URL BODY` or
    /// `STATUS`.
    pub(crate) fn verdict(
        hosts: &Hosts,
        method: &str,
        host: &str,
        target: &str,
        headers: &[(&str, &str)],
    ) -> String {
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (target, None),
        };
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(
                hyper::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        let v = decide(&sandbox(), hosts, &route(hosts, host, path), &m, query, &h);
        match v.action {
            Action::Forward(p) => format!("forward {} {:?} {}", p.url, p.body, p.repo.owner()),
            Action::Answer(r) => r.status.as_u16().to_string(),
        }
    }

    #[test]
    fn upstream_urls_are_what_was_decided() {
        let u = upstream_url("h:443", "/api/v3/repos/o/r/pulls", "").unwrap();
        assert_eq!(u.as_str(), "https://h/api/v3/repos/o/r/pulls");
        for bad in ["/repos/o/r/../x", "/repos/o/r/%2e%2e/x", "/repos/o\\r"] {
            assert!(upstream_url("h:443", bad, "").is_err(), "{bad}");
        }
    }
}
