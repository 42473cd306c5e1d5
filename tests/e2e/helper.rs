//! git-credential-ghapp end to end: the real git binary, the built helper, fakehub over HTTPS.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use ghapp_e2e::{Options, World, basic_auth};

const HELPER: &str = "git-credential-ghapp";

fn clone_commit_push_with_a_token_narrowed_to_the_repository() {
    let w = World::new();
    w.clone_repo("octo-org", "widgets", "widgets").ok();
    let work = w.path("widgets");
    assert!(work.join("README.md").is_file());
    w.git(&work, &["switch", "--quiet", "-c", "agent/feature"])
        .ok();
    w.commit_file(&work, "feature.txt", "hello\n");
    let head = w
        .git(&work, &["rev-parse", "HEAD"])
        .ok()
        .stdout
        .trim()
        .to_owned();
    w.git(&work, &["push", "--quiet", "origin", "agent/feature"])
        .ok();
    assert_eq!(
        w.hub_ref("octo-org", "widgets", "refs/heads/agent/feature"),
        Some(head)
    );

    // One token served clone and push, narrowed to widgets.
    let c = w.hub.counters();
    assert_eq!(c.mints.len(), 1, "{c:?}");
    assert_eq!(c.mints[0].repositories, Some(vec!["widgets".to_string()]));
    assert_eq!(c.pushes, 1);

    // The same token: accepted for widgets, refused (404) for gadgets of the same installation.
    let token = w.hub.issued_tokens().remove(0);
    let header = basic_auth(&token);
    let ls = |repo: &str| {
        let url = w.hub.repo_url("octo-org", repo);
        w.cmd("git")
            .args(&[
                "-c",
                "credential.helper=",
                "-c",
                &format!("http.extraHeader={header}"),
                "ls-remote",
                &url,
            ])
            .run()
    };
    ls("widgets").ok();
    let denied = ls("gadgets");
    denied.fails();
    assert!(denied.stderr.contains("not found"), "{denied:#?}");
    w.assert_no_secrets();
}

fn a_read_only_installation_clones_and_its_push_is_refused_by_github() {
    let w = World::new();
    // octo-user's installation grants contents: read only; the default request (contents:
    // write) is fitted to it rather than failing.
    let clone = w.clone_repo("octo-user", "dotfiles", "dotfiles");
    clone.ok();
    // Said once, when the token is minted (issue 11, trap 10).
    let note =
        "note: the installation on octo-user grants less than asked (contents: read, write asked";
    assert_eq!(clone.stderr.matches(note).count(), 1, "{clone:#?}");
    let c = w.hub.counters();
    assert_eq!(c.mints.len(), 1);
    assert_eq!(
        c.mints[0].permissions.get("contents").map(String::as_str),
        Some("read")
    );
    let work = w.path("dotfiles");
    w.commit_file(&work, "x.txt", "x\n");
    let push = w.git(&work, &["push", "origin", "HEAD:refs/heads/topic"]);
    push.fails();
    assert!(
        !push.stderr.contains(note),
        "a cached token says nothing: {push:#?}"
    );
    assert!(
        push.stderr.contains("403") || push.stderr.contains("denied"),
        "{push:#?}"
    );
    assert_eq!(w.hub_ref("octo-user", "dotfiles", "refs/heads/topic"), None);
    w.assert_no_secrets();
}

fn the_same_repository_name_under_two_owners_gets_two_tokens() {
    let w = World::new();
    // One app, two installations, no configured installation id: the owner is part of what a
    // token is for, so octo-org/widgets' cached token never answers for octo-user/widgets.
    let token = |repo: &str| {
        let t = w.get(repo).ok().field("password").unwrap();
        ghapp_core::secret::fingerprint(&t)
    };
    let org = token("octo-org/widgets");
    let user = token("octo-user/widgets");
    assert_ne!(org, user);
    let c = w.hub.counters();
    let installs: Vec<u64> = c.mints.iter().map(|m| m.installation_id).collect();
    assert_eq!(
        installs,
        [fakehub::ORG_INSTALLATION, fakehub::USER_INSTALLATION]
    );
    // And each is served from the cache afterwards.
    assert_eq!(token("octo-user/widgets"), user);
    assert_eq!(token("octo-org/widgets"), org);
    assert_eq!(w.hub.counters().mints.len(), 2);
    w.clone_repo("octo-user", "widgets", "user-widgets").ok();
    w.assert_no_secrets();
}

