//! Repositories and what a token asks about itself: a repository, the installation's
//! repositories, the token's user, its revocation, the rate limit.

use std::time::Duration;

use hyper::StatusCode;
use serde_json::{Value, json};

use super::{Answer, Ctx, err, not_found};
use crate::hub::{Hub, level_covers};
use crate::{json as docs, json_response};

pub(super) async fn get_user(c: Ctx) -> Answer {
    let t = c.token()?;
    let Some(login) = &t.user else {
        return Err(err(
            StatusCode::FORBIDDEN,
            "Resource not accessible by integration",
        ));
    };
    let mut r = json_response(
        StatusCode::OK,
        &docs::simple_user(&c.hub.base_url, login, 7100, "User"),
    );
    if let Some(v) = pat_expiry_header(t.expires_at) {
        r.headers_mut()
            .insert("github-authentication-token-expiration", v);
    }
    Ok(r)
}

pub(super) async fn installation_repositories(c: Ctx) -> Answer {
    let t = c.token()?;
    let hub = &c.hub;
    let inst = hub.installation(t.installation_id).ok_or_else(not_found)?;
    let repos: Vec<Value> = hub
        .installation_repos(&inst)
        .into_iter()
        .filter(|r| hub.token_covers(&t, &r.owner, &r.name))
        .map(|r| repo_doc(hub, &r, None))
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "total_count": repos.len(),
            "repository_selection": if t.repositories.is_some() { "selected" } else { "all" },
            "repositories": repos
        }),
    ))
}

pub(super) async fn revoke_token(c: Ctx) -> Answer {
    let super::Auth::Token(raw) = &c.auth else {
        return Err(err(StatusCode::UNAUTHORIZED, "Requires authentication"));
    };
    c.token()?;
    let mut tokens = c.hub.tokens.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(t) = tokens.get_mut(raw) {
        t.revoked = true;
    }
    Ok(crate::empty(StatusCode::NO_CONTENT))
}

pub(super) async fn get_repo(c: Ctx) -> Answer {
    let t = c.token()?;
    match c.hub.find_repo(c.param(0), c.param(1)) {
        Some(r) if c.hub.token_covers(&t, &r.owner, &r.name) => {
            let push = t
                .permissions
                .get("contents")
                .is_some_and(|l| level_covers(l, "write"));
            Ok(json_response(
                StatusCode::OK,
                &repo_doc(&c.hub, &r, Some((true, push))),
            ))
        }
        _ => Ok(not_found()),
    }
}

pub(super) async fn rate_limit(c: Ctx) -> Answer {
    let now = c.hub.now();
    let core = json!({"limit": 5000, "used": 0, "remaining": 5000, "reset": now + 3600});
    Ok(json_response(
        StatusCode::OK,
        &json!({"resources": {"core": core, "search": core}, "rate": core}),
    ))
}

pub(crate) fn repo_doc(hub: &Hub, r: &crate::hub::Repo, perms: Option<(bool, bool)>) -> Value {
    let kind = hub.account(&r.owner);
    let owner = docs::simple_user(&hub.base_url, &r.owner, kind.0, kind.1);
    docs::repository(
        &hub.base_url,
        &owner,
        &r.name,
        r.id,
        &r.default_branch,
        perms,
    )
}

/// `github-authentication-token-expiration`, sent with every answer to a token that expires
/// (GitHub's format: `2026-12-01 00:00:00 UTC`).
fn pat_expiry_header(expires_at: i64) -> Option<hyper::header::HeaderValue> {
    if expires_at == i64::MAX {
        return None;
    }
    let t = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + Duration::from_secs(expires_at.max(0) as u64),
    )
    .to_string();
    let t = t.trim_end_matches('Z').replace('T', " ");
    format!("{t} UTC").parse().ok()
}

/// `GET /repos/{owner}/{repo}/branches/{branch}` (the branch's name may hold slashes): the
/// branch with its head commit, unprotected.
pub(super) async fn branch(c: Ctx) -> Answer {
    let t = c.token()?;
    let r = c
        .hub
        .find_repo(c.param(0), c.param(1))
        .filter(|r| c.hub.token_covers(&t, &r.owner, &r.name))
        .ok_or_else(not_found)?;
    let name = c.param(2).to_owned();
    let hub = c.hub.clone();
    let (r2, n2) = (r.clone(), name.clone());
    let out = tokio::task::spawn_blocking(move || {
        crate::pulls::git(
            &hub,
            &r2,
            &[
                "log",
                "-1",
                "--format=%H%n%T%n%P%n%an%n%ae%n%aI%n%cn%n%ce%n%cI%n%B",
                &format!("refs/heads/{n2}"),
                "--",
            ],
        )
    })
    .await
    .map_err(|_| not_found())?
    .map_err(|_| err(StatusCode::NOT_FOUND, "Branch not found"))?;
    let mut l = out.lines();
    let mut next = || l.next().unwrap_or_default().to_owned();
    let (sha, tree, parents) = (next(), next(), next());
    let (an, ae, ad, cn, ce, cd) = (next(), next(), next(), next(), next(), next());
    let message: String = out.lines().skip(9).collect::<Vec<_>>().join("\n");
    let base = &c.hub.base_url;
    let api = format!("{base}/api/v3/repos/{}/{}", r.owner, r.name);
    let html = format!("{base}/{}/{}", r.owner, r.name);
    let who = |n: &str, e: &str, d: &str| json!({"name": n, "email": e, "date": d});
    let parents: Vec<Value> = parents
        .split_whitespace()
        .map(|p| json!({"sha": p, "url": format!("{api}/commits/{p}"), "html_url": format!("{html}/commit/{p}")}))
        .collect();
    let doc = json!({
        "name": name,
        "commit": {
            "sha": sha,
            "node_id": format!("C_kwDO{sha}"),
            "url": format!("{api}/commits/{sha}"),
            "html_url": format!("{html}/commit/{sha}"),
            "comments_url": format!("{api}/commits/{sha}/comments"),
            "commit": {
                "url": format!("{api}/git/commits/{sha}"),
                "author": who(&an, &ae, &ad),
                "committer": who(&cn, &ce, &cd),
                "message": message,
                "comment_count": 0,
                "tree": {"sha": tree, "url": format!("{api}/git/trees/{tree}")},
                "verification": {"verified": false, "reason": "unsigned", "payload": null, "signature": null, "verified_at": null},
            },
            "author": null,
            "committer": null,
            "parents": parents,
        },
        "_links": {"html": format!("{html}/tree/{name}"), "self": format!("{api}/branches/{name}")},
        "protected": false,
        "protection": {"enabled": false, "required_status_checks": {"enforcement_level": "off", "contexts": [], "checks": []}},
        "protection_url": format!("{api}/branches/{name}/protection"),
    });
    Ok(json_response(StatusCode::OK, &doc))
}
