//! `ghapp doctor`: one line per check, `ok`, `warn` or `fail`, each fail with its fix. Exit
//! status 1 on any fail.

use std::process::{Command, ExitCode};

use anyhow::Result;
use ghapp_core::broker::{Broker, Level, Permissions, TokenRequest};
use ghapp_core::client::{Auth, Installation, Method};
use ghapp_core::config::{AppConfig, Config, Overrides, PatConfig};
use ghapp_core::jwt::{AppSigner, unix_now};
use ghapp_core::resolve::Resolution;
use ghapp_gitproto::repo::RepoName;

use crate::out::outln;

/// One check's outcome.
struct Line {
    level: &'static str,
    check: String,
    detail: String,
    fix: Option<String>,
}

impl std::fmt::Display for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:<6}{}: {}", self.level, self.check, self.detail)?;
        match &self.fix {
            Some(fix) => write!(f, "; fix: {fix}"),
            None => Ok(()),
        }
    }
}

#[derive(Default)]
struct Report {
    lines: Vec<Line>,
    failed: bool,
}

impl Report {
    fn push(&mut self, level: &'static str, check: &str, detail: &str, fix: Option<&str>) {
        self.failed |= level == "fail";
        self.lines.push(Line {
            level,
            check: check.to_owned(),
            detail: detail.replace('\n', " "),
            fix: fix.map(str::to_owned),
        });
    }
    fn ok(&mut self, check: &str, detail: impl AsRef<str>) {
        self.push("ok", check, detail.as_ref(), None);
    }
    fn warn(&mut self, check: &str, detail: impl AsRef<str>) {
        self.push("warn", check, detail.as_ref(), None);
    }
    /// A failure whose message already says what to do (ghapp-core's errors do): the fix is
    /// not said twice.
    fn fail_said(&mut self, check: &str, message: impl AsRef<str>) {
        self.push("fail", check, message.as_ref(), None);
    }
    fn fail(&mut self, check: &str, detail: impl AsRef<str>, fix: impl AsRef<str>) {
        self.push("fail", check, detail.as_ref(), Some(fix.as_ref()));
    }
}

