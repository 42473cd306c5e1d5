//! What keeps one sandbox, or one flood of connections, from taking the proxy down: caps on
//! connections (in all, per source, unauthenticated, tunnels per sandbox), deadlines on every
//! wait (the request head, the TLS handshake, idle connections, buffered bodies), a budget for
//! the memory held in partial bodies, and a per-source rate limit on wrong proxy credentials.

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub(crate) use crate::config::Limits;

/// Shared counters behind [`Limits`].
#[derive(Debug)]
pub(crate) struct Gate {
    pub limits: Limits,
    all: Arc<Semaphore>,
    unauthenticated: Arc<Semaphore>,
    per_source: Mutex<HashMap<IpAddr, usize>>,
    tunnels: Mutex<HashMap<String, Arc<Semaphore>>>,
    failures: Failures,
    pub budget: Arc<Budget>,
}

/// Why a connection was not admitted: which cap is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Full {
    Connections,
    FromSource,
    Unauthenticated,
}

impl Full {
    pub(crate) fn metric(self) -> &'static str {
        match self {
            Full::Connections => "all",
            Full::FromSource => "per_source",
            Full::Unauthenticated => "unauthenticated",
        }
    }
}

impl Gate {
    pub(crate) fn new(limits: Limits) -> Gate {
        Gate {
            all: Arc::new(Semaphore::new(limits.max_connections)),
            unauthenticated: Arc::new(Semaphore::new(limits.max_unauthenticated)),
            per_source: Mutex::new(HashMap::new()),
            tunnels: Mutex::new(HashMap::new()),
            failures: Failures::new(limits.login_failures_per_minute),
            budget: Arc::new(Budget::new(limits.max_buffered_bytes)),
            limits,
        }
    }

    /// Admits a new connection from `source`, or says why not.
    pub(crate) fn admit(self: &Arc<Self>, source: IpAddr) -> Result<Conn, Full> {
        let all = self
            .all
            .clone()
            .try_acquire_owned()
            .map_err(|_| Full::Connections)?;
        {
            let mut m = self.per_source.lock().unwrap_or_else(|e| e.into_inner());
            let n = m.entry(source).or_default();
            if *n >= self.limits.max_connections_per_source {
                return Err(Full::FromSource);
            }
            *n += 1;
        }
        let source_guard = SourceGuard {
            gate: self.clone(),
            source,
        };
        let unauth = self
            .unauthenticated
            .clone()
            .try_acquire_owned()
            .map_err(|_| Full::Unauthenticated)?;
        Ok(Conn {
            _all: all,
            _source: source_guard,
            unauth: Mutex::new(Some(unauth)),
            authenticated: Arc::new(AtomicBool::new(false)),
            source,
        })
    }

    /// A tunnel slot for `sandbox`, or `None` when it has `max_tunnels_per_sandbox` open.
    pub(crate) fn tunnel(&self, sandbox: &str) -> Option<OwnedSemaphorePermit> {
        let sem = {
            let mut m = self.tunnels.lock().unwrap_or_else(|e| e.into_inner());
            m.entry(sandbox.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(self.limits.max_tunnels_per_sandbox)))
                .clone()
        };
        sem.try_acquire_owned().ok()
    }

    pub(crate) fn login_blocked(&self, source: IpAddr) -> bool {
        self.failures.blocked(source)
    }

    /// Counts a wrong-credential attempt from `source`.
    pub(crate) fn login_failed(&self, source: IpAddr) {
        self.failures.failed(source);
    }
}

