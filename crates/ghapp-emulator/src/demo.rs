//! `ghapp demo`: the whole flow against the built-in emulator, with a throwaway HOME and git
//! config: start fakehub, route git to the helper, clone, commit, push, and check the result at
//! the emulator. Needs nothing configured; exits 0 when every step worked.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};

use crate::outln;

struct Session {
    env: Vec<(String, String)>,
}

impl Session {
    fn git(&self, dir: &Path, args: &[&str]) -> Result<String> {
        let mut cmd = Command::new("git");
        cmd.args(args).current_dir(dir).env_clear();
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let out = cmd.output().context("cannot run git")?;
        if !out.status.success() {
            bail!(
                "git {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
                    .trim()
                    .replace('\n', " | ")
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }
}

/// The credential helper to put on PATH: this very binary under the helper's name (it
/// dispatches on its name). Not a `git-credential-ghapp` found beside it: `cargo run -p ghapp`
/// does not rebuild that one, and a stale copy must not answer for this build.
fn helper_binary() -> Result<PathBuf> {
    std::env::current_exe().context("cannot find the ghapp binary")
}

pub(crate) fn run() -> Result<ExitCode> {
    outln!(
        "ghapp demo: clone, commit and push through git-credential-ghapp against the built-in GitHub emulator"
    );
    let tmp = tempfile::Builder::new().prefix("ghapp-demo-").tempdir()?;
    let root = tmp.path();
    let hub = fakehub::FakeHub::start(fakehub::Options {
        dir: Some(root.join("fakehub")),
        ..Default::default()
    })
    .context("cannot start the emulator")?;
    outln!(
        "[1/5] fakehub is serving {} (throwaway CA, app {}, repositories octo-org/widgets and octo-org/gadgets)",
        hub.url(),
        hub.app_id()
    );

    let bin = root.join("bin");
    std::fs::create_dir_all(&bin)?;
    std::os::unix::fs::symlink(helper_binary()?, bin.join(git_credential_ghapp::PROGRAM))?;
    let home = root.join("home");
    std::fs::create_dir_all(&home)?;
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into())
    );
    let mut env = fakehub::isolated_git_env(
        &path,
        &home,
        &root.join("gitconfig"),
        hub.ca_path(),
        "Demo Agent",
    );
    env.extend(hub.app_env(&root.join("cache")));
    let session = Session { env };

    let done = ghapp::configure_git(&hub.git_host(), &session.env, &Default::default())?;
    outln!(
        "[2/5] ghapp configure-git --host {}: {}",
        hub.git_host(),
        done.join("; ")
    );

    let url = hub.repo_url(fakehub::ORG, "widgets");
    session.git(root, &["clone", "--quiet", &url, "widgets"])?;
    let work = root.join("widgets");
    let files = session.git(&work, &["ls-files"])?;
    outln!(
        "[3/5] git clone {url}: ok (files: {})",
        files.replace('\n', ", ")
    );

    let branch = "agent/demo";
    session.git(&work, &["switch", "--quiet", "-c", branch])?;
    std::fs::write(work.join("NOTES.md"), "Written by ghapp demo.\n")?;
    session.git(&work, &["add", "NOTES.md"])?;
    session.git(
        &work,
        &["commit", "--quiet", "-m", "Add notes from the demo agent"],
    )?;
    let head = session.git(&work, &["rev-parse", "HEAD"])?;
    session.git(&work, &["push", "--quiet", "-u", "origin", branch])?;
    outln!("[4/5] git commit and git push origin {branch}: ok");

    let bare = hub.repo_dir(fakehub::ORG, "widgets");
    let at_hub = session.git(&bare, &["rev-parse", &format!("refs/heads/{branch}")])?;
    if at_hub != head {
        bail!("the emulator has {branch} at {at_hub}, not the pushed {head}");
    }
    outln!(
        "[5/5] the emulator has refs/heads/{branch} at {}",
        &head[..12]
    );

    let mints = hub.counters().mints;
    let scopes: Vec<String> = mints
        .iter()
        .map(|m| match &m.repositories {
            Some(r) => r
                .iter()
                .map(|n| format!("{}/{n}", fakehub::ORG))
                .collect::<Vec<_>>()
                .join(","),
            None => "all repositories".into(),
        })
        .collect();
    outln!(
        "tokens minted: {} (narrowed to {}); clone and push shared it through the cache",
        mints.len(),
        scopes.join("; ")
    );

    sandbox(&hub, root)?;

