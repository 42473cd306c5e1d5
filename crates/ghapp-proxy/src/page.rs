//! The approvals page, on the admin listener: plain server-rendered HTML that works without
//! JavaScript. Sign in with the admin token (`POST /signin`), then an HttpOnly, SameSite=Strict
//! session cookie; every form carries the session's CSRF token; a Content-Security-Policy
//! allows no script at all. `GET /approvals` lists the pending pull requests with sandbox,
//! repository, head -> base, title, body and GitHub's compare figures, each with Approve and
//! Deny.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Method, Request, Response, StatusCode};

use crate::{Body, Proxy};

const COOKIE: &str = "ghapp_session";
const SESSION_LIFE: Duration = Duration::from_secs(8 * 3600);
const FORM_LIMIT: usize = 16 * 1024;

/// Signed-in sessions: id -> (CSRF token, expiry). In memory: a restart signs everyone out.
#[derive(Default)]
pub(crate) struct Sessions(Mutex<HashMap<String, (String, Instant)>>);

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sessions(****)")
    }
}

fn random_hex() -> String {
    let b: [u8; 32] = rand::random();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Sessions {
    fn open(&self) -> (String, String) {
        let (id, csrf) = (random_hex(), random_hex());
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        m.retain(|_, (_, until)| *until > now);
        m.insert(id.clone(), (csrf.clone(), now + SESSION_LIFE));
        (id, csrf)
    }

    /// The CSRF token of a live session.
    fn csrf(&self, id: &str) -> Option<String> {
        let m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        m.get(id)
            .filter(|(_, until)| *until > Instant::now())
            .map(|(c, _)| c.clone())
    }
}

/// Text for HTML (element content and quoted attributes).
fn esc(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '&' => "&amp;".into(),
            '<' => "&lt;".into(),
            '>' => "&gt;".into(),
            '"' => "&quot;".into(),
            '\'' => "&#39;".into(),
            c => c.to_string(),
        })
        .collect()
}

fn html(status: StatusCode, title: &str, body: &str) -> Response<Body> {
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>body{{font-family:sans-serif;margin:2em;max-width:60em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.4em;vertical-align:top}}pre{{white-space:pre-wrap}}</style></head><body><h1>{}</h1>{body}</body></html>",
        esc(title),
        esc(title)
    );
    let mut r = Response::new(crate::respond::full(page.into_bytes()));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        hyper::header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        hyper::header::X_FRAME_OPTIONS,
        HeaderValue::from_static("DENY"),
    );
    h.insert(
        hyper::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    r
}

fn redirect(to: &'static str) -> Response<Body> {
    let mut r = Response::new(crate::respond::full(Vec::new()));
    *r.status_mut() = StatusCode::SEE_OTHER;
    r.headers_mut()
        .insert(hyper::header::LOCATION, HeaderValue::from_static(to));
    r
}

/// Whether `path` is the approvals page's (served with its own sign-in, not the bearer token).
pub(crate) fn is_page(path: &str) -> bool {
    path == "/signin" || path == "/approvals" || path.starts_with("/approvals/")
}

/// The form fields of a urlencoded body.
fn fields(body: &[u8]) -> HashMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}

impl Proxy {
    /// `GET /signin`, `POST /signin`, `GET /approvals`, `POST /approvals/{id}/approve|deny`
    /// (the paths [`is_page`] names); the rest of the admin listener is the JSON API.
    pub(crate) async fn page(&self, req: Request<Incoming>) -> Response<Body> {
        let path = req.uri().path().to_owned();
        let session = req
            .headers()
            .get_all(hyper::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|kv| kv.trim().split_once('='))
            .find(|(k, _)| *k == COOKIE)
            .map(|(_, v)| v.to_owned());
        let method = req.method().clone();
        let form = if method == Method::POST {
            match tokio::time::timeout(
                Duration::from_secs(10),
                http_body_util::Limited::new(req.into_body(), FORM_LIMIT).collect(),
            )
            .await
            {
                Ok(Ok(b)) => fields(&b.to_bytes()),
                _ => return html(StatusCode::PAYLOAD_TOO_LARGE, "Form too large", ""),
            }
        } else {
            HashMap::new()
        };
        match (method, path.as_str()) {
            (Method::GET, "/signin") => signin_form(""),
            (Method::POST, "/signin") => self.sign_in(form.get("token").map(String::as_str)),
            (method, _) => {
                let Some(csrf) = session.as_deref().and_then(|s| self.sessions.csrf(s)) else {
                    return redirect("/signin");
                };
                if method == Method::GET && path == "/approvals" {
                    self.approvals_page(&csrf).await
                } else if method == Method::POST {
                    self.decide_form(&path, &form, &csrf).await
                } else {
                    html(StatusCode::METHOD_NOT_ALLOWED, "Not allowed", "")
                }
            }
        }
    }

    fn sign_in(&self, token: Option<&str>) -> Response<Body> {
        let ok = token
            .zip(self.cfg.admin_token.as_ref())
            .is_some_and(|(given, t)| t.matches(given));
        if !ok {
            self.audit.metrics.auth_failure("admin_page");
            return signin_form("That is not the admin token.");
        }
        let (id, _) = self.sessions.open();
        let mut r = redirect("/approvals");
        if let Ok(v) = HeaderValue::from_str(&format!(
            "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
            SESSION_LIFE.as_secs()
        )) {
            r.headers_mut().insert(hyper::header::SET_COOKIE, v);
        }
        r
    }

