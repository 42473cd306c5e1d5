//! The operator's CLI: `setup`, `token`, `doctor`, `installations`, `hooks`, `revoke`,
//! `configure-git`, `proxy`, `emulator`, `demo`.
//!
//! Exit codes: 0 success; 1 an operation failed (the message says why and what to do);
//! 2 bad usage.

#![expect(clippy::print_stderr, reason = "a CLI: stderr carries one-line errors")]

mod app_api;
mod cli;
mod config_edit;
mod configure_git;
mod context;
mod doctor;
pub mod emulator;
pub mod out;
mod revoke;
mod sandbox;
mod servers;
mod setup;
mod token;

use std::process::ExitCode;

use anyhow::Result;
use ghapp_core::config::Config;
use ghapp_gitproto::repo::RepoName;

use cli::Command;
pub use cli::{Cli, EmulatorArgs};
pub use configure_git::configure_git;
use out::outln;

/// Runs the credential helper, minting in process, when this binary was invoked under the
/// helper's name (a link named `git-credential-ghapp`); `None` otherwise. `ghapp` and
/// `ghapp-emulator` both answer so.
pub fn helper_if_so_named() -> Option<ExitCode> {
    let mut args = std::env::args();
    let argv0 = args.next().unwrap_or_default();
    let named = std::path::Path::new(&argv0)
        .file_name()
        .is_some_and(|n| n == git_credential_ghapp::PROGRAM);
    named.then(|| {
        let rest: Vec<String> = args.collect();
        git_credential_ghapp::run(
            &rest,
            &mut std::io::stdin().lock(),
            &mut std::io::stdout().lock(),
            &mut std::io::stderr().lock(),
            &mut mint_in_process,
        )
    })
}

/// The helper's cache miss, minted here: logging and ghapp-core's one credential resolution.
pub fn mint_in_process(
    miss: &git_credential_ghapp::Miss<'_>,
) -> std::result::Result<git_credential_ghapp::Minted, String> {
    use ghapp_core::resolve::{Credential, Obtain, obtain_blocking};
    use git_credential_ghapp::Minted;
    ghapp_core::log::init(git_credential_ghapp::PROGRAM);
    match obtain_blocking(miss.cfg, &miss.resolution, miss.request, Obtain::default()) {
        Ok(Credential::Installation { token, minted }) => {
            if minted && let Some(short) = narrowed(miss.request, &token) {
                // Once per token: a cached answer says nothing.
                eprintln!("{}: note: {short}", git_credential_ghapp::PROGRAM);
            }
            Ok(Minted::Token(token))
        }
        Ok(Credential::Pat { token, .. }) => Ok(Minted::Pat(token)),
        Err(e) => Err(e.to_string()),
    }
}

/// The note for a token fitted to a narrower grant than the default request, naming what
/// will not work (a push, with only `contents: read`) and the fix.
fn narrowed(
    req: &ghapp_core::broker::TokenRequest,
    token: &ghapp_core::cache::CachedToken,
) -> Option<String> {
    if !req.fit {
        return None;
    }
    let short = req.shortfall(&token.permissions)?;
    let owner = req.owner.as_deref().unwrap_or("this installation");
    Some(format!(
        "the installation on {owner} grants less than asked ({short}): this token can read but a push or pull request will be refused; grant the permissions in the app's settings and accept them on the installation"
    ))
}

/// Parses the process arguments and runs; prints errors once.
pub fn main() -> ExitCode {
    let cli = <Cli as clap::Parser>::parse();
    run(cli).unwrap_or_else(report)
}

/// An error as `ghapp` reports it: one line on stderr, its causes joined; exit 2 for bad usage,
/// else 1.
pub fn report(e: anyhow::Error) -> ExitCode {
    let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
    eprintln!("ghapp: {}", chain.join(": ").replace('\n', " "));
    if e.downcast_ref::<Usage>().is_some() {
        ExitCode::from(2)
    } else {
        ExitCode::FAILURE
    }
}

pub fn run(cli: Cli) -> Result<ExitCode> {
    match &cli.command {
        Command::Token(args) => token::run(args),
        Command::ConfigureGit(args) => {
            let host = match &args.host {
                Some(h) => h.clone(),
                None => Config::load(&args.app.overrides())
                    .ok()
                    .and_then(|c| c.apps.first().map(|a| a.git_host().to_owned()))
                    .unwrap_or_else(|| "github.com".into()),
            };
            let scope = match (&args.file, args.local) {
                (Some(f), _) => configure_git::Scope::File(f.clone()),
                (None, true) => configure_git::Scope::Local,
                (None, false) => configure_git::Scope::Global,
            };
            let done = if args.unset {
                configure_git::unconfigure_git(&host, &[], &scope)?
            } else {
                configure_git(&host, &[], &scope)?
            };
            for line in done {
                outln!("{line}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Emulator(args) => emulator::delegate(args.to_args()),
        Command::Proxy(args) => servers::proxy(args),
        Command::Demo => emulator::delegate(vec!["demo".into()]),
        Command::Sandbox(args) => sandbox::run(args),
        Command::Approvals(args) => sandbox::approvals(args),
        Command::Proposals(args) => sandbox::proposals(args),
        Command::Notify(args) => servers::notify(args),
        // Only the file and the host mean something to setup: it makes the app the other
        // flags would name.
        Command::Setup(args) => setup::run(
            args,
            &ghapp_core::config::Overrides {
                config_file: args.config.clone(),
                api_url: args.api_url.clone(),
                ..Default::default()
            },
        ),
        Command::Doctor(args) => {
            let repo = args.repo.as_deref().map(parse_repo).transpose()?;
            doctor::run(&args.app.overrides(), repo, args.host.clone(), args.json)
        }
        Command::Installations { json, app } => app_api::installations(app, None, *json),
        Command::Installation { id, json, app } => app_api::installations(app, Some(*id), *json),
        Command::Revoke { all, app } => revoke::run(app, *all),
        Command::Hooks { command, app } => app_api::hooks(app, command),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut buf = Vec::new();
            clap_complete::generate(*shell, &mut cmd, "ghapp", &mut buf);
            out::bytes(&buf);
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { dir } => man(dir.as_deref()),
    }
}

/// Bad usage, found by the command rather than by clap: one line, exit status 2 (as clap's).
#[derive(Debug)]
pub(crate) struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// `--repo OWNER/REPO` (`.git` allowed), as GitHub names them.
fn parse_repo(s: &str) -> Result<RepoName> {
    RepoName::parse(s).ok_or_else(|| {
        Usage(format!(
            "--repo {s:?} is not OWNER/REPO: e.g. --repo octo-org/widgets"
        ))
        .into()
    })
}

fn man(dir: Option<&std::path::Path>) -> Result<ExitCode> {
    let cmd = <Cli as clap::CommandFactory>::command();
    let Some(dir) = dir else {
        let mut buf = Vec::new();
        clap_mangen::Man::new(cmd).render(&mut buf)?;
        out::bytes(&buf);
        return Ok(ExitCode::SUCCESS);
    };
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    let mut page = |name: String, c: clap::Command| -> Result<()> {
        let path = dir.join(format!("{name}.1"));
        let mut buf = Vec::new();
        clap_mangen::Man::new(c).render(&mut buf)?;
        std::fs::write(&path, buf)?;
        written.push(path.display().to_string());
        Ok(())
    };
    for sub in cmd.get_subcommands() {
        page(format!("ghapp-{}", sub.get_name()), sub.clone())?;
    }
    page("ghapp".into(), cmd)?;
    outln!("{}", written.join("\n"));
    Ok(ExitCode::SUCCESS)
}
