//! `gh-pr open`: after `git push`, open (or find) the pull request for the current branch.
//!
//! The repository is read with four `git` commands (the same git that just pushed, so its
//! configuration is read exactly as the push read it): the current branch, its push remote and
//! URL (https, `git@HOST:owner/repo.git`, `ssh://`, with `url.<base>.insteadOf` applied), HEAD's
//! message for `--fill`, and whether the push-tracking ref equals HEAD. Then
//! `GET /repos/{o}/{r}/pulls?head=OWNER:BRANCH&state=open` finds an open pull request (printed, so
//! the command is idempotent), else `POST /repos/{o}/{r}/pulls` opens one. Behind ghapp proxy a
//! learning sandbox's request is held for a human: gh-pr prints `held for approval N: …` and
//! exits 3 ([`EXIT_HELD`]); run again, it names the same approval, then prints the pull
//! request once approved, or fails with the reason once denied.
//!
//! Authentication, in order: a token from ghapp-core when an app is configured for the host; else
//! `git credential fill` for the host (any helper, git-credential-ghapp included); else no
//! `Authorization` at all, for use behind `ghapp proxy`, which injects it.
//!
//! stdout carries only the pull request's URL (or, with `--json`, one JSON object).
//!
//! # Security
//! Tokens and passwords stay in [`ghapp_core::secret::InstallationToken`]; errors name the
//! repository and GitHub's message, never a credential.

#![expect(clippy::print_stderr, reason = "a CLI: stderr carries one-line errors")]

use std::io::Write;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Parser, Subcommand};
use ghapp_core::broker::{Level, TokenRequest};
use ghapp_core::client::{Auth, GitHubClient, Method, StatusCode};
use ghapp_core::config::{Config, GitHubHost, Overrides};
use ghapp_core::resolve::{Credential, Obtain, Resolution, obtain_blocking};
use ghapp_core::secret::{InstallationToken, PersonalAccessToken};
use ghapp_gitproto::repo::RepoName;
use serde_json::{Value, json};

#[derive(Parser, Debug)]
#[command(
    name = "gh-pr",
    version,
    about = "Open, or find, the pull request for the current branch"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Open the pull request for the current branch, or print the open one.
    Open(OpenArgs),
}

/// Flags as `gh pr create` spells them.
#[derive(Args, Debug, Default)]
pub struct OpenArgs {
    /// The pull request's title (needed to open one; not to find the open one).
    #[arg(long, short = 't')]
    pub title: Option<String>,
    /// The pull request's description.
    #[arg(long, short = 'b', conflicts_with = "body_file")]
    pub body: Option<String>,
    /// Read the body from FILE ("-" for stdin).
    #[arg(long, short = 'F')]
    pub body_file: Option<std::path::PathBuf>,
    /// The branch to merge into (default: the repository's default branch).
    #[arg(long, short = 'B')]
    pub base: Option<String>,
    /// Open it as a draft.
    #[arg(long, short = 'd')]
    pub draft: bool,
    /// Title and body from HEAD's commit message.
    #[arg(long, short = 'f')]
    pub fill: bool,
    /// Print number, url, state, draft and created as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The exit status of a pull request held for a human's approval (a learning sandbox behind
/// ghapp proxy): not opened yet, not failed.
pub const EXIT_HELD: u8 = 3;

/// The exit status when the sandbox is in observe mode (behind ghapp proxy): its pushes and
/// pull requests are recorded for a person to review, not made; there is nothing to push again.
pub const EXIT_RECORDED: u8 = 4;

/// Observe mode: what to print instead of "push it first".
#[derive(Debug)]
pub struct Recorded(pub String);

impl std::fmt::Display for Recorded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Recorded {}

/// A pull request held for approval: what to print (a line naming the approval, or JSON).
#[derive(Debug)]
pub struct Held(pub String);

impl std::fmt::Display for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Held {}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let Cmd::Open(args) = cli.command;
    match open(&args, Path::new(".")) {
        Ok(out) => {
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "{out}");
            ExitCode::SUCCESS
        }
        Err(e) if e.downcast_ref::<Held>().is_some() => {
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "{e}");
            ExitCode::from(EXIT_HELD)
        }
        Err(e) if e.downcast_ref::<Recorded>().is_some() => {
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "{e}");
            ExitCode::from(EXIT_RECORDED)
        }
        Err(e) => {
            let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("gh-pr: {}", chain.join(": ").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

/// What git told us about the checkout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkout {
    pub branch: String,
    pub remote: String,
    pub host: String,
    pub owner: String,
    pub repo: String,
    pub head: String,
    pub subject: String,
    pub body: String,
}

/// `git ARGS` in `dir`: its stdout when it succeeded, else its exit code and first stderr line.
fn git(dir: &Path, args: &[&str]) -> std::result::Result<String, (Option<i32>, String)> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| (None, format!("cannot run git: {e}")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        let line = err.lines().next().unwrap_or_default().trim();
        Err((
            out.status.code(),
            line.strip_prefix("fatal: ").unwrap_or(line).to_owned(),
        ))
    }
}

