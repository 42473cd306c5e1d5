//! The operator CLI end to end: `ghapp token`, `configure-git`, `demo`.

use ghapp_e2e::World;

fn token_prints_a_narrowed_token_and_json() {
    let w = World::new();
    let r = w.ghapp(&["token", "--repo", "octo-org/widgets"]);
    r.ok();
    let token = r.stdout.trim().to_owned();
    assert!(token.starts_with("ghs_"), "{r:#?}");
    assert_eq!(w.hub.issued_tokens(), vec![token.clone()]);

    let r = w.ghapp(&[
        "token",
        "--repo",
        "octo-org/widgets",
        "--permission",
        "contents=read",
        "--json",
    ]);
    r.ok();
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_ne!(v["token"], token);
    assert_eq!(v["repositories"], serde_json::json!(["octo-org/widgets"]));
    assert_eq!(v["permissions"], serde_json::json!({"contents": "read"}));
    assert!(v["expires_at"].as_str().unwrap().ends_with('Z'));
    let mints = w.hub.counters().mints;
    assert_eq!(mints.len(), 2);
    assert_eq!(
        mints[1].permissions.get("contents").map(String::as_str),
        Some("read")
    );

    // Several repositories of one owner, or all of an owner's (issue 11, conventions).
    let v: serde_json::Value = serde_json::from_str(
        &w.ghapp(&[
            "token",
            "--repo",
            "octo-org/widgets",
            "--repo",
            "octo-org/gadgets",
            "--json",
        ])
        .ok()
        .stdout,
    )
    .unwrap();
    assert_eq!(
        v["repositories"],
        serde_json::json!(["octo-org/widgets", "octo-org/gadgets"])
    );
    let v: serde_json::Value = serde_json::from_str(
        &w.ghapp(&["token", "--owner", "octo-user", "--json"])
            .ok()
            .stdout,
    )
    .unwrap();
    assert_eq!(v["installation_id"], fakehub::USER_INSTALLATION);
    let mints = w.hub.counters().mints;
    assert_eq!(
        mints[2].repositories,
        Some(vec!["widgets".to_owned(), "gadgets".to_owned()])
    );
    assert_eq!(
        mints[3].repositories, None,
        "--owner asks for the whole installation"
    );

    // Bad usage is found before anything is asked of GitHub, and exits 2 (issue 11, trap 11).
    let requests = w.hub.requests().len();
    for (args, want) in [
        (&["token", "--repo", "nope"][..], "is not OWNER/REPO"),
        (&["token", "--repo", "widgets"], "is not OWNER/REPO"),
        (&["doctor", "--repo", "widgets"], "is not OWNER/REPO"),
        (
            &["token", "--repo", "a/b", "--repo", "c/d"],
            "--repo a/b and --repo c/d have different owners",
        ),
        (
            &["token", "--repo", "a/b", "--permission", "contents"],
            "NAME=LEVEL",
        ),
        (
            &["token", "--repo", "a/b", "--permission", "contnets=read"],
            "\"contnets\" is not a GitHub App permission (did you mean contents?); they are: actions,",
        ),
        (
            &["token", "--repo", "a/b", "--permission", "contents=admin"],
            "contents takes read or write",
        ),
    ] {
        let r = w.ghapp(args);
        r.fails().one_line_error("ghapp", want);
        assert_eq!(r.code, Some(2), "{args:?}: {r:#?}");
    }
    assert_eq!(w.hub.requests().len(), requests);
    w.assert_no_secrets();
}

