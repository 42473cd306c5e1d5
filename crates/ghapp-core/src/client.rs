//! The GitHub REST client: reqwest over rustls (aws-lc-rs), trust roots from the system or the
//! PEM bundle in `SSL_CERT_FILE`, and GitHub's retry rules: 5xx, 429 and a secondary-rate-limit
//! 403 are retried with a capped backoff (or the server's `Retry-After`) under an overall deadline;
//! 401, 404 and 422 are never retried.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use reqwest::header::{HeaderMap, HeaderValue};
pub use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub const USER_AGENT: &str = concat!("ghapp/", env!("CARGO_PKG_VERSION"));
pub const API_VERSION: &str = "2022-11-28";
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(60);
const MAX_BACKOFF: Duration = Duration::from_secs(8);
const TRANSPORT_ATTEMPTS: u32 = 3;

/// An answer read whole (GitHub's API answers are small JSON documents).
#[derive(Debug)]
pub struct ApiResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl ApiResponse {
    /// GitHub's `message` field (one line, any credential in it redacted), or a short
    /// description of the body.
    pub fn message(&self) -> String {
        #[derive(Deserialize)]
        struct M {
            message: String,
        }
        match serde_json::from_slice::<M>(&self.body) {
            Ok(m) => ghapp_gitproto::secrets::redact(&m.message.replace('\n', " ")).into_owned(),
            Err(_) if self.body.is_empty() => "(empty body)".into(),
            Err(_) => "(not a JSON error body)".into(),
        }
    }

    /// The server's clock, from `Date`.
    pub fn date(&self) -> Option<SystemTime> {
        let v = self.headers.get(reqwest::header::DATE)?.to_str().ok()?;
        httpdate::parse_http_date(v).ok()
    }

    pub fn json<T: serde::de::DeserializeOwned>(&self, what: &str) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| Error::BadResponse {
            what: what.into(),
            detail: format!("{e}"),
        })
    }

    fn retry_after(&self) -> Option<Duration> {
        let v = self
            .headers
            .get(reqwest::header::RETRY_AFTER)?
            .to_str()
            .ok()?;
        if let Ok(secs) = v.trim().parse::<u64>() {
            return Some(Duration::from_secs(secs));
        }
        let at = httpdate::parse_http_date(v).ok()?;
        Some(at.duration_since(SystemTime::now()).unwrap_or_default())
    }
}

/// How a request authenticates.
#[derive(Clone, Copy)]
pub enum Auth<'a> {
    /// `Authorization: Bearer <app JWT>`.
    Jwt(&'a crate::secret::AppJwt),
    /// `Authorization: Bearer <installation token>`.
    Token(&'a crate::secret::InstallationToken),
    /// `Authorization: Bearer <personal access token>`.
    Pat(&'a crate::secret::PersonalAccessToken),
    None,
}

#[derive(Clone)]
pub struct GitHubClient {
    http: reqwest::Client,
    api: Arc<str>,
    deadline: Duration,
}

impl std::fmt::Debug for GitHubClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHubClient")
            .field("api", &self.api)
            .finish()
    }
}

/// A rustls client config trusting the system's roots, or only `SSL_CERT_FILE` when it is set.
pub fn tls_config() -> Result<rustls::ClientConfig> {
    tls_config_with(None)
}

