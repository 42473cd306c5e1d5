//! fakehub: a strict GitHub emulator for ghapp's tests, `ghapp emulator` and `ghapp demo`.
//!
//! One HTTPS port (a throwaway CA made at start) in the GitHub Enterprise Server layout: REST
//! under `/api/v3`, git at `/{owner}/{repo}.git`. Strict, because a lenient emulator hides bugs.
//!
//! | route | auth | rules |
//! |---|---|---|
//! | `GET /api/v3/app` | app JWT | RS256 by the app key; `iss` app id or client id; `iat` not in the future; `exp` in the future, at most 600 s ahead and 600 s after `iat`; else 401 with GitHub's message |
//! | `GET /api/v3/app/installations[/{id}]`, `DELETE /api/v3/app/installations/{id}` | app JWT | a deleted installation answers 404 and its tokens stop working |
//! | `POST /api/v3/app/installations/{id}/access_tokens` | app JWT | `repositories` must be reachable by the installation, `permissions` within its grant (else 422; left out or `{}`: all of the installation's); TTL from the knob (3600 s) |
//! | `GET /api/v3/repos/{o}/{r}/installation`, `/users/{u}/installation`, `/orgs/{o}/installation` | app JWT | 404 when not installed |
//! | `GET /api/v3/installation/repositories`, `GET /api/v3/repos/{o}/{r}` | token | 401 for expired, revoked or unknown tokens |
//! | `DELETE /api/v3/installation/token` | token | revokes it (204) |
//! | `GET /api/v3/repos/{o}/{r}/pulls[?head=&state=&base=]`, `GET …/pulls/{n}` | token (`pull_requests` read) | |
//! | `POST /api/v3/repos/{o}/{r}/pulls`, `PATCH …/pulls/{n}`, `POST …/issues/{n}/comments` | token (`pull_requests` write) | 422 "Validation Failed" for a missing title, an unknown head or base, no commits between them, or an open PR for the same head and base |
//! | `PUT /api/v3/repos/{o}/{r}/pulls/{n}/merge` (`merge_method` merge, squash or rebase; `sha`, `commit_title`, `commit_message`) | token (`contents` write) | a merge commit, a squash or the head's commits replayed on the base; 405 when closed, merged or conflicting, 409 for a stale `sha`, 422 for another method |
//! | `GET /api/v3/repos/{o}/{r}/issues/{n}/comments`, `GET …/pulls/{n}/comments` | token (`pull_requests` read) | GitHub's full issue-comment document; a pull request's review comments are always `[]` |
//! | `GET /api/v3/repos/{o}/{r}/branches/{branch}` | token | the branch name may hold slashes (raw or `%2F`); the head commit, unprotected |
//! | `POST /api/graphql` | token (Bearer) | GitHub's published schema, whole and strict (see `graphql`): repositories, pull requests, refs, comments, `node`/`nodes`, `__type`; the pull-request and ref mutations |
//! | `POST /{o}/{r}.git/info/lfs/objects/batch`, `GET`/`POST …/info/lfs/locks`, `POST …/locks/verify`, `POST …/locks/{id}/unlock` | Basic, token as password | uploads and locking need `contents: write`; transfer URLs on the storage host (`lfs.HOSTNAME`, or `localhost`), signed, expiring after an hour |
//! | `GET`/`PUT https://LFS_HOST/objects/{o}/{r}/{oid}?exp=&sig=` (or `/_lfs/objects/…` on fakehub's own host with `Options::lfs_same_host`) | the signature; a request carrying `Authorization` is refused | an upload is kept only if its sha256 is the oid |
//! | `GET /api/v3/app/hook/config`, `GET …/app/hook/deliveries[?status=failure]`, `POST …/app/hook/deliveries/{id}/attempts` | app JWT | the secret is always `********`; a redelivery appends a delivery with `redelivery: true` |
//! | `GET /api/v3/rate_limit` | any | |
//! | `GET /{o}/{r}[.git]/info/refs?service=…`, `POST …/git-upload-pack`, `POST …/git-receive-pack` | Basic, token as password | real `git http-backend`; no credentials: 401 `WWW-Authenticate: Basic realm="GitHub"`; bad or expired token: 401; repository outside the token: 404 "Repository not found."; push without `contents: write`: 403; a push that creates, changes or deletes `.github/workflows/*` with a token without `workflows: write` is declined with GitHub's message (a pre-receive hook) |
//! | `GET /_fakehub/state`, `POST /_fakehub/knobs` | none (loopback only) | counters as JSON; set knobs from JSON |
//! | `POST /settings/apps/new?state=`, `POST /organizations/{org}/settings/apps/new` (form `manifest`) | none | the manifest flow: registers the app, 302 to `redirect_url?code=&state=`; a 422 page for a bad manifest or a taken name |
//! | `POST /api/v3/app-manifests/{code}/conversions` | none | 201 with `pem`, `client_secret`, `webhook_secret`; a code converts once, within an hour of fakehub's clock; else 404 |
//! | `GET`, `POST /apps/{slug}/installations/new` (form `account`, `repositories`) | none | installs the app on an account with the app's permissions |
//! | `GET /api/v3/user` | fine-grained personal access token | the token's user; `github-authentication-token-expiration` when it expires |
//! | `POST /api/v3/repos/{o}/{r}/check-runs`, `GET …/commits/{ref}/check-runs[?check_name=&status=]` | installation token (`checks` write, read) | `name` and `head_sha` (a commit of the repository) required, a `conclusion` completes the run, `completed` without one 422; an unknown ref 422; runs newest first, each with the open pull requests of its commit |
//! | `GET /api/v3/repos/{o}/{r}/contents/{path}[?ref=]` | token (`contents` read) | a file's content-file document (base64 in lines of 60, its blob `sha`); a directory, a missing path or ref: 404 |
//! | `GET /_oidc/.well-known/openid-configuration`, `GET /_oidc/.well-known/jwks`, `GET /_oidc/idtoken?api-version=2.0[&audience=]` | none; a job's request token (Bearer) for `idtoken` | an OIDC issuer shaped as GitHub Actions' (see `oidc`): jobs made by [`FakeHub::oidc_job`], keys rotated by [`FakeHub::oidc_rotate`] (RS256 or ES256) |
//!
//! Every app-JWT route answers for the app the JWT's `iss` names, verified with that app's key.
//!
//! Seed: app 4242 (`client_id` `Iv1.fakehub4242`, slug `ghapp-fakehub`). Installation 101 on
//! organization `octo-org` selects `widgets` and `gadgets` (contents write, metadata read,
//! pull_requests write: what ghapp needs, no more); installation 102 on user `octo-user` covers all its repositories
//! (`dotfiles`) with contents read and metadata read. `lonely/island` exists but has no
//! installation.
//!
//! GitHub's limits, counted and enforced: an installation's REST requests per hour (5,000;
//! every answer to an installation token carries `x-ratelimit-limit`, `-remaining`, `-used`,
//! `-reset` and `-resource: core`; past it 403 "API rate limit exceeded") and the app's
//! content-creating REST requests per minute (80; past it 403 "secondary rate limit" with
//! `retry-after: 60`), and GraphQL's points (an installation's 5,000 an hour, `-resource:
//! graphql`, past it 200 with a `RATE_LIMITED` error; the app's 2,000 a minute, a query 1 and a
//! mutation 5, past it 403 "secondary rate limit"), all settable.
//!
//! Fault knobs: fail the next N mints with a status; answer the next N API requests with a rate
//! limit (403 or 429 with `Retry-After`); clock skew; token TTL; a delay before API answers;
//! classic or stateless token format (stateless by default: `ghs_APPID_JWT`, about 520 characters, as GitHub mints since 2026; `X-GitHub-Stateless-S2S-Token: enabled|disabled` on a mint forces one); a stall before git answers for one repository; a push cut
//! off after N bytes (the backend killed, the connection dropped without an answer).
//!
//! Every request is logged as it arrived, before routing ([`FakeHub::requests`]: method, raw
//! target, the credential by fingerprint), so a test can show what "GitHub" received.
//!
//! ```no_run
//! let hub = fakehub::FakeHub::start(fakehub::Options::default()).unwrap();
//! println!("{} {}", hub.api_url(), hub.ca_path().display());
//! ```

