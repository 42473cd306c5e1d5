//! Starting the proxy: its listeners bound, the state store opened, a runtime on a thread of
//! its own; [`Running`] stops it when dropped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::{Proxy, store};

impl Proxy {
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