/// Like [`tls_config`], or trusting only the CA certificates in `ca_pem` when given.
pub fn tls_config_with(ca_pem: Option<&str>) -> Result<rustls::ClientConfig> {
    crate::jwt::install_crypto_providers();
    let mut roots = rustls::RootCertStore::empty();
    let certs: Vec<_> = match ca_pem {
        Some(pem) => {
            use rustls::pki_types::pem::PemObject;
            rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
                .filter_map(|c| c.ok())
                .collect()
        }
        None => rustls_native_certs::load_native_certs().certs,
    };
    let (added, _ignored) = roots.add_parsable_certificates(certs);
    if added == 0 {
        let hint = match std::env::var("SSL_CERT_FILE") {
            Ok(f) => format!("SSL_CERT_FILE={f} holds no usable certificate"),
            Err(_) => "no system CA certificates were found".into(),
        };
        return Err(Error::Config(format!(
            "{hint}: install ca-certificates or set SSL_CERT_FILE to a PEM bundle"
        )));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS setup failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

impl GitHubClient {
    pub fn new(api_url: &str) -> Result<Self> {
        Self::build(api_url, tls_config()?, &[])
    }

    /// A client that trusts only `ca_pem` (an emulator's or a proxy's CA).
    pub fn with_ca(api_url: &str, ca_pem: &str) -> Result<Self> {
        Self::build(api_url, tls_config_with(Some(ca_pem))?, &[])
    }

    /// [`GitHubClient::with_ca`] when `ca_pem` is given, else [`GitHubClient::new`].
    pub fn with_tls(api_url: &str, ca_pem: Option<&str>) -> Result<Self> {
        Self::build(api_url, tls_config_with(ca_pem)?, &[])
    }

    /// As [`GitHubClient::with_tls`], with host names resolved to fixed addresses (the proxy's
    /// `resolve`: a GHES behind split DNS, an emulator served under a name).
    pub fn with_resolve(
        api_url: &str,
        ca_pem: Option<&str>,
        resolve: &[(String, std::net::IpAddr)],
    ) -> Result<Self> {
        Self::build(api_url, tls_config_with(ca_pem)?, resolve)
    }

    fn build(
        api_url: &str,
        tls: rustls::ClientConfig,
        resolve: &[(String, std::net::IpAddr)],
    ) -> Result<Self> {
        let mut headers = HeaderMap::new();
        headers.insert(
            reqwest::header::ACCEPT,
            HeaderValue::from_static("application/vnd.github+json"),
        );
        headers.insert(
            "X-GitHub-Api-Version",
            HeaderValue::from_static(API_VERSION),
        );
        let mut builder = reqwest::Client::builder();
        for (name, ip) in resolve {
            // Port 0: the URL's port is used.
            builder = builder.resolve(name, std::net::SocketAddr::new(*ip, 0));
        }
        let http = builder
            .use_preconfigured_tls(tls)
            .user_agent(USER_AGENT)
            .default_headers(headers)
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            // Never follow redirects with credentials attached.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            http,
            api: api_url.trim_end_matches('/').into(),
            deadline: DEFAULT_DEADLINE,
        })
    }

    /// Overall time allowed for retries of one request.
    pub fn with_deadline(mut self, d: Duration) -> Self {
        self.deadline = d;
        self
    }

    pub fn api_url(&self) -> &str {
        &self.api
    }

    /// Sends a request, retrying as GitHub asks. `path` starts with `/`.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        auth: Auth<'_>,
        body: Option<&serde_json::Value>,
    ) -> Result<ApiResponse> {
        let url = format!("{}{}", self.api, path);
        let what = format!("{method} {path}");
        let start = Instant::now();
        let mut transport_failures = 0;
        // One jittered schedule per request: twenty helpers that hit the same 502 do not come
        // back in lockstep. GitHub's own answers (Retry-After, the rate-limit reset) win.
        let mut schedule = backoff_schedule();
        let mut next_backoff = move || schedule.next().unwrap_or(MAX_BACKOFF);
        loop {
            let r = match self.send_once(&method, &url, auth, body).await {
                Ok(r) => r,
                Err(e) => {
                    transport_failures += 1;
                    let reason = transport_reason(&e);
                    tracing::debug!(%what, transport_failures, %reason, "request failed");
                    if transport_failures >= TRANSPORT_ATTEMPTS || start.elapsed() > self.deadline {
                        return Err(Error::Unreachable {
                            url: self.api.to_string(),
                            reason,
                        });
                    }
                    tokio::time::sleep(next_backoff()).await;
                    continue;
                }
            };
            let status = r.status;
            let Some(wait) = retry_wait(&r, &mut next_backoff) else {
                return Ok(r);
            };
            let elapsed = start.elapsed();
            if elapsed + wait > self.deadline {
                return Err(Error::GaveUp {
                    status: status.as_u16(),
                    what,
                    message: r.message(),
                    waited_secs: elapsed.as_secs(),
                    deadline_secs: self.deadline.as_secs(),
                });
            }
            tracing::info!(
                %what,
                status = status.as_u16(),
                wait_ms = wait.as_millis() as u64,
                "GitHub asked to retry"
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// Sends a request once, whatever the answer: for calls that must not be repeated (a
    /// manifest code converts once; a retry after GitHub consumed it would read as "used").
    pub async fn request_once(
        &self,
        method: Method,
        path: &str,
        auth: Auth<'_>,
        body: Option<&serde_json::Value>,
    ) -> Result<ApiResponse> {
        let url = format!("{}{}", self.api, path);
        self.send_once(&method, &url, auth, body)
            .await
            .map_err(|e| Error::Unreachable {
                url: self.api.to_string(),
                reason: transport_reason(&e),
            })
    }

    /// One request and its whole answer.
    async fn send_once(
        &self,
        method: &Method,
        url: &str,
        auth: Auth<'_>,
        body: Option<&serde_json::Value>,
    ) -> std::result::Result<ApiResponse, reqwest::Error> {
        let mut req = self.http.request(method.clone(), url);
        match auth {
            Auth::Jwt(j) => req = req.bearer_auth(j.expose()),
            Auth::Token(t) => req = req.bearer_auth(t.expose()),
            Auth::Pat(t) => req = req.bearer_auth(t.expose()),
            Auth::None => {}
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.bytes().await?.to_vec();
        Ok(ApiResponse {
            status,
            headers,
            body,
        })
    }

    pub async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        auth: Auth<'_>,
    ) -> Result<(ApiResponse, Option<T>)> {
        let r = self.request(Method::GET, path, auth, None).await?;
        let v = if r.status.is_success() {
            Some(r.json(path)?)
        } else {
            None
        };
        Ok((r, v))
    }
}

/// How long to wait before retrying, or `None` when the answer is final. GitHub's
/// `Retry-After` and rate-limit reset come first; else the next step of `backoff`.
fn retry_wait(r: &ApiResponse, backoff: &mut impl FnMut() -> Duration) -> Option<Duration> {
    let s = r.status;
    let secondary = s == StatusCode::FORBIDDEN
        && (r.headers.contains_key(reqwest::header::RETRY_AFTER)
            || r.headers
                .get("x-ratelimit-remaining")
                .is_some_and(|v| v.as_bytes() == b"0"));
    if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS || secondary {
        if let Some(ra) = r.retry_after() {
            return Some(ra.max(Duration::from_millis(100)));
        }
        if let Some(reset) = r
            .headers
            .get("x-ratelimit-reset")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
        {
            let now = crate::jwt::unix_now() as u64;
            return Some(Duration::from_secs(reset.saturating_sub(now).max(1)));
        }
        return Some(backoff());
    }
    None
}

/// Exponential from 250 ms, doubling, each step multiplied by a random factor in [1, 2), never
/// over [`MAX_BACKOFF`].
fn backoff_schedule() -> impl Iterator<Item = Duration> {
    use backon::BackoffBuilder;
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(250))
        .with_max_delay(MAX_BACKOFF / 2)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build()
        .map(|d| d.min(MAX_BACKOFF))
}

/// The innermost cause of an error, which says most ("Connection refused", "invalid peer
/// certificate: UnknownIssuer"); reqwest's own top-level message only says "error sending request".
pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut inner = e;
    while let Some(s) = inner.source() {
        inner = s;
    }
    inner.to_string()
}

