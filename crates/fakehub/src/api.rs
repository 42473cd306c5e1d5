//! The REST API under `/api/v3` (GitHub Enterprise Server layout).

#![expect(
    clippy::result_large_err,
    reason = "handlers return the error response itself as Err, built once per refused request"
)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

use crate::hub::{App, Hub, IssuedToken, Mint, TokenCheck, level_covers};
use crate::{Body, json as docs, json_response};

enum Auth {
    None,
    Jwt(String),
    Token(String),
}

fn auth_of(req: &Request<Incoming>) -> Auth {
    let Some(v) = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Auth::None;
    };
    let cred = v
        .strip_prefix("Bearer ")
        .or_else(|| v.strip_prefix("bearer "))
        .or_else(|| v.strip_prefix("token "))
        .unwrap_or("")
        .trim();
    if cred.is_empty() {
        Auth::None
    } else if cred.starts_with("ghs_") || cred.starts_with("github_pat_") {
        Auth::Token(cred.to_owned())
    } else {
        Auth::Jwt(cred.to_owned())
    }
}

fn err(status: StatusCode, msg: &str) -> Response<Body> {
    json_response(status, &docs::error(msg))
}

fn not_found() -> Response<Body> {
    err(StatusCode::NOT_FOUND, "Not Found")
}

