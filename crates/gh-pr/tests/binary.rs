//! The built binary's plumbing (tests/e2e/pr.rs covers the behaviour). Having an integration test
//! here also makes `cargo test --workspace` build the binary for that suite.

use std::process::Command;

#[test]
fn outside_a_repository_is_one_clear_line() {
    let dir = std::env::temp_dir();
    let out = Command::new(env!("CARGO_BIN_EXE_gh-pr"))
        .args(["open", "--title", "t"])
        .current_dir(&dir)
        .env("GIT_CEILING_DIRECTORIES", &dir)
        .env("GHAPP_CONFIG", "")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("gh-pr: not in a git repository"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(out.stdout.is_empty());
}
