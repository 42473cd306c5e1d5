//! `ghapp setup`: the GitHub App manifest flow.
//!
//! 1. A page on 127.0.0.1 posts a manifest (contents write, pull_requests write, metadata read;
//!    a webhook only when asked) to the new-app page of the account or organization.
//! 2. The user confirms on GitHub; GitHub redirects to our `/callback?code=&state=`.
//! 3. `POST /app-manifests/{code}/conversions` returns the app id, slug, PEM and webhook secret.
//! 4. The key goes to the OS keyring when one works, else a 0600 file; an `[[app]]` table is
//!    appended to the config file; the browser is sent on to the install page, whose URL is also
//!    printed.
//!
//! Without a browser on this machine, `--code CODE` finishes from a code copied out of the
//! redirect's address bar.

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;

use ghapp_core::client::{Auth, GitHubClient, Method};
use ghapp_core::config::{AppConfig, AppIdent, Config, GitHubHost, Overrides};
use ghapp_core::keys::{KeySource, Stored};
use ghapp_core::secret::{PrivateKeyPem, WebhookSecret};

use crate::config_edit::{NewApp, append_app};
use crate::out::outln;

pub(crate) use crate::cli::SetupArgs;

/// Where the app lives: its REST base and its web pages.
#[derive(Debug, Clone)]
struct Target {
    github: GitHubHost,
    web_url: String,
}

impl Target {
    fn resolve(host: Option<&str>, ov: &Overrides) -> Result<Target> {
        let github = match host {
            Some(h) => {
                let h = h.trim().trim_end_matches('/');
                let h = h.strip_prefix("https://").unwrap_or(h);
                if h.is_empty() || h.contains(['/', '@', ' ']) {
                    bail!("--host {h:?} is not a host name: e.g. --host ghe.example.com");
                }
                GitHubHost::from_git_host(h)
            }
            None => {
                let api_url = ov.api_url.clone().or_else(|| {
                    std::env::var("GHAPP_API_URL")
                        .ok()
                        .filter(|v| !v.is_empty())
                });
                GitHubHost::new(api_url.as_deref(), None)?
            }
        };
        Ok(Target {
            web_url: format!("https://{}", github.git_host()),
            github,
        })
    }

    /// The new-app page the manifest is posted to.
    fn new_app_url(&self, org: Option<&str>, state: &str) -> String {
        match org {
            Some(o) => format!(
                "{}/organizations/{o}/settings/apps/new?state={state}",
                self.web_url
            ),
            None => format!("{}/settings/apps/new?state={state}", self.web_url),
        }
    }
}

/// The config file `setup` writes: `--config`, else `$GHAPP_CONFIG`, else the default.
fn config_path(ov: &Overrides) -> Result<PathBuf> {
    if let Some(p) = &ov.config_file {
        return Ok(p.clone());
    }
    match std::env::var("GHAPP_CONFIG") {
        Ok(v) if v.is_empty() => bail!(
            "GHAPP_CONFIG is set but empty (no config file): unset it, or pass --config FILE for ghapp setup to write"
        ),
        Ok(v) => Ok(PathBuf::from(v)),
        Err(_) => ghapp_core::config::default_config_path().ok_or_else(|| {
            anyhow::anyhow!("no user config directory (is HOME set?): pass --config FILE")
        }),
    }
}

/// Refuses before anything is created on GitHub when the config file already routes this host
/// (and owner) to an app: a second table would never be used.
fn check_no_conflict(path: &Path, git_host: &str, org: Option<&str>) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    let env: std::collections::BTreeMap<String, String> =
        [("GHAPP_CONFIG".to_owned(), path.display().to_string())].into();
    let cfg = Config::load_from(&env, &Overrides::default())?;
    let clash = cfg.apps.iter().find(|a| {
        a.git_host().eq_ignore_ascii_case(git_host)
            && (a.owners.is_empty()
                || org.is_some_and(|o| a.owners.iter().any(|x| x.eq_ignore_ascii_case(o))))
    });
    if let Some(a) = clash {
        bail!(
            "config file {} already has an [[app]] for {git_host} (app {}): remove that table, or pass --config OTHER.toml",
            path.display(),
            a.ident
        );
    }
    Ok(())
}

