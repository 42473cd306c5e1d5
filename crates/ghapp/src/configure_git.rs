//! `ghapp configure-git`: route a host's HTTPS credentials to git-credential-ghapp, or undo it.
//!
//! Writes `credential.https://HOST.helper` as an empty value (which resets any helper list
//! inherited from system or earlier config, so no other helper answers first) followed by
//! `ghapp`, and `credential.https://HOST.useHttpPath true` (so git sends the repository path and
//! each token is narrowed to that repository). Idempotent. `--unset` removes exactly those
//! entries and leaves anything else alone. The user's global config by default; `--local` (the
//! repository's) or `--file PATH` for a runner that must not touch the global one.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// Which git config file is written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Scope {
    /// `git config --global`.
    #[default]
    Global,
    /// `git config --local`: the repository in the current directory.
    Local,
    /// `git config --file PATH`.
    File(PathBuf),
}

impl Scope {
    fn args(&self) -> Vec<String> {
        match self {
            Scope::Global => vec!["--global".into()],
            Scope::Local => vec!["--local".into()],
            Scope::File(p) => vec!["--file".into(), p.display().to_string()],
        }
    }
}

/// Runs `git config SCOPE ARGS` with `env` added.
struct GitConfig<'a> {
    scope: Vec<String>,
    env: &'a [(String, String)],
}

impl GitConfig<'_> {
    fn run(&self, args: &[&str]) -> Result<std::process::Output> {
        let mut cmd = Command::new("git");
        cmd.arg("config").args(&self.scope).args(args);
        for (k, v) in self.env {
            cmd.env(k, v);
        }
        cmd.output()
            .with_context(|| "cannot run git: is it installed and on PATH?")
    }

    /// A change that must succeed.
    fn change(&self, args: &[&str]) -> Result<()> {
        let o = self.run(args)?;
        if !o.status.success() {
            bail!(
                "git config {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&o.stderr).trim()
            );
        }
        Ok(())
    }

    fn get_all(&self, key: &str) -> Result<Vec<String>> {
        let out = self.run(&["--get-all", key])?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect())
    }
}

/// The two keys configure-git owns for `host`.
fn keys(host: &str) -> Result<(String, String)> {
    if host.is_empty() || host.contains(['/', ' ', '\n']) {
        bail!(crate::Usage(format!(
            "--host {host:?} is not a host name (HOST or HOST:PORT)"
        )));
    }
    Ok((
        format!("credential.https://{host}.helper"),
        format!("credential.https://{host}.useHttpPath"),
    ))
}

/// The helper entries configure-git writes.
const OURS: [&str; 2] = ["", "ghapp"];

/// Applies the configuration; `env` is added to each `git` invocation (the demo and tests point
/// `GIT_CONFIG_GLOBAL` at a file). Returns what it did.
pub fn configure_git(host: &str, env: &[(String, String)], scope: &Scope) -> Result<Vec<String>> {
    let (helper_key, path_key) = keys(host)?;
    let git = GitConfig {
        scope: scope.args(),
        env,
    };
    let mut done = Vec::new();
    let current = git.get_all(&helper_key)?;
    if current == OURS {
        done.push(format!("{helper_key} already routes to ghapp"));
    } else {
        if !current.is_empty() {
            git.change(&["--unset-all", &helper_key])?;
        }
        for value in OURS {
            git.change(&["--add", &helper_key, value])?;
        }
        done.push(format!("set {helper_key} to '' then ghapp"));
    }
    if git.get_all(&path_key)? == ["true"] {
        done.push(format!("{path_key} already true"));
    } else {
        git.change(&[&path_key, "true"])?;
        done.push(format!("set {path_key} to true"));
    }
    Ok(done)
}

/// Removes exactly what [`configure_git`] writes; entries someone else wrote stay.
pub(crate) fn unconfigure_git(
    host: &str,
    env: &[(String, String)],
    scope: &Scope,
) -> Result<Vec<String>> {
    let (helper_key, path_key) = keys(host)?;
    let git = GitConfig {
        scope: scope.args(),
        env,
    };
    let mut done = Vec::new();
    let helpers = git.get_all(&helper_key)?;
    if helpers == OURS {
        git.change(&["--unset-all", &helper_key])?;
        done.push(format!("removed {helper_key}"));
    } else if helpers.is_empty() {
        done.push(format!("{helper_key} is not set"));
    } else {
        done.push(format!(
            "left {helper_key} alone: it is {helpers:?}, not what configure-git writes"
        ));
    }
    if git.get_all(&path_key)? == ["true"] {
        git.change(&["--unset-all", &path_key])?;
        done.push(format!("removed {path_key}"));
    }
    Ok(done)
}
