//! ghapp-proxy: an HTTPS smart-protocol proxy for sandboxes.
//!
//! A sandbox gets `HTTPS_PROXY=http://NAME:SECRET@proxy:PORT` and the proxy's CA, nothing else.
//! The proxy identifies the sandbox from `Proxy-Authorization` on `CONNECT`, terminates TLS for
//! the GitHub hosts only (a leaf per host from its own CA; SNI = CONNECT host = Host), applies
//! the sandbox's policy (repositories, push ref patterns, deletes, a REST allow-list), injects a
//! token narrowed to the sandbox's repositories, and streams to GitHub. Other hosts are refused
//! or tunnelled untouched (`egress`).
//!
//! ```no_run
//! # fn f() -> Result<(), String> {
//! let cfg = ghapp_proxy::config::ProxyConfig::load(std::path::Path::new("proxy.toml"))
//!     .map_err(|e| e.to_string())?;
//! let proxy = ghapp_proxy::Proxy::new(cfg)?;
//! let running = proxy.start()?;
//! println!("listening on {}", running.addr());
//! # Ok(()) }
//! ```
//!
//! # Security
//! The sandbox never receives a token: the client's `Authorization`, `Proxy-Authorization` and
//! `Cookie` are dropped, the token is added only on the upstream request, and audit events and
//! logs name it by fingerprint. Pushes are decided from the command section before any byte of
//! the pack reaches GitHub. Redirects are never followed.

pub mod audit;
pub mod ca;
pub mod config;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use ghapp_core::broker::{Broker, TokenRequest, default_permissions};
use ghapp_core::cache::CachedToken;
use ghapp_gitproto::policy::{Decision, PushPolicy};
use ghapp_gitproto::receive_pack;
use http_body_util::{BodyExt, Empty, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use crate::audit::{Audit, Event, Pending, RefUpdate};
use crate::ca::Ca;
use crate::config::{Egress, ProxyConfig, SandboxConfig};

pub type Body = BoxBody<Bytes, std::io::Error>;

/// The largest receive-pack command section read before deciding.
pub const COMMAND_SECTION_LIMIT: usize = 1 << 20;
/// How much of a refused push is drained before answering (so git reads the answer).
const DRAIN_LIMIT: u64 = 1 << 30;
const DRAIN_TIME: Duration = Duration::from_secs(60);
/// A token younger than this may 401 while GitHub replicates it: retry once.
const FRESH_TOKEN: u64 = 10;

/// A proxy secret: `Debug` prints `ProxySecret(****)`.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxySecret(String);

impl ProxySecret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    /// Constant-time comparison.
    pub fn matches(&self, other: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), other.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl std::fmt::Debug for ProxySecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProxySecret(****)")
    }
}

struct Sandbox {
    cfg: SandboxConfig,
    push: PushPolicy,
}

impl Sandbox {
    fn repo(&self, owner: &str, repo: &str) -> Option<(String, String)> {
        self.cfg
            .repos
            .iter()
            .find(|(o, r)| o.eq_ignore_ascii_case(owner) && r.eq_ignore_ascii_case(repo))
            .cloned()
    }

    /// One token per sandbox and owner: narrowed to the sandbox's repositories of that owner.
    fn token_request(&self, owner: &str) -> TokenRequest {
        TokenRequest {
            owner: Some(owner.to_owned()),
            repositories: self
                .cfg
                .repos
                .iter()
                .filter(|(o, _)| o.eq_ignore_ascii_case(owner))
                .map(|(_, r)| r.clone())
                .collect(),
            permissions: default_permissions(),
            fit_permissions: true,
        }
    }
}

/// Where GitHub is, as the sandbox names it and as the proxy reaches it.
#[derive(Debug, Clone)]
struct Hosts {
    /// `host:port` of git.
    git: String,
    /// `host:port` of the REST API.
    api: String,
    /// `/api/v3` on GHES, empty on github.com.
    api_prefix: String,
}

fn with_port(h: &str) -> String {
    let h = h.to_ascii_lowercase();
    match h.rsplit_once(':') {
        Some((_, p)) if p.bytes().all(|b| b.is_ascii_digit()) && !p.is_empty() => h,
        _ => format!("{h}:443"),
    }
}

