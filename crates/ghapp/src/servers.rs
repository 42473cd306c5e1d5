//! The long-running commands: `ghapp proxy` and `ghapp emulator`. They print where they
//! listen, then serve until stopped.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use ghapp_proxy::CheckLevel;

use crate::cli::{EmulatorArgs, ProxyArgs};
use crate::out::outln;

pub(crate) fn proxy(args: &ProxyArgs) -> Result<ExitCode> {
    let mut cfg = ghapp_proxy::config::ProxyConfig::load(&args.config)?;
    if let Some(l) = args.listen {
        cfg.listen = l;
    }
    if let Some(d) = &args.ca_dir {
        let d = std::path::absolute(d).context("--ca-dir")?;
        cfg.cache_dir = d.join("tokens");
        cfg.ca_dir = d;
    }
    // --check changes nothing on disk: what the checks need to write (a CA to build with, the
    // installation cache, push inspection's spool) goes to a directory removed at the end.
    let scratch = if args.check {
        let t = tempfile::tempdir().context("--check needs a temporary directory")?;
        cfg.ca_dir = t.path().join("ca");
        cfg.cache_dir = t.path().join("tokens");
        cfg.spool_dir = t.path().join("spool");
        Some(t)
    } else {
        None
    };
    // A server says what it does: its requests (when there is no audit file), reloads and
    // refusals, at info, unless GHAPP_LOG says otherwise.
    ghapp_core::log::init_with_default("ghapp proxy", "warn,ghapp_proxy=info");
    let state = cfg.state.as_deref().map(without_password);
    let ca = ghapp_proxy::ca::Ca::cert_path(&cfg.ca_dir);
    let sandboxes: Vec<String> = cfg.sandboxes.iter().map(|s| s.name.clone()).collect();
    let proxy = ghapp_proxy::Proxy::new(cfg)?.reload_from(&args.config);
    let checks = proxy.preflight();
    let failed = checks.iter().find(|c| c.level == CheckLevel::Fail);
    if args.check {
        for c in &checks {
            outln!("{c}");
        }
        drop(scratch);
        return Ok(if failed.is_some() {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        });
    }
    if let Some(f) = failed {
        bail!("not starting: {}: {}", f.what, f.detail);
    }
    for c in checks.iter().filter(|c| c.level == CheckLevel::Warn) {
        eprintln!("ghapp proxy: warning: {}: {}", c.what, c.detail);
    }
    let running = proxy.start()?;
    outln!("ghapp proxy listening on {}", running.addr());
    outln!(
        "  CA: {} (also at http://{}/ca.pem)",
        ca.display(),
        running.addr()
    );
    if let Some(m) = running.metrics_addr() {
        outln!("  metrics: http://{m}/metrics");
    }
    if let Some(a) = running.webhook_addr() {
        outln!("  webhooks: http://{a}/webhooks/github");
    }
    if let Some(a) = running.admin_addr() {
        outln!("  admin API: http://{a}/v1/sandboxes (GHAPP_ADMIN_URL=http://{a})");
        outln!("  approvals page: http://{a}/approvals");
    }
    if let Some(s) = &state {
        outln!("  state: {s}");
    }
    outln!("  sandboxes: {}", sandboxes.join(", "));
    // Every runtime's own variable for the CA (Python's requests ignores SSL_CERT_FILE, Node
    // reads only its own), and git told to authenticate its first CONNECT.
    let ca = ca.display();
    outln!(
        "  sandbox environment: HTTPS_PROXY=http://NAME:SECRET@{} GIT_HTTP_PROXY_AUTHMETHOD=basic",
        running.addr()
    );
    outln!(
        "    GIT_SSL_CAINFO={ca} SSL_CERT_FILE={ca} REQUESTS_CA_BUNDLE={ca} NODE_EXTRA_CA_CERTS={ca}"
    );
    running.wait();
    Ok(ExitCode::SUCCESS)
}

/// A store URL as it may be shown: a PostgreSQL URL's password replaced.
fn without_password(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

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

pub(crate) fn emulator(args: &EmulatorArgs) -> Result<ExitCode> {
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
