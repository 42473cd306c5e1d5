//! The end-to-end harness: a [`World`] is one fakehub plus a throwaway HOME, git config and
//! token cache, and runs the real `git` and ghapp's built binaries in it, recording every output
//! so that a test can finish with [`World::assert_no_secrets`].
//!
//! Every command is isolated the same way: the environment is cleared, then `PATH` (ghapp's
//! target dir first), `HOME`, `GIT_CONFIG_GLOBAL` to the world's file, `GIT_CONFIG_NOSYSTEM=1`,
//! `GIT_TERMINAL_PROMPT=0`, fixed author dates, the emulator's CA, and the `GHAPP_*` variables.

pub mod openapi;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use fakehub::{FakeHub, Options};

/// `curl -s --noproxy '*' ARGS` straight to a local listener (the admin API, the webhooks, the
/// metrics): what it printed.
pub fn curl_local<S: AsRef<std::ffi::OsStr>>(args: impl IntoIterator<Item = S>) -> String {
    let out = Command::new("curl")
        .args(["-s", "--noproxy", "*"])
        .args(args)
        .output()
        .expect("curl runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The directory holding the built binaries (`target/debug`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/debug/deps/test-xxxx -> target/debug
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf();
    for b in ["git-credential-ghapp", "ghapp", "gh-pr"] {
        assert!(
            dir.join(b).is_file(),
            "{b} is not built in {}: run the suite with `cargo test --workspace`",
            dir.display()
        );
    }
    dir
}

/// Builds the release binaries a benchmark measures, `(package, binary)` pairs (a no-op when
/// they are up to date). Benchmarks call it first: `cargo bench` builds only this package.
pub fn build_release_bins(bins: &[(&str, &str)]) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // One build per package, as `cargo install` would: built together, features unify and the
    // lean helper would be linked against ghapp-core with its `mint` feature.
    for (package, bin) in bins {
        let st = Command::new(&cargo)
            .args(["build", "--release", "-p", package, "--bin", bin])
            .status()
            .expect("cargo build");
        assert!(st.success(), "building the release binary {bin} failed");
    }
}

/// What a command did.
#[derive(Debug, Clone)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
    #[track_caller]
    pub fn ok(&self) -> &Self {
        assert!(self.success(), "command failed: {self:#?}");
        self
    }
    #[track_caller]
    pub fn fails(&self) -> &Self {
        assert!(!self.success(), "command should have failed: {self:#?}");
        self
    }
    /// The value of `key=` in a credential answer.
    pub fn field(&self, key: &str) -> Option<String> {
        self.stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_owned))
    }
    /// Asserts the shape every error must have: one line on stderr, prefixed with the program,
    /// containing `want`; no password on stdout; no panic.
    #[track_caller]
    pub fn one_line_error(&self, program: &str, want: &str) -> &Self {
        assert!(!self.stderr.contains("panicked"), "panic: {self:#?}");
        assert_ne!(self.code, Some(101), "panic exit code: {self:#?}");
        assert!(
            !self.stdout.contains("password="),
            "password on stdout: {self:#?}"
        );
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "expected one stderr line: {self:#?}");
        assert!(
            lines[0].starts_with(&format!("{program}: ")),
            "not prefixed with {program}: {self:#?}"
        );
        assert!(lines[0].contains(want), "stderr lacks {want:?}: {self:#?}");
        self
    }
}

/// A command being described; nothing runs until [`Cmd::run`].
#[must_use = "a command does nothing until .run()"]
pub struct Cmd<'w> {
    world: &'w World,
    program: String,
    args: Vec<String>,
    dir: PathBuf,
    stdin: String,
    env: Vec<(String, String)>,
    scan_stdout: bool,
}