pub(crate) async fn handle(hub: Arc<Hub>, req: Request<Incoming>, path: &str) -> Response<Body> {
    let delay = hub.knobs.delay_ms.load(Ordering::Relaxed);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let method = req.method().clone();
    let segs: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let route = route_name(&method, &s);
    hub.count(&route);

    // Rate-limit knob: answer the next N API requests with 403/429 and Retry-After.
    if hub
        .knobs
        .rate_limit
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        let status =
            StatusCode::from_u16(hub.knobs.rate_limit_status.load(Ordering::Relaxed) as u16)
                .unwrap_or(StatusCode::TOO_MANY_REQUESTS);
        let mut r = err(
            status,
            "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
        );
        let ra = hub.knobs.retry_after.load(Ordering::Relaxed).to_string();
        r.headers_mut()
            .insert("retry-after", ra.parse().expect("digits"));
        return r;
    }

    let auth = auth_of(&req);
    let jwt = |auth: &Auth| -> Result<App, Response<Body>> {
        match auth {
            Auth::Jwt(j) => hub
                .check_jwt(j)
                .map_err(|m| err(StatusCode::UNAUTHORIZED, m)),
            Auth::Token(_) => Err(err(
                StatusCode::FORBIDDEN,
                "This endpoint requires you to authenticate as a GitHub App (JWT).",
            )),
            Auth::None => Err(err(
                StatusCode::UNAUTHORIZED,
                "A JSON web token could not be decoded",
            )),
        }
    };
    let token = |auth: &Auth| -> Result<IssuedToken, Response<Body>> {
        match auth {
            Auth::Token(t) => match hub.check_token(t) {
                TokenCheck::Valid(t) => Ok(t),
                _ => Err(err(StatusCode::UNAUTHORIZED, "Bad credentials")),
            },
            Auth::Jwt(_) => Err(err(
                StatusCode::FORBIDDEN,
                "This endpoint requires an installation access token.",
            )),
            Auth::None => Err(err(StatusCode::UNAUTHORIZED, "Requires authentication")),
        }
    };
    let base = hub.base_url.clone();

    let result: Result<Response<Body>, Response<Body>> = (async {
        match (method.clone(), s.as_slice()) {
            (Method::GET, ["app"]) => {
                let app = jwt(&auth)?;
                Ok(json_response(StatusCode::OK, &app_doc(&hub, &app)))
            }
            (Method::GET, ["app", "installations"]) => {
                let app = jwt(&auth)?;
                let list: Vec<Value> = hub
                    .installations_of(app.id)
                    .iter()
                    .map(|i| installation_doc(&hub, i))
                    .collect();
                Ok(json_response(StatusCode::OK, &Value::Array(list)))
            }
            (Method::GET, ["app", "installations", id]) => {
                let app = jwt(&auth)?;
                let inst = id.parse().ok().and_then(|id| hub.installation(id));
                match inst {
                    Some(i) if i.app_id == app.id => Ok(json_response(StatusCode::OK, &installation_doc(&hub, &i))),
                    _ => Ok(not_found()),
                }
            }
            (Method::POST, ["app", "installations", id, "access_tokens"]) => {
                let app = jwt(&auth)?;
                let id: u64 = id.parse().unwrap_or(0);
                Ok(mint(&hub, &app, id, req).await)
            }
            (Method::GET, ["repos", owner, repo, "installation"]) => {
                let app = jwt(&auth)?;
                match hub.installation_for_repo(app.id, owner, repo) {
                    Some(i) => Ok(json_response(StatusCode::OK, &installation_doc(&hub, &i))),
                    None => Ok(not_found()),
                }
            }
            (Method::GET, ["users" | "orgs", owner, "installation"]) => {
                let app = jwt(&auth)?;
                match hub
                    .installations_of(app.id)
                    .iter()
                    .find(|i| i.account.eq_ignore_ascii_case(owner))
                {
                    Some(i) => Ok(json_response(StatusCode::OK, &installation_doc(&hub, i))),
                    None => Ok(not_found()),
                }
            }
            (Method::POST, ["app-manifests", code, "conversions"]) => {
                Ok(crate::manifest::convert(&hub, code))
            }
            (Method::GET, ["user"]) => {
                let t = token(&auth)?;
                let Some(login) = &t.user else {
                    return Err(err(StatusCode::FORBIDDEN, "Resource not accessible by integration"));
                };
                let mut r = json_response(StatusCode::OK, &docs::simple_user(&base, login, 7100, "User"));
                if let Some(v) = pat_expiry_header(t.expires_at) {
                    r.headers_mut().insert("github-authentication-token-expiration", v);
                }
                Ok(r)
            }
            (Method::GET, ["installation", "repositories"]) => {
                let t = token(&auth)?;
                let inst = hub.installation(t.installation_id).ok_or_else(not_found)?;
                let repos: Vec<Value> = hub
                    .installation_repos(&inst)
                    .into_iter()
                    .filter(|r| hub.token_covers(&t, &r.owner, &r.name))
                    .map(|r| repo_doc(&hub, &r, None))
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
            (Method::DELETE, ["installation", "token"]) => {
                let Auth::Token(raw) = &auth else {
                    return Err(err(StatusCode::UNAUTHORIZED, "Requires authentication"));
                };
                token(&auth)?;
                let mut tokens = hub.tokens.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(t) = tokens.get_mut(raw) {
                    t.revoked = true;
                }
                Ok(crate::empty(StatusCode::NO_CONTENT))
            }
            (Method::GET, ["repos", owner, repo]) => {
                let t = token(&auth)?;
                match hub.find_repo(owner, repo) {
                    Some(r) if hub.token_covers(&t, &r.owner, &r.name) => {
                        let push = t
                            .permissions
                            .get("contents")
                            .is_some_and(|l| level_covers(l, "write"));
                        Ok(json_response(StatusCode::OK, &repo_doc(&hub, &r, Some((true, push)))))
                    }
                    _ => Ok(not_found()),
                }
            }
            (Method::GET, ["repos", owner, repo, "pulls"]) => {
                let r = repo_for_token(&hub, &token(&auth)?, owner, repo, "read")?;
                let q = query_map(req.uri().query());
                let state = q.get("state").map(String::as_str).unwrap_or("open").to_owned();
                let head = q.get("head").cloned();
                let base_f = q.get("base").cloned();
                let pulls = hub.pulls.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let list: Vec<Value> = pulls
                    .iter()
                    .filter(|p| p.owner.eq_ignore_ascii_case(&r.owner) && p.repo.eq_ignore_ascii_case(&r.name))
                    .filter(|p| state == "all" || p.state == state)
                    .filter(|p| match &head {
                        Some(h) => {
                            let (ho, hb) = h.split_once(':').unwrap_or(("", h.as_str()));
                            hb == p.head && (ho.is_empty() || ho.eq_ignore_ascii_case(&r.owner))
                        }
                        None => true,
                    })
                    .filter(|p| base_f.as_deref().is_none_or(|b| b == p.base))
                    .map(|p| crate::pulls::doc(&hub, p, &r, false))
                    .collect();
                Ok(json_response(StatusCode::OK, &Value::Array(list)))
            }
            (Method::POST, ["repos", owner, repo, "pulls"]) => {
                let t = token(&auth)?;
                let r = repo_for_token(&hub, &t, owner, repo, "write")?;
                let v = read_json(req).await?;
                Ok(create_pull(&hub, &t, &r, &v).await)
            }
            (Method::GET | Method::PATCH, ["repos", owner, repo, "pulls", n]) => {
                let need = if method == Method::GET { "read" } else { "write" };
                let r = repo_for_token(&hub, &token(&auth)?, owner, repo, need)?;
                let n: u64 = n.parse().map_err(|_| not_found())?;
                let patch = if method == Method::PATCH { Some(read_json(req).await?) } else { None };
                let mut pulls = hub.pulls.lock().unwrap_or_else(|e| e.into_inner());
                let p = pulls
                    .iter_mut()
                    .find(|p| p.number == n && p.owner.eq_ignore_ascii_case(&r.owner) && p.repo.eq_ignore_ascii_case(&r.name))
                    .ok_or_else(not_found)?;
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
                Ok(json_response(StatusCode::OK, &crate::pulls::doc(&hub, &p, &r, true)))
            }
            (Method::POST, ["repos", owner, repo, "issues", n, "comments"]) => {
                let r = repo_for_token(&hub, &token(&auth)?, owner, repo, "write")?;
                let n: u64 = n.parse().map_err(|_| not_found())?;
                let v = read_json(req).await?;
                let Some(body) = v["body"].as_str().filter(|b| !b.is_empty()) else {
                    return Err(json_response(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        &json!({"message": "Validation Failed", "errors": [{"resource": "IssueComment", "field": "body", "code": "missing_field"}], "documentation_url": "https://docs.github.com/rest", "status": "422"}),
                    ));
                };
                let mut pulls = hub.pulls.lock().unwrap_or_else(|e| e.into_inner());
                let p = pulls
                    .iter_mut()
                    .find(|p| p.number == n && p.owner.eq_ignore_ascii_case(&r.owner) && p.repo.eq_ignore_ascii_case(&r.name))
                    .ok_or_else(not_found)?;
                p.comments += 1;
                let id = 9000 + p.comments;
                drop(pulls);
                Ok(json_response(
                    StatusCode::CREATED,
                    &json!({"id": id, "body": body, "html_url": format!("{}/{}/{}/pull/{n}#issuecomment-{id}", hub.base_url, r.owner, r.name)}),
                ))
            }
            (Method::GET, ["app", "hook", "config"]) => {
                let app = jwt(&auth)?;
                let mut config = json!({
                    "url": app.hook_url.clone().unwrap_or_default(),
                    "content_type": "json",
                    "insecure_ssl": "0"
                });
                // GitHub masks a secret that is set and sends none otherwise.
                if app.hook_url.is_some() {
                    config["secret"] = json!("********");
                }
                Ok(json_response(StatusCode::OK, &config))
            }
            (Method::GET, ["app", "hook", "deliveries"]) => {
                let app = jwt(&auth)?;
                let q = query_map(req.uri().query());
                let status = q.get("status").cloned();
                if status.as_deref().is_some_and(|s| s != "success" && s != "failure") {
                    return Err(err(StatusCode::UNPROCESSABLE_ENTITY, "status must be success or failure"));
                }
                let list: Vec<Value> = hub
                    .deliveries
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter()
                    .rev()
                    .filter(|_| app.id == crate::APP_ID)
                    .filter(|d| match status.as_deref() {
                        Some("success") => d.status_code < 400,
                        Some("failure") => d.status_code >= 400,
                        _ => true,
                    })
                    .map(|d| serde_json::to_value(d).unwrap_or_default())
                    .collect();
                Ok(json_response(StatusCode::OK, &Value::Array(list)))
            }
            (Method::POST, ["app", "hook", "deliveries", id, "attempts"]) => {
                if jwt(&auth)?.id != crate::APP_ID {
                    return Err(not_found());
                }
                let id: u64 = id.parse().map_err(|_| not_found())?;
                let mut ds = hub.deliveries.lock().unwrap_or_else(|e| e.into_inner());
                let orig = ds.iter().find(|d| d.id == id).cloned().ok_or_else(not_found)?;
                let next = ds.iter().map(|d| d.id).max().unwrap_or(0) + 1;
                ds.push(crate::hub::Delivery {
                    id: next,
                    redelivery: true,
                    status: "OK".into(),
                    status_code: 200,
                    delivered_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
                    ..orig
                });
                Ok(json_response(StatusCode::ACCEPTED, &json!({})))
            }
            (Method::GET, ["rate_limit"]) => {
                let now = hub.now();
                let core = json!({"limit": 5000, "used": 0, "remaining": 5000, "reset": now + 3600});
                Ok(json_response(
                    StatusCode::OK,
                    &json!({"resources": {"core": core, "search": core}, "rate": core}),
                ))
            }
            _ => {
                let _ = &base;
                Ok(not_found())
            }
        }
    })
    .await;
    result.unwrap_or_else(|r| r)
}