fn configure_git_is_idempotent_and_routes_git_to_the_helper() {
    let mut w = World::new();
    // Start from an empty global config with another helper configured first.
    let cfg = w.path("fresh-gitconfig");
    std::fs::write(&cfg, "[credential]\n\thelper = store\n").unwrap();
    w.set_env("GIT_CONFIG_GLOBAL", Some(cfg.to_str().unwrap()));
    let host = w.hub.git_host();
    w.ghapp(&["configure-git", "--host", &host]).ok();
    let before = std::fs::read_to_string(&cfg).unwrap();
    let again = w.ghapp(&["configure-git", "--host", &host]);
    again.ok();
    assert!(again.stdout.contains("already"), "{again:#?}");
    assert_eq!(
        std::fs::read_to_string(&cfg).unwrap(),
        before,
        "second run changes nothing"
    );
    let helpers = w.git(
        w.root.path(),
        &[
            "config",
            "--global",
            "--get-all",
            &format!("credential.https://{host}.helper"),
        ],
    );
    assert_eq!(helpers.stdout, "\nghapp\n");

    // git now clones through ghapp, not through `store` (which has nothing and would prompt).
    w.clone_repo("octo-org", "widgets", "w").ok();
    assert_eq!(w.hub.mint_count(), 1);

    // --unset undoes exactly that: the file is as it was (issue 11, conventions).
    w.ghapp(&["configure-git", "--host", &host, "--unset"]).ok();
    let after = std::fs::read_to_string(&cfg).unwrap();
    let entries = |text: &str| -> Vec<String> {
        text.lines()
            .map(str::trim)
            .filter(|l| l.contains('='))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(entries(&after), ["helper = store"], "{after}");
    // A helper list someone else wrote is left alone.
    let other = w.path("other-gitconfig");
    std::fs::write(
        &other,
        format!("[credential \"https://{host}\"]\n\thelper = store\n"),
    )
    .unwrap();
    let r = w.ghapp(&[
        "configure-git",
        "--host",
        &host,
        "--unset",
        "--file",
        other.to_str().unwrap(),
    ]);
    r.ok();
    assert!(r.stdout.contains("left credential.https://"), "{r:#?}");
    assert!(
        std::fs::read_to_string(&other)
            .unwrap()
            .contains("helper = store")
    );

    // --file and --local: a runner's own config, the global one untouched.
    let runner = w.path("runner-gitconfig");
    w.ghapp(&[
        "configure-git",
        "--host",
        &host,
        "--file",
        runner.to_str().unwrap(),
    ])
    .ok();
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), after);
    assert!(
        std::fs::read_to_string(&runner)
            .unwrap()
            .contains("useHttpPath = true")
    );
    let repo = w.path("w");
    let local = w
        .cmd("ghapp")
        .args(&["configure-git", "--host", &host, "--local"])
        .dir(&repo)
        .run();
    local.ok();
    let fetch = w.git(&repo, &["fetch", "--quiet", "origin"]);
    fetch.ok();
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), after);
}

fn demo_passes_with_no_configuration() {
    let home = tempfile::tempdir().unwrap();
    let bin = ghapp_e2e::bin_dir().join("ghapp");
    let child = std::process::Command::new(bin)
        .arg("demo")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = ghapp_e2e::wait_bounded(child, std::time::Duration::from_secs(120), "ghapp demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("[5/5] the emulator has refs/heads/agent/demo"),
        "{stdout}"
    );
    assert!(
        stdout.contains("tokens minted: 1 (narrowed to octo-org/widgets)"),
        "{stdout}"
    );
    // It ends by opening the pull request and printing its URL.
    assert!(
        stdout.trim_end().ends_with("/octo-org/widgets/pull/1"),
        "{stdout}"
    );
    assert!(
        stdout.contains("gh-pr open (on the host's agent/demo): https://127.0.0.1:"),
        "{stdout}"
    );
    // The sandbox part: no credentials in the sandbox, its push lands, main is refused.
    assert!(
        stdout.contains("HTTPS_PROXY=http://agent-1:****@"),
        "{stdout}"
    );
    assert!(
        stdout.contains("[3/4] git push origin agent/sandbox: ok (the emulator has it)"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "! [remote rejected] HEAD -> main (pushes allowed only to refs/heads/agent/*)"
        ),
        "{stdout}"
    );
}

/// A long-running `ghapp ARGS` (the emulator, a proxy) with an empty environment but `PATH`
/// and `env`, in `cwd`: the child and what it printed up to the line starting `until`.
fn serve(
    args: &[&str],
    env: &[(&str, &str)],
    cwd: &std::path::Path,
    until: &str,
) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(ghapp_e2e::bin_dir().join("ghapp"))
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = Vec::new();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        let mut l = String::new();
        if reader.read_line(&mut l).unwrap() == 0 {
            break;
        }
        let done = l.trim_start().starts_with(until);
        lines.push(l);
        if done {
            break;
        }
    }
    (child, lines.concat())
}

/// The proxy configuration `ghapp emulator` printed.
fn printed_snippet(text: &str) -> String {
    text.lines()
        .skip_while(|l| !l.starts_with("`ghapp proxy --config proxy.toml`"))
        .skip(1)
        .take_while(|l| !l.starts_with("Press Ctrl-C"))
        .map(|l| format!("{l}\n"))
        .collect()
}