impl Cmd<'_> {
    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }

    pub fn args<S: AsRef<str>>(mut self, args: &[S]) -> Self {
        self.args.extend(args.iter().map(|a| a.as_ref().to_owned()));
        self
    }

    pub fn dir(mut self, dir: &Path) -> Self {
        self.dir = dir.to_owned();
        self
    }

    pub fn stdin(mut self, text: &str) -> Self {
        self.stdin = text.to_owned();
        self
    }

    /// Exactly this environment instead of the world's (nothing inherited either way).
    pub fn env(mut self, env: &[(String, String)]) -> Self {
        self.env = env.to_vec();
        self
    }

    /// stdout carries a token on purpose: it is not scanned for secrets (stderr still is).
    pub fn carries_secrets(mut self) -> Self {
        self.scan_stdout = false;
        self
    }

    pub fn run(self) -> Run {
        self.world.execute(self)
    }
}

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
    fn execute(&self, cmd: Cmd<'_>) -> Run {
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
        let mut child = c.spawn().unwrap_or_else(|e| panic!("spawn {program}: {e}"));
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

/// Waits for a child at most `limit`, killing it after: no test hangs.
pub fn wait_bounded(
    mut child: std::process::Child,
    limit: Duration,
    what: &str,
) -> std::process::Output {
    use std::io::Read;
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(s) = stdout.as_mut() {
            let _ = s.read_to_end(&mut v);
        }
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(s) = stderr.as_mut() {
            let _ = s.read_to_end(&mut v);
        }
        v
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("{what} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    std::process::Output {
        status,
        stdout: out_t.join().unwrap_or_default(),
        stderr: err_t.join().unwrap_or_default(),
    }
}

/// `Authorization: Basic` for a token, as git would send it.
pub fn basic_auth(token: &str) -> String {
    format!(
        "Authorization: {}",
        ghapp_gitproto::basic::encode("x-access-token", token)
    )
}

/// A running `ghapp proxy` process (the real binary), stopped on drop.
pub struct ProxyProc {
    child: std::process::Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    pub metrics_addr: Option<String>,
    /// The admin API's `http://ADDR`, when `admin_listen` is set.
    pub admin_url: Option<String>,
    /// The webhook receiver's URL, when `webhook_listen` is set.
    pub webhook_url: Option<String>,
    pub ca_path: PathBuf,
    pub audit_path: PathBuf,
    /// The proxy's TOML, which SIGHUP reloads.
    pub config_path: PathBuf,
    stderr: std::sync::Arc<Mutex<String>>,
}

/// The proxy secrets of the two sandboxes of [`two_sandboxes`].
pub const SECRET_A: &str = "sandbox-a-secret-0123456789";
pub const SECRET_B: &str = "sandbox-b-secret-0123456789";

/// `[[sandbox]]` tables: agent-a (octo-org/widgets, pushes to `refs/heads/agent/*`, plus
/// `a_extra` lines) and agent-b (octo-org/gadgets, `agent/*`, deletes allowed).
pub fn two_sandboxes(a_extra: &str) -> String {
    format!(
        r#"
[[sandbox]]
name = "agent-a"
secret = "{SECRET_A}"
repos = ["octo-org/widgets"]
push = ["refs/heads/agent/*"]
{a_extra}

[[sandbox]]
name = "agent-b"
secret = "{SECRET_B}"
repos = ["octo-org/gadgets"]
push = ["agent/*"]
allow_delete = true
"#
    )
}

impl ProxyProc {
    /// The proxy's `/metrics` answer (head and body).
    pub fn metrics(&self) -> String {
        use std::io::Read;
        let mut s = std::net::TcpStream::connect(self.metrics_addr.as_deref().unwrap()).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }
}

impl ProxyProc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU time the proxy process has used so far, in clock ticks (user + system).
    pub fn cpu_ticks(&self) -> u64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        let f: Vec<&str> = stat
            .rsplit_once(')')
            .map_or("", |x| x.1)
            .split_whitespace()
            .collect();
        let field = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        field(11) + field(12)
    }

    /// Resident memory of the proxy process now (VmRSS), in KiB.
    pub fn rss_kib(&self) -> u64 {
        self.status_kib("VmRSS:")
    }

    fn status_kib(&self, field: &str) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    /// File descriptors the proxy process holds open (sockets among them).
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// Peak resident memory of the proxy process so far (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        self.status_kib("VmHWM:")
    }

    /// What the proxy logged so far.
    pub fn log(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
    pub fn audit(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.audit_path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("audit line is JSON"))
            .collect()
    }
}

impl Drop for ProxyProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl World {
    /// Starts `ghapp proxy` in front of this world's emulator. `sandboxes` are `[[sandbox]]`
    /// tables; `extra` top-level keys (e.g. `egress = "tunnel"`).
    pub fn start_proxy(&self, sandboxes: &str, extra: &str) -> ProxyProc {
        let app = format!(
            "[app]\napi_url = {:?}\napp_id = {}\nprivate_key_file = {:?}\n",
            self.hub.api_url(),
            self.hub.app_id(),
            self.hub.key_path().display().to_string(),
        );
        self.start_proxy_with_apps(sandboxes, extra, &app)
    }

    /// The emulator's app as an `[[app]]` table with more keys (`owners`, `installation_id`).
    pub fn app_table(&self, more: &str) -> String {
        format!(
            "[[app]]\napi_url = {:?}\napp_id = {}\nprivate_key_file = {:?}\n{more}\n",
            self.hub.api_url(),
            self.hub.app_id(),
            self.hub.key_path().display().to_string(),
        )
    }

