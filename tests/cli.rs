//! The operator CLI end to end: `ghapp token`, `configure-git`, `demo`.

use ghapp_e2e::World;

#[test]
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

    w.ghapp(&["token", "--repo", "nope"])
        .fails()
        .one_line_error("ghapp", "is not OWNER/REPO");
    w.ghapp(&["token", "--repo", "a/b", "--permission", "contents"])
        .fails()
        .one_line_error("ghapp", "NAME=LEVEL");
    w.assert_no_secrets();
}

#[test]
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
}

#[test]
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

#[test]
fn emulator_prints_what_a_user_needs_and_serves_it() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(ghapp_e2e::bin_dir().join("ghapp"))
        .args(["emulator", "--dir"])
        .arg(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
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
        let done = l.starts_with("Press Ctrl-C");
        lines.push(l);
        if done {
            break;
        }
    }
    let text = lines.concat();
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
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(status.as_u16(), 200);
}

/// The helper's leanness is structural: its own dependency graph holds no async runtime, HTTP
/// client, TLS, keyring or JWT code (ghapp-core without its `mint` feature), so a warm `get`
/// cannot pay for them, whatever the linker keeps.
#[test]
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
