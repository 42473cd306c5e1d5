//! The way to GitHub: an allowed request sent with the sandbox's token injected, its body
//! streamed (never a whole pack in memory), redirects never followed, and GitHub's answer
//! relayed as it streams. A 401 for a token GitHub no longer accepts drops that token and, for
//! a bodiless request, retries once with a new one.

use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use ghapp_core::cache::CachedToken;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::header::{HeaderMap, HeaderName};
use hyper::{Method, Response, StatusCode};

use crate::audit::PushSummary;
use crate::body::coalesce;
use crate::policy::{PushRefusal, Scheme};
use crate::respond::{Body, Refusal, text};
use crate::sandbox::Sandbox;
use crate::tokens::Tokens;

/// A token younger than this may 401 while GitHub replicates it: wait and retry once.
const FRESH_TOKEN: u64 = 10;

fn auth_header(scheme: Scheme, token: &CachedToken) -> String {
    match scheme {
        Scheme::Basic => ghapp_gitproto::basic::encode("x-access-token", token.token.expose()),
        Scheme::Bearer => format!("Bearer {}", token.token.expose()),
    }
}

/// A request ready to go upstream.
pub(crate) struct Upstream {
    pub method: Method,
    pub url: reqwest::Url,
    pub headers: HeaderMap,
    pub body: Option<reqwest::Body>,
    pub scheme: Scheme,
    /// The owner whose token is injected.
    pub owner: String,
    /// An inspected push: the verdict, which comes before GitHub can answer (the body's last
    /// bytes wait for it).
    pub verdict: Option<crate::inspect::Verdict>,
}

/// What sending came to.
pub(crate) enum Sent {
    /// GitHub answered; `push` is what the inspection of a push found.
    Answered {
        resp: reqwest::Response,
        token: String,
        push: Option<PushSummary>,
    },
    /// The inspection refused the push: GitHub never had its whole pack.
    PushRefused {
        push: PushSummary,
        refusal: PushRefusal,
        token: String,
    },
    /// No answer from GitHub (unreachable, no token, no verdict).
    Failed(Refusal),
}