fn emulator_prints_what_a_user_needs_and_serves_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let (mut child, text) = serve(&["emulator", "--dir", &d], &[], dir.path(), "Press Ctrl-C");
    let api = text
        .lines()
        .find_map(|l| l.strip_prefix("  export GHAPP_API_URL="))
        .expect("API URL printed")
        .to_owned();
    for want in [
        "  CA:",
        "  app key:",
        "  app id:       4242",
        "installations: 101",
        "export GHAPP_PRIVATE_KEY_FILE=",
    ] {
        assert!(text.contains(want), "{want:?} missing from:\n{text}");
    }
    let ca = std::fs::read_to_string(dir.path().join("ca.pem")).unwrap();
    let key = dir.path().join("app-key.pem");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = rt.block_on(async {
        let c = ghapp_core::client::GitHubClient::with_ca(&api, &ca).unwrap();
        c.request(
            ghapp_core::client::Method::GET,
            "/rate_limit",
            ghapp_core::client::Auth::None,
            None,
        )
        .await
        .unwrap()
        .status
    });
    // The proxy snippet it prints works as printed (issue 11, trap 2), and the proxy checks at
    // start what doctor checks: a wrong CA or app id is one line naming the setting.
    let snippet = printed_snippet(&text);
    assert!(snippet.contains("[[sandbox]]"), "{text}");
    let proxy = |toml: &str, extra: &[&str]| {
        let f = dir.path().join("proxy.toml");
        std::fs::write(&f, toml).unwrap();
        let out = std::process::Command::new(ghapp_e2e::bin_dir().join("ghapp"))
            .args(["proxy", "--config"])
            .arg(&f)
            .args(["--listen", "127.0.0.1:0", "--ca-dir"])
            .arg(dir.path().join("proxy-ca"))
            .args(extra)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AGENT1_SECRET", "0123456789abcdef0123")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = proxy(&snippet, &["--check"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("ok    app: "), "{out}");
    assert!(
        out.contains("ok    sandbox agent-1: installation 101 serves its octo-org repositories"),
        "{out}"
    );
    let no_ca: String = snippet
        .lines()
        .filter(|l| !l.starts_with("upstream_ca_file"))
        .map(|l| format!("{l}\n"))
        .collect();
    for extra in [&["--check"][..], &[]] {
        let (code, out, err) = proxy(&no_ca, extra);
        assert_eq!(code, Some(1), "{out}{err}");
        let all = format!("{out}{err}");
        assert!(
            all.contains("presents a certificate this proxy does not trust")
                && all.contains("set upstream_ca_file to the PEM of the CA that signed it"),
            "{all}"
        );
    }
    let (code, _, err) = proxy(&snippet.replace("app_id = 4242", "app_id = 999"), &[]);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("ghapp: not starting: app: GitHub refused the app's JWT")
            && err.contains("fix app_id (app_id from ")
            && err.contains("proxy.toml [app]) or the private key (key from "),
        "{err}"
    );

    // A variable that overrides the file is named where it matters: a stale GHAPP_API_URL.
    let f = dir.path().join("proxy.toml");
    std::fs::write(&f, &snippet).unwrap();
    let out = std::process::Command::new(ghapp_e2e::bin_dir().join("ghapp"))
        .args(["proxy", "--check", "--config"])
        .arg(&f)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AGENT1_SECRET", "0123456789abcdef0123")
        .env("GHAPP_API_URL", api.replace("127.0.0.1", "localhost"))
        .output()
        .unwrap();
    let all =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(all.contains("(api_url from GHAPP_API_URL)"), "{all}");

    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(status.as_u16(), 200);
}

/// The helper's leanness is structural: its own dependency graph holds no async runtime, HTTP
/// client, TLS, keyring or JWT code (ghapp-core without its `mint` feature), so a warm `get`
/// cannot pay for them, whatever the linker keeps.
fn the_helper_links_no_async_runtime_http_or_tls() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let out = std::process::Command::new(cargo)
        .args([
            "tree",
            "-p",
            "git-credential-ghapp",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--offline",
            "--locked",
        ])
        .current_dir(&root)
        .output()
        .expect("cargo tree runs");
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(tree.lines().any(|l| l.starts_with("ghapp-core ")), "{tree}");
    for heavy in [
        "tokio",
        "hyper",
        "reqwest",
        "rustls",
        "keyring",
        "jsonwebtoken",
    ] {
        let found: Vec<&str> = tree
            .lines()
            .filter(|l| l.starts_with(&format!("{heavy} ")))
            .collect();
        assert!(found.is_empty(), "the helper depends on {found:?}:\n{tree}");
    }
}