fn a_host_named_without_an_app_says_why_nothing_was_answered() {
    // GHAPP_API_URL names the emulator, but no app is configured (issue 11, trap 4): one line
    // on stderr says why, instead of git's "could not read Username" alone.
    let mut w = World::new();
    for k in ["GHAPP_APP_ID", "GHAPP_PRIVATE_KEY_FILE"] {
        w.set_env(k, None);
    }
    let r = w.get("octo-org/widgets");
    assert!(r.stdout.is_empty(), "{r:#?}");
    r.one_line_error(HELPER, "no GitHub App configured: set GHAPP_APP_ID");
    // Another host stays silent: the next helper answers it.
    let other = w.helper("get", "protocol=https\nhost=example.com\npath=a/b.git\n\n");
    other.ok();
    assert!(other.stderr.is_empty(), "{other:#?}");
    // And git, with nothing else configured, shows the line before its own failure.
    let clone = w.clone_repo("octo-org", "widgets", "w");
    clone.fails();
    assert!(
        clone.stderr.contains("no GitHub App configured"),
        "{clone:#?}"
    );
}

fn other_hosts_store_and_erase() {
    let w = World::new();
    // Another host: nothing on stdout, exit 0, so the next helper runs.
    let other = w.helper("get", "protocol=https\nhost=example.com\npath=a/b.git\n\n");
    other.ok();
    assert_eq!(other.stdout, "");
    assert_eq!(other.stderr, "");
    let http = w.helper(
        "get",
        &format!(
            "protocol=http\nhost={}\npath=octo-org/widgets\n\n",
            w.hub.git_host()
        ),
    );
    http.ok();
    assert_eq!(http.stdout, "");
    // store: nothing.
    let store = w.helper(
        "store",
        &format!(
            "{}username=x\npassword=p\n",
            w.request("octo-org/widgets").trim_end()
        ),
    );
    store.ok();
    assert_eq!(store.stdout, "");
    assert_eq!(w.hub.mint_count(), 0);

    let first = w.get("octo-org/widgets");
    first.ok();
    let password = first.field("password").expect("password");
    assert_eq!(w.hub.mint_count(), 1);

    // erase with a different value keeps the cache.
    let req = w.request("octo-org/widgets");
    let erase_other = w.helper(
        "erase",
        &format!(
            "{}username=x-access-token\npassword=ghs_someoneelse\n\n",
            req.trim_end_matches('\n').to_owned() + "\n"
        ),
    );
    erase_other.ok();
    assert_eq!(
        w.get("octo-org/widgets").ok().field("password").as_deref(),
        Some(password.as_str())
    );
    assert_eq!(w.hub.mint_count(), 1);

    // erase with the cached value drops it; the next get mints anew.
    let erase = w.helper(
        "erase",
        &format!(
            "{}username=x-access-token\npassword={password}\n\n",
            req.trim_end_matches('\n').to_owned() + "\n"
        ),
    );
    erase.ok();
    assert_eq!(erase.stdout, "");
    let again = w.get("octo-org/widgets");
    again.ok();
    assert_eq!(w.hub.mint_count(), 2);
    assert_ne!(again.field("password"), Some(password));
    w.assert_no_secrets();
}

fn warm_get_mints_nothing_and_twenty_cold_gets_mint_once() {
    let w = World::new();
    // Twenty concurrent cold processes for one repository.
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..20)
            .map(|_| s.spawn(|| w.get("octo-org/widgets")))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let first = results[0].field("password").expect("password");
    for r in &results {
        r.ok();
        assert_eq!(r.field("password").as_deref(), Some(first.as_str()));
    }
    assert_eq!(w.hub.mint_count(), 1, "twenty cold gets must mint once");
    let installation_lookups = w
        .hub
        .counters()
        .requests
        .get("GET /repos/{owner}/{repo}/installation")
        .copied()
        .unwrap_or(0);
    assert_eq!(installation_lookups, 1);

    // Warm: no request at all reaches the emulator.
    let before = w.hub.counters().requests.values().sum::<u64>();
    for _ in 0..5 {
        assert_eq!(
            w.get("octo-org/widgets").ok().field("password").as_deref(),
            Some(first.as_str())
        );
    }
    assert_eq!(w.hub.counters().requests.values().sum::<u64>(), before);
    // Another repository is another scope.
    w.get("octo-org/gadgets").ok();
    assert_eq!(w.hub.mint_count(), 2);
    w.assert_no_secrets();
}

fn short_ttl_mints_every_time_and_no_expired_token_reaches_github() {
    let w = World::with(Options {
        token_ttl: 3,
        ..Default::default()
    });
    for i in 1..=3 {
        w.get("octo-org/widgets").ok();
        assert_eq!(
            w.hub.mint_count(),
            i,
            "TTL below the refresh margin: every get mints"
        );
    }
    w.clone_repo("octo-org", "widgets", "widgets").ok();
    std::thread::sleep(Duration::from_millis(3500));
    // Every earlier token has expired now; git asks the helper again and gets a fresh one.
    w.git(&w.path("widgets"), &["fetch", "--quiet", "origin"])
        .ok();
    let c = w.hub.counters();
    assert_eq!(c.expired_token_uses, 0, "{c:?}");
    assert!(c.mints.len() >= 5, "{c:?}");
    w.assert_no_secrets();
}

