//! The sandbox's policy as pure functions: from the sandbox, the named route and the request
//! head to a [`Verdict`] (forward this upstream request, or answer this refusal); from a push's
//! command section or a pull request's body to allowed or refused. No sockets, no clocks:
//! table-tested below.

use ghapp_gitproto::graphql;
use ghapp_gitproto::receive_pack::{self, Commands};
use ghapp_gitproto::repo::RepoName;
use ghapp_gitproto::rest::{self, RestKind, RouteError};
use ghapp_gitproto::route::{Endpoint, GitRoute};
use hyper::header::HeaderMap;
use hyper::{Method, StatusCode};

use crate::audit::Service;
use crate::respond::Refusal;
use crate::router::{Hosts, Route};
use crate::sandbox::Sandbox;
use crate::upstream::Scheme;

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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// `POST /graphql`: read whole, decided ([`graphql_body`]), then sent.
    Graphql,
    /// `POST …/info/lfs/objects/batch`: read whole, its operation decided ([`lfs_batch`]),
    /// sent; the answer read for the storage hosts it grants.
    LfsBatch,
}

fn answer(service: Service, repo: Option<String>, r: Refusal) -> Verdict {
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
        Route::Git(g) => git(sb, hosts, g, method, query, headers),
        Route::Rest(path) => rest(sb, hosts, path, method, query, headers),
        Route::Graphql => graphql(sb, hosts, method, headers),
        Route::Lfs(r) => lfs(sb, hosts, r.as_ref(), method, query, headers),
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

fn git(
    sb: &Sandbox,
    hosts: &Hosts,
    route: &GitRoute,
    method: &Method,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Verdict {
    let service = match route.service(query.unwrap_or("")) {
        Some("git-receive-pack") => Service::GitReceivePack,
        Some(_) => Service::GitUploadPack,
        None => Service::Git,
    };
    if !route.method_allowed(method.as_str()) {
        return answer(
            service,
            None,
            Refusal::text(
                StatusCode::METHOD_NOT_ALLOWED,
                format!(
                    "{method} is not a git smart-HTTP method for {}: git's smart HTTP uses only GET info/refs, POST git-upload-pack and POST git-receive-pack",
                    route.upstream_path()
                ),
            ),
        );
    }
    let query = match route.endpoint {
        Endpoint::InfoRefs => match route.service(query.unwrap_or("")) {
            Some(s) => format!("?service={s}"),
            None => {
                return answer(
                    service,
                    None,
                    Refusal::text(
                        StatusCode::FORBIDDEN,
                        "only git's smart HTTP passes (info/refs?service=git-upload-pack or git-receive-pack)",
                    ),
                );
            }
        },
        _ => String::new(),
    };
    let repo = match sb.own_repo(&route.owner, &route.repo) {
        Ok(r) => r,
        Err(why) => return answer(service, None, Refusal::text(StatusCode::FORBIDDEN, why)),
    };
    let full = Some(repo.to_string());
    let body = match route.endpoint {
        Endpoint::InfoRefs => BodyPlan::None,
        Endpoint::UploadPack => BodyPlan::Stream,
        Endpoint::ReceivePack => {
            if let Some(why) = encoded(headers, "a push body") {
                return answer(
                    service,
                    full,
                    Refusal::text(StatusCode::UNSUPPORTED_MEDIA_TYPE, why),
                );
            }
            BodyPlan::Push
        }
    };
    match upstream_url(&hosts.git, &route.upstream_path(), &query) {
        Ok(url) => Verdict {
            service,
            repo: full,
            action: Action::Forward(Plan {
                repo,
                url,
                scheme: Scheme::Basic,
                body,
            }),
        },
        Err(why) => answer(service, full, Refusal::text(StatusCode::BAD_REQUEST, why)),
    }
}

/// `POST /graphql`: read whole and decided on what it would run ([`graphql_body`]); the token
/// is the installation's of the sandbox's first owner.
fn graphql(sb: &Sandbox, hosts: &Hosts, method: &Method, headers: &HeaderMap) -> Verdict {
    let refuse =
        |status, msg: String| answer(Service::Graphql, None, Refusal::graphql(status, msg));
    if *method != Method::POST {
        return refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("sandbox {}: GraphQL takes POST, not {method}", sb.name()),
        );
    }
    if let Some(why) = encoded(headers, "a GraphQL body") {
        return refuse(StatusCode::UNSUPPORTED_MEDIA_TYPE, why);
    }
    let Some(repo) = sb.cfg.repos.first().cloned() else {
        return refuse(
            StatusCode::FORBIDDEN,
            format!("sandbox {} has no repositories", sb.name()),
        );
    };
    match upstream_url(&hosts.api, &hosts.graphql, "") {
        Ok(url) => Verdict {
            service: Service::Graphql,
            repo: None,
            action: Action::Forward(Plan {
                repo,
                url,
                scheme: Scheme::Bearer,
                body: BodyPlan::Graphql,
            }),
        },
        Err(why) => refuse(StatusCode::BAD_REQUEST, why),
    }
}

/// What a GraphQL body asks, once read.
#[derive(Debug)]
pub(crate) enum GraphqlPlan {
    /// A query (the token reaches only the sandbox's repositories), and the body to send: the
    /// query re-printed as it was read.
    Query(Vec<u8>),
    /// Allowed mutations, to be decided on their resolved node ids
    /// ([`crate::graphql::decide`]), and the body to send if they pass.
    Mutation {
        checks: Vec<(String, crate::graphql::Check)>,
        body: Vec<u8>,
    },
}

/// A GraphQL body: queries pass; subscriptions and mutations off the allow-list are refused,
/// each naming the sandbox and the rule, in GraphQL's error shape so gh and Octokit print it.
pub(crate) fn graphql_body(sb: &Sandbox, body: &[u8]) -> Result<GraphqlPlan, Refusal> {
    let refuse = |msg: String| {
        Err(Refusal::graphql(
            StatusCode::FORBIDDEN,
            format!("sandbox {}: {msg}", sb.name()),
        ))
    };
    match graphql::classify(body) {
        Ok(graphql::Operation::Query { body }) => Ok(GraphqlPlan::Query(body)),
        Ok(graphql::Operation::Subscription) => refuse(
            "GraphQL subscriptions are refused (policy: queries and allowed mutations only)".into(),
        ),
        Ok(graphql::Operation::Mutation(m)) => {
            let mut checks = Vec::new();
            for call in &m.calls {
                match crate::graphql::check(call) {
                    Ok(c) => checks.push((call.name.clone(), c)),
                    Err(why) => return refuse(why),
                }
            }
            let ids: usize = checks.iter().map(|(_, c)| c.ids().len()).sum();
            if ids > crate::graphql::MAX_IDS {
                return refuse(format!(
                    "the mutation names {ids} nodes, more than the {} one request may",
                    crate::graphql::MAX_IDS
                ));
            }
            Ok(GraphqlPlan::Mutation {
                checks,
                body: m.body,
            })
        }
        Err(e) => refuse(e.to_string()),
    }
}

/// Git LFS: the batch API for the sandbox's repositories (uploads only for a sandbox that may
/// push), the locks API (reading for all, locking for those that may push); every refusal in
/// git-lfs's JSON so git-lfs prints it.
fn lfs(
    sb: &Sandbox,
    hosts: &Hosts,
    route: Option<&ghapp_gitproto::lfs::LfsRoute>,
    method: &Method,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Verdict {
    let refuse = |status, msg: String| {
        answer(
            Service::Lfs,
            None,
            Refusal::lfs(status, format!("sandbox {}: {msg}", sb.name())),
        )
    };
    let Some(r) = route else {
        return refuse(
            StatusCode::FORBIDDEN,
            "only Git LFS's batch and locks APIs pass (policy)".into(),
        );
    };
    if !r.method_allowed(method.as_str()) {
        return refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{method} is not a Git LFS method for {}", r.upstream_path()),
        );
    }
    let repo = match sb.own_repo(&r.owner, &r.repo) {
        Ok(repo) => repo,
        Err(why) => return refuse(StatusCode::FORBIDDEN, why),
    };
    if r.writes(method.as_str()) && !sb.may_push() {
        return refuse(
            StatusCode::FORBIDDEN,
            format!(
                "Git LFS locks need push access, and this sandbox may not push to {repo} (policy: push = [])"
            ),
        );
    }
    if let Some(why) = encoded(headers, "a Git LFS body") {
        return refuse(StatusCode::UNSUPPORTED_MEDIA_TYPE, why);
    }
    let (body, query) = match (&r.endpoint, method.as_str()) {
        (ghapp_gitproto::lfs::LfsEndpoint::Batch, _) => (BodyPlan::LfsBatch, String::new()),
        (_, "GET") => (
            BodyPlan::None,
            query.map(|q| format!("?{q}")).unwrap_or_default(),
        ),
        _ => (BodyPlan::Whole, String::new()),
    };
    let full = Some(repo.to_string());
    match upstream_url(&hosts.git, &r.upstream_path(), &query) {
        Ok(url) => Verdict {
            service: Service::Lfs,
            repo: full,
            action: Action::Forward(Plan {
                repo,
                url,
                scheme: Scheme::Basic,
                body,
            }),
        },
        Err(why) => refuse(StatusCode::BAD_REQUEST, why),
    }
}

/// A batch request: downloads pass; uploads only for a sandbox that may push.
pub(crate) fn lfs_batch(sb: &Sandbox, repo: &RepoName, body: &[u8]) -> Result<(), Refusal> {
    let refuse = |msg: String| {
        Err(Refusal::lfs(
            StatusCode::FORBIDDEN,
            format!("sandbox {}: {msg}", sb.name()),
        ))
    };
    match ghapp_gitproto::lfs::operation(body) {
        Ok(ghapp_gitproto::lfs::Operation::Download) => Ok(()),
        Ok(ghapp_gitproto::lfs::Operation::Upload) if sb.may_push() => Ok(()),
        Ok(ghapp_gitproto::lfs::Operation::Upload) => refuse(format!(
            "Git LFS uploads need push access, and this sandbox may not push to {repo} (policy: push = [])"
        )),
        Err(e) => refuse(e),
    }
}

fn rest(
    sb: &Sandbox,
    hosts: &Hosts,
    api_path: &str,
    method: &Method,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Verdict {
    let refuse = |status, msg: String| answer(Service::Rest, None, Refusal::json(status, msg));
    let route = match rest::route(method.as_str(), api_path, &sb.cfg.rest) {
        Ok(r) => r,
        Err(RouteError::NotAllowed) => {
            return refuse(
                StatusCode::FORBIDDEN,
                format!(
                    "{method} {api_path} is not allowed for sandbox {} (policy: only the repository, pull request and comment routes for its repositories, plus its configured rest routes)",
                    sb.name()
                ),
            );
        }
        Err(RouteError::Path(e)) => {
            return refuse(
                StatusCode::FORBIDDEN,
                format!(
                    "{method} {api_path} is refused for sandbox {}: {e}",
                    sb.name()
                ),
            );
        }
    };
    let repo = match sb.own_repo(&route.owner, &route.repo) {
        Ok(r) => r,
        Err(why) => return refuse(StatusCode::FORBIDDEN, why),
    };
    let full = Some(repo.to_string());
    let body = if *method == Method::GET || *method == Method::HEAD {
        BodyPlan::None
    } else if let Some(why) = encoded(headers, "a request body") {
        return answer(
            Service::Rest,
            full,
            Refusal::json(StatusCode::UNSUPPORTED_MEDIA_TYPE, why),
        );
    } else if route.kind == RestKind::CreatePull {
        BodyPlan::PullHead
    } else {
        BodyPlan::Whole
    };
    // The body of a checked request is what was checked: no query rides along with it.
    let query = match (route.kind, query) {
        (RestKind::Plain, Some(q)) => format!("?{q}"),
        _ => String::new(),
    };
    let path = format!("{}{}", hosts.api_prefix, route.path);
    match upstream_url(&hosts.api, &path, &query) {
        Ok(url) => Verdict {
            service: Service::Rest,
            repo: full,
            action: Action::Forward(Plan {
                repo,
                url,
                scheme: Scheme::Bearer,
                body,
            }),
        },
        Err(why) => answer(
            Service::Rest,
            full,
            Refusal::json(StatusCode::BAD_REQUEST, why),
        ),
    }
}

/// What a sandbox may do, as `GET /policy` on the proxy's address answers it (JSON), so an
/// agent can learn the rules before it tries.
pub(crate) fn describe(sb: &Sandbox, egress_denied: bool) -> serde_json::Value {
    let mut writes = vec![
        "POST /repos/{owner}/{repo}/pulls (head: a branch the sandbox may push)".to_owned(),
        "PATCH /repos/{owner}/{repo}/pulls/{number}".to_owned(),
        "POST /repos/{owner}/{repo}/issues/{number}/comments".to_owned(),
        "POST /repos/{owner}/{repo}/pulls/{number}/comments".to_owned(),
    ];
    writes.extend(sb.cfg.rest.iter().map(|(m, p)| format!("{m} {p}")));
    serde_json::json!({
        "sandbox": sb.name(),
        "repositories": sb.cfg.repos.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "push": {
            "refs": sb.push.patterns,
            "delete": sb.push.allow_delete,
        },
        "rest": {
            "reads": "any GET or HEAD under the repositories",
            "writes": writes,
        },
        "graphql": {
            "queries": true,
            "mutations": crate::graphql::ALLOWED,
        },
        "lfs": {
            "download": true,
            "upload": sb.may_push(),
            "locks": sb.may_push(),
        },
        "egress": if egress_denied { "deny" } else { "tunnel (to allowed, non-internal addresses)" },
    })
}

/// [`describe`] as text, one rule a line, for `curl`.
pub(crate) fn describe_text(v: &serde_json::Value) -> String {
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut String) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    let p = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&p, x, out);
                }
            }
            serde_json::Value::Array(a) if a.is_empty() => {
                out.push_str(&format!("{prefix}: (none)\n"))
            }
            serde_json::Value::Array(a) => {
                for x in a {
                    out.push_str(&format!(
                        "{prefix}: {}\n",
                        x.as_str().map_or_else(|| x.to_string(), str::to_owned)
                    ));
                }
            }
            serde_json::Value::String(s) => out.push_str(&format!("{prefix}: {s}\n")),
            other => out.push_str(&format!("{prefix}: {other}\n")),
        }
    }
    let mut out = String::new();
    walk("", v, &mut out);
    out
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
fn encoded(h: &HeaderMap, what: &str) -> Option<String> {
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

/// A refused push: the reason (for the audit) and git's report-status answer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct PushRefusal {
    pub reason: String,
    pub report: Vec<u8>,
}

