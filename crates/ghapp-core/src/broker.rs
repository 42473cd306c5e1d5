//! The token broker: turns "a token for owner/repo with these permissions" into an installation
//! token, minting at most once per cache key across threads and processes.
//!
//! Order of lookups: the in-process map, the disk cache, then (under the key's in-process mutex
//! and cross-process lock file) the disk cache again, and only then a mint.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::cache::{CachedInstallation, CachedToken, DiskCache, TokenKey};
use crate::client::{AccessToken, ApiResponse, AppInfo, Auth, GitHubClient, Installation};
use crate::config::AppConfig;
use crate::error::{Error, Result};
use crate::jwt::{AppSigner, unix_now};
use crate::secret::InstallationToken;

/// How long a discovered installation id is trusted.
const INSTALLATION_TTL: u64 = 24 * 3600;
/// How long "not installed" is remembered: short, so installing the app takes effect quickly.
const NEGATIVE_TTL: u64 = 60;

/// Where [`Broker::token_with_source`] found a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    /// This process's memory or the disk cache.
    Cache,
    /// Minted from GitHub now.
    Minted,
}

/// Logs `msg` as a warning the first time a process meets a cache problem: one line, not one
/// per request.
fn warn_once(msg: &str) {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        tracing::warn!("{msg}");
    }
}

pub use crate::permissions::{Level, Permissions};
pub use crate::request::{TokenRequest, token_key};

pub struct Broker {
    app: AppConfig,
    margin: Duration,
    cache: DiskCache,
    client: GitHubClient,
    signer: tokio::sync::OnceCell<AppSigner>,
    mem: Mutex<HashMap<TokenKey, CachedToken>>,
    flights: Mutex<HashMap<TokenKey, Arc<tokio::sync::Mutex<()>>>>,
    app_info: tokio::sync::OnceCell<AppInfo>,
    /// Whether a remembered "not installed" answers without asking GitHub again.
    negative_cache: bool,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("api", &self.app.api_url())
            .field("app", &self.app.ident.issuer())
            .field("cache", &self.cache.dir())
            .finish_non_exhaustive()
    }
}

impl Broker {
    pub fn new(
        app: AppConfig,
        margin: Duration,
        cache_dir: impl Into<std::path::PathBuf>,
    ) -> Result<Self> {
        let client = GitHubClient::new(app.api_url())?;
        Ok(Self {
            app,
            margin,
            cache: DiskCache::new(cache_dir),
            client,
            signer: tokio::sync::OnceCell::new(),
            mem: Mutex::new(HashMap::new()),
            flights: Mutex::new(HashMap::new()),
            app_info: tokio::sync::OnceCell::new(),
            negative_cache: true,
        })
    }

    /// Asks GitHub again even when "not installed" was remembered: for commands a person runs
    /// (`ghapp token`, `doctor`), right after installing the app. git's helper keeps the short
    /// negative cache so a clone of an uninstalled repository does not ask once per request.
    pub fn without_negative_cache(mut self) -> Self {
        self.negative_cache = false;
        self
    }

    /// Uses `client` for GitHub (e.g. one trusting a private CA).
    pub fn with_client(mut self, client: GitHubClient) -> Self {
        self.client = client;
        self
    }

    pub fn with_deadline(mut self, d: Duration) -> Self {
        self.client = self.client.with_deadline(d);
        self
    }

    pub fn app(&self) -> &AppConfig {
        &self.app
    }

    pub fn client(&self) -> &GitHubClient {
        &self.client
    }

    pub fn cache(&self) -> &DiskCache {
        &self.cache
    }

    /// The signer, loading the key on first use (blocking work goes to `spawn_blocking`: the
    /// keyring's D-Bus client must not run on a runtime thread).
    pub async fn signer(&self) -> Result<&AppSigner> {
        self.signer
            .get_or_try_init(|| async {
                let source = self.app.key.clone();
                let ident = self.app.ident.clone();
                if let crate::keys::KeySource::Signer(spec) = source {
                    return tokio::task::spawn_blocking(move || {
                        AppSigner::with_signer(ident, spec)
                    })
                    .await
                    .map_err(|e| Error::Key(format!("the signer stopped: {e}")))?;
                }
                let loaded = tokio::task::spawn_blocking(move || source.load())
                    .await
                    .map_err(|e| Error::Key(format!("key loading stopped: {e}")))??;
                self.signer_from(loaded)
            })
            .await
    }

    /// The signer for a loaded key: its warnings logged, the app id taken from a credentials
    /// file when the configuration has none.
    fn signer_from(&self, loaded: crate::keys::LoadedKey) -> Result<AppSigner> {
        for w in &loaded.warnings {
            tracing::warn!("{w}");
        }
        let mut ident = self.app.ident.clone();
        if let Some((app_id, _)) = loaded.credentials {
            ident.app_id = ident.app_id.or(Some(app_id));
        }
        AppSigner::new(ident, &loaded.pem, &self.app.key.describe())
    }