fn refresh_margin_from_the_environment() {
    let mut w = World::with(Options {
        token_ttl: 120,
        ..Default::default()
    });
    // 120 s tokens with a 60 s margin are reused...
    w.set_env("GHAPP_REFRESH_MARGIN", Some("60"));
    w.get("octo-org/widgets").ok();
    w.get("octo-org/widgets").ok();
    assert_eq!(w.hub.mint_count(), 1);
    // ...and with the default 600 s margin they are not.
    w.set_env("GHAPP_REFRESH_MARGIN", None);
    w.get("octo-org/widgets").ok();
    assert_eq!(w.hub.mint_count(), 2);
}

fn server_errors_and_rate_limits_are_retried() {
    let w = World::new();
    w.hub.fail_next_mints(2, 502);
    let r = w.get("octo-org/widgets");
    r.ok();
    assert!(r.field("password").is_some());
    let c = w.hub.counters();
    assert_eq!(c.mints.len(), 1);
    assert_eq!(c.requests["POST /app/installations/{id}/access_tokens"], 3);

    // A secondary rate limit (403 + Retry-After) and a 429 are waited out.
    for status in [403, 429] {
        w.hub.rate_limit_next(1, status, 1);
        let r = w.get(if status == 403 {
            "octo-org/gadgets"
        } else {
            "octo-user/dotfiles"
        });
        r.ok();
        assert!(
            r.elapsed >= Duration::from_secs(1),
            "Retry-After honoured: {r:#?}"
        );
    }
    // A wait beyond the deadline is not attempted: a clear error, quickly.
    w.hub.rate_limit_next(1, 429, 3600);
    let start = Instant::now();
    let r = w.helper(
        "get",
        &format!(
            "protocol=https\nhost={}\npath=octo-org/other.git\n\n",
            w.hub.git_host()
        ),
    );
    r.fails().one_line_error(HELPER, "429");
    assert!(start.elapsed() < Duration::from_secs(20));
    w.assert_no_secrets();
}

fn clock_skew_is_recovered_from_the_date_header() {
    for skew in [-300i64, 900] {
        let w = World::new();
        w.hub.set_clock_skew(skew);
        let r = w.get("octo-org/widgets");
        r.ok();
        assert!(r.field("password").is_some());
        assert!(r.stderr.contains("clock differs from GitHub's"), "{r:#?}");
        assert_eq!(w.hub.mint_count(), 1);
        assert!(w.hub.counters().jwt_rejections >= 1);
        w.assert_no_secrets();
    }
}

