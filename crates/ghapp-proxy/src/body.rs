//! Reading the request bodies the proxy must look at before it forwards: a push's command
//! section (incrementally, then streamed on with the pack) and a checked REST body. Every read
//! has a deadline and every byte held counts against the proxy's buffer budget.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use ghapp_gitproto::receive_pack::{self, Commands};
use ghapp_gitproto::secrets::{Finding, Scanner};
use http_body_util::BodyExt;
use hyper::StatusCode;
use hyper::body::Incoming;
use hyper::header::HeaderMap;

use crate::limits::{Budget, Limits, Reservation};
use crate::respond::Refusal;

/// The largest receive-pack command section read before deciding.
pub const COMMAND_SECTION_LIMIT: usize = 1 << 20;
/// The largest REST body the proxy reads to check it.
pub(crate) const REST_BODY_LIMIT: usize = 1 << 20;
/// How much of a refused push is drained before answering (so git reads the answer).
const DRAIN_LIMIT: u64 = 1 << 30;
const DRAIN_TIME: Duration = Duration::from_secs(60);

/// A push's command section, the bytes it came in (forwarded first), and the budget they hold.
pub(crate) struct Section {
    pub commands: Commands,
    pub bytes: Vec<u8>,
    pub _held: Reservation,
}

fn busy() -> Refusal {
    Refusal::text(
        StatusCode::SERVICE_UNAVAILABLE,
        "the proxy holds too many partial request bodies (max_buffered_bytes); try again",
    )
    .retry_after(5)
}

/// Reads the command section at the front of a push body.
pub(crate) async fn command_section(
    body: &mut Incoming,
    limits: &Limits,
    budget: &Arc<Budget>,
) -> Result<Section, Refusal> {
    let deadline = tokio::time::Instant::now() + limits.body_timeout;
    let mut parser = receive_pack::Parser::new(COMMAND_SECTION_LIMIT);
    let mut held = Reservation::new(budget.clone());
    let mut bytes: Vec<u8> = Vec::new();
    loop {
        match parser.feed(&bytes) {
            Ok(Some(commands)) => {
                return Ok(Section {
                    commands,
                    bytes,
                    _held: held,
                });
            }
            Ok(None) => {}
            Err(e) => return Err(Refusal::text(StatusCode::BAD_REQUEST, e.to_string())),
        }
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => {
                return Err(Refusal::text(
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
                        return Err(busy());
                    }
                    bytes.extend_from_slice(&d);
                }
            }
            Ok(Some(Err(_)) | None) => {
                return Err(Refusal::text(
                    StatusCode::BAD_REQUEST,
                    "the push request ended inside its command section",
                ));
            }
        }
    }
}

/// Reads and discards what is left of a refused push (bounded), so git, still sending its
/// pack, reads the answer. Returns the bytes drained.
pub(crate) async fn drain(body: Incoming) -> u64 {
    drain_within(body, DRAIN_LIMIT, DRAIN_TIME).await
}

/// Reads and discards the body of a request refused before it was read, when it is small
/// (up to [`REFUSED_DRAIN_LIMIT`] in [`REFUSED_DRAIN_TIME`]), so the connection stays usable
/// for the client's next request; a larger one is left, and the connection closes.
pub(crate) async fn drain_refused(body: Incoming) -> u64 {
    drain_within(body, REFUSED_DRAIN_LIMIT, REFUSED_DRAIN_TIME).await
}

const REFUSED_DRAIN_LIMIT: u64 = 1 << 20;
const REFUSED_DRAIN_TIME: Duration = Duration::from_secs(2);

async fn drain_within(mut body: Incoming, limit: u64, time: Duration) -> u64 {
    let deadline = Instant::now() + time;
    let mut drained = 0u64;
    while drained < limit && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(5), body.frame()).await {
            Ok(Some(Ok(f))) => drained += f.data_ref().map(|d| d.len() as u64).unwrap_or(0),
            _ => break,
        }
    }
    drained
}

/// Reads a whole REST body (at most [`REST_BODY_LIMIT`]) within the deadline. A body over the
/// limit is answered 413 without being held: one that declares it up front before anything is
/// read (so a client waiting on `Expect: 100-continue` is never told to go on), and the rest of
/// what the client sends is read and dropped (bounded) first, so it reads the answer instead of
/// a closed connection.
pub(crate) async fn whole(
    body: Incoming,
    headers: &HeaderMap,
    limits: &Limits,
    budget: &Arc<Budget>,
) -> Result<Bytes, Refusal> {
    let too_large = |n: Option<u64>| {
        Refusal::json(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the request body{} is over the {} KiB the proxy reads to check a request",
                n.map(|n| format!(" of {n} bytes")).unwrap_or_default(),
                REST_BODY_LIMIT >> 10
            ),
        )
    };
    let length = headers
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if let Some(n) = length
        && n > REST_BODY_LIMIT as u64
    {
        let waits = headers
            .get(hyper::header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        if !waits {
            drain_within(body, n.min(DRAIN_LIMIT), limits.body_timeout).await;
        }
        return Err(too_large(Some(n)));
    }
    let declared = length.map_or(REST_BODY_LIMIT, |n| n as usize);
    let mut held = Reservation::new(budget.clone());
    if !held.grow(declared) {
        let mut r = busy();
        r.form = crate::respond::Form::Json;
        return Err(r);
    }
    let mut body = body;
    let read = async {
        let mut out = bytes::BytesMut::new();
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame.map(|f| f.into_data().unwrap_or_default()) else {
                return Err(Refusal::json(
                    StatusCode::BAD_REQUEST,
                    "the request body was cut off",
                ));
            };
            if out.len() + data.len() > declared {
                return Err(too_large(None));
            }
            out.extend_from_slice(&data);
        }
        Ok(out.freeze())
    };
    let result = match tokio::time::timeout(limits.body_timeout, read).await {
        Ok(r) => r,
        Err(_) => Err(Refusal::json(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request body did not arrive within {} (body_timeout)",
                humantime::format_duration(limits.body_timeout)
            ),
        )),
    };
    if result
        .as_ref()
        .is_err_and(|r| r.status == StatusCode::PAYLOAD_TOO_LARGE)
    {
        drain_within(body, DRAIN_LIMIT, limits.body_timeout).await;
    }
    result
}

