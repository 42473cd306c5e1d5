//! Preparing and starting the proxy: everything that can fail before serving (the key, the
//! CA, the audit log, the upstream client, git) is done in [`prepare`]; [`start`] binds the
//! listeners, opens the state store, builds the two planes and serves them from a runtime on
//! a thread of its own. [`Running`] stops it when dropped.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ghapp_core::broker::Broker;

use crate::audit::Audit;
use crate::ca::Ca;
use crate::config::ProxyConfig;
use crate::control::ControlPlane;
use crate::github::Api;
use crate::live::{Live, Snapshot};
use crate::pipeline::DataPlane;
use crate::router::Hosts;
use crate::store::{Store, StoreError};
use crate::sts::Sts;
use crate::tokens::Tokens;
use crate::{inspect, transport};

/// Why the proxy cannot start. Each names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("the proxy's CA: {0}")]
    Ca(String),
    #[error(
        "cannot read private key file {path}: {reason}; set [app] private_key_file in the proxy config to the .pem downloaded from the app's settings"
    )]
    KeyFile { path: PathBuf, reason: String },
    #[error("the app: {0}")]
    App(String),
    #[error("cannot read upstream_ca_file {path}: {reason}")]
    UpstreamCa { path: PathBuf, reason: String },
    #[error("cannot build the upstream client: {0}")]
    Client(String),
    #[error("cannot open the audit log: {0}")]
    Audit(std::io::Error),
    #[error("{0}")]
    Inspection(String),
    #[error(
        "cannot listen on {addr} ({key}): {source}{}",
        listen_hint(key, source)
    )]
    Listen {
        addr: SocketAddr,
        /// The setting that names the address.
        key: &'static str,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the token exchange service ([sts]): {0}")]
    Sts(String),
    #[error("OpenTelemetry (the OTEL_* variables): {0}")]
    Telemetry(String),
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
}

/// What the proxy is made of, prepared before any runtime exists.
pub(crate) struct Prepared {
    pub cfg: ProxyConfig,
    pub hosts: Hosts,
    pub ca: Ca,
    pub tokens: Arc<Tokens>,
    pub audit: Arc<Audit>,
    pub upstream: reqwest::Client,
    pub git: Arc<inspect::Git>,
    pub config_path: Option<PathBuf>,
    /// The token exchange service and its TLS, when `[sts]` is set.
    pub sts: Option<(Sts, Option<tokio_rustls::TlsAcceptor>)>,
}

/// Prepares everything that can fail before serving: the key, the CA, the audit log, the
/// upstream client, git. Synchronous: call it before any runtime exists.
pub(crate) fn prepare(cfg: ProxyConfig) -> Result<Prepared, StartError> {
    ghapp_core::jwt::install_crypto_providers();
    let hosts = Hosts::new(cfg.github()).with_storage(&cfg.lfs_storage_hosts);
    let ca = Ca::load_or_create(&cfg.ca_dir, &hosts.intercepted()).map_err(StartError::Ca)?;
    let upstream_ca = upstream_ca(&cfg)?;
    let telemetry =
        crate::audit::telemetry::Telemetry::from_env().map_err(StartError::Telemetry)?;
    let audit = Arc::new(
        Audit::open(cfg.audit_log.as_deref(), cfg.audit_max_bytes)
            .map_err(StartError::Audit)?
            .with_telemetry(telemetry),
    );
    let mut brokers = Vec::new();
    for app in &cfg.apps {
        let mut broker = Broker::new(app.clone(), cfg.refresh_margin, &cfg.cache_dir)
            .map_err(|e| StartError::App(e.to_string()))?;
        if upstream_ca.is_some() || !cfg.resolve.is_empty() {
            broker = broker.with_client(
                ghapp_core::client::GitHubClient::with_resolve(
                    app.api_url(),
                    upstream_ca.as_deref(),
                    &cfg.resolve,
                )
                .map_err(|e| StartError::Client(e.to_string()))?,
            );
        }
        let broker = broker.with_deadline(Duration::from_secs(20));
        // The key's error names the setting of this file, not the environment's.
        broker.load_key_now().map_err(|e| match e {
            ghapp_core::Error::KeyFileUnreadable { path, reason } => {
                StartError::KeyFile { path, reason }
            }
            e => StartError::App(e.to_string()),
        })?;
        brokers.push(broker);
    }
    let upstream = upstream_client(&cfg, upstream_ca.as_deref())?;
    let git_origin = reqwest::Url::parse(&format!("https://{}/", hosts.git))
        .map_err(|e| StartError::Client(format!("the git host {}: {e}", hosts.git)))?;
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
        git.prepare().map_err(StartError::Inspection)?;
    }
    let tokens = Arc::new(Tokens::new(brokers, audit.clone()));
    let sts = match &cfg.sts {
        Some(s) => {
            Some(crate::sts::prepare(s, tokens.clone(), audit.clone()).map_err(StartError::Sts)?)
        }
        None => None,
    };
    Ok(Prepared {
        sts,
        tokens,
        hosts,
        ca,
        audit,
        upstream,
        git: Arc::new(git),
        config_path: None,
        cfg,
    })
}

