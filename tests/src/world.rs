//! A [`World`]: one fakehub, a throwaway HOME, git config and token cache.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use fakehub::{FakeHub, Options};

use crate::{Cmd, Run, bin_dir, wait_bounded};

pub struct World {
    pub hub: FakeHub,
    pub root: tempfile::TempDir,
    /// How long one command may run before it is killed (120 s unless a test needs more).
    pub limit: Duration,
    env: Vec<(String, String)>,
    /// Every captured output that must not hold a secret.
    captured: Mutex<Vec<String>>,
}

impl World {
    pub fn new() -> World {
        Self::with(Options::default())
    }

    pub fn with(opts: Options) -> World {
        let hub = FakeHub::start(opts).expect("fakehub starts");
        let root = tempfile::Builder::new()
            .prefix("ghapp-e2e-")
            .tempdir()
            .expect("tempdir");
        let home = root.path().join("home");
        std::fs::create_dir_all(&home).expect("home");
        let gitconfig = root.path().join("gitconfig");
        // Only what the acceptance allows: the helper and useHttpPath.
        std::fs::write(
            &gitconfig,
            "[credential]\n\thelper = ghapp\n\tuseHttpPath = true\n[init]\n\tdefaultBranch = main\n",
        )
        .expect("gitconfig");
        let bins = bin_dir();
        let path = format!(
            "{}:{}",
            bins.display(),
            std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into())
        );
        let mut env =
            fakehub::isolated_git_env(&path, &home, &gitconfig, hub.ca_path(), "Test Agent");
        // Fixed dates: commits (and their ids) do not depend on when the tests run.
        for k in ["GIT_AUTHOR_DATE", "GIT_COMMITTER_DATE"] {
            env.push((k.into(), "2026-02-01T12:00:00Z".into()));
        }
        env.extend(hub.app_env(&root.path().join("cache/ghapp")));
        World {
            hub,
            root,
            limit: Duration::from_secs(120),
            env,
            captured: Mutex::new(Vec::new()),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.path("cache/ghapp")
    }

