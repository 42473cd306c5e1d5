//! Pull requests and their comments, with GitHub's validation.

use std::sync::Arc;

use hyper::{Response, StatusCode};
use serde_json::{Value, json};

use super::{Answer, Ctx, err, not_found, read_json};
use crate::hub::{Hub, IssuedToken, Repo, level_covers};
use crate::{Body, json_response};

pub(super) async fn list(c: Ctx) -> Answer {
    let r = repo_for_token(&c.hub, &c.token()?, c.param(0), c.param(1), "read")?;
    let q = c.query();
    let state = q.get("state").map_or("open", String::as_str).to_owned();
    let head = q.get("head").cloned();
    let base_f = q.get("base").cloned();
    let pulls = c
        .hub
        .pulls
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let list: Vec<Value> = pulls
        .iter()
        .filter(|p| p.is(&r))
        .filter(|p| state == "all" || p.state == state)
        .filter(|p| match &head {
            Some(h) => {
                let (ho, hb) = h.split_once(':').unwrap_or(("", h.as_str()));
                hb == p.head && (ho.is_empty() || ho.eq_ignore_ascii_case(&r.owner))
            }
            None => true,
        })
        .filter(|p| base_f.as_deref().is_none_or(|b| b == p.base))
        .map(|p| crate::pulls::doc(&c.hub, p, &r, false))
        .collect();
    Ok(json_response(StatusCode::OK, &Value::Array(list)))
}

pub(super) async fn create(c: Ctx) -> Answer {
    let t = c.token()?;
    let r = repo_for_token(&c.hub, &t, c.param(0), c.param(1), "write")?;
    let v = read_json(c.req).await?;
    Ok(create_pull(&c.hub, &t, &r, &v).await)
}

pub(super) async fn get(c: Ctx) -> Answer {
    get_or_update(c, false).await
}

pub(super) async fn update(c: Ctx) -> Answer {
    get_or_update(c, true).await
}

async fn get_or_update(c: Ctx, update: bool) -> Answer {
    let need = if update { "write" } else { "read" };
    let r = repo_for_token(&c.hub, &c.token()?, c.param(0), c.param(1), need)?;
    let n: u64 = c.param(2).parse().map_err(|_| not_found())?;
    let hub = c.hub.clone();
    let patch = if update {
        Some(read_json(c.req).await?)
    } else {
        None
    };
    let mut pulls = hub.pulls.lock().unwrap_or_else(|e| e.into_inner());
    let p = numbered(&mut pulls, &r, n)?;
    if let Some(v) = patch {
        if let Some(t) = v["title"].as_str() {
            p.title = t.to_owned();
        }
        if let Some(b) = v["body"].as_str() {
            p.body = Some(b.to_owned());
        }
        match v["state"].as_str() {
            Some(s @ ("open" | "closed")) => p.state = s.to_owned(),
            Some(_) => {
                return Err(json_response(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    &crate::pulls::validation_failed("state", "invalid", None),
                ));
            }
            None => {}
        }
    }
    let p = p.clone();
    drop(pulls);
    Ok(json_response(
        StatusCode::OK,
        &crate::pulls::doc(&hub, &p, &r, true),
    ))
}

