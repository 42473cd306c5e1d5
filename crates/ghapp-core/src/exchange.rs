//! Obtaining an installation token from a token exchange service (octo-sts, or `ghapp proxy`'s
//! `[sts]`) with the workload's OIDC token: no app key anywhere near the workload.
//!
//! 1. The OIDC token: GitHub Actions' (`GET $ACTIONS_ID_TOKEN_REQUEST_URL&audience=AUD` with
//!    `Authorization: Bearer $ACTIONS_ID_TOKEN_REQUEST_TOKEN`, answered `{"value": JWT}`), or
//!    the file `GHAPP_OIDC_TOKEN_FILE` (re-read every time: Kubernetes rotates it).
//! 2. `GET URL/sts/exchange?scope=OWNER/REPO&identity=NAME` with `Authorization: Bearer JWT`,
//!    answered `{"token", "expires_at"}` (octo-sts answers `token` alone: an hour is assumed),
//!    or an error whose `message` is shown.
//!
//! The token is cached as a minted one is (per repository, under the cache key's lock, until
//! shortly before it expires).

use std::time::Duration;

use serde::Deserialize;

use crate::cache::{CachedToken, DiskCache, TokenKey};
use crate::config::{Config, ExchangeConfig};
use crate::error::{Error, Result};
use crate::request::TokenRequest;
use crate::secret::{InstallationToken, OidcToken};
use crate::time::unix_now;

/// Each HTTP call, connection to last byte.
const TIMEOUT: Duration = Duration::from_secs(20);
/// The largest answer read.
const MAX_ANSWER: usize = 64 * 1024;
/// An OIDC token file's largest size.
const MAX_TOKEN_FILE: u64 = 64 * 1024;
/// Assumed lifetime when the service does not say (installation tokens live an hour).
const DEFAULT_TTL: u64 = 3600;

/// The cached token for `key`, else one exchanged now (under the key's lock, so concurrent
/// callers exchange once); `bool`: new.
pub fn obtain_blocking(
    ex: &ExchangeConfig,
    key: &TokenKey,
    req: &TokenRequest,
    cfg: &Config,
    ca_pem: Option<&str>,
) -> Result<(CachedToken, bool)> {
    let cache = DiskCache::new(&cfg.cache_dir);
    let fresh = |c: &DiskCache| {
        c.read(key)
            .filter(|t| t.is_fresh(unix_now() as u64, cfg.refresh_margin))
    };
    if let Some(t) = fresh(&cache) {
        return Ok((t, false));
    }
    let _lock = match cache.lock(key) {
        Ok(l) => Some(l),
        Err(e) => {
            tracing::warn!("{e}; exchanging without it");
            None
        }
    };
    if let Some(t) = fresh(&cache) {
        return Ok((t, false));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Config(format!("cannot start the async runtime: {e}")))?;
    let t = rt.block_on(exchange(ex, req, ca_pem))?;
    if let Err(e) = cache.write(key, &t) {
        tracing::warn!("{e}");
    }
    Ok((t, true))
}

fn failed(what: &str, detail: impl Into<String>) -> Error {
    Error::Config(format!("token exchange: {what}: {}", detail.into()))
}

