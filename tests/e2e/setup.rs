//! `ghapp setup`: the manifest flow against fakehub, driven as a browser would drive it (an
//! HTTP client following the local page's form and GitHub's redirects), ending with a
//! configuration on which `ghapp token` and `git clone` work.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ghapp_e2e::{Run, World};

/// A browser: trusts fakehub's CA, follows nothing by itself.
struct Browser {
    http: reqwest::Client,
    rt: tokio::runtime::Runtime,
}

struct Page {
    status: u16,
    location: Option<String>,
    body: String,
}

impl Browser {
    fn new(w: &World) -> Browser {
        let ca = std::fs::read_to_string(w.hub.ca_path()).unwrap();
        let tls = ghapp_core::client::tls_config_with(Some(&ca)).unwrap();
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Browser { http, rt }
    }

    fn send(&self, req: reqwest::RequestBuilder) -> Page {
        self.rt.block_on(async {
            let r = req.send().await.expect("request");
            let status = r.status().as_u16();
            let location = r
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = r.text().await.unwrap_or_default();
            Page {
                status,
                location,
                body,
            }
        })
    }

    fn get(&self, url: &str) -> Page {
        self.send(self.http.get(url))
    }

    /// Posts an `application/x-www-form-urlencoded` form.
    fn post_form(&self, url: &str, fields: &[(&str, &str)]) -> Page {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        self.send(
            self.http
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body),
        )
    }
}

fn unescape_html(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The value of `attr="..."` after `marker` in `html`.
fn attr_after(html: &str, marker: &str, attr: &str) -> String {
    let from = html
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker} in {html}"));
    let rest = &html[from..];
    let key = format!("{attr}=\"");
    let start = rest.find(&key).expect("attribute") + key.len();
    let end = rest[start..].find('"').expect("closing quote") + start;
    unescape_html(&rest[start..end])
}

/// A running `ghapp setup` whose stderr is read line by line.
struct SetupProc {
    child: std::process::Child,
    lines: mpsc::Receiver<String>,
    stderr: Vec<String>,
}

impl SetupProc {
    fn start(w: &World, args: &[&str]) -> SetupProc {
        let mut cmd = Command::new("ghapp");
        cmd.env_clear();
        for (k, v) in w.env() {
            cmd.env(k, v);
        }
        let mut child = cmd
            .arg("setup")
            .args(args)
            .current_dir(w.root.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ghapp setup");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        SetupProc {
            child,
            lines,
            stderr: Vec::new(),
        }
    }

    /// The local page's URL, from the "open http://127.0.0.1:PORT/" line.
    fn page_url(&mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let Ok(l) = self.lines.recv_timeout(Duration::from_millis(200)) else {
                continue;
            };
            self.stderr.push(l.clone());
            if let Some(rest) = l.split("open ").nth(1)
                && rest.starts_with("http://127.0.0.1:")
            {
                return rest.split_whitespace().next().unwrap().to_owned();
            }
        }
        panic!("ghapp setup printed no page URL: {:?}", self.stderr);
    }

    fn finish(self) -> Run {
        let SetupProc {
            child,
            lines,
            mut stderr,
        } = self;
        let start = Instant::now();
        let out = ghapp_e2e::wait_bounded(child, Duration::from_secs(60), "ghapp setup");
        while let Ok(l) = lines.recv_timeout(Duration::from_millis(100)) {
            stderr.push(l);
        }
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: stderr.join("\n"),
            elapsed: start.elapsed(),
        }
    }
}

/// A world whose only app configuration is the file `setup` writes.
fn setup_world() -> (World, PathBuf) {
    let mut w = World::new();
    let cfg = w.path("home/.config/ghapp/config.toml");
    w.set_env("GHAPP_CONFIG", Some(cfg.to_str().unwrap()));
    for k in ["GHAPP_APP_ID", "GHAPP_PRIVATE_KEY_FILE", "GHAPP_API_URL"] {
        w.set_env(k, None);
    }
    (w, cfg)
}

