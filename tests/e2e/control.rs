//! The proxy's control plane (issue 14): sandboxes added, changed and disconnected through the
//! admin API (driven by `ghapp sandbox`), on SQLite and on a real PostgreSQL, one proxy or two.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ghapp_e2e::{ProxyProc, Run, Sandbox as Sb, World, curl_local};

const ADMIN_TOKEN: &str = "admin-token-0123456789abcdef";

/// A proxy with an admin API and a webhook receiver on `state`, no sandbox of its own.
fn proxy(w: &World, state: &str) -> ProxyProc {
    proxy_with(w, state, "")
}

/// As [`proxy`], with `extra` settings first.
fn proxy_with(w: &World, state: &str, extra: &str) -> ProxyProc {
    let token = w.path("admin-token");
    std::fs::write(&token, ADMIN_TOKEN).unwrap();
    let hook = w.path("hook-secret");
    std::fs::write(&hook, HOOK_SECRET).unwrap();
    w.start_proxy(
        "",
        &format!(
            "{extra}admin_listen = \"127.0.0.1:0\"\nadmin_token = {{ file = {:?} }}\nstate = {state:?}\nwebhook_listen = \"127.0.0.1:0\"\nwebhook_secret = {{ file = {:?} }}\n",
            token.display().to_string(),
            hook.display().to_string()
        ),
    )
}

/// `ghapp sandbox ARGS` against `p`'s admin API.
fn ghapp_sandbox(w: &World, p: &ProxyProc, args: &[&str]) -> Run {
    let mut env = w.env().to_vec();
    env.push(("GHAPP_ADMIN_URL".to_owned(), p.admin_url.clone().unwrap()));
    env.push(("GHAPP_ADMIN_TOKEN".to_owned(), ADMIN_TOKEN.to_owned()));
    let mut all = vec!["sandbox"];
    all.extend_from_slice(args);
    w.cmd("ghapp")
        .env(&env)
        .args(&all)
        .dir(w.root.path())
        .carries_secrets()
        .run()
}

/// The `export K='V'` lines `ghapp sandbox add` printed, as a sandbox's environment (with git
/// kept away from the user's configuration).
fn environment(w: &World, name: &str, printed: &str) -> Vec<(String, String)> {
    let home = w.path(&format!("home-{name}"));
    std::fs::create_dir_all(&home).unwrap();
    let cfg = home.join("gitconfig");
    std::fs::write(&cfg, "").unwrap();
    let mut env: Vec<(String, String)> = Vec::new();
    for line in printed.lines().filter_map(|l| l.strip_prefix("export ")) {
        let (k, v) = line.split_once('=').unwrap();
        env.push((k.to_owned(), v.trim_matches('\'').to_owned()));
    }
    let ca = env
        .iter()
        .find(|(k, _)| k == "GIT_SSL_CAINFO")
        .map(|(_, v)| PathBuf::from(v))
        .expect("the CA variable");
    let mut all = fakehub::isolated_git_env(
        &std::env::var("PATH").unwrap_or_default(),
        &home,
        &cfg,
        &ca,
        "Sandbox Agent",
    );
    all.retain(|(k, _)| !env.iter().any(|(e, _)| e == k));
    all.extend(env);
    all
}

/// The sandbox's secret, from its `HTTPS_PROXY`.
fn proxy_secret(env: &[(String, String)]) -> String {
    let proxy = var(env, "HTTPS_PROXY");
    let creds = proxy.rsplit_once('@').unwrap().0;
    creds.rsplit_once(':').unwrap().1.to_owned()
}

fn var(env: &[(String, String)], key: &str) -> String {
    env.iter().find(|(k, _)| k == key).unwrap().1.clone()
}

/// `env` pointed at another proxy (its port), same credentials.
fn repointed(env: &[(String, String)], p: &ProxyProc) -> Vec<(String, String)> {
    let proxy = var(env, "HTTPS_PROXY");
    let (creds, _) = proxy.rsplit_once('@').unwrap();
    let mut out = env.to_vec();
    for (k, v) in out.iter_mut() {
        if k == "HTTPS_PROXY" {
            *v = format!("{creds}@{}", p.addr);
        }
    }
    out
}

fn admin_get(url: &str, token: Option<&str>) -> u16 {
    let auth = token.map(|t| format!("Authorization: Bearer {t}"));
    let mut args = vec!["-o", "/dev/null", "-w", "%{http_code}"];
    if let Some(a) = &auth {
        args.extend(["-H", a.as_str()]);
    }
    let url = format!("{url}/v1/sandboxes");
    args.push(&url);
    curl_local(args).parse().unwrap_or(0)
}

/// The whole life of a sandbox on one store: add, use, re-point, disconnect mid-clone,
/// restart.
fn lifecycle(w: &World, state: &str) {
    let p = proxy(w, state);
    // The admin API wants its token, and is not served on the sandbox listener.
    let admin = p.admin_url.clone().unwrap();
    assert_eq!(admin_get(&admin, None), 401);
    assert_eq!(admin_get(&admin, Some("wrong-token-0123456789")), 401);
    assert_eq!(admin_get(&admin, Some(ADMIN_TOKEN)), 200);
    assert_eq!(
        admin_get(&format!("http://{}", p.addr), Some(ADMIN_TOKEN)),
        405
    );

    let ca = w.path("agent-x-ca.pem");
    let add = ghapp_sandbox(
        w,
        &p,
        &[
            "add",
            "agent-x",
            "--repo",
            "octo-org/widgets",
            "--push",
            "agent/*",
            "--ca-file",
            &ca.display().to_string(),
        ],
    );
    add.ok();
    assert!(
        add.stdout.contains("export HTTPS_PROXY='http://agent-x:"),
        "{add:#?}"
    );
    let env = environment(w, "agent-x", &add.stdout);
    let sb = Sb {
        w,
        env: env.clone(),
    };
    sb.clone("octo-org", "widgets", "x-widgets", &[]).ok();
    let work = w.path("x-widgets");
    sb.push_new_branch(
        &work,
        "agent/x",
        "x.txt",
        b"from a sandbox added at run time\n",
    );
    let list = ghapp_sandbox(w, &p, &["list"]);
    list.ok();
    assert!(
        list.stdout.contains(
            "agent-x\tstore\tautonomous\trepos=octo-org/widgets\tpush=refs/heads/agent/*\tactive"
        ),
        "{list:#?}"
    );

    // Re-pointed: the old repository is refused at once, the new one works.
    ghapp_sandbox(w, &p, &["set", "agent-x", "--repo", "octo-org/gadgets"]).ok();
    let r = sb.git(&work, &["fetch", "origin"]);
    r.fails();
    assert!(
        r.stderr
            .contains("is not among sandbox agent-x's repositories"),
        "{r:#?}"
    );
    sb.clone("octo-org", "gadgets", "x-gadgets", &[]).ok();

    // Disconnect while a clone is under way: the clone fails, the token is revoked at GitHub.
    w.hub.stall_git(Some("octo-org/gadgets"), 4_000);
    let issued_before = w.hub.issued_tokens().len();
    let cloning = std::thread::scope(|s| {
        let clone = s.spawn(|| sb.clone("octo-org", "gadgets", "x-cut", &[]));
        std::thread::sleep(Duration::from_millis(1_500));
        let d = ghapp_sandbox(w, &p, &["disconnect", "agent-x"]);
        d.ok();
        assert!(
            d.stdout
                .contains("agent-x: disconnected (1 token(s) revoked)"),
            "{d:#?}"
        );
        clone.join().unwrap()
    });
    w.hub.stall_git(None, 0);
    cloning.fails();
    assert_eq!(
        w.hub.issued_tokens().len(),
        issued_before,
        "nothing new minted"
    );
    let revoked = w
        .hub
        .requests()
        .iter()
        .any(|r| r.method == "DELETE" && r.target.ends_with("/installation/token"));
    assert!(revoked, "fakehub saw the revocation");
    // The token it held no longer works at GitHub.
    let token = w.hub.issued_tokens().last().cloned().unwrap();
    let url = w
        .hub
        .repo_url("octo-org", "gadgets")
        .replace("https://", &format!("https://x-access-token:{token}@"));
    w.git(w.root.path(), &["ls-remote", &url]).fails();
    // A new tunnel is refused with the reason.
    let secret = proxy_secret(&env);
    let (a, _) = p
        .connect(Some(("agent-x", &secret)), &w.hub.git_host())
        .unwrap();
    assert_eq!(a.status, 407, "{a:#?}");
    assert!(a.body.contains("sandbox agent-x is disconnected"), "{a:#?}");

    // Another sandbox, then a restart on the same store: it is still there.
    let add = ghapp_sandbox(
        w,
        &p,
        &[
            "add",
            "agent-y",
            "--repo",
            "octo-org/widgets",
            "--ca-file",
            &w.path("agent-y-ca.pem").display().to_string(),
        ],
    );
    add.ok();
    let env_y = environment(w, "agent-y", &add.stdout);
    drop(p);
    let p = proxy(w, state);
    // The CA is new with the proxy's new directory: fetch it as a sandbox would.
    let ca_y = w.path("agent-y-ca.pem");
    std::fs::copy(&p.ca_path, &ca_y).unwrap();
    let sb = Sb {
        w,
        env: repointed(&env_y, &p),
    };
    sb.clone("octo-org", "widgets", "y-widgets", &[]).ok();
    let (a, _) = p
        .connect(Some(("agent-x", &secret)), &w.hub.git_host())
        .unwrap();
    assert_eq!(
        a.status, 407,
        "still disconnected after the restart: {a:#?}"
    );

    // Sandboxes of one scope share its token: disconnecting one leaves it to the other (no
    // revocation, no new mint, the other's next fetch works).
    let add = ghapp_sandbox(
        w,
        &p,
        &[
            "add",
            "agent-z",
            "--repo",
            "octo-org/widgets",
            "--ca-file",
            &w.path("agent-z-ca.pem").display().to_string(),
        ],
    );
    add.ok();
    let z = Sb {
        w,
        env: environment(w, "agent-z", &add.stdout),
    };
    z.clone("octo-org", "widgets", "z-widgets", &[]).ok();
    let (minted, requests) = (w.hub.issued_tokens().len(), w.hub.requests().len());
    let d = ghapp_sandbox(w, &p, &["disconnect", "agent-y"]);
    assert!(
        d.stdout
            .contains("agent-y: disconnected (0 token(s) revoked)"),
        "{d:#?}"
    );
    z.git(&w.path("z-widgets"), &["fetch", "--quiet", "origin"])
        .ok();
    assert_eq!(w.hub.issued_tokens().len(), minted, "nothing minted");
    assert!(
        !w.hub.requests()[requests..]
            .iter()
            .any(|r| r.method == "DELETE" && r.target.ends_with("/installation/token")),
        "the shared token was not revoked"
    );
    w.capture(p.log());
    w.capture(std::fs::read_to_string(&p.audit_path).unwrap_or_default());
    w.assert_no_secrets();
}