/// One exchange for `req` (its owner and first repository are the scope).
pub async fn exchange(
    ex: &ExchangeConfig,
    req: &TokenRequest,
    ca_pem: Option<&str>,
) -> Result<CachedToken> {
    let owner = req
        .owner
        .as_deref()
        .ok_or_else(|| failed("no repository", "name the repository the token is for"))?;
    let scope = match req.repositories.first() {
        Some(r) => format!("{owner}/{r}"),
        None => owner.to_owned(),
    };
    let tls = crate::client::tls_config_with(ca_pem)?;
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .https_only(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(TIMEOUT)
        .build()
        .map_err(|e| failed("HTTP client", e.to_string()))?;
    let oidc = oidc_token(ex, &http).await?;
    let mut url = reqwest::Url::parse(&format!("{}/sts/exchange", ex.url))
        .map_err(|e| failed("GHAPP_EXCHANGE_URL", e.to_string()))?;
    url.query_pairs_mut()
        .append_pair("scope", &scope)
        .append_pair("identity", &ex.identity);
    let r = http
        .get(url)
        .bearer_auth(oidc.expose())
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|e| failed(&ex.url, crate::client::root_cause(&e)))?;
    let status = r.status();
    let body = read_bounded(r).await.map_err(|e| failed(&ex.url, e))?;
    #[derive(Deserialize)]
    struct Answer {
        token: Option<String>,
        expires_at: Option<String>,
        message: Option<String>,
    }
    let a: Answer = serde_json::from_slice(&body).map_err(|_| {
        failed(
            &ex.url,
            format!("answered {status} with a body that is not JSON"),
        )
    })?;
    let token = match (status.is_success(), a.token) {
        (true, Some(t)) if !t.is_empty() && !t.contains(['\n', '\r', ' ', '\0']) => t,
        _ => {
            let m = a
                .message
                .map(|m| ghapp_gitproto::secrets::redact(&m.replace('\n', " ")).into_owned())
                .unwrap_or_else(|| "no token and no message".into());
            return Err(failed(
                &format!("{} refused {scope} as {:?} ({status})", ex.url, ex.identity),
                m,
            ));
        }
    };
    let now = unix_now() as u64;
    let expires_at = a
        .expires_at
        .and_then(|e| humantime::parse_rfc3339(&e).ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(now + DEFAULT_TTL, |d| d.as_secs());
    let token = InstallationToken::new(token);
    tracing::info!(scope, identity = %ex.identity, token = %token.fingerprint(), expires_at, "exchanged an OIDC token");
    Ok(CachedToken {
        token,
        expires_at,
        minted_at: now,
        installation_id: 0,
        repositories: req.repositories.clone(),
        permissions: Default::default(),
    })
}

/// The workload's OIDC token, from its file or from GitHub Actions.
async fn oidc_token(ex: &ExchangeConfig, http: &reqwest::Client) -> Result<OidcToken> {
    if let Some(f) = &ex.token_file {
        let text = crate::fsutil::read_bounded(f, MAX_TOKEN_FILE).map_err(|e| {
            failed(
                "GHAPP_OIDC_TOKEN_FILE",
                format!("cannot read {}: {e}", f.display()),
            )
        })?;
        let t = text.trim();
        if t.split('.').count() != 3 {
            return Err(failed(
                "GHAPP_OIDC_TOKEN_FILE",
                format!("{} does not hold a JWT", f.display()),
            ));
        }
        return Ok(OidcToken::new(t));
    }
    let (Some(url), Some(bearer)) = (
        std::env::var("ACTIONS_ID_TOKEN_REQUEST_URL")
            .ok()
            .filter(|v| !v.is_empty()),
        std::env::var("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
            .ok()
            .filter(|v| !v.is_empty()),
    ) else {
        return Err(failed(
            "no OIDC token",
            "set GHAPP_OIDC_TOKEN_FILE, or run in GitHub Actions with `permissions: id-token: write` (ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN are unset)",
        ));
    };
    let mut url = reqwest::Url::parse(&url)
        .map_err(|e| failed("ACTIONS_ID_TOKEN_REQUEST_URL", format!("not a URL: {e}")))?;
    url.query_pairs_mut().append_pair("audience", &ex.audience);
    let r = http
        .get(url)
        .bearer_auth(bearer)
        .send()
        .await
        .map_err(|e| {
            failed(
                "ACTIONS_ID_TOKEN_REQUEST_URL",
                crate::client::root_cause(&e),
            )
        })?;
    let status = r.status();
    let body = read_bounded(r)
        .await
        .map_err(|e| failed("ACTIONS_ID_TOKEN_REQUEST_URL", e))?;
    #[derive(Deserialize)]
    struct Value {
        value: String,
    }
    match serde_json::from_slice::<Value>(&body) {
        Ok(v) if status.is_success() && v.value.split('.').count() == 3 => {
            Ok(OidcToken::new(v.value))
        }
        _ => Err(failed(
            "ACTIONS_ID_TOKEN_REQUEST_URL",
            format!(
                "answered {status} without an ID token (does the job have `permissions: id-token: write`?)"
            ),
        )),
    }
}

async fn read_bounded(mut r: reqwest::Response) -> std::result::Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(c) = r.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + c.len() > MAX_ANSWER {
            return Err(format!(
                "the answer is larger than {} KiB",
                MAX_ANSWER / 1024
            ));
        }
        body.extend_from_slice(&c);
    }
    Ok(body)
}