pub(crate) fn run(
    ov: &Overrides,
    repo: Option<RepoName>,
    host: Option<String>,
    json: bool,
) -> Result<ExitCode> {
    let mut r = Report::default();
    check(&mut r, ov, repo, host);
    if json {
        let checks: Vec<serde_json::Value> = r
            .lines
            .iter()
            .map(|l| {
                serde_json::json!({
                    "level": l.level,
                    "check": l.check,
                    "detail": l.detail,
                    "fix": l.fix,
                })
            })
            .collect();
        outln!("{}", serde_json::json!({"ok": !r.failed, "checks": checks}));
    } else {
        for l in &r.lines {
            outln!("{l}");
        }
    }
    Ok(if r.failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn check(r: &mut Report, ov: &Overrides, repo: Option<RepoName>, host: Option<String>) {
    let cfg = match Config::load(ov) {
        Ok(c) => c,
        Err(e) => {
            r.fail(
                "configuration",
                e.to_string(),
                "correct the file or variable it names",
            );
            return;
        }
    };
    let owner = repo.as_ref().map(RepoName::owner);
    let (app, pat) = match cfg.resolve(host.as_deref(), owner) {
        Resolution::App { app, fallback } => (Some(app.clone()), fallback.cloned()),
        Resolution::Exchange(ex) => {
            exchange_checks(r, ex, repo.as_ref());
            git_checks(r, ex.github.git_host());
            return;
        }
        Resolution::Pat(p) => (None, Some(p.clone())),
        Resolution::Nothing => (None, None),
    };
    let Some(app) = app else {
        if let Some(pat) = pat {
            r.ok(
                "configuration",
                format!(
                    "no GitHub App for {}; a fine-grained personal access token from {}",
                    pat.github.git_host(),
                    pat.source.describe()
                ),
            );
            pat_checks(r, &pat, repo.as_ref(), "no GitHub App is configured for it");
            git_checks(r, pat.github.git_host());
            return;
        }
        let msg = match &host {
            Some(h) => format!("no GitHub App is configured for {h}"),
            None => ghapp_core::config::not_configured(cfg.file.as_deref()),
        };
        r.fail(
            "configuration",
            msg,
            "set GHAPP_APP_ID and GHAPP_PRIVATE_KEY_FILE, or run `ghapp setup`",
        );
        git_checks(r, host.as_deref().unwrap_or("github.com"));
        return;
    };
    let source = cfg
        .file
        .as_ref()
        .map(|f| format!("config file {}", f.display()))
        .unwrap_or_else(|| "environment".into());
    r.ok(
        "configuration",
        format!(
            "app {} for {} via {} ({source})",
            app.ident.issuer(),
            app.git_host(),
            app.api_url()
        ),
    );
    let remote_ok = key_checks(r, &app);
    if remote_ok {
        let outcome = remote_checks(r, &cfg, &app, repo.clone(), pat.is_some());
        match (outcome, &pat, &repo) {
            (AppOutcome::NotInstalled, Some(pat), _) => {
                pat_checks(r, pat, repo.as_ref(), "the app is not installed on it");
            }
            (AppOutcome::Answered, _, Some(repo)) => r.ok(
                "source",
                format!("GitHub App {} answers for {repo}", app.ident.issuer()),
            ),
            _ => {}
        }
    }
    git_checks(r, app.git_host());
}

/// A token exchange instead of a key: where the OIDC token comes from, and (with a
/// repository) one exchange for it.
fn exchange_checks(
    r: &mut Report,
    ex: &ghapp_core::config::ExchangeConfig,
    repo: Option<&RepoName>,
) {
    r.ok(
        "configuration",
        format!(
            "no key: tokens from the exchange at {} under policy {:?} (audience {}) for {}",
            ex.url,
            ex.identity,
            ex.audience,
            ex.github.git_host()
        ),
    );
    let source = match &ex.token_file {
        Some(f) if f.is_file() => Ok(format!("the file {}", f.display())),
        Some(f) => Err(format!("GHAPP_OIDC_TOKEN_FILE {} is not a file", f.display())),
        None if std::env::var_os("ACTIONS_ID_TOKEN_REQUEST_URL").is_some()
            && std::env::var_os("ACTIONS_ID_TOKEN_REQUEST_TOKEN").is_some() =>
        {
            Ok("GitHub Actions (ACTIONS_ID_TOKEN_REQUEST_URL)".into())
        }
        None => Err("neither GHAPP_OIDC_TOKEN_FILE nor GitHub Actions' ACTIONS_ID_TOKEN_REQUEST_URL/_TOKEN is set".into()),
    };
    match source {
        Ok(s) => r.ok("OIDC token", format!("from {s}")),
        Err(e) => {
            r.fail(
                "OIDC token",
                e,
                "in GitHub Actions give the job `permissions: id-token: write`; in Kubernetes mount a projected service-account token and set GHAPP_OIDC_TOKEN_FILE",
            );
            return;
        }
    }
    let Some(repo) = repo else { return };
    let req = TokenRequest::for_repo(repo);
    let done = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|rt| {
            rt.block_on(ghapp_core::exchange::exchange(ex, &req, None))
                .map_err(|e| e.to_string())
        });
    match done {
        Ok(t) => r.ok(
            "exchange",
            format!("a token for {repo} ({}), valid until {}", t.token.fingerprint(), t.expires_at),
        ),
        Err(e) => r.fail(
            "exchange",
            e,
            "the message names the check that failed: fix the trust policy in the repository, or the job's identity",
        ),
    }
}

/// How the app's remote checks ended.
enum AppOutcome {
    /// A token was minted for the repository.
    Answered,
    /// The app is not installed on the repository (a fallback may answer).
    NotInstalled,
    /// Anything else (reported), or no repository to check.
    Other,
}

/// The fallback personal access token: readable, accepted, reaching the repository.
fn pat_checks(r: &mut Report, pat: &PatConfig, repo: Option<&RepoName>, why: &str) {
    use ghapp_core::client::GitHubClient;
    let what = "personal access token";
    let fix_store = format!(
        "create a fine-grained token for the repositories and store it in {}",
        pat.source.describe()
    );
    let (token, warnings) = match pat.source.load() {
        Ok(t) => t,
        Err(e) => {
            r.fail(what, e.to_string(), &fix_store);
            return;
        }
    };
    for w in &warnings {
        r.warn(what, w);
    }
    let Some(rt) = runtime(r) else {
        return;
    };
    let client = match GitHubClient::new(pat.github.api_url()) {
        Ok(c) => c.with_deadline(std::time::Duration::from_secs(20)),
        Err(e) => {
            r.fail("GitHub client", e.to_string(), "see the message");
            return;
        }
    };
    rt.block_on(async {
        let resp = match client.request(Method::GET, "/user", Auth::Pat(&token), None).await {
            Ok(x) => x,
            Err(e) => {
                r.fail("GitHub", e.to_string(), "check GHAPP_API_URL, the network and SSL_CERT_FILE");
                return;
            }
        };
        match resp.status.as_u16() {
            200 => {}
            401 => {
                r.fail(what, format!("GitHub refused it (401: {}): it has expired or was revoked", resp.message()), &fix_store);
                return;
            }
            s => {
                r.fail(what, format!("GET /user answered {s}: {}", resp.message()), "check the token and GHAPP_API_URL");
                return;
            }
        }
        let login = serde_json::from_slice::<serde_json::Value>(&resp.body)
            .ok()
            .and_then(|v| v["login"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "?".into());
        let expiry = resp
            .headers
            .get("github-authentication-token-expiration")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_token_expiry);
        let now = std::time::SystemTime::now();
        match expiry {
            None => r.warn(what, format!("accepted for {login}, {}, and it never expires: prefer one that does", token.fingerprint())),
            Some(at) => {
                let days = at.duration_since(now).map(|d| d.as_secs() / 86_400).unwrap_or(0);
                if days < 7 {
                    r.warn(what, format!("accepted for {login}, {}, but it expires in {days} day(s): create its successor", token.fingerprint()));
                } else {
                    r.ok(what, format!("accepted for {login}, {} (expires in {days} days)", token.fingerprint()));
                }
            }
        }
        let target = match repo {
            Some(repo) => {
                let path = format!("/repos/{repo}");
                let resp = match client.request(Method::GET, &path, Auth::Pat(&token), None).await {
                    Ok(x) => x,
                    Err(e) => {
                        r.fail("GitHub", e.to_string(), "check the network");
                        return;
                    }
                };
                if resp.status.as_u16() != 200 {
                    r.fail(
                        what,
                        format!("it does not reach {repo} (GET {path} answered {})", resp.status.as_u16()),
                        "add the repository to the token's repository access",
                    );
                    return;
                }
                let push = serde_json::from_slice::<serde_json::Value>(&resp.body)
                    .ok()
                    .and_then(|v| v["permissions"]["push"].as_bool())
                    .unwrap_or(false);
                if push {
                    r.ok(what, format!("reaches {repo} with push"));
                } else {
                    r.warn(what, format!("reaches {repo} read-only: a push will fail (grant Contents: read and write)"));
                }
                format!("{repo}")
            }
            None => pat.github.git_host().to_owned(),
        };
        r.ok(
            "source",
            format!("the fine-grained personal access token from {} answers for {target} ({why})", pat.source.describe()),
        );
    });
}

/// A current-thread runtime for the remote checks, or a fail line.
fn runtime(r: &mut Report) -> Option<tokio::runtime::Runtime> {
    match crate::context::runtime() {
        Ok(rt) => Some(rt),
        Err(e) => {
            r.fail("runtime", e.to_string(), "report this as a bug");
            None
        }
    }
}

/// `2026-12-01 00:00:00 UTC` (GitHub's `github-authentication-token-expiration`).
fn parse_token_expiry(v: &str) -> Option<std::time::SystemTime> {
    let t = v.trim().strip_suffix(" UTC")?.replacen(' ', "T", 1);
    humantime::parse_rfc3339(&format!("{t}Z")).ok()
}

/// The key: readable, private, an RSA key that signs. Returns whether remote checks can run.
fn key_checks(r: &mut Report, app: &AppConfig) -> bool {
    if let ghapp_core::keys::KeySource::Signer(spec) = &app.key {
        return match AppSigner::with_signer(app.ident.clone(), spec.clone()) {
            Ok(_) => {
                r.ok(
                    "private key",
                    format!(
                        "none here: {} signs (GitHub checks the signature next)",
                        app.key.describe()
                    ),
                );
                true
            }
            Err(e) => {
                r.fail_said("private key", e.to_string());
                false
            }
        };
    }
    let loaded = match app.key.load() {
        Ok(l) => l,
        Err(e) => {
            r.fail_said("private key", e.to_string());
            return false;
        }
    };
    for w in &loaded.warnings {
        r.warn("private key", w);
    }
    match AppSigner::new(app.ident.clone(), &loaded.pem, &app.key.describe()) {
        Ok(_) => {
            if loaded.warnings.is_empty() {
                r.ok(
                    "private key",
                    format!("{} holds an RSA key that signs", app.key.describe()),
                );
            }
            true
        }
        Err(e) => {
            r.fail(
                "private key",
                e.to_string(),
                "download a new key from the app's settings",
            );
            false
        }
    }
}

fn remote_checks(
    r: &mut Report,
    cfg: &Config,
    app: &AppConfig,
    repo: Option<RepoName>,
    has_fallback: bool,
) -> AppOutcome {
    let Some(rt) = runtime(r) else {
        return AppOutcome::Other;
    };
    let broker = match Broker::new(app.clone(), cfg.refresh_margin, &cfg.cache_dir)
        .map(Broker::without_negative_cache)
    {
        Ok(b) => b.with_deadline(std::time::Duration::from_secs(20)),
        Err(e) => {
            r.fail("GitHub client", e.to_string(), "see the message");
            return AppOutcome::Other;
        }
    };
    if let Err(e) = broker.load_key_now() {
        r.fail(
            "private key",
            e.to_string(),
            "download a new key from the app's settings",
        );
        return AppOutcome::Other;
    }
    rt.block_on(async {
        // The JWT, judged without the clock recovery the broker would apply.
        let Ok(signer) = broker.signer().await else { return AppOutcome::Other };
        let Ok(jwt) = signer.sign() else { return AppOutcome::Other };
        let resp = match broker.client().request(Method::GET, "/app", Auth::Jwt(&jwt), None).await {
            Ok(x) => x,
            Err(e) => {
                r.fail("GitHub", e.to_string(), "check GHAPP_API_URL, the network and SSL_CERT_FILE");
                return AppOutcome::Other;
            }
        };
        let offset = resp
            .date()
            .and_then(|d| d.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs() as i64 - unix_now());
        match offset {
            Some(o) if o.abs() > 30 => r.fail(
                "clock",
                format!("the local clock is {o} s off GitHub's (its Date header)"),
                "enable NTP (timedatectl set-ntp true); ghapp works around it, other tools will not",
            ),
            Some(o) => r.ok("clock", format!("within {} s of GitHub's", o.abs())),
            None => r.warn("clock", "GitHub sent no Date header to compare with"),
        }
        if let Some(o) = offset {
            signer.set_clock_offset(o);
        }
        let msg = resp.message();
        let clockish = ["iat", "exp", "Issued at", "Expiration time"].iter().any(|w| msg.contains(w));
        match (resp.status.as_u16(), clockish) {
            (200, _) => {}
            (401, true) => {}
            (401, false) => {
                r.fail(
                    "JWT",
                    format!("GitHub refused the app's JWT (401: {msg})"),
                    format!(
                        "check that app id {}{} and the private key{} belong to the same app",
                        app.ident.issuer(),
                        app.sources.of("app_id"),
                        app.sources.of("key")
                    ),
                );
                return AppOutcome::Other;
            }
            (s, _) => {
                r.fail(
                    "JWT",
                    format!("GET /app answered {s}: {msg}"),
                    format!("check the API URL {}{}", app.api_url(), app.sources.of("api_url")),
                );
                return AppOutcome::Other;
            }
        }
        match broker.app_info().await {
            Ok(info) => r.ok(
                "JWT",
                format!("accepted: app {} ({})", info.slug.as_deref().unwrap_or("?"), info.name),
            ),
            Err(e) => {
                r.fail("JWT", e.to_string(), "check the app id and key");
                return AppOutcome::Other;
            }
        }
        let Some(repo) = repo else {
            r.warn("installation", "pass --repo OWNER/REPO to check an installation and mint a token");
            return AppOutcome::Other;
        };
        let req = TokenRequest::exactly(&repo, Permissions::default_for_git());
        let id = match broker.installation_id(&req).await {
            Ok(id) => id,
            Err(e @ ghapp_core::Error::NotInstalled { .. }) if has_fallback => {
                r.warn("installation", format!("{e} (the personal access token answers meanwhile)"));
                return AppOutcome::NotInstalled;
            }
            Err(e) => {
                r.fail_said("installation", e.to_string());
                return AppOutcome::Other;
            }
        };
        let path = format!("/app/installations/{id}");
        let inst: Option<Installation> = broker
            .app_request(Method::GET, &path, None)
            .await
            .ok()
            .filter(|x| x.status.is_success())
            .and_then(|x| x.json(&path).ok());
        let account = inst
            .as_ref()
            .and_then(|i| i.account.as_ref())
            .map(|a| a.login.clone())
            .unwrap_or_default();
        r.ok("installation", format!("{id} on {account} covers {repo}"));
        if let Some(inst) = inst {
            permission_checks(r, &inst.permissions);
        }
        match broker.token(&req).await {
            Ok(t) => {
                let mins = t.expires_at.saturating_sub(unix_now() as u64) / 60;
                r.ok("token", format!("minted for {repo}, {} (expires in {mins} min)", t.token.fingerprint()));
                AppOutcome::Answered
            }
            Err(e) => {
                r.fail("token", e.to_string(), "see the message");
                AppOutcome::Other
            }
        }
    })
}

fn permission_checks(r: &mut Report, granted: &Permissions) {
    let needed = Permissions::default_for_git();
    let mut missing = Vec::new();
    for (name, level) in needed.iter() {
        let g = granted.get(name);
        if g < Some(level) {
            let g = g.map_or("none", Level::as_str);
            missing.push(format!("{name}: {level} (granted: {g})"));
        }
    }
    if missing.is_empty() {
        r.ok(
            "permissions",
            "contents: write, pull_requests: write, metadata: read granted",
        );
    } else {
        r.fail(
            "permissions",
            format!("the installation lacks {}", missing.join(", ")),
            "grant them in the app's settings, then accept the new permissions on the installation",
        );
    }
    let extra: Vec<String> = granted
        .iter()
        .filter(|(k, _)| needed.get(k).is_none())
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    if !extra.is_empty() {
        r.warn(
            "permissions",
            format!(
                "granted beyond what ghapp needs: {} (keep an app to contents, pull_requests and metadata)",
                extra.join(", ")
            ),
        );
    }
}

/// The helper list git builds for `https://HOST/`: `credential.helper` and
/// `credential.<url>.helper` in config order, an empty value resetting the list.
/// Whether git can run the configured helper, found as git finds it (`git credential-ghapp`:
/// `git-credential-ghapp` in git's exec-path, then on PATH; an absolute path as is), and
/// whether `ghapp`, which mints on a cache miss, is beside it or on PATH.
fn helper_checks(r: &mut Report, helper: &str) {
    let fix = "put git-credential-ghapp and ghapp on PATH, side by side: `cargo build --release` and add target/release to PATH, or run install.sh";
    let first = helper.split_whitespace().next().unwrap_or("");
    if first.starts_with('!') {
        r.warn(
            "helper",
            format!("{helper:?} is a shell command: not checked"),
        );
        return;
    }
    let found = if first.contains('/') {
        let p = std::path::PathBuf::from(first);
        is_executable(&p).then_some(p)
    } else {
        let exec_path = Command::new("git")
            .arg("--exec-path")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .filter(|p| !p.is_empty());
        let name = format!("git-credential-{first}");
        exec_path
            .iter()
            .map(std::path::PathBuf::from)
            .chain(path_dirs())
            .map(|d| d.join(&name))
            .find(|p| is_executable(p))
    };
    let Some(helper_path) = found else {
        r.fail(
            "helper",
            format!("git cannot run the helper {helper:?}: git-credential-{first} is neither in git's exec-path nor on PATH"),
            fix,
        );
        return;
    };
    let beside = helper_path.with_file_name("ghapp");
    let ghapp = if is_executable(&beside) {
        Some(beside)
    } else {
        path_dirs()
            .map(|d| d.join("ghapp"))
            .find(|p| is_executable(p))
    };
    match ghapp {
        Some(g) => r.ok(
            "helper",
            format!(
                "git runs {}; it mints with {}",
                helper_path.display(),
                g.display()
            ),
        ),
        None => r.fail(
            "helper",
            format!(
                "ghapp is neither beside {} nor on PATH: the helper cannot mint on a cache miss",
                helper_path.display()
            ),
            fix,
        ),
    }
}

fn path_dirs() -> impl Iterator<Item = std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).collect::<Vec<_>>().into_iter()
}