fn output_into_a_closed_pipe_ends_quietly() {
    // `ghapp installations | head -0` (issue 11, trap 7): the reader is gone before ghapp
    // writes (it asks GitHub first), so the write fails with EPIPE: no panic, no message,
    // status 141 as for a process killed by SIGPIPE.
    let w = World::new();
    for cmd in [
        "installations",
        "doctor",
        "hooks config",
        "token --repo octo-org/widgets",
        "completions bash",
    ] {
        let r = w
            .cmd("bash")
            .args(&[
                "-c",
                &format!("ghapp {cmd} | (exec 0<&-; true); echo status=${{PIPESTATUS[0]}}"),
            ])
            .carries_secrets()
            .run();
        assert!(r.stderr.is_empty(), "ghapp {cmd}: {r:#?}");
        let status = r.stdout.trim();
        if cmd == "installations" {
            assert_eq!(status, "status=141", "ghapp {cmd}: {r:#?}");
        } else {
            assert!(
                status == "status=141" || status == "status=0",
                "ghapp {cmd}: {r:#?}"
            );
        }
    }
}

/// Flags listed in a `--help` that have no description.
fn undescribed_flags(help: &str) -> Vec<String> {
    help.lines()
        .filter(|l| l.trim_start().starts_with('-'))
        .filter(|l| {
            // "  -t, --title <TITLE>  What it is": the flag, then two spaces, then its text.
            let t = l.trim_start();
            !t.contains("  ")
        })
        .map(str::to_owned)
        .collect()
}

fn help_says_what_each_command_and_flag_does() {
    // Issue 11, trap 8: no flag without a description; no app flags where they mean nothing;
    // the proxy's --config described as the proxy's own, required file.
    let w = World::new();
    let subs = [
        "setup",
        "token",
        "configure-git",
        "doctor",
        "installations",
        "installation",
        "hooks",
        "revoke",
        "completions",
        "man",
        "emulator",
        "proxy",
        "demo",
    ];
    for sub in subs {
        let h = w.ghapp(&[sub, "--help"]);
        h.ok();
        // No colour anywhere (so NO_COLOR holds trivially); clap colours only a terminal.
        assert!(!h.stdout.contains('\x1b'), "ghapp {sub}: escape codes");
        assert_eq!(
            undescribed_flags(&h.stdout),
            Vec::<String>::new(),
            "ghapp {sub}"
        );
        let app_flags = h.stdout.contains("--app-id") || h.stdout.contains("--private-key-file");
        // setup makes the app those flags would name.
        let meaningless = matches!(
            sub,
            "emulator" | "demo" | "completions" | "man" | "proxy" | "setup"
        );
        assert_eq!(app_flags, !meaningless, "ghapp {sub} --help:\n{}", h.stdout);
    }
    let proxy = w.ghapp(&["proxy", "--help"]);
    assert!(
        proxy.stdout.contains(
            "The proxy's TOML: listeners, sandboxes and their policy, the app (required)"
        ),
        "{}",
        proxy.stdout
    );
    assert!(!proxy.stdout.contains("$GHAPP_CONFIG"), "{}", proxy.stdout);
    let pr = w.cmd("gh-pr").args(&["open", "--help"]).run();
    pr.ok();
    assert_eq!(
        undescribed_flags(&pr.stdout),
        Vec::<String>::new(),
        "gh-pr open"
    );
}

fn the_proxy_names_its_own_settings() {
    // Issue 11, trap 6: the proxy's missing key names `[app] private_key_file` of its file,
    // not the environment variable the host configuration uses.
    let w = World::new();
    let f = w.path("proxy.toml");
    std::fs::write(
        &f,
        format!(
            "[app]\napi_url = {:?}\napp_id = 4242\nprivate_key_file = \"/nonexistent/app.pem\"\n",
            w.hub.api_url()
        ),
    )
    .unwrap();
    let ca = w.path("proxy-ca");
    // Only the file: the GHAPP_* environment would layer over it.
    let env = [("PATH".to_owned(), std::env::var("PATH").unwrap_or_default())];
    let ghapp = ghapp_e2e::bin_dir().join("ghapp");
    let r = w
        .cmd(ghapp.to_str().unwrap())
        .env(&env)
        .args(&["proxy", "--config", f.to_str().unwrap(), "--ca-dir"])
        .arg(ca.to_str().unwrap())
        .run();
    r.fails().one_line_error(
        "ghapp",
        "cannot read private key file /nonexistent/app.pem: no such file; set [app] private_key_file in the proxy config",
    );
    assert!(!r.stderr.contains("GHAPP_"), "{r:#?}");
}

