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
//! subscriber exists. This binary holds no HTTP, TLS or async code at all, so that it starts as
//! fast as `git credential-store`: on a cache miss it hands the same request to the `ghapp`
//! binary (found beside it, else on `PATH`) running as the helper, which mints once
//! (cross-process single-flight in ghapp-core) and answers git directly.
//!
//! # Security
//! stdout carries only protocol lines: this module is the only place that writes to it. Errors
//! are one line on stderr, prefixed with the program name, and never hold a token or key.

use std::io::{Read, Write};
use std::process::ExitCode;

use ghapp_core::cache::{CachedToken, DiskCache};
use ghapp_core::config::{Config, Overrides, PatConfig};
use ghapp_core::request::TokenRequest;
use ghapp_core::resolve::Resolution;
use ghapp_core::secret::PersonalAccessToken;
use ghapp_gitproto::credential::{Answer, MAX_INPUT, Request, repo_from_path};
use ghapp_gitproto::repo::RepoName;

pub const PROGRAM: &str = "git-credential-ghapp";
/// The username git sends with an installation token.
pub const USERNAME: &str = "x-access-token";

const USAGE: &str = "usage: git-credential-ghapp <get|store|erase>\n\
A git credential helper answering with GitHub App installation tokens.\n\
Configure it with `ghapp configure-git`, or:\n  \
git config --global credential.https://github.com.helper ghapp\n  \
git config --global credential.https://github.com.useHttpPath true\n";

/// A cache miss, handed to the caller's minter.
pub struct Miss<'a> {
    /// git's request, as read.
    pub input: &'a [u8],
    /// Who answers: the app (with its fallback) or the personal access token.
    pub resolution: Resolution<'a>,
    pub cfg: &'a Config,
    pub request: &'a TokenRequest,
}

/// What a minter did.
pub enum Minted {
    /// A token to answer with.
    Token(CachedToken),
    /// The fallback personal access token (answered without an expiry, never cached).
    Pat(PersonalAccessToken),
    /// Another process answered git itself and exited with this status.
    Delegated(ExitCode),
}

/// Turns a miss into a token: in-process (the `ghapp` binary) or by delegation (this one).
pub type Minter<'a> = &'a mut dyn FnMut(&Miss<'_>) -> Result<Minted, String>;

/// Runs the helper: `args` without the program name. Returns the exit status.
pub fn run(
    args: &[String],
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
    mint: Minter<'_>,
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
    let mut answered = false;
    match helper(action, stdin, stdout, mint, &mut answered) {
        Ok(code) => code,
        Err(msg) => {
            let _ = writeln!(stderr, "{PROGRAM}: {}", msg.replace('\n', " "));
            // This helper serves the host and failed: tell git to stop here, rather than go on
            // to prompt for a username it cannot read (its `fatal: could not read Username`
            // would be the last line the user sees, hiding ours).
            if answered && action == "get" {
                let _ = stdout.write_all(b"quit=1\n");
            }
            ExitCode::FAILURE
        }
    }
}

/// `serving` is set once this helper is the one that answers for the host (an app or a token
/// of its configuration serves it): a failure after that ends git's search.
fn helper(
    action: &str,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
    mint: Minter<'_>,
    serving: &mut bool,
) -> Result<ExitCode, String> {
    const DONE: Result<ExitCode, String> = Ok(ExitCode::SUCCESS);
    // Bounded read: git sends a few hundred bytes; anything larger is refused, never buffered.
    let mut input = Vec::new();
    stdin
        .take(MAX_INPUT as u64 + 1)
        .read_to_end(&mut input)
        .map_err(|e| format!("cannot read the request from git: {e}"))?;
    let req = Request::parse(&input).map_err(|e| format!("malformed input from git: {e}"))?;
    if action == "store" {
        // Tokens are cached by ghapp itself; git's copy is not needed.
        return DONE;
    }
    if req.protocol() != Some("https") {
        return DONE;
    }
    let Some(host) = req.host() else {
        return DONE;
    };
    let cfg = Config::load(&Overrides::default()).map_err(|e| e.to_string())?;
    let repo = req
        .path()
        .and_then(repo_from_path)
        .and_then(|(o, r)| RepoName::new(&o, &r));
    let resolution = cfg.resolve(Some(host), repo.as_ref().map(RepoName::owner));
    // Who answers with installation tokens (an app, an exchange) and whether a request without
    // a repository can be answered (an app with a configured installation).
    let whole = match resolution {
        Resolution::App { app, .. } => {
            *serving = true;
            app.installation_id.is_some()
        }
        Resolution::Exchange(_) => {
            *serving = true;
            false
        }
        Resolution::Pat(pat) => {
            *serving = true;
            return answer_with_pat(action, &input, &req, &cfg, pat, stdout, mint);
        }
        Resolution::Nothing
            if cfg.apps.is_empty()
                && (host == "github.com"
                    || cfg.env_github.as_ref().is_some_and(|g| g.serves(host))) =>
        {
            // Say why nothing was answered, then let the next helper try.
            return Err(ghapp_core::config::not_configured(cfg.file.as_deref()));
        }
        Resolution::Nothing => return DONE,
    };
    let request = match (&repo, req.path()) {
        (Some(repo), _) => TokenRequest::for_repo(repo),
        (None, Some(p)) => {
            return Err(format!(
                "git asked about path {:?}, which is not OWNER/REPO: nothing answered",
                p.chars().take(100).collect::<String>()
            ));
        }
        (None, None) if whole => TokenRequest::whole_installation(),
        (None, None) => {
            return Err(format!(
                "git did not say which repository on {host}: run `ghapp configure-git` or `git config --global credential.https://{host}.useHttpPath true`"
            ));
        }
    };
    let Some(key) = resolution.token_key(&request) else {
        return DONE;
    };
    let cache = DiskCache::new(&cfg.cache_dir);
    let now = ghapp_core::time::unix_now() as u64;

    if action == "erase" {
        if let Some(pw) = req.password() {
            cache.remove_if(&key, pw).map_err(|e| e.to_string())?;
        }
        return DONE;
    }

    // Warm path: the cache file, no runtime, no TLS, no logging.
    let token = match cache
        .read(&key)
        .filter(|t| t.is_fresh(now, cfg.refresh_margin))
    {
        Some(t) => t,
        None => {
            let miss = Miss {
                input: &input,
                resolution,
                cfg: &cfg,
                request: &request,
            };
            match mint(&miss)? {
                Minted::Token(t) => t,
                Minted::Pat(t) => {
                    answer_pat(stdout, &req, &t)?;
                    return DONE;
                }
                Minted::Delegated(code) => return Ok(code),
            }
        }
    };
    answer(stdout, &req, &token, cfg.refresh_margin)?;
    DONE
}

/// The minter of this lean binary: run the `ghapp` binary as the helper (it dispatches on its
/// `argv[0]`) with the same request; it answers git on the inherited stdout and reports errors
/// on the inherited stderr under this program's name.
pub fn delegate_to_ghapp(miss: &Miss<'_>) -> Result<Minted, String> {
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    let beside = std::env::current_exe()
        .ok()
        .map(|p| p.with_file_name("ghapp"))
        .filter(|p| p.is_file());
    let program = beside.unwrap_or_else(|| "ghapp".into());
    let mut child = Command::new(&program)
        .arg0(PROGRAM)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| {
            format!(
                "minting a token needs the ghapp binary, which could not be started ({}: {e}): install it beside {PROGRAM} (cargo install --locked --path crates/ghapp)",
                program.display()
            )
        })?;
    if let Some(mut w) = child.stdin.take() {
        w.write_all(miss.input)
            .map_err(|e| format!("cannot hand the request to ghapp: {e}"))?;
    }
    let status = child
        .wait()
        .map_err(|e| format!("waiting for ghapp failed: {e}"))?;
    Ok(Minted::Delegated(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(c) => ExitCode::from(c.clamp(1, 255) as u8),
        None => ExitCode::FAILURE,
    }))
}