fn hosts_of(api_url: &str, git_host: &str) -> Hosts {
    let rest = api_url.split_once("://").map(|x| x.1).unwrap_or(api_url);
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    Hosts {
        git: with_port(git_host),
        api: with_port(authority),
        api_prefix: path.trim_end_matches('/').to_owned(),
    }
}

pub struct Proxy {
    cfg: ProxyConfig,
    sandboxes: Vec<Sandbox>,
    broker: Broker,
    ca: Ca,
    upstream: reqwest::Client,
    audit: Arc<Audit>,
    hosts: Hosts,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("listen", &self.cfg.listen)
            .field("hosts", &self.hosts)
            .finish_non_exhaustive()
    }
}

impl Proxy {
    /// Prepares everything that can fail before serving: the key, the CA, the audit log, the
    /// upstream client. Synchronous: call it before any runtime exists.
    pub fn new(cfg: ProxyConfig) -> Result<Proxy, String> {
        ghapp_core::jwt::install_crypto_providers();
        let hosts = hosts_of(&cfg.app.api_url, &cfg.app.git_host);
        let mut intercept = vec![hosts.git.clone()];
        if hosts.api != hosts.git {
            intercept.push(hosts.api.clone());
        }
        let ca = Ca::load_or_create(&cfg.ca_dir, &intercept)?;
        let upstream_ca = match &cfg.upstream_ca_file {
            Some(p) => Some(
                std::fs::read_to_string(p)
                    .map_err(|e| format!("cannot read upstream_ca_file {}: {e}", p.display()))?,
            ),
            None => None,
        };
        let mut broker = Broker::new(cfg.app.clone(), cfg.refresh_margin, &cfg.cache_dir)
            .map_err(|e| e.to_string())?;
        if let Some(ca) = &upstream_ca {
            broker = broker.with_client(
                ghapp_core::client::GitHubClient::with_ca(&cfg.app.api_url, ca)
                    .map_err(|e| e.to_string())?,
            );
        }
        let broker = broker.with_deadline(Duration::from_secs(20));
        broker.load_key_now().map_err(|e| e.to_string())?;
        let tls = ghapp_core::client::tls_config_with(upstream_ca.as_deref())
            .map_err(|e| e.to_string())?;
        let upstream = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .http1_only()
            .build()
            .map_err(|e| format!("cannot build the upstream client: {e}"))?;
        let audit = Audit::open(cfg.audit_log.as_deref())
            .map_err(|e| format!("cannot open the audit log: {e}"))?;
        let sandboxes = cfg
            .sandboxes
            .iter()
            .map(|s| Sandbox {
                push: PushPolicy::new(s.push.iter().cloned(), s.allow_delete),
                cfg: s.clone(),
            })
            .collect();
        Ok(Proxy {
            cfg,
            sandboxes,
            broker,
            ca,
            upstream,
            audit: Arc::new(audit),
            hosts,
        })
    }

    pub fn ca_pem(&self) -> &str {
        &self.ca.cert_pem
    }