    // Last, the pull request for the branch pushed from the host, as `gh-pr open` does.
    let env: std::collections::BTreeMap<String, String> = session.env.iter().cloned().collect();
    let cfg = ghapp_core::config::Config::load_from(&env, &Default::default())?;
    let ca = std::fs::read_to_string(hub.ca_path())?;
    let args = gh_pr::OpenArgs {
        title: Some("Notes from the demo agent".into()),
        body: Some(
            "Opened by `ghapp demo` with an installation token narrowed to octo-org/widgets."
                .into(),
        ),
        ..Default::default()
    };
    let url = gh_pr::open_with(&args, &work, &cfg, Some(&ca))?;
    outln!();
    outln!("gh-pr open (on the host's agent/demo): {url}");
    Ok(ExitCode::SUCCESS)
}

/// The sandbox part: `ghapp proxy` in front of the emulator; a sandbox whose whole environment
/// is HTTPS_PROXY and the proxy's CA clones and pushes its branch, and is refused main.
fn sandbox(hub: &fakehub::FakeHub, root: &Path) -> Result<()> {
    outln!();
    outln!("sandbox: the same through ghapp proxy, with no credentials in the sandbox");
    let secret = "demo-sandbox-secret-0123456789";
    let cfg_text = format!(
        "listen = \"127.0.0.1:0\"\nca_dir = {:?}\nupstream_ca_file = {:?}\n\n[app]\napi_url = {:?}\napp_id = {}\nprivate_key_file = {:?}\n\n[[sandbox]]\nname = \"agent-1\"\nsecret = {secret:?}\nrepos = [\"octo-org/widgets\"]\npush = [\"refs/heads/agent/*\"]\n",
        root.join("proxy-ca").display().to_string(),
        hub.ca_path().display().to_string(),
        hub.api_url(),
        hub.app_id(),
        hub.key_path().display().to_string(),
    );
    let cfg = ghapp_proxy::config::ProxyConfig::parse(&cfg_text, "demo")?;
    let proxy = ghapp_proxy::Proxy::new(cfg)?;
    let running = proxy.start()?;
    let ca = ghapp_proxy::ca::Ca::cert_path(&root.join("proxy-ca"));
    outln!(
        "[1/4] ghapp proxy on {}; policy: agent-1 may use octo-org/widgets and push refs/heads/agent/*",
        running.addr()
    );
    let home = root.join("sandbox-home");
    std::fs::create_dir_all(&home)?;
    std::fs::write(home.join(".gitconfig"), "")?;
    let s = |v: &str| v.to_owned();
    let sb = Session {
        env: vec![
            (
                s("PATH"),
                std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()),
            ),
            (s("HOME"), home.display().to_string()),
            (s("GIT_CONFIG_NOSYSTEM"), s("1")),
            (s("GIT_TERMINAL_PROMPT"), s("0")),
            (
                s("HTTPS_PROXY"),
                format!("http://agent-1:{secret}@{}", running.addr()),
            ),
            (s("GIT_SSL_CAINFO"), ca.display().to_string()),
            (s("GIT_AUTHOR_NAME"), s("Sandbox Agent")),
            (s("GIT_AUTHOR_EMAIL"), s("agent@example.invalid")),
            (s("GIT_COMMITTER_NAME"), s("Sandbox Agent")),
            (s("GIT_COMMITTER_EMAIL"), s("agent@example.invalid")),
        ],
    };
    outln!(
        "      sandbox environment: HTTPS_PROXY=http://agent-1:****@{} GIT_SSL_CAINFO={}",
        running.addr(),
        ca.display()
    );
    let url = hub.repo_url(fakehub::ORG, "widgets");
    sb.git(root, &["clone", "--quiet", &url, "sandbox-widgets"])?;
    let work = root.join("sandbox-widgets");
    outln!("[2/4] git clone {url}: ok");
    sb.git(&work, &["switch", "--quiet", "-c", "agent/sandbox"])?;
    std::fs::write(work.join("SANDBOX.md"), "Pushed through ghapp proxy.\n")?;
    sb.git(&work, &["add", "SANDBOX.md"])?;
    sb.git(&work, &["commit", "--quiet", "-m", "Work from the sandbox"])?;
    let head = sb.git(&work, &["rev-parse", "HEAD"])?;
    sb.git(&work, &["push", "--quiet", "origin", "agent/sandbox"])?;
    let bare = hub.repo_dir(fakehub::ORG, "widgets");
    if sb.git(&bare, &["rev-parse", "refs/heads/agent/sandbox"])? != head {
        bail!("the emulator does not have the sandbox's push");
    }
    outln!("[3/4] git push origin agent/sandbox: ok (the emulator has it)");
    let refused = sb.git(&work, &["push", "origin", "HEAD:main"]);
    let Err(e) = refused else {
        bail!("the push to main was not refused");
    };
    let line = e
        .to_string()
        .split(" | ")
        .find(|l| l.contains("[remote rejected]"))
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("git did not print a rejection: {e}"))?;
    outln!("[4/4] git push origin HEAD:main is refused, as git shows it:");
    outln!("      {}", line.trim());
    Ok(())
}