/// Decides a push from its command section. Any refused ref refuses the whole push: half a
/// pack cannot be forwarded.
pub(crate) fn push(sb: &Sandbox, cmds: &Commands) -> Result<(), PushRefusal> {
    let ghapp_gitproto::policy::Decision::Deny(refused) = sb.push.decide(cmds) else {
        return Ok(());
    };
    let reason = refused
        .iter()
        .map(|(r, why)| format!("{r}: {why}"))
        .collect::<Vec<_>>()
        .join("; ");
    let sideband = cmds.has_capability("side-band-64k") || cmds.has_capability("side-band");
    let msg = format!(
        "ghapp proxy: push refused by sandbox {} policy: {reason} {}",
        sb.name(),
        crate::respond::POLICY_HINT
    );
    Err(PushRefusal {
        report: receive_pack::reject_report(&refused, sideband, &msg),
        reason,
    })
}

/// The fields of `POST .../pulls` the policy reads. Declared fields are refused when given
/// twice (`{"head":"agent/x","head":"main"}` cannot pass one and send the other).
#[derive(serde::Deserialize)]
struct PullBody {
    #[serde(default)]
    head: Option<String>,
    #[serde(default)]
    head_repo: Option<String>,
}

/// `POST .../pulls`: `head` must be a branch the sandbox may push, in the same repository.
pub(crate) fn pull_head(sb: &Sandbox, repo: &RepoName, body: &[u8]) -> Result<(), Refusal> {
    let refuse = |msg: String| Err(Refusal::json(StatusCode::FORBIDDEN, msg));
    let v: PullBody = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return refuse(format!(
                "the pull request body is not the JSON GitHub expects: {e}"
            ));
        }
    };
    if let Some(hr) = v.head_repo.as_deref()
        && !hr.eq_ignore_ascii_case(repo.repo())
        && RepoName::parse(hr).as_ref() != Some(repo)
    {
        return refuse(format!(
            "pull request head_repo {hr:?} is another repository; sandbox {} may open pull requests only from its own branches",
            sb.name()
        ));
    }
    pull_head_branch(sb, repo, v.head.as_deref().unwrap_or_default()).or_else(refuse)
}

