//! `ghapp configure-git`: route a host's HTTPS credentials to git-credential-ghapp.
//!
//! Writes `credential.https://HOST.helper` as an empty value (which resets any helper list
//! inherited from system or earlier config, so no other helper answers first) followed by
//! `ghapp`, and `credential.https://HOST.useHttpPath true` (so git sends the repository path and
//! each token is narrowed to that repository). Idempotent.

use std::process::Command;

use anyhow::{Context, Result, bail};

/// Applies the configuration to the user's global git config; `env` is added to each `git`
/// invocation (the demo and tests point `GIT_CONFIG_GLOBAL` at a file). Returns what it did.
pub fn configure_git(host: &str, env: &[(String, String)]) -> Result<Vec<String>> {
    if host.is_empty() || host.contains(['/', ' ', '\n']) {
        bail!("--host {host:?} is not a host name (HOST or HOST:PORT)");
    }
    let git = |args: &[&str]| -> Result<std::process::Output> {
        let mut cmd = Command::new("git");
        cmd.args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output()
            .with_context(|| "cannot run git: is it installed and on PATH?")
    };
    let helper_key = format!("credential.https://{host}.helper");
    let path_key = format!("credential.https://{host}.useHttpPath");
    let mut done = Vec::new();

    let out = git(&["config", "--global", "--get-all", &helper_key])?;
    let current: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    if current == ["", "ghapp"] {
        done.push(format!("{helper_key} already routes to ghapp"));
    } else {
        if !current.is_empty() {
            let o = git(&["config", "--global", "--unset-all", &helper_key])?;
            if !o.status.success() {
                bail!(
                    "git config --unset-all {helper_key} failed: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
            }
        }
        for value in ["", "ghapp"] {
            let o = git(&["config", "--global", "--add", &helper_key, value])?;
            if !o.status.success() {
                bail!(
                    "git config --add {helper_key} failed: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
            }
        }
        done.push(format!("set {helper_key} to '' then ghapp"));
    }
    let out = git(&["config", "--global", "--get", &path_key])?;
    if String::from_utf8_lossy(&out.stdout).trim() == "true" {
        done.push(format!("{path_key} already true"));
    } else {
        let o = git(&["config", "--global", &path_key, "true"])?;
        if !o.status.success() {
            bail!(
                "git config {path_key} failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            );
        }
        done.push(format!("set {path_key} to true"));
    }
    Ok(done)
}
