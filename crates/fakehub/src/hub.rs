//! fakehub's state: the apps, their installations, repositories, tokens, counters and fault knobs.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rand::RngExt;
use serde::Serialize;

/// The emulated app.
#[derive(Debug, Clone)]
pub(crate) struct App {
    pub id: u64,
    pub client_id: String,
    pub slug: String,
    pub name: String,
    pub owner: String,
    pub permissions: BTreeMap<String, String>,
    /// Webhook URL (`None`: no active webhook).
    pub hook_url: Option<String>,
}

/// An app and the key that verifies its JWTs.
pub(crate) struct AppEntry {
    pub app: App,
    pub decoding_key: DecodingKey,
}

/// What a manifest code converts to, until it is used or expires.
pub(crate) struct PendingConversion {
    pub app_id: u64,
    pub pem: String,
    pub webhook_secret: Option<String>,
    pub client_secret: String,
    pub created_at: i64,
    pub used: bool,
}

/// How long a manifest code can be converted (GitHub: one hour).
pub(crate) const MANIFEST_CODE_TTL: i64 = 3600;

#[derive(Debug, Clone)]
pub(crate) struct Installation {
    pub id: u64,
    pub app_id: u64,
    pub account: String,
    pub account_id: u64,
    pub account_type: &'static str,
    /// `None`: every repository of the account ("all").
    pub repositories: Option<Vec<String>>,
    pub permissions: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub(crate) struct Repo {
    pub id: u64,
    pub owner: String,
    pub name: String,
    pub default_branch: String,
}

#[derive(Clone)]
pub(crate) struct IssuedToken {
    /// 0 for a personal access token.
    pub installation_id: u64,
    /// Lowercased names (`owner/name` for a personal access token); `None`: all of the
    /// installation's repositories.
    pub repositories: Option<Vec<String>>,
    /// The user a fine-grained personal access token belongs to.
    pub user: Option<String>,
    pub permissions: BTreeMap<String, String>,
    pub expires_at: i64,
    pub revoked: bool,
}

/// A counted mint, for tests.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Mint {
    pub installation_id: u64,
    pub repositories: Option<Vec<String>>,
    pub permissions: BTreeMap<String, String>,
}

/// What fakehub has seen. Cloned out by [`crate::FakeHub::counters`].
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counters {
    /// Successful mints, in order.
    pub mints: Vec<Mint>,
    /// Requests per route, e.g. `POST /app/installations/{id}/access_tokens`, `git-upload-pack`.
    pub requests: BTreeMap<String, u64>,
    /// Requests that presented a token after its expiry.
    pub expired_token_uses: u64,
    /// Requests refused for a bad JWT.
    pub jwt_rejections: u64,
    /// Pushes that changed a ref (a refused push is answered 200 with its refs `ng`: not
    /// counted).
    pub pushes: u64,
    /// The JSON bodies of every mint request, as sent (for schema checks of clients).
    pub mint_bodies: Vec<serde_json::Value>,
    /// Every GraphQL operation received: `query NAME` or `mutation FIELD,FIELD`.
    pub graphql: Vec<String>,
    /// REST requests refused for an installation's exhausted hourly limit (primary).
    pub primary_limited: u64,
    /// REST writes refused past the content-creation limit per minute (secondary).
    pub secondary_limited: u64,
    /// GraphQL requests refused: past the points per minute (secondary) or an installation's
    /// points per hour (primary).
    pub graphql_limited: u64,
}

/// GitHub's limits as counted: (installation, hour) -> requests; minute -> writes.
pub(crate) type Used = (HashMap<(u64, i64), u64>, HashMap<i64, u64>);