// serde_json::json! of a full repository document nests deeper than the default 128.
#![recursion_limit = "256"]

mod api;
mod git;
mod graphql;
mod hub;
mod json;
mod keys;
mod lfs;
mod manifest;
mod oidc;
mod pulls;
mod server;
mod tls;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use jsonwebtoken::DecodingKey;

pub use hub::{Counters, Mint, Received};
pub use keys::generate_rsa_key_pem;
use keys::{pkcs1_pem, write_private};
pub use oidc::Signing;
pub(crate) use server::{empty, full, json_response, text};

/// A pull request as the emulator holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullSummary {
    pub number: u64,
    pub repo: String,
    pub head: String,
    pub base: String,
    pub title: String,
    pub body: Option<String>,
    pub draft: bool,
    pub state: String,
    pub comments: u64,
    /// The head commit when it was opened.
    pub head_sha: String,
    /// Reviews requested: user logins, team slugs.
    pub reviewers: Vec<String>,
    pub teams: Vec<String>,
}

pub type Body = BoxBody<Bytes, std::io::Error>;

pub const APP_ID: u64 = 4242;
pub const CLIENT_ID: &str = "Iv1.fakehub4242";
pub const ORG: &str = "octo-org";
pub const ORG_INSTALLATION: u64 = 101;
pub const USER: &str = "octo-user";
pub const USER_INSTALLATION: u64 = 102;

