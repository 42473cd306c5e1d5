//! `ghapp token`: an installation token for one repository (for scripts and CI), or the
//! fallback personal access token where no app serves the owner.

#![expect(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command: stdout carries its output, stderr its warnings"
)]

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{Result, bail};
use ghapp_core::broker::{Broker, TokenRequest, default_permissions};
use ghapp_core::config::Config;

use crate::cli::TokenArgs;
use crate::context::runtime;
use crate::{Cli, ghapp_gitproto_repo};

fn parse_permissions(list: &[String]) -> Result<BTreeMap<String, String>> {
    if list.is_empty() {
        return Ok(default_permissions());
    }
    let mut out = BTreeMap::new();
    for p in list {
        let Some((name, level)) = p.split_once('=') else {
            bail!("--permission {p:?} is not NAME=LEVEL: e.g. --permission contents=read");
        };
        if !matches!(level, "read" | "write" | "admin") {
            bail!("--permission {p:?}: the level must be read, write or admin");
        }
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
            bail!(
                "--permission {p:?}: the name must be a GitHub permission such as contents or pull_requests"
            );
        }
        out.insert(name.to_owned(), level.to_owned());
    }
    Ok(out)
}

pub(crate) fn run(cli: &Cli, args: &TokenArgs) -> Result<ExitCode> {
    let (repo, permissions, json) = (&args.repo, &args.permissions, args.json);
    let Some((owner, name)) = ghapp_gitproto_repo(repo) else {
        bail!("--repo {repo:?} is not OWNER/REPO");
    };
    // Defaults are a ceiling fitted to the installation; explicit permissions are a demand.
    let fit_permissions = permissions.is_empty();
    let permissions = parse_permissions(permissions)?;
    let cfg = Config::load(&cli.overrides())?;
    ghapp_core::log::init("ghapp");
    // The fallback token for this owner: on the app's host, or (no app) on any host.
    let pat_for = |host: Option<&str>| match host {
        Some(h) => cfg.pat_for(h, Some(&owner)),
        None => cfg.pats.iter().find(|p| p.serves_owner(Some(&owner))),
    };
    let app = cfg
        .apps
        .iter()
        .find(|a| a.owners.is_empty() || a.owners.iter().any(|o| o.eq_ignore_ascii_case(&owner)))
        .cloned();
    let app = match (app, pat_for(None)) {
        (Some(a), _) => a,
        (None, Some(pat)) => {
            let why = "no GitHub App is configured for it";
            return print_pat(pat, &owner, why, fit_permissions, json);
        }
        (None, None) => cfg.primary()?.clone(),
    };
    let rt = runtime()?;
    let req = TokenRequest {
        owner: Some(owner.clone()),
        repositories: vec![name],
        permissions,
        fit_permissions,
    };
    let git_host = app.git_host.clone();
    let minted = rt.block_on(async {
        let broker = Broker::new(app, cfg.refresh_margin, &cfg.cache_dir)?.without_negative_cache();
        broker.token(&req).await
    });
    drop(rt);
    let t = match (minted, pat_for(Some(&git_host))) {
        (Ok(t), _) => t,
        (Err(ghapp_core::Error::NotInstalled { .. }), Some(pat)) => {
            let why = "the app is not installed on it";
            return print_pat(pat, &owner, why, fit_permissions, json);
        }
        (Err(e), _) => return Err(e.into()),
    };
    if json {
        let expires = humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.expires_at),
        )
        .to_string();
        let v = serde_json::json!({
            "token": t.token.expose(),
            "expires_at": expires,
            "repositories": t.repositories.iter().map(|r| format!("{owner}/{r}")).collect::<Vec<_>>(),
            "permissions": t.permissions,
            "installation_id": t.installation_id,
        });
        println!("{v}");
    } else {
        println!("{}", t.token.expose());
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints the fallback personal access token, saying on stderr why it answered.
fn print_pat(
    pat: &ghapp_core::config::PatConfig,
    owner: &str,
    why: &str,
    default_permissions: bool,
    json: bool,
) -> Result<ExitCode> {
    if !default_permissions {
        bail!(
            "{owner}: {why}, and the fallback personal access token cannot be narrowed to --permission: install the app, or drop --permission"
        );
    }
    let (token, warnings) = pat.source.load()?;
    for w in warnings {
        eprintln!("ghapp: warning: {w}");
    }
    eprintln!(
        "ghapp: note: {owner}: {why}; printed the fine-grained personal access token from {}",
        pat.source.describe()
    );
    if json {
        let v = serde_json::json!({
            "token": token.expose(),
            "source": "personal_access_token",
            "expires_at": null,
        });
        println!("{v}");
    } else {
        println!("{}", token.expose());
    }
    Ok(ExitCode::SUCCESS)
}