/// Sends `up` with `token` (the sandbox's, for `up.owner`). A 401 from GitHub: a token younger
/// than a few seconds may not have replicated yet (wait and retry once); an older one, or one
/// refused twice, was revoked (drop it, mint a new one, retry once). Only bodiless requests are
/// retried: a streamed body cannot be replayed.
pub(crate) async fn send(
    client: &reqwest::Client,
    tokens: &Tokens,
    sb: &Sandbox,
    up: Upstream,
    mut token: CachedToken,
) -> Sent {
    let retryable = up.body.is_none();
    let mut body = up.body;
    let mut verdict = up.verdict;
    let mut push = None;
    let (mut waited, mut reminted) = (false, false);
    loop {
        let fingerprint = token.token.fingerprint();
        let mut rb = client
            .request(up.method.clone(), up.url.clone())
            .headers(up.headers.clone())
            .header(hyper::header::AUTHORIZATION, auth_header(up.scheme, &token));
        if let Some(b) = body.take() {
            rb = rb.body(b);
        }
        let answer = match verdict.take() {
            None => rb.send().await,
            Some(v) => {
                let (answer, decided) = tokio::join!(rb.send(), v);
                match decided {
                    Ok(Ok(summary)) => {
                        push = Some(summary);
                        answer
                    }
                    Ok(Err((summary, refusal))) => {
                        return Sent::PushRefused {
                            push: summary,
                            refusal,
                            token: fingerprint,
                        };
                    }
                    Err(_) => {
                        return Sent::Failed(Refusal::text(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "the push inspection ended without a verdict",
                        ));
                    }
                }
            }
        };
        match answer {
            Ok(r) if r.status() == StatusCode::UNAUTHORIZED => {
                let young = (ghapp_core::jwt::unix_now() as u64).saturating_sub(token.minted_at)
                    < FRESH_TOKEN;
                if young && !waited {
                    if !retryable {
                        return Sent::Answered {
                            resp: r,
                            token: fingerprint,
                            push,
                        };
                    }
                    // GitHub's replication lag: a brand-new token may 401 for a moment.
                    waited = true;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
                // Refused after the lag, or old: revoked. Never hand it out again.
                tokens.forget(sb, &up.owner, &token);
                if !retryable || reminted {
                    return Sent::Answered {
                        resp: r,
                        token: fingerprint,
                        push,
                    };
                }
                reminted = true;
                token = match tokens.token(sb, &up.owner).await {
                    Ok(t) => t,
                    Err(r) => return Sent::Failed(r),
                };
            }
            Ok(r) => {
                return Sent::Answered {
                    resp: r,
                    token: fingerprint,
                    push,
                };
            }
            Err(e) => {
                let origin = up.url.origin().ascii_serialization();
                return Sent::Failed(Refusal::text(
                    StatusCode::BAD_GATEWAY,
                    format!(
                        "upstream {origin} is unreachable: {}",
                        ghapp_core::client::root_cause(&e)
                    ),
                ));
            }
        }
    }
}

/// An LFS object transfer to a URL GitHub's batch answer named: sent as the sandbox sent it
/// (with the action's own headers, its own `Authorization`), no token added, never retried.
pub(crate) async fn storage(
    client: &reqwest::Client,
    method: Method,
    url: reqwest::Url,
    headers: &HeaderMap,
    body: reqwest::Body,
) -> Result<reqwest::Response, Refusal> {
    let mut h = forward_headers(headers);
    for v in headers.get_all(hyper::header::AUTHORIZATION) {
        h.append(hyper::header::AUTHORIZATION, v.clone());
    }
    client
        .request(method, url)
        .headers(h)
        .body(body)
        .send()
        .await
        .map_err(|e| {
            Refusal::lfs(
                StatusCode::BAD_GATEWAY,
                format!(
                    "the LFS storage is unreachable: {}",
                    ghapp_core::client::root_cause(&e)
                ),
            )
        })
}

/// The answer's head as the sandbox gets it: its status, and its headers less the hop-by-hop
/// ones and cookies.
pub(crate) fn head_of(resp: &reqwest::Response) -> http::response::Builder {
    let mut out = Response::builder().status(resp.status());
    for (k, v) in resp.headers() {
        if !is_hop_by_hop(k) && k != hyper::header::SET_COOKIE {
            out = out.header(k, v);
        }
    }
    out
}

/// GitHub's answer passed on to the sandbox as it streams.
pub(crate) fn relay(resp: reqwest::Response) -> Response<Body> {
    let out = head_of(&resp);
    let upstream = TryStreamExt::map_err(resp.bytes_stream(), std::io::Error::other);
    let stream = coalesce(upstream).map(|chunk| chunk.map(Frame::data));
    out.body(BodyExt::boxed(StreamBody::new(stream)))
        .unwrap_or_else(|_| {
            text(
                StatusCode::BAD_GATEWAY,
                "ghapp proxy: bad upstream answer\n",
            )
        })
}

fn is_hop_by_hop(k: &HeaderName) -> bool {
    matches!(
        k.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "content-length"
    )
}

/// Headers some servers read as "treat this POST as another method": the method the policy
/// decided on is the one GitHub must see, so they never pass.
fn is_method_override(k: &HeaderName) -> bool {
    matches!(
        k.as_str(),
        "x-http-method-override" | "x-http-method" | "x-method-override"
    )
}

/// The client's headers minus hop-by-hop ones, credentials and cookies, Host, and method
/// overrides.
pub(crate) fn forward_headers(h: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (k, v) in h {
        if is_hop_by_hop(k)
            || is_method_override(k)
            || k == hyper::header::AUTHORIZATION
            || k == hyper::header::COOKIE
            || k == hyper::header::HOST
        {
            continue;
        }
        out.append(k.clone(), v.clone());
    }
    out
}
