//! The git the inspection runs: a mirror per repository (commits and trees only, fetched with
//! the sandbox's token), and a quarantine per push where `git index-pack --fix-thin` writes the
//! pushed objects, read through the mirror's as alternates and never added to it.
//!
//! Every run has a clean environment (no system or user config, no prompt, no proxy), its
//! token in the environment (`GIT_CONFIG_*`, never in arguments or on disk) and a deadline.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ghapp_gitproto::repo::RepoName;
use tokio::io::{AsyncBufReadExt, AsyncReadExt};
use tokio::process::Command;

/// The longest line of git's output read (a path, an id and a path, a diff stat): longer
/// fails the command rather than grow a buffer.
const MAX_LINE: u64 = 64 * 1024;
/// The longest a mirror fetch may take.
const FETCH_TIME: Duration = Duration::from_secs(300);
/// A mirror no push has used for this long is removed (at start, and whenever a new one is
/// made): the spool holds the repositories the fleet works on, not every one it ever did.
const MIRROR_IDLE: Duration = Duration::from_secs(14 * 24 * 3600);
/// The file whose modification time says when a mirror was last fetched.
const USED: &str = "ghapp-used";
/// The most a git run's output is read into memory (lists are streamed instead).
const OUTPUT_LIMIT: usize = 1 << 20;

/// Where and how git runs for the inspection.
#[derive(Debug)]
pub(crate) struct Git {
    spool: PathBuf,
    /// Settings every run gets: TLS trust, fixed addresses.
    config: Vec<(String, String)>,
    /// One fetch at a time per mirror.
    locks: Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>,
}

/// An `Authorization` header for git's `http.extraHeader` (a secret: Debug redacts).
#[derive(Clone)]
pub(crate) struct Auth(String);

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Auth(****)")
    }
}

impl Auth {
    pub(crate) fn basic(token: &str) -> Auth {
        Auth(format!(
            "Authorization: {}",
            ghapp_gitproto::basic::encode("x-access-token", token)
        ))
    }
}

impl Git {
    /// `git_url` is GitHub's git origin (`https://host[:port]`); `ca` the PEM bundle trusted
    /// for it, `resolve` fixed addresses (as the proxy's own client uses).
    pub(crate) fn new(
        spool: &Path,
        git_url: &reqwest::Url,
        ca: Option<&Path>,
        resolve: &[(String, IpAddr)],
    ) -> Git {
        let mut config = vec![
            ("protocol.version".to_owned(), "2".to_owned()),
            ("credential.helper".to_owned(), String::new()),
            ("core.hooksPath".to_owned(), "/dev/null".to_owned()),
            ("gc.auto".to_owned(), "0".to_owned()),
            ("maintenance.auto".to_owned(), "false".to_owned()),
            ("fetch.writeCommitGraph".to_owned(), "false".to_owned()),
        ];
        if let Some(ca) = ca {
            config.push(("http.sslCAInfo".into(), ca.display().to_string()));
        }
        let port = git_url.port_or_known_default().unwrap_or(443);
        for (name, ip) in resolve {
            if git_url
                .host_str()
                .is_some_and(|h| h.eq_ignore_ascii_case(name))
            {
                config.push(("http.curloptResolve".into(), format!("{name}:{port}:{ip}")));
            }
        }
        Git {
            spool: spool.to_owned(),
            config,
            locks: Mutex::default(),
        }
    }