/// Failed attempts per source address in the last minute: past `per_minute`, the source is
/// refused without a check until its minute is over.
#[derive(Debug)]
pub(crate) struct Failures {
    per_minute: u32,
    map: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl Failures {
    pub(crate) fn new(per_minute: u32) -> Failures {
        Failures {
            per_minute,
            map: Mutex::default(),
        }
    }

    /// Whether `source` is refused for now, and for how many more seconds.
    pub(crate) fn blocked_for(&self, source: IpAddr) -> Option<u64> {
        let m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        m.get(&source).and_then(|(since, n)| {
            let left = Duration::from_secs(60).checked_sub(since.elapsed())?;
            (*n >= self.per_minute).then(|| left.as_secs().max(1))
        })
    }

    pub(crate) fn blocked(&self, source: IpAddr) -> bool {
        self.blocked_for(source).is_some()
    }

    /// Counts a failed attempt from `source`.
    pub(crate) fn failed(&self, source: IpAddr) {
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() > 100_000 {
            m.retain(|_, (since, _)| since.elapsed() < Duration::from_secs(60));
        }
        let e = m.entry(source).or_insert((Instant::now(), 0));
        if e.0.elapsed() >= Duration::from_secs(60) {
            *e = (Instant::now(), 0);
        }
        e.1 += 1;
    }
}

struct SourceGuard {
    gate: Arc<Gate>,
    source: IpAddr,
}

impl std::fmt::Debug for SourceGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SourceGuard({})", self.source)
    }
}

impl Drop for SourceGuard {
    fn drop(&mut self) {
        let mut m = self
            .gate
            .per_source
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&self.source) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&self.source);
            }
        }
    }
}

/// One admitted connection; its slots are given back when the last holder drops it (the
/// connection and, after `CONNECT`, its tunnel).
#[derive(Debug)]
pub(crate) struct Conn {
    _all: OwnedSemaphorePermit,
    _source: SourceGuard,
    unauth: Mutex<Option<OwnedSemaphorePermit>>,
    authenticated: Arc<AtomicBool>,
    pub source: IpAddr,
}

impl Conn {
    /// The connection opened a tunnel with valid credentials: its unauthenticated slot is
    /// given back and its deadline becomes the idle timeout.
    pub(crate) fn authenticated(&self) {
        self.authenticated.store(true, Ordering::Relaxed);
        self.unauth.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    /// The I/O of this connection under its deadlines.
    pub(crate) fn watch<T>(&self, io: T, limits: &Limits) -> Watched<T> {
        Watched {
            inner: io,
            authenticated: self.authenticated.clone(),
            idle_clock: false,
            idle: limits.idle_timeout,
            timer: Box::pin(tokio::time::sleep(limits.header_timeout)),
        }
    }
}

/// I/O that fails with `TimedOut` when a connection has not authenticated by its deadline
/// (an absolute one: a trickle of bytes does not extend it), or, once authenticated, when no
/// byte has moved for the idle timeout. It wraps the accepted socket, so it keeps watching
/// after `CONNECT` hands the socket to a tunnel.
pub(crate) struct Watched<T> {
    inner: T,
    authenticated: Arc<AtomicBool>,
    /// Whether the timer runs the idle clock (else the deadline to authenticate).
    idle_clock: bool,
    idle: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl<T> Watched<T> {
    fn progress(&mut self) {
        if self.authenticated.load(Ordering::Relaxed) {
            self.idle_clock = true;
            self.timer
                .as_mut()
                .reset(tokio::time::Instant::now() + self.idle);
        }
    }

    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        if self.timer.as_mut().poll(cx).is_pending() {
            return false;
        }
        if !self.idle_clock && self.authenticated.load(Ordering::Relaxed) {
            // Authenticated since the timer was set, with no byte since: start the idle clock.
            self.progress();
            return self.timer.as_mut().poll(cx).is_ready();
        }
        true
    }
}

fn timed_out() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, "connection deadline passed")
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    self.progress();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(timed_out())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, data) {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    self.progress();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(timed_out())),
            other => other,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The memory the proxy may hold in partial bodies, in all.
#[derive(Debug)]
pub(crate) struct Budget {
    used: AtomicUsize,
    max: usize,
}

impl Budget {
    pub(crate) fn new(max: usize) -> Budget {
        Budget {
            used: AtomicUsize::new(0),
            max,
        }
    }