/// The manifest: minimal permissions, no webhook unless asked, redirect back to us. Its
/// homepage (`url`, which GitHub requires) is the owner's own page on the host.
fn manifest(
    name: &str,
    homepage: &str,
    redirect: &str,
    webhook_url: Option<&str>,
) -> serde_json::Value {
    let mut m = serde_json::json!({
        "name": name,
        "url": homepage,
        "description": "Short-lived, repository-scoped tokens for git, CI and sandboxes (ghapp).",
        "redirect_url": redirect,
        "public": false,
        "default_permissions": {
            "contents": "write",
            "pull_requests": "write",
            "metadata": "read"
        },
        "default_events": [],
        // GitHub requires a hook URL even for an inactive webhook: the homepage, never called.
        "hook_attributes": { "url": homepage, "active": false },
    });
    if let Some(u) = webhook_url {
        m["hook_attributes"] = serde_json::json!({ "url": u, "active": true });
        m["default_events"] = serde_json::json!(["pull_request", "push"]);
    }
    m
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The local start page: a form that posts the manifest to GitHub, submitted at once.
fn start_page(action: &str, manifest: &serde_json::Value) -> String {
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>ghapp setup</title></head><body>\n\
         <h1>ghapp setup</h1>\n\
         <p>Create the GitHub App on GitHub. You can review the name and permissions there.</p>\n\
         <form id=\"manifest\" method=\"post\" action=\"{}\">\n\
         <input type=\"hidden\" name=\"manifest\" value=\"{}\">\n\
         <button type=\"submit\">Create the GitHub App</button>\n\
         </form>\n\
         <script>document.getElementById('manifest').submit();</script>\n\
         </body></html>\n",
        escape_html(action),
        escape_html(&manifest.to_string())
    )
}

fn page(status: StatusCode, title: &str, text: &str) -> Response<Full<Bytes>> {
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title></head><body><h1>{t}</h1><p>{}</p></body></html>\n",
        escape_html(text),
        t = escape_html(title)
    );
    Response::builder()
        .status(status)
        .header("content-type", "text/html; charset=utf-8")
        .header("cache-control", "no-store")
        .body(Full::new(Bytes::from(body)))
        .expect("valid response")
}

/// The conversion's answer: the app and its secrets.
#[derive(Deserialize)]
struct Conversion {
    id: u64,
    slug: Option<String>,
    name: String,
    client_id: String,
    html_url: String,
    owner: Option<ghapp_core::client::Account>,
    pem: String,
    webhook_secret: Option<String>,
}

/// The app as created, secrets held in redacting types.
#[derive(Debug)]
struct Created {
    id: u64,
    slug: String,
    name: String,
    client_id: String,
    html_url: String,
    owner: String,
    pem: PrivateKeyPem,
    webhook_secret: Option<WebhookSecret>,
}