    /// Checks, before serving, that inspection can run: git is on `PATH`, the spool directory
    /// is ours (0700), and no quarantine of an earlier run is left behind.
    pub(crate) fn prepare(&self) -> Result<(), String> {
        let v = std::process::Command::new("git")
            .arg("--version")
            .stdin(Stdio::null())
            .output();
        if !v.is_ok_and(|o| o.status.success()) {
            return Err(
                "push inspection needs git on PATH: install git, or set inspect = false in [defaults]"
                    .into(),
            );
        }
        let incoming = self.spool.join("incoming");
        ghapp_core::fsutil::ensure_private_dir(&self.spool)
            .and_then(|()| ghapp_core::fsutil::ensure_private_dir(&incoming))
            .map_err(|e| format!("cannot use spool_dir {}: {e}", self.spool.display()))?;
        if let Ok(left) = std::fs::read_dir(&incoming) {
            for e in left.flatten() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        self.prune_mirrors(MIRROR_IDLE);
        Ok(())
    }

    /// Removes the mirrors not fetched for `idle` (none that is in use: its lock is held).
    /// Returns how many.
    pub(crate) fn prune_mirrors(&self, idle: Duration) -> usize {
        let now = std::time::SystemTime::now();
        let mut removed = 0;
        let hosts = std::fs::read_dir(self.spool.join("mirrors"))
            .into_iter()
            .flatten();
        for host in hosts.flatten() {
            for m in std::fs::read_dir(host.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let dir = m.path();
                if dir.extension().is_none_or(|e| e != "git") {
                    continue;
                }
                let used = std::fs::metadata(dir.join(USED))
                    .or_else(|_| std::fs::metadata(&dir))
                    .and_then(|m| m.modified())
                    .unwrap_or(now);
                if now.duration_since(used).unwrap_or_default() < idle {
                    continue;
                }
                let lock = self.lock(&dir);
                let Ok(_held) = lock.try_lock() else { continue };
                if std::fs::remove_dir_all(&dir).is_ok() {
                    removed += 1;
                    tracing::info!("removed the mirror {} (unused)", dir.display());
                }
            }
        }
        removed
    }

    /// `git` in `git_dir` with a clean environment, the base settings and `auth`.
    pub(crate) fn command(&self, git_dir: &Path, auth: Option<&Auth>) -> Command {
        self.command_with(git_dir, auth, &[])
    }

    /// [`Git::command`] with `extra` settings after the base ones.
    fn command_with(&self, git_dir: &Path, auth: Option<&Auth>, extra: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new("git");
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.spool)
            .env("LANG", "C")
            .env("GIT_DIR", git_dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_NO_REPLACE_OBJECTS", "1")
            .current_dir(git_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut config: Vec<(&str, &str)> = self
            .config
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        if let Some(a) = auth {
            config.push(("http.extraHeader", a.0.as_str()));
        }
        config.extend_from_slice(extra);
        cmd.env("GIT_CONFIG_COUNT", config.len().to_string());
        for (i, (k, v)) in config.iter().enumerate() {
            cmd.env(format!("GIT_CONFIG_KEY_{i}"), k)
                .env(format!("GIT_CONFIG_VALUE_{i}"), v);
        }
        cmd
    }

    /// The mirror of `repo` (made on first use: bare, partial, no blobs).
    pub(crate) async fn mirror(
        &self,
        host: &str,
        repo: &RepoName,
        url: &str,
    ) -> Result<PathBuf, String> {
        let dir = self.spool.join("mirrors").join(safe(host)).join(format!(
            "{}--{}.git",
            safe(&repo.owner().to_ascii_lowercase()),
            safe(&repo.repo().to_ascii_lowercase())
        ));
        let made = {
            let lock = self.lock(&dir);
            let _held = lock.lock().await;
            let new = !dir.join("objects").is_dir();
            if new {
                self.create_mirror(&dir, url).await?;
            }
            // In use from now: not one to prune.
            touch(&dir.join(USED));
            new
        };
        if made {
            self.prune_mirrors(MIRROR_IDLE);
        }
        Ok(dir)
    }

    /// Makes a mirror in a scratch directory and moves it into place whole, so a proxy killed
    /// half-way leaves no half-made mirror.
    async fn create_mirror(&self, dir: &Path, url: &str) -> Result<(), String> {
        let parent = dir.parent().unwrap_or(&self.spool);
        ghapp_core::fsutil::ensure_private_dir(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        let scratch = tempfile::Builder::new()
            .prefix(".new-")
            .tempdir_in(parent)
            .map_err(|e| format!("cannot create a mirror in {}: {e}", parent.display()))?;
        let init = [
            vec!["init", "--quiet", "--bare", "."],
            vec!["config", "core.repositoryformatversion", "1"],
            vec!["config", "remote.origin.url", url],
            vec!["config", "remote.origin.promisor", "true"],
            vec!["config", "remote.origin.partialclonefilter", "blob:none"],
            vec!["config", "extensions.partialClone", "origin"],
        ];
        for args in init {
            let mut cmd = self.command(scratch.path(), None);
            cmd.args(&args);
            run(cmd, None, Duration::from_secs(30)).await?;
        }
        let _ = std::fs::remove_dir_all(dir);
        std::fs::rename(scratch.keep(), dir)
            .map_err(|e| format!("cannot move the mirror into {}: {e}", dir.display()))
    }

    /// Brings `mirror` up to date with GitHub: branches, tags and the default branch (as
    /// `refs/ghapp/HEAD`), commits and trees only.
    pub(crate) async fn fetch(&self, mirror: &Path, auth: &Auth) -> Result<(), String> {
        let lock = self.lock(mirror);
        let _held = lock.lock().await;
        let fetch = |head: bool| {
            let mut cmd = self.command(mirror, Some(auth));
            cmd.args([
                "fetch",
                "--quiet",
                "--no-tags",
                "--no-write-fetch-head",
                "--prune",
                "--filter=blob:none",
                "origin",
                "+refs/heads/*:refs/heads/*",
                "+refs/tags/*:refs/tags/*",
            ]);
            if head {
                cmd.arg("+HEAD:refs/ghapp/HEAD");
            }
            cmd
        };
        let once = || async {
            match run(fetch(true), None, FETCH_TIME).await {
                Ok(_) => Ok(()),
                // An empty repository has no HEAD to fetch.
                Err(e) if e.contains("couldn't find remote ref HEAD") => {
                    run(fetch(false), None, FETCH_TIME).await.map(|_| ())
                }
                Err(e) => Err(e),
            }
        };
        match once().await {
            Ok(()) => Ok(()),
            // A mirror left broken (a fetch killed with an earlier proxy, its locks behind) is
            // only a cache: made again once.
            Err(e)
                if e.contains(".lock")
                    || e.contains("corrupt")
                    || e.contains("not a git repository") =>
            {
                tracing::warn!("the mirror {} is made again: {e}", mirror.display());
                let url = {
                    let mut c = self.command(mirror, None);
                    c.args(["config", "remote.origin.url"]);
                    String::from_utf8_lossy(&run(c, None, Duration::from_secs(30)).await?)
                        .trim()
                        .to_owned()
                };
                self.create_mirror(mirror, &url).await?;
                once().await
            }
            Err(e) => Err(e),
        }
    }

    fn lock(&self, dir: &Path) -> Arc<tokio::sync::Mutex<()>> {
        self.locks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(dir.to_owned())
            .or_default()
            .clone()
    }

    /// A new quarantine for one push, reading `mirror`'s objects.
    pub(crate) fn quarantine(&self, mirror: &Path) -> Result<Quarantine, String> {
        let incoming = self.spool.join("incoming");
        ghapp_core::fsutil::ensure_private_dir(&incoming)
            .map_err(|e| format!("cannot create {}: {e}", incoming.display()))?;
        let dir = tempfile::Builder::new()
            .prefix("push-")
            .tempdir_in(&incoming)
            .map_err(|e| format!("cannot create a quarantine in {}: {e}", incoming.display()))?;
        std::fs::create_dir_all(dir.path().join("objects/pack"))
            .map_err(|e| format!("cannot create a quarantine: {e}"))?;
        Ok(Quarantine {
            dir,
            mirror: mirror.to_owned(),
        })
    }
}

/// A push's own object directory; removed when dropped.
#[derive(Debug)]
pub(crate) struct Quarantine {
    dir: tempfile::TempDir,
    mirror: PathBuf,
}

impl Quarantine {
    /// git reading the pushed objects and the mirror's, writing only here. Nothing written
    /// here outlives the push, so nothing is flushed to disk (`core.fsync=none`): a 256 MiB
    /// pack's flush would wait before the verdict.
    pub(crate) fn command(&self, git: &Git, auth: Option<&Auth>) -> Command {
        let mut cmd = git.command_with(&self.mirror, auth, &[("core.fsync", "none")]);
        cmd.env("GIT_OBJECT_DIRECTORY", self.dir.path().join("objects"))
            .env(
                "GIT_ALTERNATE_OBJECT_DIRECTORIES",
                self.mirror.join("objects"),
            );
        cmd
    }

    /// The mirror whose objects the quarantine reads.
    pub(crate) fn mirror(&self) -> &Path {
        &self.mirror
    }

    /// The pack index `git index-pack` wrote for pack `hash`.
    pub(crate) fn index(&self, hash: &str) -> PathBuf {
        self.dir
            .path()
            .join("objects/pack")
            .join(format!("pack-{hash}.idx"))
    }
}

/// Sets `path`'s modification time to now (creating it empty).
fn touch(path: &Path) {
    if let Ok(f) = std::fs::File::create(path) {
        let _ = f.set_modified(std::time::SystemTime::now());
    }
}

/// A host, owner or repository name as one safe path component.
fn safe(s: &str) -> String {
    let s: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.starts_with('.') {
        format!("_{s}")
    } else {
        s
    }
}

/// What a git run left: its exit status, stdout (at most [`OUTPUT_LIMIT`]) and stderr.
pub(crate) struct Ran {
    pub code: i32,
    pub out: Vec<u8>,
    /// stdout went on past its limit (the rest was dropped).
    pub truncated: bool,
    pub err: Vec<u8>,
    what: String,
}

impl Ran {
    /// Why it failed, in one line.
    pub(crate) fn why(&self) -> String {
        format!("{} failed: {}", self.what, first_line(&self.err))
    }
}

/// Runs `cmd` to the end within `time`; its stdout, or what git said on stderr.
pub(crate) async fn run(
    cmd: Command,
    stdin: Option<Vec<u8>>,
    time: Duration,
) -> Result<Vec<u8>, String> {
    let r = exec(cmd, stdin, time).await?;
    if r.code == 0 { Ok(r.out) } else { Err(r.why()) }
}

/// Runs `cmd` to the end within `time`, with `stdin`, whatever its exit status.
pub(crate) async fn exec(
    cmd: Command,
    stdin: Option<Vec<u8>>,
    time: Duration,
) -> Result<Ran, String> {
    exec_limited(cmd, stdin, time, OUTPUT_LIMIT).await
}

/// As [`exec`], keeping at most `limit` bytes of stdout.
pub(crate) async fn exec_limited(
    mut cmd: Command,
    stdin: Option<Vec<u8>>,
    time: Duration,
    limit: usize,
) -> Result<Ran, String> {
    if stdin.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let what = describe(&cmd);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run git (push inspection needs git on PATH): {e}"))?;
    let input = child.stdin.take();
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let work = async {
        let feed = async {
            if let (Some(mut w), Some(data)) = (input, stdin) {
                use tokio::io::AsyncWriteExt;
                let _ = w.write_all(&data).await;
            }
        };
        let read_out = async {
            let mut buf = Vec::new();
            let mut more = 0;
            if let Some(o) = out.as_mut() {
                let _ = o.take(limit as u64).read_to_end(&mut buf).await;
                // The rest is read and dropped, so git is never left blocked on a full pipe.
                more = tokio::io::copy(o, &mut tokio::io::sink())
                    .await
                    .unwrap_or(0);
            }
            (buf, more > 0)
        };
        let read_err = async {
            let mut buf = Vec::new();
            if let Some(e) = err.as_mut() {
                let _ = e.take(64 * 1024).read_to_end(&mut buf).await;
            }
            buf
        };
        let ((), (o, cut), e) = tokio::join!(feed, read_out, read_err);
        let status = child.wait().await;
        (status, o, cut, e)
    };
    let (status, out, truncated, err) = tokio::time::timeout(time, work)
        .await
        .map_err(|_| format!("{what} did not finish within {} s", time.as_secs()))?;
    let code = status.map_err(|e| e.to_string())?.code().unwrap_or(-1);
    Ok(Ran {
        code,
        out,
        truncated,
        err,
        what,
    })
}

/// The first line git wrote to stderr, without `fatal: `/`error: `, any credential in it
/// redacted.
pub(crate) fn first_line(e: &[u8]) -> String {
    let text = String::from_utf8_lossy(e);
    let text = ghapp_gitproto::secrets::redact(&text);
    let line = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no message");
    line.trim_start_matches("fatal: ")
        .trim_start_matches("error: ")
        .chars()
        .take(300)
        .collect()
}

fn describe(cmd: &Command) -> String {
    let args: Vec<String> = cmd
        .as_std()
        .get_args()
        .take(2)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    format!("git {}", args.join(" "))
}

/// Runs `cmd` and hands each line of its stdout to `line` (stopping when it returns false),
/// within `time`: for lists too long to hold (`show-index`, `rev-list --objects`).
pub(crate) async fn lines(
    mut cmd: Command,
    stdin: Option<Vec<u8>>,
    time: Duration,
    mut line: impl FnMut(&str) -> bool,
) -> Result<(), String> {
    if stdin.is_some() {
        cmd.stdin(Stdio::piped());
    }
    cmd.stderr(Stdio::null());
    let what = describe(&cmd);
    let mut child = cmd.spawn().map_err(|e| format!("cannot run git: {e}"))?;
    let input = child.stdin.take();
    let Some(out) = child.stdout.take() else {
        return Err(format!("{what}: no output"));
    };
    let work = async {
        let feed = async {
            if let (Some(mut w), Some(data)) = (input, stdin) {
                use tokio::io::AsyncWriteExt;
                let _ = w.write_all(&data).await;
            }
        };
        let read = async {
            let mut r = tokio::io::BufReader::new(out);
            let mut buf = String::new();
            loop {
                buf.clear();
                // A line is bounded before it is held (a path is git's to keep, not ours).
                match (&mut r).take(MAX_LINE).read_line(&mut buf).await {
                    Ok(0) | Err(_) => return true,
                    Ok(_) if !buf.ends_with('\n') && buf.len() as u64 >= MAX_LINE => {
                        return false;
                    }
                    Ok(_) => {
                        if !line(buf.trim_end_matches('\n')) {
                            return false;
                        }
                    }
                }
            }
        };
        let ((), to_end) = tokio::join!(feed, read);
        if to_end {
            child.wait().await.map(|s| s.success()).unwrap_or(false)
        } else {
            let _ = child.kill().await;
            true
        }
    };
    match tokio::time::timeout(time, work).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(format!("{what} failed")),
        Err(_) => Err(format!("{what} did not finish within {} s", time.as_secs())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrors_unused_for_long_are_pruned_and_others_kept() {
        let spool = tempfile::tempdir().unwrap();
        let git = Git::new(
            spool.path(),
            &reqwest::Url::parse("https://github.com/").unwrap(),
            None,
            &[],
        );
        let host = spool.path().join("mirrors/github.com");
        let make = |name: &str, age: Duration| {
            let dir = host.join(name);
            std::fs::create_dir_all(dir.join("objects")).unwrap();
            std::fs::File::create(dir.join(USED))
                .unwrap()
                .set_modified(std::time::SystemTime::now() - age)
                .unwrap();
            dir
        };
        let day = Duration::from_secs(24 * 3600);
        let old = make("o--old.git", 20 * day);
        let fresh = make("o--fresh.git", day);
        let busy = make("o--busy.git", 30 * day);
        let not_a_mirror = make("scratch", 30 * day);
        let lock = git.lock(&busy);
        let held = lock.try_lock().unwrap();
        assert_eq!(git.prune_mirrors(MIRROR_IDLE), 1);
        assert!(!old.exists());
        assert!(fresh.exists() && busy.exists() && not_a_mirror.exists());
        drop(held);
        assert_eq!(git.prune_mirrors(MIRROR_IDLE), 1, "the busy one, once free");
        assert!(!busy.exists());
    }
}
