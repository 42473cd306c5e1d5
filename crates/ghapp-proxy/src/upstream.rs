//! The way to GitHub: the allowed request with the sandbox's token injected, streamed both
//! ways (never buffering a pack), redirects never followed. A 401 for a token GitHub no longer
//! accepts drops that token and, for a bodiless request, retries once with a new one.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use ghapp_core::cache::CachedToken;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderMap, HeaderName};
use hyper::{Method, Response, StatusCode};

use crate::audit::Pending;
use crate::respond::{Refusal, text};
use crate::transport::Origin;
use crate::{Body, Proxy};

/// A token younger than this may 401 while GitHub replicates it: wait and retry once.
const FRESH_TOKEN: u64 = 10;

/// How the token travels upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    /// git: `Basic x-access-token:TOKEN`.
    Basic,
    /// REST: `Bearer TOKEN`.
    Bearer,
}

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
    /// An LFS batch request: its answer names the storage hosts the sandbox may then reach.
    pub lfs_batch: bool,
    /// An inspected push: the verdict, which comes before GitHub can answer (the body's last
    /// bytes wait for it).
    pub verdict: Option<crate::inspect::Verdict>,
}

impl Proxy {
    /// Sends `up` with `token`. A 401 from GitHub: a token younger than a few seconds may not
    /// have replicated yet (wait and retry once); an older one, or one refused twice, was
    /// revoked (drop it, mint a new one, retry once). Only bodiless requests are retried: a
    /// streamed body cannot be replayed.
    pub(crate) async fn forward(
        &self,
        up: Upstream,
        o: &Origin,
        mut token: CachedToken,
        mut p: Pending,
    ) -> Response<Body> {
        let retryable = up.body.is_none();
        let mut body = up.body;
        let mut verdict = up.verdict;
        let (mut waited, mut reminted) = (false, false);
        let resp = loop {
            p.event.token = Some(token.token.fingerprint());
            let mut rb = self
                .upstream
                .request(up.method.clone(), up.url.clone())
                .headers(up.headers.clone())
                .header(hyper::header::AUTHORIZATION, auth_header(up.scheme, &token));
            if let Some(b) = body.take() {
                rb = rb.body(b);
            }
            let sent = std::time::Instant::now();
            let answer = match verdict.take() {
                None => rb.send().await,
                Some(v) => {
                    let (answer, decided) = tokio::join!(rb.send(), v);
                    match decided {
                        Ok(Ok(summary)) => {
                            p.event.push = Some(summary);
                            answer
                        }
                        Ok(Err((summary, refused))) => {
                            p.event.push = Some(summary);
                            return crate::push::push_refused(&mut p, refused);
                        }
                        Err(_) => {
                            return p.refuse(Refusal::text(
                                StatusCode::INTERNAL_SERVER_ERROR,
                                "the push inspection ended without a verdict",
                            ));
                        }
                    }
                }
            };
            self.audit
                .metrics
                .upstream_latency(p.event.service, sent.elapsed().as_secs_f64());
            match answer {
                Ok(r) if r.status() == StatusCode::UNAUTHORIZED => {
                    let young = (ghapp_core::jwt::unix_now() as u64)
                        .saturating_sub(token.minted_at)
                        < FRESH_TOKEN;
                    if young && !waited {
                        if !retryable {
                            break r;
                        }
                        // GitHub's replication lag: a brand-new token may 401 for a moment.
                        waited = true;
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                    // Refused after the lag, or old: revoked. Never hand it out again.
                    self.forget_token(&o.sandbox, &up.owner, &token);
                    if !retryable || reminted {
                        break r;
                    }
                    reminted = true;
                    token = match self.token(&o.sandbox, &up.owner).await {
                        Ok(t) => t,
                        Err(r) => return p.refuse(r),
                    };
                }
                Ok(r) => break r,
                Err(e) => {
                    let origin = up.url.origin().ascii_serialization();
                    return p.refuse(Refusal::text(
                        StatusCode::BAD_GATEWAY,
                        format!(
                            "upstream {origin} is unreachable: {}",
                            ghapp_core::client::root_cause(&e)
                        ),
                    ));
                }
            }
        };
        self.relay(resp, up.lfs_batch, o, p).await
    }

    /// An LFS object transfer to a URL GitHub's batch answer named on a GitHub host: sent as
    /// the sandbox sent it (with the action's own headers), no token added, never retried.
    pub(crate) async fn storage(
        &self,
        method: Method,
        url: reqwest::Url,
        headers: HeaderMap,
        body: reqwest::Body,
        o: &Origin,
        mut p: Pending,
    ) -> Response<Body> {
        // As any forwarded request's, but the action's own Authorization (from GitHub's batch
        // answer, not a token of the proxy's) goes along.
        let mut h = forward_headers(&headers);
        for v in headers.get_all(hyper::header::AUTHORIZATION) {
            h.append(hyper::header::AUTHORIZATION, v.clone());
        }
        match self
            .upstream
            .request(method, url.clone())
            .headers(h)
            .body(body)
            .send()
            .await
        {
            Ok(resp) => self.relay(resp, false, o, p).await,
            Err(e) => {
                p.event.reason = format!(
                    "LFS storage {} unreachable",
                    url.origin().ascii_serialization()
                );
                p.refuse(Refusal::lfs(
                    StatusCode::BAD_GATEWAY,
                    format!(
                        "the LFS storage is unreachable: {}",
                        ghapp_core::client::root_cause(&e)
                    ),
                ))
            }
        }
    }

    /// GitHub's answer passed to the sandbox: streamed, or (an LFS batch answer) read for the
    /// storage it grants.
    async fn relay(
        &self,
        resp: reqwest::Response,
        lfs_batch: bool,
        o: &Origin,
        mut p: Pending,
    ) -> Response<Body> {
        let status = resp.status();
        p.event.upstream_status = Some(status.as_u16());
        p.event.status = status.as_u16();
        let mut out = Response::builder().status(status);
        for (k, v) in resp.headers() {
            if !is_hop_by_hop(k) && k != hyper::header::SET_COOKIE {
                out = out.header(k, v);
            }
        }
        if lfs_batch && status == StatusCode::OK {
            return self.lfs_answer(resp, out, o, p).await;
        }
        let mut pending = Some(p);
        let upstream = TryStreamExt::map_err(resp.bytes_stream(), std::io::Error::other);
        let stream = coalesce(upstream).map(move |chunk| {
            let chunk = chunk?;
            if let Some(p) = pending.as_mut() {
                p.bytes_out += chunk.len() as u64;
            }
            Ok(Frame::data(chunk))
        });
        out.body(BodyExt::boxed(StreamBody::new(stream)))
            .unwrap_or_else(|_| {
                text(
                    StatusCode::BAD_GATEWAY,
                    "ghapp proxy: bad upstream answer\n",
                )
            })
    }
}

impl Proxy {
    /// A call the proxy makes to GitHub's REST API on a sandbox's behalf (not one it
    /// forwards): `path` under the API base, with the sandbox's token for `owner`; GitHub's
    /// status and JSON answer (read whole, at most `max` bytes), or why there is none.
    pub(crate) async fn api_call(
        &self,
        sb: &crate::sandbox::Sandbox,
        owner: &str,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
        max: usize,
    ) -> Result<(StatusCode, serde_json::Value), Refusal> {
        let url = format!("{}{path}", self.cfg.github().api_url());
        let unreachable = |why: String| {
            Refusal::json(
                StatusCode::BAD_GATEWAY,
                format!("GitHub ({method} {path}): {why}"),
            )
        };
        let (url, unreachable, method) = (&url, &unreachable, &method);
        self.with_token(sb, owner, |token: String| async move {
            let mut rb = self
                .upstream
                .request(method.clone(), url)
                .bearer_auth(token)
                .header(hyper::header::ACCEPT, "application/vnd.github+json")
                .header(hyper::header::USER_AGENT, "ghapp-proxy");
            if let Some(b) = body {
                rb = rb.json(b);
            }
            let resp = match tokio::time::timeout(ANSWER_WAIT, rb.send()).await {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => return Err(unreachable(ghapp_core::client::root_cause(&e))),
                Err(_) => {
                    return Err(unreachable(format!(
                        "no answer within {} s",
                        ANSWER_WAIT.as_secs()
                    )));
                }
            };
            let status = resp.status();
            let bytes = read_bounded(resp, max, ANSWER_WAIT)
                .await
                .map_err(unreachable)?;
            Ok((
                status,
                serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
            ))
        })
        .await
    }

