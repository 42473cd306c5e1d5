//! `ghapp-emulator emulator`: fakehub in the foreground, with what to paste into another shell
//! and a proxy configuration that works against it.

use std::process::ExitCode;

use anyhow::Result;
use ghapp::EmulatorArgs;

use crate::outln;

/// A ready proxy configuration for the emulator: its CA trusted upstream, its app, one sandbox;
/// under a name (`--hostname`), the proxy resolves that name and its storage host itself. Paths
/// in it are relative to the file it is saved in.
fn proxy_snippet(hub: &fakehub::FakeHub, named: Option<&str>) -> String {
    let q = |p: &std::path::Path| format!("{:?}", p.display().to_string());
    let resolve = match named {
        Some(name) => format!(
            "resolve = [\"{name}=127.0.0.1\", \"lfs.{name}=127.0.0.1\"]   # the emulator's names, for the proxy\nlfs_storage_hosts = [\"{}\"]\n",
            hub.lfs_host()
        ),
        None => String::new(),
    };
    format!(
        "listen = \"127.0.0.1:8080\"\nca_dir = \"ghapp-proxy-ca\"\nupstream_ca_file = {}\n{resolve}\n[app]\napi_url = {:?}\napp_id = {}\nprivate_key_file = {}\n\n[[sandbox]]\nname = \"agent-1\"\nsecret = {{ env = \"AGENT1_SECRET\" }}   # export AGENT1_SECRET=<16 or more characters>\nrepos = [\"{}/widgets\"]\npush = [\"refs/heads/agent/*\"]",
        q(hub.ca_path()),
        hub.api_url(),
        hub.app_id(),
        q(hub.key_path()),
        fakehub::ORG,
    )
}

pub(crate) fn run(args: &EmulatorArgs) -> Result<ExitCode> {
    let hub = fakehub::FakeHub::start(fakehub::Options {
        lfs_same_host: false,
        port: args.port,
        dir: args.dir.clone(),
        token_ttl: args.token_ttl,
        hostname: args.hostname.clone(),
    })
    .map_err(|e| match e.kind() {
        std::io::ErrorKind::AddrInUse => anyhow::anyhow!(
            "cannot start the emulator: port {} is in use: stop what holds it, or choose another with --port (0: any free one)",
            args.port
        ),
        _ => anyhow::Error::new(e).context("cannot start the emulator"),
    })?;
    outln!("fakehub listening on {}", hub.url());
    outln!("  API:          {}", hub.api_url());
    outln!("  CA:           {}", hub.ca_path().display());
    outln!("  app key:      {}", hub.key_path().display());
    outln!("  app id:       {}", hub.app_id());
    outln!(
        "  installations: {} ({}: widgets, gadgets), {} ({}: all)",
        fakehub::ORG_INSTALLATION,
        fakehub::ORG,
        fakehub::USER_INSTALLATION,
        fakehub::USER
    );
    outln!("  clone:        {}", hub.repo_url(fakehub::ORG, "widgets"));
    outln!();
    outln!("Use it from another shell:");
    outln!("  export GHAPP_API_URL={}", hub.api_url());
    outln!("  export GHAPP_APP_ID={}", hub.app_id());
    outln!(
        "  export GHAPP_PRIVATE_KEY_FILE={}",
        hub.key_path().display()
    );
    outln!(
        "  export SSL_CERT_FILE={} GIT_SSL_CAINFO={}",
        hub.ca_path().display(),
        hub.ca_path().display()
    );
    let named = args
        .hostname
        .as_deref()
        .filter(|h| !matches!(*h, "127.0.0.1" | "localhost"));
    if let Some(name) = named {
        outln!(
            "  The name {name} must reach 127.0.0.1 on this machine too: add \"127.0.0.1 {name} lfs.{name}\" to /etc/hosts"
        );
        outln!("  (or give curl --resolve {}:127.0.0.1)", hub.git_host());
    }
    outln!();
    outln!("A sandbox proxy in front of it: save these lines as proxy.toml, then run");
    outln!("`ghapp proxy --config proxy.toml` (`--check` first to try the settings):");
    outln!("{}", proxy_snippet(&hub, named));
    outln!("Press Ctrl-C to stop.");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(tokio::signal::ctrl_c())?;
    Ok(ExitCode::SUCCESS)
}
