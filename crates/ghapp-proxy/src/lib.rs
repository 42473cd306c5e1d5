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
mod page;
mod policy;
mod preflight;
mod respond;
mod router;
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

use crate::audit::{Audit, Decision, Pending, RefUpdate};
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
            sessions: page::Sessions::default(),
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

    /// Serves on the configured address from a background thread with its own runtime. The
    /// state store is opened (and migrated) first, so a store that cannot be opened is an
    /// error here, not a failing request later.
    pub fn start(self) -> Result<Running, String> {
        let bind = |a: SocketAddr, what: &str| -> Result<std::net::TcpListener, String> {
            let l = std::net::TcpListener::bind(a)
                .map_err(|e| format!("cannot listen on {a}{what}: {e}"))?;
            l.set_nonblocking(true).map_err(|e| e.to_string())?;
            Ok(l)
        };
        let listener = bind(self.cfg.listen, "")?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let metrics = self
            .cfg
            .metrics_listen
            .map(|a| bind(a, " for metrics"))
            .transpose()?;
        let admin = self
            .cfg
            .admin_listen
            .map(|a| bind(a, " for the admin API"))
            .transpose()?;
        let webhooks = self
            .cfg
            .webhook_listen
            .map(|a| bind(a, " for webhooks"))
            .transpose()?;
        let webhook_addr = webhooks.as_ref().and_then(|l| l.local_addr().ok());
        let metrics_addr = metrics.as_ref().and_then(|l| l.local_addr().ok());
        let admin_addr = admin.as_ref().and_then(|l| l.local_addr().ok());
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the runtime: {e}"))?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let mut me = self;
        // The proxy's own listeners are never a tunnel's destination.
        me.cfg.listen = addr;
        me.cfg.metrics_listen = metrics_addr;
        me.cfg.admin_listen = admin_addr;
        me.cfg.webhook_listen = webhook_addr;
        let me = Arc::new(me);
        if let Some(url) = me.cfg.state.clone() {
            let store = rt
                .block_on(store::Store::open(&url))
                .map_err(|e| e.to_string())?;
            let _ = me.store.set(store);
            rt.block_on(me.sync_store());
        }
        let thread = std::thread::Builder::new()
            .name("ghapp-proxy".into())
            .spawn(move || {
                if let Some(l) = webhooks.and_then(|l| {
                    let _guard = rt.enter();
                    tokio::net::TcpListener::from_std(l).ok()
                }) {
                    rt.spawn(me.clone().serve_side(l, Proxy::webhook));
                }
                rt.block_on(me.serve(listener, metrics, admin, rx));
                rt.shutdown_timeout(Duration::from_millis(200));
            })
            .map_err(|e| e.to_string())?;
        Ok(Running {
            addr,
            metrics_addr,
            admin_addr,
            webhook_addr,
            shutdown: Some(tx),
            thread: Some(thread),
        })
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

    /// Reads a push's command section and decides it on its ref names: the body to forward
    /// (the section, then the rest streamed; with inspection, the pack held back by its
    /// trailer until the verdict that comes with it), or the answer (git's report-status for
    /// a refused push).
    async fn push_body(
        &self,
        mut body: Incoming,
        o: &Origin,
        plan: &policy::Plan,
        p: &mut Pending,
    ) -> Result<(reqwest::Body, Option<inspect::Verdict>), Response<Body>> {
        let sb = &o.sandbox;
        let section =
            match body::command_section(&mut body, &self.gate.limits, &self.gate.budget).await {
                Ok(s) => s,
                Err(r) => return Err(p.refuse(r)),
            };
        p.event.ref_updates = section
            .commands
            .commands
            .iter()
            .map(|c| RefUpdate {
                old: c.old.clone(),
                new: c.new.clone(),
                refname: c.refname.clone(),
            })
            .collect();
        p.bytes_in
            .fetch_add(section.bytes.len() as u64, Ordering::Relaxed);
        if let Err(refused) = policy::push(sb, &section.commands) {
            drop(section);
            p.bytes_in
                .fetch_add(body::drain(body).await, Ordering::Relaxed);
            return Err(push_refused(p, refused));
        }
        // Deletes and git's probe carry no pack: nothing to inspect.
        let has_pack = section.commands.commands.iter().any(|c| !c.is_delete());
        if !sb.cfg.rules.inspect || !has_pack {
            return Ok((
                upstream::prefixed(section.bytes, body, p.bytes_in.clone()),
                None,
            ));
        }
        let owner = plan.repo.owner();
        let token = match self.token(sb, owner).await {
            Ok(t) => t,
            Err(r) => return Err(p.refuse(r)),
        };
        let push = inspect::Push {
            sb: sb.clone(),
            commands: section.commands.clone(),
            fetch_url: plan
                .url
                .as_str()
                .trim_end_matches("/git-receive-pack")
                .to_owned(),
            host: self.hosts.git.clone(),
            repo: plan.repo.clone(),
            auth: inspect::Auth::basic(token.token.expose()),
            idle: self.gate.limits.idle_timeout,
        };
        let consumed = section.commands.consumed;
        let bytes = section.bytes;
        match inspect::start(
            self.git.clone(),
            push,
            bytes,
            consumed,
            body,
            p.bytes_in.clone(),
        )
        .await
        {
            Ok((b, v)) => Ok((b, Some(v))),
            Err(why) => {
                tracing::warn!("push inspection cannot start: {why}");
                Err(p.refuse(Refusal::text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("cannot inspect the push: {why}"),
                )))
            }
        }
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
            BodyPlan::PullHead
                if matches!(sb.cfg.mode, config::Mode::Learning | config::Mode::Assisted) =>
            {
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
                    Err(Stop::Held(repo, ask, why)) => {
                        p.event.repo = Some(repo.to_string());
                        return Err(self
                            .hold(sb, &repo, ask, &why, respond::Form::Graphql, p)
                            .await);
                    }
                    Err(Stop::Refused(r)) => Err(r),
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

    /// A GraphQL body decided: a query re-printed as read; a mutation's node ids resolved, its checks
    /// decided, and the re-printed body to send with the token of the repository it changes
    /// (returned with the mutations' names, for the audit).
    async fn graphql(
        &self,
        sb: &Sandbox,
        bytes: Bytes,
    ) -> Result<(Bytes, Option<(ghapp_gitproto::repo::RepoName, String)>), Stop> {
        let (checks, body) = match policy::graphql_body(sb, &bytes)? {
            policy::GraphqlPlan::Query(body) => return Ok((Bytes::from(body), None)),
            policy::GraphqlPlan::Mutation { checks, body } => (checks, body),
        };
        let ids: Vec<&str> = checks.iter().flat_map(|(_, c)| c.ids()).collect();
        let nodes = self.resolve_nodes(sb, &ids).await?;
        match graphql::decide(sb, &checks, &nodes) {
            Ok(repo) if matches!(sb.cfg.mode, config::Mode::Learning | config::Mode::Assisted) => {
                // A createPullRequest that needs a human is held, never forwarded.
                let held = checks.iter().find_map(|(_, c)| match c {
                    graphql::Check::CreatePull {
                        head,
                        base,
                        title,
                        body,
                        draft,
                        ..
                    } => Some(approvals::Ask {
                        head: head.clone(),
                        base: base.clone(),
                        title: title.clone(),
                        body: body.clone(),
                        draft: *draft,
                    }),
                    _ => None,
                });
                let held = match held.map(approvals::Ask::checked).transpose() {
                    Ok(h) => h,
                    Err(why) => {
                        return Err(Stop::Refused(Refusal::graphql(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            format!("sandbox {}: createPullRequest: {why}", sb.name()),
                        )));
                    }
                };
                let why = match &held {
                    Some(ask) => self.needs_approval(sb, &repo, ask).await?,
                    None => None,
                };
                match (held, why) {
                    (Some(ask), Some(why)) => Err(Stop::Held(repo, ask, why)),
                    _ => {
                        let names: Vec<&str> = checks.iter().map(|(n, _)| n.as_str()).collect();
                        Ok((Bytes::from(body), Some((repo, names.join(",")))))
                    }
                }
            }
            Ok(repo) => {
                let names: Vec<&str> = checks.iter().map(|(n, _)| n.as_str()).collect();
                Ok((Bytes::from(body), Some((repo, names.join(",")))))
            }
            Err(why) => Err(Stop::Refused(Refusal::graphql(
                StatusCode::FORBIDDEN,
                format!("sandbox {}: {why}", sb.name()),
            ))),
        }
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

    /// Whether pull request `n` of `repo` is one of the sandbox's own (its head a branch the
    /// sandbox may push, in `repo`), as GitHub answers with the sandbox's token.
    async fn own_pull(
        &self,
        sb: &Sandbox,
        repo: &ghapp_gitproto::repo::RepoName,
        n: u64,
    ) -> Result<(), Refusal> {
        let path = format!("/repos/{}/{}/pulls/{n}", repo.owner(), repo.repo());
        let (status, v) = self
            .api_call(sb, repo.owner(), hyper::Method::GET, &path, None, 4 << 20)
            .await?;
        if status == StatusCode::NOT_FOUND {
            return Err(Refusal::json(
                StatusCode::NOT_FOUND,
                format!("{repo} has no pull request {n}"),
            ));
        }
        if !status.is_success() {
            return Err(Refusal::json(
                StatusCode::BAD_GATEWAY,
                format!(
                    "cannot read pull request {n} of {repo} to check it: GitHub answered {status}"
                ),
            ));
        }
        let head = v["head"]["ref"].as_str().unwrap_or_default();
        let head_repo = v["head"]["repo"]["full_name"]
            .as_str()
            .and_then(ghapp_gitproto::repo::RepoName::parse);
        graphql::pull_is_own(sb, repo, head, head_repo.as_ref())
            .map_err(|why| Refusal::json(StatusCode::FORBIDDEN, why))
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

/// Why a GraphQL request is not forwarded: refused, or (a learning sandbox's
/// `createPullRequest`) held for a human.
enum Stop {
    Refused(Refusal),
    /// Held: the repository, what was asked, and why it waits.
    Held(ghapp_gitproto::repo::RepoName, approvals::Ask, String),
}

impl From<Refusal> for Stop {
    fn from(r: Refusal) -> Stop {
        Stop::Refused(r)
    }
}

/// A push refused: git's report-status answer, the reason in the audit.
fn push_refused(p: &mut Pending, refused: policy::PushRefusal) -> Response<Body> {
    p.event.decision = Decision::Deny;
    p.event.reason = refused.reason;
    p.event.status = 200;
    p.bytes_out = refused.report.len() as u64;
    respond::push_report(refused.report)
}

/// A running proxy; dropping it stops it.
pub struct Running {
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    admin_addr: Option<SocketAddr>,
    webhook_addr: Option<SocketAddr>,
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
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }
    pub fn webhook_addr(&self) -> Option<SocketAddr> {
        self.webhook_addr
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
