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

pub mod admin;
mod approvals;
pub mod audit;
mod body;
pub mod ca;
pub mod config;
pub mod egress;
mod graphql;
mod inspect;
mod lfs;
pub mod limits;
mod live;
pub mod metrics;
mod nodes;
mod observe;
mod page;
mod policy;
mod preflight;
mod push;
mod respond;
mod router;
mod running;
mod sandbox;
pub mod store;
mod transport;
mod upstream;
pub mod webhook;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use ghapp_core::broker::{Broker, TokenSource};
use ghapp_core::cache::CachedToken;
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

pub use body::COMMAND_SECTION_LIMIT;
pub use ghapp_core::secret::ProxySecret;
use live::Live;
pub use preflight::{Check, CheckLevel};
pub use running::Running;

use crate::audit::{Audit, Decision, Pending};
use crate::ca::Ca;
use crate::config::ProxyConfig;
use crate::limits::Gate;
use crate::policy::{Action, BodyPlan};
use crate::respond::Refusal;
use crate::router::{Hosts, with_port};
use crate::sandbox::Sandbox;
use crate::transport::Origin;
use crate::upstream::{Upstream, forward_headers};

pub type Body = BoxBody<Bytes, std::io::Error>;

/// Seconds a sandbox is told to wait when no token can be minted.
const MINT_RETRY_AFTER: &str = "10";

