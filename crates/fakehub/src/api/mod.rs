//! The REST API under `/api/v3` (GitHub Enterprise Server layout): one route table that both
//! dispatches and names routes for the counters, and a module per resource.
//!
//! To add an endpoint: write its handler in the resource's module (`apps`, `repos`, `pulls`),
//! taking a [`Ctx`], and add a line to [`ROUTES`] with GitHub's path template.

#![expect(
    clippy::result_large_err,
    reason = "handlers return the error response itself as Err, built once per refused request"
)]

mod apps;
pub(crate) mod checks;
mod pulls;
mod repos;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::Value;

use crate::hub::{App, Hub, IssuedToken, TokenCheck};
use crate::{Body, json as docs, json_response};

pub(crate) use apps::app_doc;
pub(crate) use repos::repo_doc;

/// A handler's answer: `Err` is a refusal, answered as is.
type Answer = Result<Response<Body>, Response<Body>>;
type Handler = fn(Ctx) -> Pin<Box<dyn Future<Output = Answer> + Send>>;

/// A route: method, GitHub's path template (`{name}` matches one segment), handler. The
/// counters name a request by its template.
struct Route {
    method: &'static str,
    template: &'static str,
    handler: Handler,
}

macro_rules! routes {
    ($($method:literal $template:literal => $handler:path,)*) => {
        &[$(Route { method: $method, template: $template, handler: |c| Box::pin($handler(c)) },)*]
    };
}

static ROUTES: &[Route] = routes! {
    "GET" "/app" => apps::get_app,
    "GET" "/app/installations" => apps::list_installations,
    "GET" "/app/installations/{id}" => apps::get_installation,
    "DELETE" "/app/installations/{id}" => apps::delete_installation,
    "POST" "/app/installations/{id}/access_tokens" => apps::create_access_token,
    "GET" "/repos/{owner}/{repo}/installation" => apps::repo_installation,
    "GET" "/users/{user}/installation" => apps::owner_installation,
    "GET" "/orgs/{org}/installation" => apps::owner_installation,
    "POST" "/app-manifests/{code}/conversions" => apps::convert_manifest,
    "GET" "/app/hook/config" => apps::hook_config,
    "GET" "/app/hook/deliveries" => apps::list_deliveries,
    "POST" "/app/hook/deliveries/{id}/attempts" => apps::redeliver,
    "GET" "/user" => repos::get_user,
    "GET" "/installation/repositories" => repos::installation_repositories,
    "DELETE" "/installation/token" => repos::revoke_token,
    "GET" "/repos/{owner}/{repo}" => repos::get_repo,
    "GET" "/rate_limit" => repos::rate_limit,
    "GET" "/repos/{owner}/{repo}/pulls" => pulls::list,
    "POST" "/repos/{owner}/{repo}/pulls" => pulls::create,
    "GET" "/repos/{owner}/{repo}/pulls/{number}" => pulls::get,
    "PATCH" "/repos/{owner}/{repo}/pulls/{number}" => pulls::update,
    "PUT" "/repos/{owner}/{repo}/pulls/{number}/merge" => pulls::merge,
    "POST" "/repos/{owner}/{repo}/pulls/{number}/requested_reviewers" => pulls::request_reviewers,
    "POST" "/repos/{owner}/{repo}/issues/{number}/comments" => pulls::comment,
    "GET" "/repos/{owner}/{repo}/issues/{number}/comments" => pulls::comments,
    "GET" "/repos/{owner}/{repo}/branches/{branch+}" => repos::branch,
    "GET" "/repos/{owner}/{repo}/compare/{basehead+}" => repos::compare,
    "GET" "/repos/{owner}/{repo}/pulls/{number}/comments" => pulls::review_comments,
    "GET" "/repos/{owner}/{repo}/contents/{path+}" => repos::contents,
    "POST" "/repos/{owner}/{repo}/check-runs" => checks::create,
    "GET" "/repos/{owner}/{repo}/commits/{ref}/check-runs" => checks::list_for_ref,
};