fn bad_inputs_get_one_clear_line() {
    let mut w = World::new();
    let dir = w.path("keys");
    std::fs::create_dir_all(&dir).unwrap();

    // Malformed protocol input.
    w.helper("get", "this is not key=value\nnope\n")
        .fails()
        .one_line_error(HELPER, "malformed input from git: line 2 has no '='");
    w.helper("get", "protocol=https\0\n")
        .fails()
        .one_line_error(HELPER, "NUL");
    let huge = "a=".to_string() + &"x".repeat(70_000);
    w.helper("get", &huge)
        .fails()
        .one_line_error(HELPER, "larger than");

    // Unreadable PEM.
    w.set_env("GHAPP_PRIVATE_KEY_FILE", Some("/nonexistent/app.pem"));
    w.get("octo-org/widgets")
        .fails()
        .one_line_error(HELPER, "cannot read private key file /nonexistent/app.pem");

    // Malformed PEM.
    let bad = dir.join("bad.pem");
    // The armour built at run time ("not a key" inside): no key-shaped text in the source.
    let label = ["RSA", "PRIVATE", "KEY"].join(" ");
    std::fs::write(
        &bad,
        format!("-----BEGIN {label}-----\nbm90IGEga2V5\n-----END {label}-----\n"),
    )
    .unwrap();
    std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(0o600)).unwrap();
    w.set_env("GHAPP_PRIVATE_KEY_FILE", Some(bad.to_str().unwrap()));
    w.get("octo-org/widgets")
        .fails()
        .one_line_error(HELPER, "is not a valid RSA private key");
    std::fs::write(&bad, "just text").unwrap();
    w.get("octo-org/widgets")
        .fails()
        .one_line_error(HELPER, "not PEM text");

    // A key that is not the app's: GitHub answers 401.
    let stranger = dir.join("stranger.pem");
    std::fs::write(&stranger, fakehub::generate_rsa_key_pem()).unwrap();
    std::fs::set_permissions(&stranger, std::fs::Permissions::from_mode(0o600)).unwrap();
    w.set_env("GHAPP_PRIVATE_KEY_FILE", Some(stranger.to_str().unwrap()));
    w.get("octo-org/widgets")
        .fails()
        .one_line_error(HELPER, "GitHub refused the app's JWT (401");
    let key = w.hub.key_path().to_str().unwrap().to_owned();
    w.set_env("GHAPP_PRIVATE_KEY_FILE", Some(&key));

    // The app is not installed on the repository: name it and the install page.
    let r = w.get("lonely/island");
    r.fails().one_line_error(
        HELPER,
        "the app is not installed on lonely, or lonely/island does not exist",
    );
    assert!(
        r.stderr.contains(&format!(
            "{}/apps/ghapp-fakehub/installations/new",
            w.hub.url()
        )),
        "{r:#?}"
    );
    // A misspelled repository of an owner the app is installed on: GitHub's 404 is the same,
    // so the message names both readings (issue 11, trap 5).
    w.get("octo-org/widgts").fails().one_line_error(
        HELPER,
        "the app is not installed on octo-org, or octo-org/widgts does not exist",
    );

    // A repository outside the installation's grant (422).
    w.set_env("GHAPP_INSTALLATION_ID", Some("101"));
    w.get("octo-user/dotfiles")
        .fails()
        .one_line_error(HELPER, "422");
    w.set_env("GHAPP_INSTALLATION_ID", None);
    // A permission outside the grant (422), through `ghapp token`.
    let r = w.ghapp(&[
        "token",
        "--repo",
        "octo-org/widgets",
        "--permission",
        "administration=write",
    ]);
    r.fails().one_line_error(
        "ghapp",
        "(422: The permissions requested are not granted to this installation.)",
    );
    assert_eq!(r.stdout, "");

    // The credentials JSON with snake_case keys.
    let creds = dir.join("creds.json");
    std::fs::write(
        &creds,
        format!(
            "{{\"app_id\": 4242, \"installation_id\": 101, \"private_key\": {:?}}}",
            w.hub.private_key_pem()
        ),
    )
    .unwrap();
    w.set_env("GHAPP_APP_ID", None);
    w.set_env("GHAPP_PRIVATE_KEY_FILE", None);
    w.set_env("GHAPP_CREDENTIALS_FILE", Some(creds.to_str().unwrap()));
    let r = w.get("octo-org/widgets");
    r.fails().one_line_error(HELPER, "AppID");
    for k in ["app_id", "AppID", "InstallationID", "PrivateKeyPEM"] {
        assert!(r.stderr.contains(k), "{r:#?}");
    }
    // The right shape works.
    std::fs::write(&creds, serde_json::json!({"AppID": 4242, "InstallationID": 101, "PrivateKeyPEM": w.hub.private_key_pem()}).to_string()).unwrap();
    w.get("octo-org/widgets").ok();

    // An unreachable API.
    w.set_env("GHAPP_API_URL", Some("https://127.0.0.1:1/api/v3"));
    let other_cache = w.path("cache/other").to_str().unwrap().to_owned();
    w.set_env("GHAPP_CACHE_DIR", Some(&other_cache));
    w.helper(
        "get",
        "protocol=https\nhost=127.0.0.1:1\npath=octo-org/widgets.git\n\n",
    )
    .fails()
    .one_line_error(HELPER, "cannot reach https://127.0.0.1:1/api/v3");

    w.assert_no_secrets();
}

fn answer_carries_expiry_and_authtype() {
    let w = World::new();
    let now = ghapp_core::jwt::unix_now();
    let r = w.get("octo-org/widgets");
    r.ok();
    assert!(
        r.stdout.starts_with("username=x-access-token\npassword="),
        "{r:#?}"
    );
    let expiry: i64 = r
        .field("password_expiry_utc")
        .expect("expiry")
        .parse()
        .unwrap();
    // expires_at (now + 3600) minus the 600 s refresh margin.
    assert!(
        (expiry - (now + 3000)).abs() <= 5,
        "expiry {expiry} now {now}"
    );
    assert!(r.field("ephemeral").is_none());

    let input = format!("capability[]=authtype\n{}", w.request("octo-org/widgets"));
    let r = w.helper("get", &input);
    r.ok();
    assert!(r.stdout.starts_with("capability[]=authtype\n"), "{r:#?}");
    assert_eq!(r.field("ephemeral").as_deref(), Some("1"));
    assert_eq!(w.hub.mint_count(), 1);
}

fn cache_files_are_private() {
    let w = World::new();
    w.get("octo-org/widgets").ok();
    let dir = w.cache_dir();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    let mut files = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        assert_eq!(mode(&p), 0o600, "{}", p.display());
        files += 1;
    }
    assert!(files >= 2, "token, installation and lock files expected");
}

