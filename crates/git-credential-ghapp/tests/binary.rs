//! The built binary's plumbing (the end-to-end suite in tests/ covers the behaviour). Having an
//! integration test here also makes `cargo test --workspace` build the binary for that suite.

use std::io::Write;
use std::process::{Command, Stdio};

fn helper(args: &[&str], stdin: &str) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_git-credential-ghapp"))
        .args(args)
        .env_clear()
        .env("GHAPP_CONFIG", "")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn unknown_actions_are_ignored_and_no_action_is_usage() {
    let out = helper(&["frobnicate"], "");
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    let out = helper(&[], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("usage: git-credential-ghapp"));
}

#[test]
fn github_com_without_configuration_says_so_and_answers_nothing() {
    let out = helper(
        &["get"],
        "protocol=https\nhost=github.com\npath=o/r.git\n\n",
    );
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("git-credential-ghapp: no GitHub App configured"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1);
}