/// The template's parameters when `segs` fits it. A last `{name+}` takes the rest of the path,
/// slashes and all, decoded (a branch name).
fn fit(template: &str, segs: &[&str]) -> Option<Vec<String>> {
    let parts: Vec<&str> = template.trim_start_matches('/').split('/').collect();
    if let Some((last, head)) = parts.split_last()
        && last.ends_with("+}")
    {
        if segs.len() <= head.len() {
            return None;
        }
        let mut params = fit(&head.join("/"), &segs[..head.len()])?;
        let rest: Option<Vec<String>> = segs[head.len()..]
            .iter()
            .map(|s| ghapp_gitproto::rest::decode_segment(s).ok())
            .collect();
        params.push(rest?.join("/"));
        return Some(params);
    }
    if parts.len() != segs.len() {
        return None;
    }
    let mut params = Vec::new();
    for (p, s) in parts.iter().zip(segs) {
        if p.starts_with('{') {
            params.push((*s).to_owned());
        } else if p != s {
            return None;
        }
    }
    Some(params)
}

/// What a handler gets: the hub, the request, its credential and the template's parameters.
pub(crate) struct Ctx {
    hub: Arc<Hub>,
    req: Request<Incoming>,
    auth: Auth,
    params: Vec<String>,
}

impl Ctx {
    /// The `i`th `{…}` of the template.
    fn param(&self, i: usize) -> &str {
        &self.params[i]
    }