fn logs_and_debug_output_never_hold_a_secret() {
    let mut w = World::new();
    w.set_env("GHAPP_LOG", Some("trace"));
    let r = w.get("octo-org/widgets");
    r.ok();
    assert!(r.stderr.contains("minted an installation token"), "{r:#?}");
    assert!(
        r.stderr.contains("sha256:"),
        "the log names the token by fingerprint: {r:#?}"
    );
    w.clone_repo("octo-org", "widgets", "widgets").ok();
    w.ghapp(&["token", "--repo", "octo-org/gadgets", "--json"])
        .ok();

    // Debug of the configuration, the cached token and errors.
    let cfg = ghapp_core::config::Config::load_from(
        &w.env()
            .iter()
            .cloned()
            .collect::<std::collections::BTreeMap<_, _>>(),
        &Default::default(),
    )
    .unwrap();
    w.capture(format!("{cfg:?}"));
    let cache = ghapp_core::cache::DiskCache::new(w.cache_dir());
    let app = cfg.primary().unwrap();
    let key = ghapp_core::broker::token_key(
        app,
        &ghapp_core::broker::TokenRequest::for_repo(&"octo-org/widgets".parse().unwrap()),
    );
    let cached = cache.read(&key).expect("cached token");
    w.capture(format!("{cached:?} {:?}", cached.token));
    let loaded = app.key.load().unwrap();
    w.capture(format!("{loaded:?}"));
    assert!(w.captured_count() > 5);
    w.assert_no_secrets();
}

/// Hole 8: a planted or loosened cache file is not believed. The helper warns once and mints.
fn untrusted_cache_files_are_not_believed() {
    let w = World::new();
    w.get("octo-org/widgets").ok();
    assert_eq!(w.hub.mint_count(), 1);
    let token_file = std::fs::read_dir(w.cache_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name().unwrap().to_string_lossy().starts_with("tok-")
                && p.extension().is_some_and(|e| e == "json")
        })
        .expect("a token file");
    let planted = |r: &ghapp_e2e::Run, mints: usize| {
        r.ok();
        assert_eq!(w.hub.mint_count(), mints, "{r:#?}");
        let warnings: Vec<&str> = r.stderr.lines().collect();
        assert_eq!(warnings.len(), 1, "one warning: {r:#?}");
        assert!(warnings[0].contains("is not used"), "{r:#?}");
        assert!(r.field("password").is_some());
    };
    // A token file others may write: another user could have put its own token there.
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o666)).unwrap();
    planted(&w.get("octo-org/widgets"), 2);
    // A symbolic link in place of the file.
    let elsewhere = w.path("elsewhere.json");
    std::fs::copy(&token_file, &elsewhere).unwrap();
    std::fs::remove_file(&token_file).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &token_file).unwrap();
    planted(&w.get("octo-org/widgets"), 3);
    std::fs::remove_file(&token_file).unwrap();
    // A cache directory others may write.
    std::fs::set_permissions(w.cache_dir(), std::fs::Permissions::from_mode(0o777)).unwrap();
    planted(&w.get("octo-org/widgets"), 4);
    std::fs::set_permissions(w.cache_dir(), std::fs::Permissions::from_mode(0o700)).unwrap();
    w.assert_no_secrets();
}

fn a_relative_cache_directory_is_refused() {
    let mut w = World::new();
    w.set_env("GHAPP_CACHE_DIR", Some("cache"));
    w.get("octo-org/widgets")
        .fails()
        .one_line_error(HELPER, "relative: set GHAPP_CACHE_DIR");
    assert_eq!(w.hub.mint_count(), 0);
}

/// A tmpfs mounted for the test; unmounted on drop.
struct Mount(std::path::PathBuf);

impl Mount {
    fn tmpfs(dir: &Path, size: &str) -> Option<Mount> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Mount(dir.to_owned()))
    }
    fn read_only(&self) {
        let st = std::process::Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(st.success());
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// Faults: the cache disk full, then read-only. The helper still answers, by minting, with
/// one warning each time.
fn a_full_or_read_only_cache_disk_costs_a_warning_not_the_token() {
    // mount(8) needs root (CI runs as root, where a missing mount is a failure).
    ghapp_e2e::needs("root");
    let mut w = World::new();
    let disk = w.path("disk");
    let mount = Mount::tmpfs(&disk, "64k").expect("mount a tmpfs as root");
    let cache = disk.join("ghapp");
    std::fs::create_dir(&cache).unwrap();
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o700)).unwrap();
    // Fill the disk.
    let _ = std::fs::write(disk.join("fill"), vec![0u8; 128 * 1024]);
    w.set_env("GHAPP_CACHE_DIR", Some(cache.to_str().unwrap()));
    let answered = |r: ghapp_e2e::Run, mints: usize| {
        r.ok();
        assert!(r.field("password").is_some(), "{r:#?}");
        assert_eq!(w.hub.mint_count(), mints);
        assert_eq!(r.stderr.lines().count(), 1, "one warning: {r:#?}");
        assert!(
            r.stderr.starts_with("git-credential-ghapp: warning: "),
            "{r:#?}"
        );
    };
    answered(w.get("octo-org/widgets"), 1);
    answered(w.get("octo-org/widgets"), 2);
    mount.read_only();
    answered(w.get("octo-org/gadgets"), 3);
    // git clones through it all the same.
    w.clone_repo("octo-org", "widgets", "widgets").ok();
    drop(mount);
    w.assert_no_secrets();
}

