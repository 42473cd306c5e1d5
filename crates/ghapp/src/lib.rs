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

mod cli;
mod configure_git;
mod demo;
mod doctor;
mod setup;

use std::collections::BTreeMap;

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Parser;
use ghapp_core::broker::{Broker, TokenRequest, default_permissions};
use ghapp_core::config::Config;

pub use cli::Cli;
use cli::{Command, HooksCommand};
pub use configure_git::configure_git;

/// The helper's cache miss, minted here: logging, a current-thread runtime and the broker.
pub fn mint_in_process(
    miss: &git_credential_ghapp::Miss<'_>,
) -> std::result::Result<git_credential_ghapp::Minted, String> {
    use git_credential_ghapp::Minted;
    ghapp_core::log::init(git_credential_ghapp::PROGRAM);
    let pat = || -> std::result::Result<Minted, String> {
        let pat = miss
            .pat
            .ok_or("no GitHub App or personal access token serves this host")?;
        let (token, _warnings) = pat.source.load().map_err(|e| e.to_string())?;
        Ok(Minted::Pat(token))
    };
    let Some(app) = miss.app else {
        return pat();
    };
    match ghapp_core::broker::token_blocking(
        app.clone(),
        miss.cfg.refresh_margin,
        &miss.cfg.cache_dir,
        miss.request,
        None,
    ) {
        Ok(t) => Ok(Minted::Token(t)),
        // The app is not installed on this owner: the personal access token, when configured,
        // is the fallback it exists for.
        Err(ghapp_core::Error::NotInstalled { owner, .. }) if miss.pat.is_some() => {
            tracing::debug!(%owner, "app not installed; answering with the personal access token");
            pat()
        }
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
        Command::Token(args) => token(&cli, args),
        Command::ConfigureGit(args) => {
            let host = match &args.host {
                Some(h) => h.clone(),
                None => Config::load(&cli.overrides())
                    .ok()
                    .and_then(|c| c.apps.first().map(|a| a.git_host.clone()))
                    .unwrap_or_else(|| "github.com".into()),
            };
            for line in configure_git(&host, &[])? {
                println!("{line}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Emulator(args) => emulator(args),
        Command::Proxy(args) => {
            let Some(path) = &cli.config else {
                bail!(
                    "ghapp proxy needs --config FILE: the proxy's TOML (sandboxes, policy, the app); see docs/guides/sandbox.md"
                );
            };
            proxy(path, args)
        }
        Command::Demo => demo::run(),
        Command::Setup(args) => setup::run(args, &cli.overrides()),
        Command::Doctor(args) => {
            let repo = match &args.repo {
                Some(r) => Some(
                    ghapp_gitproto_repo(r)
                        .ok_or_else(|| anyhow::anyhow!("--repo {r:?} is not OWNER/REPO"))?,
                ),
                None => None,
            };
            doctor::run(&cli.overrides(), repo, args.host.clone())
        }
        Command::Installations => installations(&cli, None),
        Command::Installation { id } => installations(&cli, Some(*id)),
        Command::Revoke { all } => revoke(&cli, *all),
        Command::Hooks { command } => hooks(&cli, command),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut cmd, "ghapp", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { dir } => man(dir.as_deref()),
    }
}

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

fn token(cli: &Cli, args: &cli::TokenArgs) -> Result<ExitCode> {
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
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
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

fn ghapp_gitproto_repo(s: &str) -> Option<(String, String)> {
    let (o, r) = s.split_once('/')?;
    if r.contains('/') {
        return None;
    }
    let r = r.strip_suffix(".git").unwrap_or(r);
    let ok = ghapp_gitproto::credential::valid_name;
    (ok(o) && ok(r)).then(|| (o.to_owned(), r.to_owned()))
}

fn proxy(path: &std::path::Path, args: &cli::ProxyArgs) -> Result<ExitCode> {
    let mut cfg = ghapp_proxy::config::ProxyConfig::load(path)?;
    if let Some(l) = args.listen {
        cfg.listen = l;
    }
    if let Some(d) = &args.ca_dir {
        cfg.cache_dir = d.join("tokens");
        cfg.ca_dir = d.clone();
    }
    ghapp_core::log::init("ghapp proxy");
    let ca = ghapp_proxy::ca::Ca::cert_path(&cfg.ca_dir);
    let sandboxes: Vec<String> = cfg.sandboxes.iter().map(|s| s.name.clone()).collect();
    let proxy = ghapp_proxy::Proxy::new(cfg).map_err(anyhow::Error::msg)?;
    let running = proxy.start().map_err(anyhow::Error::msg)?;
    println!("ghapp proxy listening on {}", running.addr());
    println!(
        "  CA: {} (also at http://{}/ca.pem)",
        ca.display(),
        running.addr()
    );
    if let Some(m) = running.metrics_addr() {
        println!("  metrics: http://{m}/metrics");
    }
    println!("  sandboxes: {}", sandboxes.join(", "));
    println!(
        "  sandbox environment: HTTPS_PROXY=http://NAME:SECRET@{} GIT_SSL_CAINFO=<ca.pem> SSL_CERT_FILE=<ca.pem>",
        running.addr()
    );
    running.wait();
    Ok(ExitCode::SUCCESS)
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn installations(cli: &Cli, one: Option<u64>) -> Result<ExitCode> {
    let cfg = Config::load(&cli.overrides())?;
    let app = cfg.primary()?.clone();
    ghapp_core::log::init("ghapp");
    let broker = Broker::new(app, cfg.refresh_margin, &cfg.cache_dir)?;
    broker.load_key_now()?;
    let path = match one {
        Some(id) => format!("/app/installations/{id}"),
        None => "/app/installations".to_owned(),
    };
    let list: Vec<ghapp_core::client::Installation> = runtime()?.block_on(async {
        let r = broker
            .app_request(ghapp_core::client::Method::GET, &path, None)
            .await?;
        if r.status.as_u16() == 404 {
            bail!(
                "installation {} not found for this app (`ghapp installations` lists them)",
                one.unwrap_or(0)
            );
        }
        if !r.status.is_success() {
            return Err(ghapp_core::broker::api_error(&r, &format!("GET {path}")).into());
        }
        Ok(match one {
            Some(_) => vec![r.json(&path)?],
            None => r.json(&path)?,
        })
    })?;
    for i in list {
        let account = i.account.map(|a| a.login).unwrap_or_default();
        let perms: Vec<String> = i
            .permissions
            .iter()
            .map(|(k, v)| format!("{k}:{v}"))
            .collect();
        println!(
            "{}	{account}	{}	{}",
            i.id,
            i.repository_selection,
            perms.join(",")
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn hooks(cli: &Cli, cmd: &HooksCommand) -> Result<ExitCode> {
    use ghapp_core::client::Method;
    let cfg = Config::load(&cli.overrides())?;
    let app = cfg.primary()?.clone();
    ghapp_core::log::init("ghapp");
    let broker = Broker::new(app, cfg.refresh_margin, &cfg.cache_dir)?;
    broker.load_key_now()?;
    let (method, path) = match cmd {
        HooksCommand::Config => (Method::GET, "/app/hook/config".to_owned()),
        HooksCommand::Deliveries { failed: false } => {
            (Method::GET, "/app/hook/deliveries?per_page=50".to_owned())
        }
        HooksCommand::Deliveries { failed: true } => (
            Method::GET,
            "/app/hook/deliveries?per_page=50&status=failure".to_owned(),
        ),
        HooksCommand::Redeliver { id } => {
            (Method::POST, format!("/app/hook/deliveries/{id}/attempts"))
        }
    };
    let v: serde_json::Value = runtime()?.block_on(async {
        let r = broker.app_request(method.clone(), &path, None).await?;
        if r.status.as_u16() == 404 {
            bail!("GitHub answered 404 to {method} {path}: no such delivery, or the app has no webhook");
        }
        if !r.status.is_success() {
            return Err(ghapp_core::broker::api_error(&r, &format!("{method} {path}")).into());
        }
        Ok(serde_json::from_slice(&r.body).unwrap_or(serde_json::Value::Null))
    })?;
    match cmd {
        HooksCommand::Config => {
            let s = |k: &str| v[k].as_str().unwrap_or("").to_owned();
            println!("url: {}", s("url"));
            println!("content_type: {}", s("content_type"));
            println!("insecure_ssl: {}", s("insecure_ssl"));
            // GitHub masks the secret; say whether one is set and never print a value.
            let secret = if v["secret"].as_str().is_some_and(|x| !x.is_empty()) {
                "set (masked)"
            } else {
                "not set"
            };
            println!("secret: {secret}");
        }
        HooksCommand::Deliveries { .. } => {
            for d in v.as_array().into_iter().flatten() {
                let event = match d["action"].as_str() {
                    Some(a) => format!("{}.{a}", d["event"].as_str().unwrap_or("")),
                    None => d["event"].as_str().unwrap_or("").to_owned(),
                };
                println!(
                    "{}\t{}\t{event}\t{} {}{}",
                    d["id"],
                    d["delivered_at"].as_str().unwrap_or(""),
                    d["status_code"],
                    d["status"].as_str().unwrap_or(""),
                    if d["redelivery"].as_bool() == Some(true) {
                        "\tredelivery"
                    } else {
                        ""
                    }
                );
            }
        }
        HooksCommand::Redeliver { id } => println!("redelivery of {id} requested"),
    }
    Ok(ExitCode::SUCCESS)
}

fn revoke(cli: &Cli, all: bool) -> Result<ExitCode> {
    let cfg = Config::load(&cli.overrides())?;
    let app = cfg.primary()?.clone();
    ghapp_core::log::init("ghapp");
    let broker = Broker::new(app, cfg.refresh_margin, &cfg.cache_dir)?;
    let tokens = broker.cache().drain()?;
    let (mut revoked, mut skipped) = (0, 0);
    let rt = runtime()?;
    for t in &tokens {
        match rt.block_on(broker.revoke(t)) {
            Ok(true) => revoked += 1,
            Ok(false) => skipped += 1,
            Err(e) => {
                skipped += 1;
                eprintln!(
                    "ghapp: warning: {} was not revoked: {e}",
                    t.token.fingerprint()
                );
            }
        }
    }
    if all && let Ok(entries) = std::fs::read_dir(broker.cache().dir()) {
        for e in entries.flatten() {
            let _ = std::fs::remove_file(e.path());
        }
    }
    println!(
        "revoked {revoked} live token(s); {skipped} expired or already invalid; cache {} cleared",
        broker.cache().dir().display()
    );
    Ok(ExitCode::SUCCESS)
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

fn emulator(args: &cli::EmulatorArgs) -> Result<ExitCode> {
    let hub = fakehub::FakeHub::start(fakehub::Options {
        port: args.port,
        dir: args.dir.clone(),
        token_ttl: args.token_ttl,
    })
    .context("cannot start the emulator")?;
    println!("fakehub listening on {}", hub.url());
    println!("  API:          {}", hub.api_url());
    println!("  CA:           {}", hub.ca_path().display());
    println!("  app key:      {}", hub.key_path().display());
    println!("  app id:       {}", hub.app_id());
    println!(
        "  installations: {} ({}: widgets, gadgets), {} ({}: all)",
        fakehub::ORG_INSTALLATION,
        fakehub::ORG,
        fakehub::USER_INSTALLATION,
        fakehub::USER
    );
    println!("  clone:        {}", hub.repo_url(fakehub::ORG, "widgets"));
    println!();
    println!("Use it from another shell:");
    println!("  export GHAPP_API_URL={}", hub.api_url());
    println!("  export GHAPP_APP_ID={}", hub.app_id());
    println!(
        "  export GHAPP_PRIVATE_KEY_FILE={}",
        hub.key_path().display()
    );
    println!(
        "  export SSL_CERT_FILE={} GIT_SSL_CAINFO={}",
        hub.ca_path().display(),
        hub.ca_path().display()
    );
    println!("Press Ctrl-C to stop.");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(tokio::signal::ctrl_c())?;
    Ok(ExitCode::SUCCESS)
}
