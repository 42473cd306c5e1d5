//! Git LFS: the batch and locks APIs for the sandbox's repositories.

use ghapp_gitproto::repo::RepoName;
use hyper::header::HeaderMap;
use hyper::{Method, StatusCode};

use super::{Action, BodyPlan, Plan, Scheme, Verdict, answer, encoded, upstream_url};
use crate::audit::Service;
use crate::respond::Refusal;
use crate::router::Hosts;
use crate::sandbox::Sandbox;

/// Git LFS: the batch API for the sandbox's repositories (uploads only for a sandbox that may
/// push), the locks API (reading for all, locking for those that may push); every refusal in
/// git-lfs's JSON so git-lfs prints it.
pub(super) fn lfs(
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
