//! The long-running commands: `ghapp proxy` and `ghapp emulator`. They print where they
//! listen, then serve until stopped.

#![expect(clippy::print_stdout, reason = "a command: stdout carries its output")]

use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::cli::{EmulatorArgs, ProxyArgs};

pub(crate) fn proxy(path: &std::path::Path, args: &ProxyArgs) -> Result<ExitCode> {
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

pub(crate) fn emulator(args: &EmulatorArgs) -> Result<ExitCode> {
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