fn the_emulators_printed_proxy_config_pushes_as_printed() {
    // Saved as printed (a relative ca_dir and all) and started from another directory, the
    // proxy serves a clone and an allowed push.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let (mut hub, text) = serve(&["emulator", "--dir", &d], &[], dir.path(), "Press Ctrl-C");
    let conf = dir.path().join("conf");
    std::fs::create_dir(&conf).unwrap();
    std::fs::write(conf.join("proxy.toml"), printed_snippet(&text)).unwrap();
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let secret = "0123456789abcdef0123";
    let (mut proxy, banner) = serve(
        &[
            "proxy",
            "--config",
            "../conf/proxy.toml",
            "--listen",
            "127.0.0.1:0",
        ],
        &[("AGENT1_SECRET", secret)],
        &elsewhere,
        "GIT_SSL_CAINFO=",
    );
    let addr = banner
        .lines()
        .find_map(|l| l.strip_prefix("ghapp proxy listening on "))
        .unwrap_or_else(|| panic!("{banner}"))
        .to_owned();
    let ca = banner
        .lines()
        .find_map(|l| l.trim().strip_prefix("CA: "))
        .and_then(|l| l.split(" (").next())
        .unwrap_or_else(|| panic!("{banner}"))
        .to_owned();
    assert!(
        ca.starts_with('/'),
        "the banner names the CA by its full path: {banner}"
    );
    assert_eq!(
        std::path::Path::new(&ca),
        conf.join("ghapp-proxy-ca").join("ca.pem"),
        "relative to the file: {banner}"
    );
    let repo = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("clone:"))
        .unwrap()
        .trim()
        .to_owned();
    let git = |args: &[&str], cwd: &std::path::Path| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(cwd)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", dir.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HTTPS_PROXY", format!("http://agent-1:{secret}@{addr}"))
            .env("GIT_HTTP_PROXY_AUTHMETHOD", "basic")
            .env("GIT_SSL_CAINFO", &ca)
            .env("GIT_AUTHOR_NAME", "a")
            .env("GIT_AUTHOR_EMAIL", "a@example.com")
            .env("GIT_COMMITTER_NAME", "a")
            .env("GIT_COMMITTER_EMAIL", "a@example.com")
            .output()
            .unwrap()
    };
    let ok = |o: std::process::Output| {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    ok(git(&["clone", "--quiet", &repo, "work"], &elsewhere));
    let work = elsewhere.join("work");
    std::fs::write(work.join("fix.txt"), "fixed\n").unwrap();
    ok(git(&["add", "fix.txt"], &work));
    ok(git(&["commit", "--quiet", "-m", "Fix"], &work));
    ok(git(
        &["push", "--quiet", "origin", "HEAD:refs/heads/agent/fix-123"],
        &work,
    ));
    let _ = proxy.kill();
    let _ = proxy.wait();
    let _ = hub.kill();
    let _ = hub.wait();
}

fn a_shared_directory_keeps_its_mode_and_holds_no_secret() {
    use std::os::unix::fs::PermissionsExt;
    let w = World::new();
    let shared = w.path("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    // The token cache there: the token is printed, the directory is not used nor changed.
    let r = w
        .cmd("ghapp")
        .args(&["token", "--repo", "octo-org/widgets"])
        .env(
            &w.env()
                .iter()
                .filter(|(k, _)| k != "GHAPP_CACHE_DIR")
                .cloned()
                .chain([("GHAPP_CACHE_DIR".to_owned(), shared.display().to_string())])
                .collect::<Vec<_>>(),
        )
        .carries_secrets()
        .run();
    r.ok();
    assert!(
        r.stderr
            .contains("is not used: its mode is 1777, open to other users"),
        "{r:#?}"
    );
    let mode = std::fs::metadata(&shared).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o1777);
    assert_eq!(
        std::fs::read_dir(&shared).unwrap().count(),
        0,
        "nothing written there"
    );
    // The proxy's state file beside a CA directory in it: refused at start, mode unchanged.
    let ca = shared.join("ca");
    let p = w.path("shared-proxy.toml");
    std::fs::write(
        &p,
        format!(
            "listen = \"127.0.0.1:0\"\nca_dir = {:?}\nadmin_listen = \"127.0.0.1:0\"\nadmin_token = \"admin-token-0123456789abcdef\"\n{}\n{}",
            ca.display().to_string(),
            w.app_table(""),
            ghapp_e2e::two_sandboxes("")
        ),
    )
    .unwrap();
    let r = w
        .cmd("ghapp")
        .args(&[
            "proxy",
            "--config",
            &p.display().to_string(),
            "--listen",
            "127.0.0.1:0",
        ])
        .run();
    r.fails();
    assert!(r.stderr.contains("is shared (mode 1777)"), "{r:#?}");
    let mode = std::fs::metadata(&shared).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o1777);
}

