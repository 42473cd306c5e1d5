//! The tools some tests drive beyond Rust, a C compiler and git: a test that needs one the
//! machine lacks is skipped, said in one line and counted in the runner's summary, unless `CI`
//! or `GHAPP_TEST_ALL=1` is set, where it fails naming the tool and its Debian package.
//! `GHAPP_TEST_BARE=1` hides every one of them, as a machine without them would (CI runs the
//! suite so once, to show this tier passes).

use std::path::PathBuf;

/// A test was skipped: it needs this tool (the panic payload [`needs`] unwinds with).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Skip(pub &'static str);

/// A tool a test may need.
#[derive(Debug, Clone, Copy)]
pub struct Tool {
    /// How tests and the summary name it.
    pub name: &'static str,
    /// The Debian package that brings it.
    pub package: &'static str,
    /// The programs that must be there (on `PATH`, or where [`Tool::find`] looks).
    programs: &'static [&'static str],
}

/// Every optional tool, by name.
pub(crate) const TOOLS: &[Tool] = &[
    Tool {
        name: "curl",
        package: "curl",
        programs: &["curl"],
    },
    Tool {
        name: "gh",
        package: "gh",
        programs: &["gh"],
    },
    Tool {
        name: "git-lfs",
        package: "git-lfs",
        programs: &["git-lfs"],
    },
    Tool {
        name: "pygithub",
        package: "python3-github",
        programs: &["python3"],
    },
    Tool {
        name: "postgresql",
        package: "postgresql",
        programs: &["initdb", "pg_ctl"],
    },
    Tool {
        name: "chromium",
        package: "chromium chromium-driver",
        programs: &["chromium", "chromedriver"],
    },
    Tool {
        name: "prlimit",
        package: "util-linux",
        programs: &["prlimit"],
    },
    Tool {
        name: "openssl",
        package: "openssl",
        programs: &["openssl"],
    },
    Tool {
        name: "softhsm2",
        package: "softhsm2 opensc",
        programs: &["softhsm2-util", "pkcs11-tool"],
    },
    Tool {
        name: "node",
        package: "nodejs",
        programs: &["node"],
    },
    Tool {
        name: "root",
        package: "(run as root: mount needs it)",
        programs: &[],
    },
];

/// Every `program` on `PATH`, in order.
fn on_path(program: &str) -> impl Iterator<Item = PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .filter(|f| f.is_file())
        .collect::<Vec<_>>()
        .into_iter()
}

/// Whether a missing tool fails the run instead of skipping (`CI` or `GHAPP_TEST_ALL=1`).
pub fn strict() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
        || std::env::var("GHAPP_TEST_ALL").is_ok_and(|v| v == "1")
}

fn bare() -> bool {
    std::env::var("GHAPP_TEST_BARE").is_ok_and(|v| v == "1")
}

impl Tool {
    /// The tool named `name`.
    pub fn named(name: &str) -> Option<&'static Tool> {
        TOOLS.iter().find(|t| t.name == name)
    }

    /// The tool a program belongs to, if it is an optional one.
    pub fn of_program(program: &str) -> Option<&'static Tool> {
        let base = program.rsplit('/').next().unwrap_or(program);
        TOOLS.iter().find(|t| t.programs.contains(&base))
    }

    /// Where `program` of this tool is: on `PATH` (PyGithub: the python3 that imports it), or (PostgreSQL's server, which Debian keeps
    /// off `PATH`) in `/usr/lib/postgresql/*/bin`.
    pub fn find(&self, program: &str) -> Option<PathBuf> {
        if bare() {
            return None;
        }
        if self.name == "pygithub" {
            // The python3 that has the module: a pyenv or venv first on PATH may not.
            return on_path(program)
                .chain([PathBuf::from("/usr/bin").join(program)])
                .find(|py| {
                    std::process::Command::new(py)
                        .args(["-c", "import github"])
                        .stdout(std::process::Stdio::null())
                        .stderr(std::process::Stdio::null())
                        .status()
                        .is_ok_and(|s| s.success())
                });
        }
        on_path(program).next().or_else(|| {
            (self.name == "postgresql")
                .then(|| {
                    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
                        .ok()?
                        .flatten()
                        .map(|e| e.path().join("bin"))
                        .collect();
                    dirs.sort();
                    dirs.into_iter()
                        .rev()
                        .map(|d| d.join(program))
                        .find(|f| f.is_file())
                })
                .flatten()
        })
    }

    /// Whether the machine has it.
    pub fn present(&self) -> bool {
        if bare() {
            return false;
        }
        match self.name {
            "root" => rustix_euid_is_root(),
            _ => self.programs.iter().all(|p| self.find(p).is_some()),
        }
    }
}

fn rustix_euid_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// The test needs `name` (one of [`TOOLS`]): returns when the machine has it; else skips the
/// test (unwinding with [`Skip`]), or fails it under [`strict`].
pub fn needs(name: &str) {
    let tool = Tool::named(name).unwrap_or_else(|| panic!("no tool named {name}"));
    if tool.present() {
        return;
    }
    if strict() {
        panic!(
            "this test needs {} (Debian: {}), which this machine lacks; CI and GHAPP_TEST_ALL=1 run every test",
            tool.name, tool.package
        );
    }
    std::panic::panic_any(Skip(tool.name));
}