    /// [`World::start_proxy`] with these app tables instead of the emulator's one `[app]`.
    pub fn start_proxy_with_apps(&self, sandboxes: &str, extra: &str, apps: &str) -> ProxyProc {
        use std::io::{BufRead, BufReader, Read};
        let dir = tempfile::Builder::new()
            .prefix("proxy-")
            .tempdir_in(self.root.path())
            .unwrap()
            .keep();
        let audit = dir.join("audit.jsonl");
        let config = dir.join("proxy.toml");
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:0\"\nca_dir = {:?}\naudit_log = {:?}\nmetrics_listen = \"127.0.0.1:0\"\n{extra}\n{apps}\n\n{sandboxes}\n",
                dir.join("ca").display().to_string(),
                audit.display().to_string(),
            ),
        )
        .unwrap();
        let mut child = Command::new(bin_dir().join("ghapp"))
            .args(["proxy", "--config"])
            .arg(&config)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.path("home"))
            .env("GHAPP_CONFIG", "")
            .env("GHAPP_LOG", "info")
            .env("SSL_CERT_FILE", self.hub.ca_path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ghapp proxy starts");
        let stderr = std::sync::Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let mut err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let (mut addr, mut metrics, mut admin, mut hooks) = (None, None, None, None);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let mut l = String::new();
            if out.read_line(&mut l).unwrap_or(0) == 0 {
                break;
            }
            if let Some(a) = l.trim().strip_prefix("ghapp proxy listening on ") {
                addr = Some(a.to_owned());
            }
            if let Some(m) = l.trim().strip_prefix("metrics: http://") {
                metrics = m.strip_suffix("/metrics").map(str::to_owned);
            }
            if let Some(a) = l.trim().strip_prefix("webhooks: ") {
                hooks = Some(a.to_owned());
            }
            if let Some(a) = l.trim().strip_prefix("admin API: ") {
                admin = a.split("/v1/").next().map(str::to_owned);
            }
            if l.trim_start().starts_with("sandbox environment:") {
                break;
            }
        }
        std::thread::spawn(move || {
            let mut sink = String::new();
            let _ = out.read_to_string(&mut sink);
        });
        let Some(addr) = addr else {
            let _ = child.kill();
            let _ = child.wait();
            std::thread::sleep(Duration::from_millis(100));
            let log = stderr.lock().unwrap_or_else(|e| e.into_inner()).clone();
            panic!("ghapp proxy did not start: {log}");
        };
        ProxyProc {
            child,
            addr,
            metrics_addr: metrics,
            admin_url: admin,
            webhook_url: hooks,
            ca_path: dir.join("ca").join("ca.pem"),
            audit_path: audit,
            config_path: config,
            stderr,
        }
    }

    /// A sandbox's whole environment: the proxy and its CA, and nothing else of ghapp's.
    pub fn sandbox_env(
        &self,
        proxy: &ProxyProc,
        name: &str,
        secret: &str,
    ) -> Vec<(String, String)> {
        let home = self.path(&format!("sandbox-home-{name}"));
        std::fs::create_dir_all(&home).unwrap();
        let cfg = home.join("gitconfig");
        if !cfg.exists() {
            std::fs::write(&cfg, "").unwrap();
        }
        let mut env = fakehub::isolated_git_env(
            &std::env::var("PATH").unwrap_or_default(),
            &home,
            &cfg,
            &proxy.ca_path,
            "Sandbox Agent",
        );
        env.push((
            "HTTPS_PROXY".into(),
            format!("http://{name}:{secret}@{}", proxy.addr),
        ));
        env
    }
}

impl World {
    /// `env` (a sandbox's) with what gh needs behind the proxy: the emulator as `GH_HOST`, a
    /// placeholder token the proxy replaces, a config dir of its own, no prompts or colour,
    /// and the proxy's CA for Go's TLS.
    pub fn gh_env(
        &self,
        proxy: &ProxyProc,
        mut env: Vec<(String, String)>,
    ) -> Vec<(String, String)> {
        let config = self.path("gh-config");
        std::fs::create_dir_all(&config).unwrap();
        for (k, v) in [
            ("GH_HOST", self.hub.git_host()),
            ("GH_ENTERPRISE_TOKEN", GH_PLACEHOLDER.to_owned()),
            ("GH_CONFIG_DIR", config.display().to_string()),
            ("GH_NO_UPDATE_NOTIFIER", "1".to_owned()),
            ("GH_PROMPT_DISABLED", "1".to_owned()),
            ("NO_COLOR", "1".to_owned()),
            ("SSL_CERT_FILE", proxy.ca_path.display().to_string()),
        ] {
            env.push((k.to_owned(), v));
        }
        env
    }
}

