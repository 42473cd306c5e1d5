//! The operator commands against fakehub: doctor (a test per misconfiguration), installations,
//! revoke, completions and man pages.

use std::os::unix::fs::PermissionsExt;

use ghapp_e2e::{Run, World, basic_auth};

fn line<'a>(r: &'a Run, prefix: &str) -> &'a str {
    r.stdout
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting {prefix:?} in:\n{}", r.stdout))
}

fn doctor_all_good_but_an_extra_permission() {
    let w = World::new();
    // The emulator's own app is all good: nothing to warn of.
    let r = w.ghapp(&["doctor", "--repo", "octo-org/widgets"]);
    r.ok();
    assert!(!r.stdout.contains("warn"), "{}", r.stdout);
    // One permission beyond what ghapp needs.
    w.hub.grant(fakehub::ORG_INSTALLATION, "issues", "read");
    let r = w.ghapp(&["doctor", "--repo", "octo-org/widgets"]);
    r.ok();
    for check in [
        "configuration",
        "private key",
        "clock",
        "JWT",
        "installation",
        "permissions",
        "token",
        "git",
        "helper",
    ] {
        line(&r, &format!("ok    {check}:"));
    }
    assert!(line(&r, "ok    JWT:").contains("accepted: app ghapp-fakehub"));
    assert!(
        line(&r, "warn  permissions:").contains("issues: read"),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("fail"), "{}", r.stdout);
    // The same checks as JSON (issue 11, conventions).
    let j = w.ghapp(&["doctor", "--repo", "octo-org/widgets", "--json"]);
    j.ok();
    let v: serde_json::Value = serde_json::from_str(&j.stdout).unwrap();
    assert_eq!(v["ok"], true);
    let checks = v["checks"].as_array().unwrap();
    assert_eq!(checks.len(), r.stdout.lines().count());
    assert!(
        checks
            .iter()
            .any(|c| c["check"] == "JWT" && c["level"] == "ok" && c["fix"].is_null())
    );
    w.assert_no_secrets();
}

fn doctor_checks_that_git_can_run_the_helper_and_the_helper_can_mint() {
    // Issue 11, trap 1: `cargo run -p ghapp` builds ghapp only; git then says "'credential-ghapp'
    // is not a git command". doctor finds the helper as git does (exec-path, then PATH).
    let mut w = World::new();
    let bins = ghapp_e2e::bin_dir();
    let only = w.path("only-ghapp");
    std::fs::create_dir_all(&only).unwrap();
    std::os::unix::fs::symlink(bins.join("ghapp"), only.join("ghapp")).unwrap();
    w.set_env(
        "PATH",
        Some(&format!("{}:/usr/local/bin:/usr/bin:/bin", only.display())),
    );
    let ghapp = only.join("ghapp");
    let r = w.cmd(ghapp.to_str().unwrap()).arg("doctor").run();
    r.fails();
    assert!(
        line(&r, "fail  helper:").contains(
            "git cannot run the helper \"ghapp\": git-credential-ghapp is neither in git's exec-path nor on PATH; fix: put git-credential-ghapp and ghapp on PATH, side by side"
        ),
        "{}",
        r.stdout
    );
    // The helper alone, without ghapp beside it or on PATH.
    let lone = w.path("only-helper");
    std::fs::create_dir_all(&lone).unwrap();
    std::fs::copy(
        bins.join("git-credential-ghapp"),
        lone.join("git-credential-ghapp"),
    )
    .unwrap();
    w.set_env(
        "PATH",
        Some(&format!("{}:/usr/local/bin:/usr/bin:/bin", lone.display())),
    );
    let r = w.cmd(ghapp.to_str().unwrap()).arg("doctor").run();
    assert!(
        line(&r, "fail  helper:").contains("ghapp is neither beside"),
        "{}",
        r.stdout
    );
    // Both, side by side.
    std::os::unix::fs::symlink(
        bins.join("git-credential-ghapp"),
        only.join("git-credential-ghapp"),
    )
    .unwrap();
    w.set_env(
        "PATH",
        Some(&format!("{}:/usr/local/bin:/usr/bin:/bin", only.display())),
    );
    let r = w.cmd(ghapp.to_str().unwrap()).arg("doctor").run();
    r.ok();
    assert!(
        line(&r, "ok    helper:").contains("git runs "),
        "{}",
        r.stdout
    );
}