/// Fault knobs. Set through [`crate::FakeHub`] or `POST /_fakehub/knobs`.
#[derive(Debug, Default)]
pub(crate) struct Knobs {
    /// Fail this many following mints with `fail_status`.
    pub fail_mints: AtomicU64,
    pub fail_status: AtomicU64,
    /// Answer this many following API requests with `rate_limit_status` and `Retry-After`.
    pub rate_limit: AtomicU64,
    pub rate_limit_status: AtomicU64,
    pub retry_after: AtomicU64,
    /// Seconds added to fakehub's clock (negative: behind).
    pub clock_skew: AtomicI64,
    /// Lifetime of minted tokens, seconds.
    pub token_ttl: AtomicU64,
    /// Delay before every API answer, milliseconds.
    pub delay_ms: AtomicU64,
    /// 0: stateless tokens (~520 characters with dots), 1: classic `ghs_` + 36.
    pub classic_tokens: AtomicU64,
    /// Git requests for this repository (`owner/name`, lowercase) wait `git_stall_ms` first.
    pub git_stall_repo: Mutex<Option<String>>,
    pub git_stall_ms: AtomicU64,
    /// A push whose body passes this many bytes is cut off: the backend is killed (no ref
    /// changes) and the connection dropped without an answer. 0: off.
    pub drop_push_after: AtomicU64,
    /// Bytes of push bodies received, in all (what reached "GitHub" of each pack).
    pub push_bytes: std::sync::Arc<AtomicU64>,
    /// An installation's REST requests per hour (GitHub: 5,000 at least).
    pub primary_limit: AtomicU64,
    /// Content-creating REST requests (POST, PATCH, PUT, DELETE) per minute, for the whole app
    /// (GitHub: about 80).
    pub secondary_per_minute: AtomicU64,
    pub used: Mutex<Used>,
    /// GraphQL points per minute for the app (GitHub: 2,000; a query costs 1, a mutation 5).
    pub graphql_points_per_minute: AtomicU64,
    /// GraphQL: (installation, hour) -> points; minute -> points.
    pub graphql_used: Mutex<Used>,
}

/// One request as fakehub received it, before any routing: what "GitHub" saw.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Received {
    pub method: String,
    /// The request target as sent: path and query, undecoded.
    pub target: String,
    /// The token presented (Basic password or Bearer value), by fingerprint; `jwt` for an app
    /// JWT; `None` without credentials.
    pub credential: Option<String>,
    /// The permissions of the installation token presented (`None`: no such token).
    pub permissions: Option<BTreeMap<String, String>>,
    /// The header names, lower-cased, in order.
    pub headers: Vec<String>,
}

pub(crate) struct Hub {
    pub base_url: String,
    pub repos_root: PathBuf,
    pub home: PathBuf,
    pub apps: RwLock<Vec<AppEntry>>,
    pub installations: RwLock<Vec<Installation>>,
    /// Manifest codes by value.
    pub conversions: Mutex<HashMap<String, PendingConversion>>,
    pub repos: Mutex<Vec<Repo>>,
    pub tokens: Mutex<HashMap<String, IssuedToken>>,
    pub counters: Mutex<Counters>,
    /// Every token ever issued, for leak scans.
    pub issued: Mutex<Vec<String>>,
    pub pulls: Mutex<Vec<crate::pulls::Pull>>,
    /// Check runs, oldest first.
    pub check_runs: Mutex<Vec<crate::api::checks::CheckRun>>,
    /// Webhook deliveries, newest last.
    pub deliveries: Mutex<Vec<Delivery>>,
    pub knobs: Knobs,
    /// `host:port` of the LFS storage host (a second name for this server).
    pub lfs_host: String,
    /// Where storage URLs point: `https://LFS_HOST` or, same-host, `BASE/_lfs`.
    pub lfs_base: String,
    /// What storage URLs are signed with.
    pub lfs_secret: [u8; 32],
    pub lfs_locks: Mutex<Vec<crate::lfs::Lock>>,
    /// Every request received, in order (bounded: the oldest are dropped past 100,000).
    pub received: Mutex<std::collections::VecDeque<Received>>,
    /// The OIDC issuer (GitHub Actions' shape) under `/_oidc`.
    pub oidc: Mutex<crate::oidc::Issuer>,
}

pub(crate) enum TokenCheck {
    Valid(IssuedToken),
    Expired,
    Unknown,
}

impl Hub {
    /// fakehub's clock: real time plus the skew knob.
    pub(crate) fn now(&self) -> i64 {
        let real = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        real + self.knobs.clock_skew.load(Ordering::Relaxed)
    }

