//! `ghapp token`: an installation token for repositories of one owner, or all of an owner's
//! installation (for scripts and CI), or the fallback personal access token where no app
//! serves the owner.

#![expect(
    clippy::print_stderr,
    reason = "a command: stderr carries its warnings"
)]

use std::process::ExitCode;

use anyhow::Result;
use ghapp_core::broker::{Permissions, TokenRequest};
use ghapp_core::config::Config;
use ghapp_core::resolve::{Credential, Obtain, obtain_blocking};

use crate::cli::TokenArgs;
use crate::out::outln;
use crate::parse_repo;

pub(crate) fn run(args: &TokenArgs) -> Result<ExitCode> {
    let (owner, repositories) = scope(args)?;
    // Defaults are a ceiling fitted to the installation; explicit permissions are a demand.
    let mut req = TokenRequest {
        owner: Some(owner.clone()),
        repositories,
        ..TokenRequest::whole_installation()
    };
    if !args.permissions.is_empty() {
        req.permissions = args
            .permissions
            .iter()
            .map(|p| {
                Permissions::parse_pair(p)
                    .map_err(|e| crate::Usage(format!("--permission {e}")).into())
            })
            .collect::<Result<Permissions>>()?;
        req.fit = false;
    }
    let cfg = Config::load(&args.app.overrides())?;
    ghapp_core::log::init("ghapp");
    let resolution = cfg.resolve(None, Some(&owner));
    if matches!(resolution, ghapp_core::resolve::Resolution::Nothing) {
        cfg.primary()?;
        anyhow::bail!(
            "no configured GitHub App or personal access token serves {owner}: add it to an app's owners, or install an app for it"
        );
    }
    // An operator asking directly: a remembered "not installed" is not believed.
    let how = Obtain {
        skip_negative_cache: true,
        ..Obtain::default()
    };
    let t = match obtain_blocking(&cfg, &resolution, &req, how)? {
        Credential::Installation { token, minted } => {
            if minted && let Some(note) = crate::narrowed(&req, &token) {
                eprintln!("ghapp: note: {note}");
            }
            // A cached token must not hide a key that can no longer mint: an operator asking
            // directly learns now, not when the cache runs out.
            if !minted && let ghapp_core::resolve::Resolution::App { app, .. } = &resolution {
                ghapp_core::broker::Broker::new((*app).clone(), cfg.refresh_margin, &cfg.cache_dir)
                    .and_then(|b| b.load_key_now())
                    .map_err(|e| {
                        anyhow::anyhow!(
                            "{e} (a cached token is still valid, but no new one can be minted: fix the key{})",
                            app.sources.of("key")
                        )
                    })?;
            }
            token
        }
        Credential::Pat {
            token,
            from,
            reason,
            warnings,
        } => {
            for w in warnings {
                eprintln!("ghapp: warning: {w}");
            }
            eprintln!(
                "ghapp: note: {}: {}; printed the fine-grained personal access token from {}",
                owner,
                reason.describe(),
                from.source.describe()
            );
            print_pat(&token, args.json);
            return Ok(ExitCode::SUCCESS);
        }
    };
    if args.json {
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
        outln!("{v}");
    } else {
        outln!("{}", t.token.expose());
    }
    Ok(ExitCode::SUCCESS)
}

/// The owner and repository names asked for: `--repo` (repeatable, one owner) or `--owner`.
fn scope(args: &TokenArgs) -> Result<(String, Vec<String>)> {
    if let Some(owner) = &args.owner {
        if !ghapp_gitproto::credential::valid_name(owner) {
            return Err(
                crate::Usage(format!("--owner {owner:?} is not a GitHub account name")).into(),
            );
        }
        return Ok((owner.clone(), Vec::new()));
    }
    let repos = args
        .repo
        .iter()
        .map(|r| parse_repo(r))
        .collect::<Result<Vec<_>>>()?;
    let first = repos.first().expect("clap requires --repo or --owner");
    if let Some(other) = repos.iter().find(|r| !r.is_owned_by(first.owner())) {
        return Err(crate::Usage(format!(
            "--repo {first} and --repo {other} have different owners: a token belongs to one installation, so ask for one token per owner"
        ))
        .into());
    }
    Ok((
        first.owner().to_owned(),
        repos.iter().map(|r| r.repo().to_owned()).collect(),
    ))
}

/// Prints the fallback personal access token.
fn print_pat(token: &ghapp_core::secret::PersonalAccessToken, json: bool) {
    if json {
        let v = serde_json::json!({
            "token": token.expose(),
            "source": "personal_access_token",
            "expires_at": null,
        });
        outln!("{v}");
    } else {
        outln!("{}", token.expose());
    }
}
