//! The data plane's side of the listener ([`crate::transport::Front`]): who a `CONNECT` is
//! (the sandbox its proxy credentials name, rate-limited per source), where its tunnel may go
//! (a GitHub host, intercepted; an LFS storage host a batch answer granted URLs on, intercepted;
//! egress when allowed), and the proxy's own endpoints (`GET /ca.pem`, `GET /policy`).

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Method, Request, Response, StatusCode};

use super::DataPlane;
use crate::audit::{Decision, Event, Head, Outcome, Service};
use crate::config::Egress;
use crate::egress;
use crate::limits::Conn;
use crate::respond::{Body, Refusal, text};
use crate::router::with_port;
use crate::sandbox::{Login, Origin, Sandbox};
use crate::transport::{Admitted, Front, Passed, To};

impl Front for DataPlane {
    type Tunnel = Origin;

    async fn own(&self, req: &Request<Incoming>, conn: &Conn) -> Response<Body> {
        self.own_endpoint(req, conn).await
    }

    async fn connect(
        self: Arc<Self>,
        req: &Request<Incoming>,
        conn: &Arc<Conn>,
    ) -> Result<Admitted<Origin>, Response<Body>> {
        let Some(authority) = req
            .uri()
            .authority()
            .map(|a| a.as_str().to_ascii_lowercase())
        else {
            return Err(text(
                StatusCode::BAD_REQUEST,
                "ghapp proxy: CONNECT needs host:port\n",
            ));
        };
        let host = with_port(&authority);
        let header = req
            .headers()
            .get(hyper::header::PROXY_AUTHORIZATION)
            .map(|v| v.to_str().unwrap_or(""));
        let sandbox = self.login(header, conn, &host).map_err(|r| r.response())?;
        let origin = Origin {
            sandbox,
            source: conn.source,
            host,
        };
        match self.admit(&origin).await {
            Ok((to, slot)) => Ok(Admitted {
                cut: self.cut_signal(origin.sandbox.name()),
                tunnel: origin,
                to,
                slot,
            }),
            Err(r) => {
                self.record(
                    &origin.head("CONNECT", ""),
                    Outcome::refused(Service::Connect, None, &r),
                );
                Err(r.response())
            }
        }
    }

    async fn request(
        self: Arc<Self>,
        req: Request<Incoming>,
        tunnel: Arc<Origin>,
    ) -> Response<Body> {
        self.handle(req, &tunnel).await
    }

    fn passed(&self, o: &Origin, what: Passed) {
        let outcome = if what.connected {
            Outcome {
                service: Service::Connect,
                decision: Decision::Allow,
                reason: format!("egress = tunnel to {}", what.to),
                status: 200,
                ..Outcome::default()
            }
        } else {
            Outcome {
                service: Service::Connect,
                reason: format!("cannot connect to {}", what.to),
                status: 502,
                ..Outcome::default()
            }
        };
        let mut ev = Event::of(&o.head("CONNECT", ""), outcome);
        ev.bytes_in = what.bytes_in;
        ev.bytes_out = what.bytes_out;
        ev.latency_ms = what.elapsed.as_millis() as u64;
        self.audit.record(&ev);
    }

    fn refused_connection(&self, why: &'static str) {
        if why == "accept_error" {
            self.audit.metrics.accept_errors.inc();
        } else {
            self.audit.metrics.connection_refused(why);
        }
    }
}

impl DataPlane {
    fn record(&self, head: &Head, o: Outcome) {
        self.audit.record(&Event::of(head, o));
    }

    /// What the proxy answers itself, outside a tunnel: its CA at `/ca.pem`, a sandbox's own
    /// policy at `/policy` (with its credentials, as `Proxy-Authorization` or `Authorization`;
    /// JSON when asked for, else text), else 405.
    async fn own_endpoint(&self, req: &Request<Incoming>, conn: &Conn) -> Response<Body> {
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
            let used = self.budgets.used(self.store.get(), sb.name()).await;
            let rules = crate::policy::describe(
                &sb,
                self.live.get().egress == Egress::Deny,
                &self.cfg.budget,
                used,
            );
            let json = req
                .headers()
                .get(hyper::header::ACCEPT)
                .and_then(|a| a.to_str().ok())
                .is_some_and(|a| a.contains("application/json"))
                || req.uri().query() == Some("format=json");
            return if json {
                let v = serde_json::to_value(&rules).unwrap_or_default();
                crate::respond::json_body(StatusCode::OK, "application/json; charset=utf-8", &v)
            } else {
                text(StatusCode::OK, &rules.text())
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

    /// The sandbox a credentials header names, or the 407 (429 when this source tried too
    /// many wrong ones). A wrong secret is audited (never the secret) and counted against the
    /// source; no credentials at all is how git opens a tunnel, so it is not. `what` names the
    /// target in the audit.
    fn login(
        &self,
        header: Option<&str>,
        conn: &Conn,
        what: &str,
    ) -> Result<Arc<Sandbox>, Refusal> {
        if self.gate.login_blocked(conn.source) {
            self.audit.metrics.auth_failure("rate_limited");
            return Err(Refusal::text(
                StatusCode::TOO_MANY_REQUESTS,
                "too many wrong proxy credentials from this address; wait a minute",
            )
            .retry_after(60));
        }
        let live = self.live.get();
        let kind = match live.login(header) {
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
                let head = Head {
                    sandbox: tried,
                    source: Some(conn.source.to_string()),
                    method: "CONNECT".into(),
                    host: what.to_owned(),
                    path: String::new(),
                };
                let r = Refusal::text(
                    StatusCode::PROXY_AUTHENTICATION_REQUIRED,
                    "wrong proxy credentials",
                );
                self.record(&head, Outcome::refused(Service::Connect, None, &r));
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

    /// Whether an authenticated sandbox may open this tunnel, and how it is served: a GitHub
    /// host or a granted LFS storage host (intercepted), or an allowed egress destination (its
    /// checked address), within the sandbox's tunnel cap.
    async fn admit(
        &self,
        origin: &Origin,
    ) -> Result<(To, tokio::sync::OwnedSemaphorePermit), Refusal> {
        let host = &origin.host;
        // A GitHub host, or an LFS storage host a batch answer granted this sandbox URLs on:
        // the proxy's TLS (the SNI and Host must name the host), each request decided inside.
        let to = if self.hosts.intercepts(host)
            || (self.hosts.is_storage(host) && self.lfs.serves(origin.sandbox.name(), host))
        {
            let tls = self.ca.server_config(host).map_err(|why| {
                Refusal::text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("cannot make a certificate for {host}: {why}"),
                )
            })?;
            To::Intercept {
                tls,
                host: crate::router::host_of(host),
            }
        } else {
            if self.live.get().egress == Egress::Deny {
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
            To::Pass(addr)
        };
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
        Ok((to, slot))
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
            .chain(self.cfg.admin_listen)
            .chain(self.cfg.webhook_listen)
            .collect();
        let mut why = "it resolves to no address".to_string();
        for a in addrs {
            match egress::check(a, &self.live.get().egress_allow, &own) {
                Ok(()) => return Ok(a),
                Err(e) => why = e,
            }
        }
        Err(why)
    }
}