/// Reads the repository at `dir` with four git commands: the branch, then in one `for-each-ref`
/// its tip, push remote, push-tracking ref and message, then that ref's commit and the remote's
/// push URL (`url.<base>.insteadOf` applied, as `git push` does).
pub fn read_checkout(dir: &Path) -> Result<Checkout> {
    let full = match git(dir, &["symbolic-ref", "--quiet", "HEAD"]) {
        Ok(r) => r.trim().to_owned(),
        Err((Some(1), _)) => {
            bail!("HEAD is detached: switch to a branch (git switch -c NAME) and push it first")
        }
        Err((_, e)) => bail!("not in a git repository ({e})"),
    };
    let branch = full
        .strip_prefix("refs/heads/")
        .ok_or_else(|| anyhow!("HEAD is {full}, not a branch: switch to a branch and push it"))?
        .to_owned();
    let line = git(
        dir,
        &[
            "for-each-ref",
            "--format=%(objectname)%00%(push:remotename)%00%(push)%00%(contents:subject)%00%(contents:body)",
            &full,
        ],
    )
    .map_err(|(_, e)| anyhow!("cannot read branch {branch}: {e}"))?;
    let mut f = line.splitn(5, '\0');
    let mut next = || f.next().unwrap_or_default();
    let (head, remote_name, tracking, subject, body) = (
        next().to_owned(),
        next().to_owned(),
        next().to_owned(),
        next().to_owned(),
        without_trailers(next()),
    );
    if head.is_empty() {
        bail!("branch {branch} has no commit yet: commit and push first");
    }
    if remote_name.is_empty() {
        bail!(
            "branch {branch} has no upstream remote: push it first with `git push -u origin {branch}`"
        );
    }
    let url = git(dir, &["remote", "get-url", "--push", &remote_name])
        .map_err(|(_, e)| anyhow!("remote {remote_name} of branch {branch}: {e}"))?;
    let (host, owner, repo_name) = parse_remote_url(url.trim())?;
    // The push-tracking ref must equal HEAD: the branch is pushed and nothing is left to push.
    let pushed = (!tracking.is_empty())
        .then(|| git(dir, &["rev-parse", "--verify", "--quiet", &tracking]).ok())
        .flatten()
        .map(|id| id.trim().to_owned());
    match pushed {
        None => {
            bail!("branch {branch} is not pushed: run `git push -u {remote_name} {branch}` first")
        }
        Some(id) if id != head => {
            bail!(
                "HEAD is ahead of {remote_name}/{branch}: run `git push {remote_name} {branch}` first"
            )
        }
        Some(_) => {}
    }
    Ok(Checkout {
        branch,
        remote: remote_name,
        host,
        owner,
        repo: repo_name,
        head,
        subject,
        body: body.trim().to_owned(),
    })
}