    /// Bytes held now (the tests read it).
    #[cfg(test)]
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }
}

/// Bytes taken from a [`Budget`]; given back on drop.
#[derive(Debug)]
pub(crate) struct Reservation {
    budget: Arc<Budget>,
    held: usize,
}

impl Reservation {
    pub(crate) fn new(budget: Arc<Budget>) -> Reservation {
        Reservation { budget, held: 0 }
    }

    /// Takes `n` more bytes; `false` when that would pass the budget (nothing is taken).
    pub(crate) fn grow(&mut self, n: usize) -> bool {
        let b = &self.budget;
        let ok = b
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                u.checked_add(n).filter(|t| *t <= b.max)
            })
            .is_ok();
        if ok {
            self.held += n;
        }
        ok
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.held, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn gate(l: Limits) -> Arc<Gate> {
        Arc::new(Gate::new(l))
    }

    #[test]
    fn a_source_holds_at_most_its_places() {
        let p = PerSource::new(2);
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.3".parse().unwrap();
        let one = p.take(a).unwrap();
        let _two = p.take(a).unwrap();
        assert!(p.take(a).is_none());
        assert!(p.take(b).is_some(), "another source is not held back");
        drop(one);
        assert!(p.take(a).is_some());
    }

    #[test]
    fn connection_caps() {
        let g = gate(Limits {
            max_connections: 3,
            max_connections_per_source: 2,
            max_unauthenticated: 2,
            ..Limits::default()
        });
        let a = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
        let b = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
        let c1 = g.admit(a).unwrap();
        let _c2 = g.admit(a).unwrap();
        assert_eq!(g.admit(a).unwrap_err(), Full::FromSource);
        // Two unauthenticated already: b is refused until one authenticates.
        assert_eq!(g.admit(b).unwrap_err(), Full::Unauthenticated);
        c1.authenticated();
        let _c3 = g.admit(b).unwrap();
        assert_eq!(g.admit(b).unwrap_err(), Full::Connections);
        drop(c1);
        assert!(g.per_source.lock().unwrap()[&a] == 1);
    }

    #[test]
    fn tunnels_and_logins() {
        let g = gate(Limits {
            max_tunnels_per_sandbox: 1,
            login_failures_per_minute: 2,
            ..Limits::default()
        });
        let t = g.tunnel("a").unwrap();
        assert!(g.tunnel("a").is_none());
        assert!(g.tunnel("b").is_some());
        drop(t);
        assert!(g.tunnel("a").is_some());
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert!(!g.login_blocked(ip));
        g.login_failed(ip);
        assert!(!g.login_blocked(ip));
        g.login_failed(ip);
        assert!(g.login_blocked(ip));
    }

    #[test]
    fn budget() {
        let b = Arc::new(Budget::new(10));
        let mut r1 = Reservation::new(b.clone());
        assert!(r1.grow(6));
        let mut r2 = Reservation::new(b.clone());
        assert!(!r2.grow(5));
        assert!(r2.grow(4));
        drop(r1);
        assert_eq!(b.used(), 4);
        drop(r2);
        assert_eq!(b.used(), 0);
    }
}

/// At most `max` things at once per source address (deliveries in flight, sign-ins).
#[derive(Debug)]
pub(crate) struct PerSource {
    max: usize,
    held: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One of a source's places; given back on drop.
#[derive(Debug)]
pub(crate) struct SourceSlot {
    held: Arc<Mutex<HashMap<IpAddr, usize>>>,
    source: IpAddr,
}

impl PerSource {
    pub(crate) fn new(max: usize) -> PerSource {
        PerSource {
            max,
            held: Arc::default(),
        }
    }

    /// A place for `source`, or `None` when it holds `max` already.
    pub(crate) fn take(&self, source: IpAddr) -> Option<SourceSlot> {
        let mut m = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry(source).or_default();
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(SourceSlot {
            held: self.held.clone(),
            source,
        })
    }
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut m = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.source);
            }
        }
    }
}