fn a_config_that_cannot_work_is_named_before_it_is_used() {
    let w = World::new();
    let api = w.hub.api_url();
    // `top`: settings above the first table.
    let check_with = |top: &str, app: &str, sandbox: &str| {
        let f = w.path("check.toml");
        std::fs::write(
            &f,
            format!(
                "listen = \"127.0.0.1:0\"\n{top}[app]\napi_url = {app:?}\napp_id = {}\nprivate_key_file = {:?}\n\n[[sandbox]]\nname = \"agent-1\"\nsecret = \"0123456789abcdef0123\"\n{sandbox}\n",
                w.hub.app_id(),
                w.hub.key_path().display().to_string()
            ),
        )
        .unwrap();
        let env: Vec<(String, String)> = w
            .env()
            .iter()
            .filter(|(k, _)| !k.starts_with("GHAPP_"))
            .cloned()
            .collect();
        w.cmd("ghapp")
            .env(&env)
            .args(&["proxy", "--check", "--config", &f.display().to_string()])
            .run()
    };
    let check = |app: &str, sandbox: &str| check_with("", app, sandbox);
    let good = "repos = [\"octo-org/widgets\"]\npush = [\"agent/*\"]";
    check(&api, good).ok();
    // --check writes nothing: no CA, no spool, no token cache beside the file.
    assert!(!w.path("ghapp-proxy-ca").exists());
    let root = api.trim_end_matches("/api/v3");
    for (app, sandbox, want) in [
        (
            root,
            good,
            "answered 404 to GET /app: it is not GitHub's REST base",
        ),
        (
            api.as_str(),
            "repos = [\"octo-org/widgts\"]\npush = [\"agent/*\"]",
            "octo-org/widgts: no such repository, or the app is not installed on it",
        ),
        (
            "https://ghe.nowhere.invalid/api/v3",
            good,
            "the name does not resolve",
        ),
        (
            api.as_str(),
            "repos = [\"octo-org/widgets\"]\npush = [\"refs/head/agent/*\"]",
            "push pattern \"refs/head/agent/*\" can match no branch or tag",
        ),
        (
            api.as_str(),
            "repos = [\"octo-org/widgets\"]\nadmin_listen = \"127.0.0.1:0\"",
            "admin_listen is a top-level setting: move it above the first [table]",
        ),
    ] {
        let r = check(app, sandbox);
        r.fails();
        let all = format!("{}{}", r.stdout, r.stderr);
        assert!(all.contains(want), "{want:?} in {r:#?}");
    }

    // With the approvals page, an installation that does not grant Checks is named (a warning:
    // the page shows the rest without them); once granted, nothing is said.
    let token = w.path("admin-token");
    std::fs::write(&token, "an-admin-token-0123456789abcdef").unwrap();
    let page = format!(
        "admin_listen = \"127.0.0.1:0\"\nadmin_token = {{ file = {:?} }}\n",
        token.display().to_string()
    );
    let r = check_with(&page, &api, good);
    assert!(
        r.ok().stdout.contains(
            "warn  approvals page: installation 101 (octo-org) does not grant Checks (read)"
        ),
        "{r:#?}"
    );
    w.hub.grant(101, "checks", "read");
    let r = check_with(&page, &api, good);
    assert!(!r.ok().stdout.contains("approvals page"), "{r:#?}");

    // A GHES URL without /api/v3 is named as such, not "not installed".
    let mut env = w.env().to_vec();
    env.retain(|(k, _)| k != "GHAPP_API_URL");
    env.push(("GHAPP_API_URL".into(), root.to_owned()));
    w.cmd("ghapp")
        .env(&env)
        .args(&["token", "--repo", "octo-org/widgets"])
        .run()
        .one_line_error(
            "ghapp",
            "it is not GitHub's REST base (on a GHES it is https://HOST/api/v3)",
        );

    // A cached token does not hide a key that can no longer mint.
    w.cmd("ghapp")
        .args(&["token", "--repo", "octo-org/widgets"])
        .carries_secrets()
        .run()
        .ok();
    let not_a_key = w.path("not-a-key.pem");
    std::fs::write(&not_a_key, "hello\n").unwrap();
    for (key, why) in [
        (w.path("missing.pem"), "no such file"),
        (w.root.path().to_path_buf(), "Is a directory"),
        (not_a_key, "is not PEM text"),
        (
            w.hub.ca_path().to_path_buf(),
            "is a certificate, not a private key",
        ),
    ] {
        let mut env = w.env().to_vec();
        env.retain(|(k, _)| k != "GHAPP_PRIVATE_KEY_FILE");
        env.push(("GHAPP_PRIVATE_KEY_FILE".into(), key.display().to_string()));
        let r = w
            .cmd("ghapp")
            .env(&env)
            .args(&["token", "--repo", "octo-org/widgets"])
            .carries_secrets()
            .run();
        r.fails();
        assert!(r.stdout.is_empty(), "{r:#?}");
        assert!(
            r.stderr.contains(
                "no new one can be minted: fix the key (key from GHAPP_PRIVATE_KEY_FILE)"
            ) && r.stderr.contains(why),
            "{why}: {r:#?}"
        );
    }
}