/// A commit body without its trailer block (`Signed-off-by: …`, `Co-authored-by: …`): the last
/// paragraph when every line of it is `Token: value`.
fn without_trailers(body: &str) -> String {
    let body = body.trim_end();
    let (rest, last) = match body.rfind("\n\n") {
        Some(i) => (&body[..i], &body[i + 2..]),
        None => ("", body),
    };
    let is_trailer = |l: &str| {
        l.split_once(": ").is_some_and(|(k, _)| {
            !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
    };
    if !last.is_empty() && last.lines().all(is_trailer) {
        rest.to_owned()
    } else {
        body.to_owned()
    }
}

/// `(host[:port], owner, repo)` from a remote URL: `https://`, `ssh://`, or scp-like
/// `[user@]HOST:owner/repo.git`. An https port other than 443 stays in the host.
fn parse_remote_url(url: &str) -> Result<(String, String, String)> {
    let not_github = || anyhow!("remote URL {url} is not a GitHub https or ssh URL");
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (s.to_ascii_lowercase(), r),
        // scp-like: a colon before any slash (a local path has none).
        None => match url.find(':') {
            Some(i) if !url[..i].contains('/') && i > 0 => ("ssh".to_owned(), url),
            _ => return Err(not_github()),
        },
    };
    if !matches!(scheme.as_str(), "https" | "http" | "ssh" | "git+ssh") {
        return Err(not_github());
    }
    let scp = !url.contains("://");
    let (authority, path) = if scp {
        rest.split_once(':').ok_or_else(not_github)?
    } else {
        rest.split_once('/').unwrap_or((rest, ""))
    };
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = match hostport.strip_prefix('[') {
        Some(v6) => {
            let (h, after) = v6.split_once(']').ok_or_else(not_github)?;
            (format!("[{h}]"), after.strip_prefix(':'))
        }
        None => match hostport.rsplit_once(':') {
            Some((h, p)) if !scp => (h.to_owned(), Some(p)),
            _ => (hostport.to_owned(), None),
        },
    };
    if host.is_empty() {
        bail!("remote URL {url} has no host");
    }
    let host = host.to_ascii_lowercase();
    let port: Option<u16> = port
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse()
                .map_err(|_| anyhow!("remote URL {url} has a bad port"))
        })
        .transpose()?;
    let host = match (scheme.as_str(), port) {
        ("https", Some(p)) if p != 443 => format!("{host}:{p}"),
        _ => host,
    };
    let path = path.trim_start_matches('/').trim_end_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    let (owner, repo) = path
        .split_once('/')
        .filter(|(o, r)| !o.is_empty() && !r.is_empty() && !r.contains('/'))
        .ok_or_else(|| anyhow!("remote URL {url} does not name OWNER/REPO"))?;
    Ok((host, owner.to_owned(), repo.to_owned()))
}

/// The credential a request carries.
enum Cred {
    Token(InstallationToken),
    Pat(PersonalAccessToken),
    /// Behind `ghapp proxy`, which injects it.
    None,
}

impl Cred {
    fn auth(&self) -> Auth<'_> {
        match self {
            Cred::Token(t) => Auth::Token(t),
            Cred::Pat(t) => Auth::Pat(t),
            Cred::None => Auth::None,
        }
    }
}

/// Auth in order: ghapp-core's resolution (a configured app, else its fallback personal access
/// token); `git credential fill`; nothing (behind `ghapp proxy`). Returns the REST base too.
fn authenticate(
    c: &Checkout,
    cfg: &Config,
    dir: &Path,
    ca_pem: Option<&str>,
) -> Result<(String, Cred)> {
    let resolution = cfg.resolve(Some(&c.host), Some(&c.owner));
    if !matches!(resolution, Resolution::Nothing) {
        let repo = RepoName::new(&c.owner, &c.repo)
            .ok_or_else(|| anyhow!("{}/{} is not a GitHub repository name", c.owner, c.repo))?;
        let req = TokenRequest {
            permissions: [("pull_requests", Level::Write), ("metadata", Level::Read)]
                .into_iter()
                .collect(),
            ..TokenRequest::for_repo(&repo)
        };
        let how = Obtain {
            ca_pem,
            ..Obtain::default()
        };
        return Ok(match obtain_blocking(cfg, &resolution, &req, how)? {
            Credential::Installation { token: t, .. } => {
                let api = match resolution {
                    Resolution::App { app, .. } => app.api_url().to_owned(),
                    Resolution::Exchange(ex) => ex.github.api_url().to_owned(),
                    _ => GitHubHost::from_git_host(&c.host).api_url().to_owned(),
                };
                (api, Cred::Token(t.token))
            }
            Credential::Pat { token, from, .. } => {
                (from.github.api_url().to_owned(), Cred::Pat(token))
            }
        });
    }
    let api = GitHubHost::from_git_host(&c.host).api_url().to_owned();
    if let Some(pw) = credential_fill(c, dir) {
        return Ok((api, Cred::Token(InstallationToken::new(pw))));
    }
    Ok((api, Cred::None))
}