/// No app serves this host and owner: answer with the personal access token. A file or the
/// environment is read here; the keyring is left to `ghapp` (this binary links no D-Bus client).
fn answer_with_pat(
    action: &str,
    input: &[u8],
    req: &Request,
    cfg: &Config,
    pat: &PatConfig,
    stdout: &mut dyn Write,
    mint: Minter<'_>,
) -> Result<ExitCode, String> {
    if action == "erase" {
        // Nothing of ours to forget: the token is the user's, never cached.
        return Ok(ExitCode::SUCCESS);
    }
    let token = if pat.source.needs_keyring() {
        let request = TokenRequest {
            permissions: Default::default(),
            ..TokenRequest::whole_installation()
        };
        let miss = Miss {
            input,
            resolution: Resolution::Pat(pat),
            cfg,
            request: &request,
        };
        match mint(&miss)? {
            Minted::Pat(t) => t,
            Minted::Token(t) => {
                answer(stdout, req, &t, cfg.refresh_margin)?;
                return Ok(ExitCode::SUCCESS);
            }
            Minted::Delegated(code) => return Ok(code),
        }
    } else {
        pat.source
            .load_without_keyring()
            .map_err(|e| e.to_string())?
            .0
    };
    answer_pat(stdout, req, &token)?;
    Ok(ExitCode::SUCCESS)
}

/// The personal access token, without an expiry (git keeps it for this operation only; with
/// `ephemeral` helpers behind us do not store it).
fn answer_pat(
    stdout: &mut dyn Write,
    req: &Request,
    token: &PersonalAccessToken,
) -> Result<(), String> {
    write_answer(
        stdout,
        &Answer {
            username: USERNAME,
            password: token.expose(),
            password_expiry_utc: None,
            authtype_capability: req.has_authtype_capability(),
        },
    )
}

fn write_answer(stdout: &mut dyn Write, a: &Answer<'_>) -> Result<(), String> {
    let text = a.format().map_err(|e| e.to_string())?;
    stdout
        .write_all(text.as_bytes())
        .and_then(|_| stdout.flush())
        .map_err(|e| format!("cannot write the answer to git: {e}"))
}

fn answer(
    stdout: &mut dyn Write,
    req: &Request,
    token: &CachedToken,
    margin: std::time::Duration,
) -> Result<(), String> {
    let now = ghapp_core::time::unix_now() as u64;
    let a = Answer {
        username: USERNAME,
        password: token.token.expose(),
        password_expiry_utc: Some(token.expiry_for_git(now, margin)),
        authtype_capability: req.has_authtype_capability(),
    };
    write_answer(stdout, &a)
}
