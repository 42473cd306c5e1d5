//! Repositories and what a token asks about itself: a repository, the installation's
//! repositories, the token's user, its revocation, the rate limit.

use std::time::Duration;

use hyper::StatusCode;
use serde_json::{Value, json};

use super::{Answer, Ctx, not_found};
use crate::hub::{Hub, level_covers};
use crate::{json as docs, json_response};

pub(super) async fn get_user(c: Ctx) -> Answer {
    let t = c.token()?;
    let Some(login) = &t.user else {
        return Err(super::err(
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
        return Err(super::err(
            StatusCode::UNAUTHORIZED,
            "Requires authentication",
        ));
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
    let kind = hub
        .installations
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .find(|i| i.account.eq_ignore_ascii_case(&r.owner))
        .map(|i| (i.account_id, i.account_type))
        .unwrap_or((7000, "User"));
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
