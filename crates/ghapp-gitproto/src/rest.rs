//! REST API paths as the proxy decides them: decoded once, refused when a segment could be
//! read two ways, and re-encoded for the upstream request, so the route that was allowed is
//! the route that is sent.
//!
//! An upstream URL parser resolves dot segments (`..`, `%2e%2e`), turns `\` into `/` for
//! `https` URLs, and GitHub decodes `%2f`; a path matched before that would let
//! `POST /repos/o/r/statuses/..%2f..%2fmerges` reach `POST /repos/o/r/merges`. So every
//! segment is percent-decoded here and refused when it is empty, `.` or `..`, or holds `\`,
//! `/`, `%` or a control character once decoded; the path sent upstream is built from the
//! decoded segments, each percent-encoded again ([`RestRoute::path`]). Branch names are the
//! one place a `/` is meaningful (`branches/agent/x`, or `agent%2Fx` as Octokit sends it): the
//! tail of a branch route is read as a ref name and checked as one.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use crate::credential::valid_name;
use crate::receive_pack::valid_refname;

/// What the proxy must look at before forwarding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestKind {
    /// Forward as is.
    Plain,
    /// `POST /repos/{o}/{r}/pulls`: the body's `head` is checked against the push policy.
    CreatePull,
    /// `PATCH /repos/{o}/{r}/pulls/{number}`: only a pull request from the sandbox's own
    /// branches.
    UpdatePull(u64),
    /// `PUT /repos/{o}/{r}/pulls/{number}/merge`: only where merging is allowed, only the
    /// sandbox's own pull request.
    MergePull(u64),
    /// A write to the repository's git data or contents (reachable only through a sandbox's
    /// own `rest` routes): described as the write it is and decided by the push rules.
    Write(GitWrite),
}

/// The REST routes that change a repository's git data or contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitWrite {
    /// `PUT` (create or change) or `DELETE` `/repos/{o}/{r}/contents/{path}`.
    Contents { path: String, delete: bool },
    /// `POST /repos/{o}/{r}/git/refs`.
    CreateRef,
    /// `PATCH` or `DELETE` `/repos/{o}/{r}/git/refs/{ref}` (`name` without `refs/`).
    Ref { name: String, delete: bool },
    /// `POST /repos/{o}/{r}/git/blobs` or `…/git/trees`: objects with contents.
    Objects,
    /// `POST /repos/{o}/{r}/git/commits` or `…/git/tags`: objects naming others.
    Commits,
    /// `POST /repos/{o}/{r}/merges`: `head` merged into `base`.
    Merge,
}

/// An allowed REST request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestRoute {
    pub owner: String,
    pub repo: String,
    pub kind: RestKind,
    /// The normalised path to send upstream (each segment percent-encoded), without the GHES
    /// prefix and without a query.
    pub path: String,
}

/// Why a path is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path must start with /")]
    NotAbsolute,
    #[error("the path has an empty segment (//)")]
    EmptySegment,
    #[error("the path has a dot segment (. or .., also percent-encoded)")]
    DotSegment,
    #[error("the path has a backslash (also percent-encoded)")]
    Backslash,
    #[error("the path has an encoded separator (%2F), an encoded or malformed percent-escape")]
    EncodedSeparator,
    #[error("the path is not UTF-8 once decoded")]
    BadEncoding,
    #[error("the path has a control character")]
    ControlCharacter,
    #[error("the branch name is not a valid ref name")]
    BadBranch,
}

/// Why a request is not forwarded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error(transparent)]
    Path(#[from] PathError),
    #[error("not in the REST allow-list")]
    NotAllowed,
}

/// RFC 3986's unreserved characters pass; everything else is percent-encoded.
const NOT_UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Decodes one raw path segment. A `/` in the decoded value is kept (the caller refuses it
/// outside branch names); everything that could be read two ways is refused. A malformed
/// escape (`%zz`) is left undecoded, so it is refused with the `%` it leaves.
pub fn decode_segment(raw: &str) -> Result<String, PathError> {
    if raw.is_empty() {
        return Err(PathError::EmptySegment);
    }
    if raw.contains('\\') {
        return Err(PathError::Backslash);
    }
    let s = percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| PathError::BadEncoding)?;
    if s == "." || s == ".." {
        return Err(PathError::DotSegment);
    }
    if s.contains('\\') {
        return Err(PathError::Backslash);
    }
    if s.contains('%') {
        return Err(PathError::EncodedSeparator);
    }
    if s.chars().any(char::is_control) {
        return Err(PathError::ControlCharacter);
    }
    Ok(s.into_owned())
}