/// The `code=` of a redirect to the manifest's `redirect_url`.
fn code_of(location: &str) -> String {
    location
        .split("code=")
        .nth(1)
        .and_then(|rest| rest.split('&').next())
        .unwrap_or_else(|| panic!("no code in {location}"))
        .to_owned()
}

/// Registers an app from `manifest` on fakehub's new-app page, as the browser would; the code.
fn register(browser: &Browser, new_app: &str, manifest: &str) -> String {
    let created = browser.post_form(new_app, &[("manifest", manifest)]);
    assert_eq!(created.status, 302, "{}", created.body);
    code_of(&created.location.unwrap())
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn line<'a>(r: &'a Run, prefix: &str) -> &'a str {
    r.stdout
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} line in {r:#?}"))
}

fn manifest_flow_ends_with_a_working_token() {
    let (w, cfg) = setup_world();
    let host = w.hub.git_host();
    let browser = Browser::new(&w);

    let mut setup = SetupProc::start(
        &w,
        &[
            "--host",
            &host,
            "--org",
            "octo-org",
            "--name",
            "ghapp e2e",
            "--no-browser",
        ],
    );
    let page = setup.page_url();

    // The local page posts the manifest to the organization's new-app page.
    let start = browser.get(&page);
    assert_eq!(start.status, 200);
    let action = attr_after(&start.body, "<form", "action");
    assert!(
        action.starts_with(&format!(
            "{}/organizations/octo-org/settings/apps/new?state=",
            w.hub.url()
        )),
        "{action}"
    );
    let manifest = attr_after(&start.body, "name=\"manifest\"", "value");
    let m: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    assert_eq!(
        m["default_permissions"],
        serde_json::json!({"contents": "write", "pull_requests": "write", "metadata": "read"})
    );
    assert_eq!(
        m["hook_attributes"]["active"], false,
        "no webhook unless asked"
    );

    // "GitHub" registers the app and redirects back with the code and our state.
    let created = browser.post_form(&action, &[("manifest", &manifest)]);
    assert_eq!(created.status, 302, "{}", created.body);
    let callback = created.location.unwrap();
    assert!(callback.starts_with(&page), "{callback}");
    let code = code_of(&callback);

    // A callback with another state is refused; the real one still works afterwards.
    let forged = browser.get(&format!("{page}callback?code={code}&state=forged"));
    assert_eq!(forged.status, 400);
    assert!(forged.body.contains("state mismatch"), "{}", forged.body);

    let done = browser.get(&callback);
    assert_eq!(done.status, 302, "{}", done.body);
    let install_url = done.location.unwrap();
    assert_eq!(
        install_url,
        format!("{}/apps/ghapp-e2e/installations/new", w.hub.url())
    );

    let run = setup.finish();
    assert!(run.success(), "{run:#?}");
    assert_eq!(line(&run, "install: "), install_url);
    assert!(
        line(&run, "check: ").contains("ghapp-e2e"),
        "the new key signs a JWT fakehub accepts: {run:#?}"
    );
    assert!(!run.stdout.contains("PRIVATE KEY") && !run.stderr.contains("PRIVATE KEY"));

    // Headless here: the key went to a 0600 file in a 0700 directory, named in the config.
    let key = line(&run, "private key: file ")
        .trim_end_matches(" (0600)")
        .to_owned();
    let key = PathBuf::from(key);
    assert_eq!(mode(&key), 0o600);
    assert_eq!(mode(key.parent().unwrap()), 0o700);
    assert!(
        run.stderr.contains("the OS keyring was not used"),
        "{run:#?}"
    );
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.contains("[[app]]") && text.contains(&key.display().to_string()));
    assert!(text.contains("owners = [\"octo-org\"]"), "{text}");

    // Before the app is installed, a token cannot be minted: the error says where to install.
    let r = w.ghapp(&["token", "--repo", "octo-org/widgets"]);
    assert!(!r.success());
    assert!(r.stderr.contains(&install_url), "{r:#?}");

    // The owner installs it on one repository.
    let installed = browser.post_form(
        &install_url,
        &[("account", "octo-org"), ("repositories", "widgets")],
    );
    assert_eq!(installed.status, 200, "{}", installed.body);

    // The configuration now works: a token from the new app, and git through the helper.
    let r = w.ghapp(&["token", "--repo", "octo-org/widgets", "--json"]);
    assert!(r.success(), "{r:#?}");
    let t: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let inst = t["installation_id"].as_u64().unwrap();
    assert!(
        inst != fakehub::ORG_INSTALLATION && inst != fakehub::USER_INSTALLATION,
        "minted by the new app's installation, not the seed app's: {inst}"
    );
    w.clone_repo("octo-org", "widgets", "widgets").ok();
    assert!(w.path("widgets/README.md").exists());
    assert_eq!(w.hub.counters().mints.last().unwrap().installation_id, inst);

    // The code was single-use.
    let again = w.ghapp(&[
        "setup",
        "--host",
        &host,
        "--code",
        &code,
        "--config",
        w.path("other.toml").to_str().unwrap(),
    ]);
    assert_eq!(again.code, Some(1), "{again:#?}");
    assert!(
        again.stderr.contains("already used or has expired"),
        "{again:#?}"
    );
    assert_eq!(again.stderr.trim().lines().count(), 1, "{again:#?}");
    assert!(!w.path("other.toml").exists());

    // A second setup for the same host and organization is refused before GitHub is asked.
    let posts = |w: &World| {
        w.hub
            .counters()
            .requests
            .get("web POST /organizations/{org}/settings/apps/new")
            .copied()
            .unwrap_or(0)
    };
    let before = posts(&w);
    let dup = w.ghapp(&[
        "setup",
        "--host",
        &host,
        "--org",
        "octo-org",
        "--no-browser",
    ]);
    assert_eq!(dup.code, Some(1), "{dup:#?}");
    assert!(dup.stderr.contains("already has an [[app]]"), "{dup:#?}");
    assert_eq!(posts(&w), before);
    w.assert_no_secrets();
}