    /// Serves on the configured address from a background thread with its own runtime.
    pub fn start(self) -> Result<Running, String> {
        let listener = std::net::TcpListener::bind(self.cfg.listen)
            .map_err(|e| format!("cannot listen on {}: {e}", self.cfg.listen))?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let metrics = match self.cfg.metrics_listen {
            Some(a) => {
                let l = std::net::TcpListener::bind(a)
                    .map_err(|e| format!("cannot listen on {a} for metrics: {e}"))?;
                l.set_nonblocking(true).map_err(|e| e.to_string())?;
                Some(l)
            }
            None => None,
        };
        let metrics_addr = metrics.as_ref().and_then(|l| l.local_addr().ok());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let me = Arc::new(self);
        let thread = std::thread::Builder::new()
            .name("ghapp-proxy".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()
                    .expect("tokio runtime");
                rt.block_on(me.serve(listener, metrics, rx));
                rt.shutdown_timeout(Duration::from_millis(200));
            })
            .map_err(|e| e.to_string())?;
        Ok(Running {
            addr,
            metrics_addr,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    async fn serve(
        self: Arc<Self>,
        listener: std::net::TcpListener,
        metrics: Option<std::net::TcpListener>,
        mut shutdown: tokio::sync::oneshot::Receiver<()>,
    ) {
        let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
            return;
        };
        if let Some(m) = metrics.and_then(|m| tokio::net::TcpListener::from_std(m).ok()) {
            let me = self.clone();
            tokio::spawn(async move {
                while let Ok((s, _)) = m.accept().await {
                    let me = me.clone();
                    tokio::spawn(async move {
                        let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                            let me = me.clone();
                            async move {
                                Ok::<_, Infallible>(if req.uri().path() == "/metrics" {
                                    text(StatusCode::OK, &me.audit.metrics_text())
                                } else {
                                    text(StatusCode::NOT_FOUND, "metrics are at /metrics\n")
                                })
                            }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(s), svc)
                            .await;
                    });
                }
            });
        }
        loop {
            let (stream, peer) = tokio::select! {
                _ = &mut shutdown => return,
                r = listener.accept() => match r {
                    Ok(s) => s,
                    Err(_) => continue,
                },
            };
            let me = self.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| me.clone().front(req, peer));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .with_upgrades()
                    .await;
            });
        }
    }

    fn sandbox_for(&self, req: &Request<Incoming>) -> Option<usize> {
        let v = req
            .headers()
            .get(hyper::header::PROXY_AUTHORIZATION)?
            .to_str()
            .ok()?;
        let (name, secret) = ghapp_gitproto::basic::parse(v)?;
        self.sandboxes
            .iter()
            .position(|sb| sb.cfg.name == name && sb.cfg.secret.matches(&secret))
    }

    /// The proxy's own listener: CONNECT, and `GET /ca.pem`.
    async fn front(
        self: Arc<Self>,
        mut req: Request<Incoming>,
        _peer: SocketAddr,
    ) -> Result<Response<Body>, Infallible> {
        if req.method() != Method::CONNECT {
            if req.method() == Method::GET && req.uri().path() == "/ca.pem" {
                let mut r = text(StatusCode::OK, &self.ca.cert_pem);
                r.headers_mut().insert(
                    hyper::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/x-pem-file"),
                );
                return Ok(r);
            }
            return Ok(text(
                StatusCode::METHOD_NOT_ALLOWED,
                "ghapp proxy: only CONNECT is proxied (use HTTPS_PROXY); the CA is at /ca.pem\n",
            ));
        }
        let Some(authority) = req
            .uri()
            .authority()
            .map(|a| a.as_str().to_ascii_lowercase())
        else {
            return Ok(text(
                StatusCode::BAD_REQUEST,
                "ghapp proxy: CONNECT needs host:port\n",
            ));
        };
        let Some(idx) = self.sandbox_for(&req) else {
            self.audit.count("ghapp_proxy_auth_failures_total");
            let mut r = text(
                StatusCode::PROXY_AUTHENTICATION_REQUIRED,
                "ghapp proxy: proxy credentials required (HTTPS_PROXY=http://NAME:SECRET@host:port)\n",
            );
            r.headers_mut().insert(
                hyper::header::PROXY_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"ghapp proxy\""),
            );
            return Ok(r);
        };
        let host = with_port(&authority);
        let intercept = host == self.hosts.git || host == self.hosts.api;
        if !intercept && self.cfg.egress == Egress::Deny {
            self.audit.record(&Event {
                ts: now_rfc3339(),
                sandbox: self.sandboxes[idx].cfg.name.clone(),
                method: "CONNECT".into(),
                host: host.clone(),
                path: String::new(),
                repo: None,
                service: "connect".into(),
                ref_updates: vec![],
                decision: "deny".into(),
                reason: "egress to hosts other than GitHub is denied".into(),
                bytes_in: 0,
                bytes_out: 0,
                upstream_status: None,
                status: 403,
                latency_ms: 0,
                token: None,
            });
            return Ok(text(
                StatusCode::FORBIDDEN,
                &format!("ghapp proxy: {host} is not a GitHub host and egress is denied\n"),
            ));
        }
        let upgrade = hyper::upgrade::on(&mut req);
        let me = self.clone();
        tokio::spawn(async move {
            let Ok(upgraded) = upgrade.await else { return };
            let io = TokioIo::new(upgraded);
            if intercept {
                me.intercept(io, idx, host).await;
            } else {
                me.tunnel(io, idx, host).await;
            }
        });
        Ok(Response::new(empty()))
    }

    async fn tunnel(
        self: Arc<Self>,
        mut io: TokioIo<hyper::upgrade::Upgraded>,
        idx: usize,
        host: String,
    ) {
        let start = Instant::now();
        let Ok(mut tcp) = tokio::net::TcpStream::connect(&host).await else {
            return;
        };
        let (a, b) = tokio::io::copy_bidirectional(&mut io, &mut tcp)
            .await
            .unwrap_or((0, 0));
        self.audit.record(&Event {
            ts: now_rfc3339(),
            sandbox: self.sandboxes[idx].cfg.name.clone(),
            method: "CONNECT".into(),
            host,
            path: String::new(),
            repo: None,
            service: "connect".into(),
            ref_updates: vec![],
            decision: "allow".into(),
            reason: "egress = tunnel".into(),
            bytes_in: a,
            bytes_out: b,
            upstream_status: None,
            status: 200,
            latency_ms: start.elapsed().as_millis() as u64,
            token: None,
        });
    }

    async fn intercept(
        self: Arc<Self>,
        io: TokioIo<hyper::upgrade::Upgraded>,
        idx: usize,
        host: String,
    ) {
        let Ok(cfg) = self.ca.server_config(&host) else {
            return;
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
        let Ok(tls) = acceptor.accept(io).await else {
            return;
        };
        // SNI, when sent (it is not for IP addresses), must name the CONNECT host.
        if let Some(sni) = tls.get_ref().1.server_name() {
            let h = host.rsplit_once(':').map(|x| x.0).unwrap_or(&host);
            if !sni.eq_ignore_ascii_case(h) {
                return;
            }
        }
        let me = self.clone();
        let svc = hyper::service::service_fn(move |req| {
            let me = me.clone();
            let host = host.clone();
            async move { Ok::<_, Infallible>(me.inner(req, idx, &host).await) }
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(tls), svc)
            .await;
    }

    /// A request inside an intercepted tunnel.
    async fn inner(
        self: &Arc<Self>,
        req: Request<Incoming>,
        idx: usize,
        host: &str,
    ) -> Response<Body> {
        let sb = &self.sandboxes[idx];
        let path = req.uri().path().to_owned();
        let mut ev = Event {
            ts: now_rfc3339(),
            sandbox: sb.cfg.name.clone(),
            method: req.method().to_string(),
            host: host.to_owned(),
            path: path.clone(),
            repo: None,
            service: "other".into(),
            ref_updates: vec![],
            decision: "deny".into(),
            reason: String::new(),
            bytes_in: 0,
            bytes_out: 0,
            upstream_status: None,
            status: 0,
            latency_ms: 0,
            token: None,
        };
        let pending = |ev: Event| Pending {
            event: ev,
            start: Instant::now(),
            bytes_in: Arc::new(AtomicU64::new(0)),
            bytes_out: 0,
            audit: self.audit.clone(),
        };
        // Host must equal the CONNECT host.
        let host_hdr = req
            .headers()
            .get(hyper::header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(with_port);
        if host_hdr.as_deref() != Some(host) {
            ev.reason = "Host header differs from the CONNECT host".into();
            ev.status = 421;
            drop(pending(ev));
            return text(
                StatusCode::MISDIRECTED_REQUEST,
                "ghapp proxy: Host differs from the CONNECT host\n",
            );
        }
        let api_path = (host == self.hosts.api)
            .then(|| path.strip_prefix(self.hosts.api_prefix.as_str()))
            .flatten()
            .filter(|p| self.hosts.api_prefix.is_empty() || p.is_empty() || p.starts_with('/'))
            .map(str::to_owned);
        if let Some(api_path) = api_path {
            ev.service = "rest".into();
            return self.rest(req, sb, &api_path, pending(ev)).await;
        }
        if host == self.hosts.git
            && let Some(route) = git_route(&path)
        {
            ev.service = route
                .service(req.uri().query().unwrap_or(""))
                .unwrap_or("git-upload-pack")
                .to_owned();
            return self.git(req, sb, route, pending(ev)).await;
        }
        ev.reason = "only git smart HTTP and the REST allow-list pass".into();
        ev.status = 403;
        drop(pending(ev));
        text(
            StatusCode::FORBIDDEN,
            &format!(
                "ghapp proxy: {path} is not a git smart-HTTP route; only clone, fetch and push pass\n"
            ),
        )
    }

    async fn token(&self, sb: &Sandbox, owner: &str) -> Result<CachedToken, Response<Body>> {
        self.broker
            .token(&sb.token_request(owner))
            .await
            .map_err(|e| {
                let (status, what) = match e {
                    ghapp_core::Error::Unreachable { .. } => {
                        (StatusCode::BAD_GATEWAY, "GitHub is unreachable")
                    }
                    _ => (StatusCode::SERVICE_UNAVAILABLE, "cannot mint a token"),
                };
                tracing::warn!("{what}: {e}");
                text(status, &format!("ghapp proxy: {what}: {e}\n"))
            })
    }

    async fn git(
        self: &Arc<Self>,
        req: Request<Incoming>,
        sb: &Sandbox,
        route: GitRoute,
        mut p: Pending,
    ) -> Response<Body> {
        let Some((owner, repo)) = sb.repo(&route.owner, &route.repo) else {
            p.event.reason = format!(
                "{}/{} is not in the sandbox's repositories",
                route.owner, route.repo
            );
            p.event.status = 403;
            return text(
                StatusCode::FORBIDDEN,
                &format!(
                    "ghapp proxy: {}/{} is not among sandbox {}'s repositories\n",
                    route.owner, route.repo, sb.cfg.name
                ),
            );
        };
        p.event.repo = Some(format!("{owner}/{repo}"));
        let token = match self.token(sb, &owner).await {
            Ok(t) => t,
            Err(r) => {
                p.event.reason = "token unavailable".into();
                p.event.status = r.status().as_u16();
                return r;
            }
        };
        p.event.token = Some(token.token.fingerprint());
        let auth = ghapp_gitproto::basic::encode("x-access-token", token.token.expose());
        let url = format!(
            "https://{}{}{}",
            self.hosts.git,
            req.uri().path(),
            req.uri()
                .query()
                .map(|q| format!("?{q}"))
                .unwrap_or_default()
        );
        let method = req.method().clone();
        let headers = forward_headers(req.headers());
        let is_push = method == Method::POST && route.endpoint == Endpoint::ReceivePack;
        let body: Option<reqwest::Body> = if method == Method::GET {
            None
        } else if is_push {
            match self.decide_push(req.into_body(), sb, &mut p).await {
                PushVerdict::Forward(b) => Some(b),
                PushVerdict::Answer(r) => return r,
            }
        } else {
            Some(counted_body(req.into_body(), p.bytes_in.clone()))
        };
        p.event.decision = "allow".into();
        self.forward(method, url, headers, auth, body, token.minted_at, p)
            .await
    }

    /// Reads a push's command section, decides, and either hands back the whole body to forward
    /// or the git-native refusal.
    async fn decide_push(&self, mut body: Incoming, sb: &Sandbox, p: &mut Pending) -> PushVerdict {
        let mut buf: Vec<u8> = Vec::new();
        let cmds = loop {
            match receive_pack::parse(&buf, COMMAND_SECTION_LIMIT) {
                Ok(Some(c)) => break Ok(c),
                Ok(None) => {}
                Err(e) => break Err(e),
            }
            match body.frame().await {
                Some(Ok(f)) => {
                    if let Ok(d) = f.into_data() {
                        buf.extend_from_slice(&d);
                    }
                }
                Some(Err(_)) | None => {
                    break Err(receive_pack::ParseError::BadCommand(
                        "the push request ended inside its command section".into(),
                    ));
                }
            }
        };
        let cmds = match cmds {
            Ok(c) => c,
            Err(e) => {
                p.event.reason = e.to_string();
                p.event.status = 400;
                return PushVerdict::Answer(text(
                    StatusCode::BAD_REQUEST,
                    &format!("ghapp proxy: {e}\n"),
                ));
            }
        };
        p.event.ref_updates = cmds
            .commands
            .iter()
            .map(|c| RefUpdate {
                old: c.old.clone(),
                new: c.new.clone(),
                refname: c.refname.clone(),
            })
            .collect();
        p.bytes_in.fetch_add(buf.len() as u64, Ordering::Relaxed);
        match sb.push.decide(&cmds) {
            Decision::Allow => {
                let rest = rest_stream_incoming(body, p.bytes_in.clone());
                let prefix = futures_util::stream::once(async move {
                    Ok::<Bytes, std::io::Error>(Bytes::from(buf))
                });
                let stream = coalesce(prefix.chain(rest));
                PushVerdict::Forward(reqwest::Body::wrap_stream(stream))
            }
            Decision::Deny(refused) => {
                // Drain (bounded) so git, still sending its pack, reads our answer.
                let deadline = Instant::now() + DRAIN_TIME;
                let mut drained = 0u64;
                while drained < DRAIN_LIMIT && Instant::now() < deadline {
                    match tokio::time::timeout(Duration::from_secs(5), body.frame()).await {
                        Ok(Some(Ok(f))) => {
                            drained += f.data_ref().map(|d| d.len() as u64).unwrap_or(0)
                        }
                        _ => break,
                    }
                }
                p.bytes_in.fetch_add(drained, Ordering::Relaxed);
                let reason = refused
                    .iter()
                    .map(|(r, why)| format!("{r}: {why}"))
                    .collect::<Vec<_>>()
                    .join("; ");
                p.event.reason = reason.clone();
                p.event.status = 200;
                let sideband =
                    cmds.has_capability("side-band-64k") || cmds.has_capability("side-band");
                let msg = format!(
                    "ghapp proxy: push refused by sandbox {} policy: {reason}",
                    sb.cfg.name
                );
                let body = receive_pack::reject_report(&refused, sideband, &msg);
                p.bytes_out = body.len() as u64;
                let mut r = Response::new(full(body));
                r.headers_mut().insert(
                    hyper::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/x-git-receive-pack-result"),
                );
                r.headers_mut().insert(
                    hyper::header::CACHE_CONTROL,
                    HeaderValue::from_static("no-cache"),
                );
                PushVerdict::Answer(r)
            }
        }
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "one call site per protocol; a struct would only rename the arguments"
    )]
    async fn forward(
        &self,
        method: Method,
        url: String,
        headers: HeaderMap,
        auth: String,
        body: Option<reqwest::Body>,
        minted_at: u64,
        mut p: Pending,
    ) -> Response<Body> {
        let retryable = body.is_none();
        let mut attempt = 0;
        let mut body = body;
        let resp = loop {
            attempt += 1;
            let mut rb = self
                .upstream
                .request(method.clone(), &url)
                .headers(headers.clone())
                .header(hyper::header::AUTHORIZATION, &auth);
            if let Some(b) = body.take() {
                rb = rb.body(b);
            }
            match rb.send().await {
                Ok(r) => {
                    let young = (ghapp_core::jwt::unix_now() as u64).saturating_sub(minted_at)
                        < FRESH_TOKEN;
                    if r.status() == StatusCode::UNAUTHORIZED && retryable && young && attempt == 1
                    {
                        // GitHub's replication lag: a brand-new token may 401 for a moment.
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                    break r;
                }
                Err(e) => {
                    let origin = url.split('/').take(3).collect::<Vec<_>>().join("/");
                    p.event.reason = format!("upstream {origin} unreachable");
                    p.event.status = 502;
                    return text(
                        StatusCode::BAD_GATEWAY,
                        &format!(
                            "ghapp proxy: upstream {origin} is unreachable: {}\n",
                            ghapp_core::client::root_cause(&e)
                        ),
                    );
                }
            }
        };
        let status = resp.status();
        p.event.upstream_status = Some(status.as_u16());
        p.event.status = status.as_u16();
        let mut out = Response::builder().status(status);
        for (k, v) in resp.headers() {
            if !is_hop_by_hop(k) && k != hyper::header::SET_COOKIE {
                out = out.header(k, v);
            }
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

    async fn rest(
        self: &Arc<Self>,
        req: Request<Incoming>,
        sb: &Sandbox,
        api_path: &str,
        mut p: Pending,
    ) -> Response<Body> {
        let method = req.method().clone();
        let deny = |p: &mut Pending, msg: String| {
            p.event.reason = msg.clone();
            p.event.status = 403;
            json_error(StatusCode::FORBIDDEN, &msg)
        };
        let Some((owner, repo, kind)) = rest_route(&method, api_path, &sb.cfg.rest) else {
            let msg = format!(
                "ghapp proxy: {method} {api_path} is not allowed for sandbox {} (policy: only the repository, pull request and comment routes for its repositories, plus its configured rest routes)",
                sb.cfg.name
            );
            return deny(&mut p, msg);
        };
        let Some((owner, repo)) = sb.repo(&owner, &repo) else {
            let msg = format!(
                "ghapp proxy: {owner}/{repo} is not among sandbox {}'s repositories",
                sb.cfg.name
            );
            return deny(&mut p, msg);
        };
        p.event.repo = Some(format!("{owner}/{repo}"));
        let url = format!(
            "https://{}{}{}{}",
            self.hosts.api,
            self.hosts.api_prefix,
            api_path,
            req.uri()
                .query()
                .map(|q| format!("?{q}"))
                .unwrap_or_default()
        );
        let headers = forward_headers(req.headers());
        let body = if method == Method::GET || method == Method::HEAD {
            None
        } else {
            let bytes = match http_body_util::Limited::new(req.into_body(), COMMAND_SECTION_LIMIT)
                .collect()
                .await
            {
                Ok(b) => b.to_bytes(),
                Err(_) => {
                    return deny(&mut p, "ghapp proxy: request body over 1 MiB".into());
                }
            };
            p.bytes_in.fetch_add(bytes.len() as u64, Ordering::Relaxed);
            if kind == RestKind::CreatePull
                && let Err(msg) = check_pull_head(&bytes, &owner, sb)
            {
                return deny(&mut p, msg);
            }
            Some(bytes)
        };
        let token = match self.token(sb, &owner).await {
            Ok(t) => t,
            Err(r) => {
                p.event.status = r.status().as_u16();
                return r;
            }
        };
        p.event.token = Some(token.token.fingerprint());
        p.event.decision = "allow".into();
        let auth = format!("Bearer {}", token.token.expose());
        self.forward(
            method,
            url,
            headers,
            auth,
            body.map(reqwest::Body::from),
            token.minted_at,
            p,
        )
        .await
    }
}

enum PushVerdict {
    Forward(reqwest::Body),
    Answer(Response<Body>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RestKind {
    Plain,
    CreatePull,
}

/// The fixed REST table: routes on the sandbox's repositories.
fn rest_route(
    method: &Method,
    path: &str,
    extra: &[(String, String)],
) -> Option<(String, String, RestKind)> {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let m = method.as_str();
    let kind = match (m, segs.as_slice()) {
        ("GET", ["repos", _, _]) => RestKind::Plain,
        ("GET", ["repos", _, _, "pulls"]) => RestKind::Plain,
        ("POST", ["repos", _, _, "pulls"]) => RestKind::CreatePull,
        ("GET" | "PATCH", ["repos", _, _, "pulls", n]) if n.parse::<u64>().is_ok() => {
            RestKind::Plain
        }
        ("GET" | "POST", ["repos", _, _, "issues", n, "comments"]) if n.parse::<u64>().is_ok() => {
            RestKind::Plain
        }
        ("GET" | "POST", ["repos", _, _, "pulls", n, "comments"]) if n.parse::<u64>().is_ok() => {
            RestKind::Plain
        }
        ("GET", ["repos", _, _, "branches", _]) => RestKind::Plain,
        _ => {
            let ok = extra.iter().any(|(em, ep)| {
                em == m && {
                    let es: Vec<&str> = ep.trim_start_matches('/').split('/').collect();
                    es.len() == segs.len()
                        && es
                            .iter()
                            .zip(&segs)
                            .all(|(e, s)| e.starts_with('{') || e == s)
                        && es.first() == Some(&"repos")
                }
            });
            if !ok {
                return None;
            }
            RestKind::Plain
        }
    };
    let (owner, repo) = (segs.get(1)?, segs.get(2)?);
    let valid = |s: &str| ghapp_gitproto::credential::valid_name(s);
    (valid(owner) && valid(repo)).then(|| (owner.to_string(), repo.to_string(), kind))
}

/// `POST .../pulls`: `head` must be a branch the sandbox may push, in the same repository.
fn check_pull_head(body: &[u8], owner: &str, sb: &Sandbox) -> Result<(), String> {
    let v: serde_json::Value = serde_json::from_slice(body)
        .map_err(|_| "ghapp proxy: the pull request body is not JSON".to_string())?;
    let head = v["head"].as_str().unwrap_or("");
    let branch = match head.split_once(':') {
        Some((o, b)) if o.eq_ignore_ascii_case(owner) => b,
        Some((o, _)) => {
            return Err(format!(
                "ghapp proxy: pull request head {head:?} is in {o}'s fork; sandbox {} may open pull requests only from its own branches",
                sb.cfg.name
            ));
        }
        None => head,
    };
    let refname = format!("refs/heads/{branch}");
    if branch.is_empty() || !sb.push.allows_ref(&refname) {
        return Err(format!(
            "ghapp proxy: pull request head {head:?} is not allowed for sandbox {} (policy: heads must match {})",
            sb.cfg.name,
            sb.push.patterns.join(", ")
        ));
    }
    Ok(())
}

use ghapp_gitproto::route::{Endpoint, GitRoute, parse as git_route};

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

/// The client's headers minus hop-by-hop ones, credentials and cookies, and Host.
fn forward_headers(h: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (k, v) in h {
        if is_hop_by_hop(k)
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

fn counted_body(body: Incoming, counter: Arc<AtomicU64>) -> reqwest::Body {
    reqwest::Body::wrap_stream(coalesce(rest_stream_incoming(body, counter)))
}

/// Joins the chunks that are already there into one (up to 64 of them), so a pack crosses the
/// upstream TLS connection in large records instead of one per small read; a chunk is never
/// held back waiting for more (git's small protocol messages pass at once).
fn coalesce(
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

fn rest_stream_incoming(
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

fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

fn text(status: StatusCode, s: &str) -> Response<Body> {
    let mut r = Response::new(full(s.as_bytes().to_vec()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn json_error(status: StatusCode, msg: &str) -> Response<Body> {
    let body = serde_json::json!({
        "message": msg,
        "documentation_url": "https://github.com/ghapp/ghapp/blob/main/docs/guides/sandbox.md",
    });
    let mut r = Response::new(full(body.to_string().into_bytes()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

fn full(v: Vec<u8>) -> Body {
    Full::new(Bytes::from(v))
        .map_err(|e: Infallible| match e {})
        .boxed()
}

fn empty() -> Body {
    Empty::new().map_err(|e: Infallible| match e {}).boxed()
}

/// A running proxy; dropping it stops it.
pub struct Running {
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }
    /// Blocks until the proxy stops (for `ghapp proxy`).
    pub fn wait(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        let h = hosts_of("https://api.github.com", "github.com");
        assert_eq!(h.git, "github.com:443");
        assert_eq!(h.api, "api.github.com:443");
        assert_eq!(h.api_prefix, "");
        let h = hosts_of("https://127.0.0.1:8443/api/v3", "127.0.0.1:8443");
        assert_eq!(h.git, "127.0.0.1:8443");
        assert_eq!(h.api, "127.0.0.1:8443");
        assert_eq!(h.api_prefix, "/api/v3");
    }

    #[test]
    fn routes() {
        assert!(git_route("/o/r.git/info/refs").is_some());
        assert!(git_route("/o/r/git-receive-pack").is_some());
        assert!(git_route("/o/../info/refs").is_none());
        assert!(git_route("/o/r/info/lfs").is_none());
        let extra = vec![(
            "GET".to_string(),
            "/repos/{owner}/{repo}/commits".to_string(),
        )];
        assert!(rest_route(&Method::GET, "/repos/o/r", &[]).is_some());
        assert_eq!(
            rest_route(&Method::POST, "/repos/o/r/pulls", &[])
                .unwrap()
                .2,
            RestKind::CreatePull
        );
        assert!(rest_route(&Method::DELETE, "/repos/o/r", &[]).is_none());
        assert!(rest_route(&Method::POST, "/graphql", &[]).is_none());
        assert!(rest_route(&Method::GET, "/repos/o/r/commits", &[]).is_none());
        assert!(rest_route(&Method::GET, "/repos/o/r/commits", &extra).is_some());
        assert!(rest_route(&Method::GET, "/repos/o/../pulls", &[]).is_none());
    }

    #[test]
    fn secret_debug_and_compare() {
        let s = ProxySecret::new("correct horse battery");
        assert_eq!(format!("{s:?}"), "ProxySecret(****)");
        assert!(s.matches("correct horse battery"));
        assert!(!s.matches("correct horse battery!"));
        assert!(!s.matches("wrong"));
    }
}