/// `git credential fill` for the repository, never prompting.
fn credential_fill(c: &Checkout, dir: &Path) -> Option<String> {
    let mut child = Command::new("git")
        .args(["credential", "fill"])
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env_remove("GIT_ASKPASS")
        .env_remove("SSH_ASKPASS")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let input = format!(
        "protocol=https\nhost={}\npath={}/{}.git\n\n",
        c.host, c.owner, c.repo
    );
    child.stdin.take()?.write_all(input.as_bytes()).ok()?;
    let out = child.wait_with_output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8(out.stdout)
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("password=").map(str::to_owned))
        .filter(|p| !p.is_empty())
}

/// Runs `gh-pr open` in `dir` with the process's configuration; returns what to print.
pub fn open(args: &OpenArgs, dir: &Path) -> Result<String> {
    let cfg = Config::load(&Overrides::default())?;
    // The CA git was told to trust (GIT_SSL_CAINFO, as behind ghapp proxy), when it was: gh-pr
    // goes where git just pushed. Else SSL_CERT_FILE, else the system's.
    let git_ca = std::env::var_os("GIT_SSL_CAINFO")
        .filter(|v| !v.is_empty())
        .map(|f| {
            std::fs::read_to_string(&f)
                .with_context(|| format!("cannot read GIT_SSL_CAINFO {}", Path::new(&f).display()))
        })
        .transpose()?;
    open_with(args, dir, &cfg, git_ca.as_deref())
}

/// Runs `gh-pr open` with an explicit configuration and, optionally, the only CA to trust
/// (`ghapp demo` uses both; the binary passes the process's own).
pub fn open_with(
    args: &OpenArgs,
    dir: &Path,
    cfg: &Config,
    ca_pem: Option<&str>,
) -> Result<String> {
    let c = match read_checkout(dir) {
        Ok(c) => c,
        // "Push it first" is wrong advice in observe mode, where a push is recorded, not made:
        // an agent following it would push forever.
        Err(e) => match observe_mode() {
            Some(sandbox) => {
                return Err(Recorded(format!(
                    "recorded for review: sandbox {sandbox} is in observe mode, so its pushes and pull requests are recorded as proposals for a person to review, not made; the branch is not at GitHub and there is nothing to open or push again (the operator sees them with `ghapp proposals list`)"
                ))
                .into());
            }
            None => return Err(e),
        },
    };
    // Without --title or --fill an open pull request is still found and printed; only opening
    // one needs them.
    let text = match (&args.title, args.fill) {
        (Some(t), _) => Some((t.clone(), body_arg(args)?.unwrap_or_default())),
        (None, true) => Some((
            c.subject.clone(),
            body_arg(args)?.unwrap_or_else(|| c.body.clone()),
        )),
        (None, false) => None,
    };
    let (api, auth) = authenticate(&c, cfg, dir, ca_pem)?;
    if matches!(auth, Cred::None) && !behind_proxy() {
        bail!(
            "no credentials for {}: ghapp has no app configured for it, no git credential helper answered, and no HTTPS_PROXY is set (configure ghapp, or run behind ghapp proxy)",
            c.host
        );
    }
    let client = GitHubClient::with_tls(&api, ca_pem)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(open_pr(&c, &client, &auth, args, text))
}

/// Behind ghapp proxy in observe mode: the sandbox's name. Asks the proxy's own `GET /policy`
/// with the proxy credentials `HTTPS_PROXY` carries (plain HTTP to the proxy, bounded in time
/// and size); `None` when not behind one, or it does not say so.
fn observe_mode() -> Option<String> {
    use std::io::{Read, Write};
    let proxy = ["HTTPS_PROXY", "https_proxy"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|x| !x.is_empty()))?;
    let rest = proxy.strip_prefix("http://")?;
    let (auth, hostport) = rest.trim_end_matches('/').rsplit_once('@')?;
    let (name, secret) = auth.split_once(':')?;
    // Percent-decoded, as a URL's user and password are.
    let decode = |s: &str| {
        let b = s.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
            match (b[i], hex) {
                (b'%', Some(v)) => {
                    out.push(v);
                    i += 3;
                }
                (c, _) => {
                    out.push(c);
                    i += 1;
                }
            }
        }
        String::from_utf8(out).ok()
    };
    let (name, secret) = (decode(name)?, decode(secret)?);
    let addr = std::net::ToSocketAddrs::to_socket_addrs(hostport)
        .ok()?
        .next()?;
    let wait = std::time::Duration::from_secs(5);
    let mut s = std::net::TcpStream::connect_timeout(&addr, wait).ok()?;
    s.set_read_timeout(Some(wait)).ok()?;
    s.set_write_timeout(Some(wait)).ok()?;
    let basic = ghapp_gitproto::basic::encode(&name, &secret);
    write!(
        s,
        "GET /policy?format=json HTTP/1.1\r\nHost: {hostport}\r\nProxy-Authorization: {basic}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut answer = Vec::new();
    s.take(64 * 1024).read_to_end(&mut answer).ok()?;
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    let v: Value = serde_json::from_str(body.trim()).ok()?;
    (v["mode"] == "observe").then(|| v["sandbox"].as_str().unwrap_or(&name).to_owned())
}