fn valid_code(code: &str) -> bool {
    !code.is_empty() && code.len() <= 100 && code.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// `POST /app-manifests/{code}/conversions`.
async fn convert(client: &GitHubClient, code: &str) -> Result<Created> {
    if !valid_code(code) {
        bail!("{code:?} is not a manifest code: copy the code= value from the redirect's address");
    }
    let path = format!("/app-manifests/{code}/conversions");
    // Once: a retry after GitHub consumed the code would only read as "already used".
    let r = client
        .request_once(Method::POST, &path, Auth::None, None)
        .await?;
    match r.status.as_u16() {
        201 => {}
        404 => bail!(
            "GitHub does not know this manifest code, or it was already used or has expired (a code converts once, within an hour): run `ghapp setup` again"
        ),
        _ => bail!(
            "{}; the code was not converted: retry with `ghapp setup --code CODE` (the code= in the address GitHub redirected to, valid for an hour) or run `ghapp setup` again",
            ghapp_core::broker::api_error(&r, "POST /app-manifests/{code}/conversions")
        ),
    }
    let c: Conversion = r.json("POST /app-manifests/{code}/conversions")?;
    let slug = c
        .slug
        .clone()
        .unwrap_or_else(|| c.html_url.rsplit('/').next().unwrap_or("").to_owned());
    Ok(Created {
        id: c.id,
        slug,
        name: c.name,
        client_id: c.client_id,
        html_url: c.html_url,
        owner: c.owner.map(|o| o.login).unwrap_or_default(),
        pem: PrivateKeyPem::new(c.pem),
        webhook_secret: c.webhook_secret.map(WebhookSecret::new),
    })
}

/// What `setup` did, for the summary.
#[derive(Debug)]
struct Outcome {
    created: Created,
    key: Stored,
    keyring_skipped: Option<String>,
    webhook_secret: Option<Stored>,
    config: PathBuf,
    install_url: String,
}

/// Keyring entries and fallback files are named by host and app: `HOST-app-ID`.
fn entry_user(git_host: &str, id: u64) -> String {
    let host: String = git_host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{host}-app-{id}")
}

/// Stores the key (and webhook secret) and appends the `[[app]]` table. Blocking (the keyring).
fn persist(
    created: Created,
    target: &Target,
    key_file: Option<&Path>,
    config: &Path,
) -> Result<Outcome> {
    // Refuse a key that cannot sign before anything is written.
    let ident = AppIdent {
        app_id: Some(created.id),
        client_id: Some(created.client_id.clone()),
    };
    ghapp_core::jwt::AppSigner::new(ident, &created.pem, "the manifest conversion")?;
    let user = entry_user(target.github.git_host(), created.id);
    let (key, keyring_skipped) = match key_file {
        Some(p) => {
            ghapp_core::keys::store_secret_file(p, created.pem.expose())?;
            (Stored::File(p.to_path_buf()), None)
        }
        None => ghapp_core::keys::store_secret(
            "ghapp",
            &user,
            created.pem.expose(),
            &ghapp_core::keys::keyring_fallback_path("ghapp", &user),
        )?,
    };
    let webhook_secret = match &created.webhook_secret {
        Some(s) => {
            let entry = format!("{user}-webhook-secret");
            let fallback =
                ghapp_core::keys::keyring_fallback_path("ghapp", &entry).with_extension("txt");
            let (at, _) = ghapp_core::keys::store_secret("ghapp", &entry, s.expose(), &fallback)?;
            Some(at)
        }
        None => None,
    };
    let (private_key_file, private_key_keyring) = match &key {
        Stored::File(p) => (Some(p.clone()), None),
        Stored::Keyring { service, user } => (None, Some(format!("{service}/{user}"))),
    };
    let owners = if created.owner.is_empty() {
        Vec::new()
    } else {
        vec![created.owner.clone()]
    };
    let table = NewApp {
        api_url: target.github.api_url().to_owned(),
        app_id: created.id,
        client_id: created.client_id.clone(),
        private_key_file,
        private_key_keyring,
        owners,
    };
    let comment = format!(
        "ghapp setup, {}: \"{}\" ({}), owned by {}",
        humantime::format_rfc3339_seconds(std::time::SystemTime::now()),
        created.name,
        created.html_url,
        if created.owner.is_empty() {
            "?"
        } else {
            &created.owner
        }
    );
    append_app(config, &table, &comment)?;
    let install_url = format!(
        "{}/installations/new",
        created.html_url.trim_end_matches('/')
    );
    Ok(Outcome {
        created,
        key,
        keyring_skipped,
        webhook_secret,
        config: config.to_path_buf(),
        install_url,
    })
}

fn describe(s: &Stored) -> String {
    match s {
        Stored::File(p) => format!("file {} (0600)", p.display()),
        Stored::Keyring { service, user } => format!("OS keyring entry {service}/{user}"),
    }
}

/// Proves the written configuration: the new key signs a JWT GitHub accepts (`GET /app`).
fn verify(outcome: &Outcome, target: &Target) -> Result<String> {
    let key = match &outcome.key {
        Stored::File(p) => KeySource::File(p.clone()),
        Stored::Keyring { service, user } => KeySource::Keyring {
            service: service.clone(),
            user: user.clone(),
        },
    };
    let app = AppConfig {
        github: target.github.clone(),
        ident: AppIdent {
            app_id: Some(outcome.created.id),
            client_id: Some(outcome.created.client_id.clone()),
        },
        installation_id: None,
        key,
        owners: Vec::new(),
        webhook_secret: None,
        sources: Default::default(),
    };
    let scratch = tempfile::tempdir()?;
    let broker = ghapp_core::broker::Broker::new(app, Duration::from_secs(600), scratch.path())?;
    broker.load_key_now()?;
    let rt = crate::context::runtime()?;
    let info = rt.block_on(broker.app_info())?;
    Ok(info.slug.clone().unwrap_or_else(|| info.name.clone()))
}

pub(crate) fn run(args: &SetupArgs, ov: &Overrides) -> Result<std::process::ExitCode> {
    ghapp_core::log::init("ghapp");
    let target = Target::resolve(args.host.as_deref(), ov)?;
    let config = config_path(ov)?;
    check_no_conflict(&config, target.github.git_host(), args.org.as_deref())?;
    if let Some(u) = &args.webhook_url
        && !u.starts_with("https://")
    {
        bail!("--webhook-url {u:?} is not an https URL: GitHub delivers webhooks over https");
    }
    if let Some(n) = &args.name
        && (n.trim().is_empty() || n.chars().count() > 34)
    {
        bail!("--name {n:?}: GitHub App names are 1 to 34 characters");
    }
    let client = GitHubClient::new(target.github.api_url())?;

    let outcome = match &args.code {
        Some(code) => {
            let created = crate::context::runtime()?.block_on(convert(&client, code))?;
            persist(created, &target, args.key_file.as_deref(), &config)?
        }
        None => browser_flow(args, &target, &client, &config)?,
    };

    let c = &outcome.created;
    outln!(
        "created GitHub App \"{}\" (id {}, slug {}) owned by {}",
        c.name,
        c.id,
        c.slug,
        if c.owner.is_empty() { "?" } else { &c.owner }
    );
    outln!("private key: {}", describe(&outcome.key));
    if let Some(reason) = &outcome.keyring_skipped {
        eprintln!("ghapp: note: the OS keyring was not used ({reason})");
    }
    if let Some(w) = &outcome.webhook_secret {
        outln!("webhook secret: {}", describe(w));
    }
    outln!("config: [[app]] added to {}", outcome.config.display());
    let slug = verify(&outcome, &target).context(
        "the app was created and configured, but GitHub did not accept a JWT signed with its key",
    )?;
    outln!("check: GitHub accepted the app's JWT (GET /app answered for {slug})");
    outln!("install: {}", outcome.install_url);
    outln!(
        "next: install the app on the repositories it should reach (the URL above), then run `ghapp configure-git` and `ghapp doctor --repo OWNER/REPO`"
    );
    Ok(std::process::ExitCode::SUCCESS)
}

/// State shared by the local pages.
struct Flow {
    state: String,
    start: String,
    target: Target,
    client: GitHubClient,
    key_file: Option<PathBuf>,
    config: PathBuf,
    done: Mutex<Option<tokio::sync::oneshot::Sender<Result<Outcome>>>>,
}

fn browser_flow(
    args: &SetupArgs,
    target: &Target,
    client: &GitHubClient,
    config: &Path,
) -> Result<Outcome> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port))
            .await
            .with_context(|| format!("cannot listen on 127.0.0.1:{}", args.port))?;
        let addr = listener.local_addr()?;
        let state = format!("{:032x}", rand::random::<u128>());
        let name = args.name.clone().unwrap_or_else(|| {
            let base = match &args.org {
                Some(o) => format!("ghapp-{o}"),
                None => "ghapp".into(),
            };
            let base: String = base.chars().take(27).collect();
            format!("{base}-{:06x}", rand::random::<u128>() as u32 & 0xff_ffff)
        });
        let redirect = format!("http://{addr}/callback");
        let homepage = format!(
            "https://{}/{}",
            target.github.git_host(),
            args.org.as_deref().unwrap_or_default()
        );
        let m = manifest(&name, &homepage, &redirect, args.webhook_url.as_deref());
        let action = target.new_app_url(args.org.as_deref(), &state);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let flow = Arc::new(Flow {
            state,
            start: start_page(&action, &m),
            target: target.clone(),
            client: client.clone(),
            key_file: args.key_file.clone(),
            config: config.to_path_buf(),
            done: Mutex::new(Some(tx)),
        });
        let url = format!("http://{addr}/");
        eprintln!(
            "ghapp: open {url} in a browser on this machine to create the app \"{name}\" on {} (waiting up to {} s; Ctrl-C aborts)",
            target.web_url,
            args.timeout
        );
        eprintln!(
            "ghapp: without a browser here, forward the port (ssh -L {port}:127.0.0.1:{port}) or rerun with --code CODE using the code= from the address GitHub redirects to",
            port = addr.port()
        );
        if !args.no_browser {
            open_browser(&url);
        }
        let server = tokio::spawn(serve(listener, flow));
        let outcome = tokio::time::timeout(Duration::from_secs(args.timeout), rx).await;
        // Let the last page reach the browser.
        tokio::time::sleep(Duration::from_millis(200)).await;
        server.abort();
        match outcome {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => bail!("the setup page stopped unexpectedly"),
            Err(_) => bail!(
                "no answer from the browser within {} s: run `ghapp setup` again (or --timeout SECS)",
                args.timeout
            ),
        }
    })
}

