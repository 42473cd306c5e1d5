//! The listener side, and nothing of git or policy: accepting connections under the
//! [`crate::limits`] (backing off while the process is out of file descriptors), HTTP/1.1 on
//! them, `CONNECT` upgraded into a tunnel that is either intercepted (TLS with the leaf the
//! [`Front`] hands over, SNI checked, each request inside handed back to the [`Front`]) or
//! passed through to an address, and the side listeners (admin API, webhooks, metrics) with a
//! connection cap of their own. What a request means, and whether a tunnel may open, is the
//! [`Front`]'s to say (the data plane's, `crate::pipeline`).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::limits::{Conn, Gate};
use crate::respond::{Body, empty};

const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// How a tunnel is served once its `CONNECT` is admitted.
pub(crate) enum To {
    /// TLS terminated with `tls` (a leaf for `host`; the SNI, when sent, must name it), then
    /// each request handed to [`Front::request`].
    Intercept {
        tls: Arc<rustls::ServerConfig>,
        host: String,
    },
    /// Bytes passed untouched to this address.
    Pass(SocketAddr),
}

/// An admitted tunnel.
pub(crate) struct Admitted<T> {
    pub tunnel: T,
    pub to: To,
    /// Fired: the tunnel closes at once (its sandbox was disconnected).
    pub cut: CancellationToken,
    /// Held while the tunnel is open (the sandbox's tunnel cap).
    pub slot: OwnedSemaphorePermit,
}

/// What a passed-through tunnel did.
pub(crate) struct Passed {
    pub to: SocketAddr,
    /// Whether the connection to `to` was made.
    pub connected: bool,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub elapsed: Duration,
}

/// What the proxy's own listener serves: the decisions behind it.
pub(crate) trait Front: Send + Sync + 'static {
    /// What identifies an admitted tunnel to the requests inside it.
    type Tunnel: Send + Sync + 'static;

    /// A request on the listener that is not `CONNECT` (the proxy's own endpoints).
    fn own(
        &self,
        req: &Request<Incoming>,
        conn: &Conn,
    ) -> impl Future<Output = Response<Body>> + Send;

    /// A `CONNECT`: the tunnel to open, or the answer refusing it.
    fn connect(
        self: Arc<Self>,
        req: &Request<Incoming>,
        conn: &Arc<Conn>,
    ) -> impl Future<Output = Result<Admitted<Self::Tunnel>, Response<Body>>> + Send;

    /// One request inside an intercepted tunnel.
    fn request(
        self: Arc<Self>,
        req: Request<Incoming>,
        tunnel: Arc<Self::Tunnel>,
    ) -> impl Future<Output = Response<Body>> + Send;

    /// A passed-through tunnel ended.
    fn passed(&self, tunnel: &Self::Tunnel, what: Passed);

    /// An accept failed (out of file descriptors and the like), or a connection was not
    /// admitted (`why`, for the metrics).
    fn refused_connection(&self, why: &'static str);
}