    /// Loads the key now, synchronously (call before a runtime starts, so a bad key fails at
    /// start-up and the keyring never runs on a runtime thread).
    pub fn load_key_now(&self) -> Result<()> {
        let signer = match &self.app.key {
            crate::keys::KeySource::Signer(spec) => {
                AppSigner::with_signer(self.app.ident.clone(), spec.clone())?
            }
            key => self.signer_from(key.load()?)?,
        };
        let _ = self.signer.set(signer);
        Ok(())
    }

    /// Calls the API with the app's JWT. A 401 that names `iat`/`exp` means the local clock is
    /// off: take the offset from GitHub's `Date` header and retry once, with a hint.
    pub async fn app_request(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<ApiResponse> {
        let signer = self.signer().await?;
        let jwt = signer.sign()?;
        let r = self
            .client
            .request(method.clone(), path, Auth::Jwt(&jwt), body)
            .await?;
        if r.status != StatusCode::UNAUTHORIZED {
            return Ok(r);
        }
        let msg = r.message();
        let clockish = ["iat", "exp", "Issued at", "Expiration time"]
            .iter()
            .any(|w| msg.contains(w));
        if let (true, Some(server)) = (clockish, r.date()) {
            let server = server
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            let offset = server - unix_now();
            signer.set_clock_offset(offset);
            tracing::warn!(
                "the local clock differs from GitHub's by {offset} s; using GitHub's time for the app JWT (fix the clock: enable NTP, e.g. timedatectl set-ntp true)"
            );
            let jwt = signer.sign()?;
            let r = self
                .client
                .request(method, path, Auth::Jwt(&jwt), body)
                .await?;
            if r.status == StatusCode::UNAUTHORIZED {
                return Err(self.jwt_rejected(&r));
            }
            return Ok(r);
        }
        Err(self.jwt_rejected(&r))
    }

    fn jwt_rejected(&self, r: &ApiResponse) -> Error {
        let app = self
            .signer
            .get()
            .map(|s| s.ident().issuer())
            .unwrap_or_else(|| self.app.ident.issuer());
        Error::JwtRejected {
            app,
            message: r.message(),
        }
    }

    /// `GET /app`, cached for the broker's life.
    pub async fn app_info(&self) -> Result<&AppInfo> {
        self.app_info
            .get_or_try_init(|| async {
                let r = self.app_request(Method::GET, "/app", None).await?;
                if !r.status.is_success() {
                    return Err(api_error(&r, "GET /app"));
                }
                r.json("GET /app")
            })
            .await
    }

    /// A token for `req`: cached when fresh, else minted once. A cache that cannot be used
    /// (someone else's directory, a full or read-only disk, a stuck lock) costs one warning,
    /// never the token: the broker then mints without it.
    pub async fn token(&self, req: &TokenRequest) -> Result<CachedToken> {
        self.token_with_source(req).await.map(|(t, _)| t)
    }

    /// As [`Broker::token`], saying where the token came from (for metrics).
    pub async fn token_with_source(
        &self,
        req: &TokenRequest,
    ) -> Result<(CachedToken, TokenSource)> {
        let key = token_key(&self.app, req);
        let now = unix_now() as u64;
        if let Some(t) = self.fresh_in_memory(&key, now) {
            return Ok((t, TokenSource::Cache));
        }
        let disk = match self.cache.usable() {
            Ok(()) => true,
            Err(why) => {
                warn_once(&why);
                false
            }
        };
        if disk && let Some(t) = self.fresh_on_disk(&key, now) {
            self.remember(&key, &t);
            return Ok((t, TokenSource::Cache));
        }
        let flight = {
            let mut f = self.flights.lock().unwrap_or_else(|e| e.into_inner());
            f.entry(key.clone()).or_default().clone()
        };
        let _in_process = flight.lock().await;
        let now = unix_now() as u64;
        if let Some(t) = self.fresh_in_memory(&key, now) {
            return Ok((t, TokenSource::Cache));
        }
        let mut _cross_process = None;
        if disk {
            let cache = self.cache.clone();
            let lock_key = key.clone();
            match tokio::task::spawn_blocking(move || cache.lock(&lock_key)).await {
                Ok(Ok(l)) => _cross_process = Some(l),
                Ok(Err(e)) => warn_once(&format!("{e}; minting without it")),
                Err(e) => warn_once(&format!("cannot take the cache lock: {e}")),
            }
            let now = unix_now() as u64;
            if let Some(t) = self.fresh_on_disk(&key, now) {
                self.remember(&key, &t);
                return Ok((t, TokenSource::Cache));
            }
        }
        let t = self.mint(req).await?;
        if disk && let Err(e) = self.cache.write(&key, &t) {
            // A token that cannot be cached still works; say why the next call will mint again.
            warn_once(&e.to_string());
        }
        self.remember(&key, &t);
        Ok((t, TokenSource::Minted))
    }

    fn fresh_on_disk(&self, key: &TokenKey, now: u64) -> Option<CachedToken> {
        match self.cache.read_checked(key) {
            Ok(t) => t.filter(|t| t.is_fresh(now, self.margin)),
            Err(why) => {
                warn_once(&why);
                None
            }
        }
    }

    /// The fresh token for `req` this broker holds (memory, then disk), without minting.
    pub fn cached(&self, req: &TokenRequest) -> Option<CachedToken> {
        let key = token_key(&self.app, req);
        let now = unix_now() as u64;
        self.fresh_in_memory(&key, now)
            .or_else(|| self.fresh_on_disk(&key, now))
    }

    /// Drops a token from memory and disk if it is `value`.
    pub fn forget(&self, req: &TokenRequest, value: &str) -> Result<bool> {
        let key = token_key(&self.app, req);
        let mut mem = self.mem.lock().unwrap_or_else(|e| e.into_inner());
        if mem.get(&key).is_some_and(|t| t.token.expose() == value) {
            mem.remove(&key);
        }
        drop(mem);
        self.cache.remove_if(&key, value)
    }

    fn fresh_in_memory(&self, key: &TokenKey, now: u64) -> Option<CachedToken> {
        let mem = self.mem.lock().unwrap_or_else(|e| e.into_inner());
        mem.get(key)
            .filter(|t| t.is_fresh(now, self.margin))
            .cloned()
    }

    fn remember(&self, key: &TokenKey, t: &CachedToken) {
        let mut mem = self.mem.lock().unwrap_or_else(|e| e.into_inner());
        mem.insert(key.clone(), t.clone());
    }

    /// The installation that serves `req`: configured, cached, or discovered.
    pub async fn installation_id(&self, req: &TokenRequest) -> Result<u64> {
        if let Some(id) = self.app.installation_id {
            return Ok(id);
        }
        let owner = req.owner.as_deref().ok_or_else(|| {
            Error::Config(
                "no repository owner to find the installation by: set GHAPP_INSTALLATION_ID or name the repository".into(),
            )
        })?;
        let repo = req.repositories.first().map(String::as_str);
        let issuer = self.app.ident.issuer();
        let now = unix_now() as u64;
        if let Some(c) = self
            .cache
            .read_installation(self.app.api_url(), &issuer, owner, repo, now)
            .filter(|c| self.negative_cache || c.installation_id.is_some())
        {
            return match c.installation_id {
                Some(id) => Ok(id),
                None => Err(self.not_installed(owner, repo, c.install_url)),
            };
        }
        let path = match repo {
            Some(r) => format!("/repos/{owner}/{r}/installation"),
            None => format!("/users/{owner}/installation"),
        };
        let r = self.app_request(Method::GET, &path, None).await?;
        let entry = if r.status.is_success() {
            let inst: Installation = r.json(&format!("GET {path}"))?;
            CachedInstallation {
                installation_id: Some(inst.id),
                install_url: None,
                valid_until: now + INSTALLATION_TTL,
            }
        } else if r.status == StatusCode::NOT_FOUND {
            // A REST base that is not GitHub's (a GHES URL without /api/v3) answers 404 to
            // everything: say so rather than "not installed".
            if let Err(Error::Api { status: 404, .. }) = self.app_info().await {
                return Err(Error::Config(format!(
                    "{} answered 404 to GET /app{}: it is not GitHub's REST base (on a GHES it is https://HOST/api/v3)",
                    self.app.api_url(),
                    self.app.sources.of("api_url")
                )));
            }
            CachedInstallation {
                installation_id: None,
                install_url: Some(self.install_url().await),
                valid_until: now + NEGATIVE_TTL,
            }
        } else {
            return Err(api_error(&r, &format!("GET {path}")));
        };
        if let Err(e) =
            self.cache
                .write_installation(self.app.api_url(), &issuer, owner, repo, &entry)
        {
            warn_once(&e.to_string());
        }
        match entry.installation_id {
            Some(id) => Ok(id),
            None => Err(self.not_installed(owner, repo, entry.install_url)),
        }
    }

    fn not_installed(&self, owner: &str, repo: Option<&str>, url: Option<String>) -> Error {
        Error::NotInstalled {
            owner: owner.to_owned(),
            repo: repo.unwrap_or("*").to_owned(),
            install_url: url.unwrap_or_else(|| "the app's public page".into()),
        }
    }

    /// The page where an owner installs the app (`html_url` of `GET /app` + `/installations/new`).
    pub async fn install_url(&self) -> String {
        match self.app_info().await {
            Ok(info) => format!("{}/installations/new", info.html_url.trim_end_matches('/')),
            Err(_) => "the app's public page (GET /app failed)".into(),
        }
    }

    /// A new token for `req`, never cached nor shared: for a caller that owns it (and may
    /// revoke it), as a token exchange's.
    pub async fn mint_uncached(&self, req: &TokenRequest) -> Result<CachedToken> {
        self.mint(req).await
    }

    async fn mint(&self, req: &TokenRequest) -> Result<CachedToken> {
        match self.mint_once(req).await {
            // A discovered installation GitHub no longer knows (the app was uninstalled and
            // installed again): forget it and discover the current one, once.
            Err(Error::Api { status: 404, .. }) if self.app.installation_id.is_none() => {
                if let Some(owner) = req.owner.as_deref() {
                    self.cache.forget_installation(
                        self.app.api_url(),
                        &self.app.ident.issuer(),
                        owner,
                        req.repositories.first().map(String::as_str),
                    );
                }
                self.mint_once(req).await
            }
            done => done,
        }
    }

    async fn mint_once(&self, req: &TokenRequest) -> Result<CachedToken> {
        let installation = self.installation_id(req).await?;
        let path = format!("/app/installations/{installation}/access_tokens");
        let mut r = self
            .app_request(Method::POST, &path, Some(&mint_body(req, &req.permissions)))
            .await?;
        if r.status == StatusCode::UNPROCESSABLE_ENTITY && req.fit {
            // Ask what the installation grants and mint within it.
            let ipath = format!("/app/installations/{installation}");
            let ir = self.app_request(Method::GET, &ipath, None).await?;
            if ir.status.is_success() {
                let inst: Installation = ir.json(&format!("GET {ipath}"))?;
                let fitted = req.permissions.fit_to(&inst.permissions);
                if fitted != req.permissions && !fitted.is_empty() {
                    tracing::info!(
                        "the installation grants less than the default permissions; minting {fitted}"
                    );
                    r = self
                        .app_request(Method::POST, &path, Some(&mint_body(req, &fitted)))
                        .await?;
                }
            }
        }
        let what = format!("POST {path}");
        match r.status.as_u16() {
            201 | 200 => {}
            422 => {
                return Err(Error::OutsideGrant {
                    scope: req.describe(),
                    message: r.message(),
                });
            }
            404 => {
                return Err(Error::Api {
                    status: 404,
                    what,
                    message: format!(
                        "installation {installation} not found for app {}: check GHAPP_INSTALLATION_ID (`ghapp installations` lists them)",
                        self.app.ident.issuer()
                    ),
                });
            }
            _ => return Err(api_error(&r, &what)),
        }
        let t: AccessToken = r.json(&what)?;
        let expires_at = humantime::parse_rfc3339(&t.expires_at)
            .map_err(|e| Error::BadResponse {
                what: what.clone(),
                detail: format!("expires_at {:?} is not an RFC 3339 time: {e}", t.expires_at),
            })?
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if t.token.is_empty() || t.token.contains(['\n', '\r', '\0', ' ']) {
            return Err(Error::BadResponse {
                what,
                detail: "the token is empty or holds whitespace".into(),
            });
        }
        let token = InstallationToken::new(t.token);
        tracing::info!(
            installation,
            scope = %req.describe(),
            token = %token.fingerprint(),
            expires_at,
            "minted an installation token"
        );
        Ok(CachedToken {
            token,
            expires_at,
            minted_at: unix_now() as u64,
            installation_id: installation,
            repositories: t
                .repositories
                .unwrap_or_default()
                .into_iter()
                .map(|r| r.name)
                .collect(),
            permissions: t.permissions,
        })
    }

    /// `DELETE /installation/token` with the token itself. Expired tokens are skipped.
    pub async fn revoke(&self, token: &CachedToken) -> Result<bool> {
        if !token.is_fresh(unix_now() as u64, Duration::ZERO) {
            return Ok(false);
        }
        let r = self
            .client
            .request(
                Method::DELETE,
                "/installation/token",
                Auth::Token(&token.token),
                None,
            )
            .await?;
        match r.status.as_u16() {
            204 => Ok(true),
            401 => Ok(false),
            _ => Err(api_error(&r, "DELETE /installation/token")),
        }
    }
}

fn mint_body(req: &TokenRequest, permissions: &Permissions) -> serde_json::Value {
    let mut body = serde_json::Map::new();
    if !req.repositories.is_empty() {
        body.insert("repositories".into(), json!(req.repositories));
    }
    if !permissions.is_empty() {
        body.insert("permissions".into(), json!(permissions));
    }
    serde_json::Value::Object(body)
}

/// A non-success answer as a one-line error.
pub fn api_error(r: &ApiResponse, what: &str) -> Error {
    Error::Api {
        status: r.status.as_u16(),
        what: what.to_owned(),
        message: r.message(),
    }
}