/// Percent-encodes a decoded segment for the upstream URL: everything but RFC 3986's
/// unreserved characters.
pub fn encode_segment(s: &str) -> String {
    utf8_percent_encode(s, NOT_UNRESERVED).to_string()
}

/// Decodes every segment of `path` (which starts with `/`).
pub fn segments(path: &str) -> Result<Vec<String>, PathError> {
    let rest = path.strip_prefix('/').ok_or(PathError::NotAbsolute)?;
    rest.split('/').map(decode_segment).collect()
}

fn plain(s: &str) -> Result<&str, PathError> {
    if s.contains('/') {
        Err(PathError::EncodedSeparator)
    } else {
        Ok(s)
    }
}

fn join(segs: &[&str]) -> String {
    segs.iter()
        .map(|s| format!("/{}", encode_segment(s)))
        .collect()
}

/// Matches `method path` against the fixed table (the sandbox's repositories: any read,
/// create/update pulls, comment) and `extra` routes
/// (`(METHOD, "/repos/{owner}/{repo}/…")`, `{…}` matching one segment).
pub fn route(
    method: &str,
    path: &str,
    extra: &[(String, String)],
) -> Result<RestRoute, RouteError> {
    let decoded = segments(path)?;
    let segs: Vec<&str> = decoded.iter().map(String::as_str).collect();
    let number = |n: &str| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit());
    // The branch route: its tail is one ref name, slashes and all.
    if method == "GET"
        && let ["repos", owner, repo, "branches", tail @ ..] = segs.as_slice()
        && !tail.is_empty()
    {
        let branch = tail.join("/");
        if !valid_refname(&format!("refs/heads/{branch}")) {
            return Err(PathError::BadBranch.into());
        }
        let (owner, repo) = (plain(owner)?, plain(repo)?);
        let mut path = join(&["repos", owner, repo, "branches"]);
        for c in branch.split('/') {
            path.push('/');
            path.push_str(&encode_segment(c));
        }
        return finish(owner, repo, RestKind::Plain, path);
    }
    for s in &segs {
        plain(s)?;
    }
    let kind = match (method, segs.as_slice()) {
        // Reads of the sandbox's repositories (its README, contents, branches, checks…): the
        // token reaches only them, with the sandbox's permissions, so a read passes.
        ("GET" | "HEAD", ["repos", _, _, ..]) => RestKind::Plain,
        ("POST", ["repos", _, _, "pulls"]) => RestKind::CreatePull,
        ("PATCH", ["repos", _, _, "pulls", n]) if number(n) => {
            RestKind::UpdatePull(n.parse().unwrap_or(0))
        }
        ("PUT", ["repos", _, _, "pulls", n, "merge"]) if number(n) => {
            RestKind::MergePull(n.parse().unwrap_or(0))
        }
        ("POST", ["repos", _, _, "issues" | "pulls", n, "comments"]) if number(n) => {
            RestKind::Plain
        }
        _ => {
            let ok = extra
                .iter()
                .any(|(em, ep)| em == method && matches_route(ep, &segs));
            if !ok {
                return Err(RouteError::NotAllowed);
            }
            git_write(method, &segs).map_or(RestKind::Plain, RestKind::Write)
        }
    };
    finish(segs[1], segs[2], kind, join(&segs))
}

/// Whether the decoded `segs` match a configured route (`/repos/{owner}/{repo}/…`): `{x}`
/// takes one segment, a last `{x+}` one or more.
fn matches_route(pattern: &str, segs: &[&str]) -> bool {
    let es: Vec<&str> = pattern.trim_start_matches('/').split('/').collect();
    if es.first() != Some(&"repos") {
        return false;
    }
    let tail = es
        .last()
        .is_some_and(|e| e.starts_with('{') && e.ends_with("+}"));
    let fixed = if tail { es.len() - 1 } else { es.len() };
    let count_ok = if tail {
        segs.len() > fixed
    } else {
        segs.len() == fixed
    };
    count_ok
        && es[..fixed]
            .iter()
            .zip(segs)
            .all(|(e, s)| e.starts_with('{') || e == s)
}