/// `PUT /repos/{owner}/{repo}/pulls/{number}/merge`: needs contents write; 405 when it is
/// closed, merged or conflicts, 409 when `sha` is not the head, 422 for an unknown
/// `merge_method`.
pub(super) async fn merge(c: Ctx) -> Answer {
    let t = c.token()?;
    let r = repo_for_token(&c.hub, &t, c.param(0), c.param(1), "read")?;
    if !level_covers(
        t.permissions.get("contents").map_or("", String::as_str),
        "write",
    ) {
        return Err(err(
            StatusCode::FORBIDDEN,
            "Resource not accessible by integration",
        ));
    }
    let n: u64 = c.param(2).parse().map_err(|_| not_found())?;
    let hub = c.hub.clone();
    let body =
        http_body_util::BodyExt::collect(http_body_util::Limited::new(c.req.into_body(), 1 << 20))
            .await
            .map_err(|_| err(StatusCode::BAD_REQUEST, "Problems parsing JSON"))?
            .to_bytes();
    let v: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v @ Value::Object(_)) => v,
            _ => return Err(err(StatusCode::BAD_REQUEST, "Problems parsing JSON")),
        }
    };
    let p = {
        let mut pulls = hub.pulls.lock().unwrap_or_else(|e| e.into_inner());
        numbered(&mut pulls, &r, n)?.clone()
    };
    if p.state != "open" || p.merge_commit_sha.is_some() {
        return Err(err(
            StatusCode::METHOD_NOT_ALLOWED,
            "Pull Request is not mergeable",
        ));
    }
    let head_now = crate::pulls::branch_sha(&hub, &r, &p.head);
    if let Some(sha) = v["sha"].as_str()
        && head_now.as_deref() != Some(sha)
    {
        return Err(err(
            StatusCode::CONFLICT,
            "Head branch was modified. Review and try the merge again.",
        ));
    }
    let method = v["merge_method"].as_str().unwrap_or("merge").to_owned();
    let (h, r2, p2) = (hub.clone(), r.clone(), p.clone());
    let (title, message) = (
        v["commit_title"].as_str().map(str::to_owned),
        v["commit_message"].as_str().map(str::to_owned),
    );
    let merged = tokio::task::spawn_blocking(move || {
        crate::pulls::merge(&h, &r2, &p2, &method, title.as_deref(), message.as_deref())
    })
    .await
    .map_err(|_| err(StatusCode::INTERNAL_SERVER_ERROR, "merge failed"))?;
    let sha = match merged {
        Ok(sha) => sha,
        Err(crate::pulls::NotMerged(422, why)) => {
            return Err(json_response(
                StatusCode::UNPROCESSABLE_ENTITY,
                &crate::pulls::validation_failed("merge_method", "invalid", Some(&why)),
            ));
        }
        Err(crate::pulls::NotMerged(status, why)) => {
            return Err(err(
                StatusCode::from_u16(status).unwrap_or(StatusCode::METHOD_NOT_ALLOWED),
                &why,
            ));
        }
    };
    {
        let mut pulls = hub.pulls.lock().unwrap_or_else(|e| e.into_inner());
        if let Ok(p) = numbered(&mut pulls, &r, n) {
            p.merge_commit_sha = Some(sha.clone());
            p.state = "closed".into();
            p.head_sha = head_now.unwrap_or_default();
        }
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({ "sha": sha, "merged": true, "message": "Pull Request successfully merged" }),
    ))
}

/// Pull request `n` of repository `r`.
fn numbered<'a>(
    pulls: &'a mut [crate::pulls::Pull],
    r: &Repo,
    n: u64,
) -> Result<&'a mut crate::pulls::Pull, Response<Body>> {
    pulls
        .iter_mut()
        .find(|p| p.number == n && p.is(r))
        .ok_or_else(not_found)
}

/// `POST /repos/{owner}/{repo}/pulls/{number}/requested_reviewers`: `reviewers` (logins) and
/// `team_reviewers` (slugs of the repository's organization), at least one; not the pull
/// request's author; 201 with the pull request.
pub(super) async fn request_reviewers(c: Ctx) -> Answer {
    let t = c.token()?;
    let r = repo_for_token(&c.hub, &t, c.param(0), c.param(1), "write")?;
    let n: u64 = c.param(2).parse().map_err(|_| not_found())?;
    let hub = c.hub.clone();
    let v = read_json(c.req).await?;
    let invalid = |m: &str| {
        json_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            &json!({"message": m, "documentation_url": "https://docs.github.com/rest/pulls/review-requests#request-reviewers-for-a-pull-request", "status": "422"}),
        )
    };
    let list = |key: &str| -> Result<Vec<String>, Response<Body>> {
        match &v[key] {
            Value::Null => Ok(Vec::new()),
            Value::Array(a) => a
                .iter()
                .map(|x| x.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| invalid("Invalid request.")),
            _ => Err(invalid("Invalid request.")),
        }
    };
    let (users, teams) = (list("reviewers")?, list("team_reviewers")?);
    if users.is_empty() && teams.is_empty() {
        return Err(invalid(
            "Invalid request.\n\nNo subschema in \"anyOf\" matched.",
        ));
    }
    let login = |s: &String| {
        (1..=39).contains(&s.len())
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !s.starts_with('-')
    };
    if !users.iter().chain(&teams).all(login) {
        return Err(invalid(
            "Reviews may only be requested from collaborators. One or more of the users or teams you specified is not a collaborator of the repository.",
        ));
    }
    let mut pulls = hub.pulls.lock().unwrap_or_else(|e| e.into_inner());
    let p = numbered(&mut pulls, &r, n)?;
    if users.iter().any(|u| u.eq_ignore_ascii_case(&p.author)) {
        return Err(invalid(
            "Review cannot be requested from pull request author.",
        ));
    }
    for u in users {
        if !p.reviewers.contains(&u) {
            p.reviewers.push(u);
        }
    }
    for s in teams {
        if !p.teams.contains(&s) {
            p.teams.push(s);
        }
    }
    let p = p.clone();
    drop(pulls);
    Ok(json_response(
        StatusCode::CREATED,
        &crate::pulls::doc(&hub, &p, &r, false),
    ))
}