    /// The app whose JWT authenticates the request.
    fn jwt(&self) -> Result<App, Response<Body>> {
        match &self.auth {
            Auth::Jwt(j) => self
                .hub
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
    }

    /// The installation token (or personal access token) that authenticates the request.
    fn token(&self) -> Result<IssuedToken, Response<Body>> {
        match &self.auth {
            Auth::Token(t) => match self.hub.check_token(t) {
                TokenCheck::Valid(t) => Ok(t),
                _ => Err(err(StatusCode::UNAUTHORIZED, "Bad credentials")),
            },
            Auth::Jwt(_) => Err(err(
                StatusCode::FORBIDDEN,
                "This endpoint requires an installation access token.",
            )),
            Auth::None => Err(err(StatusCode::UNAUTHORIZED, "Requires authentication")),
        }
    }

    fn query(&self) -> BTreeMap<String, String> {
        query_map(self.req.uri().query())
    }
}

pub(crate) async fn handle(hub: Arc<Hub>, req: Request<Incoming>, path: &str) -> Response<Body> {
    let delay = hub.knobs.delay_ms.load(Ordering::Relaxed);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let method = req.method().as_str().to_owned();
    // Named by the first template the path fits, whatever the method; else by the path itself.
    let template = ROUTES
        .iter()
        .find(|r| fit(r.template, &segs).is_some())
        .map_or_else(|| format!("/{}", segs.join("/")), |r| r.template.to_owned());
    hub.count(&format!("{method} {template}"));

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

    // GitHub's limits, for an installation token: the hour's requests, the minute's writes.
    let mut rate = None;
    if let Auth::Token(t) = auth_of(&req)
        && let TokenCheck::Valid(it) = hub.check_token(&t)
        && it.installation_id != 0
    {
        let now = hub.now();
        let limit = hub.knobs.primary_limit.load(Ordering::Relaxed);
        let hour = now / 3600;
        let reset = (hour + 1) * 3600;
        let write = !matches!(method.as_str(), "GET" | "HEAD");
        let per_minute = hub.knobs.secondary_per_minute.load(Ordering::Relaxed);
        let (used, writes) = {
            let mut u = hub.knobs.used.lock().unwrap_or_else(|e| e.into_inner());
            u.0.retain(|(_, h), _| *h >= hour - 1);
            u.1.retain(|m, _| *m >= now / 60 - 2);
            let used = u.0.entry((it.installation_id, hour)).or_default();
            *used += 1;
            let used = *used;
            let w = u.1.entry(now / 60).or_default();
            if write {
                *w += 1;
            }
            (used, *w)
        };
        let headers = [
            ("x-ratelimit-limit", limit.to_string()),
            (
                "x-ratelimit-remaining",
                limit.saturating_sub(used).to_string(),
            ),
            ("x-ratelimit-used", used.min(limit).to_string()),
            ("x-ratelimit-reset", reset.to_string()),
            ("x-ratelimit-resource", "core".to_string()),
        ];
        let with = |mut r: Response<Body>| {
            for (k, v) in &headers {
                if let Ok(v) = v.parse() {
                    r.headers_mut().insert(*k, v);
                }
            }
            r
        };
        if used > limit {
            hub.counters
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .primary_limited += 1;
            return with(err(
                StatusCode::FORBIDDEN,
                &format!(
                    "API rate limit exceeded for installation ID {}.",
                    it.installation_id
                ),
            ));
        }
        if write && writes > per_minute {
            hub.counters
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .secondary_limited += 1;
            let mut r = with(err(
                StatusCode::FORBIDDEN,
                "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
            ));
            r.headers_mut()
                .insert("retry-after", "60".parse().expect("digits"));
            return r;
        }
        rate = Some(headers);
    }

    let found = ROUTES.iter().find_map(|r| {
        (r.method == method)
            .then(|| fit(r.template, &segs))
            .flatten()
            .map(|params| (r.handler, params))
    });
    let Some((handler, params)) = found else {
        return not_found();
    };
    let auth = auth_of(&req);
    let ctx = Ctx {
        hub,
        req,
        auth,
        params,
    };
    let mut r = handler(ctx).await.unwrap_or_else(|r| r);
    for (k, v) in rate.iter().flatten() {
        if let Ok(v) = v.parse() {
            r.headers_mut().insert(*k, v);
        }
    }
    r
}

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

/// The repository `owner/repo` if `t` reaches it (else 404, as GitHub hides what a token cannot
/// see) with `permission` at `level` (else 403).
fn repo_with(
    hub: &Hub,
    t: &IssuedToken,
    owner: &str,
    repo: &str,
    permission: &str,
    level: &str,
) -> Result<crate::hub::Repo, Response<Body>> {
    let r = hub
        .find_repo(owner, repo)
        .filter(|r| hub.token_covers(t, &r.owner, &r.name))
        .ok_or_else(not_found)?;
    let granted = t.permissions.get(permission).map_or("", String::as_str);
    if !crate::hub::level_covers(granted, level) {
        return Err(err(
            StatusCode::FORBIDDEN,
            "Resource not accessible by integration",
        ));
    }
    Ok(r)
}

fn err(status: StatusCode, msg: &str) -> Response<Body> {
    json_response(status, &docs::error(msg))
}

fn not_found() -> Response<Body> {
    err(StatusCode::NOT_FOUND, "Not Found")
}

/// A query string or form body as a map (`application/x-www-form-urlencoded`).
pub(crate) fn query_map(q: Option<&str>) -> BTreeMap<String, String> {
    form_urlencoded::parse(q.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// A JSON object body, at most 1 MiB.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_fit_and_name() {
        assert_eq!(
            fit("/repos/{owner}/{repo}/pulls", &["repos", "o", "r", "pulls"]),
            Some(vec!["o".to_owned(), "r".to_owned()])
        );
        assert_eq!(
            fit("/repos/{owner}/{repo}", &["repos", "o", "r", "pulls"]),
            None
        );
        assert_eq!(fit("/app", &["app"]), Some(vec![]));
        // Every template is unique per method, so the table dispatches unambiguously.
        let mut seen = std::collections::HashSet::new();
        for r in ROUTES {
            assert!(
                seen.insert((r.method, r.template)),
                "{} {}",
                r.method,
                r.template
            );
        }
    }
}