/// Accepts on `listener` until it fails for good; each accept error (EMFILE, ENFILE, ...) is
/// waited out with a growing pause instead of spinning on it, and `on_error` is told.
async fn accept_loop<F: Fn(&'static str)>(
    listener: &tokio::net::TcpListener,
    on_error: &F,
) -> (tokio::net::TcpStream, SocketAddr) {
    let mut backoff = ACCEPT_BACKOFF_MIN;
    loop {
        match listener.accept().await {
            Ok(s) => return s,
            Err(e) => {
                on_error("accept_error");
                if backoff == ACCEPT_BACKOFF_MIN {
                    tracing::warn!(
                        "cannot accept connections on {}: {e}; backing off",
                        listener
                            .local_addr()
                            .map_or_else(|_| "?".into(), |a| a.to_string())
                    );
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
            }
        }
    }
}

/// Serves the sandboxes' listener until `shutdown`.
pub(crate) async fn serve<F: Front>(
    front: Arc<F>,
    gate: Arc<Gate>,
    listener: tokio::net::TcpListener,
    mut shutdown: tokio::sync::oneshot::Receiver<()>,
) {
    let on_error = |why: &'static str| front.refused_connection(why);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => return,
            s = accept_loop(&listener, &on_error) => s,
        };
        let conn = match gate.admit(peer.ip()) {
            Ok(c) => Arc::new(c),
            Err(why) => {
                front.refused_connection(why.metric());
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (front, gate) = (front.clone(), gate.clone());
        tokio::spawn(async move {
            let io = conn.watch(stream, &gate.limits);
            let timeout = gate.limits.header_timeout;
            let svc = hyper::service::service_fn(move |req| {
                let (front, conn) = (front.clone(), conn.clone());
                async move { Ok::<_, Infallible>(answer(front, req, conn, timeout).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(timeout)
                .serve_connection(TokioIo::new(io), svc)
                .with_upgrades()
                .await;
        });
    }
}

/// One request on the listener: `CONNECT` opens a tunnel (its TLS handshake, if intercepted,
/// within `handshake`), anything else is the front's.
async fn answer<F: Front>(
    front: Arc<F>,
    mut req: Request<Incoming>,
    conn: Arc<Conn>,
    handshake: Duration,
) -> Response<Body> {
    if req.method() != Method::CONNECT {
        return front.own(&req, &conn).await;
    }
    let admitted = match front.clone().connect(&req, &conn).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    conn.authenticated();
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        // The connection's slots are held as long as its tunnel is open.
        let _conn = conn;
        let Admitted {
            tunnel,
            to,
            cut,
            slot,
        } = admitted;
        let _slot = slot;
        let Ok(upgraded) = upgrade.await else { return };
        let io = TokioIo::new(upgraded);
        let tunnel = Arc::new(tunnel);
        let serve = async {
            match to {
                To::Intercept { tls, host } => {
                    intercept(front.clone(), io, tls, &host, handshake, tunnel).await;
                }
                To::Pass(addr) => {
                    let what = pass(io, addr).await;
                    front.passed(&tunnel, what);
                }
            }
        };
        tokio::select! {
            () = serve => {}
            () = cut.cancelled() => {}
        }
    });
    Response::new(empty())
}

/// Bytes passed untouched to `addr`.
async fn pass(mut io: TokioIo<hyper::upgrade::Upgraded>, addr: SocketAddr) -> Passed {
    let start = Instant::now();
    let connect = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::net::TcpStream::connect(addr),
    )
    .await;
    let Ok(Ok(mut tcp)) = connect else {
        return Passed {
            to: addr,
            connected: false,
            bytes_in: 0,
            bytes_out: 0,
            elapsed: start.elapsed(),
        };
    };
    let (a, b) = tokio::io::copy_bidirectional(&mut io, &mut tcp)
        .await
        .unwrap_or((0, 0));
    Passed {
        to: addr,
        connected: true,
        bytes_in: a,
        bytes_out: b,
        elapsed: start.elapsed(),
    }
}

/// TLS with the front's leaf, the SNI checked, then HTTP/1.1 requests to [`Front::request`].
async fn intercept<F: Front>(
    front: Arc<F>,
    io: TokioIo<hyper::upgrade::Upgraded>,
    tls: Arc<rustls::ServerConfig>,
    host: &str,
    handshake: Duration,
    tunnel: Arc<F::Tunnel>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let Ok(Ok(tls)) = tokio::time::timeout(handshake, acceptor.accept(io)).await else {
        return;
    };
    // SNI, when sent (it is not for IP addresses), must name the CONNECT host.
    if let Some(sni) = tls.get_ref().1.server_name()
        && !sni.eq_ignore_ascii_case(host)
    {
        return;
    }
    let svc = hyper::service::service_fn(move |req| {
        let (front, tunnel) = (front.clone(), tunnel.clone());
        async move { Ok::<_, Infallible>(front.request(req, tunnel).await) }
    });
    // No request-head timeout inside a tunnel: hyper's would also close a tunnel idle between
    // requests. The socket's idle timeout bounds it, and the sandbox's tunnel cap bounds what
    // a slow sandbox can hold.
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(tls), svc)
        .await;
}

/// One of the proxy's side listeners (admin API and page, webhooks, metrics, the token
/// exchange): HTTP/1.1 (over TLS with `tls`), each request to `handle` with the client's
/// address, the TLS handshake and request head each within `header_timeout`, at most
/// `max_connections` open at once (past it a connection is closed at once), accept errors
/// waited out.
pub(crate) async fn serve_side<H, Fut>(
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    max_connections: usize,
    header_timeout: Duration,
    on_error: impl Fn(&'static str) + Send + Sync + 'static,
    handle: H,
) where
    H: Fn(Request<Incoming>, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let open = Arc::new(Semaphore::new(max_connections));
    loop {
        let (s, peer) = accept_loop(&listener, &on_error).await;
        let Ok(permit) = open.clone().try_acquire_owned() else {
            on_error("side_connections");
            drop(s);
            continue;
        };
        let handle = handle.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let fut = handle(req, peer);
                async move { Ok::<_, Infallible>(fut.await) }
            });
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(header_timeout);
            match tls {
                None => {
                    let _ = http.serve_connection(TokioIo::new(s), svc).await;
                }
                Some(acceptor) => {
                    if let Ok(Ok(t)) =
                        tokio::time::timeout(header_timeout, acceptor.accept(s)).await
                    {
                        let _ = http.serve_connection(TokioIo::new(t), svc).await;
                    }
                }
            }
        });
    }
}