    /// Sets (or with `None` removes) a variable for every later command.
    pub fn set_env(&mut self, key: &str, value: Option<&str>) {
        self.env.retain(|(k, _)| k != key);
        if let Some(v) = value {
            self.env.push((key.to_owned(), v.to_owned()));
        }
    }

    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// A command to run in this world's environment, in its root directory, with empty stdin
    /// (just's `tests/test.rs` builder is the model): set what differs, then [`Cmd::run`].
    pub fn cmd(&self, program: &str) -> Cmd<'_> {
        Cmd {
            world: self,
            program: program.to_owned(),
            args: Vec::new(),
            dir: self.root.path().to_owned(),
            stdin: String::new(),
            env: self.env.clone(),
            scan_stdout: true,
        }
    }

    /// Runs `cmd`, bounded by [`World::limit`]; its outputs are kept for [`World::assert_no_secrets`].
    pub(crate) fn execute(&self, cmd: Cmd<'_>) -> Run {
        let program = cmd.program.as_str();
        let mut c = Command::new(program);
        c.current_dir(&cmd.dir).env_clear();
        for (k, v) in &cmd.env {
            c.env(k, v);
        }
        c.args(&cmd.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let start = Instant::now();
        let mut child = c.spawn().unwrap_or_else(|e| {
            // A tool some tests need and this machine lacks: the test is skipped (or fails
            // under CI), named by the tool.
            if e.kind() == std::io::ErrorKind::NotFound
                && let Some(tool) = crate::Tool::of_program(program)
            {
                crate::needs(tool.name);
            }
            panic!("spawn {program}: {e}")
        });
        let mut input = child.stdin.take().expect("stdin");
        let data = cmd.stdin.into_bytes();
        let writer = std::thread::spawn(move || {
            let _ = input.write_all(&data);
        });
        let out = wait_bounded(child, self.limit, program);
        let _ = writer.join();
        let run = Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            elapsed: start.elapsed(),
        };
        let mut cap = self.captured.lock().unwrap();
        cap.push(run.stderr.clone());
        if cmd.scan_stdout {
            cap.push(run.stdout.clone());
        }
        run
    }

    pub fn git(&self, dir: &Path, args: &[&str]) -> Run {
        self.cmd("git").args(args).dir(dir).run()
    }

    /// `git-credential-ghapp ACTION` with `input` on stdin.
    pub fn helper(&self, action: &str, input: &str) -> Run {
        self.cmd("git-credential-ghapp")
            .arg(action)
            .stdin(input)
            .carries_secrets()
            .run()
    }

    /// A `get` for `owner/repo` on the emulator, as git sends it with useHttpPath.
    pub fn get(&self, owner_repo: &str) -> Run {
        self.helper("get", &self.request(owner_repo))
    }

    pub fn request(&self, owner_repo: &str) -> String {
        format!(
            "protocol=https\nhost={}\npath={owner_repo}.git\n\n",
            self.hub.git_host()
        )
    }

    /// `gh-pr ARGS` in `dir`.
    pub fn gh_pr(&self, dir: &Path, args: &[&str]) -> Run {
        self.cmd("gh-pr").args(args).dir(dir).run()
    }

    pub fn ghapp(&self, args: &[&str]) -> Run {
        // `ghapp token` prints a token on purpose; other subcommands are scanned.
        let cmd = self.cmd("ghapp").args(args);
        if args.first() == Some(&"token") {
            cmd.carries_secrets().run()
        } else {
            cmd.run()
        }
    }

    /// A token for `owner_repo` from `ghapp token` (which must succeed).
    #[track_caller]
    pub fn token_for(&self, owner_repo: &str) -> String {
        self.ghapp(&["token", "--repo", owner_repo])
            .ok()
            .stdout
            .trim()
            .to_owned()
    }

    /// Commits `files` (path, contents) to `owner/repo`'s `main` straight into fakehub's
    /// repository, as the repository's people would (no proxy, no helper, no hook).
    pub fn commit_on_main(&self, owner: &str, repo: &str, files: &[(&str, &[u8])]) {
        let dir = self.path(&format!("seed-{owner}-{repo}"));
        if !dir.exists() {
            let bare = self.hub.repo_dir(owner, repo);
            self.git(
                self.root.path(),
                &[
                    "clone",
                    "--quiet",
                    &bare.display().to_string(),
                    &dir.display().to_string(),
                ],
            )
            .ok();
        }
        self.git(&dir, &["pull", "--quiet", "origin", "main"]).ok();
        for (name, bytes) in files {
            let path = dir.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, bytes).unwrap();
            self.git(&dir, &["add", name]).ok();
        }
        self.git(&dir, &["commit", "--quiet", "-m", "seed"]).ok();
        self.git(&dir, &["push", "--quiet", "origin", "main"]).ok();
    }

    /// Clones `owner/repo` into `dest` (relative to the world root).
    pub fn clone_repo(&self, owner: &str, repo: &str, dest: &str) -> Run {
        let url = self.hub.repo_url(owner, repo);
        self.git(self.root.path(), &["clone", "--quiet", &url, dest])
    }

    /// Revokes `token` at GitHub (`DELETE /installation/token`), as an admin, secret scanning
    /// or `ghapp revoke` would.
    #[track_caller]
    pub fn revoke_at_github(&self, token: &str) {
        let r = self
            .cmd("curl")
            .env(&[(
                "PATH".to_string(),
                std::env::var("PATH").unwrap_or_default(),
            )])
            .args(&[
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-X",
                "DELETE",
                "--cacert",
                &self.hub.ca_path().display().to_string(),
                "-H",
                &format!("Authorization: Bearer {token}"),
                &format!("{}/installation/token", self.hub.api_url()),
            ])
            .carries_secrets()
            .run();
        assert_eq!(r.stdout.trim(), "204", "{r:#?}");
    }

    /// Commits a file in the checkout `dir`.
    pub fn commit_file(&self, dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).expect("write file");
        self.git(dir, &["add", name]).ok();
        self.git(dir, &["commit", "--quiet", "-m", &format!("Add {name}")])
            .ok();
    }

    /// The emulator's value of `refname` in `owner/repo`, if any.
    pub fn hub_ref(&self, owner: &str, repo: &str, refname: &str) -> Option<String> {
        let out = Command::new("git")
            .args(["rev-parse", "--verify", "--quiet", refname])
            .env("GIT_DIR", self.hub.repo_dir(owner, repo))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .output()
            .expect("git rev-parse");
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Adds text that must be scanned (e.g. Debug output of a value).
    pub fn capture(&self, text: String) {
        self.captured.lock().unwrap().push(text);
    }

    /// Every token fakehub issued, and the key's body lines, must be absent from every
    /// captured output.
    #[track_caller]
    pub fn assert_no_secrets(&self) {
        let mut secrets = self.hub.issued_tokens();
        secrets.extend(
            self.hub
                .private_key_pem()
                .lines()
                .filter(|l| !l.starts_with("-----") && l.len() > 20)
                .map(str::to_owned),
        );
        let cap = self.captured.lock().unwrap();
        for (i, text) in cap.iter().enumerate() {
            for s in &secrets {
                assert!(
                    !text.contains(s.as_str()),
                    "captured output #{i} holds a secret (fingerprint {}): {}",
                    ghapp_core::secret::fingerprint(s),
                    text.replace(s.as_str(), "<SECRET>")
                );
            }
        }
    }

    pub fn captured_count(&self) -> usize {
        self.captured.lock().unwrap().len()
    }
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}