async fn serve(listener: tokio::net::TcpListener, flow: Arc<Flow>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of descriptors or similar: do not spin.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let flow = flow.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| page_for(flow.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

async fn page_for(
    flow: Arc<Flow>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.method() != Method::GET {
        return Ok(page(
            StatusCode::METHOD_NOT_ALLOWED,
            "ghapp setup",
            "Only GET is served here.",
        ));
    }
    match req.uri().path() {
        "/" => Ok(Response::builder()
            .header("content-type", "text/html; charset=utf-8")
            .header("cache-control", "no-store")
            .body(Full::new(Bytes::from(flow.start.clone())))
            .expect("valid response")),
        "/callback" => Ok(callback(&flow, req.uri().query().unwrap_or("")).await),
        _ => Ok(page(StatusCode::NOT_FOUND, "ghapp setup", "Not found.")),
    }
}

async fn callback(flow: &Arc<Flow>, query: &str) -> Response<Full<Bytes>> {
    let param = |name: &str| {
        form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    if param("state").as_deref() != Some(flow.state.as_str()) {
        return page(
            StatusCode::BAD_REQUEST,
            "ghapp setup",
            "This link does not belong to the running `ghapp setup` (state mismatch). Start again from its own page.",
        );
    }
    let Some(code) = param("code") else {
        return page(
            StatusCode::BAD_REQUEST,
            "ghapp setup",
            "GitHub sent no code: start again.",
        );
    };
    let Some(done) = flow.done.lock().unwrap_or_else(|e| e.into_inner()).take() else {
        return page(
            StatusCode::CONFLICT,
            "ghapp setup",
            "This setup has already finished; see the terminal.",
        );
    };
    let result = match convert(&flow.client, &code).await {
        Ok(created) => {
            let (target, key_file, config) = (
                flow.target.clone(),
                flow.key_file.clone(),
                flow.config.clone(),
            );
            // The keyring's D-Bus client must not run on the async runtime.
            tokio::task::spawn_blocking(move || {
                persist(created, &target, key_file.as_deref(), &config)
            })
            .await
            .unwrap_or_else(|e| Err(anyhow::anyhow!("storing the key failed: {e}")))
        }
        Err(e) => Err(e),
    };
    let resp = match &result {
        Ok(o) => Response::builder()
            .status(StatusCode::FOUND)
            .header("location", o.install_url.as_str())
            .header("cache-control", "no-store")
            .body(Full::new(Bytes::from_static(b"")))
            .expect("valid response"),
        Err(e) => page(
            StatusCode::BAD_GATEWAY,
            "ghapp setup failed",
            &format!("{e:#}"),
        ),
    };
    let _ = done.send(result);
    resp
}

/// Tries `$BROWSER`, then `xdg-open` / `open`; failure is fine (the URL is printed).
fn open_browser(url: &str) {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return;
    }
    let candidates: Vec<String> = std::env::var("BROWSER")
        .ok()
        .filter(|b| !b.is_empty())
        .into_iter()
        .chain(["xdg-open".to_owned(), "open".to_owned()])
        .collect();
    for c in candidates {
        let spawned = std::process::Command::new(&c)
            .arg(url)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        if spawned.is_ok() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_is_minimal() {
        let m = manifest(
            "x",
            "https://github.com/my-org",
            "http://127.0.0.1:1/callback",
            None,
        );
        assert_eq!(m["url"], "https://github.com/my-org");
        assert_eq!(
            m["default_permissions"],
            serde_json::json!({"contents": "write", "pull_requests": "write", "metadata": "read"})
        );
        assert_eq!(m["hook_attributes"]["active"], false);
        assert_eq!(m["public"], false);
        let m = manifest(
            "x",
            "https://h/",
            "http://h/cb",
            Some("https://hooks.example/gh"),
        );
        assert_eq!(m["hook_attributes"]["url"], "https://hooks.example/gh");
        assert_eq!(m["hook_attributes"]["active"], true);
    }

    #[test]
    fn start_page_escapes_the_manifest() {
        let m = manifest("a\"<b>", "https://h/", "http://h/cb", None);
        let p = start_page("https://ghe/settings/apps/new?state=s&x=1", &m);
        assert!(!p.contains("a\"<b>"));
        assert!(p.contains("state=s&amp;x=1"));
    }

    #[test]
    fn targets() {
        let ov = Overrides::default();
        let t = Target::resolve(Some("github.com"), &ov).unwrap();
        assert_eq!(t.github.api_url(), "https://api.github.com");
        assert_eq!(t.web_url, "https://github.com");
        assert_eq!(
            t.new_app_url(Some("acme"), "s"),
            "https://github.com/organizations/acme/settings/apps/new?state=s"
        );
        let t = Target::resolve(Some("ghe.corp:8443"), &ov).unwrap();
        assert_eq!(t.github.api_url(), "https://ghe.corp:8443/api/v3");
        assert_eq!(t.web_url, "https://ghe.corp:8443");
        assert!(Target::resolve(Some("a/b"), &ov).is_err());
        assert!(!valid_code("../x"));
        assert!(valid_code("0a1b2c"));
    }
}
