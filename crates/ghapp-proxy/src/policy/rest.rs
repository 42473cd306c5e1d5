//! The REST API: reads of the sandbox's repositories, writes from the table, and a pull
//! request's head.

use ghapp_gitproto::receive_pack;
use ghapp_gitproto::repo::RepoName;
use ghapp_gitproto::rest::{self, RestKind, RouteError};
use hyper::header::HeaderMap;
use hyper::{Method, StatusCode};

use super::{Action, BodyPlan, Plan, Scheme, Verdict, answer, encoded, upstream_url};
use crate::audit::Service;
use crate::respond::Refusal;
use crate::router::Hosts;
use crate::sandbox::Sandbox;

/// A REST request under the API prefix: any read of the sandbox's repositories, writes from the
/// table or the sandbox's `rest` routes; a pull request's creation read for its head.
pub(super) fn rest(
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
    } else if let RestKind::UpdatePull(n) = route.kind {
        BodyPlan::OwnPull(n)
    } else if let RestKind::MergePull(n) = route.kind {
        BodyPlan::MergePull(n)
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
    use crate::policy::tests::verdict;
    use crate::sandbox::tests::sandbox;
    use ghapp_core::config::GitHubHost;

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
}
