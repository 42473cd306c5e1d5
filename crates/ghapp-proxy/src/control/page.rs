//! The approvals page, on the admin listener: plain server-rendered HTML that works without
//! JavaScript. Sign in with the admin token (`POST /signin`), then an HttpOnly, SameSite=Strict
//! session cookie; every form carries the session's CSRF token; a Content-Security-Policy
//! allows no script at all. `GET /approvals` lists the pending pull requests with sandbox,
//! repository, head -> base, title, body and what a person needs to decide from GitHub's
//! compare (figures, the commits, each file's diff folded, bounded) and the checks GitHub has on
//! its head (CI's check runs), each with Approve and Deny; under them, the latest decisions.

use std::collections::HashMap;
use std::time::Duration;

use hmac::{Hmac, Mac};

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Method, Request, Response, StatusCode};

use super::ControlPlane;
use crate::respond::Body;
use crate::signature::hex;
use crate::store::Approval;

const COOKIE: &str = "ghapp_session";
const SESSION_LIFE: Duration = Duration::from_secs(8 * 3600);
const FORM_LIMIT: usize = 16 * 1024;
/// The most commits listed per held request.
const COMMITS: usize = 50;
/// The most diff text shown per held request (each file's cut at `github::MAX_PATCH`).
const DIFF: usize = 256 * 1024;
/// The decisions listed under the pending requests.
const HISTORY: usize = 20;

/// Signed-in sessions, kept by nobody: a session is `NONCE.EXPIRY.MAC`, its MAC (and its
/// CSRF token) an HMAC-SHA256 under a key derived from the admin token. Every replica with the
/// same admin token accepts it (a page behind a load balancer keeps its session), a restart
/// keeps it, and changing the admin token ends every session.
pub(crate) struct Sessions {
    /// `None`: no admin token, no sessions.
    key: Option<[u8; 32]>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sessions(****)")
    }
}

impl Sessions {
    pub(crate) fn new(admin_token: Option<&ghapp_core::secret::ProxySecret>) -> Sessions {
        let key = admin_token.and_then(|t| {
            let mut m = Hmac::<sha2::Sha256>::new_from_slice(t.expose().as_bytes()).ok()?;
            m.update(b"ghapp approvals page sessions v1");
            Some(m.finalize().into_bytes().into())
        });
        Sessions { key }
    }

    fn mac(&self, what: &str) -> Option<Hmac<sha2::Sha256>> {
        let mut m = Hmac::<sha2::Sha256>::new_from_slice(&self.key?).ok()?;
        m.update(what.as_bytes());
        Some(m)
    }

    /// A new session, valid for [`SESSION_LIFE`] from `now` (unix seconds): its cookie value
    /// and CSRF token.
    fn open(&self, now: i64) -> Option<(String, String)> {
        let nonce = hex(&rand::random::<[u8; 16]>());
        let body = format!("{nonce}.{}", now + SESSION_LIFE.as_secs() as i64);
        let mac = hex(&self.mac(&body)?.finalize().into_bytes());
        let id = format!("{body}.{mac}");
        let csrf = self.csrf(&id, now)?;
        Some((id, csrf))
    }

    /// When session `id` expires (as it says; [`Sessions::csrf`] checks it is genuine).
    fn expiry(id: &str) -> Option<i64> {
        id.split('.').nth(1)?.parse().ok()
    }

    /// The CSRF token of a session that is genuine and not expired at `now`.
    fn csrf(&self, id: &str, now: i64) -> Option<String> {
        let (body, mac) = id.rsplit_once('.')?;
        let (nonce, expiry) = body.split_once('.')?;
        let given = (0..mac.len())
            .step_by(2)
            .map(|i| {
                mac.get(i..i + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            })
            .collect::<Option<Vec<u8>>>()?;
        self.mac(body)?.verify_slice(&given).ok()?;
        if expiry.parse::<i64>().ok()? <= now {
            return None;
        }
        Some(hex(&self
            .mac(&format!("csrf:{nonce}"))?
            .finalize()
            .into_bytes()))
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
        hyper::header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        hyper::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    r
}

fn redirect(to: &str) -> Response<Body> {
    let mut r = Response::new(crate::respond::full(Vec::new()));
    *r.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(hyper::header::LOCATION, v);
    }
    r
}

/// Whether `path` is the approvals page's (served with its own sign-in, not the bearer token).
pub(crate) fn is_page(path: &str) -> bool {
    path == "/signin"
        || path == "/signout"
        || path == "/approvals"
        || path.starts_with("/approvals/")
}

/// Wrong admin tokens from one address in a minute before its sign-ins are refused unchecked.
pub(super) const SIGNIN_FAILURES_PER_MINUTE: u32 = 5;

/// The digest a session is remembered by once ended (never the session itself).
fn session_digest(id: &str) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(id.as_bytes()))
}