    pub(crate) fn count(&self, route: &str) {
        let mut c = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        *c.requests.entry(route.to_owned()).or_default() += 1;
    }

    pub(crate) fn with_counters<T>(&self, f: impl FnOnce(&mut Counters) -> T) -> T {
        let mut c = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut c)
    }

    /// Checks an app JWT as GitHub documents it: RS256 signed by the key of the app its `iss`
    /// names (app id or client id), `iat` in the past, `exp` in the future and at most 10
    /// minutes ahead. Ok: the app.
    pub(crate) fn check_jwt(&self, jwt: &str) -> Result<App, &'static str> {
        let r = self.check_jwt_inner(jwt);
        if r.is_err() {
            self.with_counters(|c| c.jwt_rejections += 1);
        }
        r
    }

    fn check_jwt_inner(&self, jwt: &str) -> Result<App, &'static str> {
        const UNDECODABLE: &str = "A JSON web token could not be decoded";
        let header = jsonwebtoken::decode_header(jwt).map_err(|_| UNDECODABLE)?;
        if header.alg != Algorithm::RS256 {
            return Err(UNDECODABLE);
        }
        // The issuer picks the key; the signature is checked with that app's key only.
        let unverified = jsonwebtoken::dangerous::insecure_decode::<serde_json::Value>(jwt)
            .map_err(|_| UNDECODABLE)?
            .claims;
        let apps = self.apps.read().unwrap_or_else(|e| e.into_inner());
        let entry = apps.iter().find(|e| match &unverified["iss"] {
            serde_json::Value::Number(n) => n.as_u64() == Some(e.app.id),
            serde_json::Value::String(s) => {
                *s == e.app.client_id || s.parse::<u64>().ok() == Some(e.app.id)
            }
            _ => false,
        });
        let Some(entry) = entry else {
            return Err("'Issuer' claim ('iss') must be an Integer");
        };
        let mut v = Validation::new(Algorithm::RS256);
        v.validate_exp = false;
        v.validate_nbf = false;
        v.validate_aud = false;
        v.required_spec_claims.clear();
        v.leeway = 0;
        let claims = jsonwebtoken::decode::<serde_json::Value>(jwt, &entry.decoding_key, &v)
            .map_err(|_| UNDECODABLE)?
            .claims;
        let now = self.now();
        const IAT: &str =
            "'Issued at' claim ('iat') must be an Integer representing a time in the past";
        const EXP: &str = "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires";
        let iat = claims["iat"].as_i64().ok_or(IAT)?;
        let exp = claims["exp"].as_i64().ok_or(EXP)?;
        if iat > now {
            return Err(IAT);
        }
        if exp <= now {
            return Err(EXP);
        }
        if exp > now + 600 || exp - iat > 600 {
            return Err("'Expiration time' claim ('exp') is too far in the future");
        }
        Ok(entry.app.clone())
    }

    /// The app with this id.
    pub(crate) fn app(&self, id: u64) -> Option<App> {
        let apps = self.apps.read().unwrap_or_else(|e| e.into_inner());
        apps.iter().find(|e| e.app.id == id).map(|e| e.app.clone())
    }

    /// The app's installations.
    pub(crate) fn installations_of(&self, app_id: u64) -> Vec<Installation> {
        let all = self.installations.read().unwrap_or_else(|e| e.into_inner());
        all.iter().filter(|i| i.app_id == app_id).cloned().collect()
    }

    pub(crate) fn check_token(&self, token: &str) -> TokenCheck {
        let tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        match tokens.get(token) {
            Some(t) if t.revoked => TokenCheck::Unknown,
            Some(t) if t.expires_at <= self.now() => {
                drop(tokens);
                self.with_counters(|c| c.expired_token_uses += 1);
                TokenCheck::Expired
            }
            Some(t) => TokenCheck::Valid(t.clone()),
            None => TokenCheck::Unknown,
        }
    }

    pub(crate) fn installation(&self, id: u64) -> Option<Installation> {
        let all = self.installations.read().unwrap_or_else(|e| e.into_inner());
        all.iter().find(|i| i.id == id).cloned()
    }

    /// The id and type (`Organization` or `User`) of the account `login`, as its installation
    /// says; an account without one is a `User`.
    pub(crate) fn account(&self, login: &str) -> (u64, &'static str) {
        self.installations
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|i| i.account.eq_ignore_ascii_case(login))
            .map_or((7000, "User"), |i| (i.account_id, i.account_type))
    }

    /// The bare repository of `r` on disk.
    pub(crate) fn repo_dir(&self, r: &Repo) -> PathBuf {
        self.repos_root
            .join(r.owner.to_ascii_lowercase())
            .join(format!("{}.git", r.name.to_ascii_lowercase()))
    }

    pub(crate) fn find_repo(&self, owner: &str, name: &str) -> Option<Repo> {
        let repos = self.repos.lock().unwrap_or_else(|e| e.into_inner());
        repos
            .iter()
            .find(|r| r.owner.eq_ignore_ascii_case(owner) && r.name.eq_ignore_ascii_case(name))
            .cloned()
    }

    /// Repositories an installation can reach.
    pub(crate) fn installation_repos(&self, inst: &Installation) -> Vec<Repo> {
        let repos = self.repos.lock().unwrap_or_else(|e| e.into_inner());
        repos
            .iter()
            .filter(|r| r.owner.eq_ignore_ascii_case(&inst.account))
            .filter(|r| match &inst.repositories {
                None => true,
                Some(list) => list.iter().any(|n| n.eq_ignore_ascii_case(&r.name)),
            })
            .cloned()
            .collect()
    }

    /// The app's installation that reaches `owner/name`.
    pub(crate) fn installation_for_repo(
        &self,
        app_id: u64,
        owner: &str,
        name: &str,
    ) -> Option<Installation> {
        self.find_repo(owner, name)?;
        self.installations_of(app_id).into_iter().find(|i| {
            i.account.eq_ignore_ascii_case(owner)
                && self
                    .installation_repos(i)
                    .iter()
                    .any(|r| r.name.eq_ignore_ascii_case(name))
        })
    }

    /// Whether `token` reaches `repo` (owner/name) at all.
    pub(crate) fn token_covers(&self, t: &IssuedToken, owner: &str, name: &str) -> bool {
        if t.user.is_some() {
            let full = format!("{owner}/{name}");
            return t
                .repositories
                .iter()
                .flatten()
                .any(|n| n.eq_ignore_ascii_case(&full));
        }
        let Some(inst) = self.installation(t.installation_id) else {
            return false;
        };
        let in_installation = self
            .installation_repos(&inst)
            .iter()
            .any(|r| r.owner.eq_ignore_ascii_case(owner) && r.name.eq_ignore_ascii_case(name));
        in_installation
            && match &t.repositories {
                None => true,
                Some(list) => list.iter().any(|n| n.eq_ignore_ascii_case(name)),
            }
    }

    /// A new installation token for `app_id`: GitHub's stateless shape (`ghs_APPID_JWT`, about
    /// 520 characters) unless classic ones are asked for (the knob, or `stateless = Some(false)`
    /// from the request's `X-GitHub-Stateless-S2S-Token: disabled`).
    pub(crate) fn new_token(&self, app_id: u64, stateless: Option<bool>) -> String {
        let mut rng = rand::rng();
        const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        const B64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut pick = |alphabet: &[u8], n: usize| -> String {
            (0..n)
                .map(|_| alphabet[rng.random_range(0..alphabet.len())] as char)
                .collect()
        };
        let classic = self.knobs.classic_tokens.load(Ordering::Relaxed) == 1;
        if stateless == Some(false) || (classic && stateless.is_none()) {
            format!("ghs_{}", pick(ALNUM, 36))
        } else {
            // GitHub's stateless format: `ghs_`, the app id, `_`, then a JWT (an RS256 header,
            // a payload naming the installation, a 256-byte signature), about 520 characters.
            use base64::Engine;
            let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
            let payload = format!(
                r#"{{"iss":"{app_id}","jti":"{}","typ":"s2s","exp":{}}}"#,
                pick(ALNUM, 22),
                self.now() + 3600
            );
            let signature: Vec<u8> = pick(B64URL, 256).into_bytes();
            format!(
                "ghs_{app_id}_{}.{}.{}",
                b64(br#"{"alg":"RS256","typ":"JWT"}"#),
                b64(payload.as_bytes()),
                b64(&signature)
            )
        }
    }
}