    /// Runs `call` (a request the proxy makes itself) with the sandbox's token for `owner`;
    /// when GitHub answers 401 (the token was revoked: by an admin, secret scanning, `ghapp
    /// revoke`), the token is dropped and `call` runs once more with a new one. GitHub acted
    /// on nothing it answered 401 to, so even a POST is safe to send again.
    pub(crate) async fn with_token<T, F>(
        &self,
        sb: &crate::sandbox::Sandbox,
        owner: &str,
        call: impl Fn(String) -> F,
    ) -> Result<(StatusCode, T), Refusal>
    where
        F: Future<Output = Result<(StatusCode, T), Refusal>>,
    {
        let token = self.token(sb, owner).await?;
        let first = call(token.token.expose().to_owned()).await?;
        if first.0 != StatusCode::UNAUTHORIZED {
            return Ok(first);
        }
        self.forget_token(sb, owner, &token);
        let token = self.token(sb, owner).await?;
        call(token.token.expose().to_owned()).await
    }
}

/// The largest LFS batch answer read (GitHub answers at most 100 objects per batch).
const MAX_LFS_ANSWER: usize = 4 << 20;
/// The longest wait for an answer the proxy reads whole.
pub(crate) const ANSWER_WAIT: Duration = Duration::from_secs(30);

/// An upstream answer's body read whole: at most `max` bytes, within `wait`.
pub(crate) async fn read_bounded(
    resp: reqwest::Response,
    max: usize,
    wait: Duration,
) -> Result<Vec<u8>, String> {
    let read = async {
        let mut body = Vec::new();
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|e| format!("cut off: {}", ghapp_core::client::root_cause(&e)))?;
            if body.len() + chunk.len() > max {
                return Err(format!("over {} KiB", max >> 10));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    };
    tokio::time::timeout(wait, read)
        .await
        .unwrap_or_else(|_| Err(format!("not complete in {} s", wait.as_secs())))
}

impl Proxy {
    /// An LFS batch answer: read whole (bounded), the storage hosts it names granted to the
    /// sandbox ([`crate::lfs::Grants`]), then passed on unchanged.
    async fn lfs_answer(
        &self,
        resp: reqwest::Response,
        out: hyper::http::response::Builder,
        o: &Origin,
        mut p: Pending,
    ) -> Response<Body> {
        let body = match read_bounded(resp, MAX_LFS_ANSWER, ANSWER_WAIT).await {
            Ok(b) => b,
            Err(why) => {
                return p.refuse(Refusal::lfs(
                    StatusCode::BAD_GATEWAY,
                    format!("the LFS batch answer: {why}"),
                ));
            }
        };
        let granted = self
            .lfs
            .record(o.sandbox.name(), &body, |h| self.hosts.intercepts(h));
        if !granted.is_empty() {
            p.event.reason = format!("LFS storage granted: {}", granted.join(", "));
        }
        p.bytes_out = body.len() as u64;
        out.body(BodyExt::boxed(
            http_body_util::Full::new(Bytes::from(body)).map_err(|never| match never {}),
        ))
        .unwrap_or_else(|_| {
            text(
                StatusCode::BAD_GATEWAY,
                "ghapp proxy: bad upstream answer\n",
            )
        })
    }
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

/// A request body streamed on, counted.
pub(crate) fn streamed(body: Incoming, counter: Arc<AtomicU64>) -> reqwest::Body {
    reqwest::Body::wrap_stream(coalesce(stream_incoming(body, counter)))
}

/// `prefix` (already read, e.g. a push's command section), then the rest of `body`, streamed.
pub(crate) fn prefixed(prefix: Vec<u8>, body: Incoming, counter: Arc<AtomicU64>) -> reqwest::Body {
    let first =
        futures_util::stream::once(async move { Ok::<Bytes, std::io::Error>(Bytes::from(prefix)) });
    reqwest::Body::wrap_stream(coalesce(first.chain(stream_incoming(body, counter))))
}

/// Joins the chunks that are already there into one (up to 64 of them), so a pack crosses the
/// upstream TLS connection in large records instead of one per small read; a chunk is never
/// held back waiting for more (git's small protocol messages pass at once).
pub(crate) fn coalesce(
    s: impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    s.ready_chunks(64).map(|items| {
        if items.len() == 1 {
            return items.into_iter().next().expect("one item");
        }
        let mut out = bytes::BytesMut::new();
        for item in items {
            out.extend_from_slice(&item?);
        }
        Ok(out.freeze())
    })
}

fn stream_incoming(
    body: Incoming,
    counter: Arc<AtomicU64>,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    TryStreamExt::map_err(http_body_util::BodyStream::new(body), std::io::Error::other)
        .try_filter_map(move |f| {
            let counter = counter.clone();
            async move {
                Ok(f.into_data().ok().inspect(|d| {
                    counter.fetch_add(d.len() as u64, Ordering::Relaxed);
                }))
            }
        })
}