/// The `upstream_ca_file`'s certificates (PEM), when one is set.
fn upstream_ca(cfg: &ProxyConfig) -> Result<Option<String>, StartError> {
    cfg.upstream_ca_file
        .as_ref()
        .map(|p| {
            ghapp_core::fsutil::read_bounded(p, 4 << 20).map_err(|e| StartError::UpstreamCa {
                path: p.clone(),
                reason: e.to_string(),
            })
        })
        .transpose()
}

/// The client for GitHub (and the proxy's other outbound calls: notifications): the
/// configured trust and `resolve` overrides, no proxy, no redirects, HTTP/1.
fn upstream_client(
    cfg: &ProxyConfig,
    upstream_ca: Option<&str>,
) -> Result<reqwest::Client, StartError> {
    let tls = ghapp_core::client::tls_config_with(upstream_ca)
        .map_err(|e| StartError::Client(e.to_string()))?;
    let mut upstream = reqwest::Client::builder();
    for (name, ip) in &cfg.resolve {
        upstream = upstream.resolve(name, SocketAddr::new(*ip, 0));
    }
    upstream
        .use_preconfigured_tls(tls)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .http1_only()
        .build()
        .map_err(|e| StartError::Client(e.to_string()))
}

/// A notification receiver (its host) and the status it answered, or why none.
pub type Reached = (String, Result<u16, String>);

/// `ghapp notify test`: a test notification to each `[notify]` receiver, one attempt each;
/// per receiver (its host), the status it answered or why none. `None` without `[notify]`.
pub fn notify_test(cfg: &ProxyConfig) -> Result<Option<Vec<Reached>>, StartError> {
    let Some(n) = &cfg.notify else {
        return Ok(None);
    };
    ghapp_core::jwt::install_crypto_providers();
    let client = upstream_client(cfg, upstream_ca(cfg)?.as_deref())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(StartError::Runtime)?;
    Ok(Some(rt.block_on(crate::notify::test(n, &client))))
}

/// What to do when an address cannot be listened on.
fn listen_hint(key: &str, e: &std::io::Error) -> String {
    let flag = if key == "listen" {
        " (or --listen ADDR)"
    } else {
        ""
    };
    match e.kind() {
        std::io::ErrorKind::AddrInUse => format!(
            ": another process holds that port: stop it, or set another {key}{flag} (port 0: any free one)"
        ),
        std::io::ErrorKind::PermissionDenied => {
            format!(": a port under 1024 needs privileges: set {key}{flag} to a higher one")
        }
        std::io::ErrorKind::AddrNotAvailable => {
            format!(": no interface of this machine has that address: fix {key}{flag}")
        }
        _ => String::new(),
    }
}

