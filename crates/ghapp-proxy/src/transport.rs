//! The listener side: accepting connections under the [`crate::limits`], `CONNECT` with the
//! sandbox's proxy credentials, TLS for the intercepted hosts (a leaf from the proxy's CA),
//! plain tunnels for the others (`egress`), and `GET /ca.pem`. It knows nothing of git: each
//! request inside an intercepted tunnel goes to [`Proxy::handle`] with its [`Origin`].

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};

use crate::audit::{Decision, Event, Service};
use crate::config::Egress;
use crate::limits::Conn;
use crate::respond::{Refusal, empty, text};
use crate::router::{host_of, with_port};
use crate::sandbox::{Login, Sandbox, login};
use crate::{Body, Proxy, egress};

const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// How often each replica looks for changes in the state store.
const STORE_POLL: Duration = Duration::from_secs(1);

/// Who is asking: the sandbox, the client's address, the host it tunnelled to.
#[derive(Clone)]
pub(crate) struct Origin {
    pub sandbox: Arc<Sandbox>,
    pub source: IpAddr,
    /// `host:port` of the `CONNECT`.
    pub host: String,
}

impl Origin {
    pub(crate) fn event(&self, method: &str, path: &str) -> Event {
        Event::new(
            self.sandbox.name(),
            Some(self.source.to_string()),
            method,
            &self.host,
            path,
        )
    }
}