fn expired_codes_and_bad_manifests_are_refused_clearly() {
    let (w, _cfg) = setup_world();
    let host = w.hub.git_host();
    let browser = Browser::new(&w);
    let new_app = format!("{}/settings/apps/new?state=s1", w.hub.url());
    let manifest = |name: &str| {
        serde_json::json!({
            "name": name,
            "url": "https://example.invalid/",
            "redirect_url": "http://127.0.0.1:9/callback",
            "default_permissions": {"contents": "read"},
            "hook_attributes": {"url": "https://example.invalid/hook", "active": false}
        })
        .to_string()
    };

    // fakehub is strict about the manifest, as GitHub is.
    let no_name = browser.post_form(
        &new_app,
        &[(
            "manifest",
            r#"{"url": "https://x.invalid/", "redirect_url": "http://127.0.0.1:9/"}"#,
        )],
    );
    assert_eq!(no_name.status, 422);
    assert!(no_name.body.contains("Name can"), "{}", no_name.body);
    let taken = browser.post_form(&new_app, &[("manifest", &manifest("ghapp fakehub"))]);
    assert_eq!(taken.status, 422);
    assert!(taken.body.contains("already taken"), "{}", taken.body);
    let hook = browser.post_form(
        &new_app,
        &[(
            "manifest",
            r#"{"name": "hooked", "url": "https://x.invalid/", "redirect_url": "http://127.0.0.1:9/", "hook_attributes": {"active": true}}"#,
        )],
    );
    assert_eq!(hook.status, 422, "a webhook needs a URL");
    let inactive_no_url = browser.post_form(
        &new_app,
        &[(
            "manifest",
            r#"{"name": "inactive", "url": "https://x.invalid/", "redirect_url": "http://127.0.0.1:9/", "hook_attributes": {"active": false}}"#,
        )],
    );
    assert_eq!(
        inactive_no_url.status, 422,
        "even an inactive webhook needs a URL"
    );

    // A code not converted within the hour has expired.
    let created = browser.post_form(&new_app, &[("manifest", &manifest("late app"))]);
    assert_eq!(created.status, 302, "{}", created.body);
    let location = created.location.unwrap();
    assert!(location.ends_with("&state=s1"), "{location}");
    let code = code_of(&location);
    w.hub.set_clock_skew(3601);
    let late = w.ghapp(&["setup", "--host", &host, "--code", &code]);
    w.hub.set_clock_skew(0);
    assert_eq!(late.code, Some(1), "{late:#?}");
    assert!(late.stderr.contains("has expired"), "{late:#?}");
    assert!(late.stderr.contains("run `ghapp setup` again"), "{late:#?}");
    assert_eq!(late.stderr.trim().lines().count(), 1, "{late:#?}");

    // A code that is not one is refused before any request.
    let bad = w.ghapp(&["setup", "--host", &host, "--code", "../../app"]);
    assert_eq!(bad.code, Some(1));
    assert!(bad.stderr.contains("is not a manifest code"), "{bad:#?}");

    // --key-file: a fresh code converts into a key file of the user's choosing.
    let code = register(&browser, &new_app, &manifest("keyfile app"));
    let key = w.path("secrets/app.pem");
    // Sent once: a rate-limited conversion is not retried (a retry after GitHub consumed the
    // code would read as "used"), and the code stays good for the next attempt.
    w.hub.rate_limit_next(1, 429, 1);
    let limited = w.ghapp(&["setup", "--host", &host, "--code", &code]);
    limited.one_line_error("ghapp", "GitHub answered 429");
    assert!(
        limited.stderr.contains("the code was not converted"),
        "{limited:#?}"
    );
    let ok = w.ghapp(&[
        "setup",
        "--host",
        &host,
        "--code",
        &code,
        "--key-file",
        key.to_str().unwrap(),
    ]);
    assert!(ok.success(), "{ok:#?}");
    assert_eq!(mode(&key), 0o600);
    assert!(
        line(&ok, "private key: file ").starts_with(key.to_str().unwrap()),
        "{ok:#?}"
    );
    assert!(line(&ok, "created GitHub App ").contains("owned by octo-user"));

    // A webhook: only an https URL is accepted; the secret is kept like the key, never shown.
    let bad = w.ghapp(&[
        "setup",
        "--host",
        &host,
        "--webhook-url",
        "http://hooks.invalid/gh",
    ]);
    bad.one_line_error("ghapp", "is not an https URL");
    let hooked = serde_json::json!({
        "name": "hooked app",
        "url": "https://example.invalid/",
        "redirect_url": "http://127.0.0.1:9/callback",
        "default_permissions": {"contents": "read"},
        "hook_attributes": {"url": "https://hooks.example.invalid/gh", "active": true}
    })
    .to_string();
    let code = register(&browser, &new_app, &hooked);
    let other = w.path("hooked.toml");
    let other = other.to_str().unwrap();
    let ok = w.ghapp(&["setup", "--host", &host, "--code", &code, "--config", other]);
    assert!(ok.success(), "{ok:#?}");
    let secret = PathBuf::from(
        line(&ok, "webhook secret: file ")
            .trim_end_matches(" (0600)")
            .to_owned(),
    );
    assert_eq!(mode(&secret), 0o600);
    assert!(secret.extension().is_some_and(|e| e == "txt"), "{secret:?}");
    let value = std::fs::read_to_string(&secret).unwrap();
    assert!(value.len() >= 20);
    assert!(!ok.stdout.contains(&value) && !ok.stderr.contains(&value));
    let hooks = w.ghapp(&["hooks", "config", "--config", other]);
    hooks.ok();
    assert!(
        hooks
            .stdout
            .contains("url: https://hooks.example.invalid/gh"),
        "{hooks:#?}"
    );
    assert!(hooks.stdout.contains("secret: set (masked)"), "{hooks:#?}");
    w.assert_no_secrets();
}

/// This module's tests, for the runner (`main.rs`).
pub(crate) const TESTS: &[(&str, fn())] = &[
    (
        "manifest_flow_ends_with_a_working_token",
        manifest_flow_ends_with_a_working_token,
    ),
    (
        "expired_codes_and_bad_manifests_are_refused_clearly",
        expired_codes_and_bad_manifests_are_refused_clearly,
    ),
];