/// The token gh is given in a sandbox: any value, which the proxy drops for its own.
pub const GH_PLACEHOLDER: &str = "placeholder-the-proxy-replaces";

/// An HTTP answer as a client read it.
#[derive(Debug, Clone)]
pub struct HttpAnswer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl HttpAnswer {
    /// The value of header `name` (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }
}

/// Reads one HTTP/1.1 answer: its head, then (with `body`; not for HEAD or a 200 to CONNECT)
/// its body by length, by chunks, or to the end of the connection.
pub fn read_answer(r: &mut impl std::io::Read, body: bool) -> std::io::Result<HttpAnswer> {
    let a = read_head(r)?;
    if body { read_body(r, a) } else { Ok(a) }
}

/// Reads up to and including the next `\r\n\r\n` (`\r\n` with `line`).
fn read_until_blank(r: &mut impl std::io::Read, line: bool) -> std::io::Result<Vec<u8>> {
    let end: &[u8] = if line { b"\r\n" } else { b"\r\n\r\n" };
    let mut buf = Vec::new();
    let mut one = [0u8; 1];
    while !buf.ends_with(end) {
        if r.read(&mut one)? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "connection closed after {:?}",
                    String::from_utf8_lossy(&buf)
                ),
            ));
        }
        buf.push(one[0]);
    }
    Ok(buf)
}

/// An answer's status line and headers.
pub fn read_head(r: &mut impl std::io::Read) -> std::io::Result<HttpAnswer> {
    let head = String::from_utf8_lossy(&read_until_blank(r, false)?).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok(HttpAnswer {
        status,
        head,
        body: String::new(),
    })
}

/// The body that follows `a`'s head.
fn read_body(r: &mut impl std::io::Read, mut a: HttpAnswer) -> std::io::Result<HttpAnswer> {
    let mut body = Vec::new();
    if let Some(n) = a
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        body.resize(n, 0);
        r.read_exact(&mut body)?;
    } else if a
        .header("transfer-encoding")
        .is_some_and(|v| v.contains("chunked"))
    {
        loop {
            let line = read_until_blank(r, true)?;
            let size = usize::from_str_radix(
                String::from_utf8_lossy(&line)
                    .trim()
                    .split(';')
                    .next()
                    .unwrap_or("0"),
                16,
            )
            .unwrap_or(0);
            let mut chunk = vec![0u8; size + 2];
            r.read_exact(&mut chunk)?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else {
        let _ = r.read_to_end(&mut body);
    }
    a.body = String::from_utf8_lossy(&body).into_owned();
    Ok(a)
}

/// A sandbox's own HTTPS connection through the proxy, byte for byte: `CONNECT`, then TLS
/// trusting only the proxy's CA. For requests no well-behaved client would send.
pub struct Tunnel {
    tls: rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>,
    host: String,
}

impl ProxyProc {
    /// Sends `CONNECT target` with these credentials; the status and the open socket.
    pub fn connect(
        &self,
        auth: Option<(&str, &str)>,
        target: &str,
    ) -> std::io::Result<(HttpAnswer, std::net::TcpStream)> {
        let mut s = std::net::TcpStream::connect(&self.addr)?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        s.set_write_timeout(Some(Duration::from_secs(30)))?;
        let mut req = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
        if let Some((n, p)) = auth {
            req.push_str(&format!(
                "Proxy-Authorization: {}\r\n",
                ghapp_gitproto::basic::encode(n, p)
            ));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes())?;
        // A 200 to CONNECT has no body.
        let a = read_head(&mut s)?;
        let a = if a.status == 200 {
            a
        } else {
            read_body(&mut s, a)?
        };
        Ok((a, s))
    }

    /// An open tunnel to `target` (`host:port` of the emulator) for sandbox `name`.
    pub fn tunnel(&self, name: &str, secret: &str, target: &str) -> Tunnel {
        let host = target.rsplit_once(':').map_or(target, |x| x.0);
        self.tunnel_as(name, secret, target, host, &self.ca_path)
            .unwrap_or_else(|e| panic!("a tunnel to {target}: {e}"))
    }

    /// A tunnel to `target` with TLS inside it for the name `sni`, trusting the CA
    /// certificates in `roots` (PEM): an error when the CONNECT is refused or the handshake
    /// fails.
    pub fn tunnel_as(
        &self,
        name: &str,
        secret: &str,
        target: &str,
        sni: &str,
        roots: &Path,
    ) -> Result<Tunnel, String> {
        let (a, mut tcp) = self
            .connect(Some((name, secret)), target)
            .map_err(|e| format!("CONNECT {target}: {e}"))?;
        if a.status != 200 {
            return Err(format!("CONNECT {target}: {a:?}"));
        }
        let mut store = rustls::RootCertStore::empty();
        let pem = std::fs::read(roots).map_err(|e| format!("{}: {e}", roots.display()))?;
        use rustls::pki_types::pem::PemObject;
        for c in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
            store.add(c.expect("CA PEM")).expect("CA");
        }
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(store)
            .with_no_client_auth();
        let server = rustls::pki_types::ServerName::try_from(sni.to_owned())
            .map_err(|e| format!("server name {sni}: {e}"))?;
        let mut conn =
            rustls::ClientConnection::new(std::sync::Arc::new(cfg), server).expect("TLS");
        // Finish the handshake now: a tunnel is open once TLS is up, not at the first request.
        while conn.is_handshaking() {
            conn.complete_io(&mut tcp)
                .map_err(|e| format!("TLS handshake for {sni} inside a tunnel to {target}: {e}"))?;
        }
        Ok(Tunnel {
            tls: rustls::StreamOwned::new(conn, tcp),
            host: target.to_owned(),
        })
    }
}