fn doctor_names_each_misconfiguration_and_fails() {
    // Missing configuration.
    let mut w = World::new();
    for k in ["GHAPP_APP_ID", "GHAPP_PRIVATE_KEY_FILE", "GHAPP_API_URL"] {
        w.set_env(k, None);
    }
    let r = w.ghapp(&["doctor"]);
    r.fails();
    assert!(line(&r, "fail  configuration:").contains("no GitHub App configured"));

    // Unreadable key; a world-readable key (warn).
    let mut w = World::new();
    w.set_env("GHAPP_PRIVATE_KEY_FILE", Some("/nonexistent/app.pem"));
    let r = w.ghapp(&["doctor"]);
    r.fails();
    // The fix is said once (issue 11, trap 6).
    assert_eq!(
        line(&r, "fail  private key:")
            .matches(".pem downloaded from")
            .count()
            + line(&r, "fail  private key:").matches(".pem from").count(),
        1,
        "{}",
        r.stdout
    );
    assert!(
        line(&r, "fail  private key:")
            .contains("cannot read private key file /nonexistent/app.pem")
    );
    let loose = w.path("loose.pem");
    std::fs::copy(w.hub.key_path(), &loose).unwrap();
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
    w.set_env("GHAPP_PRIVATE_KEY_FILE", Some(loose.to_str().unwrap()));
    let r = w.ghapp(&["doctor"]);
    r.ok();
    assert!(line(&r, "warn  private key:").contains("chmod 600"));

    // Wrong app id.
    let mut w = World::new();
    w.set_env("GHAPP_APP_ID", Some("999"));
    let r = w.ghapp(&["doctor"]);
    r.fails();
    assert!(
        line(&r, "fail  JWT:")
            .contains("check that app id 999 (app_id from GHAPP_APP_ID) and the private key (key from GHAPP_PRIVATE_KEY_FILE) belong to the same app")
    );

    // Not installed on the repository; missing permissions.
    let w = World::new();
    let r = w.ghapp(&["doctor", "--repo", "lonely/island"]);
    r.fails();
    assert!(
        line(&r, "fail  installation:")
            .contains("the app is not installed on lonely, or lonely/island does not exist")
    );
    let r = w.ghapp(&["doctor", "--repo", "octo-user/dotfiles"]);
    r.fails();
    let p = line(&r, "fail  permissions:");
    assert!(
        p.contains("contents: write (granted: read)")
            && p.contains("pull_requests: write (granted: none)"),
        "{p}"
    );

    // A clock skewed against the server's.
    let w = World::new();
    w.hub.set_clock_skew(600);
    let r = w.ghapp(&["doctor", "--repo", "octo-org/widgets"]);
    r.fails();
    // The Date header has one-second resolution: 600 s, give or take one.
    let clock = line(&r, "fail  clock:");
    let secs: i64 = clock
        .split("clock is ")
        .nth(1)
        .and_then(|x| x.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{clock}"));
    assert!((599..=601).contains(&secs), "{clock}");
    line(&r, "ok    token:");

    // Git not configured; another helper ahead of ours.
    let mut w = World::new();
    let empty = w.path("empty-gitconfig");
    std::fs::write(&empty, "").unwrap();
    w.set_env("GIT_CONFIG_GLOBAL", Some(empty.to_str().unwrap()));
    let r = w.ghapp(&["doctor"]);
    r.fails();
    assert!(line(&r, "fail  git:").contains("no credential helper routes"));
    std::fs::write(
        &empty,
        "[credential]\n\thelper = store\n\thelper = ghapp\n\tuseHttpPath = true\n",
    )
    .unwrap();
    let r = w.ghapp(&["doctor"]);
    r.fails();
    assert!(
        line(&r, "fail  git:").contains("helper \"store\" answers"),
        "{}",
        r.stdout
    );
    // ...and configure-git mends it.
    w.ghapp(&["configure-git", "--host", &w.hub.git_host()])
        .ok();
    w.ghapp(&["doctor"]).ok();
}

fn installations_and_revoke() {
    let w = World::new();
    let r = w.ghapp(&["installations"]);
    r.ok();
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", r.stdout);
    // A header row over tab-separated columns; --json for scripts (issue 11, conventions).
    assert_eq!(lines[0], "ID\tACCOUNT\tREPOSITORIES\tPERMISSIONS");
    assert!(lines[1].starts_with("101\tocto-org\tselected\t"));
    assert!(lines[2].starts_with("102\tocto-user\tall\tcontents:read,metadata:read"));
    let j: serde_json::Value =
        serde_json::from_str(&w.ghapp(&["installations", "--json"]).ok().stdout).unwrap();
    assert_eq!(j[1]["id"], 102);
    assert_eq!(j[1]["account"], "octo-user");
    assert_eq!(
        j[1]["permissions"],
        serde_json::json!({"contents": "read", "metadata": "read"})
    );
    let one = w.ghapp(&["installation", "102"]);
    one.ok();
    assert_eq!(one.stdout.lines().count(), 2);
    let j: serde_json::Value =
        serde_json::from_str(&w.ghapp(&["installation", "102", "--json"]).ok().stdout).unwrap();
    assert_eq!(j["repository_selection"], "all");
    w.ghapp(&["installation", "999"])
        .fails()
        .one_line_error("ghapp", "installation 999 not found");

    // Revoke: cached live tokens stop working at GitHub, and the cache is empty.
    let token = w.get("octo-org/widgets").ok().field("password").unwrap();
    let ls = |t: &str| {
        w.cmd("git")
            .args(&[
                "-c",
                "credential.helper=",
                "-c",
                &format!("http.extraHeader={}", basic_auth(t)),
                "ls-remote",
                &w.hub.repo_url("octo-org", "widgets"),
            ])
            .run()
    };
    ls(&token).ok();
    let r = w.ghapp(&["revoke"]);
    r.ok();
    assert!(
        r.stdout.starts_with("revoked 1 live token(s)"),
        "{}",
        r.stdout
    );
    ls(&token).fails();
    let mints = w.hub.mint_count();
    w.get("octo-org/widgets").ok();
    assert_eq!(w.hub.mint_count(), mints + 1, "the cache was cleared");
    w.assert_no_secrets();
}

fn completions_and_man_pages() {
    let w = World::new();
    let r = w.ghapp(&["completions", "bash"]);
    r.ok();
    for c in ["doctor", "configure-git", "proxy", "installations"] {
        assert!(r.stdout.contains(c), "{c}");
    }
    w.ghapp(&["completions", "zsh"]).ok();
    let man = w.ghapp(&["man"]);
    man.ok();
    assert!(
        man.stdout.contains(".TH ghapp"),
        "{}",
        &man.stdout[..200.min(man.stdout.len())]
    );
    let dir = w.path("man");
    let r = w.ghapp(&["man", "--dir", dir.to_str().unwrap()]);
    r.ok();
    assert!(dir.join("ghapp.1").is_file() && dir.join("ghapp-doctor.1").is_file());
}

fn hooks_config_deliveries_and_redelivery() {
    let w = World::new();
    let c = w.ghapp(&["hooks", "config"]);
    c.ok();
    assert!(
        c.stdout
            .contains("url: https://example.invalid/github/webhook")
    );
    assert!(c.stdout.contains("secret: set (masked)"));
    let all = w.ghapp(&["hooks", "deliveries"]);
    all.ok();
    assert_eq!(
        all.stdout.lines().count(),
        4,
        "a header and three: {}",
        all.stdout
    );
    assert!(all.stdout.starts_with("ID\tDELIVERED\tEVENT\tSTATUS\n"));
    assert!(
        all.stdout.lines().nth(1).unwrap().starts_with("3\t"),
        "newest first"
    );
    let failed = w.ghapp(&["hooks", "deliveries", "--failed"]);
    failed.ok();
    assert_eq!(
        failed.stdout.trim(),
        "ID\tDELIVERED\tEVENT\tSTATUS\n2\t2026-01-05T10:02:00Z\tpull_request.opened\t500 Internal Server Error"
    );
    w.ghapp(&["hooks", "redeliver", "2"]).ok();
    assert_eq!(w.hub.deliveries().last(), Some(&(4, 200, true)));
    w.ghapp(&["hooks", "redeliver", "99"])
        .fails()
        .one_line_error("ghapp", "no such delivery");
}

/// Writes `token` to a 0600 file in the world and returns its path.
fn token_file(w: &World, name: &str, token: &str) -> String {
    let p = w.path(name);
    std::fs::write(&p, format!("{token}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p.display().to_string()
}

fn a_personal_access_token_answers_where_no_app_is_configured() {
    let mut w = World::new();
    for k in ["GHAPP_APP_ID", "GHAPP_PRIVATE_KEY_FILE"] {
        w.set_env(k, None);
    }
    let pat = w.hub.add_fine_grained_pat(
        "octo-dev",
        &["octo-org/widgets"],
        &[
            ("contents", "write"),
            ("metadata", "read"),
            ("pull_requests", "write"),
        ],
        Some(30 * 86_400),
    );
    let file = token_file(&w, "pat.txt", &pat);
    w.set_env("GHAPP_PAT_FILE", Some(&file));

    // git clones and pushes through the helper with the token; no app, so no mint.
    w.clone_repo("octo-org", "widgets", "widgets").ok();
    let dir = w.path("widgets");
    w.commit_file(&dir, "pat.txt", "pushed with a fine-grained token\n");
    w.git(
        &dir,
        &["push", "--quiet", "origin", "HEAD:refs/heads/pat-branch"],
    )
    .ok();
    assert!(
        w.hub_ref("octo-org", "widgets", "refs/heads/pat-branch")
            .is_some()
    );
    assert_eq!(w.hub.mint_count(), 0);
    // Never with an expiry, and marked ephemeral when git can take that.
    let g = w.helper(
        "get",
        &format!(
            "capability[]=authtype\nprotocol=https\nhost={}\npath=octo-org/widgets.git\n\n",
            w.hub.git_host()
        ),
    );
    g.ok();
    assert_eq!(g.field("password").as_deref(), Some(pat.as_str()));
    assert_eq!(g.field("password_expiry_utc"), None);
    assert_eq!(g.field("ephemeral").as_deref(), Some("1"));

    // doctor says which source answers.
    let r = w.ghapp(&["doctor", "--repo", "octo-org/widgets"]);
    r.ok();
    assert!(
        line(&r, "ok    configuration:").contains(&format!("token from file {file}")),
        "{}",
        r.stdout
    );
    assert!(line(&r, "ok    personal access token:").contains("accepted for octo-dev"));
    line(
        &r,
        "ok    personal access token: reaches octo-org/widgets with push",
    );
    assert!(
        line(&r, "ok    source:").contains(&format!(
            "personal access token from file {file} answers for octo-org/widgets (no GitHub App is configured for it)"
        )),
        "{}",
        r.stdout
    );

    // From the environment: doctor names GHAPP_PAT; a repository outside the token fails.
    w.set_env("GHAPP_PAT_FILE", None);
    w.set_env("GHAPP_PAT", Some(&pat));
    let r = w.ghapp(&["doctor", "--repo", "octo-org/gadgets"]);
    r.fails();
    assert!(line(&r, "ok    configuration:").contains("from GHAPP_PAT"));
    assert!(
        line(&r, "fail  personal access token:").contains("does not reach octo-org/gadgets"),
        "{}",
        r.stdout
    );

    // A token that expired: doctor fails with the fix.
    let old = w.hub.add_fine_grained_pat(
        "octo-dev",
        &["octo-org/widgets"],
        &[("contents", "read")],
        Some(0),
    );
    w.set_env("GHAPP_PAT", Some(&old));
    let r = w.ghapp(&["doctor", "--repo", "octo-org/widgets"]);
    r.fails();
    assert!(
        line(&r, "fail  personal access token:").contains("expired or was revoked"),
        "{}",
        r.stdout
    );

    // The keyring source, on this headless machine: one clear line, no hang.
    w.set_env("GHAPP_PAT", None);
    w.set_env("GHAPP_PAT_KEYRING", Some("ghapp-e2e/pat"));
    let r = w.ghapp(&["doctor", "--repo", "octo-org/widgets"]);
    r.fails();
    assert!(
        line(&r, "fail  personal access token:").contains("keyring entry ghapp-e2e/pat"),
        "{}",
        r.stdout
    );
    let g = w.get("octo-org/widgets");
    g.one_line_error("git-credential-ghapp", "keyring entry ghapp-e2e/pat");
    w.assert_no_secrets();
}

fn the_app_answers_first_and_the_token_where_it_is_not_installed() {
    let mut w = World::new();
    let pat = w.hub.add_fine_grained_pat(
        "lonely",
        &["lonely/island"],
        &[("contents", "write"), ("metadata", "read")],
        Some(90 * 86_400),
    );
    let file = token_file(&w, "pat.txt", &pat);
    w.set_env("GHAPP_PAT_FILE", Some(&file));

    // The app is installed on octo-org: it answers there, narrowed as always.
    let g = w.get("octo-org/widgets");
    g.ok();
    assert_ne!(g.field("password").as_deref(), Some(pat.as_str()));
    assert_eq!(w.hub.mint_count(), 1);
    // Not on lonely/island: the token answers, and git clones.
    let g = w.get("lonely/island");
    g.ok();
    assert_eq!(g.field("password").as_deref(), Some(pat.as_str()));
    w.clone_repo("lonely", "island", "island").ok();
    assert_eq!(w.hub.mint_count(), 1);

    let r = w.ghapp(&["doctor", "--repo", "lonely/island"]);
    r.ok();
    assert!(
        line(&r, "warn  installation:")
            .contains("not installed on lonely, or lonely/island does not exist")
    );
    assert!(
        line(&r, "ok    source:")
            .contains("answers for lonely/island (the app is not installed on it)"),
        "{}",
        r.stdout
    );
    let r = w.ghapp(&["doctor", "--repo", "octo-org/widgets"]);
    r.ok();
    assert!(
        line(&r, "ok    source:").contains("GitHub App 4242 answers for octo-org/widgets"),
        "{}",
        r.stdout
    );

    // `ghapp token` prints it too, saying why; it cannot be narrowed, so --permission refuses.
    let t = w.ghapp(&["token", "--repo", "lonely/island"]);
    t.ok();
    assert_eq!(t.stdout.trim(), pat);
    assert!(
        t.stderr.contains("the app is not installed on it"),
        "{t:#?}"
    );
    let t = w.ghapp(&[
        "token",
        "--repo",
        "lonely/island",
        "--permission",
        "contents=read",
    ]);
    t.one_line_error("ghapp", "cannot be narrowed");
    w.assert_no_secrets();
}

/// This module's tests, for the runner (`main.rs`).
pub(crate) const TESTS: &[(&str, fn())] = &[
    (
        "doctor_all_good_but_an_extra_permission",
        doctor_all_good_but_an_extra_permission,
    ),
    (
        "doctor_checks_that_git_can_run_the_helper_and_the_helper_can_mint",
        doctor_checks_that_git_can_run_the_helper_and_the_helper_can_mint,
    ),
    (
        "doctor_names_each_misconfiguration_and_fails",
        doctor_names_each_misconfiguration_and_fails,
    ),
    ("installations_and_revoke", installations_and_revoke),
    ("completions_and_man_pages", completions_and_man_pages),
    (
        "hooks_config_deliveries_and_redelivery",
        hooks_config_deliveries_and_redelivery,
    ),
    (
        "a_personal_access_token_answers_where_no_app_is_configured",
        a_personal_access_token_answers_where_no_app_is_configured,
    ),
    (
        "the_app_answers_first_and_the_token_where_it_is_not_installed",
        the_app_answers_first_and_the_token_where_it_is_not_installed,
    ),
];