fn github_refuses_workflow_files_from_a_token_without_the_workflows_permission() {
    // fakehub enforces GitHub's rule (issue 13): a token without `workflows: write` cannot
    // create, change or delete `.github/workflows/*`, with GitHub's message; one with it can.
    let w = World::new();
    w.clone_repo("octo-org", "widgets", "widgets").ok();
    let work = w.path("widgets");
    w.git(&work, &["switch", "--quiet", "-c", "agent/ci"]).ok();
    std::fs::create_dir_all(work.join(".github/workflows")).unwrap();
    w.commit_file(&work, ".github/workflows/ci.yml", "on: push\n");
    let r = w.git(&work, &["push", "origin", "agent/ci"]);
    r.fails();
    assert!(
        r.stderr.contains(
            "refusing to allow a GitHub App to create or update workflow `.github/workflows/ci.yml` without `workflows` permission"
        ),
        "{r:#?}"
    );
    assert_eq!(
        w.hub_ref("octo-org", "widgets", "refs/heads/agent/ci"),
        None
    );
    // Another file on the same kind of push passes: the rule is about workflow files.
    w.git(&work, &["switch", "--quiet", "-c", "agent/plain", "main"])
        .ok();
    w.commit_file(&work, "plain.txt", "plain\n");
    w.git(&work, &["push", "--quiet", "origin", "agent/plain"])
        .ok();
    // A token with `workflows: write` pushes the workflow.
    let pat = w.hub.add_fine_grained_pat(
        "octocat",
        &["octo-org/widgets"],
        &[("contents", "write"), ("workflows", "write")],
        None,
    );
    let url = format!(
        "https://octocat:{pat}@{}/octo-org/widgets.git",
        w.hub.git_host()
    );
    w.cmd("git")
        .dir(&work)
        .args(&["push", "--quiet", &url, "agent/ci"])
        .carries_secrets()
        .run()
        .ok();
    assert!(
        w.hub_ref("octo-org", "widgets", "refs/heads/agent/ci")
            .is_some()
    );
}

fn a_failure_of_the_serving_helper_ends_gits_search() {
    // The app serves the host but is not installed on the repository: the helper says why and
    // tells git to stop (quit=1), so git does not go on to ask for a username it cannot read.
    let w = World::new();
    let r = w.get("lonely/island");
    r.fails();
    assert_eq!(r.stdout, "quit=1\n", "{r:#?}");
    assert!(r.stderr.contains("not installed"), "{r:#?}");
    let clone = w.clone_repo("lonely", "island", "island");
    clone.fails();
    assert!(
        clone.stderr.contains("not installed") && !clone.stderr.contains("could not read Username"),
        "{clone:#?}"
    );
}