impl Tunnel {
    pub fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.tls.write_all(bytes)?;
        self.tls.flush()
    }

    /// Sends one request exactly as given (`target` unnormalised) with `Connection: close`
    /// and reads the answer.
    pub fn request(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<HttpAnswer> {
        let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {}\r\n", self.host);
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str(&format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        ));
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        self.write(&bytes)?;
        if method == "HEAD" {
            return read_answer(&mut self.tls, false);
        }
        self.answer()
    }

    /// A `GET` that leaves the tunnel open for the next one.
    pub fn get_keep_alive(&mut self, target: &str) -> std::io::Result<HttpAnswer> {
        let req = format!("GET {target} HTTP/1.1\r\nHost: {}\r\n\r\n", self.host);
        self.write(req.as_bytes())?;
        self.answer()
    }

    pub fn answer(&mut self) -> std::io::Result<HttpAnswer> {
        read_answer(&mut self.tls, true)
    }

    /// Reads raw bytes (0: the proxy closed the tunnel).
    pub fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::io::Read;
        self.tls.read(buf)
    }
}

/// A sandbox: git with only HTTPS_PROXY and the proxy's CA.
pub struct Sandbox<'a> {
    pub w: &'a World,
    pub env: Vec<(String, String)>,
}

impl<'a> Sandbox<'a> {
    /// Sandbox `name` presenting `secret` to the proxy `p`.
    pub fn new(w: &'a World, p: &ProxyProc, name: &str, secret: &str) -> Sandbox<'a> {
        Sandbox {
            w,
            env: w.sandbox_env(p, name, secret),
        }
    }
    pub fn git(&self, dir: &Path, args: &[&str]) -> Run {
        self.w.cmd("git").env(&self.env).args(args).dir(dir).run()
    }
    pub fn clone(&self, owner: &str, repo: &str, dest: &str, extra: &[&str]) -> Run {
        let url = self.w.hub.repo_url(owner, repo);
        let mut args = vec!["clone", "--quiet"];
        args.extend_from_slice(extra);
        args.push(&url);
        args.push(dest);
        self.git(self.w.root.path(), &args)
    }
    /// On a new `branch`: commits `name`, pushes it, and checks the emulator has that commit.
    #[track_caller]
    pub fn push_new_branch(&self, dir: &Path, branch: &str, name: &str, text: &[u8]) {
        self.git(dir, &["switch", "--quiet", "-c", branch]).ok();
        self.commit(dir, name, text);
        let head = self
            .git(dir, &["rev-parse", "HEAD"])
            .ok()
            .stdout
            .trim()
            .to_owned();
        self.git(dir, &["push", "--quiet", "origin", branch]).ok();
        let refname = format!("refs/heads/{branch}");
        assert_eq!(self.w.hub_ref("octo-org", "widgets", &refname), Some(head));
    }

    pub fn commit(&self, dir: &Path, name: &str, text: &[u8]) {
        std::fs::write(dir.join(name), text).unwrap();
        self.git(dir, &["add", name]).ok();
        self.git(dir, &["commit", "--quiet", "-m", &format!("Add {name}")])
            .ok();
    }
}