/// The repository, when `t` reaches it with `pull_requests` at `level`.
fn repo_for_token(
    hub: &Hub,
    t: &IssuedToken,
    owner: &str,
    repo: &str,
    level: &str,
) -> Result<crate::hub::Repo, Response<Body>> {
    let r = hub
        .find_repo(owner, repo)
        .filter(|r| hub.token_covers(t, &r.owner, &r.name))
        .ok_or_else(not_found)?;
    let granted = t
        .permissions
        .get("pull_requests")
        .map(String::as_str)
        .unwrap_or("");
    if !level_covers(granted, level) {
        return Err(err(
            StatusCode::FORBIDDEN,
            "Resource not accessible by integration",
        ));
    }
    Ok(r)
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

/// A query string or form body as a map (`application/x-www-form-urlencoded`).
pub(crate) fn query_map(q: Option<&str>) -> BTreeMap<String, String> {
    form_urlencoded::parse(q.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

async fn read_json(req: Request<Incoming>) -> Result<Value, Response<Body>> {
    let body = Limited::new(req.into_body(), 1024 * 1024)
        .collect()
        .await
        .map_err(|_| err(StatusCode::BAD_REQUEST, "Problems parsing JSON"))?
        .to_bytes();
    match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(err(StatusCode::BAD_REQUEST, "Problems parsing JSON")),
    }
}

/// `POST /repos/{o}/{r}/pulls` with GitHub's validation.
async fn create_pull(
    hub: &Arc<Hub>,
    t: &IssuedToken,
    r: &crate::hub::Repo,
    v: &Value,
) -> Response<Body> {
    use crate::pulls::validation_failed;
    let unprocessable = |v: Value| json_response(StatusCode::UNPROCESSABLE_ENTITY, &v);
    let Some(title) = v["title"].as_str().filter(|t| !t.trim().is_empty()) else {
        return unprocessable(validation_failed("title", "missing_field", None));
    };
    let Some(head_raw) = v["head"].as_str().filter(|h| !h.is_empty()) else {
        return unprocessable(validation_failed("head", "missing_field", None));
    };
    let Some(base) = v["base"].as_str().filter(|b| !b.is_empty()) else {
        return unprocessable(validation_failed("base", "missing_field", None));
    };
    let head = match head_raw.split_once(':') {
        Some((o, b)) if o.eq_ignore_ascii_case(&r.owner) => b,
        Some(_) => return unprocessable(validation_failed("head", "invalid", None)),
        None => head_raw,
    };
    let Some(head_sha) = crate::pulls::branch_sha(hub, r, head).await else {
        return unprocessable(validation_failed("head", "invalid", None));
    };
    let Some(base_sha) = crate::pulls::branch_sha(hub, r, base).await else {
        return unprocessable(validation_failed("base", "invalid", None));
    };
    if head_sha == base_sha {
        return unprocessable(validation_failed(
            "",
            "",
            Some(&format!("No commits between {base} and {head}")),
        ));
    }
    let mut pulls = hub.pulls.lock().unwrap_or_else(|e| e.into_inner());
    if pulls.iter().any(|p| {
        p.state == "open"
            && p.owner.eq_ignore_ascii_case(&r.owner)
            && p.repo.eq_ignore_ascii_case(&r.name)
            && p.head == head
            && p.base == base
    }) {
        return unprocessable(validation_failed(
            "",
            "",
            Some(&format!(
                "A pull request already exists for {}:{head}.",
                r.owner
            )),
        ));
    }
    let p = crate::pulls::Pull {
        number: pulls.len() as u64 + 1,
        owner: r.owner.clone(),
        repo: r.name.clone(),
        title: title.to_owned(),
        body: v["body"].as_str().map(str::to_owned),
        head: head.to_owned(),
        base: base.to_owned(),
        draft: v["draft"].as_bool().unwrap_or(false),
        state: "open".into(),
        head_sha,
        base_sha,
        comments: 0,
        author: match &t.user {
            Some(u) => u.clone(),
            None => hub
                .installation(t.installation_id)
                .and_then(|i| hub.app(i.app_id))
                .map(|a| format!("{}[bot]", a.slug))
                .unwrap_or_else(|| "ghost".into()),
        },
    };
    pulls.push(p.clone());
    drop(pulls);
    json_response(StatusCode::CREATED, &crate::pulls::doc(hub, &p, r, true))
}

/// A stable label for counting: ids and names replaced by `{…}`.
fn route_name(method: &Method, s: &[&str]) -> String {
    let pattern = match s {
        ["app", "installations", _] => "/app/installations/{id}".into(),
        ["app", "installations", _, "access_tokens"] => {
            "/app/installations/{id}/access_tokens".into()
        }
        ["repos", _, _, "installation"] => "/repos/{owner}/{repo}/installation".into(),
        ["users", _, "installation"] => "/users/{user}/installation".into(),
        ["orgs", _, "installation"] => "/orgs/{org}/installation".into(),
        ["repos", _, _] => "/repos/{owner}/{repo}".into(),
        ["app-manifests", _, "conversions"] => "/app-manifests/{code}/conversions".into(),
        ["app", "hook", "deliveries", _, "attempts"] => "/app/hook/deliveries/{id}/attempts".into(),
        ["repos", _, _, "pulls"] => "/repos/{owner}/{repo}/pulls".into(),
        ["repos", _, _, "pulls", _] => "/repos/{owner}/{repo}/pulls/{number}".into(),
        ["repos", _, _, "issues", _, "comments"] => {
            "/repos/{owner}/{repo}/issues/{number}/comments".into()
        }
        other => format!("/{}", other.join("/")),
    };
    format!("{method} {pattern}")
}

pub(crate) fn app_doc(hub: &Hub, app: &App) -> Value {
    json!({
        "id": app.id,
        "slug": app.slug,
        "node_id": format!("A_kwDO{}", app.id),
        "client_id": app.client_id,
        "owner": docs::simple_user(&hub.base_url, &app.owner, 9000, "Organization"),
        "name": app.name,
        "description": "The GitHub App emulated by fakehub",
        "external_url": "https://example.invalid/ghapp",
        "html_url": format!("{}/apps/{}", hub.base_url, app.slug),
        "created_at": docs::CREATED,
        "updated_at": docs::CREATED,
        "permissions": app.permissions,
        "events": [],
        "installations_count": hub.installations_of(app.id).len()
    })
}

pub(crate) fn installation_doc(hub: &Hub, i: &crate::hub::Installation) -> Value {
    let api = format!("{}/api/v3", hub.base_url);
    let app = hub.app(i.app_id);
    let (client_id, slug) = app.map(|a| (a.client_id, a.slug)).unwrap_or_default();
    json!({
        "id": i.id,
        "account": docs::simple_user(&hub.base_url, &i.account, i.account_id, i.account_type),
        "repository_selection": if i.repositories.is_some() { "selected" } else { "all" },
        "access_tokens_url": format!("{api}/app/installations/{}/access_tokens", i.id),
        "repositories_url": format!("{api}/installation/repositories"),
        "html_url": format!("{}/organizations/{}/settings/installations/{}", hub.base_url, i.account, i.id),
        "app_id": i.app_id,
        "client_id": client_id,
        "app_slug": slug,
        "target_id": i.account_id,
        "target_type": i.account_type,
        "permissions": i.permissions,
        "events": [],
        "created_at": docs::CREATED,
        "updated_at": docs::CREATED,
        "single_file_name": null,
        "has_multiple_single_files": false,
        "single_file_paths": [],
        "suspended_by": null,
        "suspended_at": null
    })
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

/// `POST /app/installations/{id}/access_tokens`, with GitHub's narrowing rules.
async fn mint(hub: &Arc<Hub>, app: &App, id: u64, req: Request<Incoming>) -> Response<Body> {
    let Some(inst) = hub.installation(id).filter(|i| i.app_id == app.id) else {
        return not_found();
    };
    let body = match Limited::new(req.into_body(), 64 * 1024).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return err(StatusCode::BAD_REQUEST, "Problems parsing JSON"),
    };
    let v: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v @ Value::Object(_)) => v,
            _ => return err(StatusCode::BAD_REQUEST, "Problems parsing JSON"),
        }
    };
    hub.with_counters(|c| c.mint_bodies.push(v.clone()));
    // Fault knob: fail the next N mints.
    if hub
        .knobs
        .fail_mints
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        let status = StatusCode::from_u16(hub.knobs.fail_status.load(Ordering::Relaxed) as u16)
            .unwrap_or(StatusCode::BAD_GATEWAY);
        return err(status, "Server Error");
    }
    let reachable = hub.installation_repos(&inst);
    let repositories: Option<Vec<String>> = match v.get("repositories") {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) => {
            let mut names = Vec::new();
            for n in a {
                let Some(n) = n.as_str() else {
                    return err(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "Invalid request. For 'properties/repositories', items must be strings.",
                    );
                };
                names.push(n.to_owned());
            }
            if names.len() > 500 {
                return err(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Too many repositories requested: at most 500.",
                );
            }
            for n in &names {
                if !reachable.iter().any(|r| r.name.eq_ignore_ascii_case(n)) {
                    return err(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "There is at least one repository that does not exist or is not accessible to the parent installation.",
                    );
                }
            }
            Some(names.iter().map(|n| n.to_ascii_lowercase()).collect())
        }
        Some(_) => {
            return err(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid request. For 'properties/repositories', must be an array.",
            );
        }
    };
    let permissions: BTreeMap<String, String> = match v.get("permissions") {
        None | Some(Value::Null) => inst.permissions.clone(),
        Some(Value::Object(m)) => {
            let mut out = BTreeMap::new();
            for (k, lvl) in m {
                let lvl = lvl.as_str().unwrap_or("");
                let granted = inst.permissions.get(k).map(String::as_str).unwrap_or("");
                if !level_covers(granted, lvl) {
                    return err(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "The permissions requested are not granted to this installation.",
                    );
                }
                out.insert(k.clone(), lvl.to_owned());
            }
            out
        }
        Some(_) => {
            return err(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid request. For 'properties/permissions', must be an object.",
            );
        }
    };
    let ttl = hub.knobs.token_ttl.load(Ordering::Relaxed) as i64;
    let expires_at = hub.now() + ttl;
    let token = hub.new_token();
    hub.tokens.lock().unwrap_or_else(|e| e.into_inner()).insert(
        token.clone(),
        IssuedToken {
            installation_id: id,
            repositories: repositories.clone(),
            user: None,
            permissions: permissions.clone(),
            expires_at,
            revoked: false,
        },
    );
    hub.issued
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(token.clone());
    hub.with_counters(|c| {
        c.mints.push(Mint {
            installation_id: id,
            repositories: repositories.clone(),
            permissions: permissions.clone(),
        })
    });
    let listed: Vec<Value> = reachable
        .iter()
        .filter(|r| match &repositories {
            None => true,
            Some(list) => list.iter().any(|n| n.eq_ignore_ascii_case(&r.name)),
        })
        .map(|r| repo_doc(hub, r, None))
        .collect();
    let expires = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + Duration::from_secs(expires_at.max(0) as u64),
    )
    .to_string();
    json_response(
        StatusCode::CREATED,
        &json!({
            "token": token,
            "expires_at": expires,
            "permissions": permissions,
            "repository_selection": if repositories.is_some() || inst.repositories.is_some() { "selected" } else { "all" },
            "repositories": listed,
        }),
    )
}
