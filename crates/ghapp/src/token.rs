//! `ghapp token`: an installation token for one repository (for scripts and CI), or the
//! fallback personal access token where no app serves the owner.

#![expect(
    clippy::print_stderr,
    reason = "a command: stderr carries its warnings"
)]

use crate::out::outln;
use std::process::ExitCode;

use anyhow::Result;
use ghapp_core::broker::{Permissions, TokenRequest};
use ghapp_core::config::Config;
use ghapp_core::resolve::{Credential, Obtain, obtain_blocking};

use crate::cli::TokenArgs;
use crate::parse_repo;

pub(crate) fn run(args: &TokenArgs) -> Result<ExitCode> {
    let repo = parse_repo(&args.repo)?;
    // Defaults are a ceiling fitted to the installation; explicit permissions are a demand.
    let req = if args.permissions.is_empty() {
        TokenRequest::for_repo(&repo)
    } else {
        let permissions = args
            .permissions
            .iter()
            .map(|p| {
                Permissions::parse_pair(p)
                    .map_err(|e| crate::Usage(format!("--permission {e}")).into())
            })
            .collect::<Result<Permissions>>()?;
        TokenRequest::exactly(&repo, permissions)
    };
    let cfg = Config::load(&args.app.overrides())?;
    ghapp_core::log::init("ghapp");
    let resolution = cfg.resolve(None, Some(repo.owner()));
    if matches!(resolution, ghapp_core::resolve::Resolution::Nothing) {
        cfg.primary()?;
        anyhow::bail!(
            "no configured GitHub App or personal access token serves {}: add it to an app's owners, or install an app for it",
            repo.owner()
        );
    }
    // An operator asking directly: a remembered "not installed" is not believed.
    let how = Obtain {
        skip_negative_cache: true,
        ..Obtain::default()
    };
    let t = match obtain_blocking(&cfg, &resolution, &req, how)? {
        Credential::Installation { token, .. } => {
            if let Some(note) = crate::narrowed(&req, &token) {
                eprintln!("ghapp: note: {note}");
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
                repo.owner(),
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
        let owner = repo.owner();
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