/// This module's tests, for the runner (`main.rs`).
/// The app's key never in ghapp's hands: a signer command (here openssl behind a script that
/// alone knows where the key is) signs the JWT. The helper clones and pushes with a token GitHub
/// minted for that JWT; a signer that fails or hangs is named in one line, within its deadline;
/// nothing ghapp printed holds the key.
fn a_signer_command_mints_with_no_key_in_the_process() {
    ghapp_e2e::needs("openssl");
    let mut w = World::new();
    // The key moves where only the signer looks; ghapp is told nothing of it.
    let vault = w.path("vault");
    std::fs::create_dir_all(&vault).unwrap();
    let key = vault.join("app.pem");
    std::fs::copy(w.hub.key_path(), &key).unwrap();
    let script = w.path("kms-sign");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nexec openssl dgst -sha256 -sign {}\n",
            key.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    w.set_env("GHAPP_PRIVATE_KEY_FILE", None);
    w.set_env("GHAPP_SIGNER_COMMAND", Some(&script.display().to_string()));
    let hub_key = w.hub.key_path().display().to_string();
    assert!(
        !w.env()
            .iter()
            .any(|(_, v)| v.contains(&hub_key) || v.contains("app.pem")),
        "ghapp's environment names no key: {:?}",
        w.env()
    );

    w.clone_repo("octo-org", "widgets", "widgets").ok();
    let work = w.path("widgets");
    w.git(&work, &["switch", "--quiet", "-c", "agent/signed"])
        .ok();
    w.commit_file(&work, "signed.txt", "signed elsewhere\n");
    w.git(&work, &["push", "--quiet", "origin", "agent/signed"])
        .ok();
    let c = w.hub.counters();
    assert_eq!(c.mints.len(), 1, "{c:?}");
    assert_eq!(c.mints[0].repositories, Some(vec!["widgets".to_string()]));
    assert!(
        w.hub_ref("octo-org", "widgets", "refs/heads/agent/signed")
            .is_some()
    );

    let doctor = w.ghapp(&["doctor", "--repo", "octo-org/widgets"]);
    assert!(
        doctor.stdout.contains("signer command `kms-sign` signs"),
        "{doctor:#?}"
    );

    // A signer that fails: its exit and its first stderr line, nothing minted.
    let mut bad = World::new();
    bad.set_env("GHAPP_PRIVATE_KEY_FILE", None);
    bad.set_env(
        "GHAPP_SIGNER_COMMAND",
        Some("echo 'kms: access denied for role ci' >&2; exit 3"),
    );
    bad.ghapp(&["token", "--repo", "octo-org/widgets"])
        .fails()
        .one_line_error(
            "ghapp",
            "signer command `echo` failed (exit status: 3): kms: access denied for role ci",
        );
    // One that hangs: cut at its deadline.
    bad.set_env("GHAPP_SIGNER_COMMAND", Some("sleep 60"));
    let started = Instant::now();
    bad.ghapp(&["token", "--repo", "octo-org/widgets"])
        .fails()
        .one_line_error("ghapp", "signer command `sleep` did not finish within 10 s");
    assert!(started.elapsed() < Duration::from_secs(30));
    // One that prints something else than a signature.
    bad.set_env("GHAPP_SIGNER_COMMAND", Some("echo hello"));
    bad.ghapp(&["token", "--repo", "octo-org/widgets"])
        .fails()
        .one_line_error("ghapp", "signer command `echo` printed");
    assert_eq!(bad.hub.mint_count(), 0);
    w.assert_no_secrets();
    bad.assert_no_secrets();
}