/// `POST /repos/{owner}/{repo}/issues/{number}/comments` on a pull request.
pub(super) async fn comment(c: Ctx) -> Answer {
    let t = c.token()?;
    let r = repo_for_token(&c.hub, &t, c.param(0), c.param(1), "write")?;
    let n: u64 = c.param(2).parse().map_err(|_| not_found())?;
    let hub = c.hub.clone();
    let v = read_json(c.req).await?;
    let Some(body) = v["body"].as_str().filter(|b| !b.is_empty()) else {
        return Err(json_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            &json!({"message": "Validation Failed", "errors": [{"resource": "IssueComment", "field": "body", "code": "missing_field"}], "documentation_url": "https://docs.github.com/rest", "status": "422"}),
        ));
    };
    let mut pulls = hub.pulls.lock().unwrap_or_else(|e| e.into_inner());
    let p = numbered(&mut pulls, &r, n)?;
    let c = crate::pulls::Comment {
        id: crate::pulls::next_comment_id(),
        body: body.to_owned(),
        author: crate::pulls::actor(&hub, &t),
    };
    p.comments.push(c.clone());
    drop(pulls);
    Ok(json_response(
        StatusCode::CREATED,
        &crate::pulls::comment_doc(&hub, &r, n, &c),
    ))
}

/// `GET /repos/{owner}/{repo}/issues/{number}/comments` on a pull request.
pub(super) async fn comments(c: Ctx) -> Answer {
    let r = repo_for_token(&c.hub, &c.token()?, c.param(0), c.param(1), "read")?;
    let n: u64 = c.param(2).parse().map_err(|_| not_found())?;
    let mut pulls = c.hub.pulls.lock().unwrap_or_else(|e| e.into_inner());
    let p = numbered(&mut pulls, &r, n)?;
    let list: Vec<Value> = p
        .comments
        .iter()
        .map(|x| crate::pulls::comment_doc(&c.hub, &r, n, x))
        .collect();
    Ok(json_response(StatusCode::OK, &Value::Array(list)))
}

/// `GET /repos/{owner}/{repo}/pulls/{number}/comments`: review comments, which fakehub's
/// pull requests never have.
pub(super) async fn review_comments(c: Ctx) -> Answer {
    let r = repo_for_token(&c.hub, &c.token()?, c.param(0), c.param(1), "read")?;
    let n: u64 = c.param(2).parse().map_err(|_| not_found())?;
    let mut pulls = c.hub.pulls.lock().unwrap_or_else(|e| e.into_inner());
    numbered(&mut pulls, &r, n)?;
    Ok(json_response(StatusCode::OK, &json!([])))
}

/// The repository, when `t` reaches it with `pull_requests` at `level`.
fn repo_for_token(
    hub: &Hub,
    t: &IssuedToken,
    owner: &str,
    repo: &str,
    level: &str,
) -> Result<Repo, Response<Body>> {
    super::repo_with(hub, t, owner, repo, "pull_requests", level)
}

/// `POST /repos/{o}/{r}/pulls` with GitHub's validation.
async fn create_pull(hub: &Arc<Hub>, t: &IssuedToken, r: &Repo, v: &Value) -> Response<Body> {
    let (hub2, t, r2, v) = (hub.clone(), t.clone(), r.clone(), v.clone());
    let opened = tokio::task::spawn_blocking(move || {
        let o = crate::pulls::Open {
            title: v["title"].as_str(),
            head: v["head"].as_str(),
            base: v["base"].as_str(),
            body: v["body"].as_str(),
            draft: v["draft"].as_bool().unwrap_or(false),
        };
        crate::pulls::open(&hub2, &t, &r2, &o)
    })
    .await;
    match opened {
        Ok(Ok(p)) => json_response(StatusCode::CREATED, &crate::pulls::doc(hub, &p, r, true)),
        Ok(Err(invalid)) => json_response(StatusCode::UNPROCESSABLE_ENTITY, &invalid.rest()),
        Err(_) => err(StatusCode::INTERNAL_SERVER_ERROR, "fakehub failed"),
    }
}