fn behind_proxy() -> bool {
    ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|x| !x.is_empty()))
}

fn body_arg(args: &OpenArgs) -> Result<Option<String>> {
    if let Some(b) = &args.body {
        return Ok(Some(b.clone()));
    }
    match &args.body_file {
        Some(p) if p.as_os_str() == "-" => {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
            Ok(Some(s))
        }
        Some(p) => Ok(Some(std::fs::read_to_string(p).with_context(|| {
            format!("cannot read --body-file {}", p.display())
        })?)),
        None => Ok(None),
    }
}

async fn open_pr(
    c: &Checkout,
    client: &GitHubClient,
    cred: &Cred,
    args: &OpenArgs,
    text: Option<(String, String)>,
) -> Result<String> {
    let repo = &format!("{}/{}", c.owner, c.repo);
    // Reads are retried as GitHub asks (ghapp-core's rules); the create is sent once, so a
    // retry after a lost answer cannot open a second pull request.
    let get = |path: String, what: &'static str| async move {
        let r = match client.request(Method::GET, &path, cred.auth(), None).await {
            Ok(r) => r,
            // Retried until GitHub's own wait outlasted the deadline: say so in this command's words.
            Err(ghapp_core::Error::GaveUp {
                status, message, ..
            }) => {
                bail!("GitHub refused to {what} in {repo} ({status}: {message}); try again later")
            }
            Err(e) => return Err(e.into()),
        };
        let v = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        if !r.status.is_success() {
            bail!("{}", api_failure(repo, what, r.status, &v));
        }
        Ok::<_, anyhow::Error>(v)
    };
    let head = format!("{}:{}", c.owner, c.branch);
    let v = get(
        format!("/repos/{repo}/pulls?head={}&state=open", encode(&head)),
        "list pull requests",
    )
    .await?;
    if let Some(pr) = v.as_array().and_then(|a| a.first()) {
        return Ok(render(pr, false, args.json));
    }
    let Some((title, body)) = text else {
        bail!(
            "no pull request is open for {}: give --title (and --body), or --fill to take them from HEAD's commit, to open one",
            c.branch
        );
    };
    let base = match &args.base {
        Some(b) => b.clone(),
        None => {
            let v = get(format!("/repos/{repo}"), "read the repository").await?;
            let default = v["default_branch"]
                .as_str()
                .ok_or_else(|| anyhow!("GitHub did not say {repo}'s default branch: pass --base"))?
                .to_owned();
            if default == c.branch {
                bail!(
                    "{} is {repo}'s default branch, which a pull request merges into: put the change on a branch (git switch -c NAME), push it (git push -u {} NAME), then run gh-pr open there",
                    c.branch,
                    c.remote
                );
            }
            default
        }
    };
    let create =
        json!({"title": title, "body": body, "head": c.branch, "base": base, "draft": args.draft});
    let r = client
        .request_once(
            Method::POST,
            &format!("/repos/{repo}/pulls"),
            cred.auth(),
            Some(&create),
        )
        .await?;
    let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    if r.status == StatusCode::ACCEPTED {
        // ghapp proxy holds a learning sandbox's pull request for a human; asking again gets
        // the same approval, not a second one.
        let id = &v["approval_id"];
        let held = if args.json {
            json!({"state": "held", "approval_id": id, "approval_url": v["approval_url"], "message": v["message"]})
                .to_string()
        } else {
            format!(
                "held for approval {id}: {}",
                v["message"].as_str().unwrap_or("a human must approve it")
            )
        };
        return Err(Held(held).into());
    }
    if !r.status.is_success() {
        bail!("{}", api_failure(repo, "open a pull request", r.status, &v));
    }
    Ok(render(&v, true, args.json))
}

fn render(pr: &Value, created: bool, as_json: bool) -> String {
    if as_json {
        json!({
            "number": pr["number"],
            "url": pr["html_url"],
            "state": pr["state"],
            "draft": pr["draft"].as_bool().unwrap_or(false),
            "created": created,
        })
        .to_string()
    } else {
        pr["html_url"].as_str().unwrap_or_default().to_owned()
    }
}

