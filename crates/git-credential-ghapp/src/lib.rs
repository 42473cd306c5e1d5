//! `git-credential-ghapp`: a git credential helper that answers with a GitHub App installation
//! token narrowed to the repository git asks about.
//!
//! ```text
//! git config --global credential.https://github.com.helper ''
//! git config --global --add credential.https://github.com.helper ghapp
//! git config --global credential.https://github.com.useHttpPath true
//! ```
//!
//! A warm `get` answers from the 0600 token cache before any async runtime, TLS client or log
//! subscriber exists; a cold one mints once (cross-process single-flight in ghapp-core).
//!
//! # Security
//! stdout carries only protocol lines: this module is the only place that writes to it. Errors
//! are one line on stderr, prefixed with the program name, and never hold a token or key.

use std::io::{Read, Write};
use std::process::ExitCode;

use ghapp_core::broker::{Broker, TokenRequest, token_key};
use ghapp_core::cache::{CachedToken, DiskCache};
use ghapp_core::config::{Config, Overrides};
use ghapp_gitproto::credential::{Answer, MAX_INPUT, Request, repo_from_path};

pub const PROGRAM: &str = "git-credential-ghapp";
/// The username git sends with an installation token.
pub const USERNAME: &str = "x-access-token";

const USAGE: &str = "usage: git-credential-ghapp <get|store|erase>\n\
A git credential helper answering with GitHub App installation tokens.\n\
Configure it with `ghapp configure-git`, or:\n  \
git config --global credential.https://github.com.helper ghapp\n  \
git config --global credential.https://github.com.useHttpPath true\n";

/// Runs the helper: `args` without the program name. Returns the exit status.
pub fn run(
    args: &[String],
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> ExitCode {
    let action = match args.first().map(String::as_str) {
        Some(a @ ("get" | "store" | "erase")) => a,
        Some("--version" | "-V") => {
            let _ = writeln!(stdout, "{PROGRAM} {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Some("--help" | "-h") => {
            let _ = stdout.write_all(USAGE.as_bytes());
            return ExitCode::SUCCESS;
        }
        // git's rule: a helper ignores actions it does not know.
        Some(_) => return ExitCode::SUCCESS,
        None => {
            let _ = stderr.write_all(USAGE.as_bytes());
            return ExitCode::from(2);
        }
    };
    match helper(action, stdin, stdout) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            let _ = writeln!(stderr, "{PROGRAM}: {}", msg.replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

fn helper(action: &str, stdin: &mut dyn Read, stdout: &mut dyn Write) -> Result<(), String> {
    // Bounded read: git sends a few hundred bytes; anything larger is refused, never buffered.
    let mut input = Vec::new();
    stdin
        .take(MAX_INPUT as u64 + 1)
        .read_to_end(&mut input)
        .map_err(|e| format!("cannot read the request from git: {e}"))?;
    let req = Request::parse(&input).map_err(|e| format!("malformed input from git: {e}"))?;
    if action == "store" {
        // Tokens are cached by ghapp itself; git's copy is not needed.
        return Ok(());
    }
    if req.protocol() != Some("https") {
        return Ok(());
    }
    let Some(host) = req.host() else {
        return Ok(());
    };
    let cfg = Config::load(&Overrides::default()).map_err(|e| e.to_string())?;
    let owner_repo = req.path().and_then(repo_from_path);
    let Some(app) = cfg.app_for(host, owner_repo.as_ref().map(|(o, _)| o.as_str())) else {
        if cfg.apps.is_empty() && host == "github.com" {
            // Say why nothing was answered, then let the next helper try.
            return Err(ghapp_core::config::not_configured(cfg.file.as_deref()));
        }
        return Ok(());
    };
    let request = match (&owner_repo, req.path()) {
        (Some((owner, repo)), _) => TokenRequest::for_repo(owner, repo),
        (None, Some(p)) => {
            return Err(format!(
                "git asked about path {:?}, which is not OWNER/REPO: nothing answered",
                p.chars().take(100).collect::<String>()
            ));
        }
        (None, None) if app.installation_id.is_some() => TokenRequest {
            owner: None,
            repositories: Vec::new(),
            permissions: ghapp_core::broker::default_permissions(),
            fit_permissions: true,
        },
        (None, None) => {
            return Err(format!(
                "git did not say which repository on {host}: run `ghapp configure-git` or `git config --global credential.https://{host}.useHttpPath true`"
            ));
        }
    };
    let key = token_key(app, &request);
    let cache = DiskCache::new(&cfg.cache_dir);
    let now = ghapp_core::jwt::unix_now() as u64;

    if action == "erase" {
        if let Some(pw) = req.password() {
            cache.remove_if(&key, pw).map_err(|e| e.to_string())?;
        }
        return Ok(());
    }

    // Warm path: the cache file, no runtime, no TLS, no logging.
    let token = match cache
        .read(&key)
        .filter(|t| t.is_fresh(now, cfg.refresh_margin))
    {
        Some(t) => t,
        None => mint(app.clone(), &cfg, &request)?,
    };
    answer(stdout, &req, &token, cfg.refresh_margin)
}

/// The cold path: logging, a current-thread runtime and the broker.
fn mint(
    app: ghapp_core::config::AppConfig,
    cfg: &Config,
    request: &TokenRequest,
) -> Result<CachedToken, String> {
    ghapp_core::log::init(PROGRAM);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start: {e}"))?;
    rt.block_on(async {
        let broker = Broker::new(app, cfg.refresh_margin, &cfg.cache_dir)?;
        broker.token(request).await
    })
    .map_err(|e| e.to_string())
}

fn answer(
    stdout: &mut dyn Write,
    req: &Request,
    token: &CachedToken,
    margin: std::time::Duration,
) -> Result<(), String> {
    let now = ghapp_core::jwt::unix_now() as u64;
    let a = Answer {
        username: USERNAME,
        password: token.token.expose(),
        password_expiry_utc: Some(token.expiry_for_git(now, margin)),
        authtype_capability: req.has_authtype_capability(),
    };
    let text = a.format().map_err(|e| e.to_string())?;
    stdout
        .write_all(text.as_bytes())
        .and_then(|_| stdout.flush())
        .map_err(|e| format!("cannot write the answer to git: {e}"))
}
