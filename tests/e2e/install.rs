//! install/install.sh into a temporary prefix: a real clone through the installed helper, a
//! second run that changes nothing, and `--uninstall`.

use std::path::{Path, PathBuf};

use ghapp_e2e::World;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn install_clone_reinstall_and_uninstall() {
    let mut w = World::new();
    // The first run may still build some crates (cargo install resolves features per package).
    w.limit = std::time::Duration::from_secs(900);
    let prefix = w.path("prefix");
    let gitconfig = w.path("fresh-gitconfig");
    std::fs::write(&gitconfig, "").unwrap();
    w.set_env("GIT_CONFIG_GLOBAL", Some(gitconfig.to_str().unwrap()));
    // cargo and rustup as the developer has them, offline, with the installed binaries first on
    // PATH. The build shares the workspace's target dir (cargo holds no lock on it while tests
    // run), so `cargo install --debug` reuses what the suite built instead of a 4-minute build.
    let home = std::env::var("HOME").unwrap_or_default();
    let cargo_home = std::env::var("CARGO_HOME").unwrap_or_else(|_| format!("{home}/.cargo"));
    let rustup_home = std::env::var("RUSTUP_HOME").unwrap_or_else(|_| format!("{home}/.rustup"));
    let system_path = std::env::var("PATH").unwrap_or_default();
    let path = format!(
        "{}:{cargo_home}/bin:{system_path}",
        prefix.join("bin").display()
    );
    w.set_env("PATH", Some(&path));
    w.set_env("CARGO_HOME", Some(&cargo_home));
    w.set_env("RUSTUP_HOME", Some(&rustup_home));
    w.set_env("CARGO_NET_OFFLINE", Some("true"));
    // The suite's own target dir (CARGO_TARGET_DIR may have moved it out of the clone).
    let target = ghapp_e2e::bin_dir()
        .parent()
        .expect("target/debug has a parent")
        .to_path_buf();
    w.set_env("CARGO_TARGET_DIR", Some(target.to_str().unwrap()));
    let script = repo_root().join("install/install.sh");
    let script = script.to_str().unwrap();
    let host = w.hub.git_host();
    let args = [
        "--prefix",
        prefix.to_str().unwrap(),
        "--host",
        &host,
        "--debug",
    ];
    let run = |extra: &[&str]| {
        let mut a = vec![script];
        a.extend_from_slice(&args);
        a.extend_from_slice(extra);
        w.cmd("bash").args(&a).run()
    };

    let first = run(&[]);
    first.ok();
    assert!(
        first.stdout.contains("building ghapp"),
        "the first run says what it builds: {first:#?}"
    );
    for b in ["ghapp", "git-credential-ghapp", "gh-pr"] {
        assert!(prefix.join("bin").join(b).is_file(), "{b} installed");
    }
    // A real clone through the installed helper (not the suite's build).
    let which = w
        .cmd("sh")
        .args(&["-c", "command -v git-credential-ghapp"])
        .run();
    assert_eq!(
        which.stdout.trim(),
        prefix.join("bin/git-credential-ghapp").to_str().unwrap()
    );
    w.clone_repo("octo-org", "widgets", "installed").ok();
    assert_eq!(w.hub.mint_count(), 1);

    // Twice: nothing changes.
    let before_cfg = std::fs::read_to_string(&gitconfig).unwrap();
    let mtime = |b: &str| {
        std::fs::metadata(prefix.join("bin").join(b))
            .unwrap()
            .modified()
            .unwrap()
    };
    let before = mtime("ghapp");
    let again = run(&[]);
    again.ok();
    assert_eq!(
        again.stdout.matches("is already installed").count(),
        3,
        "{again:#?}"
    );
    assert!(
        again.stdout.contains("already routes to ghapp"),
        "{again:#?}"
    );
    assert_eq!(std::fs::read_to_string(&gitconfig).unwrap(), before_cfg);
    assert_eq!(mtime("ghapp"), before);

    // Uninstall removes the binaries, cargo's records, the emptied bin/, and the routing it
    // wrote for every host (here a second one set up later by hand with configure-git).
    w.cmd(prefix.join("bin/ghapp").to_str().unwrap())
        .args(&["configure-git", "--host", "ghe.example.com"])
        .run()
        .ok();
    run(&["--uninstall"]).ok();
    for b in ["ghapp", "git-credential-ghapp", "gh-pr"] {
        assert!(!prefix.join("bin").join(b).exists(), "{b} removed");
    }
    for left in [".crates.toml", ".crates2.json", "bin"] {
        assert!(!prefix.join(left).exists(), "{left} left behind");
    }
    assert!(
        !std::fs::read_to_string(&gitconfig)
            .unwrap()
            .contains("ghapp")
    );
}

/// This module's tests, for the runner (`main.rs`).
pub(crate) const TESTS: &[(&str, fn())] = &[(
    "install_clone_reinstall_and_uninstall",
    install_clone_reinstall_and_uninstall,
)];