/// A pull request's head (`BRANCH` or `OWNER:BRANCH`, REST's `head` and GraphQL's
/// `headRefName`): a branch of `repo` the sandbox may push.
pub(crate) fn pull_head_branch(sb: &Sandbox, repo: &RepoName, head: &str) -> Result<(), String> {
    let branch = match head.split_once(':') {
        Some((o, b)) if o.eq_ignore_ascii_case(repo.owner()) => b,
        Some((o, _)) => {
            return Err(format!(
                "pull request head {head:?} is in {o}'s fork; sandbox {} may open pull requests only from its own branches",
                sb.name()
            ));
        }
        None => head,
    };
    let refname = format!("refs/heads/{branch}");
    if branch.is_empty() || !receive_pack::valid_refname(&refname) || !sb.push.allows_ref(&refname)
    {
        return Err(format!(
            "pull request head {head:?} is not allowed for sandbox {} (policy: heads must match {})",
            sb.name(),
            sb.push.patterns.join(", ")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::route;
    use crate::sandbox::tests::sandbox;
    use ghapp_core::config::GitHubHost;

    /// The verdict for `METHOD host path?query`, as a short string: `forward URL BODY` or
    /// `STATUS`.
    fn verdict(
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
    fn git_requests() {
        let h = Hosts::new(
            &GitHubHost::new(Some("https://api.github.com"), Some("github.com")).unwrap(),
        );
        let g = "github.com:443";
        let cases = [
            (
                "GET",
                "/octo-org/widgets/info/refs?service=git-upload-pack",
                "forward https://github.com/octo-org/widgets.git/info/refs?service=git-upload-pack None Octo-Org",
            ),
            (
                "GET",
                "/octo-org/widgets.git/info/refs?service=git-receive-pack&x=1",
                "forward https://github.com/octo-org/widgets.git/info/refs?service=git-receive-pack None Octo-Org",
            ),
            (
                "POST",
                "/octo-org/widgets.git/git-upload-pack?x",
                "forward https://github.com/octo-org/widgets.git/git-upload-pack Stream Octo-Org",
            ),
            (
                "POST",
                "/octo-org/widgets.git/git-receive-pack",
                "forward https://github.com/octo-org/widgets.git/git-receive-pack Push Octo-Org",
            ),
            ("PUT", "/octo-org/widgets.git/git-receive-pack", "405"),
            ("post", "/octo-org/widgets.git/git-receive-pack", "405"),
            ("GET", "/octo-org/widgets.git/git-receive-pack", "405"),
            ("GET", "/octo-org/widgets.git/info/refs", "403"),
            (
                "GET",
                "/octo-org/gadgets.git/info/refs?service=git-upload-pack",
                "403",
            ),
            ("GET", "/octo-org/widgets.git/HEAD", "403"),
        ];
        for (m, t, want) in cases {
            assert_eq!(verdict(&h, m, g, t, &[]), want, "{m} {t}");
        }
        assert_eq!(
            verdict(
                &h,
                "POST",
                g,
                "/octo-org/widgets.git/git-receive-pack",
                &[("content-encoding", "gzip")]
            ),
            "415"
        );
    }

    #[test]
    fn rest_requests() {
        let h =
            Hosts::new(&GitHubHost::new(Some("https://h:8443/api/v3"), Some("h:8443")).unwrap());
        let a = "h:8443";
        let cases = [
            (
                "GET",
                "/api/v3/repos/octo-org/widgets?x=1",
                "forward https://h:8443/api/v3/repos/octo-org/widgets?x=1 None Octo-Org",
            ),
            (
                "POST",
                "/api/v3/repos/octo-org/widgets/pulls?head=main",
                "forward https://h:8443/api/v3/repos/octo-org/widgets/pulls PullHead Octo-Org",
            ),
            (
                "POST",
                "/api/v3/repos/octo-org/widgets/%70ulls",
                "forward https://h:8443/api/v3/repos/octo-org/widgets/pulls PullHead Octo-Org",
            ),
            (
                "POST",
                "/api/v3/repos/octo-org/widgets/issues/3/comments",
                "forward https://h:8443/api/v3/repos/octo-org/widgets/issues/3/comments Whole Octo-Org",
            ),
            (
                "POST",
                "/api/v3/repos/octo-org/widgets/statuses/abc",
                "forward https://h:8443/api/v3/repos/octo-org/widgets/statuses/abc Whole Octo-Org",
            ),
            (
                "POST",
                "/api/v3/repos/octo-org/widgets/statuses/..%2fmerges",
                "403",
            ),
            (
                "GET",
                "/api/v3/repos/octo-org/widgets/branches/agent%2Fx",
                "forward https://h:8443/api/v3/repos/octo-org/widgets/branches/agent/x None Octo-Org",
            ),
            ("DELETE", "/api/v3/repos/octo-org/widgets", "403"),
            ("GET", "/api/v3/repos/octo-org/gadgets", "403"),
            ("POST", "/api/v3/graphql", "403"),
        ];
        for (m, t, want) in cases {
            assert_eq!(verdict(&h, m, a, t, &[]), want, "{m} {t}");
        }
        assert_eq!(
            verdict(
                &h,
                "POST",
                a,
                "/api/v3/repos/octo-org/widgets/pulls",
                &[("content-encoding", "br")]
            ),
            "415"
        );
    }

    #[test]
    fn upstream_urls_are_what_was_decided() {
        let u = upstream_url("h:443", "/api/v3/repos/o/r/pulls", "").unwrap();
        assert_eq!(u.as_str(), "https://h/api/v3/repos/o/r/pulls");
        for bad in ["/repos/o/r/../x", "/repos/o/r/%2e%2e/x", "/repos/o\\r"] {
            assert!(upstream_url("h:443", bad, "").is_err(), "{bad}");
        }
    }

    #[test]
    fn pull_heads() {
        let sb = sandbox();
        let repo = RepoName::parse("Octo-Org/Widgets").unwrap();
        let ok = |b: &str| pull_head(&sb, &repo, b.as_bytes());
        assert!(ok(r#"{"head":"agent/x","base":"main"}"#).is_ok());
        assert!(ok(r#"{"head":"octo-org:agent/x"}"#).is_ok());
        assert!(ok(r#"{"head":"agent/x","head_repo":"widgets"}"#).is_ok());
        for bad in [
            r#"{"head":"main"}"#,
            r#"{"head":"evil:agent/x"}"#,
            r#"{"head":"agent/x","head":"main"}"#,
            r#"{"head":"agent/x","head_repo":"other"}"#,
            r#"{"head":"agent/../main"}"#,
            r#"{"head":7}"#,
            r#"not json"#,
            r#"{}"#,
        ] {
            let r = ok(bad).unwrap_err();
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{bad}");
        }
    }

    #[test]
    fn pushes() {
        let sb = sandbox();
        let cmds = |r: &str| {
            receive_pack::parse(
                &{
                    let line = format!(
                        "{} {} {r}\0report-status side-band-64k\n",
                        "0".repeat(40),
                        "1".repeat(40)
                    );
                    let mut v = format!("{:04x}", line.len() + 4).into_bytes();
                    v.extend_from_slice(line.as_bytes());
                    v.extend_from_slice(b"0000");
                    v
                },
                1 << 20,
            )
            .unwrap()
            .unwrap()
        };
        assert_eq!(push(&sb, &cmds("refs/heads/agent/x")), Ok(()));
        let r = push(&sb, &cmds("refs/heads/main")).unwrap_err();
        assert!(
            r.reason
                .contains("pushes allowed only to refs/heads/agent/*"),
            "{}",
            r.reason
        );
        assert!(String::from_utf8_lossy(&r.report).contains("ng refs/heads/main"));
    }
}