/// How to start fakehub.
#[derive(Debug, Clone)]
pub struct Options {
    /// 0: any free port.
    pub port: u16,
    /// Where repositories, the CA and the key are written; `None`: a temporary directory removed
    /// when the handle drops.
    pub dir: Option<PathBuf>,
    /// Lifetime of minted tokens, seconds.
    pub token_ttl: u64,
    /// The name it is served as (in its certificate and every URL); it listens on 127.0.0.1
    /// whatever the name, so clients resolve it there (git's `http.curloptResolve`, the
    /// proxy's `resolve`). Go clients (gh, git-lfs) never send loopback addresses to a proxy,
    /// so tests of those use a name. `None`: `127.0.0.1`.
    pub hostname: Option<String>,
    /// LFS objects stored under `/_lfs/` on fakehub's own host (as an appliance may serve
    /// them) instead of on the second host name.
    pub lfs_same_host: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            port: 0,
            dir: None,
            token_ttl: 3600,
            hostname: None,
            lfs_same_host: false,
        }
    }
}

/// A running emulator. Dropping it stops the server.
pub struct FakeHub {
    hub: Arc<hub::Hub>,
    port: u16,
    dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    key_pem: String,
    ca_path: PathBuf,
    key_path: PathBuf,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// The CA that signed fakehub's certificate, for leaves a test serves elsewhere.
    ca: tls::Ca,
}

impl std::fmt::Debug for FakeHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeHub")
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