/// One line naming the repository, the status and GitHub's message (with its `errors`).
fn api_failure(repo: &str, what: &str, s: StatusCode, v: &Value) -> String {
    let mut msg = v["message"]
        .as_str()
        .unwrap_or("no message")
        .replace('\n', " ");
    if let Some(errs) = v["errors"].as_array() {
        let details: Vec<String> = errs
            .iter()
            .map(|e| {
                e["message"].as_str().map(str::to_owned).unwrap_or_else(|| {
                    format!(
                        "{} {}",
                        e["field"].as_str().unwrap_or(""),
                        e["code"].as_str().unwrap_or("")
                    )
                })
            })
            .collect();
        if !details.is_empty() {
            msg = format!("{msg}: {}", details.join("; "));
        }
    }
    // The proxy's own refusal says why and what to do: no guess about GitHub's permissions.
    if let Some(proxy) = msg.strip_prefix("ghapp proxy: ") {
        return format!(
            "ghapp proxy refused to {what} in {repo} ({}): {proxy}",
            s.as_u16()
        );
    }
    let hint = match s.as_u16() {
        401 => {
            ": no valid credentials (configure ghapp, a git credential helper, or run behind ghapp proxy)"
        }
        403 => ": the credentials lack permission (pull_requests: write) or a policy refused it",
        404 => ": the repository does not exist or the credentials cannot see it",
        _ => "",
    };
    format!(
        "GitHub refused to {what} in {repo} ({}: {msg}){hint}",
        s.as_u16()
    )
}

/// `s` as one percent-encoded query value (RFC 3986's unreserved characters pass).
fn encode(s: &str) -> String {
    ghapp_gitproto::rest::encode_segment(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_urls() {
        let cases = [
            (
                "https://github.com/octo/widgets.git",
                ("github.com", "octo", "widgets"),
            ),
            (
                "https://github.com/octo/widgets",
                ("github.com", "octo", "widgets"),
            ),
            (
                "git@github.com:octo/widgets.git",
                ("github.com", "octo", "widgets"),
            ),
            (
                "ssh://git@ghe.corp/octo/widgets.git",
                ("ghe.corp", "octo", "widgets"),
            ),
            (
                "https://127.0.0.1:8443/octo/widgets.git",
                ("127.0.0.1:8443", "octo", "widgets"),
            ),
            (
                "ssh://git@ghe.corp:2222/octo/widgets.git",
                ("ghe.corp", "octo", "widgets"),
            ),
            (
                "https://x-access-token:secret@GitHub.com:443/octo/widgets/",
                ("github.com", "octo", "widgets"),
            ),
            ("https://[::1]:8443/o/r.git", ("[::1]:8443", "o", "r")),
        ];
        for (u, (h, o, r)) in cases {
            assert_eq!(
                parse_remote_url(u).unwrap(),
                (h.into(), o.into(), r.into()),
                "{u}"
            );
        }
        for bad in [
            "https://github.com/octo",
            "file:///tmp/x.git",
            "/tmp/x.git",
            "../x.git",
            "https://github.com:notaport/o/r",
        ] {
            assert!(parse_remote_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bodies_lose_their_trailers_only() {
        let cases = [
            (
                "Why.\n\nSigned-off-by: A <a@x>\nCo-authored-by: B <b@x>\n",
                "Why.",
            ),
            (
                "Why.\n\nMore: not a trailer line\nbecause this one is prose\n",
                "Why.\n\nMore: not a trailer line\nbecause this one is prose",
            ),
            ("Only: a trailer\n", ""),
            ("", ""),
            ("Just a body.\n", "Just a body."),
        ];
        for (body, want) in cases {
            assert_eq!(without_trailers(body), want, "{body:?}");
        }
    }

    #[test]
    fn failures() {
        let v = json!({"message": "Validation Failed", "errors": [{"message": "No commits between main and x"}]});
        let m = api_failure(
            "o/r",
            "open a pull request",
            StatusCode::UNPROCESSABLE_ENTITY,
            &v,
        );
        assert_eq!(
            m,
            "GitHub refused to open a pull request in o/r (422: Validation Failed: No commits between main and x)"
        );
        assert_eq!(encode("o:agent/x"), "o%3Aagent%2Fx");
    }
}
