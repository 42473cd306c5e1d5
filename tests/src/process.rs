//! Running commands: a [`Cmd`] built from a world and its [`Run`], bounded in time; the
//! built binaries; curl straight to a local listener.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::World;

/// `curl -s --noproxy '*' ARGS` straight to a local listener (the admin API, the webhooks, the
/// metrics): what it printed.
pub fn curl_local<S: AsRef<std::ffi::OsStr>>(args: impl IntoIterator<Item = S>) -> String {
    crate::needs("curl");
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
    for b in WORLD_BINS {
        assert!(
            dir.join(b).is_file(),
            "{b} is not built in {}: run the suite with `cargo test --workspace`",
            dir.display()
        );
    }
    dir
}

/// The binaries a [`crate::World`] runs (each its package's name).
const WORLD_BINS: [&str; 4] = ["git-credential-ghapp", "ghapp", "gh-pr", "ghapp-emulator"];

/// Builds the release binaries a benchmark's [`crate::World`] runs, then `more`
/// (`(package, binary)` pairs); a no-op when they are up to date. Benchmarks call it first:
/// `cargo bench` builds only this package.
pub fn build_release_bins(more: &[(&str, &str)]) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // One build per package, as `cargo install` would: built together, features unify and the
    // lean helper would be linked against ghapp-core with its `mint` feature.
    let world = WORLD_BINS.iter().map(|b| (*b, *b));
    for (package, bin) in world.chain(more.iter().copied()) {
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
    pub(crate) world: &'w World,
    pub(crate) program: String,
    pub(crate) args: Vec<String>,
    pub(crate) dir: PathBuf,
    pub(crate) stdin: String,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) scan_stdout: bool,
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
