//! fakehub's HTTPS server: the accept loop, the log of every request as it arrived, routing
//! to the API, git, the web pages and the test-control endpoints, and the response helpers.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use crate::hub::{self, Received};
use crate::{Body, api, git, graphql, manifest};

pub(crate) async fn serve(
    hub: Arc<hub::Hub>,
    listener: std::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    mut shutdown: tokio::sync::oneshot::Receiver<()>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("fakehub cannot listen: {e}");
            return;
        }
    };
    loop {
        let (stream, _) = tokio::select! {
            _ = &mut shutdown => return,
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(_) => continue,
            },
        };
        let acceptor = acceptor.clone();
        let hub = hub.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(stream).await else {
                return;
            };
            let svc = hyper::service::service_fn(move |req| route(hub.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), svc)
                .await;
        });
    }
}

/// Notes what arrived, as it arrived.
fn receive(hub: &hub::Hub, req: &Request<Incoming>) {
    let secret = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|v| match v.split_once(' ') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("basic") => {
                ghapp_gitproto::basic::parse(v).map_or_else(|| rest.to_owned(), |(_, p)| p)
            }
            Some((_, rest)) => rest.trim().to_owned(),
            None => v.to_owned(),
        });
    let credential = secret.as_deref().map(|secret| {
        if secret.starts_with("eyJ") && secret.matches('.').count() == 2 {
            "jwt".to_owned()
        } else {
            fingerprint(secret)
        }
    });
    let permissions = secret.as_deref().and_then(|secret| {
        hub.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(secret)
            .map(|t| t.permissions.clone())
    });
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let mut log = hub.received.lock().unwrap_or_else(|e| e.into_inner());
    if log.len() >= 100_000 {
        log.pop_front();
    }
    log.push_back(Received {
        method: req.method().to_string(),
        target,
        credential,
        permissions,
        headers: req
            .headers()
            .keys()
            .map(|k| k.as_str().to_owned())
            .collect(),
    });
}

/// `sha256:` and 12 hex digits, the form ghapp's audit uses for tokens.
fn fingerprint(value: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(value.as_bytes());
    let hex: String = d.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// `Err`: drop the connection without an answer (a fault knob).
async fn route(
    hub: Arc<hub::Hub>,
    req: Request<Incoming>,
) -> Result<Response<Body>, std::io::Error> {
    receive(&hub, &req);
    let path = req.uri().path().to_owned();
    let host = req
        .headers()
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or_default()
        .to_ascii_lowercase();
    let mut resp = if host == hub.lfs_host {
        crate::lfs::storage(hub.clone(), req, &path).await
    } else if let Some(rest) = path.strip_prefix("/_lfs/") {
        crate::lfs::storage(hub.clone(), req, rest).await
    } else if path.contains("/info/lfs/") {
        crate::lfs::api(hub.clone(), req, &path).await
    } else if let Some(rest) = path.strip_prefix("/api/v3") {
        api::handle(hub.clone(), req, rest).await
    } else if path == "/api/graphql" && req.method() == hyper::Method::POST {
        graphql::handle(hub.clone(), req).await
    } else if let Some(rest) = path.strip_prefix(crate::oidc::PREFIX) {
        crate::oidc::handle(&hub, req, rest).await
    } else if path.starts_with("/_fakehub/") {
        control(&hub, req, &path).await
    } else if let Some(r) = web(&path) {
        match r {
            Web::NewApp(org) => manifest::new_app(hub.clone(), req, org).await,
            Web::Install(slug) => manifest::install(hub.clone(), req, &slug).await,
        }
    } else if let Some(g) = git::parse_path(&path) {
        git::handle(hub.clone(), req, g).await?
    } else {
        text(StatusCode::NOT_FOUND, "Not Found\n")
    };
    let date = httpdate::fmt_http_date(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(hub.now().max(0) as u64),
    );
    if let Ok(v) = date.parse() {
        resp.headers_mut().insert(hyper::header::DATE, v);
    }
    Ok(resp)
}

/// The web pages fakehub serves (what a browser would click through).
enum Web {
    NewApp(Option<String>),
    Install(String),
}

fn web(path: &str) -> Option<Web> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segs.as_slice() {
        ["settings", "apps", "new"] => Some(Web::NewApp(None)),
        ["organizations", org, "settings", "apps", "new"] => Some(Web::NewApp(Some((*org).into()))),
        ["apps", slug, "installations", "new"] => Some(Web::Install((*slug).into())),
        _ => None,
    }
}

async fn control(hub: &hub::Hub, req: Request<Incoming>, path: &str) -> Response<Body> {
    match (req.method().clone(), path) {
        (hyper::Method::GET, "/_fakehub/state") => {
            let c = hub.with_counters(|c| serde_json::to_value(&*c).unwrap_or_default());
            json_response(StatusCode::OK, &c)
        }
        (hyper::Method::POST, "/_fakehub/knobs") => {
            let body = match http_body_util::Limited::new(req.into_body(), 16 * 1024)
                .collect()
                .await
            {
                Ok(b) => b.to_bytes(),
                Err(_) => return text(StatusCode::BAD_REQUEST, "body too large\n"),
            };
            let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(&body) else {
                return text(StatusCode::BAD_REQUEST, "expected a JSON object\n");
            };
            let k = &hub.knobs;
            for (name, v) in &m {
                let n = v.as_i64().unwrap_or(0);
                let u = n.max(0) as u64;
                match name.as_str() {
                    "fail_mints" => k.fail_mints.store(u, Ordering::SeqCst),
                    "fail_status" => k.fail_status.store(u, Ordering::SeqCst),
                    "rate_limit" => k.rate_limit.store(u, Ordering::SeqCst),
                    "rate_limit_status" => k.rate_limit_status.store(u, Ordering::SeqCst),
                    "retry_after" => k.retry_after.store(u, Ordering::SeqCst),
                    "clock_skew" => k.clock_skew.store(n, Ordering::SeqCst),
                    "token_ttl" => k.token_ttl.store(u, Ordering::SeqCst),
                    "delay_ms" => k.delay_ms.store(u, Ordering::SeqCst),
                    "classic_tokens" => k.classic_tokens.store(u, Ordering::SeqCst),
                    "drop_push_after" => k.drop_push_after.store(u, Ordering::SeqCst),
                    other => {
                        return text(
                            StatusCode::BAD_REQUEST,
                            &format!("unknown knob {other:?}\n"),
                        );
                    }
                }
            }
            empty(StatusCode::NO_CONTENT)
        }
        _ => text(StatusCode::NOT_FOUND, "Not Found\n"),
    }
}

pub(crate) fn json_response(status: StatusCode, v: &Value) -> Response<Body> {
    let body = serde_json::to_vec(v).unwrap_or_default();
    Response::builder()
        .status(status)
        .header("content-type", "application/json; charset=utf-8")
        .header("x-github-api-version-selected", "2022-11-28")
        .header("x-ratelimit-limit", "5000")
        .header("x-ratelimit-remaining", "4999")
        .body(full(body))
        .expect("valid response")
}

pub(crate) fn text(status: StatusCode, s: &str) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain; charset=utf-8")
        .body(full(s.as_bytes().to_vec()))
        .expect("valid response")
}

pub(crate) fn empty(status: StatusCode) -> Response<Body> {
    Response::builder()
        .status(status)
        .body(Empty::new().map_err(|e: Infallible| match e {}).boxed())
        .expect("valid response")
}

pub(crate) fn full(v: Vec<u8>) -> Body {
    Full::new(Bytes::from(v))
        .map_err(|e: Infallible| match e {})
        .boxed()
}