fn io_err(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

impl FakeHub {
    pub fn start(opts: Options) -> std::io::Result<FakeHub> {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
        let (tmp, dir) = match &opts.dir {
            Some(d) => {
                std::fs::create_dir_all(d)?;
                (None, d.clone())
            }
            None => {
                let t = tempfile::Builder::new().prefix("fakehub-").tempdir()?;
                let p = t.path().to_path_buf();
                (Some(t), p)
            }
        };
        let repos_root = dir.join("repos");
        let home = dir.join("home");
        std::fs::create_dir_all(&repos_root)?;
        std::fs::create_dir_all(&home)?;
        {
            use std::os::unix::fs::PermissionsExt;
            let hooks = home.join("hooks");
            std::fs::create_dir_all(&hooks)?;
            let hook = hooks.join("pre-receive");
            std::fs::write(&hook, git::PRE_RECEIVE)?;
            std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755))?;
        }

        let hostname = opts.hostname.clone().unwrap_or_else(|| "127.0.0.1".into());
        if hostname.is_empty()
            || !hostname
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        {
            return Err(io_err(format!("hostname {hostname:?} is not a host name")));
        }
        // LFS storage answers under a second name, as GitHub's does.
        let lfs_name = if hostname == "127.0.0.1" {
            "localhost".to_owned()
        } else {
            format!("lfs.{hostname}")
        };
        let tls = tls::make(&[hostname.as_str(), lfs_name.as_str()]).map_err(io_err)?;
        let app_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).map_err(io_err)?;
        let key_pem = pkcs1_pem(&app_key.serialize_der()).map_err(io_err)?;
        let decoding_key =
            DecodingKey::from_rsa_pem(app_key.public_key_pem().as_bytes()).map_err(io_err)?;

        let std_listener = std::net::TcpListener::bind(("127.0.0.1", opts.port))?;
        std_listener.set_nonblocking(true)?;
        let port = std_listener.local_addr()?.port();
        let base_url = format!("https://{hostname}:{port}");

        let perms = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let app_perms = perms(&[
            ("contents", "write"),
            ("metadata", "read"),
            ("pull_requests", "write"),
        ]);
        let repos = vec![
            (ORG, "widgets", 501),
            (ORG, "gadgets", 502),
            (USER, "dotfiles", 503),
            ("lonely", "island", 504),
            // The same name under another owner (another installation).
            (USER, "widgets", 505),
        ];
        for (o, n, _) in &repos {
            let existing = repos_root.join(o).join(format!("{n}.git"));
            if !existing.exists() {
                hub::create_repo(&repos_root, &home, o, n)?;
            }
        }
        let hub = Arc::new(hub::Hub {
            base_url,
            repos_root,
            home,
            apps: RwLock::new(vec![hub::AppEntry {
                app: hub::App {
                    id: APP_ID,
                    client_id: CLIENT_ID.into(),
                    slug: "ghapp-fakehub".into(),
                    name: "ghapp fakehub".into(),
                    owner: ORG.into(),
                    permissions: app_perms.clone(),
                    hook_url: Some("https://example.invalid/github/webhook".into()),
                },
                decoding_key,
            }]),
            conversions: Mutex::new(Default::default()),
            installations: RwLock::new(vec![
                hub::Installation {
                    id: ORG_INSTALLATION,
                    app_id: APP_ID,
                    account: ORG.into(),
                    account_id: 9000,
                    account_type: "Organization",
                    repositories: Some(vec!["widgets".into(), "gadgets".into()]),
                    permissions: app_perms,
                },
                hub::Installation {
                    id: USER_INSTALLATION,
                    app_id: APP_ID,
                    account: USER.into(),
                    account_id: 9001,
                    account_type: "User",
                    repositories: None,
                    permissions: perms(&[("contents", "read"), ("metadata", "read")]),
                },
            ]),
            repos: Mutex::new(
                repos
                    .into_iter()
                    .map(|(o, n, id)| hub::Repo {
                        id,
                        owner: o.into(),
                        name: n.into(),
                        default_branch: "main".into(),
                    })
                    .collect(),
            ),
            tokens: Mutex::new(Default::default()),
            counters: Mutex::new(Default::default()),
            issued: Mutex::new(Vec::new()),
            pulls: Mutex::new(Vec::new()),
            check_runs: Mutex::new(Vec::new()),
            deliveries: Mutex::new(hub::seed_deliveries()),
            knobs: Default::default(),
            received: Mutex::new(Default::default()),
            lfs_host: format!("{lfs_name}:{port}"),
            lfs_base: if opts.lfs_same_host {
                format!("https://{hostname}:{port}/_lfs")
            } else {
                format!("https://{lfs_name}:{port}")
            },
            lfs_secret: rand::random(),
            lfs_locks: Mutex::new(Vec::new()),
            oidc: Mutex::new(oidc::Issuer::new().map_err(io_err)?),
        });
        hub.knobs.token_ttl.store(opts.token_ttl, Ordering::Relaxed);
        hub.knobs.fail_status.store(502, Ordering::Relaxed);
        hub.knobs.rate_limit_status.store(429, Ordering::Relaxed);
        hub.knobs.retry_after.store(1, Ordering::Relaxed);
        hub.knobs.primary_limit.store(5000, Ordering::Relaxed);
        hub.knobs.secondary_per_minute.store(80, Ordering::Relaxed);
        hub.knobs
            .graphql_points_per_minute
            .store(2000, Ordering::Relaxed);

        let ca_path = dir.join("ca.pem");
        std::fs::write(&ca_path, &tls.ca_pem)?;
        let key_path = dir.join("app-key.pem");
        write_private(&key_path, key_pem.as_bytes())?;

        let (tx, rx) = tokio::sync::oneshot::channel();
        let server_hub = hub.clone();
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.server);
        let thread = std::thread::Builder::new()
            .name("fakehub".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("tokio runtime");
                rt.block_on(server::serve(server_hub, std_listener, acceptor, rx));
                rt.shutdown_timeout(std::time::Duration::from_millis(200));
            })?;
        Ok(FakeHub {
            hub,
            port,
            dir,
            _tmp: tmp,
            key_pem,
            ca_path,
            key_path,
            shutdown: Some(tx),
            thread: Some(thread),
            ca: tls.ca,
        })
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.hub.base_url.clone()
    }

    /// A certificate from fakehub's CA for another test server (names: hosts or IPs): the
    /// certificate chain and the key, PEM.
    pub fn issue_leaf(&self, names: &[&str]) -> std::io::Result<(String, String)> {
        self.ca.leaf(names).map_err(io_err)
    }

    /// The OIDC issuer's URL (`https://HOST:PORT/_oidc`), as a token's `iss`.
    pub fn oidc_issuer(&self) -> String {
        oidc::issuer_url(&self.hub.base_url)
    }

    /// A GitHub Actions job of `repository` (`owner/name`) running for `git_ref`, with
    /// `extra` claims over the ones Actions sets: the job's `ACTIONS_ID_TOKEN_REQUEST_URL` (with
    /// `?api-version=2.0`, as the runner sets it) and `ACTIONS_ID_TOKEN_REQUEST_TOKEN`.
    pub fn oidc_job(
        &self,
        repository: &str,
        git_ref: &str,
        extra: serde_json::Value,
    ) -> (String, String) {
        let (owner, name) = repository.split_once('/').unwrap_or((repository, ""));
        let mut claims =
            oidc::actions_claims(repository, git_ref, self.repo_id(owner, name).unwrap_or(0));
        if let (Some(c), Some(e)) = (claims.as_object_mut(), extra.as_object()) {
            c.extend(e.clone());
        }
        let token = self.oidc().add_job(claims);
        (
            format!("{}/idtoken?api-version=2.0", self.oidc_issuer()),
            token,
        )
    }

    /// `claims` signed as the issuer would (or, for tests of a verifier, as it would not).
    pub fn oidc_sign(&self, claims: &serde_json::Value, how: Signing) -> String {
        self.oidc().sign(claims, how).unwrap_or_default()
    }

    /// Actions' claims for `repository` at `git_ref` with the issuer, `aud` and the times
    /// set (`exp` `ttl` seconds from now, negative: already expired): for [`FakeHub::oidc_sign`].
    pub fn oidc_claims(
        &self,
        repository: &str,
        git_ref: &str,
        aud: &str,
        ttl: i64,
    ) -> serde_json::Value {
        let (owner, name) = repository.split_once('/').unwrap_or((repository, ""));
        let mut c =
            oidc::actions_claims(repository, git_ref, self.repo_id(owner, name).unwrap_or(0));
        let now = self.hub.now();
        if let Some(m) = c.as_object_mut() {
            m.insert("iss".into(), self.oidc_issuer().into());
            m.insert("aud".into(), aud.into());
            m.insert("iat".into(), (now.min(now + ttl)).into());
            m.insert("nbf".into(), (now.min(now + ttl)).into());
            m.insert("exp".into(), (now + ttl).into());
        }
        c
    }

    /// A new signing key for the issuer (`es256`: P-256, else RSA), published at once;
    /// `retire`: the old keys leave the JWKS. Returns its `kid`.
    pub fn oidc_rotate(&self, es256: bool, retire: bool) -> String {
        let alg = if es256 {
            jsonwebtoken::Algorithm::ES256
        } else {
            jsonwebtoken::Algorithm::RS256
        };
        self.oidc().rotate(alg, retire).unwrap_or_default()
    }

    /// GitHub's primary limits: an installation's REST requests per hour, and its GraphQL
    /// points per hour (5,000 each by default).
    pub fn set_primary_limit(&self, per_hour: u64) {
        self.hub
            .knobs
            .primary_limit
            .store(per_hour, Ordering::SeqCst);
    }

    /// GitHub's secondary limit on content creation: REST writes per minute for the app (80
    /// by default).
    pub fn set_secondary_per_minute(&self, n: u64) {
        self.hub
            .knobs
            .secondary_per_minute
            .store(n, Ordering::SeqCst);
    }

    /// GitHub's secondary limit on GraphQL: points per minute for the app (2,000 by default; a
    /// query costs 1, a mutation 5).
    pub fn set_graphql_points_per_minute(&self, n: u64) {
        self.hub
            .knobs
            .graphql_points_per_minute
            .store(n, Ordering::SeqCst);
    }

    fn oidc(&self) -> std::sync::MutexGuard<'_, oidc::Issuer> {
        self.hub.oidc.lock().unwrap_or_else(|e| e.into_inner())
    }
    /// `https://HOST:PORT/api/v3`.
    pub fn api_url(&self) -> String {
        format!("{}/api/v3", self.hub.base_url)
    }
    /// `HOST:PORT` (`127.0.0.1:PORT` unless a hostname was given), what git sends as `host=`.
    pub fn git_host(&self) -> String {
        self.hub
            .base_url
            .strip_prefix("https://")
            .unwrap_or(&self.hub.base_url)
            .to_owned()
    }
    pub fn port(&self) -> u16 {
        self.port
    }
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// The throwaway CA, PEM; also written to [`FakeHub::ca_path`].
    pub fn ca_path(&self) -> &Path {
        &self.ca_path
    }
    /// The app's private key, PKCS#1 PEM as GitHub downloads it (0600 file).
    pub fn key_path(&self) -> &Path {
        &self.key_path
    }
    pub fn private_key_pem(&self) -> &str {
        &self.key_pem
    }
    pub fn app_id(&self) -> u64 {
        APP_ID
    }
    pub fn repo_url(&self, owner: &str, repo: &str) -> String {
        format!("{}/{owner}/{repo}.git", self.hub.base_url)
    }
    /// `HOST:PORT` of the LFS storage host (`lfs.HOSTNAME`, or `localhost`).
    pub fn lfs_host(&self) -> String {
        self.hub.lfs_host.clone()
    }

    /// A repository's id (its GraphQL node id is `R_kgDO` and the id).
    pub fn repo_id(&self, owner: &str, repo: &str) -> Option<u64> {
        self.hub.find_repo(owner, repo).map(|r| r.id)
    }

    /// The bare repository on disk.
    /// The id of the installation (of the seeded app) on `account`, if there is one.
    pub fn installation_for(&self, account: &str) -> Option<u64> {
        self.hub
            .installations
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|i| i.app_id == APP_ID && i.account.eq_ignore_ascii_case(account))
            .map(|i| i.id)
    }

    pub fn repo_dir(&self, owner: &str, repo: &str) -> PathBuf {
        self.hub
            .repos_root
            .join(owner.to_ascii_lowercase())
            .join(format!("{}.git", repo.to_ascii_lowercase()))
    }

    /// A copy of the counters.
    pub fn counters(&self) -> Counters {
        self.hub.with_counters(|c| c.clone())
    }
    pub fn mint_count(&self) -> usize {
        self.counters().mints.len()
    }
    /// Pull requests as `(number, owner/repo, head, base, title, body, draft, state)`.
    pub fn pulls(&self) -> Vec<PullSummary> {
        self.hub
            .pulls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|p| PullSummary {
                number: p.number,
                repo: format!("{}/{}", p.owner, p.repo),
                head: p.head.clone(),
                base: p.base.clone(),
                title: p.title.clone(),
                body: p.body.clone(),
                draft: p.draft,
                state: p.state.clone(),
                comments: p.comments.len() as u64,
                head_sha: p.head_sha.clone(),
                reviewers: p.reviewers.clone(),
                teams: p.teams.clone(),
            })
            .collect()
    }

    /// Webhook deliveries as `(id, status_code, redelivery)`, oldest first.
    pub fn deliveries(&self) -> Vec<(u64, u16, bool)> {
        self.hub
            .deliveries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|d| (d.id, d.status_code, d.redelivery))
            .collect()
    }

    /// Every request received so far, in order, as it arrived (before routing).
    pub fn requests(&self) -> Vec<Received> {
        self.hub
            .received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// Cut off every push whose body passes `bytes` (0: off): the backend is killed before it
    /// can update a ref, and the connection is dropped without an answer.
    pub fn drop_push_after(&self, bytes: u64) {
        self.hub
            .knobs
            .drop_push_after
            .store(bytes, Ordering::SeqCst);
    }

    /// Bytes of push request bodies received so far, in all: what of each pack reached
    /// "GitHub".
    pub fn push_bytes_received(&self) -> u64 {
        self.hub.knobs.push_bytes.load(Ordering::SeqCst)
    }

    /// Every token issued so far (for leak scans).
    pub fn issued_tokens(&self) -> Vec<String> {
        self.hub
            .issued
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    // ----- fault knobs -----

    /// Fail the next `n` mints with `status` (e.g. 502).
    pub fn fail_next_mints(&self, n: u64, status: u16) {
        self.hub
            .knobs
            .fail_status
            .store(status.into(), Ordering::SeqCst);
        self.hub.knobs.fail_mints.store(n, Ordering::SeqCst);
    }
    /// Answer the next `n` API requests with `status` (403 or 429) and `Retry-After: secs`.
    pub fn rate_limit_next(&self, n: u64, status: u16, retry_after_secs: u64) {
        self.hub
            .knobs
            .rate_limit_status
            .store(status.into(), Ordering::SeqCst);
        self.hub
            .knobs
            .retry_after
            .store(retry_after_secs, Ordering::SeqCst);
        self.hub.knobs.rate_limit.store(n, Ordering::SeqCst);
    }
    /// fakehub's clock runs `secs` ahead (negative: behind) of the machine's.
    pub fn set_clock_skew(&self, secs: i64) {
        self.hub.knobs.clock_skew.store(secs, Ordering::SeqCst);
    }
    pub fn set_token_ttl(&self, secs: u64) {
        self.hub.knobs.token_ttl.store(secs, Ordering::SeqCst);
    }
    pub fn set_api_delay_ms(&self, ms: u64) {
        self.hub.knobs.delay_ms.store(ms, Ordering::SeqCst);
    }
    /// Git requests for `owner/repo` wait `ms` before they are answered (a stalled upstream).
    pub fn stall_git(&self, owner_repo: Option<&str>, ms: u64) {
        *self
            .hub
            .knobs
            .git_stall_repo
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = owner_repo.map(str::to_ascii_lowercase);
        self.hub.knobs.git_stall_ms.store(ms, Ordering::SeqCst);
    }

    /// The variables that point ghapp at this emulator's app, with tokens cached in
    /// `cache_dir` and no config file.
    pub fn app_env(&self, cache_dir: &Path) -> Vec<(String, String)> {
        vec![
            ("GHAPP_CONFIG".into(), String::new()),
            ("GHAPP_API_URL".into(), self.api_url()),
            ("GHAPP_APP_ID".into(), self.app_id().to_string()),
            (
                "GHAPP_PRIVATE_KEY_FILE".into(),
                self.key_path().display().to_string(),
            ),
            ("GHAPP_CACHE_DIR".into(), cache_dir.display().to_string()),
        ]
    }

    /// Stops serving now (as dropping does), e.g. to test an unreachable upstream.
    pub fn shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Creates a fine-grained personal access token for `user` that reaches `repos`
    /// (`owner/name`) with `permissions`, expiring in `ttl_secs` (`None`: never), and returns it.
    pub fn add_fine_grained_pat(
        &self,
        user: &str,
        repos: &[&str],
        permissions: &[(&str, &str)],
        ttl_secs: Option<u64>,
    ) -> String {
        use rand::RngExt;
        let mut rng = rand::rng();
        const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let mut pick = |n: usize| -> String {
            (0..n)
                .map(|_| ALNUM[rng.random_range(0..ALNUM.len())] as char)
                .collect()
        };
        let token = format!("github_pat_{}_{}", pick(22), pick(59));
        let t = hub::IssuedToken {
            installation_id: 0,
            repositories: Some(repos.iter().map(|r| r.to_ascii_lowercase()).collect()),
            user: Some(user.into()),
            permissions: permissions
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            expires_at: ttl_secs.map_or(i64::MAX, |s| self.hub.now() + s as i64),
            revoked: false,
        };
        self.hub
            .tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(token.clone(), t);
        self.hub
            .issued
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(token.clone());
        token
    }

    /// Grants installation `id` one more permission (as an owner accepting an app's new
    /// permissions would); tokens minted from then on may carry it.
    pub fn grant(&self, id: u64, permission: &str, level: &str) {
        let mut list = self
            .hub
            .installations
            .write()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(i) = list.iter_mut().find(|i| i.id == id) {
            i.permissions.insert(permission.into(), level.into());
        }
    }

    /// Issue classic 40-character tokens instead of the long stateless format.
    pub fn set_classic_tokens(&self, classic: bool) {
        self.hub
            .knobs
            .classic_tokens
            .store(classic as u64, Ordering::SeqCst);
    }
}

impl Drop for FakeHub {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The environment of a git client kept apart from the machine's configuration: `path` as
/// `PATH`, its own `HOME` and global config, no system config, no prompts, trust in `ca` (git
/// and everything reading `SSL_CERT_FILE`), and `who` as author and committer.
pub fn isolated_git_env(
    path: &str,
    home: &Path,
    gitconfig: &Path,
    ca: &Path,
    who: &str,
) -> Vec<(String, String)> {
    let ca = ca.display().to_string();
    let s = |x: &str| x.to_owned();
    vec![
        (s("PATH"), s(path)),
        (s("HOME"), home.display().to_string()),
        (s("GIT_CONFIG_GLOBAL"), gitconfig.display().to_string()),
        (s("GIT_CONFIG_NOSYSTEM"), s("1")),
        (s("GIT_TERMINAL_PROMPT"), s("0")),
        (s("GIT_SSL_CAINFO"), ca.clone()),
        (s("SSL_CERT_FILE"), ca),
        (s("GIT_AUTHOR_NAME"), s(who)),
        (s("GIT_AUTHOR_EMAIL"), s("agent@example.invalid")),
        (s("GIT_COMMITTER_NAME"), s(who)),
        (s("GIT_COMMITTER_EMAIL"), s("agent@example.invalid")),
        (s("LANG"), s("C")),
    ]
}