/// One webhook delivery.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Delivery {
    pub id: u64,
    pub guid: String,
    pub delivered_at: String,
    pub redelivery: bool,
    pub duration: f64,
    pub status: String,
    pub status_code: u16,
    pub event: String,
    pub action: Option<String>,
    pub installation_id: Option<u64>,
    pub repository_id: Option<u64>,
}

/// Three deliveries: two delivered, one that failed with 500.
pub(crate) fn seed_deliveries() -> Vec<Delivery> {
    let d = |id: u64, event: &str, action: Option<&str>, code: u16, status: &str| Delivery {
        id,
        guid: format!("0b9a{id:04}-0000-11ef-8000-000000000000"),
        delivered_at: format!("2026-01-05T10:0{}:00Z", id % 10),
        redelivery: false,
        duration: 0.25,
        status: status.into(),
        status_code: code,
        event: event.into(),
        action: action.map(str::to_owned),
        installation_id: Some(101),
        repository_id: Some(501),
    };
    vec![
        d(1, "push", None, 200, "OK"),
        d(
            2,
            "pull_request",
            Some("opened"),
            500,
            "Internal Server Error",
        ),
        d(3, "installation_repositories", Some("added"), 200, "OK"),
    ]
}

/// Whether `granted` (read|write|admin) covers `wanted`.
pub(crate) fn level_covers(granted: &str, wanted: &str) -> bool {
    let rank = |l: &str| match l {
        "read" => 1,
        "write" => 2,
        "admin" => 3,
        _ => 0,
    };
    rank(wanted) > 0 && rank(granted) >= rank(wanted)
}