/// Serves on the configured addresses from a background thread with its own runtime. The
/// state store is opened (and migrated) first, so a store that cannot be opened is an error
/// here, not a failing request later.
pub(crate) fn start(p: Prepared) -> Result<Running, StartError> {
    let bind = |a: SocketAddr, key: &'static str| -> Result<std::net::TcpListener, StartError> {
        let listen_error = |source| StartError::Listen {
            addr: a,
            key,
            source,
        };
        let l = std::net::TcpListener::bind(a).map_err(listen_error)?;
        l.set_nonblocking(true).map_err(listen_error)?;
        Ok(l)
    };
    let mut cfg = p.cfg;
    let listener = bind(cfg.listen, "listen")?;
    let metrics = cfg
        .metrics_listen
        .map(|a| bind(a, "metrics_listen"))
        .transpose()?;
    let admin = cfg
        .admin_listen
        .map(|a| bind(a, "admin_listen"))
        .transpose()?;
    let webhooks = cfg
        .webhook_listen
        .map(|a| bind(a, "webhook_listen"))
        .transpose()?;
    let sts_listener = cfg
        .sts
        .as_ref()
        .map(|s| bind(s.listen, "[sts] listen"))
        .transpose()?;
    let addr_of = |l: &std::net::TcpListener| l.local_addr().ok();
    let addr = addr_of(&listener).unwrap_or(cfg.listen);
    // The proxy's own listeners, as bound, are never a tunnel's destination.
    cfg.listen = addr;
    cfg.metrics_listen = metrics.as_ref().and_then(addr_of);
    cfg.admin_listen = admin.as_ref().and_then(addr_of);
    cfg.webhook_listen = webhooks.as_ref().and_then(addr_of);
    if let (Some(s), Some(a)) = (cfg.sts.as_mut(), sts_listener.as_ref().and_then(addr_of)) {
        s.listen = a;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(StartError::Runtime)?;
    let store = match &cfg.state {
        Some(url) => Some(rt.block_on(Store::open(url))?),
        None => None,
    };
    let cfg = Arc::new(cfg);
    let sts = p.sts.map(|(s, tls)| (Arc::new(s), tls));
    let live = Arc::new(Snapshot::new(Live::of(&cfg)));
    let github = Arc::new(Api::new(
        p.upstream.clone(),
        p.tokens.clone(),
        p.hosts.clone(),
        cfg.github().api_url().to_owned(),
    ));
    let data = Arc::new(DataPlane::new(
        cfg.clone(),
        live,
        p.hosts,
        p.ca,
        p.audit,
        p.tokens,
        github,
        p.upstream,
        p.git,
    ));
    if let Some(store) = store {
        let _ = data.store.set(store);
    }
    let control = Arc::new(ControlPlane::new(data.clone(), p.config_path));
    rt.block_on(control.sync_store());
    let running = Running {
        addr,
        metrics_addr: cfg.metrics_listen,
        admin_addr: cfg.admin_listen,
        webhook_addr: cfg.webhook_listen,
        sts_addr: cfg.sts.as_ref().map(|s| s.listen),
        shutdown: None,
        thread: None,
    };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let audit = data.audit.clone();
    let thread = std::thread::Builder::new()
        .name("ghapp-proxy".into())
        .spawn(move || {
            rt.block_on(async move {
                let limits = &data.cfg.limits;
                let on_error = {
                    let audit = data.audit.clone();
                    move |why: &'static str| {
                        if why == "accept_error" {
                            audit.metrics.accept_errors.inc();
                        } else {
                            audit.metrics.connection_refused(why);
                        }
                    }
                };
                let c = control.clone();
                spawn_side(metrics, None, limits, on_error.clone(), move |req, _| {
                    let c = c.clone();
                    async move { c.health(req).await }
                });
                let c = control.clone();
                spawn_side(admin, None, limits, on_error.clone(), move |req, peer| {
                    let c = c.clone();
                    async move { c.admin(req, peer).await }
                });
                let c = control.clone();
                spawn_side(
                    webhooks,
                    None,
                    limits,
                    on_error.clone(),
                    move |req, peer| {
                        let c = c.clone();
                        async move { c.webhook(req, peer).await }
                    },
                );
                if let Some((sts, tls)) = sts {
                    spawn_side(
                        sts_listener,
                        tls,
                        limits,
                        on_error.clone(),
                        move |req, peer| {
                            let sts = sts.clone();
                            async move { sts.handle(req, peer).await }
                        },
                    );
                }
                control.spawn_loops();
                data.notify.start();
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                let gate = data.gate.clone();
                transport::serve(data, gate, listener, rx).await;
            });
            rt.shutdown_timeout(Duration::from_millis(200));
            // What the exporters hold is sent before the proxy is gone.
            audit.telemetry.shutdown();
        })
        .map_err(StartError::Runtime)?;
    Ok(Running {
        shutdown: Some(tx),
        thread: Some(thread),
        ..running
    })
}

/// Serves a side listener (when configured) on the running runtime, with the side limits.
fn spawn_side<H, Fut>(
    listener: Option<std::net::TcpListener>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: &crate::limits::Limits,
    on_error: impl Fn(&'static str) + Send + Sync + 'static,
    handle: H,
) where
    H: Fn(hyper::Request<hyper::body::Incoming>, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = hyper::Response<crate::respond::Body>> + Send + 'static,
{
    let Some(l) = listener.and_then(|l| tokio::net::TcpListener::from_std(l).ok()) else {
        return;
    };
    tokio::spawn(transport::serve_side(
        l,
        tls,
        limits.max_side_connections,
        limits.header_timeout,
        on_error,
        handle,
    ));
}

/// A running proxy; dropping it stops it.
pub struct Running {
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    admin_addr: Option<SocketAddr>,
    webhook_addr: Option<SocketAddr>,
    sts_addr: Option<SocketAddr>,
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
    /// The token exchange service's address, with whether it serves TLS itself.
    pub fn sts_addr(&self) -> Option<SocketAddr> {
        self.sts_addr
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