/// The key in an HSM (SoftHSM2, through PKCS#11): imported into the token, every PEM copy
/// deleted, and `pkcs11-tool` as the signer. Tokens are minted and git clones with them.
fn a_key_in_an_hsm_signs_through_pkcs11() {
    ghapp_e2e::needs("softhsm2");
    ghapp_e2e::needs("openssl");
    let mut w = World::new();
    let hsm = w.path("hsm");
    std::fs::create_dir_all(hsm.join("tokens")).unwrap();
    let conf = hsm.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!("directories.tokendir = {}\n", hsm.join("tokens").display()),
    )
    .unwrap();
    let module = [
        "/usr/lib/softhsm/libsofthsm2.so",
        "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    ]
    .into_iter()
    .find(|m| Path::new(m).is_file())
    .expect("softhsm2's PKCS#11 module");
    let run = |program: &str, args: &[&str]| {
        let out = std::process::Command::new(program)
            .args(args)
            .env("SOFTHSM2_CONF", &conf)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{program}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(
        "softhsm2-util",
        &[
            "--init-token",
            "--free",
            "--label",
            "ghapp",
            "--pin",
            "4321",
            "--so-pin",
            "8765",
        ],
    );
    let pk8 = hsm.join("app.pk8");
    let key = w.hub.key_path().display().to_string();
    run(
        "openssl",
        &[
            "pkcs8",
            "-topk8",
            "-nocrypt",
            "-in",
            &key,
            "-out",
            pk8.to_str().unwrap(),
        ],
    );
    run(
        "softhsm2-util",
        &[
            "--import",
            pk8.to_str().unwrap(),
            "--token",
            "ghapp",
            "--label",
            "app",
            "--id",
            "01",
            "--pin",
            "4321",
        ],
    );
    std::fs::remove_file(&pk8).unwrap();
    let pin = hsm.join("pin");
    std::fs::write(&pin, "4321").unwrap();
    let script = w.path("hsm-sign");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nexport SOFTHSM2_CONF={}\nexec pkcs11-tool --module {module} --token-label ghapp --login --pin \"$(cat {})\" --sign --mechanism SHA256-RSA-PKCS --label app --input-file /dev/stdin --output-file /dev/stdout\n",
            conf.display(),
            pin.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    w.set_env("GHAPP_PRIVATE_KEY_FILE", None);
    w.set_env("GHAPP_SIGNER_COMMAND", Some(&script.display().to_string()));

    let t = w.ghapp(&["token", "--repo", "octo-org/widgets"]);
    t.ok();
    w.clone_repo("octo-org", "widgets", "widgets").ok();
    assert!(w.path("widgets").join("README.md").is_file());
    assert!(w.hub.mint_count() >= 1);

    // The same key through the module itself: `signer = { pkcs11 = ... }`, the PIN from a
    // variable, no program in between.
    let cfg = w.path("pkcs11.toml");
    let (app_id, api_url) = (w.hub.app_id(), w.hub.api_url());
    let write_cfg = |label: &str| {
        std::fs::write(
            &cfg,
            format!(
                "[[app]]\napp_id = {app_id}\napi_url = {api_url:?}\nsigner = {{ pkcs11 = {{ module = {module:?}, token = \"ghapp\", key_label = {label:?}, pin = {{ env = \"HSM_PIN\" }} }} }}\n",
            ),
        )
        .unwrap()
    };
    write_cfg("app");
    w.set_env("GHAPP_SIGNER_COMMAND", None);
    w.set_env("GHAPP_CONFIG", Some(&cfg.display().to_string()));
    w.set_env("SOFTHSM2_CONF", Some(&conf.display().to_string()));
    w.set_env("HSM_PIN", Some("4321"));
    let _ = std::fs::remove_dir_all(w.cache_dir());
    let before = w.hub.mint_count();
    w.ghapp(&["token", "--repo", "octo-org/gadgets"]).ok();
    assert_eq!(
        w.hub.mint_count(),
        before + 1,
        "minted with the HSM's signature"
    );
    // A wrong PIN, a wrong label: one line each, naming what to fix.
    let _ = std::fs::remove_dir_all(w.cache_dir());
    w.set_env("HSM_PIN", Some("9999"));
    let r = w.ghapp(&["token", "--repo", "octo-org/gadgets"]);
    r.fails();
    assert!(r.stderr.contains("the PIN is not accepted"), "{}", r.stderr);
    assert!(!r.stderr.contains("9999"), "{}", r.stderr);
    w.set_env("HSM_PIN", Some("4321"));
    write_cfg("nope");
    let r = w.ghapp(&["token", "--repo", "octo-org/gadgets"]);
    r.fails();
    assert!(
        r.stderr.contains("no private key with that label"),
        "{}",
        r.stderr
    );
    assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
    w.assert_no_secrets();
}

pub(crate) const TESTS: &[(&str, fn())] = &[
    (
        "clone_commit_push_with_a_token_narrowed_to_the_repository",
        clone_commit_push_with_a_token_narrowed_to_the_repository,
    ),
    (
        "a_read_only_installation_clones_and_its_push_is_refused_by_github",
        a_read_only_installation_clones_and_its_push_is_refused_by_github,
    ),
    (
        "the_same_repository_name_under_two_owners_gets_two_tokens",
        the_same_repository_name_under_two_owners_gets_two_tokens,
    ),
    (
        "a_host_named_without_an_app_says_why_nothing_was_answered",
        a_host_named_without_an_app_says_why_nothing_was_answered,
    ),
    ("other_hosts_store_and_erase", other_hosts_store_and_erase),
    (
        "warm_get_mints_nothing_and_twenty_cold_gets_mint_once",
        warm_get_mints_nothing_and_twenty_cold_gets_mint_once,
    ),
    (
        "short_ttl_mints_every_time_and_no_expired_token_reaches_github",
        short_ttl_mints_every_time_and_no_expired_token_reaches_github,
    ),
    (
        "refresh_margin_from_the_environment",
        refresh_margin_from_the_environment,
    ),
    (
        "server_errors_and_rate_limits_are_retried",
        server_errors_and_rate_limits_are_retried,
    ),
    (
        "clock_skew_is_recovered_from_the_date_header",
        clock_skew_is_recovered_from_the_date_header,
    ),
    (
        "bad_inputs_get_one_clear_line",
        bad_inputs_get_one_clear_line,
    ),
    (
        "answer_carries_expiry_and_authtype",
        answer_carries_expiry_and_authtype,
    ),
    ("cache_files_are_private", cache_files_are_private),
    (
        "logs_and_debug_output_never_hold_a_secret",
        logs_and_debug_output_never_hold_a_secret,
    ),
    (
        "untrusted_cache_files_are_not_believed",
        untrusted_cache_files_are_not_believed,
    ),
    (
        "a_relative_cache_directory_is_refused",
        a_relative_cache_directory_is_refused,
    ),
    (
        "a_full_or_read_only_cache_disk_costs_a_warning_not_the_token",
        a_full_or_read_only_cache_disk_costs_a_warning_not_the_token,
    ),
    (
        "github_refuses_workflow_files_from_a_token_without_the_workflows_permission",
        github_refuses_workflow_files_from_a_token_without_the_workflows_permission,
    ),
    (
        "a_failure_of_the_serving_helper_ends_gits_search",
        a_failure_of_the_serving_helper_ends_gits_search,
    ),
    (
        "a_signer_command_mints_with_no_key_in_the_process",
        a_signer_command_mints_with_no_key_in_the_process,
    ),
    (
        "a_key_in_an_hsm_signs_through_pkcs11",
        a_key_in_an_hsm_signs_through_pkcs11,
    ),
];