pub struct Proxy {
    cfg: ProxyConfig,
    /// What SIGHUP reloads: the sandboxes and their policy, egress.
    live: std::sync::RwLock<Arc<Live>>,
    /// The file SIGHUP reloads `live` from (`None`: a proxy built from a value, as in tests).
    config_path: Option<std::path::PathBuf>,
    /// One per app, in the config's order; a sandbox's owner picks the first that serves it.
    brokers: Vec<Broker>,
    ca: Ca,
    upstream: reqwest::Client,
    audit: Arc<Audit>,
    hosts: Hosts,
    gate: Arc<Gate>,
    /// Node ids resolved for the GraphQL mutation policy.
    nodes: nodes::NodeCache,
    /// LFS storage hosts each sandbox may reach, from GitHub's batch answers.
    lfs: lfs::Grants,
    /// Push inspection's git: mirrors and quarantines under `spool_dir`.
    git: Arc<inspect::Git>,
    /// The state store, opened when the proxy starts (with `state` or `admin_listen`).
    store: std::sync::OnceLock<store::Store>,
    /// Per sandbox, the signal that closes its tunnels when it is disconnected.
    cuts: std::sync::Mutex<std::collections::HashMap<String, tokio_util::sync::CancellationToken>>,
    /// Owners (lowercase) the app was removed from, by GitHub's `installation` event.
    removed: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Webhook deliveries this replica has acted on.
    deliveries: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Signed-in sessions of the approvals page.
    sessions: page::Sessions,
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
        let hosts = Hosts::new(cfg.github());
        let ca = Ca::load_or_create(&cfg.ca_dir, &hosts.intercepted())?;
        let upstream_ca = match &cfg.upstream_ca_file {
            Some(p) => Some(
                ghapp_core::fsutil::read_bounded(p, 4 << 20)
                    .map_err(|e| format!("cannot read upstream_ca_file {}: {e}", p.display()))?,
            ),
            None => None,
        };
        let mut brokers = Vec::new();
        for app in &cfg.apps {
            let mut broker = Broker::new(app.clone(), cfg.refresh_margin, &cfg.cache_dir)
                .map_err(|e| e.to_string())?;
            if upstream_ca.is_some() || !cfg.resolve.is_empty() {
                broker = broker.with_client(
                    ghapp_core::client::GitHubClient::with_resolve(
                        app.api_url(),
                        upstream_ca.as_deref(),
                        &cfg.resolve,
                    )
                    .map_err(|e| e.to_string())?,
                );
            }
            let broker = broker.with_deadline(Duration::from_secs(20));
            // The key's error names the setting of this file, not the environment's.
            broker.load_key_now().map_err(|e| match e {
                ghapp_core::Error::KeyFileUnreadable { path, reason } => format!(
                    "cannot read private key file {}: {reason}; set [app] private_key_file in the proxy config to the .pem downloaded from the app's settings",
                    path.display()
                ),
                e => e.to_string(),
            })?;
            brokers.push(broker);
        }
        let tls = ghapp_core::client::tls_config_with(upstream_ca.as_deref())
            .map_err(|e| e.to_string())?;
        let mut upstream = reqwest::Client::builder();
        for (name, ip) in &cfg.resolve {
            upstream = upstream.resolve(name, SocketAddr::new(*ip, 0));
        }
        let upstream = upstream
            .use_preconfigured_tls(tls)
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .http1_only()
            .build()
            .map_err(|e| format!("cannot build the upstream client: {e}"))?;
        let audit = Audit::open(cfg.audit_log.as_deref(), cfg.audit_max_bytes)
            .map_err(|e| format!("cannot open the audit log: {e}"))?;
        let live = std::sync::RwLock::new(Arc::new(Live::of(&cfg)));
        let git_origin = reqwest::Url::parse(&format!("https://{}/", hosts.git))
            .map_err(|e| format!("the git host {}: {e}", hosts.git))?;
        let ca_for_git = cfg
            .upstream_ca_file
            .clone()
            .or_else(|| std::env::var_os("SSL_CERT_FILE").map(Into::into));
        let git = inspect::Git::new(
            &cfg.spool_dir,
            &git_origin,
            ca_for_git.as_deref(),
            &cfg.resolve,
        );
        if cfg.sandboxes.iter().any(|s| s.rules.inspect) {
            git.prepare()?;
        }
        Ok(Proxy {
            store: std::sync::OnceLock::new(),
            cuts: std::sync::Mutex::default(),
            removed: std::sync::Mutex::default(),
            deliveries: std::sync::Mutex::default(),
            sessions: page::Sessions::new(cfg.admin_token.as_ref()),
            git: Arc::new(git),
            gate: Arc::new(Gate::new(cfg.limits.clone())),
            nodes: nodes::NodeCache::default(),
            lfs: lfs::Grants::default(),
            cfg,
            live,
            config_path: None,
            brokers,
            ca,
            upstream,
            audit: Arc::new(audit),
            hosts,
        })
    }

    pub fn ca_pem(&self) -> &str {
        &self.ca.cert_pem
    }

    /// The broker of the app that mints for `owner`.
    fn broker_for(&self, owner: &str) -> Option<&Broker> {
        self.brokers
            .iter()
            .find(|b| b.app().serves_owner(Some(owner)))
    }

    /// One request inside an intercepted tunnel: named by the router, decided by the policy,
    /// its body read where the policy must see it, then forwarded with the token. The audit
    /// event is recorded when the answer has been streamed (or abandoned).
    async fn handle(self: &Arc<Self>, req: Request<Incoming>, o: &Origin) -> Response<Body> {
        let (parts, body) = req.into_parts();
        let mut p = Pending::new(
            o.event(parts.method.as_str(), parts.uri.path()),
            self.audit.clone(),
        );
        // Host must equal the CONNECT host.
        let host_hdr = parts
            .headers
            .get(hyper::header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(with_port);
        if host_hdr.as_deref() != Some(o.host.as_str()) {
            return p.refuse(Refusal::text(
                StatusCode::MISDIRECTED_REQUEST,
                "Host differs from the CONNECT host",
            ));
        }
        // The policy is the one configured now (a reload applies to open tunnels too); a
        // sandbox removed, or given a new secret, since the tunnel opened is refused.
        let current = match self.live().sandbox(o.sandbox.name()) {
            // Unchanged since the tunnel opened (the common case): no comparison at all.
            Some(sb)
                if Arc::ptr_eq(sb, &o.sandbox) || sb.cfg.secret.same(&o.sandbox.cfg.secret) =>
            {
                sb.clone()
            }
            Some(_) => {
                return p.refuse(Refusal::text(
                    StatusCode::PROXY_AUTHENTICATION_REQUIRED,
                    format!(
                        "sandbox {}'s secret changed: connect again with the new one",
                        o.sandbox.name()
                    ),
                ));
            }
            None => {
                return p.refuse(Refusal::text(
                    StatusCode::FORBIDDEN,
                    format!("sandbox {} is no longer configured", o.sandbox.name()),
                ));
            }
        };
        let o = &Origin {
            sandbox: current,
            source: o.source,
            host: o.host.clone(),
        };
        // An LFS object URL a batch answer handed this sandbox on a GitHub host: exactly it
        // passes, with no token added.
        let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
        if self.lfs.allows_url(o.sandbox.name(), &o.host, target) {
            return self.granted_storage(parts, body, o, p).await;
        }
        let route = router::route(&self.hosts, &o.host, parts.uri.path());
        let verdict = policy::decide(
            &o.sandbox,
            &self.hosts,
            &route,
            &parts.method,
            parts.uri.query(),
            &parts.headers,
        );
        p.event.service = verdict.service;
        p.event.repo = verdict.repo;
        let mut plan = match verdict.action {
            Action::Answer(r) => return self.refuse_unread(p, body, r).await,
            Action::Forward(plan) => plan,
        };
        let mut verdict = None;
        let body = match plan.body {
            BodyPlan::None => None,
            BodyPlan::Stream => Some(upstream::streamed(body, p.bytes_in.clone())),
            BodyPlan::Push => match self.push_body(body, o, &plan, &mut p).await {
                Ok((b, v)) => {
                    verdict = v;
                    Some(b)
                }
                Err(r) => return r,
            },
            BodyPlan::Whole
            | BodyPlan::PullHead
            | BodyPlan::OwnPull(_)
            | BodyPlan::Graphql
            | BodyPlan::LfsBatch => {
                match self
                    .checked_body(body, &parts.headers, &mut plan, &o.sandbox, &mut p)
                    .await
                {
                    Ok(b) => Some(reqwest::Body::from(b)),
                    Err(r) => return r,
                }
            }
        };
        let token = match self.token(&o.sandbox, plan.repo.owner()).await {
            Ok(t) => t,
            Err(r) => return p.refuse(r),
        };
        if observe::answers_refs(
            &o.sandbox,
            p.event.service,
            parts.method == hyper::Method::GET,
        ) {
            return self.observe_refs(plan.url, &token, p).await;
        }
        p.event.decision = Decision::Allow;
        let up = Upstream {
            method: parts.method,
            url: plan.url,
            headers: forward_headers(&parts.headers),
            lfs_batch: plan.body == BodyPlan::LfsBatch,
            body,
            verdict,
            scheme: plan.scheme,
            owner: plan.repo.owner().to_owned(),
        };
        self.forward(up, o, token, p).await
    }

    /// A body the policy reads whole (bounded) before it is sent: checked as its plan says
    /// (a pull request's head, an LFS batch's operation, a GraphQL document), and what to send.
    /// A mutation re-points the plan to the repository it changes.
    async fn checked_body(
        &self,
        body: Incoming,
        headers: &hyper::HeaderMap,
        plan: &mut policy::Plan,
        sb: &Sandbox,
        p: &mut Pending,
    ) -> Result<Bytes, Response<Body>> {
        let bytes = match body::whole(body, headers, &self.gate.limits, &self.gate.budget).await {
            Ok(b) => b,
            Err(r) => return Err(p.refuse(self.note_busy(r))),
        };
        p.bytes_in.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        let checked = match plan.body {
            BodyPlan::PullHead if sb.cfg.mode != config::Mode::Autonomous => {
                if let Err(r) = policy::pull_head(sb, &plan.repo, &bytes) {
                    return Err(p.refuse(r));
                }
                let ask = match approvals::Ask::rest(&bytes) {
                    Ok(a) => a,
                    Err(why) => {
                        return Err(p.refuse(Refusal::json(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            format!("the pull request: {why}"),
                        )));
                    }
                };
                if sb.cfg.mode == config::Mode::Observe {
                    return Err(self
                        .propose_pull(sb, &plan.repo, ask, respond::Form::Json, p)
                        .await);
                }
                match self.needs_approval(sb, &plan.repo, &ask).await {
                    Ok(None) => Ok(bytes),
                    Ok(Some(why)) => {
                        return Err(self
                            .hold(sb, &plan.repo, ask, &why, respond::Form::Json, p)
                            .await);
                    }
                    Err(r) => Err(r),
                }
            }
            BodyPlan::PullHead => policy::pull_head(sb, &plan.repo, &bytes).map(|()| bytes),
            BodyPlan::OwnPull(n) => self.own_pull(sb, &plan.repo, n).await.map(|()| bytes),
            BodyPlan::LfsBatch => policy::lfs_batch(sb, &plan.repo, &bytes).map(|()| bytes),
            BodyPlan::Graphql => {
                let checked = match self.graphql(sb, bytes).await {
                    Err(nodes::Stop::Held(repo, ask, why)) => {
                        p.event.repo = Some(repo.to_string());
                        return Err(self
                            .hold(sb, &repo, ask, &why, respond::Form::Graphql, p)
                            .await);
                    }
                    Err(nodes::Stop::Proposed(repo, ask)) => {
                        p.event.repo = Some(repo.to_string());
                        return Err(self
                            .propose_pull(sb, &repo, ask, respond::Form::Graphql, p)
                            .await);
                    }
                    Err(nodes::Stop::Refused(r)) => Err(r),
                    Ok(x) => Ok(x),
                };
                if let Ok((_, Some((repo, names)))) = &checked {
                    // A mutation: carried by the token of the repository it changes.
                    p.event.repo = Some(repo.to_string());
                    p.event.reason = format!("mutation {names}");
                    plan.repo = repo.clone();
                }
                checked.map(|(b, _)| b)
            }
            _ => Ok(bytes),
        };
        checked.map_err(|r| p.refuse(r))
    }

    /// A request to an LFS storage URL a batch answer handed the sandbox on a GitHub host:
    /// forwarded to exactly that URL, its body streamed, no token added.
    async fn granted_storage(
        &self,
        parts: hyper::http::request::Parts,
        body: Incoming,
        o: &Origin,
        mut p: Pending,
    ) -> Response<Body> {
        p.event.service = audit::Service::Lfs;
        let query = parts
            .uri
            .query()
            .map(|q| format!("?{q}"))
            .unwrap_or_default();
        let url = match policy::upstream_url(&o.host, parts.uri.path(), &query) {
            Ok(u) => u,
            Err(why) => {
                return self
                    .refuse_unread(p, body, Refusal::lfs(StatusCode::BAD_REQUEST, why))
                    .await;
            }
        };
        p.event.decision = Decision::Allow;
        p.event.reason = "LFS storage URL from a batch answer".into();
        let body = upstream::streamed(body, p.bytes_in.clone());
        self.storage(parts.method, url, parts.headers, body, o, p)
            .await
    }

    /// A refusal before the body was read: a small body is drained first, so a keep-alive
    /// client's next request finds the connection usable.
    async fn refuse_unread(&self, mut p: Pending, body: Incoming, r: Refusal) -> Response<Body> {
        p.bytes_in
            .fetch_add(body::drain_refused(body).await, Ordering::Relaxed);
        p.refuse(r)
    }

    /// Counts a body refused for the buffer budget.
    fn note_busy(&self, r: Refusal) -> Refusal {
        if r.status == StatusCode::SERVICE_UNAVAILABLE {
            self.audit.metrics.buffer_budget_exhausted.inc();
        }
        r
    }

    /// The sandbox's token for `owner`: cached, or minted.
    async fn token(&self, sb: &Sandbox, owner: &str) -> Result<CachedToken, Refusal> {
        if self
            .removed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(&owner.to_ascii_lowercase())
        {
            return Err(Refusal::text(
                StatusCode::FORBIDDEN,
                format!(
                    "the app was removed from {owner} (GitHub's installation event): ask an owner of {owner} to install it again"
                ),
            ));
        }
        let Some(broker) = self.broker_for(owner) else {
            return Err(Refusal::text(
                StatusCode::FORBIDDEN,
                format!("no app of this proxy serves {owner} (the [[app]] owners)"),
            ));
        };
        broker
            .token_with_source(&sb.token_request(owner))
            .await
            .map(|(t, source)| {
                match source {
                    TokenSource::Cache => self.audit.metrics.cache_hits.inc(),
                    TokenSource::Minted => self.audit.metrics.mints.inc(),
                };
                t
            })
            .map_err(|e| {
                let (status, what) = match e {
                    ghapp_core::Error::Unreachable { .. } => {
                        (StatusCode::BAD_GATEWAY, "GitHub is unreachable")
                    }
                    _ => (StatusCode::SERVICE_UNAVAILABLE, "cannot mint a token"),
                };
                tracing::warn!("{what}: {e}");
                // Nothing the sandbox did: it may try again, and the proxy will mint again.
                Refusal::text(status, format!("{what}: {e}")).retry_after(MINT_RETRY_AFTER)
            })
    }

    /// Drops a token GitHub no longer accepts (revoked by an admin, by secret scanning, by
    /// `ghapp revoke`) from memory and disk, so no sandbox is handed it again.
    fn forget_token(&self, sb: &Sandbox, owner: &str, token: &CachedToken) {
        let req = sb.token_request(owner);
        let Some(broker) = self.broker_for(owner) else {
            return;
        };
        let forget = || broker.forget(&req, token.token.expose());
        match tokio::task::block_in_place(forget) {
            Ok(_) => tracing::warn!(
                "GitHub refused token {} (revoked?); it is dropped and the next request mints",
                token.token.fingerprint()
            ),
            Err(e) => tracing::warn!("cannot drop a refused token from the cache: {e}"),
        }
        self.audit.metrics.tokens_dropped.inc();
    }
}