/// What a write to the repository's git data or contents is, if `method segs` is one.
fn git_write(method: &str, segs: &[&str]) -> Option<GitWrite> {
    Some(match (method, segs) {
        ("PUT" | "DELETE", ["repos", _, _, "contents", path @ ..]) if !path.is_empty() => {
            GitWrite::Contents {
                path: path.join("/"),
                delete: method == "DELETE",
            }
        }
        ("POST", ["repos", _, _, "git", "refs"]) => GitWrite::CreateRef,
        ("PATCH" | "DELETE", ["repos", _, _, "git", "refs", name @ ..]) if !name.is_empty() => {
            GitWrite::Ref {
                name: name.join("/"),
                delete: method == "DELETE",
            }
        }
        ("POST", ["repos", _, _, "git", "blobs" | "trees"]) => GitWrite::Objects,
        ("POST", ["repos", _, _, "git", "commits" | "tags"]) => GitWrite::Commits,
        ("POST", ["repos", _, _, "merges"]) => GitWrite::Merge,
        _ => return None,
    })
}

fn finish(owner: &str, repo: &str, kind: RestKind, path: String) -> Result<RestRoute, RouteError> {
    if !(valid_name(owner) && valid_name(repo)) {
        return Err(RouteError::NotAllowed);
    }
    Ok(RestRoute {
        owner: owner.to_owned(),
        repo: repo.to_owned(),
        kind,
        path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn extra() -> Vec<(String, String)> {
        vec![(
            "POST".to_string(),
            "/repos/{owner}/{repo}/statuses/{sha}".to_string(),
        )]
    }

    #[test]
    fn the_table() {
        let r = route("GET", "/repos/o/r", &[]).unwrap();
        assert_eq!((r.owner.as_str(), r.repo.as_str()), ("o", "r"));
        assert_eq!(r.path, "/repos/o/r");
        assert_eq!(
            route("POST", "/repos/o/r/pulls", &[]).unwrap().kind,
            RestKind::CreatePull
        );
        // Another spelling of the same route is the same route, checked the same way.
        let r = route("POST", "/repos/o/r/%70ulls", &[]).unwrap();
        assert_eq!(
            (r.kind, r.path.as_str()),
            (RestKind::CreatePull, "/repos/o/r/pulls")
        );
        assert!(route("PATCH", "/repos/o/r/pulls/3", &[]).is_ok());
        assert!(route("POST", "/repos/o/r/issues/3/comments", &[]).is_ok());
        assert_eq!(
            route("DELETE", "/repos/o/r", &[]),
            Err(RouteError::NotAllowed)
        );
        assert_eq!(route("POST", "/graphql", &[]), Err(RouteError::NotAllowed));
        assert_eq!(
            route("PATCH", "/repos/o/r/pulls/x", &[]),
            Err(RouteError::NotAllowed)
        );
        // Any read of the repository passes; writes only from the table.
        assert!(route("GET", "/repos/o/r/readme", &[]).is_ok());
        assert!(route("GET", "/repos/o/r/commits/main/check-runs", &[]).is_ok());
        assert_eq!(route("GET", "/user", &[]), Err(RouteError::NotAllowed));
        assert_eq!(
            route("PUT", "/repos/o/r/pulls/3/merge", &[]).map(|r| r.kind),
            Ok(RestKind::MergePull(3)),
            "named, for the policy to decide (allow_merge)"
        );
        assert_eq!(
            route("PUT", "/repos/o/r/pulls/x/merge", &[]),
            Err(RouteError::NotAllowed)
        );
        let r = route("POST", "/repos/o/r/statuses/abc123", &extra()).unwrap();
        assert_eq!(r.path, "/repos/o/r/statuses/abc123");
    }

    #[test]
    fn writes_to_git_data_and_contents_are_named() {
        let allowed: Vec<(String, String)> = [
            ("PUT", "/repos/{owner}/{repo}/contents/{path+}"),
            ("DELETE", "/repos/{owner}/{repo}/contents/{path+}"),
            ("POST", "/repos/{owner}/{repo}/git/refs"),
            ("PATCH", "/repos/{owner}/{repo}/git/refs/{ref+}"),
            ("POST", "/repos/{owner}/{repo}/git/blobs"),
            ("POST", "/repos/{owner}/{repo}/merges"),
            ("POST", "/repos/{owner}/{repo}/labels"),
        ]
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
        let kind = |m: &str, p: &str| route(m, p, &allowed).map(|r| r.kind);
        assert_eq!(
            kind("PUT", "/repos/o/r/contents/.github/workflows/ci.yml"),
            Ok(RestKind::Write(GitWrite::Contents {
                path: ".github/workflows/ci.yml".into(),
                delete: false
            }))
        );
        assert_eq!(
            kind("PATCH", "/repos/o/r/git/refs/heads/agent/x"),
            Ok(RestKind::Write(GitWrite::Ref {
                name: "heads/agent/x".into(),
                delete: false
            }))
        );
        assert_eq!(
            kind("POST", "/repos/o/r/git/refs"),
            Ok(RestKind::Write(GitWrite::CreateRef))
        );
        assert_eq!(
            kind("POST", "/repos/o/r/git/blobs"),
            Ok(RestKind::Write(GitWrite::Objects))
        );
        assert_eq!(
            kind("POST", "/repos/o/r/merges"),
            Ok(RestKind::Write(GitWrite::Merge))
        );
        assert_eq!(kind("POST", "/repos/o/r/labels"), Ok(RestKind::Plain));
        // `{x+}` takes one or more segments, `{x}` exactly one.
        assert_eq!(
            kind("PUT", "/repos/o/r/contents"),
            Err(RouteError::NotAllowed)
        );
        assert_eq!(
            kind("DELETE", "/repos/o/r/git/refs/heads/x"),
            Err(RouteError::NotAllowed)
        );
    }

    #[test]
    fn branches_with_slashes() {
        for p in [
            "/repos/o/r/branches/agent/x",
            "/repos/o/r/branches/agent%2Fx",
            "/repos/o/r/branches/agent%2fx",
        ] {
            let r = route("GET", p, &[]).unwrap();
            assert_eq!(r.path, "/repos/o/r/branches/agent/x", "{p}");
        }
        assert_eq!(
            route("GET", "/repos/o/r/branches/feature+1", &[])
                .unwrap()
                .path,
            "/repos/o/r/branches/feature%2B1"
        );
    }

    #[test]
    fn attacks_are_refused() {
        let cases: &[(&str, &str)] = &[
            ("POST", "/repos/o/r/statuses/../merges"),
            ("POST", "/repos/o/r/statuses/..%2f..%2fmerges"),
            ("POST", "/repos/o/r/statuses/%2e%2e"),
            ("POST", "/repos/o/r/statuses/.%2E"),
            ("POST", "/repos/o/r/statuses/x%2f..%2fgit%2frefs"),
            ("POST", "/repos/o/r/statuses/x%5c..%5cmerges"),
            ("POST", "/repos/o/r/statuses/x\\..\\merges"),
            ("POST", "/repos/o/r/statuses/%252e%252e"),
            ("POST", "/repos/o/r/statuses/x%00"),
            ("POST", "/repos/o/r/statuses/%zz"),
            ("POST", "/repos/o/r/statuses/%ff"),
            (
                "GET",
                "/repos/o/r/branches/..\\..\\..\\installation\\repositories",
            ),
            (
                "GET",
                "/repos/o/r/branches/../../../installation/repositories",
            ),
            ("GET", "/repos/o/r/branches/%2e%2e/%2e%2e/x"),
            ("GET", "/repos/o/r/branches/a/../../b"),
            ("GET", "/repos/o/r/branches/a%2f..%2f..%2fb"),
            ("GET", "/repos/o/r/branches/"),
            ("POST", "/repos/o/r/pulls/"),
            ("POST", "/repos/o/r//pulls"),
            ("POST", "/repos/o/r/./pulls"),
            ("GET", "/repos/o%2fr/x"),
            ("GET", "repos/o/r"),
        ];
        for (m, p) in cases {
            assert!(route(m, p, &extra()).is_err(), "{m} {p} passed");
        }
    }

    proptest! {
        #[test]
        fn never_panics(p in "\\PC{0,80}", m in "(GET|POST|PATCH)") {
            let _ = route(&m, &p, &extra());
        }

        /// Whatever passes is sent in a form an URL parser leaves alone: no dot segment,
        /// backslash or escape that decodes to a separator, and it decodes back to the segments
        /// that were decided on.
        #[test]
        fn what_passes_is_what_is_sent(
            segs in proptest::collection::vec("([a-z.%\\\\/]|%2[eEfF]|%5[cC]){1,6}", 1..4),
        ) {
            let p = format!("/repos/o/r/statuses/{}", segs.join("/"));
            if let Ok(r) = route("POST", &p, &extra()) {
                prop_assert!(!r.path.contains("/./") && !r.path.contains("/../"));
                prop_assert!(!r.path.contains('\\'));
                let back = segments(&r.path).unwrap();
                prop_assert_eq!(back, segments(&p).unwrap());
            }
        }
    }
}
