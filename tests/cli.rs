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
}
