//! The operator's CLI: `setup`, `token`, `doctor`, `installations`, `hooks`, `revoke`,
//! `configure-git`, `proxy`, `emulator`, `demo`.
//!
//! Exit codes: 0 success; 1 an operation failed (the message says why and what to do);
//! 2 bad usage.

#![expect(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a CLI: stdout carries results, stderr carries one-line errors"
)]

mod app_api;
mod cli;
mod config_edit;
mod configure_git;
mod context;
mod demo;
mod doctor;
mod revoke;
mod servers;
mod setup;
mod token;

use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Parser;
use ghapp_core::config::Config;
use ghapp_gitproto::repo::RepoName;

pub use cli::Cli;
use cli::Command;
pub use configure_git::configure_git;

/// The helper's cache miss, minted here: logging and ghapp-core's one credential resolution.
pub fn mint_in_process(
    miss: &git_credential_ghapp::Miss<'_>,
) -> std::result::Result<git_credential_ghapp::Minted, String> {
    use ghapp_core::resolve::{Credential, Obtain, obtain_blocking};
    use git_credential_ghapp::Minted;
    ghapp_core::log::init(git_credential_ghapp::PROGRAM);
    match obtain_blocking(miss.cfg, &miss.resolution, miss.request, Obtain::default()) {
        Ok(Credential::Installation(t)) => Ok(Minted::Token(t)),
        Ok(Credential::Pat { token, .. }) => Ok(Minted::Pat(token)),
        Err(e) => Err(e.to_string()),
    }
}

/// Parses the process arguments and runs; prints errors once.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("ghapp: {}", chain.join(": ").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

pub fn run(cli: Cli) -> Result<ExitCode> {
    match &cli.command {
        Command::Token(args) => token::run(&cli, args),
        Command::ConfigureGit(args) => {
            let host = match &args.host {
                Some(h) => h.clone(),
                None => Config::load(&cli.overrides())
                    .ok()
                    .and_then(|c| c.apps.first().map(|a| a.git_host().to_owned()))
                    .unwrap_or_else(|| "github.com".into()),
            };
            for line in configure_git(&host, &[])? {
                println!("{line}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Emulator(args) => servers::emulator(args),
        Command::Proxy(args) => {
            let Some(path) = &cli.config else {
                bail!(
                    "ghapp proxy needs --config FILE: the proxy's TOML (sandboxes, policy, the app); see docs/guides/sandbox.md"
                );
            };
            servers::proxy(path, args)
        }
        Command::Demo => demo::run(),
        Command::Setup(args) => setup::run(args, &cli.overrides()),
        Command::Doctor(args) => {
            let repo = args.repo.as_deref().map(parse_repo).transpose()?;
            doctor::run(&cli.overrides(), repo, args.host.clone())
        }
        Command::Installations => app_api::installations(&cli, None),
        Command::Installation { id } => app_api::installations(&cli, Some(*id)),
        Command::Revoke { all } => revoke::run(&cli, *all),
        Command::Hooks { command } => app_api::hooks(&cli, command),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut cmd, "ghapp", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { dir } => man(dir.as_deref()),
    }
}

/// `--repo OWNER/REPO` (`.git` allowed), as GitHub names them.
fn parse_repo(s: &str) -> Result<RepoName> {
    RepoName::parse(s).ok_or_else(|| anyhow::anyhow!("--repo {s:?} is not OWNER/REPO"))
}

fn man(dir: Option<&std::path::Path>) -> Result<ExitCode> {
    let cmd = <Cli as clap::CommandFactory>::command();
    let Some(dir) = dir else {
        clap_mangen::Man::new(cmd).render(&mut std::io::stdout())?;
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
    println!("{}", written.join("\n"));
    Ok(ExitCode::SUCCESS)
}
