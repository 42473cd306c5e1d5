//! The built binary's plumbing (the end-to-end suite in tests/ covers the commands). Having an
//! integration test here also makes `cargo test --workspace` build the binary for that suite.

use std::process::Command;

#[test]
fn help_lists_the_commands_and_bad_usage_exits_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_ghapp"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for c in ["token", "configure-git", "emulator", "demo"] {
        assert!(help.contains(c), "{help}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_ghapp"))
        .arg("frobnicate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn token_without_configuration_is_one_clear_line() {
    let out = Command::new(env!("CARGO_BIN_EXE_ghapp"))
        .args(["token", "--repo", "octo/widgets"])
        .env_clear()
        .env("GHAPP_CONFIG", "")
        .env("HOME", "/nonexistent")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("ghapp: no GitHub App configured"), "{err}");
    assert_eq!(err.lines().count(), 1);
}