fn the_proxy_says_what_it_does_in_plain_text() {
    use std::io::{BufRead, BufReader, Read, Write};
    let w = World::new();
    let config = w.path("plain.toml");
    let write_config = |extra: &str| {
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:0\"\nca_dir = \"plain-ca\"\nupstream_ca_file = {:?}\nadmin_listen = \"127.0.0.1:0\"\nadmin_token = \"admin-token-0123456789abcdef\"\nstate = \"sqlite:plain-state.db\"\n{}\n{}\n{extra}",
                w.hub.ca_path().display().to_string(),
                w.app_table(""),
                ghapp_e2e::two_sandboxes("")
            ),
        )
        .unwrap();
    };
    write_config("");
    let log = w.path("plain.log");
    let mut child = std::process::Command::new(ghapp_e2e::bin_dir().join("ghapp"))
        .args(["proxy", "--config"])
        .arg(&config)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut banner = String::new();
    while !banner.contains("GIT_SSL_CAINFO=") {
        if out.read_line(&mut banner).unwrap() == 0 {
            break;
        }
    }
    assert!(
        banner.contains("  approvals page: http://127.0.0.1:"),
        "{banner}"
    );
    assert!(
        banner.contains(&format!(
            "  state: sqlite:{}",
            w.path("plain-state.db").display()
        )),
        "{banner}"
    );
    let addr = banner
        .lines()
        .find_map(|l| l.strip_prefix("ghapp proxy listening on "))
        .unwrap()
        .to_owned();
    // A wrong proxy secret is logged without an audit file, and without the secret.
    let mut t = std::net::TcpStream::connect(&addr).unwrap();
    let auth = ghapp_gitproto::basic::encode("agent-a", "not-the-secret-0123456789");
    write!(
        t,
        "CONNECT {0} HTTP/1.1\r\nHost: {0}\r\nProxy-Authorization: {auth}\r\n\r\n",
        w.hub.git_host()
    )
    .unwrap();
    let mut head = [0u8; 12];
    t.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 407");
    // A reload says what changed.
    write_config(
        "[[sandbox]]\nname = \"agent-c\"\nsecret = \"agent-c-secret-0123456789\"\nrepos = [\"octo-org/widgets\"]\n",
    );
    std::process::Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut text = String::new();
    while std::time::Instant::now() < deadline {
        text = std::fs::read_to_string(&log).unwrap();
        if text.contains("reloaded") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        text.contains(
            "SIGHUP: the configuration was reloaded: 3 sandboxes (added: agent-c; removed: none)"
        ),
        "{text}"
    );
    assert!(
        text.contains("wrong proxy credentials") && text.contains("agent-a"),
        "{text}"
    );
    assert!(!text.contains("not-the-secret"), "{text}");
    assert!(!text.contains('\u{1b}'), "no colours in a file: {text:?}");
}