/// Creates a bare repository with one commit on `main`, with git's plumbing only.
pub(crate) fn create_repo(
    root: &Path,
    home: &Path,
    owner: &str,
    name: &str,
) -> std::io::Result<()> {
    let dir = root
        .join(owner.to_ascii_lowercase())
        .join(format!("{}.git", name.to_ascii_lowercase()));
    std::fs::create_dir_all(&dir)?;
    let git = |args: &[&str], stdin: Option<&str>| -> std::io::Result<String> {
        use std::io::Write;
        let mut cmd = std::process::Command::new("git");
        cmd.args(args)
            .current_dir(&dir)
            .env("GIT_DIR", &dir)
            .env("HOME", home)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_AUTHOR_NAME", "fakehub")
            .env("GIT_AUTHOR_EMAIL", "fakehub@example.invalid")
            .env("GIT_AUTHOR_DATE", "2026-01-05T10:00:00Z")
            .env("GIT_COMMITTER_NAME", "fakehub")
            .env("GIT_COMMITTER_EMAIL", "fakehub@example.invalid")
            .env("GIT_COMMITTER_DATE", "2026-01-05T10:00:00Z")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn()?;
        if let Some(s) = stdin {
            child.stdin.take().expect("piped").write_all(s.as_bytes())?;
        }
        drop(child.stdin.take());
        let out = child.wait_with_output()?;
        if !out.status.success() {
            return Err(std::io::Error::other(format!(
                "git {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    git(
        &["init", "--bare", "--quiet", "--initial-branch=main"],
        None,
    )?;
    let readme = format!("# {owner}/{name}\n\nAn emulated repository served by fakehub.\n");
    let blob = git(&["hash-object", "-w", "--stdin"], Some(&readme))?;
    let tree = git(
        &["mktree"],
        Some(&format!("100644 blob {blob}\tREADME.md\n")),
    )?;
    let commit = git(&["commit-tree", &tree, "-m", "Initial commit"], None)?;
    git(&["update-ref", "refs/heads/main", &commit], None)?;
    Ok(())
}