fn is_executable(p: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn git_checks(r: &mut Report, host: &str) {
    let out = Command::new("git")
        .args(["config", "--null", "--get-regexp", r"^credential\."])
        .output();
    let Ok(out) = out else {
        r.fail("git", "cannot run git", "install git 2.40 or later");
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let url = format!("https://{host}");
    let mut helpers: Vec<String> = Vec::new();
    for entry in text.split('\0').filter(|e| !e.is_empty()) {
        let (key, value) = entry.split_once('\n').unwrap_or((entry, ""));
        let key = key.to_ascii_lowercase();
        let applies = key == "credential.helper"
            || key
                .strip_prefix("credential.")
                .and_then(|k| k.strip_suffix(".helper"))
                .is_some_and(|u| u == url || u.starts_with(&format!("{url}/")) || u == host);
        if !applies {
            continue;
        }
        if value.is_empty() {
            helpers.clear();
        } else {
            helpers.push(value.to_owned());
        }
    }
    let ours = |h: &str| h == "ghapp" || h.contains("git-credential-ghapp");
    let fix = format!("run `ghapp configure-git --host {host}`");
    match helpers.iter().position(|h| ours(h)) {
        None => {
            r.fail(
                "git",
                format!("no credential helper routes {url} to ghapp"),
                &fix,
            );
            return;
        }
        Some(0) => helper_checks(r, &helpers[0]),
        Some(_) => {
            r.fail(
                "git",
                format!("helper {:?} answers {url} before ghapp", helpers[0]),
                format!("{fix} (it resets the helper list for the host)"),
            );
            return;
        }
    }
    let path = Command::new("git")
        .args([
            "config",
            "--get-urlmatch",
            "credential.useHttpPath",
            &format!("{url}/"),
        ])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    if matches!(path.as_str(), "true" | "yes" | "on" | "1") {
        r.ok("git", format!("{url} routes to ghapp, with useHttpPath"));
    } else {
        r.fail(
            "git",
            format!("credential.useHttpPath is not true for {url}: tokens cannot be narrowed"),
            fix,
        );
    }
}
