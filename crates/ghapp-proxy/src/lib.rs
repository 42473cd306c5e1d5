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
pub mod egress;
pub mod limits;

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use ghapp_core::broker::{Broker, TokenRequest, default_permissions};
use ghapp_core::cache::CachedToken;
use ghapp_gitproto::policy::{Decision, PushPolicy};
use ghapp_gitproto::receive_pack;
use ghapp_gitproto::rest::{self, RestKind, RouteError};
use http_body_util::{BodyExt, Empty, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};

use crate::audit::{Audit, Event, Pending, RefUpdate};
use crate::ca::Ca;
use crate::config::{Egress, ProxyConfig, SandboxConfig};
use crate::limits::{Conn, Gate, Reservation};

pub type Body = BoxBody<Bytes, std::io::Error>;

/// The largest receive-pack command section read before deciding.
pub const COMMAND_SECTION_LIMIT: usize = 1 << 20;
/// How much of a refused push is drained before answering (so git reads the answer).
const DRAIN_LIMIT: u64 = 1 << 30;
const DRAIN_TIME: Duration = Duration::from_secs(60);
/// A token younger than this may 401 while GitHub replicates it: retry once.
const FRESH_TOKEN: u64 = 10;
/// The largest REST body the proxy reads to check it.
const REST_BODY_LIMIT: usize = 1 << 20;
/// Seconds a sandbox is told to wait when no token can be minted.
const MINT_RETRY_AFTER: &str = "10";
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

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

/// Who is asking: the sandbox, the client's address, the host it tunnelled to.
#[derive(Clone)]
struct Origin {
    sandbox: Arc<Sandbox>,
    source: IpAddr,
    host: String,
}

/// How the token travels upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
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
struct Upstream {
    method: Method,
    url: reqwest::Url,
    headers: HeaderMap,
    body: Option<reqwest::Body>,
    scheme: Scheme,
    owner: String,
}

/// What a proxy credential check found.
enum Login {
    Missing,
    /// Wrong name or secret: the name tried (shortened), for the audit.
    Wrong(String),
    Ok(Arc<Sandbox>),
}