/// The form fields of a urlencoded body.
fn fields(body: &[u8]) -> HashMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}

impl ControlPlane {
    /// `GET /signin`, `POST /signin`, `GET /approvals`, `POST /approvals/{id}/approve|deny`
    /// (the paths [`is_page`] names); the rest of the admin listener is the JSON API.
    pub(crate) async fn page(
        &self,
        req: Request<Incoming>,
        peer: std::net::SocketAddr,
    ) -> Response<Body> {
        let path = req.uri().path().to_owned();
        // After a decision: `?decided=ID` names the approval the notice is about.
        let decided = req
            .uri()
            .query()
            .and_then(|q| q.strip_prefix("decided="))
            .and_then(|id| id.parse::<i64>().ok());
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
            (Method::POST, "/signin") => {
                self.sign_in(form.get("token").map(String::as_str), peer.ip())
            }
            (method, _) => {
                let now = ghapp_core::jwt::unix_now();
                let Some(id) = session.as_deref() else {
                    return redirect("/signin");
                };
                let Some(csrf) = self.sessions.csrf(id, now) else {
                    return redirect("/signin");
                };
                // Signed out (on any replica): the store remembers it until it expires.
                let digest = session_digest(id);
                match self.store().map(|s| s.session_ended(&digest)) {
                    Some(ended) => match ended.await {
                        Ok(false) => {}
                        Ok(true) => return redirect("/signin"),
                        Err(e) => {
                            return html(
                                StatusCode::SERVICE_UNAVAILABLE,
                                "Unavailable",
                                &esc(&e.to_string()),
                            );
                        }
                    },
                    None => return html(StatusCode::SERVICE_UNAVAILABLE, "No state store", ""),
                }
                if method == Method::POST && path == "/signout" {
                    return self.sign_out(id, &digest, &form, &csrf).await;
                }
                if method == Method::GET && path == "/approvals" {
                    self.approvals_page(&csrf, decided).await
                } else if method == Method::POST {
                    self.decide_form(&path, &form, &csrf).await
                } else {
                    html(StatusCode::METHOD_NOT_ALLOWED, "Not allowed", "")
                }
            }
        }
    }

    fn sign_in(&self, token: Option<&str>, source: std::net::IpAddr) -> Response<Body> {
        if let Some(wait) = self.signins.blocked_for(source) {
            self.data
                .audit
                .metrics
                .auth_failure("admin_page_rate_limited");
            let mut r = html(
                StatusCode::TOO_MANY_REQUESTS,
                "Sign in",
                "<p id=\"error\">Too many wrong tokens from this address: wait a minute.</p>",
            );
            if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
                r.headers_mut().insert(hyper::header::RETRY_AFTER, v);
            }
            return r;
        }
        let ok = token
            .zip(self.data.cfg.admin_token.as_ref())
            .is_some_and(|(given, t)| t.matches(given));
        if !ok {
            self.signins.failed(source);
            self.data.audit.metrics.auth_failure("admin_page");
            return signin_form("That is not the admin token.");
        }
        let Some((id, _)) = self.sessions.open(ghapp_core::jwt::unix_now()) else {
            return signin_form("The proxy has no admin token.");
        };
        let mut r = redirect("/approvals");
        if let Ok(v) = HeaderValue::from_str(&format!(
            "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
            SESSION_LIFE.as_secs()
        )) {
            r.headers_mut().insert(hyper::header::SET_COOKIE, v);
        }
        r
    }

    async fn approvals_page(&self, csrf: &str, decided: Option<i64>) -> Response<Body> {
        let Some(store) = self.store() else {
            return html(StatusCode::SERVICE_UNAVAILABLE, "No state store", "");
        };
        // What the last decision came to, said at the top.
        let notice = match decided {
            Some(id) => match store.approval(id).await {
                Ok(Some(a)) if a.status != "pending" => {
                    let what = match a.status.as_str() {
                        "approved" => format!("approved: <a href=\"{0}\">{0}</a>", esc(&a.pr_url)),
                        other => format!("{}: {}", esc(other), esc(&a.reason)),
                    };
                    format!(
                        "<p id=\"decided\">Approval {id} ({} -&gt; {}) {what}</p>",
                        esc(&a.head),
                        esc(&a.base)
                    )
                }
                _ => String::new(),
            },
            None => String::new(),
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
        let signout = format!(
            "<form method=\"post\" action=\"/signout\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><button type=\"submit\" id=\"signout\">Sign out</button></form>{notice}",
            esc(csrf)
        );
        let history = self.history().await;
        if pending.is_empty() {
            return html(
                StatusCode::OK,
                "Approvals",
                &format!("{signout}<p id=\"none\">Nothing is waiting.</p>{history}"),
            );
        }
        let mut rows = String::new();
        for a in &pending {
            let figures = self.figures(&a.sandbox, &a.repo, &a.base, &a.head).await;
            let figures = format!("{figures}{}", self.checks_html(a).await);
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
                "{signout}<table><tr><th>#</th><th>sandbox</th><th>repository</th><th>head -&gt; base</th><th>title and body</th><th>change</th><th>decision</th></tr>{rows}</table>{history}"
            ),
        )
    }

    /// The latest decisions (the newest [`HISTORY`]), as HTML: what was decided, by whom,
    /// why, and the pull request an approval opened.
    async fn history(&self) -> String {
        let Some(store) = self.store() else {
            return String::new();
        };
        let mut decided: Vec<_> = match store.approvals(None).await {
            Ok(all) => all.into_iter().filter(|a| a.status != "pending").collect(),
            Err(e) => return format!("<p>{}</p>", esc(&e.to_string())),
        };
        decided.sort_by_key(|a| std::cmp::Reverse(a.decided_at.unwrap_or(a.created_at)));
        if decided.is_empty() {
            return String::new();
        }
        let rows: String = decided
            .iter()
            .take(HISTORY)
            .map(|a| {
                let when = a
                    .decided_at
                    .and_then(|t| u64::try_from(t).ok())
                    .map(|t| {
                        humantime::format_rfc3339_seconds(
                            std::time::UNIX_EPOCH + Duration::from_secs(t),
                        )
                        .to_string()
                    })
                    .unwrap_or_default();
                let outcome = if a.status == "approved" && !a.pr_url.is_empty() {
                    format!("<a href=\"{0}\">{0}</a>", esc(&a.pr_url))
                } else {
                    esc(&a.reason)
                };
                format!(
                    "<tr id=\"decided-{id}\"><td>{id}</td><td>{when}</td><td>{sb}</td><td>{repo}</td><td>{head} -&gt; {base}</td><td>{title}</td><td>{status}</td><td>{by}</td><td>{outcome}</td></tr>",
                    id = a.id,
                    sb = esc(&a.sandbox),
                    repo = esc(&a.repo),
                    head = esc(&a.head),
                    base = esc(&a.base),
                    title = esc(&a.title),
                    status = esc(&a.status),
                    by = esc(&a.decided_by),
                )
            })
            .collect();
        format!(
            "<h2>Decided</h2><table id=\"history\"><tr><th>#</th><th>when</th><th>sandbox</th><th>repository</th><th>head -&gt; base</th><th>title</th><th>decision</th><th>by</th><th>pull request or reason</th></tr>{rows}</table>"
        )
    }

    /// GitHub's compare figures for a held request, as HTML.
    async fn figures(&self, sandbox: &str, repo: &str, base: &str, head: &str) -> String {
        let live = self.data.live.get();
        let (Some(sb), Some(r)) = (
            live.sandbox(sandbox),
            ghapp_gitproto::repo::RepoName::parse(repo),
        ) else {
            return "(the sandbox is gone)".into();
        };
        match self.data.github.compare(sb, &r, base, head).await {
            Ok(c) => {
                let plural =
                    |n: usize, one: &str| format!("{n} {one}{}", if n == 1 { "" } else { "s" });
                let commits: String = c
                    .log
                    .iter()
                    .take(COMMITS)
                    .map(|l| {
                        format!(
                            "<li><code>{}</code> {} <em>({})</em></li>",
                            esc(l.sha.get(..7).unwrap_or(&l.sha)),
                            esc(&l.subject),
                            esc(&l.author)
                        )
                    })
                    .collect();
                let more = c.log.len().saturating_sub(COMMITS);
                let more = if more > 0 {
                    format!("<li>and {more} more</li>")
                } else {
                    String::new()
                };
                // Each file's diff, folded; the page shows at most DIFF bytes of them.
                let mut shown = 0;
                let files: String = c
                    .files
                    .iter()
                    .map(|f| {
                        let diff = match &f.patch {
                            Some(p) if shown + p.len() <= DIFF => {
                                shown += p.len();
                                let cut = if p.len() >= crate::github::MAX_PATCH {
                                    "\n(cut: the rest in git or at GitHub)"
                                } else {
                                    ""
                                };
                                format!("<pre class=\"diff\">{}{cut}</pre>", esc(p))
                            }
                            Some(_) => {
                                "<p>(not shown: the page shows the first 256 KiB of diffs)</p>"
                                    .into()
                            }
                            None => "<p>(no text diff: a binary or very large file)</p>".into(),
                        };
                        format!(
                            "<details><summary>{} {} +{} -{}</summary>{diff}</details>",
                            esc(&f.status),
                            esc(&f.path),
                            f.additions,
                            f.deletions
                        )
                    })
                    .collect();
                format!(
                    "<span class=\"figures\">{}, {}, +{} -{}</span><ol class=\"commits\">{commits}{more}</ol><div class=\"files\">{files}</div>",
                    plural(c.commits as usize, "commit"),
                    plural(c.paths.len(), "file"),
                    c.additions,
                    c.deletions
                )
            }
            Err(r) => esc(&r.message),
        }
    }

    /// What the checks GitHub has on `a`'s head say, as HTML: each run's name (a link to its
    /// CI, when that is an http(s) address) and its conclusion or status.
    async fn checks_html(&self, a: &Approval) -> String {
        let read = self.checks(a).await;
        if let Some(why) = read.unavailable {
            return format!("<p class=\"checks\">Checks not shown: {}</p>", esc(&why));
        }
        if read.checks.is_empty() {
            return format!("<p class=\"checks\">No checks on {}.</p>", esc(&a.head));
        }
        let items: String = read
            .checks
            .iter()
            .map(|c| {
                let name = match &c.url {
                    Some(u) if u.starts_with("https://") || u.starts_with("http://") => {
                        format!("<a href=\"{}\">{}</a>", esc(u), esc(&c.name))
                    }
                    _ => esc(&c.name),
                };
                let state = c.conclusion.as_deref().unwrap_or(&c.status);
                format!("<li class=\"check {0}\">{name}: {0}</li>", esc(state))
            })
            .collect();
        format!("<ul class=\"checks\">{items}</ul>")
    }

    /// `POST /signout` (with the session's CSRF token): the session is ended in the store, so
    /// no replica takes it again, and its cookie cleared.
    async fn sign_out(
        &self,
        id: &str,
        digest: &str,
        form: &HashMap<String, String>,
        csrf: &str,
    ) -> Response<Body> {
        use subtle::ConstantTimeEq;
        let given = form.get("csrf").map(String::as_str).unwrap_or_default();
        if given.is_empty() || !bool::from(given.as_bytes().ct_eq(csrf.as_bytes())) {
            return html(
                StatusCode::FORBIDDEN,
                "Refused",
                "<p>The form's CSRF token is missing or wrong.</p>",
            );
        }
        let expires = Sessions::expiry(id)
            .unwrap_or_else(|| ghapp_core::jwt::unix_now() + SESSION_LIFE.as_secs() as i64);
        if let Some(store) = self.store()
            && let Err(e) = store.end_session(digest, expires).await
        {
            return html(
                StatusCode::SERVICE_UNAVAILABLE,
                "Not signed out",
                &esc(&e.to_string()),
            );
        }
        let mut r = redirect("/signin");
        r.headers_mut().insert(
            hyper::header::SET_COOKIE,
            HeaderValue::from_static(
                "ghapp_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0",
            ),
        );
        r
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
            Ok(_) => redirect(&format!("/approvals?decided={id}")),
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
        let token = ghapp_core::secret::ProxySecret::new("admin-token-0123456789");
        let s = Sessions::new(Some(&token));
        let now = 1_800_000_000;
        let (id, csrf) = s.open(now).unwrap();
        assert_eq!(s.csrf(&id, now + 60).as_deref(), Some(csrf.as_str()));
        // Another replica with the same admin token accepts it; with another token, not.
        assert_eq!(
            Sessions::new(Some(&token)).csrf(&id, now).as_deref(),
            Some(csrf.as_str())
        );
        let other = ghapp_core::secret::ProxySecret::new("another-admin-token-0123");
        assert_eq!(Sessions::new(Some(&other)).csrf(&id, now), None);
        // Expired, forged, altered, or no admin token: no session.
        assert_eq!(s.csrf(&id, now + SESSION_LIFE.as_secs() as i64), None);
        let (body, _) = id.rsplit_once('.').unwrap();
        assert_eq!(s.csrf(&format!("{body}.{}", "0".repeat(64)), now), None);
        let later = body.replace(&format!(".{}", now + 28800), ".9999999999");
        let mac = id.rsplit_once('.').unwrap().1;
        assert_eq!(s.csrf(&format!("{later}.{mac}"), now), None);
        for junk in ["", ".", "a.b.c", "x.1.zz", "..", "a.1.\u{e9}\u{e9}"] {
            assert_eq!(s.csrf(junk, now), None, "{junk:?}");
        }
        assert!(Sessions::new(None).open(now).is_none());
        assert_ne!(csrf, s.open(now).unwrap().1, "a CSRF token per session");
    }
}