impl Proxy {
    pub(crate) async fn serve(
        self: Arc<Self>,
        listener: std::net::TcpListener,
        metrics: Option<std::net::TcpListener>,
        admin: Option<std::net::TcpListener>,
        mut shutdown: tokio::sync::oneshot::Receiver<()>,
    ) {
        let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
            return;
        };
        if let Some(m) = metrics.and_then(|m| tokio::net::TcpListener::from_std(m).ok()) {
            tokio::spawn(self.clone().serve_side(m, Proxy::metrics_endpoint));
        }
        if let Some(a) = admin.and_then(|a| tokio::net::TcpListener::from_std(a).ok()) {
            tokio::spawn(self.clone().serve_side(a, Proxy::admin));
        }
        if let Some(store) = self.store.get().cloned() {
            // Changes made through another replica (or this one): reloaded within a second.
            let me = self.clone();
            tokio::spawn(async move {
                let mut seen = store.generation().await.ok();
                loop {
                    tokio::time::sleep(STORE_POLL).await;
                    let now = store.generation().await.ok();
                    if now.is_some() && now != seen {
                        seen = now;
                        me.sync_store().await;
                        // Webhook deliveries another replica received.
                        let since = ghapp_core::jwt::unix_now() - 600;
                        for (id, summary) in store.deliveries_since(since).await.unwrap_or_default()
                        {
                            if me.applied(&id) {
                                me.apply_event(&summary).await;
                            }
                        }
                    }
                }
            });
        }
        if let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        {
            let audit = self.audit.clone();
            let me = self.clone();
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    match audit.reopen() {
                        Ok(()) => tracing::info!("SIGHUP: the audit log was reopened"),
                        Err(e) => tracing::error!("SIGHUP: cannot reopen the audit log: {e}"),
                    }
                    // Reading the file and the secrets it names blocks: off the runtime.
                    let me = me.clone();
                    let _ = tokio::task::spawn_blocking(move || me.reload()).await;
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
                        self.audit.metrics.accept_errors.inc();
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
                    self.audit.metrics.connection_refused(why.metric());
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

    /// Serves HTTP/1.1 on one of the proxy's side listeners (metrics, admin API, webhooks):
    /// each request to `handle`, the request head within `header_timeout`.
    pub(crate) async fn serve_side<F, Fut>(
        self: Arc<Self>,
        listener: tokio::net::TcpListener,
        handle: F,
    ) where
        F: Fn(Arc<Proxy>, Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Response<Body>> + Send + 'static,
    {
        while let Ok((s, _)) = listener.accept().await {
            let me = self.clone();
            let timeout = me.gate.limits.header_timeout;
            let handle = handle.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let fut = handle(me.clone(), req);
                    async move { Ok::<_, Infallible>(fut.await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(timeout)
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    }

    /// The metrics listener: `/metrics`, and health for orchestrators.
    async fn metrics_endpoint(self: Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        match req.uri().path() {
            "/metrics" => text(StatusCode::OK, &self.audit.metrics_text()),
            // Liveness: the runtime answers.
            "/healthz" => text(StatusCode::OK, "ok\n"),
            // Readiness: the state store answers too.
            "/readyz" => match self.store.get() {
                Some(store) => match store.generation().await {
                    Ok(_) => text(StatusCode::OK, "ready\n"),
                    Err(e) => text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        &format!("not ready: {e}\n"),
                    ),
                },
                None => text(StatusCode::OK, "ready\n"),
            },
            _ => text(
                StatusCode::NOT_FOUND,
                "metrics are at /metrics, health at /healthz and /readyz\n",
            ),
        }
    }

    /// Records a `CONNECT` that was refused, and answers it.
    fn refuse_connect(&self, mut ev: Event, r: Refusal) -> Response<Body> {
        ev.service = Service::Connect;
        ev.status = r.status.as_u16();
        ev.reason = r.message.clone();
        self.audit.record(&ev);
        r.response()
    }

    /// The proxy's own listener: `CONNECT`, and `GET /ca.pem`.
    async fn front(
        self: Arc<Self>,
        mut req: Request<Incoming>,
        conn: Arc<Conn>,
    ) -> Result<Response<Body>, Infallible> {
        if req.method() != Method::CONNECT {
            return Ok(self.own_endpoint(&req, &conn));
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
        let sandbox = match self.authenticate(&req, &conn, &host) {
            Ok(sb) => sb,
            Err(r) => return Ok(r.response()),
        };
        let origin = Origin {
            sandbox,
            source: conn.source,
            host,
        };
        let (target, slot) = match self.admit(&origin).await {
            Ok(x) => x,
            Err(r) => return Ok(self.refuse_connect(origin.event("CONNECT", ""), r)),
        };
        conn.authenticated();
        let upgrade = hyper::upgrade::on(&mut req);
        let me = self.clone();
        // Closed at once when the sandbox is disconnected.
        let cut = self.cut_signal(origin.sandbox.name());
        tokio::spawn(async move {
            // The connection's slots are held as long as its tunnel is open.
            let _conn = conn;
            let _slot = slot;
            let Ok(upgraded) = upgrade.await else { return };
            let io = TokioIo::new(upgraded);
            let serve = async {
                match target {
                    None => me.intercept(io, origin).await,
                    Some(addr) => me.tunnel(io, origin, addr).await,
                }
            };
            tokio::select! {
                () = serve => {}
                () = cut.cancelled() => {}
            }
        });
        Ok(Response::new(empty()))
    }

    /// What the proxy answers itself, outside a tunnel: its CA at `/ca.pem`, a sandbox's own
    /// policy at `/policy` (with its credentials, as `Proxy-Authorization` or `Authorization`;
    /// JSON when asked for, else text), else 405.
    fn own_endpoint(&self, req: &Request<Incoming>, conn: &Conn) -> Response<Body> {
        if req.method() == Method::GET && req.uri().path() == "/policy" {
            let header = req
                .headers()
                .get(hyper::header::PROXY_AUTHORIZATION)
                .or_else(|| req.headers().get(hyper::header::AUTHORIZATION))
                .map(|v| v.to_str().unwrap_or(""));
            let sb = match self.login(header, conn, "/policy") {
                Ok(sb) => sb,
                Err(r) => return r.response(),
            };
            let v = crate::policy::describe(&sb, self.live().egress == Egress::Deny);
            let json = req
                .headers()
                .get(hyper::header::ACCEPT)
                .and_then(|a| a.to_str().ok())
                .is_some_and(|a| a.contains("application/json"))
                || req.uri().query() == Some("format=json");
            return if json {
                crate::respond::json_body(StatusCode::OK, "application/json; charset=utf-8", &v)
            } else {
                text(StatusCode::OK, &crate::policy::describe_text(&v))
            };
        }
        if req.method() == Method::GET && req.uri().path() == "/ca.pem" {
            let mut r = text(StatusCode::OK, &self.ca.cert_pem);
            r.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-pem-file"),
            );
            return r;
        }
        text(
            StatusCode::METHOD_NOT_ALLOWED,
            "ghapp proxy: only CONNECT is proxied (use HTTPS_PROXY); the CA is at /ca.pem, a sandbox's policy at /policy\n",
        )
    }

    /// The sandbox a `CONNECT`'s proxy credentials name, or the 407 (429 when this source
    /// tried too many wrong ones). A wrong secret is audited (never the secret) and counted
    /// against the source; no credentials at all is how git opens a tunnel, so it is not.
    fn authenticate(
        &self,
        req: &Request<Incoming>,
        conn: &Conn,
        host: &str,
    ) -> Result<Arc<Sandbox>, Refusal> {
        let header = req
            .headers()
            .get(hyper::header::PROXY_AUTHORIZATION)
            .map(|v| v.to_str().unwrap_or(""));
        self.login(header, conn, host)
    }

    /// The sandbox a credentials header names (see [`Proxy::authenticate`]); `what` names the
    /// target in the audit.
    fn login(
        &self,
        header: Option<&str>,
        conn: &Conn,
        what: &str,
    ) -> Result<Arc<Sandbox>, Refusal> {
        let host = what;
        if self.gate.login_blocked(conn.source) {
            self.audit.metrics.auth_failure("rate_limited");
            return Err(Refusal::text(
                StatusCode::TOO_MANY_REQUESTS,
                "too many wrong proxy credentials from this address; wait a minute",
            )
            .retry_after("60"));
        }
        let live = self.live();
        let kind = match login(&live.sandboxes, header) {
            Login::Ok(sb) => return Ok(sb),
            Login::Wrong(tried)
                if header
                    .and_then(ghapp_gitproto::basic::parse)
                    .is_some_and(|(n, s)| live.disconnected(&n, &s)) =>
            {
                return Err(Refusal::text(
                    StatusCode::PROXY_AUTHENTICATION_REQUIRED,
                    format!("sandbox {tried} is disconnected"),
                ));
            }
            Login::Wrong(tried) => {
                self.gate.login_failed(conn.source);
                let mut ev = Event::new(&tried, Some(conn.source.to_string()), "CONNECT", host, "");
                ev.service = Service::Connect;
                ev.status = 407;
                ev.reason = "wrong proxy credentials".into();
                self.audit.record(&ev);
                "wrong"
            }
            Login::Missing => "missing",
        };
        self.audit.metrics.auth_failure(kind);
        Err(Refusal::text(
            StatusCode::PROXY_AUTHENTICATION_REQUIRED,
            "proxy credentials required (HTTPS_PROXY=http://NAME:SECRET@host:port)",
        ))
    }

    /// Whether an authenticated sandbox may open this tunnel: a GitHub host (intercepted), or
    /// an allowed egress destination (its checked address), within the sandbox's tunnel cap.
    async fn admit(
        &self,
        origin: &Origin,
    ) -> Result<(Option<SocketAddr>, tokio::sync::OwnedSemaphorePermit), Refusal> {
        let host = &origin.host;
        let mut target = None;
        if !self.hosts.intercepts(host) && self.lfs.allows(origin.sandbox.name(), host) {
            // A storage host GitHub's LFS batch answer named for this sandbox, while its URLs
            // live: a plain tunnel (no token rides in it), whatever egress says.
            let addr = self.storage_target(host).await.map_err(|why| {
                Refusal::text(
                    StatusCode::FORBIDDEN,
                    format!("the LFS storage host {host} is refused: {why}"),
                )
            })?;
            target = Some(addr);
        } else if !self.hosts.intercepts(host) {
            if self.live().egress == Egress::Deny {
                return Err(Refusal::text(
                    StatusCode::FORBIDDEN,
                    format!("{host} is not a GitHub host and egress is denied"),
                ));
            }
            let addr = self.egress_target(host).await.map_err(|why| {
                Refusal::text(
                    StatusCode::FORBIDDEN,
                    format!("egress to {host} is refused: {why}"),
                )
            })?;
            target = Some(addr);
        }
        let slot = self.gate.tunnel(origin.sandbox.name()).ok_or_else(|| {
            Refusal::text(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "sandbox {} has {} tunnels open (max_tunnels_per_sandbox)",
                    origin.sandbox.name(),
                    self.gate.limits.max_tunnels_per_sandbox
                ),
            )
        })?;
        Ok((target, slot))
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
            match egress::check(a, &self.live().egress_allow, &own) {
                Ok(()) => return Ok(a),
                Err(e) => why = e,
            }
        }
        Err(why)
    }

    /// The address of an LFS storage host: the configured `resolve` entry for its name when
    /// there is one (the operator's word), else resolved and checked as egress is.
    async fn storage_target(&self, host: &str) -> Result<SocketAddr, String> {
        let (name, port) = host.rsplit_once(':').unwrap_or((host, "443"));
        let port: u16 = port
            .parse()
            .map_err(|_| "its port is not a number".to_string())?;
        if let Some((_, ip)) = self
            .cfg
            .resolve
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            return Ok(SocketAddr::new(*ip, port));
        }
        self.egress_target(host).await
    }

    /// `egress = "tunnel"`: bytes pass untouched to the checked address.
    async fn tunnel(
        self: Arc<Self>,
        mut io: TokioIo<hyper::upgrade::Upgraded>,
        origin: Origin,
        addr: SocketAddr,
    ) {
        let start = Instant::now();
        let mut ev = origin.event("CONNECT", "");
        ev.service = Service::Connect;
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
        ev.decision = Decision::Allow;
        ev.reason = format!("egress = tunnel to {addr}");
        ev.bytes_in = a;
        ev.bytes_out = b;
        ev.status = 200;
        ev.latency_ms = start.elapsed().as_millis() as u64;
        self.audit.record(&ev);
    }

    /// An intercepted host: TLS with a leaf for it, then HTTP/1.1 requests to [`Proxy::handle`].
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
        if let Some(sni) = tls.get_ref().1.server_name()
            && !sni.eq_ignore_ascii_case(&host_of(&origin.host))
        {
            return;
        }
        let me = self.clone();
        let svc = hyper::service::service_fn(move |req| {
            let me = me.clone();
            let origin = origin.clone();
            async move { Ok::<_, Infallible>(me.handle(req, &origin).await) }
        });
        // No request-head timeout inside a tunnel: hyper's would also close a tunnel idle
        // between requests. The socket's idle timeout bounds it, and the sandbox's tunnel cap
        // bounds what a slow sandbox can hold.
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(tls), svc)
            .await;
    }
}
