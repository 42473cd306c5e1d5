//! `ghapp emulator` and `ghapp demo`, run by `ghapp-emulator`: the GitHub emulator (fakehub, its
//! GraphQL schema and parser) is not part of the `ghapp` that is deployed. Which binary runs:
//!
//! - under `cargo run` (cargo sets `CARGO` and `CARGO_MANIFEST_DIR`), `ghapp-emulator` is built
//!   first with the same profile, so `cargo run -p ghapp -- demo` works from a fresh clone and
//!   never runs a stale copy;
//! - otherwise the `ghapp-emulator` beside this binary, then one on `PATH`;
//! - otherwise a one-line error says how to get it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};

use crate::cli::EmulatorArgs;

/// The emulator's binary name.
pub const PROGRAM: &str = "ghapp-emulator";

impl EmulatorArgs {
    /// These arguments as `ghapp-emulator emulator` takes them.
    pub fn to_args(&self) -> Vec<OsString> {
        let mut v: Vec<OsString> = vec![
            "emulator".into(),
            "--port".into(),
            self.port.to_string().into(),
            "--token-ttl".into(),
            self.token_ttl.to_string().into(),
        ];
        if let Some(d) = &self.dir {
            v.extend(["--dir".into(), d.clone().into_os_string()]);
        }
        if let Some(h) = &self.hostname {
            v.extend(["--hostname".into(), h.into()]);
        }
        v
    }
}

/// Runs `ghapp-emulator ARGS` in place of this process and answers with its exit status.
pub(crate) fn delegate(args: Vec<OsString>) -> Result<ExitCode> {
    let exe = std::env::current_exe().context("cannot find the ghapp binary")?;
    let dir = exe.parent().unwrap_or(Path::new("."));
    if let (Some(cargo), Some(manifest)) = (
        std::env::var_os("CARGO"),
        std::env::var_os("CARGO_MANIFEST_DIR"),
    ) {
        build_beside(&cargo, Path::new(&manifest), dir)?;
    }
    let program = find(dir).ok_or_else(|| {
        anyhow::anyhow!(
            "{PROGRAM} is not installed: it runs `ghapp emulator` and `ghapp demo` and is left out of deployed builds; from a source checkout run `cargo run -p ghapp -- demo`, or install it with `cargo install --locked --path crates/{PROGRAM}`"
        )
    })?;
    let mut cmd = Command::new(&program);
    cmd.args(args);
    run_in_place(cmd, &program)
}

/// Replaces this process with `cmd`: a signal meant for `ghapp emulator` (a supervisor's
/// SIGTERM, SIGKILL) then reaches the emulator, which a child would outlive.
#[cfg(unix)]
fn run_in_place(mut cmd: Command, program: &Path) -> Result<ExitCode> {
    use std::os::unix::process::CommandExt;
    let e = cmd.exec();
    bail!("cannot run {}: {e}", program.display())
}

/// Elsewhere: as a child, answering with its exit status.
#[cfg(not(unix))]
fn run_in_place(mut cmd: Command, program: &Path) -> Result<ExitCode> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {}", program.display()))?;
    Ok(match status.code() {
        Some(c) => ExitCode::from(u8::try_from(c).unwrap_or(1)),
        // Ended by a signal (Ctrl-C on the emulator): as a shell reports it.
        None => ExitCode::from(130),
    })
}

fn find(dir: &Path) -> Option<PathBuf> {
    let beside = dir.join(PROGRAM);
    if beside.is_file() {
        return Some(beside);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(PROGRAM))
        .find(|f| f.is_file())
}

/// `cargo build -p ghapp-emulator` into `dir` (`target/PROFILE`), the profile read from it.
fn build_beside(cargo: &std::ffi::OsStr, manifest_dir: &Path, dir: &Path) -> Result<()> {
    let workspace = manifest_dir.join("../../Cargo.toml");
    if !workspace.is_file() {
        return Ok(());
    }
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "-p", PROGRAM, "--manifest-path"])
        .arg(&workspace);
    match dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => {}
        Some("release") => {
            cmd.arg("--release");
        }
        Some(profile) => {
            cmd.args(["--profile", profile]);
        }
    }
    let st = cmd
        .status()
        .context("cannot run cargo to build ghapp-emulator")?;
    if !st.success() {
        bail!("building {PROGRAM} failed (cargo said why above)");
    }
    Ok(())
}