    async fn approvals_page(&self, csrf: &str) -> Response<Body> {
        let Some(store) = self.store.get() else {
            return html(StatusCode::SERVICE_UNAVAILABLE, "No state store", "");
        };
        let pending = match store.approvals(Some("pending")).await {
            Ok(p) => p,
            Err(e) => {
                return html(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Approvals",
                    &format!("<p>{}</p>", esc(&e.to_string())),
                );
            }
        };
        if pending.is_empty() {
            return html(
                StatusCode::OK,
                "Approvals",
                "<p id=\"none\">Nothing is waiting.</p>",
            );
        }
        let mut rows = String::new();
        for a in &pending {
            let figures = self.figures(&a.sandbox, &a.repo, &a.base, &a.head).await;
            rows.push_str(&format!(
                "<tr id=\"approval-{id}\"><td>{id}</td><td>{sb}</td><td>{repo}</td><td>{head} -&gt; {base}</td><td><strong>{title}</strong><pre>{body}</pre></td><td>{figures}</td><td><form method=\"post\" action=\"/approvals/{id}/approve\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><button type=\"submit\" id=\"approve-{id}\">Approve</button></form><form method=\"post\" action=\"/approvals/{id}/deny\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input name=\"reason\" placeholder=\"reason\" required><button type=\"submit\" id=\"deny-{id}\">Deny</button></form></td></tr>",
                id = a.id,
                sb = esc(&a.sandbox),
                repo = esc(&a.repo),
                head = esc(&a.head),
                base = esc(&a.base),
                title = esc(&a.title),
                body = esc(&a.body),
                csrf = esc(csrf),
            ));
        }
        html(
            StatusCode::OK,
            "Approvals",
            &format!(
                "<table><tr><th>#</th><th>sandbox</th><th>repository</th><th>head -&gt; base</th><th>title and body</th><th>change</th><th>decision</th></tr>{rows}</table>"
            ),
        )
    }

    /// GitHub's compare figures for a held request, as HTML.
    async fn figures(&self, sandbox: &str, repo: &str, base: &str, head: &str) -> String {
        let live = self.live();
        let (Some(sb), Some(r)) = (
            live.sandbox(sandbox),
            ghapp_gitproto::repo::RepoName::parse(repo),
        ) else {
            return "(the sandbox is gone)".into();
        };
        match self.compare(sb, &r, base, head).await {
            Ok(v) => {
                let files = v["files"].as_array().map(Vec::as_slice).unwrap_or_default();
                let sum = |k: &str| {
                    files
                        .iter()
                        .map(|f| f[k].as_u64().unwrap_or(0))
                        .sum::<u64>()
                };
                let paths: String = files
                    .iter()
                    .filter_map(|f| f["filename"].as_str())
                    .map(|p| format!("<li>{}</li>", esc(p)))
                    .collect();
                format!(
                    "<span class=\"figures\">{} commits, {} files, +{} -{}</span><ul>{paths}</ul>",
                    v["total_commits"].as_u64().unwrap_or(0),
                    files.len(),
                    sum("additions"),
                    sum("deletions")
                )
            }
            Err(r) => esc(&r.message),
        }
    }

    async fn decide_form(
        &self,
        path: &str,
        form: &HashMap<String, String>,
        csrf: &str,
    ) -> Response<Body> {
        use subtle::ConstantTimeEq;
        let given = form.get("csrf").map(String::as_str).unwrap_or_default();
        if given.is_empty() || !bool::from(given.as_bytes().ct_eq(csrf.as_bytes())) {
            return html(
                StatusCode::FORBIDDEN,
                "Refused",
                "<p>The form's CSRF token is missing or wrong: reload the page and try again.</p>",
            );
        }
        let rest = path.trim_start_matches("/approvals/");
        let (id, action) = rest.split_once('/').unwrap_or((rest, ""));
        let Ok(id) = id.parse::<i64>() else {
            return html(StatusCode::NOT_FOUND, "No such approval", "");
        };
        let outcome = match action {
            "approve" => self.approve(id, "approvals page").await,
            "deny" => {
                let reason = form.get("reason").map(String::as_str).unwrap_or_default();
                self.deny(id, "approvals page", reason).await
            }
            _ => return html(StatusCode::NOT_FOUND, "No such action", ""),
        };
        match outcome {
            Ok(_) => redirect("/approvals"),
            Err((status, why)) => html(status, "Not done", &format!("<p>{}</p>", esc(&why))),
        }
    }
}

fn signin_form(error: &str) -> Response<Body> {
    let note = if error.is_empty() {
        String::new()
    } else {
        format!("<p id=\"error\">{}</p>", esc(error))
    };
    html(
        if error.is_empty() {
            StatusCode::OK
        } else {
            StatusCode::UNAUTHORIZED
        },
        "Sign in",
        &format!(
            "{note}<form method=\"post\" action=\"/signin\"><label>Admin token <input type=\"password\" name=\"token\" id=\"token\" autocomplete=\"off\"></label> <button type=\"submit\" id=\"signin\">Sign in</button></form>"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_escaped_and_sessions_expire_unknown() {
        assert_eq!(
            esc("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
        let s = Sessions::default();
        let (id, csrf) = s.open();
        assert_eq!(s.csrf(&id), Some(csrf));
        assert_eq!(s.csrf("another"), None);
    }
}
