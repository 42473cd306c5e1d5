//! The long-running command `ghapp proxy`: it prints where it listens, then serves until
//! stopped. (`ghapp emulator` and `ghapp demo` are `ghapp-emulator`'s: [`crate::emulator`].)

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use ghapp_proxy::CheckLevel;

use crate::cli::ProxyArgs;
use crate::out::outln;

pub(crate) fn proxy(args: &ProxyArgs) -> Result<ExitCode> {
    let mut cfg = ghapp_proxy::config::ProxyConfig::load(&args.config)?;
    if args.health {
        return health(&args.config, cfg.metrics_listen);
    }
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
    let sts = cfg.sts.as_ref().map(|s| {
        (
            if s.tls.is_some() { "https" } else { "http" },
            s.domain.clone(),
        )
    });
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
    if let (Some(a), Some((scheme, domain))) = (running.sts_addr(), &sts) {
        outln!("  token exchange: {scheme}://{a}/sts/exchange (audience {domain})");
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

/// `--health`: the running proxy's `/healthz`, on the metrics listener (its loopback address
/// when it listens on every interface), answered within 5 s.
/// `ghapp notify test`: one line per receiver, exit 1 if one was not reached.
pub(crate) fn notify(args: &crate::cli::NotifyArgs) -> Result<ExitCode> {
    let crate::cli::NotifyCommand::Test { config } = &args.command;
    let cfg = ghapp_proxy::config::ProxyConfig::load(config)?;
    let Some(results) = ghapp_proxy::notify_test(&cfg)? else {
        bail!(
            "{}: no [notify] table: add one with urls = [...] (see docs/reference/configuration.md)",
            config.display()
        );
    };
    let mut ok = true;
    for (host, r) in results {
        match r {
            Ok(status) => crate::out::outln!("ok    {host}: answered {status}"),
            Err(why) => {
                ok = false;
                crate::out::outln!("FAIL  {host}: {why}");
            }
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn health(config: &std::path::Path, metrics: Option<std::net::SocketAddr>) -> Result<ExitCode> {
    let Some(mut addr) = metrics else {
        bail!(
            "{}: no metrics_listen, so the proxy has no health endpoint: set metrics_listen = \"127.0.0.1:9090\"",
            config.display()
        );
    };
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let url = format!("http://{addr}/healthz");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let answer = rt.block_on(async {
        reqwest::Client::builder()
            .no_proxy()
            .timeout(std::time::Duration::from_secs(5))
            .build()?
            .get(&url)
            .send()
            .await
    });
    match answer {
        Ok(a) if a.status().is_success() => {
            outln!("ok: the proxy answers at {url}");
            Ok(ExitCode::SUCCESS)
        }
        Ok(a) => bail!(
            "the proxy at {url} answers {}: it is not healthy",
            a.status()
        ),
        Err(e) => {
            let why = if e.is_timeout() {
                "no answer within 5 s".to_owned()
            } else if e.is_connect() {
                "nothing listens there (is the proxy running, with this metrics_listen?)".to_owned()
            } else {
                e.to_string()
            };
            bail!("the proxy does not answer at {url}: {why}")
        }
    }
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