fn sandboxes_come_and_go_on_sqlite() {
    let w = World::new();
    let state = format!("sqlite:{}", w.path("state/proxy.db").display());
    lifecycle(&w, &state);
}

fn sandboxes_come_and_go_on_postgres() {
    let w = World::new();
    let Some(pg) = ghapp_e2e::Postgres::start(w.root.path()) else {
        panic!("PostgreSQL is not installed: apt-get install postgresql (.ci/run does)");
    };
    lifecycle(&w, &pg.url());
}

fn two_replicas_on_one_postgres_serve_the_same_sandboxes_and_approvals() {
    let w = World::new();
    let Some(pg) = ghapp_e2e::Postgres::start(w.root.path()) else {
        panic!("PostgreSQL is not installed: apt-get install postgresql (.ci/run does)");
    };
    let a = proxy(&w, &pg.url());
    let b = proxy(&w, &pg.url());
    // Added on A, used on B within 2 s (B's CA is B's own).
    let add = ghapp_sandbox(
        &w,
        &a,
        &[
            "add",
            "agent-r",
            "--repo",
            "octo-org/widgets",
            "--push",
            "agent/*",
            "--ca-file",
            &w.path("r-ca.pem").display().to_string(),
        ],
    );
    add.ok();
    let added = Instant::now();
    std::fs::copy(&b.ca_path, w.path("r-ca.pem")).unwrap();
    let env = repointed(&environment(&w, "agent-r", &add.stdout), &b);
    let secret = proxy_secret(&env);
    loop {
        let (r, _) = b
            .connect(Some(("agent-r", &secret)), &w.hub.git_host())
            .unwrap();
        if r.status == 200 {
            break;
        }
        assert!(
            added.elapsed() < Duration::from_secs(2),
            "B did not see the sandbox: {r:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let sb = Sb {
        w: &w,
        env: env.clone(),
    };
    sb.clone("octo-org", "widgets", "r-widgets", &[]).ok();

    // Moved to learning on A: B holds its next pull request; approved through A, the pull
    // request exists and gh-pr through B prints it.
    ghapp_sandbox(&w, &a, &["set", "agent-r", "--mode", "learning"]).ok();
    let set = Instant::now();
    while !ghapp_sandbox(&w, &b, &["show", "agent-r", "--json"])
        .ok()
        .stdout
        .contains("\"learning\"")
    {
        assert!(
            set.elapsed() < Duration::from_secs(2),
            "B did not see the mode"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let work = w.path("r-widgets");
    sb.push_new_branch(&work, "agent/r", "r.txt", b"through B\n");
    sb.git(&work, &["branch", "--set-upstream-to", "origin/agent/r"])
        .ok();
    let held = gh_pr_open(&w, &env, &work, &["--title", "Held on B"]);
    assert_eq!(held.code, Some(3), "{held:#?}");
    assert!(held.stdout.starts_with("held for approval 1:"), "{held:#?}");
    let pending = ghapp_approvals(&w, &a, &["list"]);
    assert!(
        pending
            .ok()
            .stdout
            .contains("agent-r\tocto-org/widgets\tagent/r -> main\tHeld on B"),
        "A lists what B held: {pending:#?}"
    );
    // Signed in on A's approvals page, the same session is good on B's (behind a load
    // balancer, the next page may come from either).
    let head = curl_local([
        "-o",
        "/dev/null",
        "-D",
        "-",
        "--data",
        &format!("token={ADMIN_TOKEN}"),
        &format!("{}/signin", a.admin_url.clone().unwrap()),
    ]);
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .and_then(|c| c.split(';').next())
        .unwrap_or_else(|| panic!("no session cookie: {head}"))
        .to_owned();
    let page = curl_local([
        "-w",
        "\n%{http_code}",
        "-H",
        &format!("Cookie: {cookie}"),
        &format!("{}/approvals", b.admin_url.clone().unwrap()),
    ]);
    assert!(
        page.ends_with("\n200") && page.contains("Held on B"),
        "B's page with A's session: {page}"
    );
    ghapp_approvals(&w, &a, &["approve", "1"]).ok();
    assert_eq!(w.hub.pulls().len(), 1);
    let r = gh_pr_open(&w, &env, &work, &["--title", "Held on B"]);
    assert!(
        r.ok().stdout.trim().ends_with("/octo-org/widgets/pull/1"),
        "{r:#?}"
    );

    // Moved to observe on B: a push through B is recorded (on PostgreSQL, its bundle too) and
    // shown by A.
    ghapp_sandbox(&w, &b, &["set", "agent-r", "--mode", "observe"]).ok();
    let set = Instant::now();
    while !ghapp_sandbox(&w, &a, &["show", "agent-r", "--json"])
        .ok()
        .stdout
        .contains("\"observe\"")
    {
        assert!(
            set.elapsed() < Duration::from_secs(2),
            "A did not see the mode"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    sb.commit(&work, "s.txt", b"seen, not pushed\n");
    let r = sb.git(&work, &["push", "origin", "agent/r"]);
    assert!(
        r.stderr
            .contains("(observe mode: recorded as proposal 1, not pushed)"),
        "{r:#?}"
    );
    let shown = ghapp_admin(&w, &a, "proposals", &["show", "1"]);
    assert!(
        shown.ok().stdout.contains("+seen, not pushed"),
        "{shown:#?}"
    );
    let file = w.path("r1.bundle").display().to_string();
    ghapp_admin(&w, &a, "proposals", &["bundle", "1", "-o", &file]).ok();
    sb.git(&work, &["bundle", "verify", "--quiet", &file]).ok();

    // A tunnel open on A closes within 2 s of a disconnect made on B.
    let mut t = a.tunnel("agent-r", &secret, &w.hub.git_host());
    let head = t.get_keep_alive("/octo-org/widgets.git/info/refs?service=git-upload-pack");
    assert!(head.is_ok());
    ghapp_sandbox(&w, &b, &["disconnect", "agent-r"]).ok();
    let cut = Instant::now();
    loop {
        match t.get_keep_alive("/octo-org/widgets.git/info/refs?service=git-upload-pack") {
            Err(_) => break,
            Ok(r) if r.status != 200 => break,
            Ok(_) => {}
        }
        assert!(
            cut.elapsed() < Duration::from_secs(2),
            "A's tunnel is still open"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

const HOOK_SECRET: &str = "webhook-secret-0123456789";

/// A JWT of fakehub's app, as the app's owner would sign one.
fn app_jwt(w: &World) -> String {
    let ident = ghapp_core::config::AppIdent {
        app_id: Some(w.hub.app_id()),
        client_id: None,
    };
    let key = ghapp_core::secret::PrivateKeyPem::new(w.hub.private_key_pem());
    let signer = ghapp_core::jwt::AppSigner::new(ident, &key, "fakehub").unwrap();
    signer.sign().unwrap().expose().to_owned()
}

/// `sha256=HEX`: the HMAC-SHA256 of `body` with `secret`, as GitHub signs a delivery.
pub(crate) fn signature(body: &str, secret: &str) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

/// A delivery as GitHub sends it: signed with `secret`; the answer's status and body.
fn deliver(url: &str, id: &str, event: &str, body: &str, secret: &str) -> (u16, String) {
    let sig = signature(body, secret);
    let text = curl_local([
        "-w",
        "\n%{http_code}",
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "-H",
        &format!("X-GitHub-Event: {event}"),
        "-H",
        &format!("X-GitHub-Delivery: {id}"),
        "-H",
        &format!("X-Hub-Signature-256: {sig}"),
        "--data-binary",
        body,
        url,
    ]);
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap(), body.to_owned())
}

fn webhooks_are_verified_and_act_once() {
    let w = World::new();
    let secret = w.path("hook-secret");
    std::fs::write(&secret, HOOK_SECRET).unwrap();
    let events = w.path("events.jsonl");
    let p = w.start_proxy(
        &ghapp_e2e::two_sandboxes(""),
        &format!(
            "webhook_listen = \"127.0.0.1:0\"\nwebhook_secret = {{ file = {:?} }}\nevents_log = {:?}\nstate = {:?}\n",
            secret.display().to_string(),
            events.display().to_string(),
            format!("sqlite:{}", w.path("state.db").display()),
        ),
    );
    let url = p.webhook_url.clone().unwrap();
    let sb = Sb::new(&w, &p, "agent-a", ghapp_e2e::SECRET_A);
    sb.clone("octo-org", "widgets", "before", &[]).ok();
    let mints = w.hub.mint_count();

    let (code, body) = deliver(
        &url,
        "d-ping",
        "ping",
        r#"{"zen":"Keep it logically awesome.","hook_id":1}"#,
        HOOK_SECRET,
    );
    assert_eq!((code, body.contains("pong")), (200, true), "{body}");
    let deleted = r#"{"action":"deleted","installation":{"id":101,"account":{"login":"octo-org","id":9000}}}"#;
    // A wrong signature: 401, nothing changes.
    let (code, _) = deliver(
        &url,
        "d-forged",
        "installation",
        deleted,
        "not-the-secret-0123",
    );
    assert_eq!(code, 401);
    sb.clone("octo-org", "widgets", "still", &[]).ok();
    assert_eq!(w.hub.mint_count(), mints, "the cached token still serves");

    // Signed, but GitHub still has the installation (a captured delivery replayed under a new
    // id, GitHub signs only the body): confirmed with GitHub, not acted on.
    let (code, body) = deliver(&url, "d-replayed", "installation", deleted, HOOK_SECRET);
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("not acted on: GitHub still has it active"),
        "{body}"
    );
    sb.clone("octo-org", "widgets", "replayed", &[]).ok();

    // Uninstalled at GitHub for real: the installation's tokens are dropped and the owner is
    // refused, clearly.
    let jwt = app_jwt(&w);
    let gone = curl_local([
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--cacert",
        &w.hub.ca_path().display().to_string(),
        "-X",
        "DELETE",
        "-H",
        &format!("Authorization: Bearer {jwt}"),
        &format!("{}/app/installations/101", w.hub.api_url()),
    ]);
    assert_eq!(gone, "204");
    let (code, body) = deliver(&url, "d-1", "installation", deleted, HOOK_SECRET);
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("the app was removed from octo-org: 1 cached token(s) dropped"),
        "{body}"
    );
    let r = sb.clone("octo-org", "widgets", "after", &[]);
    r.fails();
    assert!(
        r.stderr.contains("the app was removed from octo-org"),
        "{r:#?}"
    );
    assert_eq!(
        w.hub.mint_count(),
        mints,
        "nothing minted for a removed owner"
    );
    // A redelivery acts once.
    let (code, body) = deliver(&url, "d-1", "installation", deleted, HOOK_SECRET);
    assert_eq!(
        (code, body.contains("already processed")),
        (200, true),
        "{body}"
    );
    let logged = std::fs::read_to_string(&events).unwrap();
    assert_eq!(
        logged.lines().count(),
        3,
        "ping and two installation events: {logged}"
    );
    assert!(logged.contains(r#""action":"deleted""#));
    // A replayed `created` for the old installation is not believed either.
    let created = deleted.replace("deleted", "created");
    let (_, body) = deliver(&url, "d-2", "installation", &created, HOOK_SECRET);
    assert!(body.contains("not acted on"), "{body}");
    // The app installed again (a new installation): tokens are minted again.
    let installed = curl_local([
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--cacert",
        &w.hub.ca_path().display().to_string(),
        "--data",
        "account=octo-org&repositories=widgets,gadgets",
        &format!("{}/apps/ghapp-fakehub/installations/new", w.hub.url()),
    ]);
    assert!(
        installed.starts_with('2') || installed.starts_with('3'),
        "{installed}"
    );
    let again = w.hub.installation_for("octo-org").expect("installed again");
    let created = created.replace("\"id\":101", &format!("\"id\":{again}"));
    let (_, body) = deliver(&url, "d-3", "installation", &created, HOOK_SECRET);
    assert!(body.contains("the app serves octo-org"), "{body}");
    sb.clone("octo-org", "widgets", "again", &[]).ok();
    assert_eq!(w.hub.mint_count(), mints + 1);

    // `ghapp hooks verify` for users' own receivers.
    let sig = signature(deleted, HOOK_SECRET);
    let ok = w
        .cmd("ghapp")
        .args(&[
            "hooks",
            "verify",
            "--secret-file",
            &secret.display().to_string(),
            "--signature",
            &sig,
        ])
        .stdin(deleted)
        .run();
    ok.ok();
    assert_eq!(ok.stdout.trim(), "ok");
    w.cmd("ghapp")
        .args(&[
            "hooks",
            "verify",
            "--secret-file",
            &secret.display().to_string(),
            "--signature",
            &sig,
        ])
        .stdin("tampered")
        .run()
        .one_line_error("ghapp", "the signature does not match");
}

fn a_learning_sandbox_s_pull_requests_wait_for_a_human() {
    let w = World::new();
    let p = proxy(&w, &format!("sqlite:{}", w.path("state.db").display()));
    let env = add_sandbox(&w, &p, "learner", "learning");
    let sb = Sb {
        w: &w,
        env: env.clone(),
    };
    sb.clone("octo-org", "widgets", "learn", &[]).ok();
    let work = w.path("learn");
    sb.push_new_branch(&work, "agent/learn", "l.txt", b"learning\n");
    sb.git(
        &work,
        &["branch", "--set-upstream-to", "origin/agent/learn"],
    )
    .ok();
    let open =
        |title: &str| gh_pr_open(&w, &env, &work, &["--title", title, "--body", "Why: tests"]);

    // Held: its own exit status and a line naming the approval; asked again, the same one.
    let r = open("Learned");
    assert_eq!(r.code, Some(3), "{r:#?}");
    assert!(
        r.stdout
            .starts_with("held for approval 1: sandbox learner is in learning mode"),
        "{r:#?}"
    );
    let r = open("Learned");
    assert_eq!(r.code, Some(3), "{r:#?}");
    assert!(r.stdout.starts_with("held for approval 1:"), "{r:#?}");
    assert!(w.hub.pulls().is_empty(), "nothing reached GitHub");
    let list = ghapp_approvals(&w, &p, &["list"]);
    list.ok();
    assert_eq!(
        list.stdout.lines().count(),
        2,
        "a header and one: {list:#?}"
    );
    assert!(
        list.stdout
            .starts_with("ID\tSANDBOX\tREPOSITORY\tHEAD -> BASE\tTITLE\tSTATE\n")
    );
    assert!(
        list.stdout
            .contains("learner\tocto-org/widgets\tagent/learn -> main\tLearned\tpending"),
        "{list:#?}"
    );

    // Approved through the CLI: the proxy opens it with the sandbox's token; gh-pr then
    // prints its URL.
    let a = ghapp_approvals(&w, &p, &["approve", "1"]);
    a.ok();
    assert!(a.stdout.contains("approved by"), "{a:#?}");
    let pulls = w.hub.pulls();
    assert_eq!((pulls.len(), pulls[0].head.as_str()), (1, "agent/learn"));
    let r = open("Learned");
    r.ok();
    assert!(
        r.stdout.trim().ends_with("/octo-org/widgets/pull/1"),
        "{r:#?}"
    );

    // Another, denied: gh-pr fails with the reason.
    sb.push_new_branch(&work, "agent/learn2", "m.txt", b"more\n");
    sb.git(
        &work,
        &["branch", "--set-upstream-to", "origin/agent/learn2"],
    )
    .ok();
    let r = open("Second");
    assert_eq!(r.code, Some(3), "{r:#?}");
    assert!(r.stdout.starts_with("held for approval 2:"), "{r:#?}");
    ghapp_approvals(
        &w,
        &p,
        &["deny", "2", "--reason", "split it into two changes"],
    )
    .ok();
    let r = open("Second");
    r.fails();
    assert!(
        r.stderr.contains("was denied by") && r.stderr.contains("split it into two changes"),
        "{r:#?}"
    );
    // Said as the proxy's refusal, with what to do, not a guess about permissions.
    assert!(
        r.stderr.contains(
            "gh-pr: ghapp proxy refused to open a pull request in octo-org/widgets (403)"
        ) && r
            .stderr
            .contains("to ask again, push new commits or change the title or body")
            && !r.stderr.contains("lack permission"),
        "{r:#?}"
    );
    assert_eq!(w.hub.pulls().len(), 1);
    // A denial is of what was shown: another title is a new request.
    let r = open("Second, split");
    assert_eq!(r.code, Some(3), "{r:#?}");
    assert!(r.stdout.starts_with("held for approval 3:"), "{r:#?}");
    let shown = ghapp_approvals(&w, &p, &["show", "2"]);
    assert!(
        shown.stdout.contains("denied by") && shown.stdout.contains("Why: tests"),
        "{shown:#?}"
    );
    // A held one whose head GitHub deleted is closed with that reason (the delete event).
    sb.push_new_branch(&work, "agent/learn3", "n.txt", b"third\n");
    sb.git(
        &work,
        &["branch", "--set-upstream-to", "origin/agent/learn3"],
    )
    .ok();
    assert_eq!(open("Third").code, Some(3), "approval 4");
    let deleted = r#"{"ref":"agent/learn3","ref_type":"branch","pusher_type":"user","repository":{"full_name":"octo-org/widgets"},"installation":{"id":101}}"#;
    let (code, body) = deliver(
        &p.webhook_url.clone().unwrap(),
        "del-1",
        "delete",
        deleted,
        HOOK_SECRET,
    );
    assert_eq!(code, 200, "{body}");
    let shown = ghapp_approvals(&w, &p, &["show", "4"]);
    assert!(
        shown
            .stdout
            .contains("closed by GitHub: GitHub deleted its head branch agent/learn3"),
        "{shown:#?}"
    );
    // Every decision is in the audit.
    let audit = std::fs::read_to_string(&p.audit_path).unwrap();
    assert!(audit.contains("approval 1 approved by") && audit.contains("approval 2 denied by"));
    assert!(audit.contains(r#""decision":"held""#));
}

/// Adds sandbox `name` (octo-org/widgets, pushing `agent/*`, in `mode`) through `ghapp sandbox
/// add`; its printed environment.
fn add_sandbox(w: &World, p: &ProxyProc, name: &str, mode: &str) -> Vec<(String, String)> {
    let ca = w.path(&format!("{name}-ca.pem")).display().to_string();
    let add = ghapp_sandbox(
        w,
        p,
        &[
            "add",
            name,
            "--repo",
            "octo-org/widgets",
            "--push",
            "agent/*",
            "--mode",
            mode,
            "--ca-file",
            &ca,
        ],
    );
    add.ok();
    environment(w, name, &add.stdout)
}

/// `gh-pr open ARGS` in a sandbox's checkout, with only the sandbox's environment.
pub(crate) fn gh_pr_open(w: &World, env: &[(String, String)], dir: &Path, args: &[&str]) -> Run {
    let gh_pr = ghapp_e2e::bin_dir().join("gh-pr").display().to_string();
    let mut all = vec!["open"];
    all.extend_from_slice(args);
    w.cmd(&gh_pr).env(env).args(&all).dir(dir).run()
}

/// `ghapp approvals ARGS` against `p`'s admin API.
fn ghapp_approvals(w: &World, p: &ProxyProc, args: &[&str]) -> Run {
    ghapp_admin(w, p, "approvals", args)
}

/// `ghapp COMMAND ARGS` (a client of the admin API) against `p`'s admin API.
fn ghapp_admin(w: &World, p: &ProxyProc, command: &str, args: &[&str]) -> Run {
    let mut env = w.env().to_vec();
    env.push(("GHAPP_ADMIN_URL".to_owned(), p.admin_url.clone().unwrap()));
    env.push(("GHAPP_ADMIN_TOKEN".to_owned(), ADMIN_TOKEN.to_owned()));
    let mut all = vec![command];
    all.extend_from_slice(args);
    w.cmd("ghapp").env(&env).args(&all).dir(w.root.path()).run()
}

/// A REST or GraphQL call as an SDK in the sandbox makes it (through its `HTTPS_PROXY`, trusting
/// its CA, any token: the proxy puts its own): the status and the JSON answer.
fn sdk(
    w: &World,
    env: &[(String, String)],
    method: &str,
    url: &str,
    body: &serde_json::Value,
) -> (u16, serde_json::Value) {
    let mut args = vec![
        "-s".to_owned(),
        "--cacert".to_owned(),
        var(env, "GIT_SSL_CAINFO"),
        "-w".to_owned(),
        "\n%{http_code}".to_owned(),
        "-X".to_owned(),
        method.to_owned(),
        "-H".to_owned(),
        "Authorization: Bearer placeholder".to_owned(),
    ];
    if !body.is_null() {
        args.extend(["--data".to_owned(), body.to_string()]);
    }
    args.push(url.to_owned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = w.cmd("curl").env(env).args(&args).run();
    let (text, code) = r
        .stdout
        .trim()
        .rsplit_once('\n')
        .unwrap_or(("", r.stdout.trim()));
    (
        code.parse().unwrap_or(0),
        serde_json::from_str(text).unwrap_or(serde_json::Value::Null),
    )
}

fn an_autonomous_sandbox_manages_its_pull_requests_and_merges_only_when_allowed() {
    let w = World::new();
    let p = proxy(&w, &format!("sqlite:{}", w.path("state.db").display()));
    let env = add_sandbox(&w, &p, "auto", "autonomous");
    let sb = Sb {
        w: &w,
        env: env.clone(),
    };
    sb.clone("octo-org", "widgets", "auto", &[]).ok();
    let work = w.path("auto");
    sb.push_new_branch(&work, "agent/auto", "a.txt", b"autonomous\n");
    sb.git(&work, &["branch", "--set-upstream-to", "origin/agent/auto"])
        .ok();
    let api = w.hub.api_url();
    let pulls = format!("{api}/repos/octo-org/widgets/pulls");

    // Create (gh-pr), update, comment, close: at once, no human.
    let r = gh_pr_open(
        &w,
        &env,
        &work,
        &["--title", "Auto", "--body", "By itself."],
    );
    assert!(
        r.ok().stdout.trim().ends_with("/octo-org/widgets/pull/1"),
        "{r:#?}"
    );
    let (code, v) = sdk(
        &w,
        &env,
        "PATCH",
        &format!("{pulls}/1"),
        &serde_json::json!({"title": "Auto, renamed"}),
    );
    assert_eq!(code, 200, "{v}");
    let (code, v) = sdk(
        &w,
        &env,
        "POST",
        &format!("{api}/repos/octo-org/widgets/issues/1/comments"),
        &serde_json::json!({"body": "Done."}),
    );
    assert_eq!(code, 201, "{v}");

    // Merging is refused (REST and GraphQL) without allow_merge; GitHub never sees it.
    let (code, v) = sdk(
        &w,
        &env,
        "PUT",
        &format!("{pulls}/1/merge"),
        &serde_json::json!({"merge_method": "squash"}),
    );
    assert_eq!(code, 403, "{v}");
    assert!(
        v["message"].as_str().unwrap_or_default().contains("sandbox auto may not merge pull requests: merging is for autonomous sandboxes with allow_merge = true"),
        "{v}"
    );
    let node = w.hub.pulls()[0].number;
    assert_eq!(node, 1);
    let (code, v) = sdk(
        &w,
        &env,
        "POST",
        &format!("{}/api/graphql", w.hub.url()),
        &serde_json::json!({"query": "mutation($id: ID!) { mergePullRequest(input: {pullRequestId: $id}) { pullRequest { merged } } }", "variables": {"id": "PR_anything"}}),
    );
    assert!(
        v["errors"][0]["message"].as_str().unwrap_or_default().contains("mutation mergePullRequest is not allowed: merging is for autonomous sandboxes with allow_merge = true"),
        "{code} {v}"
    );
    assert!(
        !w.hub
            .requests()
            .iter()
            .any(|q| q.target.ends_with("/merge")),
        "no merge reached GitHub"
    );
    let (code, v) = sdk(
        &w,
        &env,
        "PATCH",
        &format!("{pulls}/1"),
        &serde_json::json!({"state": "closed"}),
    );
    assert_eq!(code, 200, "{v}");
    let pr = &w.hub.pulls()[0];
    assert_eq!(
        (pr.title.as_str(), pr.state.as_str(), pr.comments),
        ("Auto, renamed", "closed", 1)
    );

    // With allow_merge (changed through the admin API, in force on the next request): its own
    // pull request merges.
    ghapp_sandbox(&w, &p, &["set", "auto", "--allow-merge", "true"]).ok();
    sb.git(&work, &["switch", "--quiet", "main"]).ok();
    sb.push_new_branch(&work, "agent/auto2", "b.txt", b"merged by the agent\n");
    sb.git(
        &work,
        &["branch", "--set-upstream-to", "origin/agent/auto2"],
    )
    .ok();
    let r = gh_pr_open(&w, &env, &work, &["--title", "Auto 2"]);
    assert!(r.ok().stdout.trim().ends_with("/pull/2"), "{r:#?}");
    let (code, v) = sdk(
        &w,
        &env,
        "PUT",
        &format!("{pulls}/2/merge"),
        &serde_json::json!({"merge_method": "squash"}),
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["merged"], true);
    assert_eq!(
        w.hub_ref("octo-org", "widgets", "refs/heads/main")
            .as_deref(),
        v["sha"].as_str(),
        "main moved at GitHub"
    );
}

fn a_proxy_behind_a_service_hands_out_its_advertised_address() {
    let w = World::new();
    let p = proxy_with(
        &w,
        &format!("sqlite:{}", w.path("state.db").display()),
        "advertise = \"ghapp-proxy.agents.svc:3128\"\n",
    );
    let add = ghapp_sandbox(&w, &p, &["add", "svc", "--repo", "octo-org/widgets"]);
    let printed = &add.ok().stdout;
    let env = environment(&w, "svc", printed);
    let proxy = var(&env, "HTTPS_PROXY");
    assert!(
        proxy.starts_with("http://svc:") && proxy.ends_with("@ghapp-proxy.agents.svc:3128"),
        "{proxy}"
    );
    // The same credentials, at the address the Service forwards to, work.
    Sb {
        w: &w,
        env: repointed(&env, &p),
    }
    .clone("octo-org", "widgets", "svc", &[])
    .ok();
}

fn an_observing_sandbox_s_work_is_recorded_not_done() {
    let w = World::with(fakehub::Options {
        hostname: Some("ghe.test".into()),
        ..Default::default()
    });
    let p = proxy_with(
        &w,
        &format!("sqlite:{}", w.path("state.db").display()),
        "resolve = [\"ghe.test=127.0.0.1\"]\n",
    );
    let env = add_sandbox(&w, &p, "watcher", "observe");
    let sb = Sb {
        w: &w,
        env: env.clone(),
    };
    // It reads as any sandbox does.
    sb.clone("octo-org", "widgets", "obs", &[]).ok();
    let work = w.path("obs");
    sb.git(&work, &["switch", "--quiet", "-c", "agent/obs"])
        .ok();
    std::fs::write(
        work.join("README.md"),
        "# octo-org/widgets\n\nAn emulated repository served by fakehub.\nA line the agent adds.\n",
    )
    .unwrap();
    std::fs::write(work.join("notes.txt"), "observed, not pushed\n").unwrap();
    sb.git(&work, &["add", "README.md", "notes.txt"]).ok();
    sb.git(
        &work,
        &[
            "commit",
            "--quiet",
            "-m",
            "Describe the widgets\n\nWhy: a test.",
        ],
    )
    .ok();
    let head = sb
        .git(&work, &["rev-parse", "HEAD"])
        .ok()
        .stdout
        .trim()
        .to_owned();

    // The push: refused the git way, recorded as proposal 1; GitHub got nothing of it.
    let r = sb.git(&work, &["push", "origin", "agent/obs"]);
    r.fails();
    assert!(
        r.stderr.contains(
            "! [remote rejected] agent/obs -> agent/obs (observe mode: recorded as proposal 1, not pushed)"
        ),
        "{r:#?}"
    );
    assert!(
        r.stderr.contains("ghapp proposals show 1"),
        "the side band says where to look: {r:#?}"
    );
    // gh-pr open after it says what happened, not "push it first" (which an agent would
    // follow forever), and exits 4.
    let opened = gh_pr_open(&w, &env, &work, &["--fill"]);
    assert_eq!(opened.code, Some(4), "{opened:#?}");
    assert!(
        opened
            .stdout
            .contains("recorded for review: sandbox watcher is in observe mode")
            && !opened.stderr.contains("push it first"),
        "{opened:#?}"
    );
    assert_eq!(
        w.hub_ref("octo-org", "widgets", "refs/heads/agent/obs"),
        None
    );
    let seen = w.hub.requests();
    assert!(
        !seen.iter().any(|q| q.target.contains("git-receive-pack")),
        "no receive-pack request reached GitHub: {seen:#?}"
    );
    // Every token GitHub saw was read-only.
    let read_only: std::collections::BTreeMap<String, String> = [
        ("contents", "read"),
        ("metadata", "read"),
        ("pull_requests", "read"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let tokens: Vec<_> = seen.iter().filter_map(|q| q.permissions.as_ref()).collect();
    assert!(!tokens.is_empty(), "the clone used a token");
    assert!(tokens.iter().all(|t| **t == read_only), "{tokens:#?}");

    // The proposal, with its commit, paths and diff.
    let shown = ghapp_admin(&w, &p, "proposals", &["show", "1"]);
    shown.ok();
    let out = &shown.stdout;
    for want in [
        "1\twatcher\tocto-org/widgets\tpush refs/heads/agent/obs: 1 commit, 2 paths",
        &format!("commit {head} Sandbox Agent"),
        "Describe the widgets",
        "M\tREADME.md",
        "A\tnotes.txt",
        "+A line the agent adds.",
        "+observed, not pushed",
        " An emulated repository served by fakehub.",
    ] {
        assert!(out.contains(want), "{want:?} in {out}");
    }
    // Its commits as a bundle: fetched into another clone of what GitHub has (nothing else
    // needed from the sandbox), they are the agent's commit.
    assert!(out.contains("bundle: "), "{out}");
    let file = w.path("p1.bundle").display().to_string();
    ghapp_admin(&w, &p, "proposals", &["bundle", "1", "-o", &file]).ok();
    sb.clone("octo-org", "widgets", "other", &[]).ok();
    let other = w.path("other");
    sb.git(&other, &["bundle", "verify", "--quiet", &file]).ok();
    let refspec = "refs/heads/agent/obs:refs/heads/agent/obs";
    sb.git(&other, &["fetch", "--quiet", &file, refspec]).ok();
    let fetched = sb
        .git(&other, &["rev-parse", "agent/obs"])
        .ok()
        .stdout
        .clone();
    assert_eq!(fetched.trim(), head);
    let json = ghapp_admin(&w, &p, "proposals", &["show", "1", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json.ok().stdout).unwrap();
    assert_eq!(v["detail"]["commits"][0]["id"], head.as_str());
    assert_eq!(v["detail"]["refs"][0]["new"], head.as_str());

    // A pull request through REST (as an SDK sends it) and through GraphQL (gh): refused
    // with a message naming the proposal, recorded.
    let rest = w
        .cmd("curl")
        .env(&env)
        .args(&[
            "-s",
            "--cacert",
            &var(&env, "GIT_SSL_CAINFO"),
            "-w",
            "\n%{http_code}",
            "-X",
            "POST",
            "-H",
            "Authorization: Bearer placeholder",
            "--data",
            r#"{"title":"Observed","body":"Would open this.","head":"agent/obs","base":"main"}"#,
            &format!("{}/repos/octo-org/widgets/pulls", w.hub.api_url()),
        ])
        .run();
    let (body, code) = rest.stdout.trim().rsplit_once('\n').unwrap();
    assert_eq!(code, "403", "{rest:#?}");
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    assert!(
        v["message"].as_str().unwrap_or_default().contains(
            "sandbox watcher is in observe mode: the pull request agent/obs -> main in octo-org/widgets was recorded as proposal 2"
        ),
        "{v}"
    );
    let gh = w
        .cmd("gh")
        .env(&w.gh_env(&p, env))
        .dir(&work)
        .args(&[
            "pr",
            "create",
            "-R",
            "octo-org/widgets",
            "--head",
            "agent/obs",
            "--base",
            "main",
            "--title",
            "From gh",
            "--body",
            "GraphQL",
        ])
        .run();
    gh.fails();
    assert!(
        gh.stderr.contains("was recorded as proposal 3"),
        "gh prints the proxy's message: {gh:#?}"
    );
    assert!(w.hub.pulls().is_empty(), "no pull request at GitHub");
    assert!(
        !w.hub
            .requests()
            .iter()
            .any(|q| q.method == "POST" && q.target.ends_with("/pulls")),
        "the REST creation never reached GitHub"
    );
    assert!(
        !w.hub
            .counters()
            .graphql
            .iter()
            .any(|k| k.starts_with("mutation")),
        "no mutation reached GitHub"
    );
    let list = ghapp_admin(&w, &p, "proposals", &["list", "--sandbox", "watcher"]);
    list.ok();
    let lines: Vec<&str> = list.stdout.lines().skip(1).collect();
    assert_eq!(lines.len(), 3, "{list:#?}");
    assert!(
        lines[0].ends_with("pull request agent/obs -> main: From gh")
            && lines[1].ends_with("pull request agent/obs -> main: Observed"),
        "{list:#?}"
    );
    let two = ghapp_admin(&w, &p, "proposals", &["show", "2"]);
    assert!(two.ok().stdout.contains("Would open this."), "{two:#?}");

    // A push naming many refs is recorded whole, and described for its first 50 only (a
    // hostile sandbox cannot make the proxy run git without end).
    for n in 0..60 {
        sb.git(&work, &["branch", &format!("agent/many-{n}")]).ok();
    }
    let r = sb.git(
        &work,
        &[
            "push",
            "origin",
            "refs/heads/agent/many-*:refs/heads/agent/many-*",
        ],
    );
    assert!(
        r.stderr.contains("recorded as proposal 4, not pushed"),
        "{r:#?}"
    );
    let many = ghapp_admin(&w, &p, "proposals", &["show", "4", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&many.ok().stdout).unwrap();
    assert_eq!(v["detail"]["refs"].as_array().map(Vec::len), Some(60));
    assert_eq!(v["detail"]["refs_described"], 50);
    assert!(v["detail"]["commits"].as_array().map_or(0, Vec::len) <= 100);

    // Moved to autonomous (the admin API), the same push goes through on the next request.
    ghapp_sandbox(&w, &p, &["set", "watcher", "--mode", "autonomous"]).ok();
    sb.git(&work, &["push", "--quiet", "origin", "agent/obs"])
        .ok();
    assert_eq!(
        w.hub_ref("octo-org", "widgets", "refs/heads/agent/obs"),
        Some(head)
    );
}

fn gh_pr_create_in_a_learning_sandbox_is_held_and_survives_a_restart() {
    let w = World::with(fakehub::Options {
        hostname: Some("ghe.test".into()),
        ..Default::default()
    });
    let token = w.path("admin-token");
    std::fs::write(&token, ADMIN_TOKEN).unwrap();
    let extra = format!(
        "resolve = [\"ghe.test=127.0.0.1\"]\nadmin_listen = \"127.0.0.1:0\"\nadmin_token = {{ file = {:?} }}\nstate = {:?}\n",
        token.display().to_string(),
        format!("sqlite:{}", w.path("state.db").display())
    );
    let sandboxes = ghapp_e2e::two_sandboxes("mode = \"learning\"");
    let p = w.start_proxy(&sandboxes, &extra);
    let sb = Sb::new(&w, &p, "agent-a", ghapp_e2e::SECRET_A);
    sb.clone("octo-org", "widgets", "widgets", &[]).ok();
    let work = w.path("widgets");
    sb.push_new_branch(&work, "agent/x", "x.txt", b"from the agent\n");
    let env = w.gh_env(&p, sb.env);
    let r = w
        .cmd("gh")
        .env(&env)
        .dir(&work)
        .args(&[
            "pr",
            "create",
            "-R",
            "octo-org/widgets",
            "--head",
            "agent/x",
            "--base",
            "main",
            "--title",
            "From gh",
            "--body",
            "Held?",
        ])
        .run();
    r.fails();
    assert!(
        r.stderr.contains("sandbox agent-a is in learning mode: pull request agent/x -> main in octo-org/widgets is held for approval 1"),
        "gh prints the proxy's message: {r:#?}"
    );
    assert!(w.hub.pulls().is_empty());
    let mutations = w
        .hub
        .counters()
        .graphql
        .iter()
        .filter(|k| k.starts_with("mutation"))
        .count();
    assert_eq!(mutations, 0, "no mutation reached GitHub");

    // The held request survives a restart; approved afterwards, the pull request is created.
    drop(p);
    let p = w.start_proxy(&sandboxes, &extra);
    let a = ghapp_approvals(&w, &p, &["show", "1"]);
    a.ok();
    assert!(
        a.stdout
            .contains("agent-a\tocto-org/widgets\tagent/x -> main\tFrom gh\tpending"),
        "{a:#?}"
    );
    ghapp_approvals(&w, &p, &["approve", "1"]).ok();
    let pulls = w.hub.pulls();
    assert_eq!((pulls.len(), pulls[0].title.as_str()), (1, "From gh"));
}

fn an_assisted_sandbox_s_small_changes_go_through_and_significant_ones_wait() {
    let w = World::new();
    let p = proxy(&w, &format!("sqlite:{}", w.path("state.db").display()));
    let env = add_sandbox(&w, &p, "helper", "assisted");
    // Significant: more than 10 changed lines, or anything under docs/.
    let token = std::fs::read_to_string(w.path("admin-token")).unwrap();
    let code = curl_local([
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-X",
        "PATCH",
        "-H",
        &format!("Authorization: Bearer {token}"),
        "--data",
        r#"{"significant": {"lines": 10, "paths": ["docs/**"]}}"#,
        &format!("{}/v1/sandboxes/helper", p.admin_url.clone().unwrap()),
    ]);
    assert_eq!(code, "200");
    let sb = Sb {
        w: &w,
        env: env.clone(),
    };
    sb.clone("octo-org", "widgets", "assist", &[]).ok();
    let work = w.path("assist");
    let open = |title: &str| gh_pr_open(&w, &env, &work, &["--title", title]);
    let branch = |name: &str, file: &str, text: &str| {
        sb.git(&work, &["switch", "--quiet", "-C", name, "origin/main"])
            .ok();
        std::fs::create_dir_all(work.join(file).parent().unwrap()).unwrap();
        std::fs::write(work.join(file), text).unwrap();
        sb.git(&work, &["add", "-A"]).ok();
        sb.git(&work, &["commit", "--quiet", "-m", name]).ok();
        sb.git(&work, &["push", "--quiet", "-u", "origin", name])
            .ok();
    };
    // A 3-line change: created at once.
    branch("agent/small", "small.txt", "one\ntwo\nthree\n");
    let r = open("Small");
    r.ok();
    assert!(
        r.stdout.trim().ends_with("/octo-org/widgets/pull/1"),
        "{r:#?}"
    );
    // Over the line threshold: held.
    branch("agent/large", "large.txt", &"line\n".repeat(50));
    let r = open("Large");
    assert_eq!(r.code, Some(3), "{r:#?}");
    assert!(
        r.stdout.contains(
            "is in assisted mode and the change is significant (50 changed lines, over 10)"
        ),
        "{r:#?}"
    );
    // A significant path: held, however small.
    branch("agent/docs", "docs/one.md", "a\n");
    let r = open("Docs");
    assert_eq!(r.code, Some(3), "{r:#?}");
    assert!(
        r.stdout.contains("docs/one.md is a significant path"),
        "{r:#?}"
    );
    assert_eq!(w.hub.pulls().len(), 1);
}

/// A WebDriver session on Debian's headless Chromium (chromedriver on a free port).
struct Browser {
    driver: std::process::Child,
    base: String,
    session: String,
    client: reqwest::Client,
    rt: tokio::runtime::Runtime,
    _profile: tempfile::TempDir,
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    fn start() -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        ghapp_e2e::needs("chromium");
        let driver = std::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("chromedriver runs");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let ready = Instant::now();
        while rt
            .block_on(client.get(format!("{base}/status")).send())
            .is_err()
        {
            assert!(
                ready.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = tempfile::tempdir().unwrap();
        let caps = serde_json::json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                         "--disable-background-networking", "--disable-component-update", "--disable-sync",
                         "--window-size=1280,900", format!("--user-data-dir={}", profile.path().display())]
            }
        }}});
        let v: serde_json::Value = rt
            .block_on(async {
                client
                    .post(format!("{base}/session"))
                    .json(&caps)
                    .send()
                    .await?
                    .json()
                    .await
            })
            .unwrap();
        let session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("{v}"))
            .to_owned();
        Browser {
            driver,
            base,
            session,
            client,
            rt,
            _profile: profile,
        }
    }

    fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: serde_json::Value,
    ) -> serde_json::Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut rb = self.client.request(method, url);
        if !body.is_null() {
            rb = rb.json(&body);
        }
        let v: serde_json::Value = self
            .rt
            .block_on(async { rb.send().await?.json().await })
            .unwrap();
        v["value"].clone()
    }

    fn go(&self, url: &str) {
        self.call(
            reqwest::Method::POST,
            "/url",
            serde_json::json!({ "url": url }),
        );
    }

    fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", serde_json::Value::Null)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Waits (at most 10 s) until the page's URL ends with `suffix` and its body is there.
    fn wait_for(&self, suffix: &str) {
        let start = Instant::now();
        loop {
            let body = self.call(
                reqwest::Method::POST,
                "/element",
                serde_json::json!({"using": "css selector", "value": "body"}),
            );
            if self.url().ends_with(suffix) && body.get(ELEMENT).is_some() {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "still at {}",
                self.url()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn find(&self, css: &str) -> String {
        let v = self.call(
            reqwest::Method::POST,
            "/element",
            serde_json::json!({"using": "css selector", "value": css}),
        );
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no {css}: {v}"))
            .to_owned()
    }

    fn text(&self, css: &str) -> String {
        self.try_text(css)
            .unwrap_or_else(|| panic!("no text for {css}"))
    }

    /// The element's text, or None while the page is between documents (after a click that
    /// navigates, the old body may be gone before the new one is there).
    fn try_text(&self, css: &str) -> Option<String> {
        let v = self.call(
            reqwest::Method::POST,
            "/element",
            serde_json::json!({"using": "css selector", "value": css}),
        );
        let e = v[ELEMENT].as_str()?;
        let t = self.call(
            reqwest::Method::GET,
            &format!("/element/{e}/text"),
            serde_json::Value::Null,
        );
        t.as_str().map(str::to_owned)
    }

    fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css);
        self.call(
            reqwest::Method::POST,
            &format!("/element/{e}/value"),
            serde_json::json!({ "text": text }),
        );
    }

    fn click(&self, css: &str) {
        let e = self.find(css);
        self.call(
            reqwest::Method::POST,
            &format!("/element/{e}/click"),
            serde_json::json!({}),
        );
    }

    fn cookie(&self, name: &str) -> String {
        self.call(
            reqwest::Method::GET,
            &format!("/cookie/{name}"),
            serde_json::Value::Null,
        )["value"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// A PNG of the page (or of one element) saved under target/artifacts (not committed).
    fn screenshot(&self, css: Option<&str>, file: &str) {
        let path = match css {
            Some(c) => format!("/element/{}/screenshot", self.find(c)),
            None => "/screenshot".to_owned(),
        };
        let b64 = self.call(reqwest::Method::GET, &path, serde_json::Value::Null);
        use base64::Engine;
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap_or_default())
            .unwrap();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/artifacts");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(file), png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let url = format!("{}/session/{}", self.base, self.session);
        let _ = self.rt.block_on(self.client.delete(url).send());
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn the_approvals_page_in_a_real_browser() {
    let w = World::new();
    let p = proxy(&w, &format!("sqlite:{}", w.path("state.db").display()));
    let env = add_sandbox(&w, &p, "learner", "learning");
    let sb = Sb {
        w: &w,
        env: env.clone(),
    };
    sb.clone("octo-org", "widgets", "page", &[]).ok();
    let work = w.path("page");
    for (branch, file) in [("agent/page", "p.txt"), ("agent/page2", "q.txt")] {
        sb.push_new_branch(&work, branch, file, b"for the page\n");
        sb.git(
            &work,
            &["branch", "--set-upstream-to", &format!("origin/{branch}")],
        )
        .ok();
        let title = format!("Change <b>{branch}</b>");
        assert_eq!(
            gh_pr_open(
                &w,
                &env,
                &work,
                &["--title", &title, "--body", "Please look."]
            )
            .code,
            Some(3)
        );
    }
    let admin = p.admin_url.clone().unwrap();

    // Without signing in, the page sends the browser to sign in.
    let b = Browser::start();
    b.go(&format!("{admin}/approvals"));
    b.wait_for("/signin");
    b.type_into("#token", ADMIN_TOKEN);
    b.click("#signin");
    b.wait_for("/approvals");
    let row = b.text("#approval-1");
    assert!(
        row.contains("learner")
            && row.contains("octo-org/widgets")
            && row.contains("agent/page -> main"),
        "{row}"
    );
    assert!(
        row.contains("Change <b>agent/page</b>") && row.contains("Please look."),
        "escaped, shown as text: {row}"
    );
    assert!(
        row.contains("1 commit, 1 file, +1 -0") && row.contains("added p.txt +1 -0"),
        "{row}"
    );
    // What a person needs to decide: the commits, and each file's diff (folded: opened).
    assert!(
        row.contains("Add p.txt (Sandbox Agent)"),
        "the commits: {row}"
    );
    assert!(!row.contains("+for the page"), "folded: {row}");
    // The checks GitHub has on the head: none readable until the app may read them.
    assert!(
        row.contains("Checks not shown: the app may not read checks on octo-org"),
        "{row}"
    );
    // A CI app reports on agent/page (checks granted; its own token, as CI has one), then the
    // page shows each run with its conclusion or status, linking only http(s) details.
    w.hub.grant(101, "checks", "write");
    let head = w
        .hub_ref("octo-org", "widgets", "refs/heads/agent/page")
        .unwrap();
    for run in [
        serde_json::json!({"name": "build", "head_sha": head, "conclusion": "failure", "details_url": "https://ci.example/build/1"}),
        serde_json::json!({"name": "lint", "head_sha": head, "status": "in_progress", "details_url": "javascript:alert(1)"}),
    ] {
        report_check(&w, &run);
    }
    b.go(&format!("{admin}/approvals"));
    let row = b.text("#approval-1");
    assert!(
        row.contains("build: failure") && row.contains("lint: in_progress"),
        "{row}"
    );
    assert!(
        b.text("#approval-2").contains("No checks on agent/page2."),
        "{}",
        b.text("#approval-2")
    );
    let html = curl_local([
        "-H",
        &format!("Cookie: ghapp_session={}", b.cookie("ghapp_session")),
        &format!("{admin}/approvals"),
    ]);
    assert!(
        html.contains("<a href=\"https://ci.example/build/1\">build</a>")
            && !html.contains("javascript:"),
        "{html}"
    );
    b.click("#approval-1 summary");
    let row = b.text("#approval-1");
    assert!(
        row.contains("@@ -0,0 +1 @@") && row.contains("+for the page"),
        "{row}"
    );
    b.screenshot(None, "approvals-list.png");
    b.screenshot(Some("#approval-1"), "approval-1.png");

    // Approve: the row is gone and the pull request exists.
    b.click("#approve-1");
    let clicked = Instant::now();
    while b.try_text("#decided").is_none() {
        assert!(
            clicked.elapsed() < Duration::from_secs(10),
            "the approved row stays"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    b.wait_for("/approvals?decided=1");
    assert!(
        b.try_text("#approval-1").is_none(),
        "the approved row is gone"
    );
    assert_eq!(w.hub.pulls().len(), 1);
    assert_eq!(w.hub.pulls()[0].head, "agent/page");
    // The page says what the decision came to.
    let notice = b.text("#decided");
    assert!(
        notice.starts_with("Approval 1 (agent/page -> main) approved: https://"),
        "{notice}"
    );
    // And the decisions so far, under the pending ones.
    let decided = b.text("#decided-1");
    assert!(
        decided.contains("agent/page -> main")
            && decided.contains("approved")
            && decided.contains("/pull/1"),
        "{decided}"
    );

    // A POST with the session but without the CSRF token is refused; without a session the
    // page redirects.
    let cookie = b.cookie("ghapp_session");
    assert!(!cookie.is_empty());
    let post = |args: &[&str]| {
        curl_local(
            ["-o", "/dev/null", "-w", "%{http_code} %{redirect_url}"]
                .iter()
                .chain(args),
        )
    };
    let refused = post(&[
        "-X",
        "POST",
        "-H",
        &format!("Cookie: ghapp_session={cookie}"),
        "--data",
        "reason=nope",
        &format!("{admin}/approvals/2/deny"),
    ]);
    assert!(refused.starts_with("403"), "{refused}");
    let redirected = post(&[&format!("{admin}/approvals")]);
    assert!(
        redirected.starts_with("303") && redirected.ends_with("/signin"),
        "{redirected}"
    );
    let still = ghapp_approvals(&w, &p, &["show", "2"]);
    assert!(still.stdout.contains("pending"), "{still:#?}");
}

/// A CI app reports `run` on octo-org/widgets (`POST …/check-runs` with its own token; the
/// installation must grant `checks: write`).
fn report_check(w: &World, run: &serde_json::Value) {
    let ci = w
        .ghapp(&[
            "token",
            "--repo",
            "octo-org/widgets",
            "--permission",
            "checks=write",
        ])
        .ok()
        .stdout
        .trim()
        .to_owned();
    let created = curl_local([
        "--cacert",
        &w.hub.ca_path().display().to_string(),
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-H",
        &format!("Authorization: Bearer {ci}"),
        "--data",
        &run.to_string(),
        &format!("{}/repos/octo-org/widgets/check-runs", w.hub.api_url()),
    ]);
    assert_eq!(created, "201", "{run}");
}

/// `method path` on the admin API with `body`: the status and the JSON answer.
fn admin_json(
    p: &ProxyProc,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> (u16, serde_json::Value) {
    let url = format!("{}{path}", p.admin_url.clone().unwrap());
    let auth = format!("Authorization: Bearer {ADMIN_TOKEN}");
    let text = body.map(ToString::to_string).unwrap_or_default();
    let mut args = vec!["-w", "\n%{http_code}", "-X", method, "-H", &auth];
    if body.is_some() {
        args.extend(["-H", "Content-Type: application/json", "--data", &text]);
    }
    args.push(&url);
    let out = curl_local(args);
    let (answer, code) = out.trim().rsplit_once('\n').unwrap_or(("", out.trim()));
    (
        code.parse().unwrap_or(0),
        serde_json::from_str(answer).unwrap_or(serde_json::Value::Null),
    )
}

/// Every route of the admin API, driven for real: each answer is what
/// `docs/reference/admin-api.yaml` says, and reads as the type `ghapp` reads it into.
fn the_admin_api_answers_as_documented_and_as_its_types_read() {
    use ghapp_proxy::admin_api::{Approval, Created, Disconnected, ErrorBody, Proposal, Sandbox};
    fn typed<T: serde::de::DeserializeOwned>(v: &serde_json::Value) -> T {
        serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{e}: {v:#}"))
    }
    let spec = ghapp_e2e::openapi::Spec::admin_api();
    let w = World::new();
    let p = proxy(
        &w,
        &format!("sqlite:{}", w.path("state/proxy.db").display()),
    );
    let new = serde_json::json!({"name": "typed", "repos": ["octo-org/widgets"], "push": ["agent/*"], "mode": "learning"});
    let (code, v) = admin_json(&p, "POST", "/v1/sandboxes", Some(&new));
    assert_eq!(code, 201, "{v}");
    spec.assert_answer("/v1/sandboxes", "post", 201, &v);
    let created: Created = typed(&v);
    assert_eq!(created.sandbox.rules.mode, "learning");
    let (code, v) = admin_json(&p, "GET", "/v1/sandboxes", None);
    assert_eq!(code, 200);
    spec.assert_answer("/v1/sandboxes", "get", 200, &v);
    let _: Vec<Sandbox> = typed(&v);
    let (code, v) = admin_json(&p, "GET", "/v1/sandboxes/typed", None);
    assert_eq!(code, 200);
    spec.assert_answer("/v1/sandboxes/{name}", "get", 200, &v);
    let (code, v) = admin_json(&p, "GET", "/v1/sandboxes/nobody", None);
    assert_eq!(code, 404);
    spec.assert_answer("/v1/sandboxes/{name}", "get", 404, &v);
    let e: ErrorBody = typed(&v);
    assert_eq!(e.message, "no sandbox nobody");
    let (code, v) = admin_json(
        &p,
        "PATCH",
        "/v1/sandboxes/typed",
        Some(&serde_json::json!({"repo": ["x/y"]})),
    );
    assert_eq!(code, 400);
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `repo`"),
        "{v}"
    );

    // A held pull request: listed, shown, approved.
    let env = environment(
        &w,
        "typed",
        &format!(
            "export HTTPS_PROXY='{}'\nexport GIT_SSL_CAINFO='{}'\n",
            created.https_proxy.expose(),
            p.ca_path.display()
        ),
    );
    let sb = Sb { w: &w, env };
    sb.clone("octo-org", "widgets", "work", &[]).ok();
    let work = w.path("work");
    sb.push_new_branch(&work, "agent/typed", "t.txt", b"typed\n");
    sb.git(&work, &["branch", "--quiet", "-u", "origin/agent/typed"])
        .ok();
    let held = gh_pr_open(&w, &sb.env, &work, &["--title", "Typed"]);
    assert!(held.stdout.contains("held for approval"), "{held:#?}");
    let (code, v) = admin_json(&p, "GET", "/v1/approvals", None);
    assert_eq!(code, 200);
    spec.assert_answer("/v1/approvals", "get", 200, &v);
    let list: Vec<Approval> = typed(&v);
    let id = list[0].id;
    let (code, v) = admin_json(&p, "GET", &format!("/v1/approvals/{id}"), None);
    assert_eq!(code, 200);
    spec.assert_answer("/v1/approvals/{id}", "get", 200, &v);
    // Its checks: unreadable until the app may read them, then each run.
    let (code, v) = admin_json(&p, "GET", &format!("/v1/approvals/{id}/checks"), None);
    assert_eq!(code, 200);
    spec.assert_answer("/v1/approvals/{id}/checks", "get", 200, &v);
    let c: ghapp_proxy::admin_api::Checks = typed(&v);
    assert!(
        c.checks.is_empty()
            && c.unavailable
                .as_deref()
                .is_some_and(|u| u.contains("grant it Checks (read)")),
        "{v}"
    );
    w.hub.grant(101, "checks", "write");
    let head = list[0].head_sha.clone();
    report_check(
        &w,
        &serde_json::json!({"name": "build", "head_sha": head, "status": "queued"}),
    );
    let (code, v) = admin_json(&p, "GET", &format!("/v1/approvals/{id}/checks"), None);
    assert_eq!(code, 200);
    spec.assert_answer("/v1/approvals/{id}/checks", "get", 200, &v);
    let c: ghapp_proxy::admin_api::Checks = typed(&v);
    assert_eq!(c.unavailable, None, "{v}");
    assert_eq!(
        (
            c.checks.len(),
            c.checks[0].name.as_str(),
            c.checks[0].status.as_str()
        ),
        (1, "build", "queued")
    );
    let shown = ghapp_approvals(&w, &p, &["show", &id.to_string()]);
    assert!(
        shown.ok().stdout.contains("checks: build queued"),
        "{shown:#?}"
    );
    let (code, v) = admin_json(&p, "GET", "/v1/approvals/999/checks", None);
    assert_eq!(code, 404);
    spec.assert_answer("/v1/approvals/{id}/checks", "get", 404, &v);
    let (code, v) = admin_json(
        &p,
        "POST",
        &format!("/v1/approvals/{id}/approve"),
        Some(&serde_json::json!({"by": "a person"})),
    );
    assert_eq!(code, 200, "{v}");
    spec.assert_answer("/v1/approvals/{id}/approve", "post", 200, &v);
    let a: Approval = typed(&v);
    assert_eq!(
        (a.status.as_str(), a.decided_by.as_str()),
        ("approved", "a person")
    );

    // Observe mode: a proposal, listed and shown.
    let (code, v) = admin_json(
        &p,
        "PATCH",
        "/v1/sandboxes/typed",
        Some(&serde_json::json!({"mode": "observe"})),
    );
    assert_eq!(code, 200, "{v}");
    spec.assert_answer("/v1/sandboxes/{name}", "patch", 200, &v);
    std::thread::sleep(Duration::from_millis(1500));
    sb.commit(&work, "u.txt", b"observed\n");
    sb.git(&work, &["push", "origin", "HEAD:refs/heads/agent/observed"])
        .fails();
    let (code, v) = admin_json(&p, "GET", "/v1/proposals", None);
    assert_eq!(code, 200);
    spec.assert_answer("/v1/proposals", "get", 200, &v);
    let list: Vec<Proposal> = typed(&v);
    let (code, v) = admin_json(&p, "GET", &format!("/v1/proposals/{}", list[0].id), None);
    assert_eq!(code, 200);
    spec.assert_answer("/v1/proposals/{id}", "get", 200, &v);

    let (code, v) = admin_json(&p, "DELETE", "/v1/sandboxes/typed", None);
    assert_eq!(code, 200);
    spec.assert_answer("/v1/sandboxes/{name}", "delete", 200, &v);
    let d: Disconnected = typed(&v);
    assert!(d.disconnected);
    let (code, v) = admin_json(&p, "GET", "/v1/sandboxes/typed", None);
    assert_eq!(code, 200);
    spec.assert_answer("/v1/sandboxes/{name}", "get", 200, &v);
    assert!(typed::<Sandbox>(&v).disconnected);
}

/// Round 2, finding 3: unsigned deliveries that declare 5 MiB and trickle one byte take
/// nothing from the sandboxes' body budget (deliveries have their own, taken as bytes
/// arrive) and at most a few places per source: meanwhile a sandbox opens a pull request and
/// a genuine delivery, from another address, is acted on.
fn a_flood_of_unsigned_deliveries_starves_nothing() {
    use std::io::Write;
    let w = World::new();
    let secret = w.path("hook-secret");
    std::fs::write(&secret, HOOK_SECRET).unwrap();
    let p = w.start_proxy(
        &ghapp_e2e::two_sandboxes(""),
        &format!(
            "webhook_listen = \"127.0.0.1:0\"\nwebhook_secret = {{ file = {:?} }}\n[limits]\nmax_buffered_bytes = 10485760\n",
            secret.display().to_string(),
        ),
    );
    let url = p.webhook_url.clone().unwrap();
    let hook: std::net::SocketAddr = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // From 127.0.0.2: 40 deliveries declaring 5 MiB, each sending one byte and stalling.
    let attacker: std::net::SocketAddr = "127.0.0.2:0".parse().unwrap();
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..40 {
        let mut s = connect_from(attacker, hook);
        let _ = s.write_all(
            format!("POST /webhooks/github HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nX-GitHub-Event: ping\r\nX-GitHub-Delivery: flood\r\nX-Hub-Signature-256: sha256=00\r\n\r\nx", 5 << 20).as_bytes(),
        );
        held.push(s);
    }
    std::thread::sleep(Duration::from_millis(500));
    // Past four in flight, the attacker's deliveries are answered 429 at once.
    for s in &mut held {
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut b = [0u8; 64];
        if let Ok(n) = std::io::Read::read(s, &mut b)
            && String::from_utf8_lossy(&b[..n]).contains(" 429 ")
        {
            refused += 1;
        }
    }
    assert_eq!(refused, 36, "four in flight from one source");
    // Meanwhile a sandbox's pull request (the sandboxes' own body budget) goes through...
    let sb = Sb::new(&w, &p, "agent-a", ghapp_e2e::SECRET_A);
    sb.clone("octo-org", "widgets", "work", &[]).ok();
    let work = w.path("work");
    sb.push_new_branch(&work, "agent/flood", "f.txt", b"f\n");
    sb.git(&work, &["branch", "--quiet", "-u", "origin/agent/flood"])
        .ok();
    let r = gh_pr_open(&w, &sb.env, &work, &["--title", "During the flood"]);
    assert!(r.success(), "{r:#?}");
    // ...and a genuine delivery from GitHub's address is acted on.
    let (code, body) = deliver(
        &url,
        "d-genuine",
        "ping",
        r#"{"zen":"Design for failure.","hook_id":1}"#,
        HOOK_SECRET,
    );
    assert_eq!((code, body.contains("pong")), (200, true), "{body}");
    drop(held);
}

/// A TCP connection to `to` from `from` (another address of the loopback range, so the
/// proxy sees a second source): std cannot bind before it connects, tokio's socket can.
fn connect_from(from: std::net::SocketAddr, to: std::net::SocketAddr) -> std::net::TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let s = rt.block_on(async {
        let s = tokio::net::TcpSocket::new_v4().unwrap();
        s.bind(from).unwrap();
        s.connect(to).await.unwrap().into_std().unwrap()
    });
    s.set_nonblocking(false).unwrap();
    s
}

/// Round 2, finding 5: text a sandbox controls reaches the operator's terminal escaped (an
/// escape sequence, an OSC 52 clipboard write, a screen clear, a carriage return, a fake
/// column, a bidi override), and exact with `--json`.
fn what_a_sandbox_wrote_is_shown_escaped() {
    let w = World::new();
    let p = proxy(
        &w,
        &format!("sqlite:{}", w.path("state/proxy.db").display()),
    );
    let added = ghapp_sandbox(
        &w,
        &p,
        &[
            "add",
            "scribe",
            "--repo",
            "octo-org/widgets",
            "--push",
            "agent/*",
            "--mode",
            "learning",
        ],
    );
    let env = environment(&w, "scribe", &added.ok().stdout);
    // `show` prints the sandbox's line and every rule it works under.
    let shown = ghapp_sandbox(&w, &p, &["show", "scribe"]);
    let listed = ghapp_sandbox(&w, &p, &["list"]);
    assert!(
        listed
            .stdout
            .starts_with("NAME\tSOURCE\tMODE\tREPOSITORIES\tPUSH\tSTATE\n")
            && shown
                .stdout
                .starts_with(listed.stdout.lines().nth(1).unwrap())
            && shown.stdout.contains("  mode: learning")
            && shown.stdout.contains("  push.refs: refs/heads/agent/*"),
        "{shown:#?}"
    );
    // A sandbox's own name is held to one charset, through the admin API as in the file.
    for bad in ["team/agent", "esc\u{1b}[2J", "rtl\u{202e}gnp", ".dot"] {
        ghapp_sandbox(&w, &p, &["add", bad, "--repo", "octo-org/widgets"])
            .one_line_error("ghapp", "1 to 64 of A-Z a-z 0-9 . _ -");
    }
    // A repository GitHub does not have (or the app is not installed on) is refused when the
    // sandbox is added or changed, not at its first clone.
    ghapp_sandbox(&w, &p, &["add", "typo3", "--repo", "octo-org/widgts"]).one_line_error(
        "ghapp",
        "octo-org/widgts: no such repository, or the app is not installed on it",
    );
    ghapp_sandbox(&w, &p, &["set", "scribe", "--repo", "octo-org/gizmos"]).one_line_error(
        "ghapp",
        "octo-org/gizmos: no such repository, or the app is not installed on it",
    );
    let sb = Sb { w: &w, env };
    sb.clone("octo-org", "widgets", "work", &[]).ok();
    let work = w.path("work");
    sb.push_new_branch(&work, "agent/scribe", "s.txt", b"s\n");
    let title = "fix\u{1b}]52;c;ZXZpbA==\u{7}\u{1b}[2J\rapproved\tby admin\u{202e}";
    let (code, v) = sdk(
        &w,
        &sb.env,
        "POST",
        &format!("{}/repos/octo-org/widgets/pulls", w.hub.api_url()),
        &serde_json::json!({"head": "agent/scribe", "base": "main", "title": title, "body": "line\u{1b}[31m\nnext"}),
    );
    assert_eq!(code, 202, "{v}");
    let listed = ghapp_approvals(&w, &p, &["list"]).ok().clone();
    assert!(
        listed.stdout.contains(
            "fix\\x1b]52;c;ZXZpbA==\\x07\\x1b[2J\\rapproved\\tby admin\\u{202e}\tpending"
        ),
        "{listed:#?}"
    );
    assert!(!listed.stdout.contains('\u{1b}') && !listed.stdout.contains('\r'));
    let shown = ghapp_approvals(&w, &p, &["show", "1"]).ok().clone();
    assert!(shown.stdout.contains("line\\x1b[31m\nnext"), "{shown:#?}");
    let json = ghapp_approvals(&w, &p, &["show", "1", "--json"])
        .ok()
        .clone();
    let a: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(a["title"], title, "--json is exact");
}

/// Round 2, finding 6: the approvals page's sign-in is throttled per source (429 with
/// `Retry-After`), a sign-out on one replica ends the session on every replica (the state
/// store remembers it), and every page and API answer says `nosniff`.
fn page_sign_in_is_throttled_and_sign_out_ends_the_session_everywhere() {
    let w = World::new();
    let state = format!("sqlite:{}", w.path("state/proxy.db").display());
    let a = proxy(&w, &state);
    let b = proxy(&w, &state);
    let (page_a, page_b) = (a.admin_url.clone().unwrap(), b.admin_url.clone().unwrap());
    let sign_in = |base: &str, token: &str| {
        curl_local([
            "-o",
            "/dev/null",
            "-D",
            "-",
            "--data",
            &format!("token={token}"),
            &format!("{base}/signin"),
        ])
    };
    let cookie = |head: &str| {
        head.lines()
            .find_map(|l| l.strip_prefix("set-cookie: "))
            .and_then(|c| c.split(';').next())
            .map(str::to_owned)
    };
    let session = cookie(&sign_in(&page_a, ADMIN_TOKEN)).expect("signed in");
    let get = |base: &str, path: &str| {
        curl_local([
            "-D",
            "-",
            "-o",
            "/dev/null",
            "-H",
            &format!("Cookie: {session}"),
            &format!("{base}{path}"),
        ])
    };
    let on_b = get(&page_b, "/approvals");
    assert!(on_b.starts_with("HTTP/1.1 200"), "{on_b}");
    assert!(
        on_b.to_ascii_lowercase()
            .contains("x-content-type-options: nosniff"),
        "{on_b}"
    );
    // Sign out on A (the form carries the session's CSRF token, read from the page).
    let page = curl_local([
        "-H",
        &format!("Cookie: {session}"),
        &format!("{page_a}/approvals"),
    ]);
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("a CSRF token on the page")
        .to_owned();
    let out = curl_local([
        "-D",
        "-",
        "-o",
        "/dev/null",
        "-H",
        &format!("Cookie: {session}"),
        "--data",
        &format!("csrf={csrf}"),
        &format!("{page_a}/signout"),
    ]);
    assert!(
        out.starts_with("HTTP/1.1 303") && out.contains("location: /signin"),
        "{out}"
    );
    // The same cookie is refused on B now.
    let on_b = get(&page_b, "/approvals");
    assert!(
        on_b.starts_with("HTTP/1.1 303") && on_b.contains("location: /signin"),
        "{on_b}"
    );
    // Wrong tokens: five are checked, then the address waits.
    for _ in 0..5 {
        let h = sign_in(&page_b, "not-the-admin-token");
        assert!(h.starts_with("HTTP/1.1 401"), "{h}");
    }
    let h = sign_in(&page_b, ADMIN_TOKEN);
    assert!(
        h.starts_with("HTTP/1.1 429"),
        "even the right token waits: {h}"
    );
    assert!(h.to_ascii_lowercase().contains("retry-after: "), "{h}");
    // The JSON API says nosniff too.
    let api = curl_local([
        "-D",
        "-",
        "-o",
        "/dev/null",
        &format!("{page_a}/v1/sandboxes"),
    ]);
    assert!(
        api.to_ascii_lowercase()
            .contains("x-content-type-options: nosniff"),
        "{api}"
    );
}

fn admin_client_mistakes_are_named() {
    let w = World::new();
    let p = proxy(&w, &format!("sqlite:{}", w.path("state.db").display()));
    let admin = p.admin_url.clone().unwrap();
    let hostport = admin.trim_start_matches("http://").to_owned();
    let free = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let list = |url: &str, token: &str| {
        let mut env = w.env().to_vec();
        env.push(("GHAPP_ADMIN_URL".to_owned(), url.to_owned()));
        env.push(("GHAPP_ADMIN_TOKEN".to_owned(), token.to_owned()));
        w.cmd("ghapp")
            .env(&env)
            .args(&["sandbox", "list"])
            .carries_secrets()
            .run()
    };
    for (url, token, want) in [
        (
            format!("http://{}", p.addr),
            ADMIN_TOKEN,
            "is the proxy's sandbox listener (what HTTPS_PROXY names), not its admin API",
        ),
        (
            hostport.clone(),
            ADMIN_TOKEN,
            "has no http:// scheme: use e.g. http://127.0.0.1:9091",
        ),
        (
            format!("https://{hostport}"),
            ADMIN_TOKEN,
            "is https: the admin API speaks plain HTTP",
        ),
        (
            admin.clone(),
            "not-the-admin-token-0123",
            "the admin token is wrong",
        ),
        (
            format!("http://127.0.0.1:{free}"),
            ADMIN_TOKEN,
            "nothing listens there (is admin_listen set, and the proxy running?)",
        ),
    ] {
        list(&url, token).one_line_error("ghapp", want);
    }
    // Empty lists say so (the lists' header rows are in the tests that fill them).
    assert_eq!(list(&admin, ADMIN_TOKEN).ok().stdout, "no sandboxes\n");
    assert_eq!(
        ghapp_approvals(&w, &p, &["list"]).ok().stdout,
        "no approvals\n"
    );
    assert_eq!(
        ghapp_admin(&w, &p, "proposals", &["list"]).ok().stdout,
        "no proposals\n"
    );
}

/// This module's tests, for the runner (`main.rs`).
pub(crate) const TESTS: &[(&str, fn())] = &[
    (
        "sandboxes_come_and_go_on_sqlite",
        sandboxes_come_and_go_on_sqlite,
    ),
    (
        "sandboxes_come_and_go_on_postgres",
        sandboxes_come_and_go_on_postgres,
    ),
    (
        "two_replicas_on_one_postgres_serve_the_same_sandboxes_and_approvals",
        two_replicas_on_one_postgres_serve_the_same_sandboxes_and_approvals,
    ),
    (
        "webhooks_are_verified_and_act_once",
        webhooks_are_verified_and_act_once,
    ),
    (
        "a_learning_sandbox_s_pull_requests_wait_for_a_human",
        a_learning_sandbox_s_pull_requests_wait_for_a_human,
    ),
    (
        "an_autonomous_sandbox_manages_its_pull_requests_and_merges_only_when_allowed",
        an_autonomous_sandbox_manages_its_pull_requests_and_merges_only_when_allowed,
    ),
    (
        "a_proxy_behind_a_service_hands_out_its_advertised_address",
        a_proxy_behind_a_service_hands_out_its_advertised_address,
    ),
    (
        "an_observing_sandbox_s_work_is_recorded_not_done",
        an_observing_sandbox_s_work_is_recorded_not_done,
    ),
    (
        "gh_pr_create_in_a_learning_sandbox_is_held_and_survives_a_restart",
        gh_pr_create_in_a_learning_sandbox_is_held_and_survives_a_restart,
    ),
    (
        "an_assisted_sandbox_s_small_changes_go_through_and_significant_ones_wait",
        an_assisted_sandbox_s_small_changes_go_through_and_significant_ones_wait,
    ),
    (
        "the_approvals_page_in_a_real_browser",
        the_approvals_page_in_a_real_browser,
    ),
    (
        "the_admin_api_answers_as_documented_and_as_its_types_read",
        the_admin_api_answers_as_documented_and_as_its_types_read,
    ),
    (
        "a_flood_of_unsigned_deliveries_starves_nothing",
        a_flood_of_unsigned_deliveries_starves_nothing,
    ),
    (
        "what_a_sandbox_wrote_is_shown_escaped",
        what_a_sandbox_wrote_is_shown_escaped,
    ),
    (
        "page_sign_in_is_throttled_and_sign_out_ends_the_session_everywhere",
        page_sign_in_is_throttled_and_sign_out_ends_the_session_everywhere,
    ),
    (
        "admin_client_mistakes_are_named",
        admin_client_mistakes_are_named,
    ),
];