fn a_port_in_use_is_named_with_the_setting_to_change() {
    let w = World::new();
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    w.ghapp(&["emulator", "--port", &port.to_string()])
        .fails()
        .one_line_error(
            "ghapp",
            &format!("port {port} is in use: stop what holds it, or choose another with --port"),
        );
    let f = w.path("busy.toml");
    std::fs::write(
        &f,
        format!(
            "listen = \"127.0.0.1:{port}\"\nca_dir = \"busy-ca\"\n{}\n{}",
            w.app_table(""),
            ghapp_e2e::two_sandboxes("")
        ),
    )
    .unwrap();
    w.ghapp(&["proxy", "--config", &f.display().to_string()])
        .fails()
        .one_line_error(
            "ghapp",
            &format!("cannot listen on 127.0.0.1:{port} (listen): "),
        );
    let r = w.ghapp(&["proxy", "--config", &f.display().to_string()]);
    assert!(
        r.stderr.contains("set another listen (or --listen ADDR)"),
        "{r:#?}"
    );
}

fn the_emulator_under_a_name_prints_what_the_proxy_and_the_host_need() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let (mut hub, text) = serve(
        &["emulator", "--dir", &d, "--hostname", "ghe.test"],
        &[],
        dir.path(),
        "Press Ctrl-C",
    );
    assert!(
        text.contains("add \"127.0.0.1 ghe.test lfs.ghe.test\" to /etc/hosts"),
        "{text}"
    );
    let snippet = printed_snippet(&text);
    assert!(
        snippet.contains("resolve = [\"ghe.test=127.0.0.1\", \"lfs.ghe.test=127.0.0.1\"]")
            && snippet.contains("lfs_storage_hosts = [\"lfs.ghe.test:"),
        "{snippet}"
    );
    // As printed, it checks out: the proxy reaches ghe.test by the resolve line alone.
    let f = dir.path().join("proxy.toml");
    std::fs::write(&f, &snippet).unwrap();
    let out = std::process::Command::new(ghapp_e2e::bin_dir().join("ghapp"))
        .args(["proxy", "--check", "--config"])
        .arg(&f)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AGENT1_SECRET", "0123456789abcdef0123")
        .output()
        .unwrap();
    let all =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(
        all.contains("ok    sandbox agent-1: installation 101"),
        "{all}"
    );
    let _ = hub.kill();
    let _ = hub.wait();
}

/// This module's tests, for the runner (`main.rs`).
pub(crate) const TESTS: &[(&str, fn())] = &[
    (
        "token_prints_a_narrowed_token_and_json",
        token_prints_a_narrowed_token_and_json,
    ),
    (
        "configure_git_is_idempotent_and_routes_git_to_the_helper",
        configure_git_is_idempotent_and_routes_git_to_the_helper,
    ),
    (
        "demo_passes_with_no_configuration",
        demo_passes_with_no_configuration,
    ),
    (
        "emulator_prints_what_a_user_needs_and_serves_it",
        emulator_prints_what_a_user_needs_and_serves_it,
    ),
    (
        "the_helper_links_no_async_runtime_http_or_tls",
        the_helper_links_no_async_runtime_http_or_tls,
    ),
    (
        "output_into_a_closed_pipe_ends_quietly",
        output_into_a_closed_pipe_ends_quietly,
    ),
    (
        "help_says_what_each_command_and_flag_does",
        help_says_what_each_command_and_flag_does,
    ),
    (
        "the_proxy_names_its_own_settings",
        the_proxy_names_its_own_settings,
    ),
    (
        "the_emulators_printed_proxy_config_pushes_as_printed",
        the_emulators_printed_proxy_config_pushes_as_printed,
    ),
    (
        "a_shared_directory_keeps_its_mode_and_holds_no_secret",
        a_shared_directory_keeps_its_mode_and_holds_no_secret,
    ),
    (
        "a_config_that_cannot_work_is_named_before_it_is_used",
        a_config_that_cannot_work_is_named_before_it_is_used,
    ),
    (
        "the_proxy_says_what_it_does_in_plain_text",
        the_proxy_says_what_it_does_in_plain_text,
    ),
    (
        "a_port_in_use_is_named_with_the_setting_to_change",
        a_port_in_use_is_named_with_the_setting_to_change,
    ),
    (
        "the_emulator_under_a_name_prints_what_the_proxy_and_the_host_need",
        the_emulator_under_a_name_prints_what_the_proxy_and_the_host_need,
    ),
];