/// An upstream answer's body read whole: at most `max` bytes, within `wait`.
pub(crate) async fn read_bounded(
    resp: reqwest::Response,
    max: usize,
    wait: Duration,
) -> Result<Vec<u8>, String> {
    let read = async {
        let mut body = Vec::new();
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|e| format!("cut off: {}", ghapp_core::client::root_cause(&e)))?;
            if body.len() + chunk.len() > max {
                return Err(format!("over {} KiB", max >> 10));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    };
    tokio::time::timeout(wait, read)
        .await
        .unwrap_or_else(|_| Err(format!("not complete in {} s", wait.as_secs())))
}

/// A request body streamed on, counted.
pub(crate) fn streamed(body: Incoming, counter: Arc<AtomicU64>) -> reqwest::Body {
    reqwest::Body::wrap_stream(coalesce(stream_incoming(body, counter)))
}

/// `body` streamed on while [`Scanner`] reads it, its last
/// piece held back until the whole has been read: a credential found (put in `found`) ends the
/// stream with an error before the receiver has every byte, so an upload with a declared length
/// is never complete upstream. The rest of the sender's body is read first (and dropped, up to
/// the drain limit), so it reads the refusal instead of a broken connection it would retry.
pub(crate) fn scanned(
    body: Incoming,
    counter: Arc<AtomicU64>,
    found: Arc<std::sync::OnceLock<Finding>>,
) -> reqwest::Body {
    let state = Scanned {
        inner: Box::pin(coalesce(stream_incoming(body, counter))),
        scanner: Some(Scanner::new()),
        held: None,
        found,
    };
    let s = futures_util::stream::unfold(Some(state), |st| async move {
        let mut st = st?;
        loop {
            match st.inner.next().await {
                Some(Ok(piece)) => {
                    if let Some(f) = st.scanner.as_mut().and_then(|sc| {
                        sc.feed(&piece);
                        sc.found()
                    }) {
                        return Some((Err(st.refuse(f).await), None));
                    }
                    if let Some(out) = st.held.replace(piece) {
                        return Some((Ok(out), Some(st)));
                    }
                }
                Some(Err(e)) => return Some((Err(e), None)),
                None => {
                    if let Some(f) = st.scanner.take().and_then(Scanner::finish) {
                        return Some((Err(st.refuse(f).await), None));
                    }
                    return st.held.take().map(|out| (Ok(out), None));
                }
            }
        }
    });
    reqwest::Body::wrap_stream(s)
}

/// [`scanned`]'s state: the body, the scan, the piece held back.
struct Scanned {
    inner:
        std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send>>,
    scanner: Option<Scanner>,
    held: Option<Bytes>,
    found: Arc<std::sync::OnceLock<Finding>>,
}

impl Scanned {
    /// `f` found: the rest of the body read and dropped (bounded), the error that ends it.
    async fn refuse(&mut self, f: Finding) -> std::io::Error {
        let _ = self.found.set(f);
        let mut drained = 0u64;
        while drained < DRAIN_LIMIT
            && let Ok(Some(Ok(piece))) = tokio::time::timeout(DRAIN_TIME, self.inner.next()).await
        {
            drained += piece.len() as u64;
        }
        std::io::Error::other("a credential in the upload")
    }
}

/// `prefix` (already read, e.g. a push's command section), then the rest of `body`, streamed.
pub(crate) fn prefixed(prefix: Vec<u8>, body: Incoming, counter: Arc<AtomicU64>) -> reqwest::Body {
    let first =
        futures_util::stream::once(async move { Ok::<Bytes, std::io::Error>(Bytes::from(prefix)) });
    reqwest::Body::wrap_stream(coalesce(first.chain(stream_incoming(body, counter))))
}

/// Joins the chunks that are already there into one (up to 64 of them), so a pack crosses the
/// upstream TLS connection in large records instead of one per small read; a chunk is never
/// held back waiting for more (git's small protocol messages pass at once).
pub(crate) fn coalesce(
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

fn stream_incoming(
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