pub struct Proxy {
    cfg: ProxyConfig,
    sandboxes: Vec<Arc<Sandbox>>,
    broker: Broker,
    ca: Ca,
    upstream: reqwest::Client,
    audit: Arc<Audit>,
    hosts: Hosts,
    gate: Arc<Gate>,
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
        let audit = Audit::open(cfg.audit_log.as_deref(), cfg.audit_max_bytes)
            .map_err(|e| format!("cannot open the audit log: {e}"))?;
        let sandboxes = cfg
            .sandboxes
            .iter()
            .map(|s| {
                Arc::new(Sandbox {
                    push: PushPolicy::new(s.push.iter().cloned(), s.allow_delete),
                    cfg: s.clone(),
                })
            })
            .collect();
        Ok(Proxy {
            gate: Arc::new(Gate::new(cfg.limits.clone())),
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
        let mut me = self;
        // The proxy's own listeners are never a tunnel's destination.
        me.cfg.listen = addr;
        me.cfg.metrics_listen = metrics_addr;
        let me = Arc::new(me);
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
                    let timeout = me.gate.limits.header_timeout;
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
                            .timer(TokioTimer::new())
                            .header_read_timeout(timeout)
                            .serve_connection(TokioIo::new(s), svc)
                            .await;
                    });
                }
            });
        }
        if let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        {
            let audit = self.audit.clone();
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    match audit.reopen() {
                        Ok(()) => tracing::info!("SIGHUP: the audit log was reopened"),
                        Err(e) => tracing::error!("SIGHUP: cannot reopen the audit log: {e}"),
                    }
                }
            });
        }
        let mut backoff = ACCEPT_BACKOFF_MIN;
        loop {
            let (stream, peer) = tokio::select! {
                _ = &mut shutdown => return,
                r = listener.accept() => match r {
                    Ok(s) => {
                        backoff = ACCEPT_BACKOFF_MIN;
                        s
                    }
                    Err(e) => {
                        // Out of file descriptors (EMFILE) and the like: wait for some to be
                        // given back instead of spinning a core on the same error.
                        self.audit.count("ghapp_proxy_accept_errors_total");
                        if backoff == ACCEPT_BACKOFF_MIN {
                            tracing::warn!("cannot accept connections: {e}; backing off");
                        }
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                        continue;
                    }
                },
            };
            let conn = match self.gate.admit(peer.ip()) {
                Ok(c) => Arc::new(c),
                Err(why) => {
                    self.audit.count(&format!(
                        "ghapp_proxy_connections_refused_total{{limit=\"{}\"}}",
                        why.metric()
                    ));
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let me = self.clone();
            tokio::spawn(async move {
                let io = conn.watch(stream, &me.gate.limits);
                let timeout = me.gate.limits.header_timeout;
                let svc =
                    hyper::service::service_fn(move |req| me.clone().front(req, conn.clone()));
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(timeout)
                    .serve_connection(TokioIo::new(io), svc)
                    .with_upgrades()
                    .await;
            });
        }
    }

    fn login(&self, req: &Request<Incoming>) -> Login {
        let Some(v) = req.headers().get(hyper::header::PROXY_AUTHORIZATION) else {
            return Login::Missing;
        };
        let Some((name, secret)) = v.to_str().ok().and_then(ghapp_gitproto::basic::parse) else {
            return Login::Wrong(String::new());
        };
        // Every sandbox's secret is compared, so the time taken does not tell which exist.
        let mut found = None;
        for sb in &self.sandboxes {
            let ok = sb.cfg.name == name;
            if sb.cfg.secret.matches(&secret) && ok {
                found = Some(sb.clone());
            }
        }
        match found {
            Some(sb) => Login::Ok(sb),
            None => Login::Wrong(name.chars().filter(|c| !c.is_control()).take(64).collect()),
        }
    }

    fn event(&self, o: Option<&Origin>, method: &str, host: &str, path: &str) -> Event {
        Event {
            ts: now_rfc3339(),
            sandbox: o.map(|o| o.sandbox.cfg.name.clone()).unwrap_or_default(),
            source: o.map(|o| o.source.to_string()),
            method: method.to_owned(),
            host: host.to_owned(),
            path: path.to_owned(),
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
        }
    }

    /// Records a `CONNECT` that was refused.
    fn refuse_connect(&self, mut ev: Event, status: StatusCode, reason: String) -> Response<Body> {
        ev.service = "connect".into();
        ev.status = status.as_u16();
        ev.reason = reason.clone();
        self.audit.record(&ev);
        text(status, &format!("ghapp proxy: {reason}\n"))
    }

    /// The proxy's own listener: CONNECT, and `GET /ca.pem`.
    async fn front(
        self: Arc<Self>,
        mut req: Request<Incoming>,
        conn: Arc<Conn>,
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
        let host = with_port(&authority);
        if self.gate.login_blocked(conn.source) {
            self.audit
                .count("ghapp_proxy_auth_failures_total{kind=\"rate_limited\"}");
            let mut r = text(
                StatusCode::TOO_MANY_REQUESTS,
                "ghapp proxy: too many wrong proxy credentials from this address; wait a minute\n",
            );
            r.headers_mut()
                .insert(hyper::header::RETRY_AFTER, HeaderValue::from_static("60"));
            return Ok(r);
        }
        let sandbox = match self.login(&req) {
            Login::Ok(sb) => sb,
            failed => {
                let kind = if let Login::Wrong(tried) = failed {
                    // A wrong secret is audited (never the secret) and counted against the
                    // source; no credentials at all is how git opens a tunnel, so it is not.
                    self.gate.login_failed(conn.source);
                    let mut ev = self.event(None, "CONNECT", &host, "");
                    ev.sandbox = tried;
                    ev.source = Some(conn.source.to_string());
                    ev.service = "connect".into();
                    ev.status = 407;
                    ev.reason = "wrong proxy credentials".into();
                    self.audit.record(&ev);
                    "wrong"
                } else {
                    "missing"
                };
                self.audit.count(&format!(
                    "ghapp_proxy_auth_failures_total{{kind=\"{kind}\"}}"
                ));
                let mut r = text(
                    StatusCode::PROXY_AUTHENTICATION_REQUIRED,
                    "ghapp proxy: proxy credentials required (HTTPS_PROXY=http://NAME:SECRET@host:port)\n",
                );
                r.headers_mut().insert(
                    hyper::header::PROXY_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"ghapp proxy\""),
                );
                return Ok(r);
            }
        };
        let origin = Origin {
            sandbox,
            source: conn.source,
            host: host.clone(),
        };
        let ev = self.event(Some(&origin), "CONNECT", &host, "");
        let intercept = host == self.hosts.git || host == self.hosts.api;
        let mut target = None;
        if !intercept {
            if self.cfg.egress == Egress::Deny {
                return Ok(self.refuse_connect(
                    ev,
                    StatusCode::FORBIDDEN,
                    format!("{host} is not a GitHub host and egress is denied"),
                ));
            }
            match self.egress_target(&host).await {
                Ok(a) => target = Some(a),
                Err(why) => {
                    return Ok(self.refuse_connect(
                        ev,
                        StatusCode::FORBIDDEN,
                        format!("egress to {host} is refused: {why}"),
                    ));
                }
            }
        }
        let Some(slot) = self.gate.tunnel(&origin.sandbox.cfg.name) else {
            return Ok(self.refuse_connect(
                ev,
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "sandbox {} has {} tunnels open (max_tunnels_per_sandbox)",
                    origin.sandbox.cfg.name, self.gate.limits.max_tunnels_per_sandbox
                ),
            ));
        };
        conn.authenticated();
        let upgrade = hyper::upgrade::on(&mut req);
        let me = self.clone();
        tokio::spawn(async move {
            // The connection's slots are held as long as its tunnel is open.
            let _conn = conn;
            let _slot = slot;
            let Ok(upgraded) = upgrade.await else { return };
            let io = TokioIo::new(upgraded);
            match target {
                None => me.intercept(io, origin).await,
                Some(addr) => me.tunnel(io, origin, addr).await,
            }
        });
        Ok(Response::new(empty()))
    }

    /// The address a tunnel to `host` connects to: resolved once, checked, and used as is.
    async fn egress_target(&self, host: &str) -> Result<SocketAddr, String> {
        let addrs: Vec<SocketAddr> = tokio::time::timeout(
            self.gate.limits.header_timeout,
            tokio::net::lookup_host(host),
        )
        .await
        .map_err(|_| "the name did not resolve in time".to_string())?
        .map_err(|e| format!("cannot resolve it: {e}"))?
        .collect();
        let own: Vec<SocketAddr> = std::iter::once(self.cfg.listen)
            .chain(self.cfg.metrics_listen)
            .collect();
        let mut why = "it resolves to no address".to_string();
        for a in addrs {
            match egress::check(a, &self.cfg.egress_allow, &own) {
                Ok(()) => return Ok(a),
                Err(e) => why = e,
            }
        }
        Err(why)
    }

    async fn tunnel(
        self: Arc<Self>,
        mut io: TokioIo<hyper::upgrade::Upgraded>,
        origin: Origin,
        addr: SocketAddr,
    ) {
        let start = Instant::now();
        let mut ev = self.event(Some(&origin), "CONNECT", &origin.host, "");
        ev.service = "connect".into();
        let connect = tokio::time::timeout(
            Duration::from_secs(10),
            tokio::net::TcpStream::connect(addr),
        )
        .await;
        let Ok(Ok(mut tcp)) = connect else {
            ev.reason = format!("cannot connect to {addr}");
            ev.status = 502;
            self.audit.record(&ev);
            return;
        };
        let (a, b) = tokio::io::copy_bidirectional(&mut io, &mut tcp)
            .await
            .unwrap_or((0, 0));
        ev.decision = "allow".into();
        ev.reason = format!("egress = tunnel to {addr}");
        ev.bytes_in = a;
        ev.bytes_out = b;
        ev.status = 200;
        ev.latency_ms = start.elapsed().as_millis() as u64;
        self.audit.record(&ev);
    }

    async fn intercept(self: Arc<Self>, io: TokioIo<hyper::upgrade::Upgraded>, origin: Origin) {
        let Ok(cfg) = self.ca.server_config(&origin.host) else {
            return;
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
        let limit = self.gate.limits.header_timeout;
        let Ok(Ok(tls)) = tokio::time::timeout(limit, acceptor.accept(io)).await else {
            return;
        };
        // SNI, when sent (it is not for IP addresses), must name the CONNECT host.
        if let Some(sni) = tls.get_ref().1.server_name() {
            let h = origin
                .host
                .rsplit_once(':')
                .map(|x| x.0)
                .unwrap_or(&origin.host);
            if !sni.eq_ignore_ascii_case(h) {
                return;
            }
        }
        let me = self.clone();
        let svc = hyper::service::service_fn(move |req| {
            let me = me.clone();
            let origin = origin.clone();
            async move { Ok::<_, Infallible>(me.inner(req, &origin).await) }
        });
        // No request-head timeout inside a tunnel: hyper's would also close a tunnel idle
        // between requests. The socket's idle timeout bounds it, and the sandbox's tunnel cap
        // bounds what a slow sandbox can hold.
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(tls), svc)
            .await;
    }

    fn pending(&self, ev: Event) -> Pending {
        Pending {
            event: ev,
            start: Instant::now(),
            bytes_in: Arc::new(AtomicU64::new(0)),
            bytes_out: 0,
            audit: self.audit.clone(),
        }
    }

    /// A request inside an intercepted tunnel.
    async fn inner(self: &Arc<Self>, req: Request<Incoming>, o: &Origin) -> Response<Body> {
        let path = req.uri().path().to_owned();
        let mut p = self.pending(self.event(Some(o), req.method().as_str(), &o.host, &path));
        // Host must equal the CONNECT host.
        let host_hdr = req
            .headers()
            .get(hyper::header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(with_port);
        if host_hdr.as_deref() != Some(o.host.as_str()) {
            p.event.reason = "Host header differs from the CONNECT host".into();
            p.event.status = 421;
            return text(
                StatusCode::MISDIRECTED_REQUEST,
                "ghapp proxy: Host differs from the CONNECT host\n",
            );
        }
        let api_path = (o.host == self.hosts.api)
            .then(|| path.strip_prefix(self.hosts.api_prefix.as_str()))
            .flatten()
            .filter(|p| self.hosts.api_prefix.is_empty() || p.is_empty() || p.starts_with('/'))
            .map(str::to_owned);
        if let Some(api_path) = api_path {
            p.event.service = "rest".into();
            return self.rest(req, o, &api_path, p).await;
        }
        if o.host == self.hosts.git
            && let Some(route) = git_route(&path)
        {
            p.event.service = route
                .service(req.uri().query().unwrap_or(""))
                .unwrap_or("git")
                .to_owned();
            return self.git(req, o, route, p).await;
        }
        p.event.reason = "only git smart HTTP and the REST allow-list pass".into();
        p.event.status = 403;
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
                let mut r = text(status, &format!("ghapp proxy: {what}: {e}\n"));
                // Nothing the sandbox did: it may try again, and the proxy will mint again.
                r.headers_mut().insert(
                    hyper::header::RETRY_AFTER,
                    HeaderValue::from_static(MINT_RETRY_AFTER),
                );
                r
            })
    }

    /// Drops a token GitHub no longer accepts (revoked by an admin, by secret scanning, by
    /// `ghapp revoke`) from memory and disk, so no sandbox is handed it again.
    fn forget_token(&self, sb: &Sandbox, owner: &str, token: &CachedToken) {
        let req = sb.token_request(owner);
        let forget = || self.broker.forget(&req, token.token.expose());
        match tokio::task::block_in_place(forget) {
            Ok(_) => tracing::warn!(
                "GitHub refused token {} (revoked?); it is dropped and the next request mints",
                token.token.fingerprint()
            ),
            Err(e) => tracing::warn!("cannot drop a refused token from the cache: {e}"),
        }
        self.audit.count("ghapp_proxy_tokens_dropped_total");
    }

    async fn git(
        self: &Arc<Self>,
        req: Request<Incoming>,
        o: &Origin,
        route: GitRoute,
        mut p: Pending,
    ) -> Response<Body> {
        let sb = &o.sandbox;
        let method = req.method().clone();
        if !route.method_allowed(method.as_str()) {
            p.event.reason = format!(
                "{method} is not a git smart-HTTP method for {}",
                route.upstream_path()
            );
            p.event.status = 405;
            return text(
                StatusCode::METHOD_NOT_ALLOWED,
                &format!(
                    "ghapp proxy: {method} is refused: git's smart HTTP uses only GET info/refs, POST git-upload-pack and POST git-receive-pack\n"
                ),
            );
        }
        let query = match route.endpoint {
            Endpoint::InfoRefs => match route.service(req.uri().query().unwrap_or("")) {
                Some(s) => format!("?service={s}"),
                None => {
                    p.event.reason = "info/refs without a smart-HTTP service".into();
                    p.event.status = 403;
                    return text(
                        StatusCode::FORBIDDEN,
                        "ghapp proxy: only git's smart HTTP passes (info/refs?service=git-upload-pack or git-receive-pack)\n",
                    );
                }
            },
            _ => String::new(),
        };
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
        let url = match upstream_url(&self.hosts.git, &route.upstream_path(), &query) {
            Ok(u) => u,
            Err(r) => return refuse(&mut p, r),
        };
        let headers = forward_headers(req.headers());
        let is_push = route.endpoint == Endpoint::ReceivePack;
        let body: Option<reqwest::Body> = if method == Method::GET {
            None
        } else if is_push {
            match self.decide_push(req, sb, &mut p).await {
                PushVerdict::Forward(b) => Some(b),
                PushVerdict::Answer(r) => return r,
            }
        } else {
            Some(counted_body(req.into_body(), p.bytes_in.clone()))
        };
        let token = match self.token(sb, &owner).await {
            Ok(t) => t,
            Err(r) => {
                p.event.reason = "token unavailable".into();
                p.event.status = r.status().as_u16();
                return r;
            }
        };
        p.event.decision = "allow".into();
        let up = Upstream {
            method,
            url,
            headers,
            body,
            scheme: Scheme::Basic,
            owner,
        };
        self.forward(up, o, token, p).await
    }

    /// Reads a push's command section, decides, and either hands back the whole body to forward
    /// or the git-native refusal. Every read has a deadline and the bytes held count against
    /// the proxy's buffer budget.
    async fn decide_push(
        &self,
        req: Request<Incoming>,
        sb: &Sandbox,
        p: &mut Pending,
    ) -> PushVerdict {
        if let Some(enc) = content_encoding(req.headers()) {
            p.event.reason = format!("push body in Content-Encoding {enc}");
            p.event.status = 415;
            return PushVerdict::Answer(text(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                &format!(
                    "ghapp proxy: a push body with Content-Encoding {enc} cannot be inspected; send it unencoded\n"
                ),
            ));
        }
        let mut body = req.into_body();
        let limits = &self.gate.limits;
        let deadline = tokio::time::Instant::now() + limits.body_timeout;
        let mut parser = receive_pack::Parser::new(COMMAND_SECTION_LIMIT);
        let mut held = Reservation::new(self.gate.budget.clone());
        let mut buf: Vec<u8> = Vec::new();
        let cmds = loop {
            match parser.feed(&buf) {
                Ok(Some(c)) => break Ok(c),
                Ok(None) => {}
                Err(e) => break Err((StatusCode::BAD_REQUEST, e.to_string())),
            }
            match tokio::time::timeout_at(deadline, body.frame()).await {
                Err(_) => {
                    break Err((
                        StatusCode::REQUEST_TIMEOUT,
                        format!(
                            "the push sent no complete command section within {} (body_timeout)",
                            humantime::format_duration(limits.body_timeout)
                        ),
                    ));
                }
                Ok(Some(Ok(f))) => {
                    if let Ok(d) = f.into_data() {
                        if !held.grow(d.len()) {
                            self.audit
                                .count("ghapp_proxy_buffer_budget_exhausted_total");
                            break Err((
                                StatusCode::SERVICE_UNAVAILABLE,
                                "the proxy holds too many partial pushes (max_buffered_bytes); try again".into(),
                            ));
                        }
                        buf.extend_from_slice(&d);
                    }
                }
                Ok(Some(Err(_)) | None) => {
                    break Err((
                        StatusCode::BAD_REQUEST,
                        "the push request ended inside its command section".into(),
                    ));
                }
            }
        };
        let cmds = match cmds {
            Ok(c) => c,
            Err((status, why)) => {
                p.event.reason = why.clone();
                p.event.status = status.as_u16();
                let mut r = text(status, &format!("ghapp proxy: {why}\n"));
                if status == StatusCode::SERVICE_UNAVAILABLE {
                    r.headers_mut()
                        .insert(hyper::header::RETRY_AFTER, HeaderValue::from_static("5"));
                }
                return PushVerdict::Answer(r);
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
                drop(held);
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

    /// Sends `up` with `token`. A 401 from GitHub: a token younger than a few seconds may not
    /// have replicated yet (wait and retry once); an older one was revoked (drop it, mint a new
    /// one, retry once). Only bodiless requests are retried: a streamed body cannot be replayed.
    async fn forward(
        &self,
        up: Upstream,
        o: &Origin,
        mut token: CachedToken,
        mut p: Pending,
    ) -> Response<Body> {
        let retryable = up.body.is_none();
        let mut body = up.body;
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
            match rb.send().await {
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
                        Err(r) => {
                            p.event.status = r.status().as_u16();
                            p.event.reason = "token unavailable".into();
                            return r;
                        }
                    };
                }
                Ok(r) => break r,
                Err(e) => {
                    let origin = up.url.origin().ascii_serialization();
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
        o: &Origin,
        api_path: &str,
        mut p: Pending,
    ) -> Response<Body> {
        let sb = &o.sandbox;
        let method = req.method().clone();
        let deny = |p: &mut Pending, status: StatusCode, msg: String| {
            p.event.reason = msg.clone();
            p.event.status = status.as_u16();
            json_error(status, &msg)
        };
        let route = match rest::route(method.as_str(), api_path, &sb.cfg.rest) {
            Ok(r) => r,
            Err(RouteError::NotAllowed) => {
                let msg = format!(
                    "ghapp proxy: {method} {api_path} is not allowed for sandbox {} (policy: only the repository, pull request and comment routes for its repositories, plus its configured rest routes)",
                    sb.cfg.name
                );
                return deny(&mut p, StatusCode::FORBIDDEN, msg);
            }
            Err(RouteError::Path(e)) => {
                let msg = format!(
                    "ghapp proxy: {method} {api_path} is refused for sandbox {}: {e}",
                    sb.cfg.name
                );
                return deny(&mut p, StatusCode::FORBIDDEN, msg);
            }
        };
        let Some((owner, repo)) = sb.repo(&route.owner, &route.repo) else {
            let msg = format!(
                "ghapp proxy: {}/{} is not among sandbox {}'s repositories",
                route.owner, route.repo, sb.cfg.name
            );
            return deny(&mut p, StatusCode::FORBIDDEN, msg);
        };
        p.event.repo = Some(format!("{owner}/{repo}"));
        // The body of a checked request is what was checked: no query rides along with it.
        let query = match (route.kind, req.uri().query()) {
            (RestKind::Plain, Some(q)) => format!("?{q}"),
            _ => String::new(),
        };
        let path = format!("{}{}", self.hosts.api_prefix, route.path);
        let url = match upstream_url(&self.hosts.api, &path, &query) {
            Ok(u) => u,
            Err(r) => return refuse(&mut p, r),
        };
        let headers = forward_headers(req.headers());
        let body = if method == Method::GET || method == Method::HEAD {
            None
        } else {
            if let Some(enc) = content_encoding(req.headers()) {
                let msg = format!(
                    "ghapp proxy: a request body with Content-Encoding {enc} cannot be checked; send it unencoded"
                );
                return deny(&mut p, StatusCode::UNSUPPORTED_MEDIA_TYPE, msg);
            }
            let declared = req
                .headers()
                .get(hyper::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
                .unwrap_or(REST_BODY_LIMIT)
                .min(REST_BODY_LIMIT);
            let mut held = Reservation::new(self.gate.budget.clone());
            if !held.grow(declared) {
                let msg = "ghapp proxy: the proxy holds too many request bodies (max_buffered_bytes); try again".to_string();
                return deny(&mut p, StatusCode::SERVICE_UNAVAILABLE, msg);
            }
            let collect = http_body_util::Limited::new(req.into_body(), declared).collect();
            let bytes = match tokio::time::timeout(self.gate.limits.body_timeout, collect).await {
                Ok(Ok(b)) => b.to_bytes(),
                Ok(Err(_)) => {
                    let msg = format!(
                        "ghapp proxy: request body over {} bytes, or broken",
                        declared
                    );
                    return deny(&mut p, StatusCode::PAYLOAD_TOO_LARGE, msg);
                }
                Err(_) => {
                    let msg = format!(
                        "ghapp proxy: the request body did not arrive within {} (body_timeout)",
                        humantime::format_duration(self.gate.limits.body_timeout)
                    );
                    return deny(&mut p, StatusCode::REQUEST_TIMEOUT, msg);
                }
            };
            p.bytes_in.fetch_add(bytes.len() as u64, Ordering::Relaxed);
            if route.kind == RestKind::CreatePull
                && let Err(msg) = check_pull_head(&bytes, &owner, &repo, sb)
            {
                return deny(&mut p, StatusCode::FORBIDDEN, msg);
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
        p.event.decision = "allow".into();
        let up = Upstream {
            method,
            url,
            headers,
            body: body.map(reqwest::Body::from),
            scheme: Scheme::Bearer,
            owner,
        };
        self.forward(up, o, token, p).await
    }
}

/// The upstream URL for `origin` (`host:port`) and an already normalised `path`, checked to
/// be exactly that path once parsed: the URL parser must not resolve anything the policy did
/// not see.
fn upstream_url(origin: &str, path: &str, query: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(&format!("https://{origin}{path}{query}"))
        .map_err(|e| format!("the upstream URL for {path} does not parse: {e}"))?;
    if url.path() != path {
        return Err(format!(
            "the upstream URL would reach {} instead of {path}",
            url.path()
        ));
    }
    Ok(url)
}

fn refuse(p: &mut Pending, why: String) -> Response<Body> {
    p.event.reason = why.clone();
    p.event.status = 400;
    text(StatusCode::BAD_REQUEST, &format!("ghapp proxy: {why}\n"))
}

/// The request's Content-Encoding, unless there is none or it is `identity`.
fn content_encoding(h: &HeaderMap) -> Option<String> {
    let v: Vec<String> = h
        .get_all(hyper::header::CONTENT_ENCODING)
        .iter()
        .map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .trim()
                .to_ascii_lowercase()
        })
        .filter(|v| !v.is_empty() && v != "identity")
        .collect();
    (!v.is_empty()).then(|| v.join(", "))
}

enum PushVerdict {
    Forward(reqwest::Body),
    Answer(Response<Body>),
}

/// The fields of `POST .../pulls` the policy reads. Declared fields are refused when given
/// twice (`{"head":"agent/x","head":"main"}` cannot pass one and send the other).
#[derive(serde::Deserialize)]
struct PullBody {
    #[serde(default)]
    head: Option<String>,
    #[serde(default)]
    head_repo: Option<String>,
}

/// `POST .../pulls`: `head` must be a branch the sandbox may push, in the same repository.
fn check_pull_head(body: &[u8], owner: &str, repo: &str, sb: &Sandbox) -> Result<(), String> {
    let v: PullBody = serde_json::from_slice(body).map_err(|e| {
        format!("ghapp proxy: the pull request body is not the JSON GitHub expects: {e}")
    })?;
    let head = v.head.unwrap_or_default();
    if let Some(hr) = v.head_repo.as_deref()
        && !hr.eq_ignore_ascii_case(repo)
        && !hr.eq_ignore_ascii_case(&format!("{owner}/{repo}"))
    {
        return Err(format!(
            "ghapp proxy: pull request head_repo {hr:?} is another repository; sandbox {} may open pull requests only from its own branches",
            sb.cfg.name
        ));
    }
    let branch = match head.split_once(':') {
        Some((o, b)) if o.eq_ignore_ascii_case(owner) => b,
        Some((o, _)) => {
            return Err(format!(
                "ghapp proxy: pull request head {head:?} is in {o}'s fork; sandbox {} may open pull requests only from its own branches",
                sb.cfg.name
            ));
        }
        None => head.as_str(),
    };
    let refname = format!("refs/heads/{branch}");
    if branch.is_empty() || !receive_pack::valid_refname(&refname) || !sb.push.allows_ref(&refname)
    {
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
    fn git_routes() {
        assert!(git_route("/o/r.git/info/refs").is_some());
        assert!(git_route("/o/r/git-receive-pack").is_some());
        assert!(git_route("/o/../info/refs").is_none());
        assert!(git_route("/o/r/info/lfs").is_none());
    }

    #[test]
    fn upstream_urls_are_what_was_decided() {
        let u = upstream_url("h:443", "/api/v3/repos/o/r/pulls", "").unwrap();
        assert_eq!(u.as_str(), "https://h/api/v3/repos/o/r/pulls");
        for bad in ["/repos/o/r/../x", "/repos/o/r/%2e%2e/x", "/repos/o\\r"] {
            assert!(upstream_url("h:443", bad, "").is_err(), "{bad}");
        }
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