fn transport_reason(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".into();
    }
    let msg = root_cause(e);
    if e.is_connect() && !msg.is_empty() {
        return format!("connection failed: {msg}");
    }
    msg
}

// ----- GitHub's documents (the subset ghapp reads) -----

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Account {
    pub login: String,
    #[serde(default)]
    pub id: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Installation {
    pub id: u64,
    pub account: Option<Account>,
    #[serde(default)]
    pub app_id: u64,
    #[serde(default)]
    pub repository_selection: String,
    #[serde(default)]
    pub permissions: crate::permissions::Permissions,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct AppInfo {
    pub id: u64,
    pub slug: Option<String>,
    pub name: String,
    pub html_url: String,
    #[serde(default)]
    pub permissions: crate::permissions::Permissions,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct RepoRef {
    pub name: String,
    #[serde(default)]
    pub full_name: String,
}

/// The 201 answer of `POST /app/installations/{id}/access_tokens`.
#[derive(Deserialize)]
pub struct AccessToken {
    pub token: String,
    pub expires_at: String,
    #[serde(default)]
    pub permissions: crate::permissions::Permissions,
    #[serde(default)]
    pub repository_selection: Option<String>,
    #[serde(default)]
    pub repositories: Option<Vec<RepoRef>>,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &"****")
            .field("expires_at", &self.expires_at)
            .field("permissions", &self.permissions)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, headers: &[(&'static str, &'static str)]) -> ApiResponse {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(*k, HeaderValue::from_static(v));
        }
        ApiResponse {
            status: StatusCode::from_u16(status).unwrap(),
            headers: h,
            body: br#"{"message":"m"}"#.to_vec(),
        }
    }

    #[test]
    fn retry_rules() {
        let step = Duration::from_millis(777);
        let mut b = || step;
        // Final answers: never retried.
        for s in [401, 404, 422, 403, 400, 200, 201, 304] {
            assert_eq!(retry_wait(&resp(s, &[]), &mut b), None, "{s}");
        }
        // Server errors and rate limits: the backoff step, unless GitHub says how long.
        for s in [500, 502, 503, 504, 429] {
            assert_eq!(retry_wait(&resp(s, &[]), &mut b), Some(step), "{s}");
        }
        assert_eq!(
            retry_wait(&resp(403, &[("x-ratelimit-remaining", "0")]), &mut b),
            Some(step)
        );
        assert_eq!(
            retry_wait(&resp(403, &[("retry-after", "3")]), &mut b),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            retry_wait(&resp(429, &[("retry-after", "2")]), &mut b),
            Some(Duration::from_secs(2))
        );
        assert_eq!(resp(500, &[]).message(), "m");
    }

    #[test]
    fn backoff_grows_is_capped_and_is_not_in_lockstep() {
        let first: Vec<Vec<Duration>> = (0..20)
            .map(|_| backoff_schedule().take(8).collect())
            .collect();
        for s in &first {
            assert!(s[0] >= Duration::from_millis(250) && s[0] < Duration::from_millis(500));
            assert!(s[3] >= Duration::from_secs(2), "{s:?}");
            assert!(s.iter().all(|d| *d <= MAX_BACKOFF), "{s:?}");
        }
        // Twenty clients that start together spread their retries out.
        let mut seconds: Vec<Duration> = first.iter().map(|s| s[1]).collect();
        seconds.sort();
        seconds.dedup();
        assert!(seconds.len() > 10, "{seconds:?}");
    }
}
